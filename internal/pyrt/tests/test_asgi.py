"""The ASGI side (docs/protocol.md, "ASGI"): a real worker process, the harness as the front."""

import functools
import hashlib
import json
import os
import subprocess
import tempfile
import time
import unittest

from . import harness, spec
from .harness import ABORT, CREDIT, DATA, END_STREAM, FILE, MESSAGE, MORE, PING, PONG, RESPONSE, TEXT, scope
from whisk_worker import loader, wire
from whisk_worker.preload import FORKED

APP = "asgi_app:app"


class DetectTest(unittest.TestCase):
    """--interface auto: a coroutine function, or an object whose __call__ is one, is ASGI 3."""

    def start(self, app, *args, **kw):
        w = harness.Worker(app, *args, **kw)
        self.addCleanup(w.close)
        return w

    def test_async_function(self):
        w = self.start(APP)
        self.assertEqual(w.hello()["interface"], "asgi")
        self.assertEqual(w.mux().get("/").body, b"Hello, world!")

    def test_instance_with_async_call(self):
        w = self.start("asgi_app:handler")
        self.assertEqual(w.hello()["interface"], "asgi")
        got = w.mux().get("/").json()
        self.assertEqual(got, {"app": "handler", "has_state": False})

    def test_wsgi_app(self):
        w = self.start("asgi_app:wsgi_app")
        self.assertEqual(w.hello()["interface"], "wsgi")
        self.assertEqual(w.channel().request().body, b"wsgi")

    def test_forced_wsgi_on_an_asgi_app_fails(self):
        for app in (APP, "asgi_app:handler"):
            with self.subTest(app=app):
                w = self.start(app, "--interface", "wsgi")
                failed = w.failed()
                self.assertIn("is an ASGI app", failed["error"])
                self.assertIn("interface is set to wsgi", failed["error"])
                self.assertIn('set interface = "asgi"', failed["hint"])
                self.assertIn("remove the setting", failed["hint"])
                self.assertEqual(w.wait(), 3)

    def test_forced_asgi(self):
        w = self.start(APP, "--interface", "asgi")
        self.assertEqual(w.hello()["interface"], "asgi")

    def test_is_asgi(self):
        async def coro(scope, receive, send):
            pass

        def plain(environ, start_response):
            pass

        class AsyncCall:
            async def __call__(self, scope, receive, send):
                pass

        class SyncCall:
            def __call__(self, environ, start_response):
                pass

        self.assertTrue(loader.is_asgi(coro))
        self.assertTrue(loader.is_asgi(AsyncCall()))
        self.assertTrue(loader.is_asgi(functools.partial(coro)))
        self.assertFalse(loader.is_asgi(plain))
        self.assertFalse(loader.is_asgi(SyncCall()))
        self.assertFalse(loader.is_asgi(AsyncCall))  # the class: calling it makes an instance (ASGI 2)
        try:
            import flask
        except ImportError:
            return
        self.assertFalse(loader.is_asgi(flask.Flask("x")))


