"""Holds memory on request, for max_rss tests.

/grow?mb=N keeps N more MiB, written so that they are resident and the
worker's own, for the life of the worker process. Every answer is
"PID HELD_MB".
"""

import os
import threading

_held = []
_lock = threading.Lock()


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/grow":
        mb = int(environ.get("QUERY_STRING", "").partition("mb=")[2] or "1")
        block = b"\xab" * (mb << 20)
        with _lock:
            _held.append(block)
    with _lock:
        held = sum(len(b) for b in _held) >> 20
    body = ("%d %d" % (os.getpid(), held)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
