"""Records every close() of a response iterable: close() appends
"closed ID\n" to the file named by WHISK_TEST_CLOSE_LOG (ID from ?id=).

  /forever?id=ID      streams 4 KiB blocks until the client goes away
  /finite?id=ID       a custom iterable with close(), three blocks
  /generator?id=ID    a generator; its finally clause records the close
  /raises?id=ID       a custom iterable whose second block raises
"""

import os
import threading
import time

LOG = os.environ["WHISK_TEST_CLOSE_LOG"]
_lock = threading.Lock()


def _record(what):
    with _lock, open(LOG, "a") as f:
        f.write(what + "\n")


class Body:
    def __init__(self, ident, blocks, forever=False, raise_at=-1):
        self.ident = ident
        self.blocks = blocks
        self.forever = forever
        self.raise_at = raise_at

    def __iter__(self):
        i = 0
        while self.forever or i < len(self.blocks):
            if i == self.raise_at:
                raise RuntimeError("whisk-e2e-iterable-raised")
            yield self.blocks[i % len(self.blocks)]
            i += 1
            if self.forever:
                time.sleep(0.001)

    def close(self):
        _record("closed " + self.ident)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    ident = environ["QUERY_STRING"].partition("id=")[2]
    _record("started " + ident)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    if path == "/forever":
        return Body(ident, [b"z" * 4096], forever=True)
    if path == "/finite":
        return Body(ident, [b"a", b"b", b"c"])
    if path == "/raises":
        return Body(ident, [b"a", b"b", b"c"], raise_at=1)
    if path == "/generator":
        def gen():
            try:
                yield b"a"
                yield b"b"
            finally:
                _record("closed " + ident)
        return gen()
    raise LookupError(path)
