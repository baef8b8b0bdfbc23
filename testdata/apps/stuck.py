"""Requests that never answer, for the layered request timeout.

  /pid            the worker's pid
  /spin           loops in Python forever (spin_forever): an interrupt frees it
  /sleep-forever  time.sleep(3600) in C (sleep_forever): only a recycle frees it
  /stream?n=N&d=S N blocks "block I\n", one every S seconds (a slow, healthy response)
"""

import os
import time


def spin_forever():
    n = 0
    while True:
        n += 1


def sleep_forever():
    time.sleep(3600)


def stream(n, delay):
    for i in range(n):
        time.sleep(delay)
        yield b"block %d\n" % i


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = dict(p.split("=", 1) for p in environ["QUERY_STRING"].split("&") if "=" in p)
    if path == "/spin":
        spin_forever()
    elif path == "/sleep-forever":
        sleep_forever()
    elif path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return stream(int(query.get("n", "10")), float(query.get("d", "0.1")))
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
