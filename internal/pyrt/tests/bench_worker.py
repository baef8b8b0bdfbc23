"""Micro benchmark of the worker's per-request cost (hello world over one channel).

    python3 internal/pyrt/tests/bench_worker.py [-n 50000] [--app hello] [--python PYTHON]

Sends N requests one after another (a prebuilt REQUEST frame, the reply read raw)
and reports the round trip and the worker process's own CPU time per request
(from /proc/PID/stat), which is the Python cost the front pays for.
"""

import argparse
import os
import sys
import time
from typing import Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests import harness  # noqa: E402
from tests.harness import END_STREAM, RESPONSE, wire  # noqa: E402


def cpu_seconds(pid: int) -> Tuple[float, float]:
    """Return the user and system CPU seconds of process pid."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=50000)
    p.add_argument("--app", default="hello")
    p.add_argument("--path", default="/")
    p.add_argument("--python", default=sys.executable)
    args = p.parse_args()

    w = harness.Worker(args.app, python=args.python)
    hello = w.hello()
    ch = w.channel()
    env = harness.environ(path=args.path, headers={
        "User-Agent": "wrk/4.2.0", "Accept": "*/*", "Accept-Encoding": "gzip, deflate",
        "Connection": "keep-alive"})
    frames = [wire.request_frame(i, END_STREAM, env) for i in range(1, args.n + 1)]
    first = ch.request(env)
    assert first.status == "200 OK" and first.frames[0][:2] == (RESPONSE, END_STREAM), first
    sock = ch.sock
    sock.settimeout(None)
    size = len(wire.frame(RESPONSE, END_STREAM, 1, b"x" * first.frames[0][2]))
    for f in frames[:1000]:  # warm up
        sock.sendall(f)
        got = 0
        while got < size:
            got += len(sock.recv(65536))

    cpu0, t0 = cpu_seconds(w.proc.pid), time.perf_counter()
    for f in frames:
        sock.sendall(f)
        got = 0
        while got < size:
            got += len(sock.recv(65536))
    elapsed, cpu1 = time.perf_counter() - t0, cpu_seconds(w.proc.pid)
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    n = len(frames)
    print("python %s, app %s, %d requests over one channel" % (hello["python"], args.app, n))
    print("round trip : %6.1f µs/request (%.0f requests/s; includes this Python front)"
          % (elapsed / n * 1e6, n / elapsed))
    print("worker CPU : %6.1f µs/request (user %.1f: Python; system %.1f: recv and send)"
          % ((user + system) / n * 1e6, user / n * 1e6, system / n * 1e6))
    w.close()


if __name__ == "__main__":
    main()
