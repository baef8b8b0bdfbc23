"""A WSGI "hello" app with no dependencies: the first thing to serve with whisk.

    whisk serve examples/hello/app.py

then open http://127.0.0.1:8000/. The page says which Python runs it and shows
a few values of the WSGI environ, so you can see what whisk passes to an app.
"""

from __future__ import annotations

import html
import os
import platform
import sys
from typing import Callable, Iterable

# The environ keys shown on the page, in order.
ENVIRON_KEYS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "HTTP_HOST",
    "HTTP_USER_AGENT",
    "wsgi.url_scheme",
    "wsgi.multithread",
    "wsgi.multiprocess",
)

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Hello from whisk</title>
<style>
  body {{ font-family: system-ui, sans-serif; max-width: 44rem; margin: 3rem auto; padding: 0 1rem; color: #222; }}
  h1 {{ font-size: 1.8rem; }}
  table {{ border-collapse: collapse; width: 100%; }}
  th, td {{ text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }}
  th {{ width: 12rem; font-weight: 600; }}
  td {{ font-family: ui-monospace, monospace; word-break: break-all; }}
</style>
</head>
<body>
<h1>Hello! whisk is serving this page.</h1>
<p>This is <code>examples/hello/app.py</code>, a plain WSGI application,
running in a Python worker process supervised by whisk.</p>
<h2>Python</h2>
<table>
<tr><th>version</th><td id="python-version">{version}</td></tr>
<tr><th>sys.executable</th><td id="python-executable">{executable}</td></tr>
<tr><th>sys.prefix</th><td id="python-prefix">{prefix}</td></tr>
<tr><th>process id</th><td id="pid">{pid}</td></tr>
</table>
<h2>This request</h2>
<table>
{rows}
</table>
</body>
</html>
"""


def _row(key: str, value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return f"<tr><th>{html.escape(key)}</th><td>{html.escape(text)}</td></tr>"


def application(environ: dict, start_response: Callable) -> Iterable[bytes]:
    """Return the hello page for any path and method."""
    rows = "\n".join(_row(k, environ[k]) for k in ENVIRON_KEYS if k in environ)
    body = PAGE.format(
        version=html.escape(f"{platform.python_implementation()} {platform.python_version()}"),
        executable=html.escape(sys.executable or "(unknown)"),
        prefix=html.escape(sys.prefix),
        pid=os.getpid(),
        rows=rows,
    ).encode("utf-8")
    start_response(
        "200 OK",
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]
