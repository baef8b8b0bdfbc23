"""Preload: the fork server. Import the app once, then fork the workers from this process.

With --preload, main imports the app (and the post_fork hook) and calls serve:
the process answers HELLO and becomes its group's fork server, serving its
control channel (docs/protocol.md, "Preload: the fork server"):

- FORK {"id": n} with two descriptors attached, the new worker's control socket
  and the write end of its output pipe: fork, answer FORKED {"id": n, "pid": p}
  (or {"id": n, "error": ...}). The child returns from serve with its control
  channel, and main carries on with it as an ordinary worker.
- a child exits: reap it and send EXITED {"pid": p, "code": c}, c < 0 when
  signal -c killed it.
- PING: PONG. End of file: the front is gone, exit; the children die with the
  server (PR_SET_PDEATHSIG), and of their own control channel's end of file.

The server serves no request and starts no thread of its own: a fork copies
this thread, in the loop below, holding no lock of whisk's.
"""

import ctypes
import gc
import json
import os
import select
import signal
import socket
import sys
import traceback
from typing import Any, Dict, Optional, Tuple, Union

from .wire import HELLO, PING, PONG, ChannelClosed, Conn, ProtocolError, frame

# Fork server frames (docs/protocol.md); only this module and the Go front use them.
FORK = 0x07
FORKED = 0x08
EXITED = 0x09

PR_SET_PDEATHSIG = 1


def serve(conn: Conn, hello: Dict[str, Any]) -> Union[int, Conn]:
    """Send HELLO, then fork workers on request.

    Returns in each forked child, with its control channel; in the server only on a
    protocol error, with the exit code.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded once, before any fork
    gc.freeze()  # a child's collections never touch the app's objects: their pages stay shared
    server = os.getpid()
    children: Dict[int, int] = {}  # pidfd -> pid
    try:
        conn.send(frame(HELLO, 0, 0, json.dumps(hello).encode()))
        while True:
            if not conn.pending():
                ready, _, _ = select.select([conn.sock] + list(children), [], [])
                for fd in ready:
                    if fd in children:
                        reap(conn, children, fd)
                if conn.sock not in ready:
                    continue
            ftype, _, stream, payload = conn.recv_frame()
            if ftype == FORK:
                child = fork(conn, children, payload)
                if child is not None:
                    return become_worker(conn, children, child, server, prctl)
            elif ftype == PING:
                conn.send(frame(PONG, 0, stream, payload))
            else:
                raise ProtocolError("unexpected frame type 0x%02x on the fork server's control channel" % ftype)
    except ChannelClosed:
        os._exit(0)  # the front is gone; so are the children, of PR_SET_PDEATHSIG
    except (ProtocolError, ValueError, KeyError) as e:
        sys.stderr.write("whisk_worker: fork server: protocol error on the control channel, exiting: %s\n" % e)
        return 2


def fork(conn: Conn, children: Dict[int, int], payload: Any) -> Optional[Tuple[int, int]]:
    """Fork one worker. Return its (control, output) descriptors in the child, None in the server."""
    if len(conn.fds) < 2:
        raise ProtocolError("FORK frame without its two descriptors")
    fds = conn.fds.popleft(), conn.fds.popleft()
    fork_id = json.loads(bytes(payload))["id"]
    try:
        pid = os.fork()
    except OSError as e:
        pid, reply = -1, {"id": fork_id, "error": "fork: %s" % e}
    if pid == 0:
        return fds
    for fd in fds:
        os.close(fd)
    if pid > 0:
        children[os.pidfd_open(pid)] = pid  # opened before any reap: it is this child's
        reply = {"id": fork_id, "pid": pid}
    conn.send(frame(FORKED, 0, 0, json.dumps(reply).encode()))
    return None


def become_worker(conn: Conn, children: Dict[int, int], fds: Tuple[int, int], server: int, prctl: Any) -> Conn:
    """In a forked child: die with the server, drop its descriptors, put stdout and
    stderr on the worker's own pipe, and return the worker's control channel."""
    control, output = fds
    try:
        if prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
        if os.getppid() != server:
            os._exit(1)  # the server died before prctl: no signal will come
        conn.sock.close()
        for fd in list(children) + list(conn.fds):
            os.close(fd)
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        return Conn(socket.socket(fileno=control), bufsize=64 << 10, fds=True)
    except BaseException:
        traceback.print_exc()
        os._exit(1)  # never return into the server's loop


def reap(conn: Conn, children: Dict[int, int], pidfd: int) -> None:
    """Wait for the child whose pidfd is readable and report its exit."""
    pid = children.pop(pidfd)
    os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    exited = {"pid": pid, "code": os.waitstatus_to_exitcode(status)}
    conn.send(frame(EXITED, 0, 0, json.dumps(exited).encode()))
