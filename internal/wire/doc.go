// Package wire implements version 1 of the frame protocol between the whisk
// front and its Python worker processes (docs/protocol.md is the spec; the
// Python twin is internal/pyrt/whisk_worker/wire.py).
//
// Every frame is a 12-byte little-endian header and a payload:
//
//	 0        1        2                 4                     8                    12
//	+--------+--------+-----------------+---------------------+--------------------+
//	|version |  type  |   flags (u16)   |   stream id (u32)   | payload length(u32)|
//	+--------+--------+-----------------+---------------------+--------------------+
//	|                        payload (length bytes)                              ...
//
// A REQUEST payload is a u32 meta length, the environ as a Python marshal dict
// of str to str, and the first body bytes. A RESPONSE payload is a u32 head
// length, marshal.dumps((status, headers), 2), and the first body bytes. Both
// are built and parsed here without reflection; the decoders are fuzzed.
//
// The package holds pure functions over []byte plus Conn, which reads and
// writes frames on a unix socket and carries file descriptors (SCM_RIGHTS) for
// FILE and CHANNEL frames. It imports nothing else of whisk.
package wire
