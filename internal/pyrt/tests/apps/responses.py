"""Response behaviours, one per PATH_INFO; /events returns (and clears) what happened.

Query strings set sizes: /gen?n=3&size=5 yields n blocks of size bytes.
"""

import io
import json
import sys
import threading
import time
from urllib.parse import parse_qs

EVENTS = []


class Body:
    """An iterable that records its close() in EVENTS."""

    def __init__(self, name, blocks, fail_at=None):
        self.name, self.blocks, self.fail_at = name, blocks, fail_at

    def __iter__(self):
        for i, b in enumerate(self.blocks):
            if i == self.fail_at:
                raise RuntimeError("failed at block %d" % i)
            EVENTS.append("%s:yield:%d" % (self.name, i))
            yield b

    def close(self):
        EVENTS.append("%s:closed" % self.name)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    q = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    n, size = int(q.get("n", 3)), int(q.get("size", 5))
    text = [("Content-Type", "text/plain")]
    if path == "/events":
        body = json.dumps(EVENTS).encode()
        del EVENTS[:]
        start_response("200 OK", text)
        return [body]
    if path == "/list":
        start_response("200 OK", text)
        return [b"a" * size] * n
    if path == "/tuple":
        start_response("200 OK", text)
        return (b"ab", b"cd")
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/gen":
        start_response("200 OK", text)
        return Body("gen", [bytes([65 + i % 26]) * size for i in range(n)])
    if path == "/gen-cl":  # a generator with a Content-Length: ends with its last block
        start_response("200 OK", text + [("Content-Length", str(n * size))])
        return Body("gencl", [b"x" * size for i in range(n)])
    if path == "/gen-empty-first":
        start_response("200 OK", text)
        return Body("ge", [b"", b"", b"late"])
    if path == "/late-start":  # start_response called inside the iterable
        def gen():
            start_response("201 Created", text)
            yield b"late"
        return gen()
    if path == "/write":
        write = start_response("200 OK", text)
        write(b"one,")
        write(b"two,")
        return [b"three"]
    if path == "/big":
        start_response("200 OK", text)
        return [bytes(range(256)) * (size // 256) + b"!"]
    if path == "/error-before":
        raise ValueError("boom before\nsecond line")
    if path == "/error-after":
        start_response("200 OK", text)
        return Body("errafter", [b"first", b"second"], fail_at=1)
    if path == "/error-in-close":
        start_response("200 OK", text)

        class Bad(Body):
            def close(self):
                raise RuntimeError("close failed")
        return Bad("badclose", [b"fine"])
    if path == "/exc-info":
        start_response("200 OK", text + [("X-Before", "1")])
        try:
            raise KeyError("oops")
        except KeyError:
            start_response("500 Internal Server Error", [("X-After", "1")], sys.exc_info())
        return [b"replaced"]
    if path == "/exc-info-late":  # headers already sent: start_response must re-raise
        def gen():
            yield b"head sent"
            try:
                raise KeyError("late")
            except KeyError:
                start_response("500 Internal Server Error", [], sys.exc_info())
            yield b"never"
        start_response("200 OK", text)
        return gen()
    if path == "/twice":
        start_response("200 OK", text)
        start_response("200 OK", text)
        return [b"no"]
    if path == "/no-start":
        return [b"no start_response"]
    if path == "/str-body":
        start_response("200 OK", text)
        return ["not bytes"]
    if path == "/bad-status":
        start_response(200, text)
        return [b""]
    if path == "/str-subclass":
        class S(str):
            pass
        start_response(S("200 OK"), [(S("X-Sub"), S("yes"))])
        return [b"sub"]
    if path == "/file":
        f = open(q["path"], "rb")
        f.seek(int(q.get("seek", 0)))
        headers = text + ([("Content-Length", q["cl"])] if "cl" in q else [])
        start_response("200 OK", headers)
        wrapper = environ["wsgi.file_wrapper"](f, 4)

        def record_close(close=wrapper.close):
            EVENTS.append("file:closed")
            close()
        wrapper.close = record_close
        return wrapper
    if path == "/file-bytesio":
        start_response("200 OK", text)
        return environ["wsgi.file_wrapper"](io.BytesIO(b"in memory file"), 4)
    if path == "/sleep":
        time.sleep(float(q.get("t", 0.2)))
        start_response("200 OK", text)
        return [b"slept"]
    if path == "/block":  # blocks until /release is requested on another channel
        EVENTS.append("blocked")
        RELEASE.wait(10)
        RELEASE.clear()
        start_response("200 OK", text)
        return [b"released"]
    if path == "/release":
        RELEASE.set()
        start_response("200 OK", text)
        return [b"ok"]
    if path == "/sys-path":
        start_response("200 OK", text)
        return [json.dumps(sys.path).encode()]
    if path == "/print":
        print("to stdout")
        environ["wsgi.errors"].write("to wsgi.errors\n")
        start_response("200 OK", text)
        return [b"printed"]
    start_response("404 Not Found", text)
    return [b"not found"]


RELEASE = threading.Event()
