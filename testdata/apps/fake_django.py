"""An app that configured Django's settings, without Django: a stand-in
django.conf whose STATIC_URL, STATIC_ROOT, MEDIA_URL and MEDIA_ROOT come
from FAKE_STATIC_URL, FAKE_STATIC_ROOT, FAKE_MEDIA_URL and FAKE_MEDIA_ROOT.
It answers every request with "app SCRIPT_NAME PATH_INFO", so a test tells
its answers from whisk's static files."""

import os
import sys
import types


class Settings:
    STATIC_URL = os.environ.get("FAKE_STATIC_URL")
    STATIC_ROOT = os.environ.get("FAKE_STATIC_ROOT")
    MEDIA_URL = os.environ.get("FAKE_MEDIA_URL", "")
    MEDIA_ROOT = os.environ.get("FAKE_MEDIA_ROOT", "")


class LazySettings:
    configured = True

    def __init__(self):
        self._wrapped = Settings()

    def __getattr__(self, name):
        return getattr(self._wrapped, name)


django = types.ModuleType("django")
django.conf = types.ModuleType("django.conf")
django.conf.settings = LazySettings()
sys.modules["django"] = django
sys.modules["django.conf"] = django.conf


def application(environ, start_response):
    body = ("app %s %s" % (environ["SCRIPT_NAME"], environ["PATH_INFO"])).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