class LifespanTest(unittest.TestCase):
    def start(self, app=APP, *args, **kw):
        w = harness.Worker(app, *args, **kw)
        self.addCleanup(w.close)
        return w

    def test_startup_state_reaches_each_request_as_a_copy(self):
        w = self.start()
        hello = w.hello()
        m = w.mux()
        sc = m.get("/scope").json()
        self.assertEqual(sc["state"], {"started_in": hello["pid"], "db": "ready"})
        self.assertEqual(sc["asgi"], {"version": "3.0", "spec_version": "2.4"})
        self.assertEqual(sc["extensions"], {"http.response.pathsend": {}})
        self.assertEqual(m.get("/state-mutate").json()["mutated"], True)
        self.assertNotIn("mutated", m.get("/scope").json()["state"])  # a shallow copy per request

    def test_startup_failed(self):
        w = self.start(env={"ASGI_STARTUP": "fail"})
        failed = w.failed()
        self.assertEqual(failed["stage"], "lifespan")
        self.assertEqual(failed["error"], "ASGI lifespan startup failed: no database")
        self.assertEqual(w.wait(), 3)

    def test_startup_raised(self):
        w = self.start(env={"ASGI_STARTUP": "raise"})
        failed = w.failed()
        self.assertEqual(failed["stage"], "lifespan")
        self.assertEqual(failed["error"], "ASGI lifespan startup failed: RuntimeError: db down")
        self.assertIn('raise RuntimeError("db down")', failed["traceback"])
        self.assertNotIn("whisk_worker", failed["traceback"])
        self.assertTrue(failed["hint"])
        self.assertEqual(w.wait(), 3)

    def test_app_without_lifespan_serves(self):
        w = self.start("asgi_app:handler")
        w.hello()
        self.assertEqual(w.mux().get("/").json(), {"app": "handler", "has_state": False})
        err = w.wait_stderr("does not support lifespan")
        self.assertIn("ValueError: Django can only handle ASGI/HTTP connections, not lifespan.", err)
        self.assertNotIn("Traceback", err)
        w.stop()
        self.assertEqual(w.wait(), 0)

    def test_stop_waits_for_tasks_then_shuts_down(self):
        w = self.start()
        w.hello()
        m = w.mux()
        s = m.open(scope(path="/sleep", query=b"s=0.4"))
        time.sleep(0.1)  # the request is running
        w.stop()
        self.assertEqual(w.ping(), b"hi")  # the control channel is served while waiting
        r = m.response(s)
        self.assertEqual(r.body, b"slept")
        self.assertEqual(w.wait(), 0)
        self.assertIn("lifespan shutdown ran (0 in flight)", w.err())

    def test_stop_serves_the_requests_sent_before_it(self):
        w = self.start()
        w.hello()
        m = w.mux()
        m.get("/")  # the channel is being served
        ids = [m.open(scope(path="/sleep", query=b"s=0.1")) for _ in range(5)]
        w.stop()  # at once: the REQUESTs may still be in the channel's socket
        self.assertEqual([m.response(s).body for s in ids], [b"slept"] * 5)
        self.assertEqual(w.wait(), 0)

    def test_shutdown_failed_is_logged(self):
        w = self.start(env={"ASGI_SHUTDOWN": "fail"})
        w.hello()
        w.stop()
        self.assertEqual(w.wait(), 0)
        self.assertIn("ASGI lifespan shutdown failed: cannot flush", w.err())

    def test_preload_runs_lifespan_in_the_forked_worker(self):
        from .test_preload import Forked
        server = harness.Worker(APP, "--preload")
        self.addCleanup(server.close)
        self.assertEqual(server.hello()["interface"], "asgi")
        child = Forked(server, 1)
        self.addCleanup(child.close)
        ftype, _, _, payload = server.recv()
        self.assertEqual(ftype, FORKED)
        pid = json.loads(payload)["pid"]
        hello = child.hello()
        self.assertEqual((hello["pid"], hello["interface"]), (pid, "asgi"))
        state = child.mux().get("/scope").json()["state"]
        self.assertEqual(state["started_in"], pid)
        self.assertNotEqual(pid, server.proc.pid)


class ASGICase(unittest.TestCase):
    """One worker (response window 64 KiB) for the class, one channel."""

    kwargs = {"window": 65536, "threads": 2}

    @classmethod
    def setUpClass(cls):
        cls.worker = harness.Worker(APP, **cls.kwargs)
        cls.hello = cls.worker.hello()
        cls.m = cls.worker.mux()

    @classmethod
    def tearDownClass(cls):
        cls.worker.close()

    def events(self):
        return self.m.get("/events").json()


