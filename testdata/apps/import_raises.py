"""Raises at import time: whisk must exit 3 with the traceback."""


def _configure():
    raise RuntimeError("whisk-e2e-import-time-failure")


_configure()


def application(environ, start_response):
    start_response("200 OK", [])
    return [b""]
