"""Says which group served the request: the process-wide environment a
group sets (SITE, DJANGO_SETTINGS_MODULE), the SCRIPT_NAME/PATH_INFO split
of its mount, and the worker's pid and user."""

import json
import os

VERSION = "1"


def application(environ, start_response):
    body = json.dumps({
        "site": os.environ.get("SITE"),
        "settings": os.environ.get("DJANGO_SETTINGS_MODULE"),
        "script_name": environ["SCRIPT_NAME"],
        "path_info": environ["PATH_INFO"],
        "pid": os.getpid(),
        "uid": os.getuid(),
        "version": VERSION,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
