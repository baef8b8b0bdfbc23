"""Produces big responses fast, for slow-client tests.

  /big?mb=N&id=ID   N MiB in 256 KiB blocks of a pattern that depends on the
                    block's index; after each block it writes the bytes sent
                    so far to $WHISK_TEST_PROGRESS_DIR/ID (when set)
  /small            "small\n"
"""

import os

BLOCK = 256 << 10
PROGRESS = os.environ.get("WHISK_TEST_PROGRESS_DIR")


def block(i):
    return (b"%08d" % i) * (BLOCK // 8)


def application(environ, start_response):
    if environ["PATH_INFO"] == "/small":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
        return [b"small\n"]
    query = dict(kv.partition("=")[::2] for kv in environ["QUERY_STRING"].split("&") if kv)
    blocks = int(query.get("mb", "1")) * ((1 << 20) // BLOCK)
    ident = query.get("id", "")
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(blocks * BLOCK))])

    def gen():
        for i in range(blocks):
            yield block(i)
            if PROGRESS and ident:
                with open(os.path.join(PROGRESS, ident), "w") as f:
                    f.write(str((i + 1) * BLOCK))
    return gen()
