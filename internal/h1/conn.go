package h1

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Connection states, for Shutdown and the watcher.
const (
	stateIdle    int32 = iota // waiting for a request, nothing read of it
	stateReading              // reading a head, or writing a response
	stateBusy                 // a handler runs
	stateClosed               // closed by Shutdown
)

const (
	// bufSize is a connection's read buffer: a head that does not fit goes
	// to net/http, which allows up to MaxHeaderBytes.
	bufSize = 8 << 10
	// maxDiscard is the most of an unread request body read and dropped
	// after the handler to keep the connection (net/http's figure).
	maxDiscard = 256 << 10
)

// aLongTimeAgo is a deadline in the past: it ends a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one client connection served by the loop.
type conn struct {
	srv    *Server
	nc     net.Conn
	ctx    context.Context
	remote string
	buf    []byte // read buffer; buf[r:w] is read and not consumed
	r, w   int
	res    response // reused for each request
	state  atomic.Int32
	eof    bool // the client closed its side (seen by the background read)

	mu      sync.Mutex // guards the fields below, shared with the watcher
	since   time.Time  // when the running request started
	armable bool       // the running request may have its background read armed
	cancel  context.CancelFunc
	bg      *backgroundRead
}

// backgroundRead is a read of one byte run while a handler runs, to see
// the client close its side.
type backgroundRead struct {
	b    [1]byte
	n    int
	err  error
	done chan struct{}
}

// serve runs the connection's request loop.
func (c *conn) serve() {
	handedOff := false
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			c.srv.log().Error("panic serving a request", "remote", c.remote, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
		c.srv.remove(c)
		if !handedOff {
			c.nc.Close()
		}
	}()
	c.remote = c.nc.RemoteAddr().String()
	c.ctx = context.WithValue(context.Background(), http.LocalAddrContextKey, c.nc.LocalAddr())
	if c.srv.ConnContext != nil {
		c.ctx = c.srv.ConnContext(c.ctx, c.nc)
	}
	c.buf = make([]byte, bufSize)
	for first := true; ; first = false {
		end, err := c.readHead(first)
		if errors.Is(err, errHandOff) {
			handedOff = c.handOff()
			return
		}
		if err != nil {
			return
		}
		req, err := parseRequest(c.buf[c.r:end])
		if err != nil {
			handedOff = c.handOff()
			return
		}
		c.r = end
		if !c.serveRequest(req) {
			return
		}
	}
}

// readHead reads until buf[c.r:] holds a whole request head and returns
// where it ends: under the idle timeout while nothing of it arrived, then
// under the header timeout. errHandOff means the head does not fit the
// buffer or has lines ending in a bare LF (net/http decides about those).
func (c *conn) readHead(first bool) (int, error) {
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	idle := c.r == c.w
	if idle {
		if c.srv.closing.Load() {
			return 0, net.ErrClosed
		}
		c.state.Store(stateIdle) // Shutdown may close it from now on
	}
	timeout := c.srv.ReadHeaderTimeout
	if idle && !first && c.srv.IdleTimeout > 0 {
		timeout = c.srv.IdleTimeout
	}
	if timeout > 0 {
		c.nc.SetReadDeadline(time.Now().Add(timeout))
	}
	for {
		if i := bytes.Index(c.buf[c.r:c.w], crlfcrlf); i >= 0 {
			return c.r + i + 4, nil
		}
		if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		if c.w == len(c.buf) || bytes.Contains(c.buf[c.r:c.w], lflf) || bytes.Contains(c.buf[c.r:c.w], lfcrlf) {
			return 0, errHandOff // too large, or lines ending in a bare LF
		}
		n, err := c.nc.Read(c.buf[c.w:])
		c.w += n
		if n > 0 && idle {
			idle = false
			if !c.state.CompareAndSwap(stateIdle, stateReading) {
				return 0, net.ErrClosed
			}
			if !bytes.Contains(c.buf[:c.w], crlfcrlf) && timeout != c.srv.ReadHeaderTimeout && c.srv.ReadHeaderTimeout > 0 {
				// Part of a head came after an idle wait: the rest has
				// the header timeout from now.
				c.nc.SetReadDeadline(time.Now().Add(c.srv.ReadHeaderTimeout))
			}
		}
		if err != nil && n == 0 {
			return 0, err
		}
	}
}

var (
	crlfcrlf = []byte("\r\n\r\n")
	lflf     = []byte("\n\n")
	lfcrlf   = []byte("\n\r\n")
)

