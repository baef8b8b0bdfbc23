"""WSGI (PEP 3333) over request channels: one thread per channel, one stream at a time.

Per request: one recv, one marshal.loads, the app call, and for a list body one
sendall of a RESPONSE frame carrying head, body and END_STREAM. Everything else
(streamed bodies, credits, cancel, file_wrapper, HEAD) lives off that path.

Timeouts: a watcher thread looks, a few times a second, at the channels whose
request has been running since its last look, for a CANCEL with the timeout
reason the app's thread has not read; it logs that thread's stack and raises
RequestTimeout in it. The request path only stores the stream id it runs.
"""

import io
import marshal
import os
import socket
import stat
import sys
import threading
import time
import traceback
from typing import Any, Callable, Iterable, Iterator, List, Optional

from .wire import (
    ABORT, CANCEL, CANCEL_TIMEOUT, CREDIT, DATA, END_STREAM, FILE, FILE_RANGE, HEADER_U32, MAX_PAYLOAD,
    NAMES, PING, PONG, REQUEST, REQUEST_WINDOW, RESPONSE, U32, VERSION, ChannelClosed, Conn,
    ProtocolError, credit_frame, encode_head, find_cancel, frame,
)

READ_AHEAD = 1 << 20  # most request body bytes granted ahead of what the app asked for
SMALL = 32 << 10  # frames up to this size are joined into one buffer; larger use sendmsg
HEAD_MAX = MAX_PAYLOAD - SMALL - 4  # largest response head that leaves room for a body
WATCH_TICK = 0.2  # seconds between the watcher's looks while requests run
WATCH_IDLE = 1.0  # ... and while none does
PEEK_MAX = 256 << 10  # bytes of a channel's socket the watcher looks at for a CANCEL
_RUNTIME = os.path.dirname(os.path.abspath(__file__)) + os.sep  # whisk_worker's own frames

_pack_u32 = HEADER_U32.pack
_BytesIO = io.BytesIO


class ClientDisconnected(OSError):
    """The front cancelled the request: the client left or the request timed out."""


class RequestTimeout(BaseException):
    """Raised in the app's thread when the front gave up on its request (request_timeout).

    The client already got 504. It derives from BaseException, like
    KeyboardInterrupt and asyncio.CancelledError, so that `except Exception` in
    the app (the 500 handlers of Django and Flask, retry loops) does not swallow
    it: the thread unwinds, running finally clauses and context managers
    (transaction.atomic rolls back, Flask's teardown handlers run), and is free
    for the next request. It arrives only while the thread runs Python code: a
    thread blocked in C (time.sleep, a socket read) gets it when the call returns.
    """


class FileWrapper:
    """wsgi.file_wrapper: iterates a file-like object in blocks of blksize bytes.

    When the app returns one whose file has a real descriptor of a regular file,
    the worker hands the descriptor to the front (FILE frame) instead.
    """

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self) -> "FileWrapper":
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


