"""Frames of the whisk wire protocol, version 1 (the spec: docs/protocol.md).

Every frame, on every channel, is a 12-byte header and a payload. All integers
are little-endian::

     0        1        2                 4                                 8                                12
    +--------+--------+-----------------+---------------------------------+---------------------------------+
    |version |  type  |   flags (u16)   |         stream id (u32)         |      payload length (u32)       |
    +--------+--------+-----------------+---------------------------------+---------------------------------+
    |                                  payload (length bytes)                                              ...

- version is 1; anything else closes the channel.
- flags bit 0 is END_STREAM: the sender's half of the stream ends here; on
  MESSAGE, bit 1 is TEXT and bit 2 is MORE.
- the payload is at most 16 MiB.

REQUEST payload:  u32 meta length | marshal dict (the WSGI environ or the ASGI scope) | first body bytes
RESPONSE payload: u32 head length | marshal.dumps((status, headers), 2) | first body bytes
FILE payload:     u64 offset | i64 count (-1: to end of file), one fd in SCM_RIGHTS
CREDIT payload:   u32 bytes the sender accepts on top of what it granted before
CANCEL payload:   empty (the client left), or one reason byte: 1 = the request timed out
ABORT payload:    UTF-8 message; ends the worker's half of the stream
MESSAGE payload:  a WebSocket message or a part of one (ASGI); flags TEXT (UTF-8 text), MORE (continues)
CLOSE payload:    u16 close code | UTF-8 reason, with END_STREAM: the WebSocket closed (ASGI)

This module holds the constants, the encoders, and Conn, a buffered frame
reader/writer over one unix stream socket. It knows nothing of WSGI or ASGI.
"""

import array
import marshal
import socket
import struct
from collections import deque
from typing import Any, Deque, Iterator, List, Tuple, Union

VERSION = 1

# Frame types.
HELLO = 0x01
FAILED = 0x02
CHANNEL = 0x03
STOP = 0x04
PING = 0x05
PONG = 0x06
REQUEST = 0x10
DATA = 0x11
RESPONSE = 0x12
FILE = 0x13
CREDIT = 0x14
CANCEL = 0x15
ABORT = 0x16
MESSAGE = 0x17
CLOSE = 0x18

NAMES = {
    HELLO: "HELLO", FAILED: "FAILED", CHANNEL: "CHANNEL", STOP: "STOP", PING: "PING", PONG: "PONG",
    REQUEST: "REQUEST", DATA: "DATA", RESPONSE: "RESPONSE", FILE: "FILE", CREDIT: "CREDIT",
    CANCEL: "CANCEL", ABORT: "ABORT", MESSAGE: "MESSAGE", CLOSE: "CLOSE",
}

END_STREAM = 0x0001
TEXT = 0x0002  # MESSAGE: a text message (UTF-8)
MORE = 0x0004  # MESSAGE: the message continues in the stream's next MESSAGE
CANCEL_TIMEOUT = 1  # CANCEL reason: the request timed out; interrupt the app's thread
MAX_PAYLOAD = 16 << 20  # 16 MiB
REQUEST_WINDOW = 64 << 10  # body bytes the front sends before it is granted credit

HEADER = struct.Struct("<BBHII")  # version, type, flags, stream, payload length
HEADER_U32 = struct.Struct("<BBHIII")  # header + the u32 that starts REQUEST/RESPONSE/CREDIT payloads
U32 = struct.Struct("<I")
U16 = struct.Struct("<H")
FILE_RANGE = struct.Struct("<Qq")  # offset, count
HEADER_SIZE = HEADER.size

Payload = Union[bytes, bytearray, memoryview]
Frame = Tuple[int, int, int, Payload]  # type, flags, stream, payload

_pack = HEADER.pack
_unpack_header = HEADER.unpack_from
_pack_u32 = HEADER_U32.pack


class ProtocolError(Exception):
    """The peer sent something the spec does not allow: the channel must be closed."""


class ChannelClosed(Exception):
    """The channel reached end-of-file or its socket failed."""


def frame(ftype: int, flags: int, stream: int, payload: Payload = b"") -> bytes:
    """Return one encoded frame."""
    return _pack(VERSION, ftype, flags, stream, len(payload)) + payload


def credit_frame(stream: int, n: int) -> bytes:
    """Return a CREDIT frame granting n more body bytes."""
    return _pack_u32(VERSION, CREDIT, 0, stream, 4, n)


def cancel_frame(stream: int, reason: int = 0) -> bytes:
    """Return a CANCEL frame (the front's job; used by tests): reason 0 is an
    empty payload (the client left), others one byte, like CANCEL_TIMEOUT."""
    return frame(CANCEL, 0, stream, bytes((reason,)) if reason else b"")


