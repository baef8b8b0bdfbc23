"""Answers with the names of the loaded modules of the package QUERY_STRING names, as JSON."""

import json
import sys


def application(environ, start_response):
    package = environ["QUERY_STRING"]
    body = json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == package)).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
