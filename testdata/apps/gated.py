"""A slow endpoint whose end the test controls, for graceful-stop tests.

/wait?id=ID writes $WHISK_TEST_DIR/started-ID, then waits (at most 60 s)
until $WHISK_TEST_DIR/gate exists, and answers "done ID".
"""

import os
import time

DIR = os.environ["WHISK_TEST_DIR"]


def application(environ, start_response):
    ident = environ["QUERY_STRING"].partition("id=")[2]
    open(os.path.join(DIR, "started-" + ident), "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(DIR, "gate")) and time.monotonic() < deadline:
        time.sleep(0.01)
    body = ("done " + ident).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
