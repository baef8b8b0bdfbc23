// Package framing rejects ambiguous HTTP/1.1 request framing on a server
// connection before net/http parses it.
//
// # Why
//
// net/http's server is lenient where request smuggling lives. Given both
// Content-Length and Transfer-Encoding: chunked it drops Content-Length and
// keeps the connection open (RFC 9112 §6.3 says such a message ought to be
// handled as an error); it accepts bare LF line endings in the head; it reads
// "Transfer-Encoding : chunked" (space before the colon) as an unknown field
// and frames the body by Content-Length instead. A front proxy that reads the
// same bytes differently can then slip a second, hidden request to the app.
// whisk must never let that request reach a WSGI app, so this package checks
// the raw byte stream in a net.Conn wrapper, below net/http, and turns every
// ambiguous message into a plain 400 Bad Request followed by a closed
// connection.
//
// # How
//
// A [Conn] tracks the framing of each request on the stream (keep-alive and
// pipelining included) with a small state machine:
//
//	    +-------------------------------------------------+
//	    v                                                 |
//	 [head] --CheckHead ok--> no body ------------------->+
//	    |                     Content-Length n --> [body n] ---->+
//	    |                     chunked                            |
//	    |                        v                               |
//	    |                 [chunk-size line] --0--> [trailers] -->+
//	    |                   |  ^
//	    |                   v  | CRLF
//	    |                 [chunk data]
//	    v
//	any check fails --> [rejected]: deliver the fixed reject request, then io.EOF
//
// Head bytes (and chunk-size lines and trailer sections) are buffered and
// returned from Read only once the whole unit has been checked; body bytes
// pass straight through. On a reject, Read returns the bytes of the messages
// already checked, then a short fixed request line with an invalid method
// that net/http answers with "400 Bad Request" and a closed connection, then
// io.EOF. Nothing of the offending message, or anything after it, is ever
// returned.
//
// A head over Options.MaxHeadBytes, or a request line over
// Options.MaxRequestLine, is rejected the same way. With
// Options.StatusResponses it is answered with its own status instead (431,
// 414): Read delivers a fixed, well-formed request in its place, which
// [Handler] recognises by its connection ([ConnContext]) and answers.
//
// [CheckHead] exposes the head checks as a pure function.
//
// # Use
//
// Wrap the plain-text listener: srv.Serve(framing.NewListener(ln, opts)).
// The wrapper must see the clear-text HTTP/1.1 stream, so it cannot sit under
// crypto/tls, and net/http serves HTTP/2 only on a connection that is exactly
// a *tls.Conn. Over TLS, the front's listener therefore finishes the
// handshake first and wraps the *tls.Conn with NewConn only when ALPN did not
// choose HTTP/2 (internal/front, tls.go).
// A handler that hijacks the connection for a protocol switch (Upgrade,
// CONNECT) must call [Conn.Passthrough] on the hijacked *Conn first.
package framing
