"""start_response(status, headers, exc_info), validated by wsgiref.validate.

  /before         start_response 200 with X-First, then an error: start_response
                  again with exc_info (500, X-Second) before any byte was sent;
                  the client must see the 500 and only the second headers
  /after-empty    a generator: start_response 200, yield b"" (sends nothing),
                  then replace the headers with exc_info
  /after-sent     a generator: yield a first block (the head goes out), then
                  start_response with exc_info, which must re-raise; the
                  client must see a cut connection
"""

import sys
from wsgiref.validate import validator


def _error_page(start_response, marker):
    try:
        raise ValueError(marker)
    except ValueError:
        start_response("500 Internal Server Error",
                       [("Content-Type", "text/plain"), ("X-Second", "1")], sys.exc_info())
    return b"handled " + marker.encode()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/before":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
        return [_error_page(start_response, "whisk-e2e-exc-before")]
    if path == "/after-empty":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])

        def gen():
            yield b""
            yield _error_page(start_response, "whisk-e2e-exc-after-empty")
        return gen()
    if path == "/after-sent":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])

        def gen():
            yield b"first block\n"
            try:
                raise ValueError("whisk-e2e-exc-after-sent")
            except ValueError:
                # Headers are out: this must re-raise the ValueError.
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
            yield b"start_response did not re-raise\n"
        return gen()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such case\n"]


application = validator(app)
