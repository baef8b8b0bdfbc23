"""Answers "PID" after sleeping ?ms=N milliseconds (default 0): a request
that stays in flight for a while, for graceful-shutdown tests."""

import os
import time


def application(environ, start_response):
    ms = environ["QUERY_STRING"].partition("ms=")[2]
    time.sleep(int(ms or 0) / 1000)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
