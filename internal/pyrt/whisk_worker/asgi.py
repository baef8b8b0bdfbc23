"""ASGI 3 over request channels: one asyncio event loop, many streams per channel.

The loop runs on its own thread (the control channel stays on the main
thread); its default executor has --threads threads. Each request channel is
a non-blocking socket watched with add_reader/add_writer (not an asyncio
transport: FILE frames carry a descriptor, sent with sendmsg), an incremental
frame parser, and a write queue that sends at once when it is empty. Each
stream is a task running app(scope, receive, send), with its own credits in
both directions (docs/protocol.md, "ASGI").

Per request: one marshal.loads for the scope, the task, and for a small
response one RESPONSE frame with END_STREAM (http.response.start is held
until the first body). Nothing loops over headers in Python.
"""

import array
import asyncio
import concurrent.futures
import itertools
import marshal
import os
import socket
import stat
import threading
import traceback
from collections import deque
from typing import Any, Awaitable, Callable, Deque, Dict, List, Optional, Tuple

from .wire import (
    ABORT, CANCEL, CANCEL_TIMEOUT, CLOSE, CREDIT, DATA, END_STREAM, FILE, FILE_RANGE, HEADER, HEADER_SIZE,
    HEADER_U32, MAX_PAYLOAD, MESSAGE, MORE, NAMES, PING, PONG, REQUEST, RESPONSE, TEXT, U32, VERSION,
    ProtocolError, close_frame, credit_frame, frame, split_close,
)
from .wsgi import ClientDisconnected, _log

READ_SIZE = 256 << 10  # bytes per recv
SMALL = 32 << 10  # frames up to this size are joined into one buffer; larger are sent as parts
FRAME_MAX = 1 << 20  # body or message bytes per frame
HEAD_MAX = FRAME_MAX - 4  # largest response head
HIGH_WATER = 1 << 20  # a send() that leaves more than this queued on its channel waits ...
LOW_WATER = 256 << 10  # ... until the queue is down to this
SHUTDOWN_WAIT = 10.0  # seconds lifespan shutdown may take
LIFESPAN_ASGI = {"version": "3.0", "spec_version": "2.0"}
_RUNTIME = os.path.dirname(os.path.abspath(__file__)) + os.sep
_NO_HEADERS: list = []
_pack = HEADER.pack
_pack_u32 = HEADER_U32.pack
_unpack_header = HEADER.unpack_from
_SCM_RIGHTS = socket.SOL_SOCKET, socket.SCM_RIGHTS
_TIMEOUT = bytes((CANCEL_TIMEOUT,))


def new_loop() -> asyncio.AbstractEventLoop:
    """Return a new event loop: uvloop's when it is installed."""
    try:
        import uvloop  # type: ignore
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Worker:
    """The per-process ASGI state: the loop and its thread, lifespan, the channels."""

    def __init__(self, app: Callable, window: int, threads: int) -> None:
        self.app = app
        self.window = window
        self.loop = new_loop()
        self.loop.set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max(1, threads), thread_name_prefix="whisk-asgi"))
        self.thread = threading.Thread(target=self._run, name="whisk-asgi-loop", daemon=True)
        self.lifespan = Lifespan(app)
        self.state: Optional[dict] = None  # lifespan's state, when the app supports lifespan
        self.channels: List[Channel] = []
        self.busy = 0  # streams whose task runs, not counting those cancelled for a timeout
        self.stopping = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self, control: Any) -> Optional[Tuple[str, Optional[BaseException]]]:
        """Start the loop and run lifespan startup (the main thread calls it).

        Return None when the worker may serve, or (message, exception or
        None) when startup failed. control is the control channel's Conn,
        watched for the front's end while startup runs.
        """
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(self.lifespan.startup(), self.loop)
        while True:
            try:
                failure = fut.result(0.5)
                break
            except concurrent.futures.TimeoutError:
                control.pending()  # raises ChannelClosed when the front is gone
        if failure is None and self.lifespan.supported:
            self.state = self.lifespan.state
        return failure

    def stop(self) -> "concurrent.futures.Future":
        """Take no new stream (the main thread, at STOP). The requests the front
        sent before STOP are in the channels' sockets: they are read first, and
        served. Return the future of that step."""
        return asyncio.run_coroutine_threadsafe(self._stop(), self.loop)

    async def _stop(self) -> None:
        for chan in self.channels[:]:
            while not chan.closed and chan.readable():
                pass
        self.stopping = True
        self.loop.create_task(self._close_websockets())

    async def _close_websockets(self) -> None:
        """Once no HTTP stream runs (the grace period), close the open
        WebSockets with 1001: the app's receive() returns websocket.disconnect
        and the front relays the close to the client."""
        while any(not st.ws or not st.accepted for chan in self.channels for st in chan.streams.values()
                   if not st.ended):
            await asyncio.sleep(0.05)
        for chan in self.channels:
            for st in list(chan.streams.values()):
                if st.ws and not st.ended and not st.gone():
                    st.going_away()

    def shutdown(self) -> "concurrent.futures.Future":
        """Start lifespan shutdown (the main thread, after STOP); it waits at most
        SHUTDOWN_WAIT for the app. Return its future."""
        return asyncio.run_coroutine_threadsafe(self.lifespan.shutdown(SHUTDOWN_WAIT), self.loop)

    def serve_channel(self, sock: socket.socket, name: str) -> None:
        """Serve a request channel from the loop (the main thread calls it)."""
        self.loop.call_soon_threadsafe(self._open, sock, name)

    def _open(self, sock: socket.socket, name: str) -> None:
        self.channels.append(Channel(self, sock, name))

    def idle(self) -> bool:
        """Report whether no task runs and no output waits to be sent, not
        counting tasks cancelled for a timeout: the front gave up on them."""
        return self.busy == 0 and not any(c.wsize for c in self.channels[:])