class Input:
    """wsgi.input for a body that did not fit in the REQUEST frame.

    Pulls DATA frames from the channel; the front sends the first 64 KiB
    unasked, and the rest as the reader grants CREDIT. Reading past the end
    returns b"". A CANCEL while waiting raises ClientDisconnected.
    """

    def __init__(self, chan: "Channel", stream: int, first: bytes) -> None:
        self._chan = chan
        self._stream = stream
        self._buf = bytearray(first)
        self._eof = False
        self._allowance = REQUEST_WINDOW - len(first)  # bytes the front may still send unasked

    def _feed(self, data: Any, end: bool) -> None:
        self._buf += data
        self._allowance -= len(data)
        if end:
            self._eof = True

    def _more(self, want: int) -> None:
        """Wait for more body bytes, first granting credit so at least want can come."""
        chan = self._chan
        if chan.stream != self._stream or not chan.open:
            self._eof = True  # the response ended: the front sends no more body
            return
        # Keep up to min(want, READ_AHEAD) bytes granted, in grants of at least 64 KiB.
        short = min(want, READ_AHEAD) - self._allowance
        if self._allowance <= 0 or short >= REQUEST_WINDOW:
            grant = max(short, REQUEST_WINDOW)
            chan.conn.send(credit_frame(self._stream, grant))
            self._allowance += grant
        have = len(self._buf)
        while len(self._buf) == have and not self._eof:
            chan.pump()

    def read(self, size: Optional[int] = -1) -> bytes:
        buf = self._buf
        if size is None or size < 0:
            while not self._eof:
                self._more(READ_AHEAD)
            size = len(buf)
        else:
            while len(buf) < size and not self._eof:
                self._more(size - len(buf))
        data = bytes(buf[:size])
        del buf[:size]
        return data

    def readline(self, size: Optional[int] = -1) -> bytes:
        if size is None:
            size = -1
        buf = self._buf
        scan = 0
        while True:
            i = buf.find(b"\n", scan)
            if i >= 0:
                end = i + 1
                break
            if self._eof or 0 <= size <= len(buf):
                end = len(buf)
                break
            scan = len(buf)
            self._more(REQUEST_WINDOW)
        if 0 <= size < end:
            end = size
        line = bytes(buf[:end])
        del buf[:end]
        return line

    def readlines(self, hint: Optional[int] = -1) -> List[bytes]:
        lines = []
        total = 0
        for line in self:
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if line:
            return line
        raise StopIteration


class Worker:
    """The per-process WSGI state shared by the channel threads."""

    def __init__(self, app: Callable, window: int, threads: int, processes: int) -> None:
        self.app = app
        self.window = window
        self.base = {
            "wsgi.version": (1, 0),
            "wsgi.multithread": threads > 1,
            "wsgi.multiprocess": processes > 1,
            "wsgi.run_once": False,
            "wsgi.errors": sys.stderr,
            "wsgi.file_wrapper": FileWrapper,
            "wsgi.input_terminated": True,
        }
        self.channels: List[Channel] = []
        self.stopping = False
        self.watcher: Optional[threading.Thread] = None

    def serve_channel(self, sock: socket.socket, name: str) -> threading.Thread:
        """Serve a request channel from a new daemon thread."""
        chan = Channel(self, sock)
        self.channels.append(chan)
        if self.watcher is None:
            self.watcher = threading.Thread(target=self.watch, name="whisk-watcher", daemon=True)
            self.watcher.start()
        t = threading.Thread(target=chan.serve, name="whisk-channel-" + name, daemon=True)
        t.start()
        return t

    def idle(self) -> bool:
        """Report whether no request is in progress, not counting the requests
        interrupted for a timeout whose threads are still stuck: the front
        gave up on them, and they must not keep a recycled process alive."""
        return not any(c.busy and not c.interrupted for c in self.channels)

    def watch(self) -> None:
        """Interrupt the app in threads whose request timed out (the watcher thread).

        Only a request that was running at the previous look is checked, with
        one non-blocking peek at its channel: short requests cost nothing.
        """
        seen: dict = {}
        while True:
            time.sleep(WATCH_TICK if seen else WATCH_IDLE)
            running = {}
            for chan in self.channels[:]:
                stream = chan.running
                if stream:
                    running[chan] = stream
                    if seen.get(chan) == stream and not chan.interrupted:
                        try:
                            if chan.timed_out(stream):
                                chan.interrupt(stream)
                        except Exception:
                            _log("bug in whisk_worker's watcher:\n" + traceback.format_exc())
            seen = running


