"""Appends "METHOD PATH" to the file named by WHISK_TEST_PATH_LOG for every
request it sees, then answers "seen". Tests check that a smuggled request
never reached it.
"""

import os
import threading

LOG = os.environ["WHISK_TEST_PATH_LOG"]
_lock = threading.Lock()


def application(environ, start_response):
    line = "%s %s\n" % (environ["REQUEST_METHOD"], environ["PATH_INFO"])
    with _lock, open(LOG, "a", encoding="latin-1") as f:
        f.write(line)
    length = environ.get("CONTENT_LENGTH") or "0"
    environ["wsgi.input"].read(int(length))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"seen\n"]
