"""End-to-end tests of the WSGI side: a real worker process, the harness as the front."""

import hashlib
import io
import json
import os
import select
import tempfile
import unittest

from . import harness
from .harness import ABORT, CANCEL, CREDIT, DATA, END_STREAM, PING, PONG, RESPONSE, environ
from whisk_worker import wire

NASTY_PATH = "/nul\x00/" + "".join(chr(i) for i in range(0x80, 0x100)) + "/caf\xc3\xa9"


class WorkerCase(unittest.TestCase):
    """Starts one worker for the class and hands it one channel."""

    app = "responses"
    kwargs: dict = {}

    @classmethod
    def setUpClass(cls):
        cls.worker = harness.Worker(cls.app, **cls.kwargs)
        cls.hello = cls.worker.hello()
        cls.ch = cls.worker.channel()

    @classmethod
    def tearDownClass(cls):
        cls.worker.close()

    def get(self, path, **kw):
        return self.ch.request(path=path, **kw)

    def events(self):
        return self.get("/events").json()

    def assertOK(self, r, body=None):
        self.assertIsNone(r.aborted, r)
        self.assertEqual(r.status[:3], "200", r)
        if body is not None:
            self.assertEqual(r.body, body)


class HelloTest(WorkerCase):
    app = "hello"
    kwargs = {"threads": 4, "processes": 2}

    def test_hello_frame(self):
        self.assertEqual(self.hello["runtime"], "whisk_worker/1")
        self.assertEqual(self.hello["wire"], 1)
        self.assertEqual(self.hello["pid"], self.worker.proc.pid)
        self.assertRegex(self.hello["python"], r"^3\.\d+\.\d+")

    def test_one_frame_per_small_response(self):
        r = self.get("/")
        self.assertOK(r, b"Hello, world!")
        self.assertEqual(r.frames, [(RESPONSE, END_STREAM, r.frames[0][2])])
        self.assertEqual(r.headers, [("Content-Type", "text/plain"), ("Content-Length", "13")])

    def test_many_requests(self):
        for _ in range(200):
            self.assertOK(self.get("/"), b"Hello, world!")

    def test_ping_on_request_channel(self):
        self.ch.send(wire.frame(PING, 0, 0, b"\x00abc"))
        self.assertEqual(self.ch.recv(), (PONG, 0, 0, b"\x00abc"))
        self.assertOK(self.get("/"))

    def test_stale_frames_are_dropped(self):
        old = self.ch.stream
        self.ch.send(wire.credit_frame(old, 100) + wire.frame(CANCEL, 0, old) + wire.frame(DATA, 0, old, b"late")
                     + wire.frame(DATA, END_STREAM, old + 1000, b"never opened"))
        self.assertOK(self.get("/"), b"Hello, world!")


class EnvironTest(WorkerCase):
    app = "environ_dump"
    kwargs = {"threads": 4, "processes": 1}

    def test_environ(self):
        env = environ("POST", NASTY_PATH, query="a=%00&b=\xff", headers={"X-Bytes": "\x00\x01\xfe\xff"},
                      body=b"the body")
        env["SCRIPT_NAME"] = "/mount"
        got = self.ch.request(env, b"the body").json()
        for k, v in env.items():
            self.assertEqual(got[k], v, k)
        self.assertEqual(got["wsgi.version"], [1, 0])
        self.assertEqual(got["flags"], [True, False, False, True])
        self.assertTrue(got["errors_is_stderr"])
        self.assertEqual(got["wsgi.input"], "<BytesIO>")
        self.assertEqual(got["wsgi.file_wrapper"], "<type>")
        self.assertEqual(got["input_body"], "the body")

    def test_streamed_input_type(self):
        got = self.ch.request(environ("PUT", "/", body=b"x" * 100), b"x" * 100, inline=False).json()
        self.assertEqual(got["wsgi.input"], "<Input>")
        self.assertEqual(got["input_body"], "x" * 100)


class ValidatorTest(WorkerCase):
    app = "environ_dump:validated"

    def test_validator_accepts(self):
        for method, body in (("GET", b""), ("POST", b"abc"), ("PUT", b"y" * 70000)):
            with self.subTest(method=method):
                r = self.ch.request(environ(method, NASTY_PATH, body=body), body)
                self.assertOK(r)
                self.assertEqual(r.json()["input_body"], body.decode())
        self.assertNotIn("Traceback", self.worker.err())


