"""WSGI app for the sleep50 scenario: waits 50 ms (time.sleep releases the
GIL, as a database or API call would), then answers "slept 50 ms"
(text/plain). Throughput is bound by the thread count: processes x threads
requests every 50 ms at most.

Served as `sleep:application` (also exported as `app`).
"""

import time

DELAY = 0.05
BODY = b"slept 50 ms"
HEADERS = [
    ("Content-Type", "text/plain"),
    ("Content-Length", str(len(BODY))),
]


def application(environ, start_response):
    time.sleep(DELAY)
    start_response("200 OK", list(HEADERS))
    return [BODY]


app = application
