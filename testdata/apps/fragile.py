"""An app whose next import fails while a file "broken" sits beside it
(a deploy that broke the code), and whose workers can be told to die.

  /exit   os._exit(1): the worker dies, and its replacement imports again
  /       "PID"
"""

import os

if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "broken")):
    raise RuntimeError("the deploy broke the app")


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/exit":
        os._exit(1)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
