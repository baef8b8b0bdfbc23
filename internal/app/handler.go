// Package app is the http.Handler of an app mount: it reads the request
// body (memory, then a temp file) before taking a worker slot, sends the
// request to a worker thread over the wire protocol, and writes the
// worker's response to the client, holding at most one response window per
// request so a slow client never holds a worker thread. It is the only
// package that knows both HTTP and the wire.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/whiskserver/whisk/internal/group"
	"github.com/whiskserver/whisk/internal/reqinfo"
	"github.com/whiskserver/whisk/internal/wire"
)

// Handler serves one app mount from one process group.
type Handler struct {
	// Group runs the app's workers.
	Group *group.Group
	// ScriptName is the mount prefix ("" at the root), WSGI's SCRIPT_NAME.
	ScriptName string
	// Timeout bounds the wait for a free worker (when the group has no
	// QueueTimeout of its own), the wait for the response to start, and
	// each pause between two parts of a streamed response.
	Timeout time.Duration
	// RequestTimeout, when set, replaces Timeout for the wait for the
	// response to start and for each pause between two parts of a
	// streamed response. Past it the client gets 504 (or a cut connection
	// once the head is out) and the worker is told to interrupt the app's
	// thread: it logs the thread's Python stack and raises
	// whisk_worker.RequestTimeout in it.
	RequestTimeout time.Duration
	// InterruptGrace is how long an interrupted thread may take to end its
	// stream (a thread blocked in C sees the exception only when the call
	// returns). Past it the process is recycled gracefully: a replacement
	// starts, and the process stops once its other requests are done. The
	// stuck thread's slot is never given to another request. Zero means
	// the request timeout: a call that outlives the timeout twice is not
	// going to return.
	InterruptGrace time.Duration
	// MaxBodySize is the largest request body accepted (413 beyond).
	MaxBodySize int64
	// BodyMemory is the largest request body held in memory; a larger one
	// goes to a temp file.
	BodyMemory int64
	// BodyMemoryTotal bounds the memory all request bodies in flight may
	// hold together; past it, bodies go to temp files. It keeps slow
	// uploads from exhausting memory.
	BodyMemoryTotal int64
	// MinBodyRate, when positive, is the slowest a client may send a
	// request body, in bytes per second averaged since the body started,
	// once BodyRateGrace has passed: a slower upload gets 408 Request
	// Timeout and a closed connection, and never reaches a worker.
	MinBodyRate int64
	// BodyRateGrace is how long a body may come slower than MinBodyRate;
	// zero means DefaultBodyRateGrace.
	BodyRateGrace time.Duration
	// BodyTimeout, when positive, is the longest a client may send nothing
	// while its request body is read (408 then).
	BodyTimeout time.Duration
	// TempDir is the 0700 directory for spooled request and response bodies.
	TempDir string
	// Window is the response credit per stream the workers were given:
	// the response bytes held in memory for a slow client.
	Window int
	// Log receives errors the client cannot see.
	Log *slog.Logger

	// SharedBodyMemory, when set, counts the request bodies in memory of
	// every handler that shares it, so BodyMemoryTotal bounds them all (a
	// server's mounts, across reloads); nil counts this handler's alone.
	SharedBodyMemory *atomic.Int64

	memInUse atomic.Int64 // bytes of request bodies held in memory, without SharedBodyMemory
}

// bodyMemory returns the counter of request bodies held in memory.
func (h *Handler) bodyMemory() *atomic.Int64 {
	if h.SharedBodyMemory != nil {
		return h.SharedBodyMemory
	}
	return &h.memInUse
}

// requestTimeout is RequestTimeout, or Timeout when it is not set.
func (h *Handler) requestTimeout() time.Duration {
	if h.RequestTimeout > 0 {
		return h.RequestTimeout
	}
	return h.Timeout
}

// interruptGrace is InterruptGrace, or the request timeout when it is not
// set.
func (h *Handler) interruptGrace() time.Duration {
	if h.InterruptGrace > 0 {
		return h.InterruptGrace
	}
	return h.requestTimeout()
}

var builders = sync.Pool{New: func() any { return new(wire.RequestBuilder) }}

