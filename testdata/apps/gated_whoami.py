"""whoami.py with a slow endpoint whose end the test controls, for reload
tests: which generation (SITE) and worker (pid) served a request held open
across a reload.

  /wait?id=ID  writes $WHISK_TEST_DIR/started-ID, waits (at most 60 s) until
               $WHISK_TEST_DIR/gate exists, then answers like any other path
  any other    {"site": $SITE, "pid": ..., "path_info": ...} at once
"""

import json
import os
import time

DIR = os.environ["WHISK_TEST_DIR"]


def application(environ, start_response):
    if environ["PATH_INFO"] == "/wait":
        ident = environ["QUERY_STRING"].partition("id=")[2]
        open(os.path.join(DIR, "started-" + ident), "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(DIR, "gate")) and time.monotonic() < deadline:
            time.sleep(0.01)
    body = json.dumps({
        "site": os.environ.get("SITE"),
        "script_name": environ["SCRIPT_NAME"],
        "path_info": environ["PATH_INFO"],
        "pid": os.getpid(),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
