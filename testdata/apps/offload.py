"""Hands files over to the front instead of sending them.

  /sendfile?path=P   X-Sendfile: P
  /accel?uri=U       X-Accel-Redirect: U
Both also set Content-Disposition and a body the front must discard.
"""

from urllib.parse import parse_qs


def application(environ, start_response):
    q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    headers = [("Content-Disposition", 'attachment; filename="download"')]
    if environ["PATH_INFO"] == "/sendfile":
        headers.append(("X-Sendfile", q["path"]))
    else:
        headers.append(("X-Accel-Redirect", q["uri"]))
    start_response("200 OK", headers)
    return [b"the app's body, replaced by the file"]