// chunkSize is the size of the reads and writes that move a large request
// body: to its temp file, and to the worker in DATA frames.
const chunkSize = 256 << 10

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > h.MaxBodySize {
		// Answered before reading, so a client that sent Expect:
		// 100-continue never sends the body.
		h.tooLarge(w)
		return
	}
	db := h.newDeadlineBody(w, r) // min_body_rate and the stall bound (bodyrate.go)
	if db != nil {
		r.Body = db
	}
	streamed := h.Group != nil && h.Group.ASGI() && streamsBody(r) // upload.go
	b, err := &body{h: h}, error(nil)
	if !streamed {
		b, err = h.readBody(r)
		db.disarm()
	}
	if err != nil {
		if errors.Is(err, errTooLarge) {
			h.tooLarge(w)
			return
		}
		if errors.Is(err, errBodyTimeout) {
			h.bodyTimeout(w, r, err)
			return
		}
		h.Log.Debug("request body not read", "error", err, "remote", r.RemoteAddr)
		http.Error(w, "400 Bad Request: the request body could not be read", http.StatusBadRequest)
		return
	}
	defer b.close()

	pathInfo := unescapePath(rawPath(r))
	if h.ScriptName != "" && (pathInfo == h.ScriptName || strings.HasPrefix(pathInfo, h.ScriptName+"/")) {
		pathInfo = pathInfo[len(h.ScriptName):] // whole segments only: /app never eats /application
	}
	bodyLen := b.size
	if _, hasCL := r.Header["Content-Length"]; bodyLen == 0 && !hasCL && len(r.TransferEncoding) == 0 {
		bodyLen = -1 // no body and no Content-Length: leave CONTENT_LENGTH out
	}

	ctx := r.Context()
	info := reqinfo.From(ctx)
	if info != nil {
		info.Group = h.Group.Name()
	}
	queued := time.Now()
	slot := h.Group.TryAcquire()
	if slot == nil {
		slot, err = h.acquire(ctx)
	}
	if err != nil {
		if ctx.Err() != nil {
			return // the client left while queued
		}
		h.unavailable(w, r, err)
		return
	}
	slot.Begin(r.Method, r.URL.Path) // for the status page; Release clears it
	stream := slot.NextStream()
	ex := &exchange{h: h, slot: slot, conn: slot.Conn(), stream: stream, w: w, r: r, body: b, start: time.Now()}
	if streamed {
		if !slot.ASGI() { // the group's workers changed interface meanwhile
			h.Group.Release(slot, true)
			http.Error(w, "503 Service Unavailable: the app was reloaded; try again", http.StatusServiceUnavailable)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex() // read the body while the response goes out (HTTP/1.1)
		ex.in = newUpload(ex, r.Body, rc)
		defer func() {
			ex.in.stop()
			db.disarm()
		}()
	}
	if slot.ASGI() && isWebSocket(r) {
		if problem := checkHandshake(r); problem != "" {
			h.Group.Release(slot, true)
			http.Error(w, "400 Bad Request: WebSocket handshake: "+problem, http.StatusBadRequest)
			return
		}
		ex.ws = true
	}
	ex.run(ctx, pathInfo, bodyLen)
	if info != nil {
		info.PID = slot.PID()
		info.Queue = ex.start.Sub(queued)
		info.App = ex.appTime()
	}
}

func (h *Handler) tooLarge(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	http.Error(w, fmt.Sprintf("413 Content Too Large: the request body is over the limit of %d bytes (--max-body-size)", h.MaxBodySize), http.StatusRequestEntityTooLarge)
}

// exchange is one request's stream on one slot.
type exchange struct {
	h       *Handler
	slot    *group.Slot
	conn    wire.StreamConn
	stream  uint32
	w       http.ResponseWriter
	r       *http.Request
	body    *body
	sent    int64     // request body bytes sent so far
	sendBuf *[]byte   // from wire.GetBuffer, for DATA frames of a large request body
	start   time.Time // when the slot was taken

	sp *spool  // the streamed response, when there is one
	ws bool    // a WebSocket handshake to an ASGI app
	in *upload // the request body as it arrives (ASGI), instead of body

	mu          sync.Mutex // guards the fields below and writes that must not follow release
	released    bool
	releasedAt  time.Time // when the worker's half of the stream ended
	aborted     bool      // client gone or timed out: CANCEL sent, discard the rest
	interrupted bool      // timed out: CANCEL with the timeout reason sent
	owed        int       // response bytes received and not yet returned as credit
}

