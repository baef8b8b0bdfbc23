"""Dumps the environ as JSON, exactly: each str value as the hex of its
latin-1 bytes (so every byte a native string carries is visible), every
other value as its repr(), plus a few facts about the wsgi.* objects.

application is wrapped in wsgiref.validate.validator: a 200 proves the
environ (and everything whisk does with the response) passes its checks.
"""

import json
from wsgiref.validate import validator


def dump(environ, start_response):
    strs = {}
    others = {}
    for key, value in environ.items():
        if type(value) is str:
            strs[key] = value.encode("latin-1").hex()  # raises for a non-native string
        else:
            others[key] = repr(value)
    inp = environ["wsgi.input"]
    errors = environ["wsgi.errors"]
    facts = {
        "input_methods": [m for m in ("read", "readline", "readlines", "__iter__") if hasattr(inp, m)],
        "errors_methods": [m for m in ("write", "writelines", "flush") if hasattr(errors, m)],
        "file_wrapper_callable": callable(environ.get("wsgi.file_wrapper")),
        "version_is_tuple": type(environ["wsgi.version"]) is tuple,
        "flags_are_bool": all(type(environ[k]) is bool for k in (
            "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated")),
    }
    errors.write("")  # wsgi.errors takes str
    errors.flush()
    body = json.dumps({"str": strs, "other": others, "facts": facts}, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


application = validator(dump)
