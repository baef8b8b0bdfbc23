"""A fake front for tests: starts a worker process and speaks the wire protocol to it."""

import array
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
PYRT = os.path.dirname(HERE)  # the directory holding the whisk_worker package
APPS = os.path.join(HERE, "apps")
if PYRT not in sys.path:
    sys.path.insert(0, PYRT)

from whisk_worker import wire  # noqa: E402
from whisk_worker.wire import (  # noqa: E402
    ABORT, CANCEL, CHANNEL, CLOSE, CREDIT, DATA, END_STREAM, FAILED, FILE, HELLO, MESSAGE,  # noqa: F401 (re-exported)
    MORE, PING, PONG, REQUEST_WINDOW, RESPONSE, STOP, TEXT, Conn,
)

BOOT = ("import sys; sys.path.insert(0, %r); from whisk_worker.main import main; "
        "sys.exit(main(sys.argv[1:]))" % PYRT)
TIMEOUT = 10.0


def environ(method: str = "GET", path: str = "/", query: str = "", headers: Optional[Dict[str, str]] = None,
            body: bytes = b"", **extra: str) -> Dict[str, str]:
    """Return the environ meta a front would send (all str)."""
    env = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
        "CONTENT_TYPE": "", "CONTENT_LENGTH": str(len(body)) if body else "",
        "SERVER_NAME": "localhost", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", "wsgi.url_scheme": "http",
        "HTTP_HOST": "localhost:8080",
    }
    for k, v in (headers or {}).items():
        env["HTTP_" + k.upper().replace("-", "_")] = v
    env.update(extra)
    return env


def scope(kind: str = "http", path: str = "/", method: str = "GET", query: bytes = b"",
          headers: Optional[List[Tuple[bytes, bytes]]] = None, **extra: Any) -> Dict[str, Any]:
    """Return the ASGI scope meta a front would send (docs/protocol.md, "REQUEST meta: the scope")."""
    s: Dict[str, Any] = {
        "type": kind, "http_version": "1.1", "scheme": "http" if kind == "http" else "ws",
        "path": path, "raw_path": path.encode("utf-8"), "query_string": query, "root_path": "",
        "headers": [(b"host", b"localhost:8080")] + list(headers or []),
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
    }
    if kind == "http":
        s["method"] = method
    else:
        s["subprotocols"] = []
    s.update(extra)
    return s


class Response:
    """What the worker sent for one stream."""

    def __init__(self) -> None:
        self.status: Optional[str] = None
        self.headers: List[Tuple[str, str]] = []
        self.body = b""
        self.aborted: Optional[str] = None
        self.frames: List[Tuple[int, int, int]] = []  # type, flags, payload length
        self.file: Optional[Tuple[int, int, bytes]] = None  # offset, count, content

    def header(self, name: str) -> Optional[str]:
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return "<Response %r %r body=%r aborted=%r frames=%r>" % (
            self.status, self.headers, self.body[:200], self.aborted, self.frames)