// errTimeout and friends say why a stream ended early.
var (
	errTimeout    = errors.New("worker did not answer within the timeout")
	errClientGone = errors.New("client went away")
	errAbort      = errors.New("app raised an exception")
)

func (ex *exchange) run(ctx context.Context, pathInfo string, bodyLen int64) {
	rb := builders.Get().(*wire.RequestBuilder)
	rb.Begin(ex.stream)
	switch {
	case ex.ws:
		ex.h.buildWebSocketScope(rb, ex.r)
	case ex.slot.ASGI():
		ex.h.buildScope(rb, ex.r)
	default:
		ex.h.buildEnviron(rb, ex.r, pathInfo, bodyLen)
	}
	first := min(ex.body.size, wire.RequestWindow)
	prefix, err := ex.body.prefix(first)
	var frame []byte
	if err == nil {
		// A WebSocket's half goes on with its messages, and a streamed
		// body's with its DATA frames.
		frame, err = rb.Finish(prefix, first == ex.body.size && !ex.ws && ex.in == nil)
	}
	if err != nil {
		builders.Put(rb)
		ex.release(true)
		ex.h.Log.Error("cannot encode request", "error", err)
		http.Error(ex.w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	if st, ok := ex.conn.(*wire.Stream); ok {
		err = st.Begin(frame) // an ASGI stream's id is assigned as its REQUEST goes out
		ex.stream = st.ID()
	} else {
		err = ex.conn.Write(frame)
	}
	builders.Put(rb)
	ex.sent = first
	if err != nil {
		ex.abandon(err, "before the response started")
		ex.badGateway()
		return
	}
	if ex.in != nil {
		ex.in.start()
	}

	// Wake the reader when the client leaves; the callback checks released
	// so it never touches a channel another request owns by then.
	stop := context.AfterFunc(ctx, func() {
		ex.mu.Lock()
		if !ex.released {
			ex.conn.SetReadDeadline(time.Unix(1, 0))
		}
		ex.mu.Unlock()
	})
	defer stop()

	for {
		f, err := ex.readFrame(ctx, false)
		if err != nil {
			ex.abandon(err, "before the response started")
			switch {
			case errors.Is(err, errTimeout):
				http.Error(ex.w, "504 Gateway Timeout: the app did not answer within the timeout", http.StatusGatewayTimeout)
			case !errors.Is(err, errClientGone):
				ex.badGateway()
			}
			return
		}
		switch f.Type {
		case wire.TypeCredit:
			if err := ex.sendBody(f.Payload); err != nil {
				ex.abandon(err, "before the response started")
				ex.badGateway()
				return
			}
		case wire.TypeResponse:
			if ex.ws {
				if head, _, err := wire.DecodeResponse(f.Payload); err == nil && isAccept(head) {
					stop() // from now on the relay watches the client
					ex.acceptWebSocket(head)
					f.Release()
					return
				}
				// Any other response refuses the WebSocket over HTTP; the
				// front's half ends with it.
				ex.mu.Lock()
				if !ex.released && !f.End() {
					_ = ex.conn.Write(appendClose(nil, ex.stream, websocket.StatusAbnormalClosure, ""))
				}
				ex.mu.Unlock()
			}
			ex.respond(ctx, f)
			return
		case wire.TypeAbort:
			ex.release(true)
			if ex.in != nil && ex.in.answerFailure(ex.w, ex.r) {
				return // the body's failure made the app give up
			}
			ex.h.Log.Error("app failed before the response started", "error", string(f.Payload), "method", ex.r.Method, "path", ex.r.URL.Path, "request_id", requestID(ex.r), "pid", ex.slot.PID())
			http.Error(ex.w, "500 Internal Server Error", http.StatusInternalServerError)
			return
		default:
			ex.abandon(fmt.Errorf("unexpected %s frame before the response", f.Type), "before the response started")
			ex.badGateway()
			return
		}
	}
}

// readFrame reads the stream's next frame under the timeout. Frames for
// other streams are a protocol error: a WSGI channel carries one stream.
//
// While streaming, a worker that used up its whole response window is
// waiting for the front (a full spool), not stalling: no timeout then.
func (ex *exchange) readFrame(ctx context.Context, streaming bool) (wire.Frame, error) {
	ex.mu.Lock()
	if streaming && ex.owed >= ex.h.Window && !ex.aborted {
		ex.conn.SetReadDeadline(time.Time{})
	} else {
		ex.conn.SetReadDeadline(time.Now().Add(ex.h.requestTimeout()))
	}
	ex.mu.Unlock()
	if ctx.Err() != nil {
		return wire.Frame{}, errClientGone
	}
	f, err := ex.conn.ReadFrame()
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if ctx.Err() != nil {
				return f, errClientGone
			}
			return f, errTimeout
		}
		return f, err
	}
	if f.Stream != ex.stream {
		if f.File != nil {
			f.File.Close()
		}
		return f, fmt.Errorf("frame for stream %d while stream %d is open", f.Stream, ex.stream)
	}
	return f, nil
}

