"""Unit tests of whisk_worker.wire: encoders, decoders and Conn."""

import array
import os
import socket
import tempfile
import threading
import unittest

from . import harness, spec  # noqa: F401 (harness puts whisk_worker on sys.path)
from whisk_worker import wire
from whisk_worker.wire import CREDIT, DATA, END_STREAM, MAX_PAYLOAD, REQUEST, RESPONSE, Conn

NASTY = "".join(chr(i) for i in range(256))  # every byte value as a latin-1 native string


class EncodeTest(unittest.TestCase):
    def test_frame_header(self):
        f = wire.frame(DATA, END_STREAM, 0x01020304, b"xyz")
        self.assertEqual(f, bytes([1, 0x11, 1, 0, 4, 3, 2, 1, 3, 0, 0, 0]) + b"xyz")

    def test_credit_frame(self):
        f = wire.credit_frame(7, 65536)
        self.assertEqual(list(wire.iter_frames(f)), [(CREDIT, 0, 7, (65536).to_bytes(4, "little"))])

    def test_head_uses_only_spec_codes(self):
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("X-Latin", "caf\xe9 \xff"), ("Empty", "")]
        head = wire.encode_head("200 OK", headers)
        self.assertEqual(spec.read(head, "([u"), ("200 OK", headers))

    def test_interned_strings_are_not_special(self):
        import sys
        head = wire.encode_head(sys.intern("200 OK"), [(sys.intern("Content-Type"), "x")])
        spec.read(head, "([u")

    def test_head_str_subclass_falls_back(self):
        class S(str):
            pass
        head = wire.encode_head(S("404 Not Found"), [(S("A"), S("b")), ("C", "d")])
        self.assertEqual(spec.read(head, "([u"), ("404 Not Found", [("A", "b"), ("C", "d")]))

    def test_head_bad_header_in_fallback(self):
        class S(str):
            pass
        with self.assertRaisesRegex(TypeError, "header"):
            wire.encode_head(S("200 OK"), [("A", object())])

    def test_request_round_trip(self):
        env = {"PATH_INFO": "/a\x00b" + NASTY, "HTTP_X": NASTY, "QUERY_STRING": ""}
        f = wire.request_frame(3, END_STREAM, env, b"body\x00\xff")
        [(ftype, flags, stream, payload)] = wire.iter_frames(f)
        self.assertEqual((ftype, flags, stream), (REQUEST, END_STREAM, 3))
        got, body = wire.split_request(payload)
        self.assertEqual(got, env)
        self.assertEqual(bytes(body), b"body\x00\xff")
        meta_len = wire.U32.unpack_from(payload)[0]
        self.assertEqual(spec.read(payload[4:4 + meta_len], "{u0"), env)

    def test_response_round_trip(self):
        head = wire.encode_head("200 OK", [("A", "b")])
        f = wire.response_frame(9, END_STREAM, head, b"hello")
        [(ftype, flags, stream, payload)] = wire.iter_frames(f)
        self.assertEqual((ftype, flags, stream), (RESPONSE, END_STREAM, 9))
        self.assertEqual(wire.split_response(payload), ("200 OK", [("A", "b")], b"hello"))

    def test_close_frame(self):
        f = wire.close_frame(5, 4001, "bye")
        self.assertEqual(f, bytes([1, 0x18, 1, 0, 5, 0, 0, 0, 5, 0, 0, 0]) + b"\xa1\x0fbye")
        [(ftype, flags, stream, payload)] = wire.iter_frames(f)
        self.assertEqual((ftype, flags, wire.split_close(payload)), (wire.CLOSE, END_STREAM, (4001, "bye")))
        self.assertEqual(wire.split_close(b""), (1005, ""))  # no status
        with self.assertRaises(wire.ProtocolError):
            wire.split_close(b"\x01")
        # A reason is cut to the 123 bytes a WebSocket close frame carries, on a character boundary.
        reason = wire.split_close(wire.close_frame(1, 1000, "\xe9" * 100)[12:])[1]
        self.assertEqual(reason, "\xe9" * 61)
        self.assertEqual((wire.MESSAGE, wire.TEXT, wire.MORE), (0x17, 0x0002, 0x0004))

    def test_split_rejects_overlong_meta(self):
        with self.assertRaises(wire.ProtocolError):
            wire.split_request(wire.U32.pack(100) + b"{0")
        with self.assertRaises(wire.ProtocolError):
            wire.split_response(wire.U32.pack(100) + b"x")

    def test_iter_frames_errors(self):
        good = wire.frame(DATA, 0, 1, b"abc")
        for bad, msg in [
            (b"\x02" + good[1:], "version"),
            (good[:-1], "truncated"),
            (good[:5], "truncated"),
            (wire.HEADER.pack(1, DATA, 0, 1, MAX_PAYLOAD + 1), "16 MiB"),
        ]:
            with self.subTest(msg=msg), self.assertRaisesRegex(wire.ProtocolError, msg):
                list(wire.iter_frames(bad))

    def test_max_payload_accepted(self):
        f = wire.frame(DATA, 0, 1, bytes(MAX_PAYLOAD))
        [(_, _, _, payload)] = wire.iter_frames(f)
        self.assertEqual(len(payload), MAX_PAYLOAD)


