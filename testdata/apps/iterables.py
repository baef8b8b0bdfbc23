"""Every shape of response body PEP 3333 allows.

  /list /tuple /generator /iterator /custom /empty /many
  /write-only     the write() callable alone, returning []
  /write-mixed    write() then an iterable
  /write-list     write() then a list (the worker's list fast path)

Each body is "hello, world\n" (/many: 1000 blocks of "x"*100, /empty: none).
?validate=1 wraps the app in wsgiref.validate.validator for that request;
without it the worker sees the raw list/tuple and takes its fast paths.
"""

from wsgiref.validate import validator

HELLO = [b"hello", b", ", b"world\n"]


class Custom:
    """An iterable that is not a list, tuple, generator or iterator."""

    def __init__(self, blocks):
        self.blocks = blocks

    def __iter__(self):
        return iter(self.blocks)

    def close(self):
        pass


def app(environ, start_response):
    path = environ["PATH_INFO"]
    headers = [("Content-Type", "text/plain")]
    if path.startswith("/write"):
        write = start_response("200 OK", headers)
        write(b"hello")
        if path == "/write-only":
            write(b", ")
            write(b"world\n")
            return []
        if path == "/write-mixed":
            return iter([b", ", b"world\n"])
        return [b", ", b"world\n"]
    start_response("200 OK", headers)
    if path == "/list":
        return list(HELLO)
    if path == "/tuple":
        return tuple(HELLO)
    if path == "/generator":
        return (b for b in HELLO)
    if path == "/iterator":
        return iter(HELLO)
    if path == "/custom":
        return Custom(HELLO)
    if path == "/empty":
        return []
    if path == "/many":
        return (b"x" * 100 for _ in range(1000))
    raise LookupError("no case %r" % path)


validated = validator(app)


def application(environ, start_response):
    if "validate=1" in environ["QUERY_STRING"]:
        return validated(environ, start_response)
    return app(environ, start_response)