// sendBody answers a CREDIT with up to that many more request body bytes.
func (ex *exchange) sendBody(payload []byte) error {
	n, err := wire.ParseCredit(payload)
	if err != nil {
		return err
	}
	if ex.in != nil {
		ex.in.grant(n)
		return nil
	}
	for n > 0 && ex.sent < ex.body.size {
		chunk := min(int64(n), ex.body.size-ex.sent, chunkSize)
		if ex.sendBuf == nil {
			ex.sendBuf = wire.GetBuffer(chunkSize)
		}
		buf := (*ex.sendBuf)[:chunk]
		if _, err := ex.body.ReadAt(buf, ex.sent); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read spooled body: %w", err)
		}
		ex.sent += chunk
		n -= uint32(chunk)
		var flags wire.Flags
		if ex.sent == ex.body.size {
			flags = wire.FlagEnd
		}
		if err := ex.conn.WriteFrame(wire.TypeData, flags, ex.stream, buf); err != nil {
			return err
		}
	}
	return nil
}

// release hands the slot back exactly once.
func (ex *exchange) release(healthy bool) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.released {
		return
	}
	ex.released = true
	ex.releasedAt = time.Now()
	if ex.sendBuf != nil {
		wire.PutBuffer(ex.sendBuf)
		ex.sendBuf = nil
	}
	if healthy {
		ex.conn.SetReadDeadline(time.Time{})
	}
	ex.h.Group.Release(ex.slot, healthy)
}

// appTime is how long the worker had the request: from taking the slot to
// the end of the worker's stream (or until now, if it has not ended).
func (ex *exchange) appTime() time.Duration {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.released {
		return ex.releasedAt.Sub(ex.start)
	}
	return time.Since(ex.start)
}

// cancel tells the worker to stop producing this stream: the client is
// gone or the response cannot be delivered. The app is not interrupted; the
// worker stops at its next send.
func (ex *exchange) cancel() {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.released || ex.aborted {
		return
	}
	ex.aborted = true
	_ = ex.conn.Write(wire.AppendCancel(nil, ex.stream, wire.CancelClientGone))
}

// interrupt cancels the stream for a timeout: the worker also raises
// RequestTimeout in the app's thread and logs its stack. It may follow a
// cancel.
func (ex *exchange) interrupt() {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.released || ex.interrupted {
		return
	}
	ex.aborted, ex.interrupted = true, true
	_ = ex.conn.Write(wire.AppendCancel(nil, ex.stream, wire.CancelTimeout))
}

// recyclePoll is how often drain checks whether a worker being recycled for
// a stuck thread has stopped taking requests.
const recyclePoll = 100 * time.Millisecond