// handOff gives the connection, with the bytes read and not consumed put
// back in front, to the HandOff listener; it reports whether it did.
func (c *conn) handOff() bool {
	if c.srv.HandOff == nil {
		return false
	}
	c.nc.SetReadDeadline(time.Time{})
	// The loop is done with the buffer: net/http reads the rest of it.
	c.srv.HandOff.put(&replayConn{Conn: c.nc, pending: c.buf[c.r:c.w]})
	return true
}

// serveRequest runs the handler for req and finishes its response; it
// reports whether the connection stays open for another request.
func (c *conn) serveRequest(req *http.Request) (keep bool) {
	var b *body
	if req.ContentLength > 0 {
		b = &body{c: c, remain: req.ContentLength}
		req.Body = b
		c.nc.SetReadDeadline(time.Time{}) // the handler sets its own for bodies
	}
	req.RemoteAddr = c.remote
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	req = req.WithContext(ctx)

	w := &c.res
	w.reset(req)
	c.mu.Lock()
	c.since = time.Now()
	c.armable = b == nil && c.r == c.w
	c.cancel = cancel
	c.mu.Unlock()
	c.state.Store(stateBusy)

	c.srv.Handler.ServeHTTP(w, req)

	c.state.Store(stateReading)
	c.disarm()
	deadlines := w.deadlines
	if !w.finish() || w.closeAfter || c.eof {
		return false
	}
	if deadlines { // the handler's deadlines were for its request only
		c.nc.SetReadDeadline(time.Time{})
		c.nc.SetWriteDeadline(time.Time{})
	}
	if b != nil && b.remain > 0 {
		return b.discard()
	}
	return true
}

// arm starts the background read of a connection whose handler still
// runs; the watcher calls it.
func (c *conn) arm(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bg != nil || !c.armable || c.state.Load() != stateBusy || now.Sub(c.since) < ArmAfter {
		return
	}
	bg := &backgroundRead{done: make(chan struct{})}
	c.bg = bg
	cancel := c.cancel
	c.nc.SetReadDeadline(time.Time{}) // the idle deadline would end it
	go func() {
		defer close(bg.done)
		bg.n, bg.err = c.nc.Read(bg.b[:])
		if bg.err != nil && !isTimeout(bg.err) {
			cancel() // the client is gone: the handler's context says so
		}
	}()
}

// disarm ends the background read, if one runs, and keeps what it read.
func (c *conn) disarm() {
	c.mu.Lock()
	bg := c.bg
	c.bg, c.armable, c.cancel = nil, false, nil
	c.mu.Unlock()
	if bg == nil {
		return
	}
	c.nc.SetReadDeadline(aLongTimeAgo)
	<-bg.done
	c.nc.SetReadDeadline(time.Time{})
	if bg.n == 1 { // the next request's first byte; the buffer was empty
		c.r, c.w = 0, 0
		c.buf[c.w] = bg.b[0]
		c.w++
	}
	if bg.err != nil && !isTimeout(bg.err) {
		c.eof = true
	}
}

// bodyRead marks the request body read to its end: the background read
// may be armed from now on.
func (c *conn) bodyRead() {
	c.mu.Lock()
	c.armable = c.r == c.w
	c.mu.Unlock()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// body is a request body of a known length, read from the connection's
// buffer first.
type body struct {
	mu     sync.Mutex
	c      *conn
	remain int64
	closed bool
	err    error
}

// Read reads the body.
func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.remain == 0 {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	return b.read(p)
}

func (b *body) read(p []byte) (int, error) {
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	c := b.c
	var n int
	var err error
	if c.r < c.w {
		n = copy(p, c.buf[c.r:c.w])
		c.r += n
	} else {
		n, err = c.nc.Read(p)
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		b.err = err
	}
	b.remain -= int64(n)
	if b.remain == 0 {
		c.bodyRead()
	}
	return n, err
}

// left returns the bytes of the body not read yet.
func (b *body) left() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.remain
}

// Close makes further reads fail; what is left is dropped after the
// handler.
func (b *body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// discard reads and drops what the handler left of the body, up to
// maxDiscard, and reports whether the connection can serve another request.
func (b *body) discard() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.remain >= maxDiscard || b.err != nil {
		return false
	}
	var scratch [4096]byte
	for b.remain > 0 {
		if _, err := b.read(scratch[:]); err != nil {
			return false
		}
	}
	return true
}

// replayConn is a connection handed to net/http: Read returns the bytes
// the loop read and did not consume before reading the connection again.
type replayConn struct {
	net.Conn
	pending []byte
}

// Read reads the pending bytes first.
func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// ReadFrom lets net/http's sendfile reach the connection.
func (c *replayConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// NetConn returns the connection under the replay, for the wrappers'
// unwrapping (the framing guard's ConnContext, the TCP corker).
func (c *replayConn) NetConn() net.Conn { return c.Conn }