class Lifespan:
    """The ASGI lifespan protocol: one call of the app with a lifespan scope."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.state: dict = {}
        self.supported = False
        self.received = False  # the app called receive()
        self.task: Optional[asyncio.Task] = None
        self.inbox: Deque[dict] = deque()
        self.waiter: Optional[asyncio.Future] = None
        self.replies: Dict[str, asyncio.Future] = {}  # "startup"/"shutdown" -> (ok, message)

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(LIFESPAN_ASGI), "state": self.state}
        await self.app(scope, self.receive, self.send)

    async def receive(self) -> dict:
        self.received = True
        while not self.inbox:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return self.inbox.popleft()

    async def send(self, message: dict) -> None:
        kind = message["type"]
        phase, _, outcome = kind[len("lifespan."):].partition(".")
        reply = self.replies.get(phase)
        if not kind.startswith("lifespan.") or reply is None or outcome not in ("complete", "failed"):
            raise RuntimeError("unexpected ASGI message %r in the lifespan protocol" % kind)
        if not reply.done():
            reply.set_result((outcome == "complete", str(message.get("message") or "")))

    def _push(self, phase: str) -> asyncio.Future:
        reply = self.replies[phase] = asyncio.get_running_loop().create_future()
        self.inbox.append({"type": "lifespan." + phase})
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        return reply

    async def startup(self) -> Optional[Tuple[str, Optional[BaseException]]]:
        """Send lifespan.startup; return None (serve) or (message, exception) (failed)."""
        reply = self._push("startup")
        task = self.task = asyncio.ensure_future(self._main())
        task.add_done_callback(_retrieve)
        await asyncio.wait([reply, task], return_when=asyncio.FIRST_COMPLETED)
        if reply.done():
            ok, message = reply.result()
            if ok:
                self.supported = True
                return None
            # Starlette sends the traceback as the message, then raises: report the exception.
            await asyncio.wait([task], timeout=1.0)
            exc = _exception(task)
            if exc is not None:
                return "%s: %s" % (type(exc).__name__, exc), exc
            lines = message.strip().splitlines()
            return (lines[-1] if lines else "the app sent lifespan.startup.failed"), None
        exc = _exception(task)
        if exc is not None and self.received:
            return "%s: %s" % (type(exc).__name__, exc), exc
        why = ("before it called receive(), it raised %s: %s" % (type(exc).__name__, exc) if exc is not None
               else "it returned without answering lifespan.startup")
        _log("whisk_worker: the ASGI app does not support lifespan (%s); serving without it"
             % " ".join(why.split())[:500])
        return None

    async def shutdown(self, timeout: float) -> None:
        """Send lifespan.shutdown and wait, at most timeout seconds, for the answer."""
        task = self.task
        if not self.supported or task is None or task.done():
            return
        reply = self._push("shutdown")
        await asyncio.wait([reply, task], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if reply.done():
            ok, message = reply.result()
            if not ok:
                _log("whisk_worker: ASGI lifespan shutdown failed: %s" % message)
        elif task.done():
            exc = _exception(task)
            if exc is not None:
                _log("whisk_worker: ASGI lifespan shutdown failed: %s: %s\n%s"
                     % (type(exc).__name__, exc, _format(exc)))
        else:
            _log("whisk_worker: ASGI lifespan shutdown did not complete in %g s" % timeout)


class Channel:
    """One request channel: frames in, frames out, many streams at once."""

    def __init__(self, worker: Worker, sock: socket.socket, name: str) -> None:
        self.worker = worker
        self.loop = worker.loop
        self.app = worker.app
        self.window = worker.window
        self.sock = sock
        self.name = name
        self.fd = sock.fileno()
        self.streams: Dict[int, Stream] = {}
        self.last = 0  # the last stream id opened
        self.chunks: List[bytes] = []  # received bytes of an incomplete frame
        self.have = 0  # their total size
        self.need = HEADER_SIZE  # bytes that complete the frame in chunks
        self.wq: Deque[Tuple[Any, int]] = deque()  # (bytes, fd or -1) waiting to be sent
        self.wsize = 0  # bytes in wq
        self.drainers: List[asyncio.Future] = []
        self.flushing = False  # a flush is scheduled
        self.writing = False  # waiting for the socket to be writable
        self.closed = False
        sock.setblocking(False)
        self.loop.add_reader(self.fd, self.readable)

    # Reading.

    def readable(self) -> bool:
        """Read once from the socket and handle the whole frames; report whether
        anything was read."""
        try:
            data = self.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as e:
            self.close("reading it failed: %s" % e)
            return False
        if not data:
            self.close(None)
            return False
        if self.have + len(data) < self.need:
            self.chunks.append(data)
            self.have += len(data)
            return True
        if self.chunks:
            self.chunks.append(data)
            data = b"".join(self.chunks)
            self.chunks = []
        try:
            pos = self.parse(data)
        except ProtocolError as e:
            self.close("protocol error: %s" % e)
            return False
        except Exception:
            self.close("bug in whisk_worker:\n" + traceback.format_exc())
            return False
        if pos < len(data) and not self.closed:
            self.chunks = [data[pos:]]
            self.have = len(data) - pos
        else:
            self.have = 0
        return True

    def parse(self, data: bytes) -> int:
        """Handle the whole frames at the start of data; return where the rest starts."""
        pos, size = 0, len(data)
        while size - pos >= HEADER_SIZE:
            version, ftype, flags, sid, length = _unpack_header(data, pos)
            if version != VERSION:
                raise ProtocolError("wire version %d, want %d" % (version, VERSION))
            if length > MAX_PAYLOAD:
                raise ProtocolError("frame payload of %d bytes exceeds the 16 MiB limit" % length)
            end = pos + HEADER_SIZE + length
            if end > size:
                self.need = end - pos
                return pos
            self.frame(ftype, flags, sid, data[pos + HEADER_SIZE:end])
            if self.closed:
                return size
            pos = end
        self.need = HEADER_SIZE
        return pos

    def frame(self, ftype: int, flags: int, sid: int, payload: bytes) -> None:
        if ftype == REQUEST:
            self.request(flags, sid, payload)
            return
        s = self.streams.get(sid)
        live = s is not None and not s.ended  # else the frame is stale: dropped
        if ftype == CREDIT:
            if len(payload) != 4:
                raise ProtocolError("CREDIT payload of %d bytes, want 4" % len(payload))
            if live:
                s.credit += U32.unpack(payload)[0]
                s.wake()
        elif ftype == DATA or ftype == MESSAGE or ftype == CLOSE:
            if live and not s.front_ended:
                if (ftype == DATA) == s.ws:
                    raise ProtocolError("%s frame in %s stream %d" % (NAMES[ftype], s.scope["type"], sid))
                if ftype == CLOSE:
                    s.closed_by_front(payload)
                else:
                    s.feed(flags, payload)
        elif ftype == CANCEL:
            if live:
                if payload[:1] == _TIMEOUT:
                    s.timeout()
                else:
                    s.disconnect()
        elif ftype == PING:
            self.write(frame(PONG, 0, sid, payload))
        else:
            raise ProtocolError("unexpected %s frame on a request channel" % NAMES.get(ftype, hex(ftype)))

    def request(self, flags: int, sid: int, payload: bytes) -> None:
        """Open a stream: decode the scope and start the app's task."""
        if sid <= self.last:
            raise ProtocolError("REQUEST for stream %d, not above the channel's last stream %d" % (sid, self.last))
        self.last = sid
        n = U32.unpack_from(payload)[0] if len(payload) >= 4 else 0
        if 4 + n > len(payload):
            raise ProtocolError("REQUEST meta length %d exceeds the payload" % n)
        try:
            scope = marshal.loads(memoryview(payload)[4:4 + n])
        except (ValueError, EOFError, TypeError) as e:
            raise ProtocolError("REQUEST meta is not a marshal dict: %s" % e) from None
        kind = scope.get("type") if type(scope) is dict else None
        if kind == "http":
            s: Stream = HTTPStream(self, sid, scope)
            scope["extensions"] = {"http.response.pathsend": {}}
        elif kind == "websocket":
            s = WebSocketStream(self, sid, scope)
            scope["extensions"] = {"websocket.http.response": {}}
        else:
            raise ProtocolError("REQUEST meta is not an http or websocket scope")
        worker = self.worker
        if worker.stopping:
            self.write(frame(ABORT, 0, sid, b"the worker is stopping"))
            return
        scope["asgi"] = {"version": "3.0", "spec_version": "2.4"}
        if worker.state is not None:
            scope["state"] = worker.state.copy()
        s.open(payload[4 + n:], flags & END_STREAM)
        try:
            task = self.loop.create_task(self.app(scope, s.receive, s.send))
        except Exception as e:  # the call raised, or did not return a coroutine
            _log("error in app handling %s:\n%s" % (describe(scope), _format(e)))
            s.abort("%s: %s" % (type(e).__name__, e))
            return
        s.task = task
        self.streams[sid] = s
        worker.busy += 1
        task.add_done_callback(s.done)

    # Writing.

    def write(self, *parts: Any, fd: int = -1) -> None:
        """Queue parts (bytes-like) to be sent once the loop's current round of
        callbacks is done: the responses of the streams that ran in it go out
        in one sendmsg. fd, if given, travels with the first byte and is closed
        once sent."""
        if self.closed:
            if fd >= 0:
                os.close(fd)
            return
        if not self.wq and not self.flushing:
            self.flushing = True
            self.loop.call_soon(self.flush)
        for p in parts:
            if len(p):
                self.wq.append((p, fd))
                self.wsize += len(p)
                fd = -1
        if fd >= 0:  # only empty parts: no byte to carry the descriptor (never sent so)
            os.close(fd)

    def flush(self) -> None:
        """Send what the socket takes now; wait for it to be writable for the rest."""
        self.flushing = False
        if not self.closed:
            self.writable()

    def write_frame(self, ftype: int, flags: int, sid: int, payload: Any) -> None:
        if len(payload) <= SMALL:
            self.write(_pack(VERSION, ftype, flags, sid, len(payload)) + payload)
        else:
            self.write(_pack(VERSION, ftype, flags, sid, len(payload)), payload)

    def writable(self) -> None:
        wq = self.wq
        while wq:
            fd = wq[0][1]
            bufs = [wq[0][0]]
            for item in itertools.islice(wq, 1, 64):
                if item[1] >= 0:
                    break  # a descriptor starts its own sendmsg
                bufs.append(item[0])
            try:
                if fd >= 0:
                    n = self.sock.sendmsg(bufs, [_SCM_RIGHTS + (array.array("i", [fd]),)])
                    os.close(fd)
                    wq[0] = (wq[0][0], -1)
                else:
                    n = self.sock.sendmsg(bufs)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self.close("writing it failed: %s" % e)
                return
            self.wsize -= n
            full = n < sum(len(b) for b in bufs)
            while n:
                data = wq[0][0]
                if n >= len(data):
                    n -= len(data)
                    wq.popleft()
                else:
                    wq[0] = (memoryview(data)[n:], -1)
                    n = 0
            if full:
                break
        if not wq:
            if self.writing:
                self.writing = False
                self.loop.remove_writer(self.fd)
        elif not self.writing:
            self.writing = True
            self.loop.add_writer(self.fd, self.writable)
        if self.wsize <= LOW_WATER and self.drainers:
            self.wake_drainers()

    def wake_drainers(self) -> None:
        drainers, self.drainers = self.drainers, []
        for f in drainers:
            if not f.done():
                f.set_result(None)

    async def drain(self) -> None:
        """Wait until the channel's queued output is down to LOW_WATER."""
        while self.wsize > LOW_WATER and not self.closed:
            f = self.loop.create_future()
            self.drainers.append(f)
            await f

    def close(self, reason: Optional[str]) -> None:
        """Close the channel (reason None: the front closed it) and cancel its tasks."""
        if self.closed:
            return
        self.closed = True
        if reason is not None:
            _log("whisk_worker: request channel %s: %s; closing it%s"
                 % (self.name, reason, "" if not self.streams else " and cancelling %d streams" % len(self.streams)))
        elif self.streams:
            _log("whisk_worker: request channel %s closed by the front; cancelling its %d streams"
                 % (self.name, len(self.streams)))
        self.loop.remove_reader(self.fd)
        self.loop.remove_writer(self.fd)
        for _, fd in self.wq:
            if fd >= 0:
                os.close(fd)
        self.wq.clear()
        self.wsize = 0
        self.sock.close()
        self.wake_drainers()
        for s in list(self.streams.values()):
            s.task.cancel()
        try:
            self.worker.channels.remove(self)
        except ValueError:
            pass