class BodyTest(WorkerCase):
    app = "body"
    BODY = b"line one\nline two\r\n\nlast line without newline"

    def read(self, mode, body, inline=None):
        env = environ("POST", "/", query=mode, body=body)
        r = self.ch.request(env, body, inline=inline)
        self.assertOK(r)
        return [s.encode("latin-1") for s in r.json()]

    def check_modes(self, body, inline):
        lines = body.splitlines(True)
        cases = {
            "all": [body],
            "none": [body],
            "n=7": [body[i:i + 7] for i in range(0, len(body), 7)] + [b""],
            "line": lines + [b""],
            "lines": lines,
            "iter": lines,
            "past": [body, b"", b"", b""],
        }
        for mode, want in cases.items():
            with self.subTest(mode=mode, inline=inline, size=len(body)):
                self.assertEqual(self.read(mode, body, inline), want)

    def test_inline(self):
        self.check_modes(self.BODY, inline=True)

    def test_streamed_small(self):
        self.check_modes(self.BODY, inline=False)

    def test_streamed_large(self):
        body = b"".join(b"%06d some line of text\n" % i for i in range(12000)) + b"tail"  # ~300 KiB
        self.check_modes(body, inline=False)

    def test_readline_limit(self):
        for inline in (True, False):
            with self.subTest(inline=inline):
                got = self.read("line=4", b"abcdefghij\nxy\n", inline)
                self.assertEqual(got, [b"abcd", b"efgh", b"ij\n", b"xy\n", b""])

    def test_readlines_hint(self):
        for inline in (True, False):
            with self.subTest(inline=inline):
                for hint in (-1, 0, 1, 2, 3, 4, 6, 7, 100):
                    body = b"ab\ncd\nef\n"
                    self.assertEqual(self.read("lines=%d" % hint, body, inline), io.BytesIO(body).readlines(hint))

    def test_mixed(self):
        for inline in (True, False):
            with self.subTest(inline=inline):
                self.assertEqual(self.read("mixed", b"first\n12345abcdef\nrest", inline),
                                 [b"first\n", b"12345", b"abc", b"def\nrest"])

    def test_empty_body(self):
        for inline in (True, False):
            with self.subTest(inline=inline):
                self.assertEqual(self.read("past", b"", inline), [b"", b"", b"", b""])

    def test_credit_protocol(self):
        """The worker asks for more than the window with CREDIT; the front sends no more unasked."""
        body = os.urandom(1 << 20)
        s, pos = self.ch.start(environ("POST", "/", query="sha", body=body), body, inline=False)
        self.assertEqual(pos, wire.REQUEST_WINDOW)
        granted = 0
        while True:
            ftype, flags, stream, payload = self.ch.recv()
            self.assertEqual(stream, s)
            if ftype != CREDIT:
                break
            n = wire.U32.unpack(payload)[0]
            self.assertGreaterEqual(n, wire.REQUEST_WINDOW)
            granted += n
            pos = self.ch.send_body(s, body, pos, n)
        self.assertEqual(ftype, RESPONSE)
        self.assertGreaterEqual(granted, len(body) - wire.REQUEST_WINDOW)
        self.assertEqual(json.loads(wire.split_response(payload)[2]),
                         [hashlib.sha256(body).hexdigest(), str(len(body))])

    def test_cancel_while_reading(self):
        body = b"z" * 200000
        s, pos = self.ch.start(environ("POST", "/", query="all", body=body), body, inline=False)
        ftype, _, stream, _ = self.ch.recv()
        self.assertEqual((ftype, stream), (CREDIT, s))
        self.ch.send(wire.frame(CANCEL, 0, s))
        ftype = CREDIT
        while ftype == CREDIT:  # credits sent before the worker saw the CANCEL
            ftype, flags, stream, payload = self.ch.recv()
            self.assertEqual(stream, s)
        self.assertEqual(ftype, ABORT, payload)
        self.assertOK(self.ch.request(environ("POST", "/", query="all", body=b"ok"), b"ok"))

    def test_unread_body_is_dropped(self):
        # The app reads 5 bytes of a streamed body; the rest arrives and must not confuse the channel.
        body = b"0123456789" * 3000
        r = self.ch.request(environ("POST", "/", query="line=5", body=body), body, inline=False)
        self.assertOK(r)
        self.assertOK(self.ch.request(environ("POST", "/", query="all", body=b"next"), b"next"))


