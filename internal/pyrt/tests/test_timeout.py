"""The layered request timeout, worker side: a CANCEL with the timeout reason
makes the worker raise RequestTimeout in the app's thread and log its stack."""

import threading
import time
import unittest

from . import harness
from .harness import ABORT, END_STREAM, RESPONSE, environ
from whisk_worker import wire


def cancel_timeout(ch, s):
    ch.send(wire.cancel_frame(s, wire.CANCEL_TIMEOUT))


class InterruptTest(unittest.TestCase):
    """One worker with two threads; each test uses its own channels."""

    @classmethod
    def setUpClass(cls):
        cls.worker = harness.Worker("stuck", threads=2)
        cls.worker.hello()
        cls.ids = iter(range(1, 1000))

    @classmethod
    def tearDownClass(cls):
        cls.worker.close()

    def channel(self):
        return self.worker.channel(next(self.ids))

    def interrupted(self, path, marker):
        """Start path, time it out, and return (channel, response, stderr)."""
        ch = self.channel()
        s, _ = ch.start(environ(path=path))
        time.sleep(0.1)
        cancel_timeout(ch, s)
        r = ch.response(s)
        err = self.worker.wait_stderr(marker)
        return ch, r, err

    def test_busy_loop_is_interrupted_and_its_stack_logged(self):
        ch, r, err = self.interrupted("/spin", "in spin_forever")
        self.assertEqual(r.aborted, "request timed out", r)
        self.assertIn("GET /spin timed out", err)
        self.assertRegex(err, r'File ".*stuck\.py", line \d+, in spin_forever')
        self.assertNotIn("in serve", err)  # whisk_worker's own frames are left out
        self.worker.wait_stderr("GET /spin: the app's thread was interrupted and is free again")
        # The thread serves the next request on its channel.
        r = ch.request(path="/")
        self.assertEqual((r.status, r.body), ("200 OK", b"ok"))

    def test_except_exception_does_not_swallow_it(self):
        ch, r, _ = self.interrupted("/spin-catch", "in catch_all_forever")
        self.assertEqual(r.aborted, "request timed out", r)
        self.assertEqual(ch.request(path="/").body, b"ok")

    def test_generator_between_blocks(self):
        ch = self.channel()
        s, _ = ch.start(environ(path="/spin-gen"))
        r = ch.response(s, limit=1)  # RESPONSE with the first block
        self.assertEqual((r.status, r.body), ("200 OK", b"first"))
        cancel_timeout(ch, s)
        r = ch.response(s)
        self.assertEqual(r.aborted, "request timed out", r)
        self.worker.wait_stderr("in spin_generator")
        self.assertEqual(ch.request(path="/closed").body, b"1")

    def test_blocked_in_c_gets_it_when_the_call_returns(self):
        ch = self.channel()
        s, _ = ch.start(environ(path="/sleep", query="s=1.5"))
        time.sleep(0.1)
        cancel_timeout(ch, s)
        self.worker.wait_stderr("in sleep_for")
        r = ch.response(s)
        self.assertEqual(r.aborted, "request timed out", r)
        self.assertEqual(ch.request(path="/").body, b"ok")

    def test_client_gone_does_not_interrupt(self):
        ch = self.channel()
        s, _ = ch.start(environ(path="/work", query="s=1"))
        ch.send(wire.cancel_frame(s))
        r = ch.response(s)
        # The app was left to finish: a list body goes out whole.
        self.assertEqual((r.status, r.body, r.aborted), ("200 OK", b"done", None))
        self.assertNotIn("GET /work timed out", self.worker.err())

    def test_other_thread_is_not_disturbed(self):
        other = self.channel()
        s2, _ = other.start(environ(path="/work", query="s=1"))
        ch, r, _ = self.interrupted("/spin", "in spin_forever")
        self.assertEqual(r.aborted, "request timed out")
        r2 = other.response(s2)
        self.assertEqual((r2.status, r2.body, r2.aborted), ("200 OK", b"done", None))

    def test_timeout_racing_the_end_of_the_request(self):
        # A CANCEL that crosses the response on the wire interrupts nothing
        # later: every next request on the channel succeeds.
        ch = self.channel()
        for i in range(8):
            s, _ = ch.start(environ(path="/work", query="s=%.2f" % (0.2 + i * 0.05)))
            time.sleep(0.15 + i * 0.05)
            cancel_timeout(ch, s)
            r = ch.response(s)
            self.assertTrue(r.aborted == "request timed out" or r.body == b"done", r)
            for _ in range(3):
                self.assertEqual(ch.request(path="/").body, b"ok")
        self.assertNotIn("bug in whisk_worker", self.worker.err())


class StopTest(unittest.TestCase):
    def test_stop_does_not_wait_for_a_stuck_thread(self):
        w = harness.Worker("stuck", threads=2)
        try:
            w.hello()
            ch, other = w.channel(1), w.channel(2)
            s, _ = ch.start(environ(path="/sleep", query="s=60"))
            time.sleep(0.1)
            cancel_timeout(ch, s)
            w.wait_stderr("in sleep_for")
            s2, _ = other.start(environ(path="/work", query="s=0.5"))
            time.sleep(0.1)
            w.stop()
            # The request in progress finishes; the stuck one does not hold the exit.
            r = other.response(s2)
            self.assertEqual((r.status, r.body), ("200 OK", b"done"))
            self.assertEqual(w.wait(), 0)
        finally:
            w.close()


class FindCancelTest(unittest.TestCase):
    def test_find_cancel(self):
        credit = wire.credit_frame(3, 100)
        data = wire.frame(wire.DATA, 0, 3, b"x" * 50)
        timeout = wire.cancel_frame(3, wire.CANCEL_TIMEOUT)
        self.assertTrue(wire.find_cancel(credit + data + timeout, 3, wire.CANCEL_TIMEOUT))
        self.assertFalse(wire.find_cancel(credit + wire.cancel_frame(3), 3, wire.CANCEL_TIMEOUT))
        self.assertFalse(wire.find_cancel(timeout, 4, wire.CANCEL_TIMEOUT))
        self.assertFalse(wire.find_cancel(data + timeout[:-1], 3, wire.CANCEL_TIMEOUT))
        self.assertFalse(wire.find_cancel(b"\x02" + timeout[1:], 3, wire.CANCEL_TIMEOUT))
        self.assertEqual(wire.cancel_frame(3), wire.frame(wire.CANCEL, 0, 3))
        self.assertEqual(wire.cancel_frame(3, 1), wire.frame(wire.CANCEL, 0, 3, b"\x01"))


if __name__ == "__main__":
    unittest.main()
