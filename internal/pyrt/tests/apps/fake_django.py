"""An app that configured Django's settings, without Django: a stand-in django.conf.

Its LazySettings answers attribute reads the way Django's does for STATIC_URL and
MEDIA_URL (with the script prefix added, which the worker must not report) and counts
them; the raw settings are in _wrapped. FAKE_DJANGO_CONFIGURED=0 leaves them
unconfigured, as an app that imported django.conf but never loaded its settings.
"""

import os
import pathlib
import sys
import types

reads = []


class Settings:
    STATIC_URL = "static/"
    STATIC_ROOT = pathlib.Path("collected")  # relative: the worker makes it absolute
    MEDIA_URL = "https://cdn.example.com/media/"
    MEDIA_ROOT = ""  # Django's default: unset


class LazySettings:
    def __init__(self, configured):
        self._wrapped = Settings() if configured else object()
        self._configured = configured

    @property
    def configured(self):
        return self._configured

    def __getattr__(self, name):
        reads.append(name)
        value = getattr(self._wrapped, name)
        if name in ("STATIC_URL", "MEDIA_URL") and not value.startswith(("http://", "https://", "/")):
            value = "/script-prefix/" + value
        return value


django = types.ModuleType("django")
conf = types.ModuleType("django.conf")
conf.settings = LazySettings(os.environ.get("FAKE_DJANGO_CONFIGURED", "1") == "1")
django.conf = conf
sys.modules["django"] = django
sys.modules["django.conf"] = conf


def application(environ, start_response):
    body = repr(reads).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
