"""WSGI hello world: 13-byte text/plain body ("Hello, World!").

Served as `hello:application` (also exported as `app`).
"""

BODY = b"Hello, World!"
HEADERS = [
    ("Content-Type", "text/plain"),
    ("Content-Length", str(len(BODY))),
]


def application(environ, start_response):
    start_response("200 OK", list(HEADERS))
    return [BODY]


app = application
