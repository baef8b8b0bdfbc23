"""Reads wsgi.input as QUERY_STRING says and answers with what it read (JSON, latin-1 strings).

QUERY_STRING: "all" | "none" (read(None)) | "n=K" (read(K) until empty) | "line" | "line=K" |
"lines" | "lines=K" | "iter" | "past" (read all, then read again twice) | "mixed" | "sha" (digest and length).
"""

import hashlib
import json


def application(environ, start_response):
    inp = environ["wsgi.input"]
    mode, _, arg = environ["QUERY_STRING"].partition("=")
    k = int(arg) if arg else -1
    if mode == "all":
        out = [inp.read()]
    elif mode == "none":
        out = [inp.read(None)]
    elif mode == "n":
        out = []
        while True:
            chunk = inp.read(k)
            out.append(chunk)
            if not chunk:
                break
    elif mode == "line":
        out = []
        while True:
            line = inp.readline(k) if arg else inp.readline()
            out.append(line)
            if not line:
                break
    elif mode == "lines":
        out = inp.readlines(k) if arg else inp.readlines()
    elif mode == "iter":
        out = list(inp)
    elif mode == "past":
        out = [inp.read(), inp.read(), inp.read(10), inp.readline()]
    elif mode == "sha":  # answers the digest and length only, for big bodies
        data = inp.read()
        out = [hashlib.sha256(data).hexdigest().encode(), str(len(data)).encode()]
    elif mode == "mixed":
        out = [inp.readline(), inp.read(5), inp.readline(3), inp.read()]
    else:
        raise ValueError(mode)
    body = json.dumps([b.decode("latin-1") for b in out]).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
