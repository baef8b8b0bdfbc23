"""A one-file Django project served by Django's ASGI handler (the test
virtualenv has Django), for test_asgi.RealFrameworkTest.

  /async/   an async view       /sync/   a sync view (Django runs it in a thread)
  /echo/    POST: the body's length
"""

import threading

from django.conf import settings

settings.configure(DEBUG=False, SECRET_KEY="test", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
                   INSTALLED_APPS=[], MIDDLEWARE=[], DATABASES={})

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


async def async_view(request):
    return JsonResponse({"view": "async", "thread": threading.current_thread().name})


def sync_view(request):
    return JsonResponse({"view": "sync", "thread": threading.current_thread().name})


async def echo(request):
    return JsonResponse({"size": len(request.body)})


urlpatterns = [path("async/", async_view), path("sync/", sync_view), path("echo/", echo)]

application = get_asgi_application()
