"""Returns environ["wsgi.file_wrapper"] over a file (query: path=, hex-encoded).

  offset=N   seek the file to N first
  length=N   send a Content-Length: N header (the front sends N bytes)
  mem=1      wrap an io.BytesIO of the file instead (no descriptor to pass:
             the wrapper is iterated)
"""

import io


def application(environ, start_response):
    query = dict(kv.partition("=")[::2] for kv in environ["QUERY_STRING"].split("&") if kv)
    path = bytes.fromhex(query["path"]).decode()
    f = open(path, "rb")
    if query.get("mem") == "1":
        data = f.read()
        f.close()
        f = io.BytesIO(data)
    if "offset" in query:
        f.seek(int(query["offset"]))
    headers = [("Content-Type", "application/octet-stream")]
    if "length" in query:
        headers.append(("Content-Length", query["length"]))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, 64 << 10)
