"""Reads wsgi.input one way (?op=) and reports what it got as JSON.

Ops: read (read()), readn (read(n) until b""), readline (until b""),
readlinen (readline(n)), readlines, iter (for line in input), sha (read(),
for big uploads), pastend (read everything, then read(), read(10),
readline() and readlines() again: each must return empty at once).

"pieces" is the SHA-256 over every piece the op returned, each preceded by
its length as 4 big-endian bytes: it pins down exactly how the body was cut.
"""

import hashlib
import json


def _pieces_digest(pieces):
    h = hashlib.sha256()
    for p in pieces:
        h.update(len(p).to_bytes(4, "big"))
        h.update(p)
    return h.hexdigest()


def application(environ, start_response):
    query = dict(kv.partition("=")[::2] for kv in environ["QUERY_STRING"].split("&") if kv)
    op = query.get("op", "read")
    n = int(query.get("n", "0") or 0)
    inp = environ["wsgi.input"]
    pieces = []
    extra = {}
    if op == "read" or op == "sha":
        pieces = [inp.read()]
    elif op == "readn":
        while True:
            p = inp.read(n)
            if not p:
                break
            pieces.append(p)
    elif op == "readline":
        while True:
            p = inp.readline()
            if not p:
                break
            pieces.append(p)
    elif op == "readlinen":
        while True:
            p = inp.readline(n)
            if not p:
                break
            pieces.append(p)
    elif op == "readlines":
        pieces = inp.readlines()
    elif op == "iter":
        pieces = [line for line in inp]
    elif op == "pastend":
        pieces = [inp.read()]
        extra["after"] = [repr(inp.read()), repr(inp.read(10)), repr(inp.readline()), repr(inp.readlines())]
    else:
        raise LookupError(op)
    data = b"".join(pieces)
    out = {
        "op": op,
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "pieces": _pieces_digest(pieces) if op != "sha" else "",
        "count": len(pieces),
        "content_length": environ.get("CONTENT_LENGTH"),
        "content_type": environ.get("CONTENT_TYPE"),
    }
    out.update(extra)
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