// drain reads and drops the rest of a cancelled stream until the worker
// ends it, then releases the slot, which it holds meanwhile: a thread that
// does not end its stream never gets another request.
//
// The layers of the timeout: a stream cancelled because the client left
// gets a request timeout to end, then is interrupted like one that timed
// out (interrupted says it was); an interrupted one gets InterruptGrace,
// then its process is recycled gracefully. Once the process takes no more
// requests, the slot is released as broken, so the process stops when its
// other requests are done.
func (ex *exchange) drain(interrupted bool) {
	pid := ex.slot.PID()
	wait := ex.h.requestTimeout()
	if interrupted {
		wait = ex.h.interruptGrace()
	}
	deadline := time.Now().Add(wait)
	recycling := false
	for {
		if recycling {
			deadline = time.Now().Add(recyclePoll)
		}
		ex.conn.SetReadDeadline(deadline)
		f, err := ex.conn.ReadFrame()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			switch {
			case time.Now().Before(deadline):
				// The client-gone callback of run moved the deadline.
			case recycling:
				if !ex.h.takesRequests(pid) {
					ex.release(false)
					return
				}
			case !interrupted:
				ex.h.Log.Warn("the app did not end a cancelled request within the timeout; interrupting its thread", "timeout", ex.h.requestTimeout().String(), "method", ex.r.Method, "path", ex.r.URL.Path, "request_id", requestID(ex.r), "pid", pid)
				ex.interrupt()
				interrupted = true
				deadline = time.Now().Add(ex.h.interruptGrace())
			default:
				ex.h.Log.Warn("a thread interrupted for a timeout is still stuck; recycling its worker once its other requests are done", "grace", ex.h.interruptGrace().String(), "method", ex.r.Method, "path", ex.r.URL.Path, "request_id", requestID(ex.r), "pid", pid)
				ex.h.Group.Recycle(pid, fmt.Sprintf("a thread is stuck in %s %s past the request timeout", ex.r.Method, ex.r.URL.Path))
				recycling = true
			}
			continue
		}
		if err != nil {
			ex.h.Log.Warn("worker lost while it ended a cancelled request", "pid", pid, "error", err)
			ex.release(false)
			return
		}
		if f.File != nil {
			f.File.Close()
		}
		if f.Stream != ex.stream {
			ex.h.Log.Warn("worker broke the protocol while it ended a cancelled request", "pid", pid, "error", fmt.Errorf("%s frame for stream %d while stream %d is open", f.Type, f.Stream, ex.stream))
			ex.release(false)
			return
		}
		if f.Type == wire.TypeCredit {
			if err := ex.sendBody(f.Payload); err != nil {
				ex.release(false)
				return
			}
			continue
		}
		if f.End() || f.Type == wire.TypeAbort {
			ex.release(true)
			return
		}
	}
}

// takesRequests reports whether the group still gives new requests to
// process pid.
func (h *Handler) takesRequests(pid int) bool {
	for _, w := range h.Group.Workers() {
		if w.PID == pid {
			return w.State == group.StateReady
		}
	}
	return false
}

// abandon gives up the stream after reading or writing the channel
// failed. A client that left cancels the stream, and a timeout interrupts
// it; either is drained in the background until the worker ends it. Any
// other failure means the worker is lost (it died or broke the protocol)
// and its slot is retired. phase says where in the exchange it happened,
// for the log.
func (ex *exchange) abandon(err error, phase string) {
	switch {
	case errors.Is(err, errClientGone):
		ex.cancel()
		go ex.drain(false)
	case errors.Is(err, errTimeout):
		ex.h.Log.Warn("the app did not answer within the timeout "+phase+"; interrupting its thread", "timeout", ex.h.requestTimeout().String(), "method", ex.r.Method, "path", ex.r.URL.Path, "request_id", requestID(ex.r), "pid", ex.slot.PID())
		ex.interrupt()
		go ex.drain(true)
	default:
		ex.release(false)
		ex.h.Log.Warn("worker lost "+phase, "pid", ex.slot.PID(), "error", err, "method", ex.r.Method, "path", ex.r.URL.Path, "request_id", requestID(ex.r))
	}
}

// badGateway answers a request whose worker was lost before the response
// started.
func (ex *exchange) badGateway() {
	http.Error(ex.w, "502 Bad Gateway: the worker handling the request exited", http.StatusBadGateway)
}

