"""Preload: the fork server imports the app once and forks workers (preload.py), and the post_fork hook."""

import array
import json
import os
import select
import signal
import socket
import threading
import unittest

from . import harness
from .harness import FAILED, TIMEOUT
from whisk_worker import wire
from whisk_worker.preload import EXITED, FORK, FORKED

APPS = os.path.join(os.path.dirname(os.path.dirname(harness.PYRT)), "testdata", "apps")


class Forked(harness.Worker):
    """A worker forked by a fork server: the front's ends of its control socket and output pipe."""

    def __init__(self, server: harness.Worker, fork_id: int) -> None:  # not super(): nothing to spawn
        self.ctl, theirs = socket.socketpair()
        self.ctl.settimeout(TIMEOUT)
        out, out_w = os.pipe()
        data = wire.frame(FORK, 0, 0, json.dumps({"id": fork_id}).encode())
        server.ctl.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [theirs.fileno(), out_w]))])
        theirs.close()
        os.close(out_w)
        self.conn = wire.Conn(self.ctl, fds=True)
        self.stdout = []
        self.stderr = self.stdout  # one pipe for both
        self._out = os.fdopen(out, "rb")
        self._readers = [threading.Thread(target=self._read, args=(self._out, self.stdout), daemon=True)]
        self._readers[0].start()
        self.channels = []

    def close(self) -> None:
        for ch in self.channels:
            ch.close()
        self.ctl.close()
        self._readers[0].join(TIMEOUT)
        self._out.close()


class PreloadTest(unittest.TestCase):
    def server(self, *args: str) -> harness.Worker:
        w = harness.Worker("preload", "--preload", *args, pythonpath=(APPS,))
        self.addCleanup(w.close)
        self.assertEqual(w.hello()["pid"], w.proc.pid)
        return w

    def fork(self, server: harness.Worker, fork_id: int) -> Forked:
        child = Forked(server, fork_id)
        self.addCleanup(child.close)
        ftype, _, _, payload = server.recv()
        self.assertEqual(ftype, FORKED)
        reply = json.loads(payload)
        self.assertEqual(reply["id"], fork_id)
        child.pid = reply["pid"]
        return child

    def exited(self, server: harness.Worker) -> dict:
        ftype, _, _, payload = server.recv()
        self.assertEqual(ftype, EXITED)
        return json.loads(payload)

    def test_workers_share_one_import(self):
        server = self.server("--post-fork", "preload:post_fork")
        for i in range(2):
            child = self.fork(server, i)
            self.assertEqual(child.hello()["pid"], child.pid)
            got = child.channel().request().json()
            self.assertEqual((got["pid"], got["ppid"]), (child.pid, server.proc.pid))
            self.assertEqual(got["imported_in"], server.proc.pid)  # not imported again
            self.assertEqual(got["post_fork_in"], child.pid)
            # The child's output goes to its own pipe, not the server's.
            child.wait_stderr("post_fork ran in %d" % child.pid)
            self.assertNotIn("post_fork ran in", "".join(server.stdout))

    def test_exits_are_reported(self):
        server = self.server()
        child = self.fork(server, 7)
        child.hello()
        child.ctl.close()  # the worker exits at its control channel's end
        self.assertEqual(self.exited(server), {"pid": child.pid, "code": 0})
        child = self.fork(server, 8)
        child.hello()
        os.kill(child.pid, signal.SIGKILL)
        self.assertEqual(self.exited(server), {"pid": child.pid, "code": -signal.SIGKILL})
        self.assertEqual(server.ping(b"still here"), b"still here")

    def test_children_die_with_the_server(self):
        server = self.server()
        children = [self.fork(server, i) for i in range(2)]
        pidfds = []
        for child in children:
            child.hello()
            pidfds.append(os.pidfd_open(child.pid))
        server.proc.kill()
        for fd in pidfds:
            ready, _, _ = select.select([fd], [], [], TIMEOUT)
            os.close(fd)
            self.assertEqual(ready, [fd], "a worker outlived its fork server")

    def test_server_exits_at_control_eof(self):
        server = self.server()
        child = self.fork(server, 1)
        child.hello()
        pidfd = os.pidfd_open(child.pid)
        server.ctl.close()
        self.assertEqual(server.wait(), 0)
        ready, _, _ = select.select([pidfd], [], [], TIMEOUT)
        os.close(pidfd)
        self.assertEqual(ready, [pidfd], "the worker outlived its fork server")

    def test_post_fork_raises(self):
        server = self.server("--post-fork", "preload:failing_hook")
        child = self.fork(server, 1)
        ftype, _, _, payload = child.recv()
        self.assertEqual(ftype, FAILED)
        failed = json.loads(payload)
        self.assertEqual(failed["stage"], "post_fork")
        self.assertEqual(failed["error"], "post_fork hook preload:failing_hook raised RuntimeError: no database")
        self.assertIn('raise RuntimeError("no database")', failed["traceback"])
        self.assertEqual(self.exited(server), {"pid": child.pid, "code": 3})

    def test_fork_without_descriptors_is_a_protocol_error(self):
        server = self.server()
        server.ctl.sendall(wire.frame(FORK, 0, 0, b'{"id": 1}'))
        self.assertEqual(server.wait(), 2)
        self.assertIn("FORK frame without its two descriptors", server.err())


class PostForkWithoutPreloadTest(unittest.TestCase):
    def worker(self, hook: str) -> harness.Worker:
        w = harness.Worker("preload", "--post-fork", hook, pythonpath=(APPS,))
        self.addCleanup(w.close)
        return w

    def test_runs_before_serving(self):
        w = self.worker("preload:post_fork")
        w.hello()
        got = w.channel().request().json()
        self.assertEqual(got["post_fork_in"], w.proc.pid)
        self.assertEqual(got["imported_in"], w.proc.pid)

    def test_bad_hooks(self):
        for hook, error in (
            ("preload:nope", "post_fork 'preload:nope': 'preload' has no function 'nope'"),
            ("preload", "invalid post_fork 'preload'"),
            ("no_such_hooks:f", "post_fork 'no_such_hooks:f': importing 'no_such_hooks' failed: "
                                "ModuleNotFoundError: No module named 'no_such_hooks'"),
        ):
            with self.subTest(hook=hook):
                w = self.worker(hook)
                failed = w.failed()
                self.assertEqual((failed["error"], failed["stage"]), (error, "post_fork"))
                self.assertEqual(w.wait(), 3)


if __name__ == "__main__":
    unittest.main()