class Channel:
    """One request channel: reads REQUEST frames and runs the app for each."""

    def __init__(self, worker: Worker, sock: socket.socket) -> None:
        self.worker = worker
        self.conn = Conn(sock)
        self.app = worker.app
        self.base = worker.base
        self.window = worker.window
        self.busy = False  # set before checking worker.stopping; see serve
        self.start_response = self._start_response  # bound once, not per request
        self.write = self._write
        # The stream in progress.
        self.stream = 0
        self.open = False  # the worker's half of the stream has not ended
        self.environ: dict = {}
        self.input: Optional[Input] = None
        self.status: Optional[str] = None
        self.headers: Any = None
        self.head_sent = False
        self.is_head = False
        self.credit = 0
        self.cancelled = False
        # Timeouts (see Worker.watch and interrupt).
        self.tid = 0  # the serving thread's ident and name
        self.name = ""
        self.running = 0  # the stream whose app call is in progress; 0: none
        self.interrupted = False  # RequestTimeout was raised in (or is pending for) that call
        self.reads = 0  # odd while the thread reads the channel (pump)
        self.lock = threading.Lock()  # taken by interrupt, and by the thread only after one

    def serve(self) -> None:
        """Serve requests until the channel closes or breaks the protocol."""
        conn = self.conn
        self.tid = threading.get_ident()
        self.name = threading.current_thread().name
        try:
            while True:
                ftype, flags, stream, payload = conn.recv_frame()
                if ftype == REQUEST:
                    self.busy = True
                    try:
                        if not self.worker.stopping:
                            self.request(stream, flags, payload)
                    except RequestTimeout:  # raised in request's own cleanup
                        self.timed_out_end()
                        self.running = 0
                        self.settle()
                    finally:
                        self.busy = False
                elif ftype == CREDIT or ftype == CANCEL or ftype == DATA:
                    continue  # stale: for a stream that has ended
                elif ftype == PING:
                    conn.send(frame(PONG, 0, stream, payload))
                else:
                    raise ProtocolError("unexpected %s frame between streams" % NAMES.get(ftype, hex(ftype)))
        except ChannelClosed:
            pass
        except ProtocolError as e:
            _log("protocol error on a request channel, closing it: %s" % e)
        except BaseException:
            _log("bug in whisk_worker, closing a request channel:\n" + traceback.format_exc())
        finally:
            conn.sock.close()

    def request(self, stream: int, flags: int, payload: Any) -> None:
        """Run the app for one REQUEST and send its response; end the stream."""
        n = U32.unpack_from(payload)[0]
        environ = marshal.loads(payload[4:4 + n])
        environ.update(self.base)
        if flags & END_STREAM:
            environ["wsgi.input"] = _BytesIO(payload[4 + n:])
        else:
            self.input = environ["wsgi.input"] = Input(self, stream, bytes(payload[4 + n:]))
        self.environ = environ
        self.stream = stream
        self.open = True
        self.status = None
        self.head_sent = False
        self.is_head = environ.get("REQUEST_METHOD") == "HEAD"
        self.credit = self.window
        self.cancelled = False
        result = None
        self.running = stream
        try:
            result = self.app(environ, self.start_response)
            if type(result) is list and not self.head_sent and not self.is_head:
                # The common case: head, whole body and END_STREAM in one frame, one sendall.
                body = b"".join(result)
                if self.status is None:
                    raise RuntimeError("the app returned without calling start_response()")
                head = encode_head(self.status, self.headers)
                size = len(body)
                if size <= SMALL and size <= self.credit and len(head) < HEAD_MAX:
                    self.quiesce()
                    self.conn.send(b"".join((
                        _pack_u32(VERSION, RESPONSE, END_STREAM, stream, 4 + len(head) + size, len(head)),
                        head, body)))
                    self.open = False
                else:
                    self.send(body, END_STREAM)
            else:
                self.respond(result)
        except ClientDisconnected:
            if self.open and self.cancelled:
                self.abort("request cancelled")
            elif self.open:  # raised by the app itself
                self.fail()
        except (ChannelClosed, ProtocolError):
            raise
        except RequestTimeout:
            self.timed_out_end()
        except BaseException:
            self.fail()
        finally:
            self.input = None
            if result is not None and type(result) is not list:
                self.close(result)
            self.running = 0  # no RequestTimeout is raised after this ...
            if self.interrupted:
                self.settle()  # ... and none is left pending

    def timed_out(self, stream: int) -> bool:
        """Report whether the front cancelled stream for a timeout and the
        thread has not read that CANCEL (the watcher thread asks).

        The buffered bytes and a peek at the socket are looked at only while
        the thread does not read the channel (reads unchanged and even), so
        the frames seen are whole and in order.
        """
        conn = self.conn
        mark = self.reads
        if mark & 1:
            return False  # the thread is reading: it sees the CANCEL itself
        data = bytes(conn.view[conn.start:conn.end])
        try:
            data += conn.sock.recv(PEEK_MAX, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return False
        return self.reads == mark and find_cancel(data, stream, CANCEL_TIMEOUT)

    def interrupt(self, stream: int) -> None:
        """Raise RequestTimeout in the thread running stream, and log its stack
        (the watcher thread calls it).

        interrupted is set before running is read, and the thread clears
        running before it reads interrupted: whichever goes first, either no
        exception is raised, or the thread sees interrupted and, taking the
        lock, waits until the exception is set to clear it (settle).
        """
        with self.lock:
            self.interrupted = True
            frame = sys._current_frames().get(self.tid)
            if self.running != stream or frame is None or frame.f_code.co_filename.startswith(_RUNTIME):
                # Ended, or in whisk_worker's own code (a send): look again at the next tick.
                self.interrupted = False
                return
            # The app's frames: those below its call (threading, serve, request) are left out.
            stack = traceback.extract_stack(frame)
            start = max((i + 1 for i, f in enumerate(stack) if f.filename.startswith(_RUNTIME)), default=0)
            _log("whisk_worker: %s timed out; raising RequestTimeout in its thread %s. Its stack, most recent "
                 "call last:\n%s" % (_describe(self.environ), self.name,
                                      "".join(traceback.format_list(stack[start:] or stack)).rstrip("\n")))
            _set_async_exc(self.tid, RequestTimeout)

    def quiesce(self) -> None:
        """Before the frame that ends the stream: from here on no RequestTimeout
        is raised in this thread (the watcher stops looking, and one already
        pending is dropped), so a timeout never follows the end of a stream
        with an ABORT. One raised before this point still ends the stream
        with ABORT, since nothing ended it yet."""
        if self.running:
            self.running = 0
            if self.interrupted:
                self.settle()

    def settle(self) -> None:
        """After an interrupted call: drop the RequestTimeout if still pending."""
        with self.lock:  # waits for interrupt to finish
            self.interrupted = False
        _set_async_exc(self.tid, None)

    def timed_out_end(self) -> None:
        """End a stream whose app call RequestTimeout interrupted."""
        _log("whisk_worker: %s: the app's thread was interrupted and is free again" % _describe(self.environ))
        if self.open:
            self.abort("request timed out")

    def respond(self, result: Iterable) -> None:
        """Send the body of any iterable, block by block as it is produced."""
        if self.is_head:
            for block in result:
                if block:
                    break
            self.send(b"", END_STREAM)  # sends the head only
            return
        if type(result) is tuple:
            self.send(b"".join(result), END_STREAM)
            return
        if isinstance(result, FileWrapper) and self.send_file(result):
            return
        it = iter(result)
        left = -1  # body bytes still due by Content-Length; -1: unknown
        for block in it:
            if not block:
                continue
            if type(block) is not bytes:
                block = _as_bytes(block)
            if left < 0 and not self.head_sent:
                left = _content_length(self.headers)
            else:
                self.poll()
            if len(block) == left:
                # The body is complete: end the stream now, not after one more next().
                self.send(block, END_STREAM)
                _drain(it)
                return
            left = left - len(block) if left > len(block) else -1
            self.send(block, 0)
        self.send(b"", END_STREAM)

    def send(self, data: Any, end: int) -> None:
        """Send body bytes, the head first if it was not sent yet, splitting as
        credit and the frame size limit require; end=END_STREAM ends the stream."""
        if self.cancelled:
            raise ClientDisconnected("the request was cancelled")
        if end:
            self.quiesce()
        conn = self.conn
        size = len(data)
        if size > SMALL:
            data = memoryview(data)
        pos = 0
        if not self.head_sent:
            if self.status is None:
                raise RuntimeError("the app sent a body without calling start_response()")
            head = encode_head(self.status, self.headers)
            if len(head) >= HEAD_MAX:
                raise ValueError("the response head is %d bytes, over the frame limit" % len(head))
            if self.is_head:
                size = 0
                end = END_STREAM
            pos = min(size, max(self.credit, 0), MAX_PAYLOAD - 4 - len(head))
            flags = end if pos == size else 0
            hdr = _pack_u32(VERSION, RESPONSE, flags, self.stream, 4 + len(head) + pos, len(head))
            if pos > SMALL:
                conn.send_parts([hdr, head, data[:pos]])
            else:
                conn.send(hdr + head + data[:pos])
            self.head_sent = True
            self.credit -= pos
            if flags:
                self.open = False
                return
        elif self.is_head:
            return  # HEAD: the head went alone, with END_STREAM
        elif not self.open:
            raise RuntimeError("write() called after the response ended")
        while True:
            left = size - pos
            if left and self.credit <= 0:
                self.wait_credit()
            n = min(left, self.credit, MAX_PAYLOAD)
            if n == left:
                if n or end:
                    conn.send_frame(DATA, end, self.stream, data[pos:] if pos else data)
                    self.credit -= n
                if end:
                    self.open = False
                return
            conn.send_frame(DATA, 0, self.stream, data[pos:pos + n])
            self.credit -= n
            pos += n

    def send_file(self, wrapper: FileWrapper) -> bool:
        """Hand the wrapped file's descriptor to the front, if it is a regular
        file; report whether it was sent."""
        filelike = wrapper.filelike
        try:
            fd = filelike.fileno()
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False
            offset = filelike.tell() if hasattr(filelike, "tell") else os.lseek(fd, 0, os.SEEK_CUR)
        except (AttributeError, OSError, ValueError):
            return False
        if self.status is None:
            raise RuntimeError("the app returned without calling start_response()")
        count = _content_length(self.headers, any_case=True)
        if not self.head_sent:
            head = encode_head(self.status, self.headers)
            self.conn.send(_pack_u32(VERSION, RESPONSE, 0, self.stream, 4 + len(head), len(head)) + head)
            self.head_sent = True
        self.quiesce()
        self.conn.send_fd(frame(FILE, END_STREAM, self.stream, FILE_RANGE.pack(offset, count)), fd)
        self.open = False
        return True

    def wait_credit(self) -> None:
        """Block until the front grants response credit (CANCEL raises)."""
        while self.credit <= 0:
            self.pump()

    def poll(self) -> None:
        """Handle the frames that already arrived (a CANCEL, credits), without blocking."""
        while self.conn.pending():
            self.pump()

    def pump(self) -> None:
        """Read one frame while a stream is open and act on it."""
        self.reads += 1
        try:
            ftype, flags, stream, payload = self.conn.recv_frame()
        finally:
            self.reads += 1
        if ftype == DATA:
            inp = self.input
            if inp is not None and stream == inp._stream:
                inp._feed(payload, flags & END_STREAM)
            return
        if stream == self.stream and self.open:
            if ftype == CREDIT:
                if len(payload) != 4:
                    raise ProtocolError("CREDIT payload of %d bytes, want 4" % len(payload))
                self.credit += U32.unpack_from(payload)[0]
                return
            if ftype == CANCEL:
                self.cancelled = True
                raise ClientDisconnected("the front cancelled the request")
        elif ftype == CREDIT or ftype == CANCEL:
            return  # stale
        if ftype == PING:
            self.conn.send(frame(PONG, 0, stream, payload))
            return
        raise ProtocolError("unexpected %s frame in stream %d" % (NAMES.get(ftype, hex(ftype)), stream))

    def _start_response(self, status: str, headers: List[Any], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise RuntimeError("start_response() called twice without exc_info")
        if not isinstance(status, str):
            raise TypeError("status must be a str, not %s" % type(status).__name__)
        if type(headers) is not list:
            raise TypeError("headers must be a list of (name, value) tuples, not %s" % type(headers).__name__)
        self.status = status
        self.headers = headers
        return self.write

    def _write(self, data: bytes) -> None:
        if type(data) is not bytes:
            data = _as_bytes(data)
        if self.status is None:
            raise RuntimeError("write() called before start_response()")
        self.send(data, 0)

    def fail(self) -> None:
        """Log the exception being handled and, if the stream is open, ABORT it."""
        e = sys.exc_info()[1]
        if not self.cancelled:
            _log("error in app handling %s:\n%s" % (_describe(self.environ), traceback.format_exc()))
        if self.open:
            self.abort("%s: %s" % (type(e).__name__, e))

    def abort(self, message: str) -> None:
        """End the stream with ABORT carrying a one-line message."""
        self.open = False
        text = " ".join(message.split())[:1000]
        self.conn.send(frame(ABORT, 0, self.stream, text.encode("utf-8", "replace")))

    def close(self, result: Any) -> None:
        """Call result.close() if it has one; log what it raises."""
        close = getattr(result, "close", None)
        if close is None:
            return
        try:
            close()
        except BaseException:
            _log("error in close() of the app's response to %s:\n%s"
                 % (_describe(self.environ), traceback.format_exc()))


def _set_async_exc(tid: int, exc: Any) -> None:
    """Raise exc in thread tid at its next Python instruction; None clears a pending one."""
    import ctypes
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid), ctypes.py_object(exc) if exc else None)