class Channel:
    """The front's end of one request channel."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(TIMEOUT)
        self.sock = sock
        self.conn = Conn(sock, fds=True)
        self.stream = 0
        self.ended = True  # the front's half of the last stream ended

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self) -> Tuple[int, int, int, bytes]:
        ftype, flags, stream, payload = self.conn.recv_frame()
        return ftype, flags, stream, bytes(payload)

    def start(self, env: Dict[str, str], body: bytes = b"", inline: Optional[bool] = None,
              first: int = 1000) -> Tuple[int, int]:
        """Send REQUEST (and the DATA the window allows unasked); return (stream, body bytes sent).

        inline=False sends the body in DATA frames even when it is small.
        """
        self.stream += 1
        s = self.stream
        if inline is None:
            inline = len(body) <= REQUEST_WINDOW
        if inline:
            self.send(wire.request_frame(s, END_STREAM, env, body))
            self.ended = True
            return s, len(body)
        head = body[:min(first, len(body) // 2)]
        self.send(wire.request_frame(s, 0, env, head))
        self.ended = False
        return s, self.send_body(s, body, len(head), REQUEST_WINDOW - len(head))

    def send_body(self, s: int, body: bytes, pos: int, allowed: int) -> int:
        """Send DATA frames of body from pos, at most allowed bytes; return the new pos."""
        while not self.ended and (allowed > 0 or pos == len(body)):
            n = min(allowed, 20000, len(body) - pos)
            self.ended = pos + n == len(body)
            self.send(wire.frame(DATA, END_STREAM if self.ended else 0, s, body[pos:pos + n]))
            pos += n
            allowed -= n
        return pos

    def request(self, env: Optional[Dict[str, str]] = None, body: bytes = b"", grant: bool = True,
                inline: Optional[bool] = None, **kw: Any) -> Response:
        """Send a request and read the whole response; grant credit as bytes arrive."""
        if env is None:
            env = environ(body=body, **kw)
        s, pos = self.start(env, body, inline)
        return self.response(s, body, pos, grant)

    def response(self, s: int, body: bytes = b"", pos: int = 0, grant: bool = True,
                 limit: Optional[int] = None) -> Response:
        """Read frames of stream s until the worker's half ends (or limit frames)."""
        r = Response()
        while limit is None or len(r.frames) < limit:
            ftype, flags, stream, payload = self.recv()
            if stream != s:
                raise AssertionError("frame %d for stream %d while reading stream %d" % (ftype, stream, s))
            r.frames.append((ftype, flags, len(payload)))
            got = 0
            if ftype == RESPONSE:
                r.status, r.headers, first = wire.split_response(payload)
                r.body += first
                got = len(first)
            elif ftype == DATA:
                r.body += payload
                got = len(payload)
            elif ftype == FILE:
                fd = self.conn.fds.popleft()
                offset, count = wire.FILE_RANGE.unpack(payload)
                size = os.fstat(fd).st_size - offset if count < 0 else count
                r.file = (offset, count, os.pread(fd, size, offset))
                os.close(fd)
            elif ftype == CREDIT:
                pos = self.send_body(s, body, pos, wire.U32.unpack(payload)[0])
            elif ftype == ABORT:
                r.aborted = payload.decode()
                return r
            else:
                raise AssertionError("unexpected frame type %#x" % ftype)
            if grant and got:
                self.send(wire.credit_frame(s, got))
            if flags & END_STREAM:
                return r
        return r

    def closed(self) -> bool:
        """Report whether the worker closed the channel, skipping up to 10 frames sent before
        (waits up to TIMEOUT)."""
        try:
            for _ in range(10):
                self.recv()
        except wire.ChannelClosed:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