def close_frame(stream: int, code: int, reason: str = "") -> bytes:
    """Return a CLOSE frame with END_STREAM: a WebSocket close code and reason
    (the reason is cut to the 123 bytes a WebSocket close frame can carry)."""
    data = reason.encode("utf-8")
    if len(data) > 123:
        data = data[:123].decode("utf-8", "ignore").encode("utf-8")
    return frame(CLOSE, END_STREAM, stream, U16.pack(code) + data)


def split_close(payload: Payload) -> Tuple[int, str]:
    """Return (code, reason) of a CLOSE payload; an empty payload is 1005 (no status)."""
    if not payload:
        return 1005, ""
    if len(payload) < 2:
        raise ProtocolError("CLOSE payload of 1 byte, want a u16 code and a reason")
    return U16.unpack_from(payload)[0], bytes(payload[2:]).decode("utf-8", "replace")


def find_cancel(data: Payload, stream: int, reason: int) -> bool:
    """Report whether the frames at the start of data hold a CANCEL for stream
    with reason. data may end in the middle of a frame."""
    pos = 0
    while len(data) - pos >= HEADER_SIZE:
        version, ftype, _, s, length = _unpack_header(data, pos)
        if version != VERSION:
            return False
        pos += HEADER_SIZE
        if ftype == CANCEL and s == stream and length == 1 and pos < len(data) and data[pos] == reason:
            return True
        pos += length
    return False


def encode_head(status: Any, headers: Any) -> bytes:
    """Return the RESPONSE head: marshal version 2 of (status, headers).

    marshal refuses str subclasses (ValueError); only then are they turned into
    plain str, so the common case has no Python loop over the headers.
    """
    try:
        return marshal.dumps((status, headers), 2)
    except ValueError:
        return marshal.dumps(_plain_head(status, headers), 2)


def _plain_head(status: Any, headers: Any) -> Tuple[str, List[Tuple[str, str]]]:
    if not isinstance(status, str):
        raise TypeError("status must be a str, not %s" % type(status).__name__)
    plain = []
    for item in headers:
        if not (isinstance(item, tuple) and len(item) == 2
                and isinstance(item[0], str) and isinstance(item[1], str)):
            raise TypeError("each header must be a (str, str) tuple, got %r" % (item,))
        plain.append((str.__str__(item[0]), str.__str__(item[1])))
    return str.__str__(status), plain


def response_frame(stream: int, flags: int, head: bytes, body: Payload) -> bytes:
    """Return a RESPONSE frame: head and first body bytes (caller checks sizes)."""
    return b"".join((_pack_u32(VERSION, RESPONSE, flags, stream, 4 + len(head) + len(body), len(head)),
                     head, body))


def request_frame(stream: int, flags: int, environ: dict, body: Payload = b"") -> bytes:
    """Return a REQUEST frame (the front's job; used by tests and benchmarks)."""
    meta = marshal.dumps(environ, 2)
    return b"".join((_pack_u32(VERSION, REQUEST, flags, stream, 4 + len(meta) + len(body), len(meta)),
                     meta, body))


def split_request(payload: Payload) -> Tuple[dict, Payload]:
    """Return (environ, first body bytes) of a REQUEST payload."""
    n = U32.unpack_from(payload)[0]
    if 4 + n > len(payload):
        raise ProtocolError("REQUEST meta length %d exceeds the payload" % n)
    return marshal.loads(payload[4:4 + n]), payload[4 + n:]


def split_response(payload: Payload) -> Tuple[str, list, bytes]:
    """Return (status, headers, first body bytes) of a RESPONSE payload."""
    n = U32.unpack_from(payload)[0]
    if 4 + n > len(payload):
        raise ProtocolError("RESPONSE head length %d exceeds the payload" % n)
    status, headers = marshal.loads(payload[4:4 + n])
    return status, headers, bytes(payload[4 + n:])


def iter_frames(data: Payload) -> Iterator[Frame]:
    """Yield the frames of a byte string holding whole frames."""
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        if len(view) - pos < HEADER_SIZE:
            raise ProtocolError("truncated frame header")
        version, ftype, flags, stream, length = HEADER.unpack_from(view, pos)
        _check(version, length)
        end = pos + HEADER_SIZE + length
        if end > len(view):
            raise ProtocolError("truncated frame payload")
        yield ftype, flags, stream, bytes(view[pos + HEADER_SIZE:end])
        pos = end


def _check(version: int, length: int) -> None:
    if version != VERSION:
        raise ProtocolError("wire version %d, want %d" % (version, VERSION))
    if length > MAX_PAYLOAD:
        raise ProtocolError("frame payload of %d bytes exceeds the 16 MiB limit" % length)