class Stream:
    """One stream of a channel: the app's task, its receive and send, and credits."""

    __slots__ = ("chan", "id", "scope", "task", "credit", "inbox", "front_ended", "ended", "cancelled",
                 "timed_out", "waiters", "status", "headers", "head_sent", "is_head")
    ws = False

    def __init__(self, chan: Channel, sid: int, scope: dict) -> None:
        self.chan = chan
        self.id = sid
        self.scope = scope
        self.task: Any = None
        self.credit = chan.window  # response bytes the front accepts
        self.inbox: Deque[Any] = deque()
        self.front_ended = False  # the front's half ended
        self.ended = False  # the worker's half ended
        self.cancelled = False  # CANCEL: the client left (or the request timed out)
        self.timed_out = False
        self.waiters: List[asyncio.Future] = []
        self.status: Any = None
        self.headers: Any = None
        self.head_sent = False
        self.is_head = False

    receive: Callable[[], Awaitable[dict]]
    send: Callable[[dict], Awaitable[None]]

    def open(self, first: bytes, end: int) -> None:
        """Take the REQUEST's first bytes; end: END_STREAM was set."""
        raise NotImplementedError

    def feed(self, flags: int, payload: bytes) -> None:
        """Take a DATA or MESSAGE frame."""
        raise NotImplementedError

    def closed_by_front(self, payload: bytes) -> None:
        raise NotImplementedError

    def gone(self) -> bool:
        """Report whether the client left."""
        return self.cancelled

    def wake(self) -> None:
        """Wake the task's receive() or send() waiting for a frame."""
        waiters = self.waiters
        if waiters:
            self.waiters = []
            for f in waiters:
                if not f.done():
                    f.set_result(None)

    async def wait(self) -> None:
        f = self.chan.loop.create_future()
        self.waiters.append(f)
        await f

    def disconnect(self) -> None:
        """An empty CANCEL: the client left."""
        self.cancelled = True
        self.wake()

    def timeout(self) -> None:
        """A TIMEOUT CANCEL: log the task's stack and cancel it."""
        if self.timed_out:
            return
        self.timed_out = self.cancelled = True
        self.chan.worker.busy -= 1
        _log("whisk_worker: %s timed out; cancelling its task. Its stack, most recent call last:\n%s"
             % (describe(self.scope), task_stack(self.task)))
        self.task.cancel()
        self.wake()

    def end(self) -> None:
        self.ended = True
        self.wake()

    def abort(self, message: str) -> None:
        """End the worker's half with ABORT carrying a one-line message."""
        text = " ".join(message.split())[:1000]
        self.chan.write(frame(ABORT, 0, self.id, text.encode("utf-8", "replace")))
        self.end()

    def done(self, task: asyncio.Task) -> None:
        """The app's task ended: end the worker's half if the app did not."""
        chan = self.chan
        chan.streams.pop(self.id, None)
        if not self.timed_out:
            chan.worker.busy -= 1
        cancelled = task.cancelled()
        exc = None if cancelled else task.exception()
        failed = exc is not None and not self.quiet(exc)
        if failed:
            _log("error in app handling %s:\n%s" % (describe(self.scope), _format(exc)))
        if self.timed_out:
            _log("whisk_worker: %s: the app's task was cancelled and has ended" % describe(self.scope))
        if self.ended or chan.closed:
            return
        if self.timed_out:
            self.abort("request timed out")
        elif cancelled or self.cancelled:
            self.abort("request cancelled")
        elif failed:
            self.abort("%s: %s" % (type(exc).__name__, exc))
        else:
            self.finish()

    def quiet(self, exc: BaseException) -> bool:
        """Report whether exc, raised by the app, follows from the client leaving
        (as for WSGI, it is then neither logged nor reported)."""
        return self.cancelled

    def finish(self) -> None:
        """End the worker's half of a stream whose app returned without ending it."""
        raise NotImplementedError

    def head(self) -> bytes:
        """Return the RESPONSE head: marshal version 2 of (str(status), headers)."""
        status = str(self.status)
        try:
            head = marshal.dumps((status, self.headers), 2)
        except ValueError:  # an iterable marshal refuses, str or bytes subclasses
            head = marshal.dumps((status, _plain_headers(self.headers)), 2)
        if len(head) > HEAD_MAX:
            raise ValueError("the response head is %d bytes, over the frame limit" % len(head))
        return head

    async def wait_credit(self) -> None:
        """Wait until the front grants response credit; raise ClientDisconnected if it left."""
        while self.credit <= 0:
            if self.gone():
                raise ClientDisconnected("the client disconnected")
            await self.wait()

    async def body(self, data: bytes, end: int) -> None:
        """Send body bytes, the head first if it was not sent, in frames no larger
        than the credit; end=END_STREAM ends the worker's half."""
        chan = self.chan
        size = len(data)
        view = memoryview(data) if size > SMALL else data
        pos = 0
        if not self.head_sent:
            head = self.head()
            self.head_sent = True
            if self.is_head:
                chan.write(_pack_u32(VERSION, RESPONSE, END_STREAM, self.id, 4 + len(head), len(head)) + head)
                self.end()
                return
            pos = min(size, max(self.credit, 0), FRAME_MAX - 4 - len(head))
            flags = end if pos == size else 0
            hdr = _pack_u32(VERSION, RESPONSE, flags, self.id, 4 + len(head) + pos, len(head))
            if pos > SMALL:
                chan.write(hdr, head, view[:pos])
            else:
                chan.write(hdr + head + view[:pos])
            self.credit -= pos
            if flags:
                self.end()
        while not self.ended:
            left = size - pos
            if left and self.credit <= 0:
                await self.wait_credit()
            n = min(left, self.credit, FRAME_MAX) if left else 0
            last = n == left
            if n or (last and end):
                chan.write_frame(DATA, end if last else 0, self.id, view[pos:pos + n])
                self.credit -= n
                pos += n
            if last:
                if end:
                    self.end()
                break
        if chan.wsize > HIGH_WATER:
            await chan.drain()


