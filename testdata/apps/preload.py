"""Reports where the worker runs: for preload, user switching and CPU pinning tests.

IMPORTED_IN is the pid that imported this module: with preload, the fork
server's, in every worker. post_fork is a hook that records the worker it ran
in (and prints a line, to check where worker output goes); failing_hook raises.
"""

import json
import os

IMPORTED_IN = os.getpid()
POST_FORK_IN = None


def post_fork():
    global POST_FORK_IN
    POST_FORK_IN = os.getpid()
    print("post_fork ran in %d" % POST_FORK_IN)


def failing_hook():
    raise RuntimeError("no database")


def application(environ, start_response):
    body = json.dumps({
        "pid": os.getpid(), "ppid": os.getppid(), "imported_in": IMPORTED_IN, "post_fork_in": POST_FORK_IN,
        "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
        "home": os.environ.get("HOME"), "user": os.environ.get("USER"), "logname": os.environ.get("LOGNAME"),
        "cpus": sorted(os.sched_getaffinity(0)),
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