class Conn:
    """Conn reads and writes frames on one connected unix stream socket.

    recv_frame returns a payload that may be a view into Conn's buffer: it is
    valid until the next recv_frame. With fds=True, Conn reads with recvmsg and
    queues the descriptors that arrive (SCM_RIGHTS) in self.fds, in order; the
    caller pops one for each CHANNEL or FILE frame. Conn has no lock: one thread
    reads and writes it.
    """

    def __init__(self, sock: socket.socket, bufsize: int = 128 << 10, fds: bool = False) -> None:
        self.sock = sock
        self.buf = bytearray(bufsize)
        self.view = memoryview(self.buf)
        self.start = 0  # first unread byte in buf
        self.end = 0  # end of the bytes read into buf
        self.fds: Deque[int] = deque()
        self._recv = self._recvmsg_into if fds else sock.recv_into
        self._sendall = sock.sendall

    def recv_frame(self) -> Frame:
        """Return the next frame; raise ChannelClosed on EOF, ProtocolError on a bad header."""
        start, end = self.start, self.end
        if start == end:  # empty buffer, the common case: read into its start, inline
            start = self.start = 0
            try:
                end = self._recv(self.view)
            except OSError as e:
                raise ChannelClosed(str(e)) from e
            if not end:
                raise ChannelClosed("end of file")
            self.end = end
        if end - start < HEADER_SIZE:
            start = self._fill(HEADER_SIZE)
            end = self.end
        version, ftype, flags, stream, length = _unpack_header(self.buf, start)
        if version != VERSION or length > MAX_PAYLOAD:
            _check(version, length)
        stop = start + HEADER_SIZE + length
        if stop <= end:
            self.start = stop
            return ftype, flags, stream, self.view[start + HEADER_SIZE:stop]
        if HEADER_SIZE + length <= len(self.buf):
            start = self._fill(HEADER_SIZE + length)
            self.start = start + HEADER_SIZE + length
            return ftype, flags, stream, self.view[start + HEADER_SIZE:self.start]
        # Larger than the buffer: read the payload into its own bytearray.
        payload = bytearray(length)
        have = self.end - start - HEADER_SIZE
        payload[:have] = self.view[start + HEADER_SIZE:self.end]
        self.start = self.end = 0
        view = memoryview(payload)
        while have < length:
            n = self._recv_into(view[have:])
            have += n
        return ftype, flags, stream, payload

    def _fill(self, need: int) -> int:
        """Read until need bytes are buffered from self.start; return the new start."""
        start, end = self.start, self.end
        if start == end:
            start = end = 0
        elif start + need > len(self.buf):
            # Move the partial frame to the front of the buffer.
            self.buf[:end - start] = bytes(self.view[start:end])
            start, end = 0, end - start
        self.start = start
        while end - start < need:
            self.end = end  # keep state consistent if _recv_into raises
            end += self._recv_into(self.view[end:])
        self.end = end
        return start

    def _recv_into(self, view: memoryview) -> int:
        try:
            n = self._recv(view)
        except OSError as e:
            raise ChannelClosed(str(e)) from e
        if n == 0:
            raise ChannelClosed("end of file")
        return n

    def _recvmsg_into(self, view: memoryview) -> int:
        n, ancdata, msg_flags, _ = self.sock.recvmsg_into([view], socket.CMSG_SPACE(16 * 4))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
                self.fds.extend(fds)
        if msg_flags & socket.MSG_CTRUNC:
            raise ProtocolError("file descriptors were truncated (MSG_CTRUNC)")
        return n

    def pending(self) -> bool:
        """Report whether a frame may be waiting, without blocking: buffered bytes
        or readable bytes on the socket. Raise ChannelClosed on EOF."""
        if self.start != self.end:
            return True
        try:
            n = self.sock.recv_into(self.view[:1], 0, socket.MSG_DONTWAIT | socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as e:
            raise ChannelClosed(str(e)) from e
        if n == 0:
            raise ChannelClosed("end of file")
        return True

    def send(self, data: Payload) -> None:
        """Send bytes (one or more encoded frames); raise ChannelClosed on failure."""
        try:
            self._sendall(data)
        except OSError as e:
            raise ChannelClosed(str(e)) from e

    def send_frame(self, ftype: int, flags: int, stream: int, payload: Payload) -> None:
        """Send one frame; a large payload is not copied (sendmsg)."""
        if len(payload) <= 32 << 10:
            self.send(_pack(VERSION, ftype, flags, stream, len(payload)) + payload)
        else:
            self.send_parts([_pack(VERSION, ftype, flags, stream, len(payload)), payload])

    def send_parts(self, parts: List[Payload]) -> None:
        """Send the concatenation of parts with sendmsg, without joining them."""
        views = [memoryview(p) for p in parts if len(p)]
        try:
            while views:
                n = self.sock.sendmsg(views)
                while views and n >= len(views[0]):
                    n -= len(views.pop(0))
                if n:
                    views[0] = views[0][n:]
        except OSError as e:
            raise ChannelClosed(str(e)) from e

    def send_fd(self, data: bytes, fd: int) -> None:
        """Send one frame with fd attached (SCM_RIGHTS) to its first byte."""
        fds = array.array("i", [fd])
        try:
            n = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
            if n < len(data):
                self._sendall(data[n:])
        except OSError as e:
            raise ChannelClosed(str(e)) from e