class HTTPStream(Stream):
    """An http scope: http.request in, http.response.* out."""

    __slots__ = ("body_done",)

    def __init__(self, chan: Channel, sid: int, scope: dict) -> None:
        super().__init__(chan, sid, scope)
        self.body_done = False  # the app got the body's last http.request
        self.is_head = scope.get("method") == "HEAD"

    def open(self, first: bytes, end: int) -> None:
        self.feed(end, first)

    def feed(self, flags: int, payload: bytes) -> None:
        """REQUEST's first bytes or a DATA frame (flags END_STREAM ends the body)."""
        if payload:
            self.inbox.append(payload)
        if flags & END_STREAM:
            self.front_ended = True
        self.wake()

    async def receive(self) -> dict:
        while True:
            if self.cancelled:
                return {"type": "http.disconnect"}
            if self.inbox:
                data = self.inbox.popleft()
                if not self.front_ended:
                    if not self.ended:
                        self.chan.write(credit_frame(self.id, len(data)))
                    more = True
                else:
                    more = bool(self.inbox)
                    self.body_done = not more
                return {"type": "http.request", "body": data, "more_body": more}
            if self.front_ended and not self.body_done:
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self.ended:
                return {"type": "http.disconnect"}
            await self.wait()

    async def send(self, message: dict) -> None:
        if self.cancelled:
            raise ClientDisconnected("the request timed out" if self.timed_out else "the client disconnected")
        kind = message["type"]
        if kind == "http.response.body":
            if self.ended:
                if self.is_head:
                    return  # the head went alone, with END_STREAM
                raise RuntimeError("http.response.body sent after the response ended")
            if self.status is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            body = message.get("body", b"")
            if type(body) is not bytes:
                body = _as_bytes(body)
            if message.get("more_body", False):
                await self.body(body, 0)
                return
            size = len(body)
            if not self.head_sent and size <= SMALL and size <= self.credit and not self.is_head:
                # The common case: head, whole body and END_STREAM in one frame.
                head = self.head()
                self.chan.write(b"".join((
                    _pack_u32(VERSION, RESPONSE, END_STREAM, self.id, 4 + len(head) + size, len(head)), head, body)))
                self.head_sent = True
                self.end()
                return
            await self.body(body, END_STREAM)
        elif kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("http.response.start sent twice")
            self.status = message["status"]
            self.headers = message.get("headers") or _NO_HEADERS
        elif kind == "http.response.pathsend":
            self.pathsend(message["path"])
        else:
            raise RuntimeError("unexpected ASGI message type %r in an http stream" % kind)

    def pathsend(self, path: Any) -> None:
        """Open the file and hand its descriptor to the front (FILE frame, END_STREAM)."""
        if self.status is None:
            raise RuntimeError("http.response.pathsend sent before http.response.start")
        if self.ended:
            if self.is_head:
                return
            raise RuntimeError("http.response.pathsend sent after the response ended")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError("http.response.pathsend: %r is not a regular file" % (path,))
            head = b""
            if not self.head_sent:
                h = self.head()
                head = _pack_u32(VERSION, RESPONSE, END_STREAM if self.is_head else 0, self.id, 4 + len(h), len(h)) + h
        except BaseException:
            os.close(fd)
            raise
        self.head_sent = True
        if self.is_head:
            os.close(fd)
            self.chan.write(head)
        else:  # the descriptor travels with the head's first byte; the channel closes it once sent
            self.chan.write(head + frame(FILE, END_STREAM, self.id, FILE_RANGE.pack(0, -1)), fd=fd)
        self.end()

    def finish(self) -> None:
        if self.status is None:
            self.abort("the app returned without sending http.response.start")
        else:
            self.abort("the app returned without completing the response")


