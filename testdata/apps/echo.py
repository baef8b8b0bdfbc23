"""A small HTTP-behaviour app, validated by wsgiref.validate.

  /status/NNN     responds with status NNN and yields a body anyway (for
                  204 and 304, which must reach the client without one);
                  ?gen from a generator
  /stream?n=K     a generator of K lines, no Content-Length (chunked)
  /gen-length     a generator with a Content-Length
  anything else   "METHOD PATH?QUERY body=LEN sha256=HEX remote=ADDR" with a
                  Content-Length; POST bodies are read whole
"""

import hashlib
from wsgiref.validate import validator


def echo(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/status/"):
        status = path[len("/status/"):]
        start_response(status + " Whatever", [("X-Status", status)])
        if environ["QUERY_STRING"] == "gen":
            return (b for b in [b"this body must ", b"not reach the client"])
        return [b"this body must not reach the client"]
    if path == "/stream":
        n = int(environ["QUERY_STRING"].partition("=")[2] or "3")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"line %d\n" % i for i in range(n))
    if path == "/gen-length":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return (part for part in (b"01234", b"56789"))
    length = environ.get("CONTENT_LENGTH") or "0"
    body = environ["wsgi.input"].read(int(length))
    line = "%s %s?%s body=%d sha256=%s remote=%s proto=%s\n" % (
        environ["REQUEST_METHOD"], path, environ["QUERY_STRING"], len(body),
        hashlib.sha256(body).hexdigest(), environ.get("REMOTE_ADDR"), environ["SERVER_PROTOCOL"])
    out = line.encode("latin-1") + body
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]


application = validator(echo)
