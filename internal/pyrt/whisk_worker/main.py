"""The worker process: arguments, sys.path, importing the app, the control channel.

The front starts it as

    python -u -c "import sys; sys.path.insert(0, RUNTIME_DIR); from whisk_worker.main import main; \
sys.exit(main(sys.argv[1:]))" --control-fd 3 --app APP --window BYTES --threads T --processes P \
[--chdir DIR] [--pythonpath DIR]... [--post-fork MODULE:FUNCTION] [--preload] [--interface auto|wsgi|asgi]

and reads HELLO (ready) or FAILED (exit code 3) on the control channel. With
--preload the process is a fork server (preload.py): it imports the app once and
forks the workers, which come back here to serve. An ASGI app (asgi.py) gets
its event loop and lifespan startup in the worker, after the fork and the
post-fork hook, before HELLO.
"""

import argparse
import importlib
import json
import os
import platform
import select
import socket
import sys
import time
import traceback
from typing import Any, Callable, List, Optional, Sequence

from . import loader
from .wire import CHANNEL, FAILED, HELLO, NAMES, PING, PONG, STOP, ChannelClosed, Conn, ProtocolError, frame
from .wsgi import Worker

RUNTIME = "whisk_worker/1"
EXIT_IMPORT_FAILED = 3
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
RUNTIME_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="whisk_worker", description="whisk's Python worker (started by whisk)")
    p.add_argument("--control-fd", type=int, default=3, help="the control channel's descriptor")
    p.add_argument("--app", required=True, help="MODULE:CALLABLE, MODULE, or a WSGI script path")
    p.add_argument("--window", type=int, default=1 << 20, help="response window, bytes")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--processes", type=int, default=1)
    p.add_argument("--chdir", help="working directory for the app")
    p.add_argument("--pythonpath", action="append", default=[], help="put DIR at the front of sys.path")
    p.add_argument("--post-fork", help="MODULE:FUNCTION called with no arguments before the worker serves")
    p.add_argument("--preload", action="store_true", help="be a fork server: import the app, fork the workers")
    p.add_argument("--interface", choices=("auto", "wsgi", "asgi"), default="auto",
                   help="the app's interface; auto: ASGI 3 for a coroutine function (or an object whose "
                        "__call__ is one), else WSGI")
    return p.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    """Run a worker; return its exit code."""
    args = parse_args(argv)
    conn = Conn(socket.socket(fileno=args.control_fd), bufsize=64 << 10, fds=True)
    try:
        setup_path(args.chdir, args.pythonpath)
        app = loader.load(args.app)
        interface = loader.interface(app, args.interface, args.app)
    except loader.AppImportError as e:
        return fail(conn, e.error, e.hint, e.__cause__)
    except OSError as e:  # --chdir
        return fail(conn, "cannot change to directory %r: %s" % (args.chdir, e.strerror or e),
                    "pass --chdir an existing directory the worker's user may enter", None)
    except BaseException as e:
        return fail(conn, "loading %r failed: %s: %s" % (args.app, type(e).__name__, e),
                    "see the traceback", e)
    try:
        hook = loader.load_hook(args.post_fork, "post_fork") if args.post_fork else None
    except loader.AppImportError as e:
        return fail(conn, e.error, e.hint, e.__cause__, "post_fork")
    if args.preload:
        from . import preload
        served = preload.serve(conn, hello(interface))
        if isinstance(served, int):
            return served  # the fork server's exit
        conn = served  # a forked worker's control channel
    try:
        if hook is not None:
            try:
                hook()
            except BaseException as e:
                return fail(conn, "post_fork hook %s raised %s: %s" % (args.post_fork, type(e).__name__, e),
                            "fix the post_fork hook (see the traceback)", e, "post_fork")
        if interface == "asgi":
            from . import asgi
            worker: Any = asgi.Worker(app, args.window, args.threads)
            failure = worker.start(conn)  # the event loop, lifespan startup
            if failure is not None:
                message, exc = failure
                exit_now(fail(conn, "ASGI lifespan startup failed: %s" % message,
                              "fix the app's lifespan startup (see the traceback)", exc, "lifespan"))
        else:
            worker = Worker(app, args.window, args.threads, args.processes)
        conn.send(frame(HELLO, 0, 0, json.dumps(hello(interface)).encode()))
        return control_loop(conn, worker)
    except ChannelClosed:
        os._exit(0)  # the front is gone


def exit_now(code: int) -> None:
    """Exit without waiting for threads (the ASGI loop's executor may hold a stuck one)."""
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    os._exit(code)


