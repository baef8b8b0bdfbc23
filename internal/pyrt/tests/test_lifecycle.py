"""The worker's life: HELLO, channels, PING, STOP, the front's death, protocol errors."""

import json
import os
import time
import unittest

from . import harness
from .harness import PING, environ
from whisk_worker import wire


class LifecycleTest(unittest.TestCase):
    def start(self, app="responses", **kw):
        w = harness.Worker(app, **kw)
        self.addCleanup(w.close)
        w.hello()
        return w

    def test_ping_on_control(self):
        w = self.start()
        self.assertEqual(w.ping(b"\x00\xff payload"), b"\x00\xff payload")

    def test_sys_path(self):
        w = harness.Worker("responses", "--pythonpath", "/tmp/first", "--pythonpath", "rel",
                           pythonpath=(harness.APPS,), cwd="/")
        self.addCleanup(w.close)
        w.hello()
        path = w.channel().request(path="/sys-path").json()
        self.assertEqual(path[:4], ["/", harness.APPS, "/tmp/first", "/rel"])
        self.assertEqual(path[-1], harness.PYRT)
        self.assertEqual(path.count(harness.PYRT), 1)
        self.assertNotIn("", path)

    def test_many_channels(self):
        w = self.start(threads=8)
        chans = [w.channel(i) for i in range(8)]
        for i, ch in enumerate(chans):
            r = ch.request(path="/list", query="n=1&size=%d" % (i + 1))
            self.assertEqual(r.body, b"a" * (i + 1))

    def test_stop_waits_for_requests_in_progress(self):
        w = self.start()
        ch = w.channel()
        s, _ = ch.start(environ(path="/sleep", query="t=0.3"))
        time.sleep(0.05)  # let the request start (a REQUEST after STOP is not served)
        w.stop()
        r = ch.response(s)
        self.assertEqual(r.body, b"slept")
        self.assertEqual(w.wait(), 0)

    def test_stop_when_idle(self):
        w = self.start()
        w.channel()
        w.stop()
        self.assertEqual(w.wait(), 0)

    def test_control_eof_exits_at_once(self):
        w = self.start()
        ch = w.channel()
        s, _ = ch.start(environ(path="/sleep", query="t=5"))
        time.sleep(0.05)
        t0 = time.monotonic()
        w.ctl.close()
        self.assertEqual(w.wait(), 0)
        self.assertLess(time.monotonic() - t0, 2)

    def test_bad_version_closes_the_channel_only(self):
        w = self.start()
        ch = w.channel(1)
        ch.send(b"\x02" + wire.frame(PING, 0, 0, b"")[1:])
        self.assertTrue(ch.closed())
        w.wait_stderr("protocol error")
        self.assertEqual(w.channel(2).request(path="/list").body, b"a" * 15)

    def test_unexpected_frame_closes_the_channel(self):
        for bad in (wire.frame(wire.RESPONSE, 0, 1, b"\x00\x00\x00\x00"), wire.frame(0x7f, 0, 1, b""),
                    wire.frame(wire.STOP, 0, 0, b"")):
            with self.subTest(bad=bad[:2]):
                w = self.start()
                ch = w.channel()
                ch.send(bad)
                self.assertTrue(ch.closed())
                w.wait_stderr("unexpected")

    def test_request_during_stream_is_a_protocol_error(self):
        w = self.start("body")
        ch = w.channel()
        self.stream = 1
        ch.send(wire.request_frame(1, 0, environ("POST", "/", query="all", body=b"x" * 10), b"x"))
        ch.send(wire.request_frame(2, wire.END_STREAM, environ()))  # the app is still reading stream 1
        self.assertTrue(ch.closed())

    def test_oversized_frame_closes_the_channel(self):
        w = self.start()
        ch = w.channel()
        ch.send(wire.HEADER.pack(1, wire.DATA, 0, 9, wire.MAX_PAYLOAD + 1))
        self.assertTrue(ch.closed())
        w.wait_stderr("16 MiB")

    def test_front_closes_a_channel(self):
        w = self.start()
        ch = w.channel(1)
        ch.close()
        self.assertEqual(w.channel(2).request(path="/list").body, b"a" * 15)
        self.assertEqual(w.ping(), b"hi")
        self.assertNotIn("Traceback", w.err())

    def test_unexpected_control_frame_exits(self):
        w = self.start()
        w.ctl.sendall(wire.frame(wire.DATA, 0, 0, b""))
        self.assertEqual(w.wait(), 2)

    def test_channel_frame_without_fd(self):
        w = self.start()
        w.ctl.sendall(wire.frame(wire.CHANNEL, 0, 0, json.dumps({"id": 1}).encode()))
        self.assertEqual(w.wait(), 2)
        self.assertIn("without a descriptor", w.err())

    def test_worker_pid(self):
        w = harness.Worker("hello")
        self.addCleanup(w.close)
        self.assertEqual(w.hello()["pid"], w.proc.pid)
        self.assertTrue(os.path.exists("/proc/%d" % w.proc.pid) or True)


if __name__ == "__main__":
    unittest.main()
