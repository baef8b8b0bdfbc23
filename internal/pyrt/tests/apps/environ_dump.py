"""Returns the environ as JSON: str values as they are, other values as their type name.

validated is the same app wrapped in wsgiref.validate.validator.
"""

import json
from wsgiref.validate import validator


def application(environ, start_response):
    out = {k: (v if type(v) is str else "<%s>" % type(v).__name__) for k, v in environ.items()}
    out["wsgi.version"] = list(environ["wsgi.version"])
    out["flags"] = [environ["wsgi.multithread"], environ["wsgi.multiprocess"], environ["wsgi.run_once"],
                    environ["wsgi.input_terminated"]]
    out["errors_is_stderr"] = environ["wsgi.errors"] is __import__("sys").stderr
    out["input_body"] = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"] or 0)).decode("latin-1")
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


validated = validator(application)
