"""Apps that do not answer in time, for the interrupt tests.

/spin          loops in Python until interrupted (spin_forever)
/spin-catch    the same, inside `except Exception: pass` (catch_all_forever)
/spin-gen      yields a block, then loops (spin_generator); records its close()
/sleep?s=N     time.sleep(N) in C, then answers "slept" (sleep_for)
/work?s=N      loops in Python for N seconds, then answers "done"
/closed        "1" when the last generator's close() ran, else "0"
"""

import time

closed = []


def spin_forever():
    while True:
        pass


def catch_all_forever():
    while True:
        try:
            time.monotonic()
        except Exception:
            pass


def sleep_for(seconds):
    time.sleep(seconds)


def spin_generator():
    try:
        yield b"first"
        spin_forever()
        yield b"never"
    finally:
        closed.append(1)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = dict(p.split("=", 1) for p in environ["QUERY_STRING"].split("&") if "=" in p)
    seconds = float(query.get("s", "0"))
    if path == "/spin":
        spin_forever()
    elif path == "/spin-catch":
        catch_all_forever()
    elif path == "/spin-gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        del closed[:]
        return spin_generator()
    elif path == "/sleep":
        sleep_for(seconds)
        body = b"slept"
    elif path == "/work":
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
        body = b"done"
    elif path == "/closed":
        body = b"1" if closed else b"0"
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
