"""Views of the demo app: a page using the session, a JSON endpoint, a file
upload and a streamed response."""

import hashlib
import platform
import re
import time
from pathlib import Path

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

# How many chunks /stream sends, and the pause before each one after the first.
STREAM_CHUNKS = 5
STREAM_PAUSE = 0.1  # seconds

# How long /stream?gate=NAME waits for its gate file before giving up.
STREAM_GATE_TIMEOUT = 20.0  # seconds

_GATE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The home page: counts your visits in the session."""
    visits = request.session.get("visits", 0) + 1
    request.session["visits"] = visits
    return render(
        request,
        "demo/home.html",
        {
            "visits": visits,
            "django_version": django.get_version(),
            "python_version": platform.python_version(),
        },
    )


@require_GET
def api_hello(request: HttpRequest) -> JsonResponse:
    """A JSON greeting: /api/hello?name=you."""
    name = request.GET.get("name", "world")
    return JsonResponse(
        {
            "message": f"Hello, {name}!",
            "django": django.get_version(),
            "python": platform.python_version(),
            "method": request.method,
            "path": request.path,
        }
    )


@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    """GET: an upload form. POST (multipart, field "file"): the file's SHA-256
    and size as JSON. CSRF protection is on, as for any form."""
    if request.method == "GET":
        return render(request, "demo/upload.html")
    f = request.FILES.get("file")
    if f is None:
        return JsonResponse({"error": 'no file in the multipart field "file"'}, status=400)
    digest = hashlib.sha256()
    size = 0
    for chunk in f.chunks():
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"name": f.name, "sha256": digest.hexdigest(), "size": size})


@require_GET
def stream(request: HttpRequest) -> StreamingHttpResponse:
    """A plain-text response sent in chunks as the view produces them."""
    gate = _gate_path(request.GET.get("gate", ""))

    def chunks():
        for i in range(1, STREAM_CHUNKS + 1):
            if i > 1:
                time.sleep(STREAM_PAUSE)
            if i == STREAM_CHUNKS and gate is not None and not _wait_for(gate, STREAM_GATE_TIMEOUT):
                yield f"gave up waiting for {gate.name} before chunk {i}\n"
                return
            yield f"chunk {i} of {STREAM_CHUNKS}\n"

    return StreamingHttpResponse(chunks(), content_type="text/plain; charset=utf-8")


def _gate_path(name: str):
    """The gate file for /stream?gate=NAME, or None when gates are off."""
    if not settings.DEMO_STREAM_GATE_DIR or not _GATE_NAME.fullmatch(name):
        return None
    return Path(settings.DEMO_STREAM_GATE_DIR) / name


def _wait_for(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.02)
    return False