def hello(interface: str = "wsgi") -> dict:
    """Return the HELLO payload: this process is ready (and, for a Django app, where its
    static and media files are)."""
    msg = {"pid": os.getpid(), "python": platform.python_version(), "runtime": RUNTIME, "wire": 1,
           "interface": interface}
    django = loader.django_settings()
    if django is not None:
        msg["django"] = django
    return msg


def setup_path(chdir: Optional[str], pythonpath: List[str]) -> None:
    """chdir, then sys.path = [cwd if absent] + pythonpath + the rest + [RUNTIME_DIR]."""
    if chdir:
        os.chdir(chdir)
    cwd = os.getcwd()
    path = [p for p in sys.path if p and os.path.abspath(p) != RUNTIME_DIR]
    path[:0] = [os.path.abspath(p) for p in pythonpath]
    if cwd not in path:
        path.insert(0, cwd)
    path.append(RUNTIME_DIR)
    sys.path[:] = path


def fail(conn: Conn, error: str, hint: str, cause: Optional[BaseException], stage: Optional[str] = None) -> int:
    """Send FAILED and return the exit code for an app that cannot be loaded, or a
    post_fork hook (stage "post_fork") that cannot be loaded or raised."""
    msg = {"error": " ".join(error.split()), "traceback": format_cause(cause), "hint": " ".join(hint.split())}
    if stage:
        msg["stage"] = stage
    try:
        conn.send(frame(FAILED, 0, 0, json.dumps(msg).encode()))
    except ChannelClosed:
        pass
    return EXIT_IMPORT_FAILED


def format_cause(e: Optional[BaseException]) -> str:
    """Format e's traceback without the frames of importlib and of this package."""
    if e is None:
        return ""
    te = traceback.TracebackException.from_exception(e)
    hidden = ("<frozen importlib", PACKAGE_DIR, os.path.dirname(importlib.__file__) + os.sep)
    te.stack = traceback.StackSummary.from_list([f for f in te.stack if not f.filename.startswith(hidden)])
    return "".join(te.format())


def control_loop(conn: Conn, worker: Any) -> int:
    """Serve the control channel until STOP (return 0) or a protocol error (2)."""
    while True:
        try:
            ftype, _, stream, payload = conn.recv_frame()
            if ftype == CHANNEL:
                if not conn.fds:
                    raise ProtocolError("CHANNEL frame without a descriptor")
                fd = conn.fds.popleft()
                name = channel_name(payload, fd)
                try:
                    sock = socket.socket(fileno=fd)
                except OSError as e:
                    os.close(fd)
                    raise ProtocolError("CHANNEL descriptor is not a socket: %s" % e)
                worker.serve_channel(sock, name)
            elif ftype == PING:
                conn.send(frame(PONG, 0, stream, payload))
            elif ftype == STOP:
                return stop(conn, worker)
            else:
                raise ProtocolError("unexpected %s frame on the control channel" % NAMES.get(ftype, hex(ftype)))
        except (ProtocolError, ValueError) as e:
            sys.stderr.write("whisk_worker: protocol error on the control channel, exiting: %s\n" % e)
            return 2


def channel_name(payload: Any, fd: int) -> str:
    """Return the id of a CHANNEL frame's JSON payload, or the fd number."""
    try:
        return str(json.loads(bytes(payload))["id"])
    except (ValueError, TypeError, KeyError):
        return "fd%d" % fd


def stop(conn: Conn, worker: Any) -> int:
    """Take no new request, wait for those in progress, and return 0 (an ASGI
    worker runs lifespan shutdown, then exits)."""
    asgi = getattr(worker, "shutdown", None) is not None
    if asgi:
        done = worker.stop()  # on the loop: read what the channels hold, then take no new stream
        deadline = time.monotonic() + 1
        answer_pings(conn, lambda: done.done() or time.monotonic() > deadline)
    worker.stopping = True
    answer_pings(conn, worker.idle)
    if asgi:
        from .asgi import SHUTDOWN_WAIT
        done = worker.shutdown()  # lifespan shutdown, on the loop; it waits at most SHUTDOWN_WAIT
        deadline = time.monotonic() + SHUTDOWN_WAIT + 1
        answer_pings(conn, lambda: done.done() or time.monotonic() > deadline)
        if not done.done():
            sys.stderr.write("whisk_worker: ASGI lifespan shutdown did not run: the event loop is blocked\n")
        exit_now(0)
    return 0


def answer_pings(conn: Conn, done: Callable[[], bool]) -> None:
    """Answer PING on the control channel until done() is true (checked every 20 ms)."""
    while not done():
        # A PING may already be buffered, read along with STOP.
        if conn.start != conn.end or select.select([conn.sock], [], [], 0.02)[0]:
            ftype, _, stream, payload = conn.recv_frame()  # EOF raises ChannelClosed: exit at once
            if ftype == PING:
                conn.send(frame(PONG, 0, stream, payload))
