"""Apps that fail.

  /pid             the worker's pid (to show the next request reuses it)
  /raise-before    raises before start_response: the client gets a 500
  /raise-after     a generator that yields a block, then raises: the
                   client sees an incomplete chunked body
  /raise-after-cl  the same with a Content-Length of 100: a short body
"""

import os


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/pid":
        body = str(os.getpid()).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/raise-before":
        raise RuntimeError("whisk-e2e-boom-before")
    if path.startswith("/raise-after"):
        headers = [("Content-Type", "text/plain")]
        if path == "/raise-after-cl":
            headers.append(("Content-Length", "100"))
        start_response("200 OK", headers)

        def gen():
            yield b"partial body\n"
            raise RuntimeError("whisk-e2e-boom-after")
        return gen()
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such case\n"]