class WebSocketStream(Stream):
    """A websocket scope: connect, accept, messages both ways, close."""

    __slots__ = ("connected", "accepted", "code", "reason", "parts", "text", "lock")
    ws = True

    def __init__(self, chan: Channel, sid: int, scope: dict) -> None:
        super().__init__(chan, sid, scope)
        self.connected = False  # receive() returned websocket.connect
        self.accepted = False
        self.code = 1006  # the front's close code and reason
        self.reason = ""
        self.parts: Optional[List[bytes]] = None  # a message being assembled
        self.text = 0
        self.lock: Optional[asyncio.Lock] = None  # held while a message goes out in parts

    def gone(self) -> bool:
        return self.cancelled or self.front_ended

    def quiet(self, exc: BaseException) -> bool:
        # After the client's close, what the app raises is most likely how it
        # learnt of it (ClientDisconnected from send(), Starlette's
        # WebSocketDisconnect from receive_text()): not logged, and the stream
        # ends with CLOSE, as if the app returned.
        return self.gone()

    def open(self, first: bytes, end: int) -> None:
        if end:  # a REQUEST with END_STREAM: the front's half is already over
            self.front_ended = True

    def feed(self, flags: int, payload: bytes) -> None:
        """A MESSAGE frame."""
        self.inbox.append((flags, payload))
        self.wake()

    def closed_by_front(self, payload: bytes) -> None:
        self.code, self.reason = split_close(payload)
        self.front_ended = True
        self.wake()

    def going_away(self) -> None:
        """The worker stops: close with 1001, to the front and to the app."""
        self.code, self.reason = 1001, "server shutting down"
        self.chan.write(close_frame(self.id, self.code, self.reason))
        self.front_ended = True
        self.end()

    def disconnect_message(self) -> dict:
        return {"type": "websocket.disconnect", "code": self.code, "reason": self.reason}

    async def receive(self) -> dict:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        while True:
            if self.cancelled:
                return self.disconnect_message()
            inbox = self.inbox
            while inbox:
                flags, data = inbox.popleft()
                if data and not self.front_ended and not self.ended:
                    self.chan.write(credit_frame(self.id, len(data)))
                if self.parts is None:
                    if not flags & MORE:
                        return _ws_message(data, flags & TEXT)
                    self.parts, self.text = [data], flags & TEXT
                    continue
                self.parts.append(data)
                if not flags & MORE:
                    data, self.parts = b"".join(self.parts), None
                    return _ws_message(data, self.text)
            if self.front_ended:
                return self.disconnect_message()
            await self.wait()

    async def send(self, message: dict) -> None:
        kind = message["type"]
        if self.gone():
            if kind == "websocket.close":
                if self.accepted and not self.ended and not self.cancelled:
                    self.chan.write(close_frame(self.id, self.code, self.reason))  # echo the front's close
                    self.end()
                return
            raise ClientDisconnected("the WebSocket client went away (code %d)" % self.code)
        if self.ended:
            raise RuntimeError("%s sent after the WebSocket closed or its response ended" % kind)
        if kind == "websocket.send":
            if not self.accepted:
                raise RuntimeError("websocket.send sent before websocket.accept")
            data = message.get("bytes")
            flags = 0
            if data is None:
                text = message.get("text")
                if text is None:
                    raise TypeError("websocket.send needs 'bytes' or 'text'")
                data, flags = text.encode("utf-8"), TEXT
            elif type(data) is not bytes:
                data = _as_bytes(data)
            if len(data) <= self.credit and len(data) <= FRAME_MAX and (self.lock is None or not self.lock.locked()):
                self.chan.write_frame(MESSAGE, flags, self.id, data)
                self.credit -= len(data)
                if self.chan.wsize > HIGH_WATER:
                    await self.chan.drain()
                return
            if self.lock is None:
                self.lock = asyncio.Lock()
            async with self.lock:
                await self.send_parts(data, flags)
        elif kind == "websocket.accept":
            if self.accepted or self.status is not None:
                raise RuntimeError("websocket.accept sent twice or after websocket.http.response.start")
            headers = message.get("headers") or _NO_HEADERS
            subprotocol = message.get("subprotocol")
            if subprotocol is not None:
                headers = list(headers) + [(b"sec-websocket-protocol", subprotocol.encode("utf-8"))]
            self.status, self.headers = 101, headers
            head = self.head()
            self.chan.write(_pack_u32(VERSION, RESPONSE, 0, self.id, 4 + len(head), len(head)) + head)
            self.accepted = self.head_sent = True
        elif kind == "websocket.close":
            if self.accepted:
                code = message.get("code")
                self.chan.write(close_frame(self.id, 1000 if code is None else code, message.get("reason") or ""))
            elif self.status is not None:
                raise RuntimeError("websocket.close sent after websocket.http.response.start")
            else:  # before accept: deny the handshake
                self.status, self.headers = 403, _NO_HEADERS
                head = self.head()
                self.chan.write(_pack_u32(VERSION, RESPONSE, END_STREAM, self.id, 4 + len(head), len(head)) + head)
            self.end()
        elif kind == "websocket.http.response.start":
            if self.accepted or self.status is not None:
                raise RuntimeError("websocket.http.response.start sent after websocket.accept or twice")
            self.status = message["status"]
            self.headers = message.get("headers") or _NO_HEADERS
        elif kind == "websocket.http.response.body":
            if self.status is None or self.accepted:
                raise RuntimeError("websocket.http.response.body sent without websocket.http.response.start")
            body = message.get("body", b"")
            if type(body) is not bytes:
                body = _as_bytes(body)
            await self.body(body, 0 if message.get("more_body", False) else END_STREAM)
        else:
            raise RuntimeError("unexpected ASGI message type %r in a websocket stream" % kind)

    async def send_parts(self, data: bytes, flags: int) -> None:
        """Send a message in MESSAGE frames no larger than the credit, MORE on all but the last."""
        chan = self.chan
        view = memoryview(data)
        pos, size = 0, len(data)
        while True:
            if pos < size and self.credit <= 0:
                await self.wait_credit()
            n = min(size - pos, self.credit, FRAME_MAX)
            last = pos + n == size
            chan.write_frame(MESSAGE, flags if last else flags | MORE, self.id, view[pos:pos + n])
            self.credit -= n
            pos += n
            if chan.wsize > HIGH_WATER:
                await chan.drain()
            if last:
                return

    def finish(self) -> None:
        if self.accepted:
            if self.front_ended:
                self.chan.write(close_frame(self.id, self.code, self.reason))
            else:
                self.chan.write(close_frame(self.id, 1000))
            self.end()
        elif self.front_ended:
            self.abort("request cancelled")
        elif self.status is not None:
            self.abort("the app returned without completing the response")
        else:
            self.abort("the app returned without accepting or closing the WebSocket")