class Mux:
    """The front's end of an ASGI request channel: many streams at once.

    A reader thread sorts the worker's frames into one queue per stream (a FILE
    frame with its descriptor); tests read a stream's frames with next().
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.conn = Conn(sock, fds=True)
        self.lock = threading.Lock()  # held while sending
        self.queues: Dict[int, "queue.Queue[Any]"] = {}
        self.qlock = threading.Lock()
        self.last = 0
        self.order: List[Tuple[int, int]] = []  # (stream, type) of the frames in arrival order
        self.eof = threading.Event()
        self.body: Dict[int, Tuple[bytes, int, bool]] = {}  # stream -> request body, bytes sent, ended
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                ftype, flags, s, payload = self.conn.recv_frame()
                fd = self.conn.fds.popleft() if ftype == FILE else None
                self.order.append((s, ftype))
                self.q(s).put((ftype, flags, bytes(payload), fd))
        except (wire.ChannelClosed, wire.ProtocolError, OSError):
            pass
        finally:
            self.eof.set()
            with self.qlock:
                for q in self.queues.values():
                    q.put(None)

    def q(self, s: int) -> "queue.Queue[Any]":
        with self.qlock:
            q = self.queues.get(s)
            if q is None:
                q = self.queues[s] = queue.Queue()
                if self.eof.is_set():
                    q.put(None)
            return q

    def send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

    def next(self, s: int, timeout: float = TIMEOUT) -> Tuple[int, int, bytes, Optional[int]]:
        """Return the next frame of stream s: (type, flags, payload, fd)."""
        try:
            item = self.q(s).get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no frame for stream %d in %.1f s" % (s, timeout)) from None
        if item is None:
            raise wire.ChannelClosed("the worker closed the channel")
        return item

    def quiet(self, s: int, timeout: float = 0.3) -> bool:
        """Report whether no frame of stream s arrives within timeout."""
        try:
            item = self.q(s).get(timeout=timeout)
        except queue.Empty:
            return True
        q = self.q(s)
        with q.mutex:  # put it back first
            q.queue.appendleft(item)
            q.not_empty.notify()
        return False

    def open(self, sc: Dict[str, Any], body: bytes = b"", end: bool = True, first: int = 1000) -> int:
        """Send REQUEST (and the body the window allows unasked); return the stream id.

        A body that fits the window travels inline; a larger one, or end=False, in DATA frames.
        """
        self.last += 1
        s = self.last
        if end and len(body) <= REQUEST_WINDOW:
            self.send(wire.request_frame(s, END_STREAM, sc, body))
            self.body[s] = (body, len(body), True)
            return s
        head = body[:min(first, len(body))]
        self.send(wire.request_frame(s, 0, sc, head))
        self.body[s] = (body, len(head), False)
        if body:
            self.send_body(s, REQUEST_WINDOW - len(head), end)
        return s

    def send_body(self, s: int, allowed: int, end: bool = True) -> None:
        """Send DATA frames of stream s's body, at most allowed bytes (END_STREAM with the last
        if end)."""
        body, pos, ended = self.body[s]
        while not ended and (allowed > 0 or (pos == len(body) and end)):
            n = min(allowed, 20000, len(body) - pos)
            ended = pos + n == len(body) and end
            self.send(wire.frame(DATA, END_STREAM if ended else 0, s, body[pos:pos + n]))
            pos += n
            allowed -= n
            if pos == len(body) and not end:
                break
        self.body[s] = (body, pos, ended)

    def end_body(self, s: int, more: bytes = b"") -> None:
        """Send the rest of stream s's body with END_STREAM (credit permitting: tests keep it small)."""
        body, pos, _ = self.body[s]
        self.send(wire.frame(DATA, END_STREAM, s, more))
        self.body[s] = (body + more, pos + len(more), True)

    def request(self, sc: Optional[Dict[str, Any]] = None, body: bytes = b"", grant: bool = True,
                **kw: Any) -> Response:
        """Send a request and read the whole response."""
        return self.response(self.open(sc if sc is not None else scope(**kw), body), grant=grant)

    def get(self, path: str, query: bytes = b"", **kw: Any) -> Response:
        return self.request(scope(path=path, query=query, **kw))

    def response(self, s: int, grant: bool = True, limit: Optional[int] = None) -> Response:
        """Read frames of stream s until the worker's half ends (or limit frames), sending the
        request body as CREDIT allows and granting response credit as bytes arrive."""
        r = Response()
        r.credits = []  # type: ignore[attr-defined]
        while limit is None or len(r.frames) < limit:
            ftype, flags, payload, fd = self.next(s)
            r.frames.append((ftype, flags, len(payload)))
            got = 0
            if ftype == RESPONSE:
                r.status, r.headers, first = wire.split_response(payload)
                r.body += first
                got = len(first)
            elif ftype == DATA:
                r.body += payload
                got = len(payload)
            elif ftype == FILE:
                offset, count = wire.FILE_RANGE.unpack(payload)
                size = os.fstat(fd).st_size - offset if count < 0 else count
                r.file = (offset, count, os.pread(fd, size, offset))
                os.close(fd)
            elif ftype == CREDIT:
                n = wire.U32.unpack(payload)[0]
                r.credits.append(n)  # type: ignore[attr-defined]
                self.send_body(s, n)
            elif ftype == ABORT:
                r.aborted = payload.decode()
                return r
            else:
                raise AssertionError("unexpected frame type %#x in stream %d" % (ftype, s))
            if grant and got:
                self.send(wire.credit_frame(s, got))
            if flags & END_STREAM:
                return r
        return r

    def websocket(self, path: str = "/ws", query: bytes = b"", subprotocols: Tuple[str, ...] = ()) -> "WebSocket":
        """Open a WebSocket stream and read the worker's answer to the handshake."""
        s = self.open(scope("websocket", path, query=query, subprotocols=list(subprotocols)), end=False)
        ws = WebSocket(self, s)
        ws.head = self.response(s, limit=1)
        return ws

    def closed(self, timeout: float = TIMEOUT) -> bool:
        """Report whether the worker closed the channel within timeout."""
        return self.eof.wait(timeout)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class WebSocket:
    """One WebSocket stream of a Mux: MESSAGE frames both ways under credits, CLOSE."""

    def __init__(self, mux: Mux, s: int) -> None:
        self.mux = mux
        self.id = s
        self.head = Response()
        self.allowance = REQUEST_WINDOW  # message bytes the front may still send
        self.out: Deque[Tuple[int, bytes]] = deque()  # (flags, bytes) waiting for credit
        self.parts_in: List[int] = []  # sizes of the MESSAGE frames of the last message received
        self.credits: List[int] = []  # the worker's grants
        self.grant = True  # grant credit as messages arrive (the front writing to the client)

    def send(self, data: Any, part: int = 16384) -> None:
        """Queue a message (str: text) in parts of at most part bytes, and send what credit allows."""
        text = isinstance(data, str)
        raw = data.encode() if text else data
        flags = TEXT if text else 0
        chunks = [raw[i:i + part] for i in range(0, len(raw), part)] or [b""]
        for i, c in enumerate(chunks):
            self.out.append((flags | (MORE if i < len(chunks) - 1 else 0), c))
        self.pump()

    def pump(self) -> None:
        while self.out:
            flags, c = self.out[0]
            if len(c) > self.allowance:
                if self.allowance <= 0:
                    return
                # Send what the credit allows; the rest continues the message.
                self.out[0] = (flags, c[self.allowance:])
                flags, c = flags | MORE, c[:self.allowance]
            else:
                self.out.popleft()
            self.mux.send(wire.frame(MESSAGE, flags, self.id, c))
            self.allowance -= len(c)

    def recv(self, timeout: float = TIMEOUT) -> Tuple[Any, ...]:
        """Return the next message: ("text", str), ("bytes", b), ("close", code, reason), ("abort", msg)."""
        parts: List[bytes] = []
        self.parts_in = []
        first = None
        while True:
            ftype, flags, payload, _ = self.mux.next(self.id, timeout)
            if ftype == CREDIT:
                n = wire.U32.unpack(payload)[0]
                self.credits.append(n)
                self.allowance += n
                self.pump()
            elif ftype == MESSAGE:
                if self.grant and payload:
                    self.mux.send(wire.credit_frame(self.id, len(payload)))
                first = flags if first is None else first
                parts.append(payload)
                self.parts_in.append(len(payload))
                if not flags & MORE:
                    data = b"".join(parts)
                    return ("text", data.decode()) if first & TEXT else ("bytes", data)
            elif ftype == CLOSE:
                assert flags & END_STREAM, "CLOSE without END_STREAM"
                return ("close",) + wire.split_close(payload)
            elif ftype == ABORT:
                return ("abort", payload.decode())
            else:
                raise AssertionError("unexpected frame type %#x in WebSocket stream %d" % (ftype, self.id))

    def close(self, code: int, reason: str = "") -> None:
        self.mux.send(wire.close_frame(self.id, code, reason))