// respond writes the response that starts with the RESPONSE frame f.
func (ex *exchange) respond(ctx context.Context, f wire.Frame) {
	head, first, err := wire.DecodeResponse(f.Payload)
	status := 0
	if err == nil {
		status, err = ex.setHeaders(head)
	}
	if err != nil {
		ex.h.Log.Error("app sent an invalid response head", "error", err, "method", ex.r.Method, "path", ex.r.URL.Path, "request_id", requestID(ex.r), "pid", ex.slot.PID())
		if f.End() {
			ex.release(true)
		} else {
			ex.cancel()
			go ex.drain(false)
		}
		clear(ex.w.Header())
		http.Error(ex.w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	hdr := ex.w.Header()
	if f.End() {
		if _, ok := hdr["Content-Length"]; !ok && ex.r.Method != http.MethodHead && bodyAllowed(status) {
			hdr["Content-Length"] = []string{strconv.Itoa(len(first))}
		}
		if len(first) > 4096 {
			// Free the slot before a slow client drains the body.
			if !f.Owned {
				first = append([]byte(nil), first...)
			}
			ex.release(true)
		} else {
			defer ex.release(true)
		}
		ex.w.WriteHeader(status)
		ex.w.Write(first)
		f.Release()
		return
	}
	ex.streamBody(ctx, status, first)
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// setHeaders checks the app's status and headers as PEP 3333 asks and
// copies them to the response.
func (ex *exchange) setHeaders(head wire.Head) (int, error) {
	s := head.Status
	if len(s) < 3 || (len(s) > 3 && s[3] != ' ') {
		return 0, fmt.Errorf("status %q is not like \"200 OK\"", s)
	}
	code, err := strconv.Atoi(s[:3])
	if err != nil || code < 200 || code > 999 {
		return 0, fmt.Errorf("status %q does not start with a final status code (200-999)", s)
	}
	hdr := ex.w.Header()
	hasType := false
	for _, fld := range head.Fields {
		if !validName(fld.Name) {
			return 0, fmt.Errorf("header name %q is not a valid token", fld.Name)
		}
		if !validValue(fld.Value) {
			return 0, fmt.Errorf("header %s has a control character (CR, LF or NUL) in its value %q", fld.Name, fld.Value)
		}
		key := textproto.CanonicalMIMEHeaderKey(fld.Name)
		switch key {
		case "Transfer-Encoding", "Keep-Alive", "Proxy-Connection", "Upgrade", "Te", "Trailer":
			continue // hop-by-hop: the front frames the response itself
		case "Content-Type":
			hasType = true
		}
		hdr[key] = append(hdr[key], fld.Value)
	}
	if !hasType {
		hdr["Content-Type"] = nil // no sniffing: the app decides
	}
	return code, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// streamBody writes a response whose body comes in more frames. A pump
// goroutine reads the worker's frames into a spool (memory up to the
// response window, then a temp file) and returns credit as soon as bytes are
// buffered, so the worker finishes and its slot is released as fast as the
// app runs, whatever the client's speed; this goroutine writes the spool to
// the client.
func (ex *exchange) streamBody(ctx context.Context, status int, first []byte) {
	sp := newSpool(ex.h.Window, ex.h.TempDir)
	ex.sp = sp
	if err := sp.putData(first); err != nil {
		sp.putItem(item{err: err})
	}
	ex.received(len(first))
	go ex.pump(ctx, sp)
	defer sp.release()

	headerWritten := false
	var failure error
	for {
		it, err := sp.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil { // the spool file failed
			it.err = err
		}
		switch {
		case it.err != nil:
			failure = it.err
			ex.cancel()
			sp.drop()
		case it.file != nil:
			if !headerWritten {
				ex.prepareFile(it)
				ex.w.WriteHeader(status)
				headerWritten = true
			}
			if !ex.sendFile(it) {
				ex.cancel()
				sp.drop()
				return
			}
		default:
			if !headerWritten {
				ex.w.WriteHeader(status)
				headerWritten = true
			}
			if _, err := ex.w.Write(it.data); err != nil && !errors.Is(err, http.ErrBodyNotAllowed) {
				ex.cancel() // the client is gone
				sp.drop()
				return
			}
			if sp.empty() {
				ex.flush()
			}
			ex.consumed()
		}
	}
	if failure != nil {
		if !headerWritten {
			if errors.Is(failure, errTimeout) {
				http.Error(ex.w, "504 Gateway Timeout: the app did not answer within the timeout", http.StatusGatewayTimeout)
			} else {
				clear(ex.w.Header())
				http.Error(ex.w, "500 Internal Server Error", http.StatusInternalServerError)
			}
			return
		}
		// The head went out: cut the connection so the client can tell
		// the body is incomplete.
		panic(http.ErrAbortHandler)
	}
	if !headerWritten {
		ex.w.WriteHeader(status)
	}
}

func (ex *exchange) flush() {
	if fl, ok := ex.w.(http.Flusher); ok {
		fl.Flush()
	}
}

// received accounts for n body bytes from the worker, now buffered, and
// returns them as credit unless the spool is full.
func (ex *exchange) received(n int) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.owed += n
	ex.grantLocked()
}

// consumed is called after bytes left for the client: credit withheld
// because the spool was full can go back to the worker.
func (ex *exchange) consumed() {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.grantLocked()
}

func (ex *exchange) grantLocked() {
	if ex.owed == 0 || ex.released || ex.aborted || ex.sp.buffered() >= maxSpool {
		return
	}
	_ = ex.conn.Write(wire.AppendCredit(nil, ex.stream, uint32(ex.owed)))
	ex.owed = 0
	// The worker can send again: from now on its silence counts.
	ex.conn.SetReadDeadline(time.Now().Add(ex.h.requestTimeout()))
}

// pump reads the rest of the stream into the spool.
func (ex *exchange) pump(ctx context.Context, sp *spool) {
	defer sp.finish()
	for {
		f, err := ex.readFrame(ctx, true)
		if err != nil {
			ex.abandon(err, "during the response")
			sp.putItem(item{err: err})
			return
		}
		switch f.Type {
		case wire.TypeData:
			err := sp.putData(f.Payload)
			n := len(f.Payload)
			f.Release() // putData copied it
			if err != nil {
				ex.h.Log.Error("cannot spool a response", "error", err)
				ex.cancel()
				sp.putItem(item{err: err})
				if !f.End() {
					go ex.drain(false)
					return
				}
			}
			ex.received(n)
		case wire.TypeFile:
			rng, err := wire.ParseFile(f.Payload)
			if err != nil {
				f.File.Close()
				ex.abandon(err, "during the response")
				sp.putItem(item{err: err})
				return
			}
			sp.putItem(item{file: f.File, rng: rng})
		case wire.TypeCredit:
			if err := ex.sendBody(f.Payload); err != nil {
				ex.abandon(err, "during the response")
				sp.putItem(item{err: err})
				return
			}
		case wire.TypeAbort:
			ex.release(true)
			if !ex.isAborted() {
				ex.h.Log.Error("app failed after the response started", "error", string(f.Payload), "path", ex.r.URL.Path, "request_id", requestID(ex.r), "pid", ex.slot.PID())
			}
			sp.putItem(item{err: errAbort})
			return
		default:
			err := fmt.Errorf("unexpected %s frame in a response", f.Type)
			ex.abandon(err, "during the response")
			sp.putItem(item{err: err})
			return
		}
		if f.End() {
			ex.release(true)
			return
		}
	}
}

func (ex *exchange) isAborted() bool {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.aborted
}

// prepareFile sets Content-Length for a file body the app did not size, so
// the body goes out with sendfile rather than chunked.
func (ex *exchange) prepareFile(c item) {
	hdr := ex.w.Header()
	if _, ok := hdr["Content-Length"]; ok || ex.r.Method == http.MethodHead {
		return
	}
	if n, err := fileCount(c); err == nil {
		hdr["Content-Length"] = []string{strconv.FormatInt(n, 10)}
	}
}

func fileCount(c item) (int64, error) {
	if c.rng.Count >= 0 {
		return c.rng.Count, nil
	}
	st, err := c.file.Stat()
	if err != nil {
		return 0, err
	}
	return max(st.Size()-int64(c.rng.Offset), 0), nil
}

// sendFile copies a file the worker handed over; io.Copy into the
// ResponseWriter uses sendfile(2) when the connection allows it. It reports
// false when the client is gone.
func (ex *exchange) sendFile(c item) bool {
	defer c.file.Close()
	n, err := fileCount(c)
	if err == nil {
		_, err = c.file.Seek(int64(c.rng.Offset), io.SeekStart)
	}
	if err == nil {
		_, err = io.Copy(ex.w, io.LimitReader(c.file, n))
	}
	return err == nil || errors.Is(err, http.ErrBodyNotAllowed)
}

// requestID is the request's id (reqinfo), for the log lines about it.
func requestID(r *http.Request) string {
	if info := reqinfo.From(r.Context()); info != nil {
		return info.ID
	}
	return ""
}