class HTTPTest(ASGICase):
    def test_hello_in_one_frame(self):
        r = self.m.get("/")
        self.assertEqual(r.frames, [(RESPONSE, END_STREAM, r.frames[0][2])])
        self.assertEqual((r.status, r.body), ("200", b"Hello, world!"))
        self.assertEqual(r.headers, [(b"content-type", b"text/plain"), (b"content-length", b"13")])

    def test_marshal_codes(self):
        # The head: the app's bytes headers as 's', the status as 'u', nothing else.
        s = self.m.open(scope(path="/"))
        ftype, _, payload, _ = self.m.next(s)
        n = wire.U32.unpack_from(payload)[0]
        self.assertEqual(spec.read(payload[4:4 + n], "([su"),
                         ("200", [(b"content-type", b"text/plain"), (b"content-length", b"13")]))
        # The scope the harness sends uses only the codes the contract lists.
        meta = wire.request_frame(1, 0, scope(path="/caf\xe9", subprotocols=["a"], client=None))[16:]
        self.assertEqual(spec.read(meta, "{0usiN(["), scope(path="/caf\xe9", subprotocols=["a"], client=None))

    def test_scope(self):
        sc = self.m.request(scope(path="/scope", query=b"a=1", headers=[(b"x-y", b"z")],
                                  **{"whisk.request_id": "r-42"})).json()
        self.assertEqual(sc["headers"], [["host", "localhost:8080"], ["x-y", "z"]])
        self.assertEqual((sc["query_string"], sc["client"], sc["whisk.request_id"]),
                         ("a=1", ["127.0.0.1", 50000], "r-42"))

    def test_streamed_request_body_with_credits(self):
        body = os.urandom(300 << 10)
        r = self.m.request(scope(path="/echo", method="POST"), body=body)
        got = r.json()
        self.assertEqual(got["size"], len(body))
        self.assertEqual(got["sha256"], hashlib.sha256(body).hexdigest())
        self.assertGreater(got["chunks"], 2)
        # The front sent the window unasked, the rest as the worker granted it.
        self.assertGreaterEqual(sum(r.credits), len(body) - harness.REQUEST_WINDOW)
        self.assertEqual(r.frames[-1][:2], (RESPONSE, END_STREAM))

    def test_request_body_waits_for_credit(self):
        # Without reading the body the app grants nothing: the front may send only the window.
        s = self.m.open(scope(path="/sleep", query=b"s=0.3", method="POST"), body=b"x" * (200 << 10))
        r = self.m.response(s)
        self.assertEqual((r.body, r.credits), (b"slept", []))

    def test_streamed_response_waits_for_credit(self):
        size = 200000
        s = self.m.open(scope(path="/big", query=b"size=%d" % size))
        got = b""
        frames = []
        while len(got) < 65536:
            ftype, flags, payload, _ = self.m.next(s)
            frames.append((ftype, flags))
            got += wire.split_response(payload)[2] if ftype == RESPONSE else payload
        self.assertEqual(len(got), 65536)  # the response window, and not a byte more ...
        self.assertTrue(self.m.quiet(s))  # ... until the front grants credit
        self.m.send(wire.credit_frame(s, 50000))
        ftype, flags, payload, _ = self.m.next(s)
        self.assertEqual((ftype, flags, len(payload)), (DATA, 0, 50000))
        self.assertTrue(self.m.quiet(s))
        self.m.send(wire.credit_frame(s, 1 << 20))
        r = self.m.response(s)
        self.assertEqual(got + payload + r.body, bytes(i % 251 for i in range(size)))
        self.assertEqual(r.frames[-1], (DATA, END_STREAM, size - 65536 - 50000))
        self.assertIn("big sent", self.events()["events"])

    def test_streamed_body_messages(self):
        r = self.m.get("/stream", query=b"n=3&size=4")
        self.assertEqual(r.body, b"aaaabbbbcccc")
        self.assertEqual([f[:2] for f in r.frames], [(RESPONSE, 0), (DATA, 0), (DATA, 0), (DATA, END_STREAM)])

    def test_pathsend(self):
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(b"file body " * 1000)
        self.addCleanup(os.unlink, f.name)
        r = self.m.get("/file", query=b"path=" + f.name.encode())
        self.assertEqual([f[:2] for f in r.frames], [(RESPONSE, 0), (FILE, END_STREAM)])
        self.assertEqual((r.status, r.body), ("200", b""))
        self.assertEqual(r.file, (0, -1, b"file body " * 1000))
        # The worker closes its descriptor once sent (just after the sendmsg: allow it a moment).
        proc = "/proc/%d/fd" % self.worker.proc.pid
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            fds = os.listdir(proc)
            if not any(os.path.realpath(os.path.join(proc, fd)) == f.name for fd in fds):
                break
            time.sleep(0.01)
        else:
            self.fail("the worker kept the file's descriptor open")

    def test_pathsend_errors_abort(self):
        r = self.m.get("/file", query=b"path=/nonexistent/whisk")
        self.assertIn("FileNotFoundError", r.aborted)
        r = self.m.get("/file", query=b"path=/dev/null")
        self.assertEqual(r.aborted, "ValueError: http.response.pathsend: '/dev/null' is not a regular file")

    def test_pathsend_head(self):
        with tempfile.NamedTemporaryFile() as f:
            r = self.m.request(scope(path="/file", query=b"path=" + f.name.encode(), method="HEAD"))
        self.assertEqual(r.frames, [(RESPONSE, END_STREAM, r.frames[0][2])])
        self.assertEqual((r.status, r.file), ("200", None))

    def test_head_request_sends_the_head_only(self):
        r = self.m.request(scope(path="/big", query=b"size=100000", method="HEAD"))
        self.assertEqual(r.frames, [(RESPONSE, END_STREAM, r.frames[0][2])])
        self.assertEqual((r.status, r.body), ("200", b""))

    def test_disconnect(self):
        s = self.m.open(scope(path="/disconnect"))
        r = self.m.response(s, limit=1)
        self.assertEqual((r.frames[0][:2], r.body), ((RESPONSE, 0), b"first"))
        self.assertTrue(self.m.quiet(s, 0.2))  # receive() waits: the body is over, the client is here
        self.m.send(wire.cancel_frame(s))
        r = self.m.response(s)
        self.assertEqual(r.aborted, "request cancelled")
        self.assertEqual(self.events()["events"], ["http.request", "http.disconnect", "ClientDisconnected"])
        self.assertNotIn("Traceback", self.worker.err())

    def test_timeout_cancels_the_task(self):
        other = self.m.open(scope(path="/sleep", query=b"s=0.5"))
        s = self.m.open(scope(path="/stuck", **{"whisk.request_id": "t-1"}))
        time.sleep(0.1)
        self.m.send(wire.cancel_frame(s, wire.CANCEL_TIMEOUT))
        r = self.m.response(s)
        self.assertEqual(r.aborted, "request timed out")
        err = self.worker.wait_stderr("GET /stuck [request t-1] timed out; cancelling its task")
        stack = logged_stack(err, "GET /stuck [request t-1] timed out")
        self.assertRegex(stack, r'File ".*asgi_app\.py", line \d+, in http\n')
        self.assertRegex(stack, r'File ".*asgi_app\.py", line \d+, in wait_forever\n')
        self.assertNotIn("whisk_worker", stack)  # the app's frames only
        self.assertEqual(self.m.response(other).body, b"slept")  # the other stream did not notice
        self.assertIn("cancelled", self.events()["events"])

    def test_exception_aborts(self):
        r = self.m.request(scope(path="/raise", **{"whisk.request_id": "e-1"}))
        self.assertEqual(r.aborted, "ValueError: boom")
        err = self.worker.wait_stderr("error in app handling GET /raise [request e-1]:\nTraceback")
        self.assertIn('raise ValueError("boom")', err)

    def test_incomplete_response_aborts(self):
        self.assertEqual(self.m.get("/incomplete").aborted, "the app returned without completing the response")
        self.assertEqual(self.m.get("/nothing").aborted, "the app returned without sending http.response.start")

    def test_default_executor_has_threads_threads(self):
        ids = [self.m.open(scope(path="/executor", query=b"s=0.2")) for _ in range(4)]
        names = {self.m.response(s).body for s in ids}
        self.assertEqual(len(names), 2, names)  # --threads 2
        self.assertTrue(all(n.startswith(b"whisk-asgi") for n in names), names)

    def test_two_streams_interleaved(self):
        # A's body is still coming while B is served whole on the same channel.
        a = self.m.open(scope(path="/echo", method="POST"), body=b"part one,", end=False)
        b = self.m.open(scope(path="/"))
        self.assertEqual(self.m.response(b).body, b"Hello, world!")
        self.m.end_body(a, b" part two")
        got = self.m.response(a).json()
        self.assertEqual(got["sha256"], hashlib.sha256(b"part one, part two").hexdigest())
        # Two streamed responses with pauses: their frames alternate on the channel.
        start = len(self.m.order)
        x = self.m.open(scope(path="/stream", query=b"n=4&delay=0.05"))
        y = self.m.open(scope(path="/stream", query=b"n=4&delay=0.05"))
        rx, ry = self.m.response(x), self.m.response(y)
        self.assertEqual((rx.body, ry.body), (b"aaaaabbbbbcccccddddd",) * 2)
        order = [sid for sid, _ in self.m.order[start:]]
        self.assertLess(order.index(y), len(order) - 1 - order[::-1].index(x), order)

    def test_concurrent_streams(self):
        self.events()
        n = 200
        t0 = time.monotonic()
        ids = [self.m.open(scope(path="/sleep", query=b"s=0.2")) for _ in range(n)]
        bodies = [self.m.response(s).body for s in ids]
        elapsed = time.monotonic() - t0
        self.assertEqual(bodies.count(b"slept"), n)
        self.assertGreater(self.events()["most_in_flight"], n // 2)  # they overlapped
        self.assertLess(elapsed, n * 0.2 / 4)

    def test_ping(self):
        self.m.send(wire.frame(PING, 0, 0, b"\x00abc"))
        self.assertEqual(self.m.next(0)[:3], (PONG, 0, b"\x00abc"))

    def test_stale_frames_are_dropped(self):
        old = self.m.last
        self.m.send(wire.credit_frame(old, 100) + wire.cancel_frame(old) + wire.frame(DATA, 0, old, b"late")
                    + wire.frame(MESSAGE, 0, old, b"late") + wire.frame(DATA, END_STREAM, old + 1000, b"never"))
        self.assertEqual(self.m.get("/").body, b"Hello, world!")


class WriteQueueTest(unittest.TestCase):
    """Output the socket does not take waits in the channel's queue, a descriptor with it."""

    def test_front_reading_late(self):
        w = harness.Worker(APP, window=16 << 20)
        self.addCleanup(w.close)
        w.hello()
        m = w.mux()
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(b"queued file")
        self.addCleanup(os.unlink, f.name)
        # Pause the front's reader: frames pile up in the socket, then in the worker's queue.
        with m.qlock:
            big = m.open(scope(path="/big", query=b"size=%d" % (3 << 20)))
            small = m.open(scope(path="/"))
            fil = m.open(scope(path="/file", query=b"path=" + f.name.encode()))
            time.sleep(0.3)
        r = m.response(big)
        self.assertEqual(r.body, bytes(i % 251 for i in range(3 << 20)))
        self.assertEqual(m.response(small).body, b"Hello, world!")
        self.assertEqual(m.response(fil).file, (0, -1, b"queued file"))


class ProtocolErrorTest(unittest.TestCase):
    def start(self):
        w = harness.Worker(APP)
        self.addCleanup(w.close)
        w.hello()
        return w

    def test_bad_frames_close_the_channel_only(self):
        for name, bad in (
            ("message in http", lambda s: wire.frame(MESSAGE, 0, s, b"x")),
            ("reused id", lambda s: wire.request_frame(s, END_STREAM, scope(path="/"))),
            ("unknown type", lambda s: wire.frame(0x7f, 0, s, b"")),
            ("bad version", lambda s: b"\x02" + wire.frame(PING, 0, 0, b"")[1:]),
            ("oversized", lambda s: wire.HEADER.pack(1, DATA, 0, s, wire.MAX_PAYLOAD + 1)),
        ):
            with self.subTest(name):
                w = self.start()
                m = w.mux(1)
                s = m.open(scope(path="/sleep", query=b"s=5"), end=False)
                time.sleep(0.05)
                m.send(bad(s))
                self.assertTrue(m.closed())
                w.wait_stderr("request channel 1: protocol error")
                w.wait_stderr("cancelling 1 streams")
                self.assertEqual(w.mux(2).get("/").body, b"Hello, world!")

    def test_front_closes_a_channel(self):
        w = self.start()
        m = w.mux(1)
        m.open(scope(path="/stuck"))
        time.sleep(0.05)
        m.close()
        w.wait_stderr("request channel 1 closed by the front; cancelling its 1 streams")
        self.assertEqual(w.mux(2).get("/").body, b"Hello, world!")
        self.assertNotIn("Traceback", w.err())


class WebSocketTest(ASGICase):
    def test_accept_with_subprotocol(self):
        ws = self.m.websocket(subprotocols=("chat", "superchat"))
        self.assertEqual(ws.head.frames, [(RESPONSE, 0, ws.head.frames[0][2])])
        self.assertEqual(ws.head.status, "101")
        self.assertEqual(ws.head.headers, [(b"x-app", b"1"), (b"sec-websocket-protocol", b"superchat")])
        ws.close(1000)
        self.assertEqual(ws.recv(), ("close", 1000, ""))

    def test_no_subprotocol(self):
        ws = self.m.websocket()
        self.assertEqual(ws.head.headers, [(b"x-app", b"1")])
        ws.close(1001)
        self.assertEqual(ws.recv(), ("close", 1001, ""))

    def test_text_and_binary_echo(self):
        ws = self.m.websocket()
        ws.send("héllo")
        self.assertEqual(ws.recv(), ("text", "héllo"))
        ws.send(b"\x00\xff binary")
        self.assertEqual(ws.recv(), ("bytes", b"\x00\xff binary"))
        ws.send(b"")
        self.assertEqual(ws.recv(), ("bytes", b""))
        ws.send("close:4001")
        self.assertEqual(ws.recv(), ("close", 4001, "bye"))

    def test_one_mib_both_ways(self):
        ws = self.m.websocket()
        big = os.urandom(1 << 20)
        ws.send(big)  # the first 64 KiB go unasked; the rest as the worker grants
        kind, got = ws.recv()
        self.assertEqual((kind, len(got)), ("bytes", len(big)))
        self.assertEqual(got, big)
        self.assertGreaterEqual(sum(ws.credits), len(big) - harness.REQUEST_WINDOW)
        # The worker sent it in parts, none above its 64 KiB response window.
        self.assertGreater(len(ws.parts_in), 15)
        self.assertLessEqual(max(ws.parts_in), 65536)
        text = "é" * (300 << 10)
        ws.send(text, part=100000)
        self.assertEqual(ws.recv(), ("text", text))
        ws.close(1000)
        self.assertEqual(ws.recv(), ("close", 1000, ""))

    def test_send_waits_for_credit(self):
        ws = self.m.websocket()
        ws.grant = False
        ws.send(b"x" * 100000)
        s = ws.id
        got = 0
        while got < 65536:
            ftype, flags, payload, _ = self.m.next(s)
            if ftype == CREDIT:  # the worker takes the message in: send the rest of it
                ws.allowance += wire.U32.unpack(payload)[0]
                ws.pump()
            elif ftype == MESSAGE:
                self.assertTrue(flags & MORE)
                got += len(payload)
        self.assertEqual(got, 65536)
        self.assertTrue(self.m.quiet(s))
        self.m.send(wire.credit_frame(s, 1 << 20))
        ftype, flags, payload, _ = self.m.next(s)
        self.assertEqual((ftype, flags & (MORE | TEXT), len(payload)), (MESSAGE, 0, 100000 - 65536))
        ws.close(1000)
        self.assertEqual(ws.recv(), ("close", 1000, ""))

    def test_client_close(self):
        self.events()
        ws = self.m.websocket()
        ws.send("ping")
        self.assertEqual(ws.recv(), ("text", "ping"))
        ws.close(4002, "gone")
        self.assertEqual(ws.recv(), ("close", 4002, "gone"))  # the worker echoes the code
        self.assertEqual(self.events()["events"], [["disconnect", 4002, "gone"], "ClientDisconnected"])

    def test_client_close_then_send_raises_out_of_the_app(self):
        self.events()
        ws = self.m.websocket(query=b"unguarded")
        ws.close(1001, "front going away")
        self.assertEqual(ws.recv(), ("close", 1001, "front going away"))  # CLOSE, not ABORT
        self.assertEqual(self.events()["events"], [["disconnect", 1001, "front going away"]])
        self.assertNotIn("ClientDisconnected", self.worker.err())  # not logged as an app error

    def test_client_lost(self):
        self.events()
        ws = self.m.websocket()
        ws.close(1006)
        self.assertEqual(ws.recv(), ("close", 1006, ""))
        self.assertEqual(self.events()["events"][0], ["disconnect", 1006, ""])

    def test_deny(self):
        ws = self.m.websocket(query=b"deny")
        self.assertEqual((ws.head.status, ws.head.headers, ws.head.body), ("403", [], b""))
        self.assertEqual(ws.head.frames, [(RESPONSE, END_STREAM, ws.head.frames[0][2])])

    def test_http_response_denial(self):
        ws = self.m.websocket(query=b"http")
        self.assertEqual((ws.head.status, ws.head.body), ("401", b"who are you?"))
        self.assertEqual(ws.head.frames[0][:2], (RESPONSE, END_STREAM))

    def test_end_without_close_sends_close_1000(self):
        ws = self.m.websocket(query=b"once")
        self.assertEqual(ws.recv(), ("text", "hi"))
        self.assertEqual(ws.recv(), ("close", 1000, ""))

    def test_exception_after_accept_aborts(self):
        ws = self.m.websocket(query=b"raise")
        self.assertEqual(ws.head.status, "101")
        self.assertEqual(ws.recv(), ("abort", "ValueError: ws boom"))
        self.worker.wait_stderr("error in app handling WebSocket /ws")

    def test_timeout_before_accept(self):
        s = self.m.open(scope("websocket", "/ws", query=b"wait"), end=False)
        self.assertTrue(self.m.quiet(s, 0.1))
        self.m.send(wire.cancel_frame(s, wire.CANCEL_TIMEOUT))
        self.assertEqual(self.m.next(s)[:3], (ABORT, 0, b"request timed out"))
        err = self.worker.wait_stderr("WebSocket /ws timed out; cancelling its task")
        self.assertIn("in wait_forever", logged_stack(err, "WebSocket /ws timed out"))

    def test_client_leaves_before_accept(self):
        s = self.m.open(scope("websocket", "/ws", query=b"wait"), end=False)
        self.assertTrue(self.m.quiet(s, 0.1))
        self.m.send(wire.close_frame(s, 1006))
        self.m.send(wire.cancel_frame(s, wire.CANCEL_TIMEOUT))  # the app waits on: interrupt it
        self.assertEqual(self.m.next(s)[:3], (ABORT, 0, b"request timed out"))

    def test_scope(self):
        ws = self.m.websocket(query=b"scope", subprotocols=("a", "b"))
        kind, text = ws.recv()
        sc = json.loads(text)
        self.assertEqual((sc["type"], sc["scheme"], sc["subprotocols"]), ("websocket", "ws", ["a", "b"]))
        self.assertEqual(sc["extensions"], {"websocket.http.response": {}})
        self.assertEqual(sc["state"], {"started_in": self.hello["pid"], "db": "ready"})
        self.assertNotIn("method", sc)
        ws.close(1000)
        self.assertEqual(ws.recv(), ("close", 1000, ""))


def venv_python():
    """The test virtualenv's interpreter (WHISK_TEST_VENV), if it has Starlette and Django."""
    venv = os.environ.get("WHISK_TEST_VENV")
    python = os.path.join(venv, "bin", "python") if venv else ""
    if not python or not os.path.exists(python):
        return None
    ok = subprocess.run([python, "-c", "import starlette, django"], capture_output=True).returncode == 0
    return python if ok else None


@unittest.skipUnless(venv_python(), "needs WHISK_TEST_VENV with Starlette and Django")
class RealFrameworkTest(unittest.TestCase):
    def start(self, app):
        w = harness.Worker(app, python=venv_python(), window=65536, threads=2)
        self.addCleanup(w.close)
        self.assertEqual(w.hello()["interface"], "asgi")
        return w, w.mux()

    def test_starlette(self):
        w, m = self.start("asgi_starlette_mini:app")
        got = m.get("/state").json()
        self.assertEqual(got, {"greeting": "hi", "startup_pid": w.proc.pid, "pid": w.proc.pid})
        # FileResponse: http.response.pathsend, the front sends the file.
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(b"starlette file")
        self.addCleanup(os.unlink, f.name)
        r = m.get("/file", query=b"path=" + f.name.encode())
        self.assertEqual((r.frames[-1][:2], r.file), ((FILE, END_STREAM), (0, -1, b"starlette file")))
        # A client that leaves an endless stream: send() raises, Starlette gives up, no traceback.
        s = m.open(scope(path="/endless"))
        m.response(s, limit=3)
        m.send(wire.cancel_frame(s))
        self.assertEqual(m.response(s).aborted, "request cancelled")
        # WebSocket.
        ws = m.websocket()
        ws.send("hello")
        self.assertEqual(ws.recv(), ("text", "HELLO"))
        ws.send("bye")
        self.assertEqual(ws.recv(), ("close", 4000, "bye"))
        ws = m.websocket()
        ws.close(1001)
        self.assertEqual(ws.recv(), ("close", 1001, ""))
        w.stop()
        self.assertEqual(w.wait(), 0)
        self.assertNotIn("Traceback", w.err())

    def test_starlette_startup_failure(self):
        w = harness.Worker("asgi_starlette_mini:app", python=venv_python(), env={"STARTUP": "raise"})
        self.addCleanup(w.close)
        failed = w.failed()
        self.assertEqual((failed["stage"], failed["error"]),
                         ("lifespan", "ASGI lifespan startup failed: RuntimeError: no db"))
        self.assertIn('raise RuntimeError("no db")', failed["traceback"])
        self.assertEqual(w.wait(), 3)

    def test_django(self):
        w, m = self.start("asgi_django_mini:application")
        self.assertEqual(m.get("/async/").json(), {"view": "async", "thread": "whisk-asgi-loop"})
        self.assertEqual(m.get("/sync/").json()["view"], "sync")
        body = os.urandom(200 << 10)
        r = m.request(scope(path="/echo/", method="POST", headers=[(b"content-length", b"%d" % len(body))]),
                      body=body)
        self.assertEqual(r.json(), {"size": len(body)})
        w.wait_stderr("does not support lifespan")
        self.assertNotIn("Traceback", w.err())


def logged_stack(err, marker):
    """Return the stack lines logged after marker (the indented lines that follow it)."""
    lines = err[err.index(marker):].split("\n")[1:]
    stack = []
    for line in lines:
        if not line.startswith("  "):
            break
        stack.append(line)
    return "\n".join(stack) + "\n"


if __name__ == "__main__":
    unittest.main()