class ConnTest(unittest.TestCase):
    def setUp(self):
        self.a, self.b = socket.socketpair()
        self.a.settimeout(10)
        self.b.settimeout(10)
        self.addCleanup(self.a.close)
        self.addCleanup(self.b.close)

    def frames(self, conn, n):
        return [tuple(f[:3]) + (bytes(f[3]),) for f in (conn.recv_frame() for _ in range(n))]

    def test_many_frames_in_one_read(self):
        data = b"".join(wire.frame(DATA, 0, i, b"x" * i) for i in range(50))
        self.a.sendall(data)
        self.assertEqual(self.frames(Conn(self.b), 50), list(wire.iter_frames(data)))

    def test_byte_by_byte(self):
        data = b"".join(wire.frame(DATA, i % 2, i, os.urandom(i * 7)) for i in range(30))

        def dribble():
            for i in range(len(data)):
                self.a.send(data[i:i + 1])
        t = threading.Thread(target=dribble)
        t.start()
        got = self.frames(Conn(self.b, bufsize=64), 30)
        t.join()
        self.assertEqual(got, list(wire.iter_frames(data)))

    def test_frames_larger_than_buffer(self):
        sizes = [10, 100, 1000, 200000, 3, 5 << 20, 0]
        data = b"".join(wire.frame(DATA, 0, i, os.urandom(n)) for i, n in enumerate(sizes))
        t = threading.Thread(target=self.a.sendall, args=(data,))
        t.start()
        got = self.frames(Conn(self.b, bufsize=1024), len(sizes))
        t.join()
        self.assertEqual(got, list(wire.iter_frames(data)))

    def test_eof(self):
        self.a.sendall(wire.frame(DATA, 0, 1, b"ok") + wire.frame(DATA, 0, 1, b"partial")[:5])
        self.a.close()
        conn = Conn(self.b)
        self.assertEqual(bytes(conn.recv_frame()[3]), b"ok")
        with self.assertRaises(wire.ChannelClosed):
            conn.recv_frame()

    def test_bad_version(self):
        self.a.sendall(b"\x07" + wire.frame(DATA, 0, 1, b"")[1:])
        with self.assertRaisesRegex(wire.ProtocolError, "version 7"):
            Conn(self.b).recv_frame()

    def test_too_large_from_header_alone(self):
        self.a.sendall(wire.HEADER.pack(1, DATA, 0, 1, MAX_PAYLOAD + 1))
        with self.assertRaises(wire.ProtocolError):
            Conn(self.b).recv_frame()  # must not wait for the payload

    def test_fds_queue_in_order(self):
        files = []
        for text in (b"first", b"second"):
            f = tempfile.TemporaryFile()
            f.write(text)
            f.flush()
            files.append(f)
            self.a.sendmsg([wire.frame(wire.FILE, END_STREAM, 1, wire.FILE_RANGE.pack(0, -1))],
                           [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [f.fileno()]))])
        conn = Conn(self.b, fds=True)
        conn.recv_frame()
        conn.recv_frame()
        got = [os.pread(conn.fds.popleft(), 10, 0) for _ in range(2)]
        self.assertEqual(got, [b"first", b"second"])
        for f in files:
            f.close()

    def test_send_fd(self):
        with tempfile.TemporaryFile() as f:
            f.write(b"content")
            f.flush()
            Conn(self.a).send_fd(wire.frame(wire.FILE, END_STREAM, 1, wire.FILE_RANGE.pack(2, 3)), f.fileno())
        conn = Conn(self.b, fds=True)
        ftype, flags, stream, payload = conn.recv_frame()
        self.assertEqual(wire.FILE_RANGE.unpack(payload), (2, 3))
        fd = conn.fds.popleft()
        self.assertEqual(os.pread(fd, 3, 2), b"nte")
        os.close(fd)

    def test_send_parts_partial_writes(self):
        payload = os.urandom(3 << 20)
        sender = Conn(self.a)
        t = threading.Thread(target=sender.send_frame, args=(DATA, END_STREAM, 5, payload))
        t.start()
        got = Conn(self.b).recv_frame()
        t.join()
        self.assertEqual((got[0], got[1], got[2], bytes(got[3])), (DATA, END_STREAM, 5, payload))

    def test_pending(self):
        self.b.settimeout(None)  # the worker's sockets block; a timeout would make recv wait
        conn = Conn(self.b)
        self.assertFalse(conn.pending())
        self.a.sendall(wire.frame(DATA, 0, 1, b"x"))
        self.assertTrue(conn.pending())
        conn.recv_frame()
        self.assertFalse(conn.pending())
        self.a.close()
        with self.assertRaises(wire.ChannelClosed):
            conn.pending()

    def test_send_on_closed_socket(self):
        self.b.close()
        with self.assertRaises(wire.ChannelClosed):
            Conn(self.a).send(b"x" * 100)


if __name__ == "__main__":
    unittest.main()
