import asyncio
import hashlib
import os

from django.http import JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt


def _in_event_loop():
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _facts(request, view):
    return {
        "view": view,
        "in_event_loop": _in_event_loop(),
        "method": request.method,
        "path": request.path,
        "path_info": request.path_info,
        "script_name": request.META.get("SCRIPT_NAME"),
        "query": request.GET.get("q"),
        "pid": os.getpid(),
    }


async def async_view(request):
    await asyncio.sleep(0.01)
    return JsonResponse(_facts(request, "async"))


def sync_view(request):
    return JsonResponse(_facts(request, "sync"))


async def stream_view(request):
    n = int(request.GET.get("n", "5"))

    async def lines():
        for i in range(1, n + 1):
            yield "line %d of %d\n" % (i, n)
            await asyncio.sleep(0)

    return StreamingHttpResponse(lines(), content_type="text/plain")


@csrf_exempt
async def echo_view(request):
    body = request.body
    return JsonResponse({"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()})