class Worker:
    """A worker process started the way the Go front starts it."""

    def __init__(self, app: str, *args: str, window: int = 1 << 20, threads: int = 1, processes: int = 1,
                 pythonpath: Tuple[str, ...] = (APPS,), cwd: Optional[str] = None,
                 python: str = sys.executable, env: Optional[Dict[str, str]] = None) -> None:
        """Start a worker; env holds variables added to this process's environment."""
        self.ctl, child = socket.socketpair()
        self.ctl.settimeout(TIMEOUT)
        cmd = [python, "-u", "-c", BOOT, "--control-fd", str(child.fileno()), "--app", app,
               "--window", str(window), "--threads", str(threads), "--processes", str(processes)]
        for p in pythonpath:
            cmd += ["--pythonpath", p]
        cmd += list(args)
        self.proc = subprocess.Popen(cmd, pass_fds=[child.fileno()], cwd=cwd or HERE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, **env) if env else None)
        child.close()
        self.conn = Conn(self.ctl, fds=True)
        self.stdout: List[str] = []
        self.stderr: List[str] = []
        self._readers = [threading.Thread(target=self._read, args=(f, out), daemon=True)
                         for f, out in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))]
        for t in self._readers:
            t.start()
        self.channels: List[Channel] = []

    @staticmethod
    def _read(f: Any, out: List[str]) -> None:
        for line in f:
            out.append(line.decode("utf-8", "replace"))

    def recv(self) -> Tuple[int, int, int, bytes]:
        ftype, flags, stream, payload = self.conn.recv_frame()
        return ftype, flags, stream, bytes(payload)

    def hello(self) -> Dict[str, Any]:
        """Read the first control frame; it must be HELLO."""
        ftype, _, stream, payload = self.recv()
        if ftype != HELLO:
            raise AssertionError("want HELLO, got %#x %s; stderr:\n%s" % (ftype, payload, self.err()))
        return json.loads(payload)

    def failed(self) -> Dict[str, Any]:
        """Read the first control frame; it must be FAILED."""
        ftype, _, _, payload = self.recv()
        if ftype != FAILED:
            raise AssertionError("want FAILED, got %#x %s" % (ftype, payload))
        return json.loads(payload)

    def channel(self, id: int = 1) -> Channel:
        """Hand the worker a new request channel; return the front's end."""
        mine, theirs = socket.socketpair()
        data = wire.frame(CHANNEL, 0, 0, json.dumps({"id": id}).encode())
        self.ctl.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [theirs.fileno()]))])
        theirs.close()
        ch = Channel(mine)
        self.channels.append(ch)
        return ch

    def mux(self, id: int = 1) -> Mux:
        """Hand the worker a new request channel for ASGI; return the front's end."""
        mine, theirs = socket.socketpair()
        data = wire.frame(CHANNEL, 0, 0, json.dumps({"id": id}).encode())
        self.ctl.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [theirs.fileno()]))])
        theirs.close()
        m = Mux(mine)
        self.channels.append(m)  # type: ignore[arg-type]
        return m

    def ping(self, payload: bytes = b"hi") -> bytes:
        self.ctl.sendall(wire.frame(PING, 0, 0, payload))
        ftype, _, _, got = self.recv()
        assert ftype == PONG, ftype
        return got

    def stop(self) -> None:
        self.ctl.sendall(wire.frame(STOP, 0, 0))

    def wait(self, timeout: float = TIMEOUT) -> int:
        code = self.proc.wait(timeout)
        for t in self._readers:
            t.join(timeout)
        return code

    def err(self) -> str:
        return "".join(self.stderr)

    def wait_stderr(self, text: str, timeout: float = TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            e = self.err()
            if text in e:
                return e
            time.sleep(0.01)
        raise AssertionError("%r not in stderr:\n%s" % (text, self.err()))

    def close(self) -> None:
        """Close the control channel (the front died) and reap the process."""
        for ch in self.channels:
            ch.close()
        self.ctl.close()
        try:
            self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for t in self._readers:
            t.join(TIMEOUT)
        self.proc.stdout.close()
        self.proc.stderr.close()