class ResponseTest(WorkerCase):
    def setUp(self):
        self.events()
    def test_list(self):
        r = self.get("/list", query="n=3&size=4")
        self.assertOK(r, b"a" * 12)
        self.assertEqual(len(r.frames), 1)

    def test_tuple(self):
        self.assertOK(self.get("/tuple"), b"abcd")

    def test_empty(self):
        r = self.get("/empty")
        self.assertEqual((r.status, r.body, r.frames[0][:2]), ("204 No Content", b"", (RESPONSE, END_STREAM)))

    def test_generator_streams_each_block(self):
        r = self.get("/gen", query="n=3&size=5")
        self.assertOK(r, b"AAAAABBBBBCCCCC")
        self.assertEqual([f[:2] for f in r.frames],
                         [(RESPONSE, 0), (DATA, 0), (DATA, 0), (DATA, END_STREAM)])
        self.assertEqual(r.frames[0][2] - 4 - len(wire.encode_head(r.status, r.headers)), 5)
        self.assertEqual(self.events(), ["gen:yield:0", "gen:yield:1", "gen:yield:2", "gen:closed"])

    def test_generator_with_content_length_ends_with_last_block(self):
        r = self.get("/gen-cl", query="n=1&size=50")
        self.assertOK(r, b"x" * 50)
        self.assertEqual(r.frames[0][:2], (RESPONSE, END_STREAM))
        self.assertEqual(len(r.frames), 1)
        self.assertEqual(self.events(), ["gencl:yield:0", "gencl:closed"])
        r = self.get("/gen-cl", query="n=3&size=5")
        self.assertOK(r, b"x" * 15)
        self.assertEqual(r.frames[-1], (DATA, END_STREAM, 5))

    def test_head_waits_for_first_nonempty_block(self):
        r = self.get("/gen-empty-first")
        self.assertOK(r, b"late")
        self.assertEqual(r.frames[0], (RESPONSE, 0, r.frames[0][2]))
        self.assertEqual(r.frames[0][2] - 4 - len(wire.encode_head(r.status, r.headers)), 4)

    def test_start_response_inside_iterable(self):
        r = self.get("/late-start")
        self.assertEqual((r.status, r.body), ("201 Created", b"late"))

    def test_write(self):
        r = self.get("/write")
        self.assertOK(r, b"one,two,three")
        self.assertEqual([f[:2] for f in r.frames][:3], [(RESPONSE, 0), (DATA, 0), (DATA, 0)])

    def test_big_body_is_split_by_credit(self):
        size = 3 << 20
        r = self.get("/big", query="size=%d" % size)
        self.assertOK(r, bytes(range(256)) * (size // 256) + b"!")
        window = 1 << 20
        body_bytes = [n - (4 + len(wire.encode_head(r.status, r.headers)) if t == RESPONSE else 0)
                      for t, _, n in r.frames]
        self.assertTrue(all(n <= window for n in body_bytes), body_bytes)

    def test_error_before_headers(self):
        r = self.get("/error-before")
        self.assertEqual(r.aborted, "ValueError: boom before second line")
        self.assertEqual(r.frames, [(ABORT, 0, len(r.aborted))])
        err = self.worker.wait_stderr("boom before")
        self.assertIn("error in app handling GET /error-before:\nTraceback", err)
        self.assertOK(self.get("/list"))

    def test_error_after_headers(self):
        r = self.get("/error-after")
        self.assertEqual((r.status, r.body), ("200 OK", b"first"))
        self.assertEqual(r.aborted, "RuntimeError: failed at block 1")
        self.assertEqual(self.events(), ["errafter:yield:0", "errafter:closed"])
        self.assertOK(self.get("/list"))

    def test_error_in_close_is_logged(self):
        self.assertOK(self.get("/error-in-close"), b"fine")
        self.worker.wait_stderr("RuntimeError: close failed")
        self.assertOK(self.get("/list"))

    def test_exc_info_replaces_headers(self):
        r = self.get("/exc-info")
        self.assertEqual((r.status, r.headers, r.body), ("500 Internal Server Error", [("X-After", "1")], b"replaced"))

    def test_exc_info_after_headers_reraises(self):
        r = self.get("/exc-info-late")
        self.assertEqual((r.status, r.body, r.aborted), ("200 OK", b"head sent", "KeyError: 'late'"))

    def test_app_mistakes(self):
        for path, msg in [("/twice", "start_response() called twice"),
                          ("/no-start", "without calling start_response"),
                          ("/str-body", "bytes-like"),
                          ("/bad-status", "status must be a str")]:
            with self.subTest(path=path):
                r = self.get(path)
                self.assertIn(msg, r.aborted or "", r)
        self.assertOK(self.get("/list"))

    def test_str_subclass_head(self):
        r = self.get("/str-subclass")
        self.assertEqual((r.status, r.headers, r.body), ("200 OK", [("X-Sub", "yes")], b"sub"))

    def test_head_method(self):
        for path in ("/gen", "/list", "/write", "/empty", "/gen-empty-first"):
            with self.subTest(path=path):
                r = self.get(path, method="HEAD")
                self.assertEqual(r.body, b"")
                self.assertEqual(r.frames, [(RESPONSE, END_STREAM, r.frames[0][2])])
        events = self.events()
        self.assertEqual(events[:2], ["gen:yield:0", "gen:closed"])

    def test_file_wrapper_sends_fd(self):
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"0123456789abcdef")
            f.flush()
            r = self.get("/file", query="path=%s" % f.name)
            self.assertOK(r, b"")
            self.assertEqual([t for t, _, _ in r.frames], [RESPONSE, wire.FILE])
            self.assertEqual(r.frames[-1][1], END_STREAM)
            self.assertEqual(r.file, (0, -1, b"0123456789abcdef"))
            r = self.get("/file", query="path=%s&seek=3&cl=5" % f.name)
            self.assertEqual(r.file, (3, 5, b"34567"))
            self.assertEqual(self.events(), ["file:closed", "file:closed"])
            r = self.get("/file", query="path=%s" % f.name, method="HEAD")
            self.assertEqual((r.frames[0][:2], len(r.frames), r.file), ((RESPONSE, END_STREAM), 1, None))
            self.assertEqual(self.events(), ["file:closed"])

    def test_file_wrapper_not_a_file(self):
        self.assertOK(self.get("/file-bytesio"), b"in memory file")
        self.assertOK(self.get("/file", query="path=/dev/null"), b"")  # not a regular file: iterated

    def test_stdout_and_wsgi_errors_reach_the_pipes(self):
        self.assertOK(self.get("/print"), b"printed")
        self.worker.wait_stderr("to wsgi.errors")
        for _ in range(500):
            if "to stdout\n" in self.worker.stdout:
                break
            __import__("time").sleep(0.01)
        self.assertIn("to stdout\n", self.worker.stdout)


class CreditTest(WorkerCase):
    kwargs = {"window": 10}

    def setUp(self):
        self.events()

    def assertNothingSent(self):
        readable, _, _ = select.select([self.ch.sock], [], [], 0.2)
        self.assertEqual(readable, [])

    def test_generator_waits_for_credit(self):
        r = self.get("/gen", query="n=6&size=7")
        self.assertOK(r, b"".join(bytes([65 + i]) * 7 for i in range(6)))
        head = 4 + len(wire.encode_head(r.status, r.headers))
        sizes = [n - head if t == RESPONSE else n for t, _, n in r.frames]
        self.assertTrue(all(n <= 10 for n in sizes), sizes)

    def test_list_waits_for_credit(self):
        r = self.get("/list", query="n=5&size=9")
        self.assertOK(r, b"a" * 45)
        self.assertGreater(len(r.frames), 4)

    def test_nothing_beyond_window_without_credit(self):
        s, _ = self.ch.start(environ(path="/gen", query="n=6&size=4"))
        r = self.ch.response(s, grant=False, limit=3)  # RESPONSE(4) DATA(4) DATA(2): window spent
        self.assertEqual(len(r.body), 10)
        self.assertNothingSent()
        self.ch.send(wire.credit_frame(s, 100))
        r2 = self.ch.response(s, grant=False)
        self.assertEqual(r.body + r2.body, b"AAAABBBBCCCCDDDDEEEEFFFF")
        self.events()

    def test_cancel_during_credit_wait_calls_close(self):
        s, _ = self.ch.start(environ(path="/gen", query="n=100&size=5"))
        r = self.ch.response(s, grant=False, limit=2)
        self.assertEqual(len(r.body), 10)
        self.ch.send(wire.frame(CANCEL, 0, s))
        ftype, _, stream, payload = self.ch.recv()
        self.assertEqual((ftype, stream), (ABORT, s))
        events = self.events()
        self.assertEqual(events[-1], "gen:closed")
        self.assertLess(len(events), 10)
        self.assertNotIn("Traceback", self.worker.err())

    def test_cancel_seen_at_next_send(self):
        self.worker.channel(2)  # another channel, to release the blocked request
        s, _ = self.ch.start(environ(path="/gen", query="n=3&size=1"))
        self.ch.send(wire.frame(CANCEL, 0, s))
        # The cancel arrives while the app runs; the stream ends with ABORT, or the response
        # completed first (it was short): either way the worker's half ends.
        r = self.ch.response(s, grant=True)
        self.assertTrue(r.aborted or r.frames[-1][1] & END_STREAM, r)
        self.assertOK(self.get("/list"))
        self.events()


class ConcurrencyTest(WorkerCase):
    kwargs = {"threads": 2}

    def test_channels_are_served_concurrently(self):
        other = self.worker.channel(2)
        s, _ = self.ch.start(environ(path="/block"))
        self.worker.wait_stderr  # noqa: B018 (keeps flake quiet)
        self.assertOK(other.request(path="/release"), b"ok")
        r = self.ch.response(s)
        self.assertOK(r, b"released")


if __name__ == "__main__":
    unittest.main()


class DescribeTest(unittest.TestCase):
    """How the worker names a request in its log lines."""

    def test_request_id_mark(self):
        from whisk_worker.wsgi import _describe
        env = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/app", "PATH_INFO": "/x\x00y"}
        self.assertEqual(_describe(env), "GET /app/x\\x00y")
        env["whisk.request_id"] = "9f2c01"
        self.assertEqual(_describe(env), "GET /app/x\\x00y [request 9f2c01]")