def _as_bytes(block: Any) -> bytes:
    if isinstance(block, (bytearray, memoryview)):
        return bytes(block)
    raise TypeError("the app must produce bytes, not %s" % type(block).__name__)


def _content_length(headers: Any, any_case: bool = False) -> int:
    """Return the Content-Length the app set, or -1.

    The default looks up the two usual spellings with C-level dict operations:
    it only lets a streamed body end with its last block, so a miss costs one
    frame, not correctness.
    """
    try:
        if any_case:
            values = [v for n, v in headers if n.lower() == "content-length"]
            value = values[0] if values else None
        else:
            d = dict(headers)
            value = d.get("Content-Length") or d.get("content-length")
    except (TypeError, ValueError, AttributeError):
        return -1
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return -1


def _drain(it: Iterator) -> None:
    """Iterate what is left of a body already complete; the bytes are dropped."""
    for block in it:
        if block:
            _log("the app produced more body bytes than its Content-Length; dropped")
            for _ in it:
                pass


def _describe(environ: dict) -> str:
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    try:
        path = path.encode("latin-1").decode("utf-8", "backslashreplace")
    except UnicodeError:
        pass
    if not path.isprintable():
        path = "".join(c if c.isprintable() else "\\x%02x" % ord(c) for c in path)
    rid = environ.get("whisk.request_id")
    if rid:  # the front's log reads it back into a request_id field
        return "%s %s [request %s]" % (environ.get("REQUEST_METHOD", "?"), path, rid)
    return "%s %s" % (environ.get("REQUEST_METHOD", "?"), path)


def _log(text: str) -> None:
    """Write text to stderr in one call, so threads do not interleave lines."""
    if not text.endswith("\n"):
        text += "\n"
    try:
        sys.stderr.write(text)
    except Exception:
        pass
