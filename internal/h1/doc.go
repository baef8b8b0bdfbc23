// Package h1 serves HTTP/1.x connections with a lean loop of its own and
// hands every connection it does not want to net/http.
//
// # Why
//
// net/http's server costs the front about 10 µs of CPU per request on this
// project's benchmark machine (docs/performance.md): a background-read
// goroutine started and aborted per request (one extra read that returns
// EAGAIN, two goroutine wakeups), a cloned and sorted header map, a Date
// header formatted per response, a bufio.Writer taken from a pool and a
// chunk writer per response. For a small request the front's work is two
// system calls (read the request, write the response) plus the worker's
// round trip; the rest is overhead that this loop does not have.
//
// # What it serves, and what it hands over
//
// A [Server] reads each request head into its connection's buffer and
// serves it itself when it is a plain HTTP/1.0 or HTTP/1.1 request: a token
// method other than CONNECT, an origin-form target, exactly one valid Host
// (HTTP/1.1), at most one Content-Length, and none of Transfer-Encoding,
// Expect, Upgrade or HTTP2-Settings. Every other head (a chunked upload, a
// WebSocket handshake, "Expect: 100-continue", anything malformed, a head
// larger than the buffer) makes it hand the whole connection, with the
// bytes it has read put back in front, to a [Listener] that an
// http.Server serves: net/http then owns that connection for the rest of
// its life, and answers exactly as it always has (400s included). A
// connection is handed over only between responses, so net/http starts on
// a clean message boundary.
//
// The loop reads from the same connection net/http would (in whisk, the
// framing guard's, which has already rejected ambiguous framing), calls the
// same http.Handler with an ordinary *http.Request, and gives it a
// ResponseWriter with the behaviour handlers rely on: Content-Length for
// small bodies, chunked encoding for streamed ones (close-delimited for
// HTTP/1.0), Content-Type sniffing when the header is absent, a Date
// header, HEAD, 1xx, http.Flusher, io.ReaderFrom (sendfile through the
// connection) and http.ResponseController's deadlines and full duplex.
//
// # Client disconnects
//
// net/http notices a client that goes away during a request by reading
// from the connection in the background while the handler runs, for every
// request. Here that read is armed only for requests still running after
// [ArmAfter] (and only once their body has been read): a watcher goroutine
// per Server checks the busy connections on a ticker. A request that
// finishes sooner costs no goroutine and no extra read; a long one has its
// context canceled when the client leaves, as under net/http, at most about
// two ArmAfter periods later.
package h1
