"""Text responses for compression tests.

  /page?kb=N   N KiB of HTML (a repeating paragraph), with Content-Length
  /stream      the same page in 8 parts, from a generator (no Content-Length)
  /small       a few bytes
"""

PARA = b"<p>whisk serves this paragraph again and again.</p>\n"  # 52 bytes


def page(kb):
    n = kb * 1024
    return (PARA * (n // len(PARA) + 1))[:n]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/small":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
        return [b"small\n"]
    kb = int(environ.get("QUERY_STRING", "").partition("kb=")[2] or "64")
    body = page(kb)
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
        step = max(1, len(body) // 8)
        return (body[i:i + step] for i in range(0, len(body), step))
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
