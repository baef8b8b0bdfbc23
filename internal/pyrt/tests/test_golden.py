"""Golden frames shared with the Go tests: testdata/wire/NAME.bin + NAME.json.

NAME.bin holds raw frames; NAME.json describes them:
{"frames": [{"version", "type", "flags", "stream", "payload_hex",
             "environ" (REQUEST), "status", "headers", "body_hex" (RESPONSE)}]}.
"""

import glob
import json
import os
import unittest

from . import harness
from whisk_worker import wire

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(harness.PYRT)), "testdata", "wire")


def golden_files():
    return sorted(glob.glob(os.path.join(GOLDEN, "*.bin")))


class GoldenTest(unittest.TestCase):
    def test_golden_frames(self):
        files = golden_files()
        if not files:
            self.skipTest("no golden frames in %s yet (the Go tests write them)" % GOLDEN)
        for path in files:
            name = os.path.basename(path)[:-4]
            with self.subTest(golden=name):
                self.check(path)

    def check(self, path):
        with open(path, "rb") as f:
            raw = f.read()
        with open(path[:-4] + ".json") as f:
            want = json.load(f)["frames"]
        got = list(wire.iter_frames(raw))
        self.assertEqual(len(got), len(want), "frame count")
        pos = 0
        for i, ((ftype, flags, stream, payload), w) in enumerate(zip(got, want)):
            msg = "frame %d" % i
            self.assertEqual(w.get("version", 1), raw[pos], msg)
            self.assertEqual((ftype, flags, stream), (w["type"], w["flags"], w["stream"]), msg)
            self.assertEqual(payload.hex(), w["payload_hex"].lower(), msg)
            encoded = raw[pos:pos + wire.HEADER_SIZE + len(payload)]
            self.assertEqual(wire.frame(ftype, flags, stream, payload), encoded, msg)
            pos += len(encoded)
            if "environ" in w:
                self.assertEqual(ftype, wire.REQUEST, msg)
                environ, body = wire.split_request(payload)
                self.assertEqual(environ, w["environ"], msg)
                if "body_hex" in w:
                    self.assertEqual(bytes(body).hex(), w["body_hex"].lower(), msg)
                # Same environ, same key order: marshal must give the Go encoder's bytes.
                self.assertEqual(wire.request_frame(stream, flags, environ, body), encoded, msg)
            if "status" in w:
                self.assertEqual(ftype, wire.RESPONSE, msg)
                status, headers, body = wire.split_response(payload)
                want_headers = [tuple(h) for h in w["headers"]]
                self.assertEqual((status, headers), (w["status"], want_headers), msg)
                body_hex = w.get("body_hex", "")
                self.assertEqual(body.hex(), body_hex.lower(), msg)
                head = wire.encode_head(w["status"], want_headers)
                self.assertEqual(wire.response_frame(stream, flags, head, bytes.fromhex(body_hex)), encoded, msg)


if __name__ == "__main__":
    unittest.main()
