"""WSGI app for the 1 MiB scenarios.

GET  -> 1 MiB (1048576 bytes) application/octet-stream body, one chunk.
POST -> reads the whole request body (wsgi.input, Content-Length) and returns
        its length in bytes as text/plain, e.g. "1048576".

Served as `big:application` (also exported as `app`).
"""

SIZE = 1024 * 1024
BODY = b"x" * SIZE
CHUNK = 64 * 1024


def application(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        try:
            remaining = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            remaining = 0
        stream = environ["wsgi.input"]
        total = 0
        while remaining > 0:
            data = stream.read(min(CHUNK, remaining))
            if not data:
                break
            total += len(data)
            remaining -= len(data)
        out = str(total).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(out)))])
        return [out]
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(SIZE))])
    return [BODY]


app = application