def _ws_message(data: bytes, text: int) -> dict:
    if text:
        return {"type": "websocket.receive", "bytes": None, "text": data.decode("utf-8", "replace")}
    return {"type": "websocket.receive", "bytes": data, "text": None}


def _plain_headers(headers: Any) -> List[Tuple[Any, Any]]:
    """Headers as a list of pairs of bytes or plain str (only when marshal refused them)."""
    out = []
    for pair in headers:
        name, value = pair
        out.append((_plain(name), _plain(value)))
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError("header names and values must be bytes, not %s" % type(v).__name__)


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError("the app must send bytes, not %s" % type(data).__name__)


def _exception(task: "asyncio.Future") -> Optional[BaseException]:
    if not task.done() or task.cancelled():
        return None
    return task.exception()


def _retrieve(task: "asyncio.Future") -> None:
    _exception(task)  # marks the exception retrieved: no "never retrieved" warning


def _format(e: BaseException) -> str:
    return "".join(traceback.format_exception(type(e), e, e.__traceback__)).rstrip("\n")


def task_stack(task: Any) -> str:
    """Format the stack of a suspended task: its coroutine and those it awaits
    (the app's frames; whisk_worker's own are left out)."""
    frames = []
    coro = task.get_coro() if task is not None else None
    while coro is not None:
        f = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if f is not None:
            frames.append((f, f.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    stack = traceback.StackSummary.extract(frames)
    shown = [f for f in stack if not f.filename.startswith(_RUNTIME)] or list(stack)
    return "".join(traceback.format_list(shown)).rstrip("\n") or "  (no Python frames)"


def describe(scope: dict) -> str:
    """Return "METHOD /path [request ID]" for log lines."""
    path = scope.get("path", "")
    if not isinstance(path, str):
        path = repr(path)
    if not path.isprintable():
        path = "".join(c if c.isprintable() else "\\x%02x" % ord(c) for c in path)
    method = scope.get("method") or ("WebSocket" if scope.get("type") == "websocket" else "?")
    rid = scope.get("whisk.request_id")
    if rid:
        return "%s %s [request %s]" % (method, path, rid)
    return "%s %s" % (method, path)


__all__ = ["Worker", "ClientDisconnected"]
