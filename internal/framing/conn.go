package framing

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whiskserver/whisk/internal/filerange"
)

const (
	// DefaultMaxHeadBytes is the default Options.MaxHeadBytes: 64 KiB plus
	// the 4096 bytes of slop net/http adds to http.Server.MaxHeaderBytes.
	DefaultMaxHeadBytes = 64<<10 + 4096

	// DefaultRejectLinger is the default Options.RejectLinger, the same delay
	// net/http uses to avoid resetting a connection it closes after an error.
	DefaultRejectLinger = 500 * time.Millisecond

	// maxChunkLine bounds a chunk-size line including CRLF, as net/http does
	// (its bufio.Reader is 4096 bytes).
	maxChunkLine = 4096

	// bufSize is the initial (and pooled) buffer size.
	bufSize = 4096

	// maxLingerBytes bounds what a lingering close discards.
	maxLingerBytes = 256 << 10
)

// rejectRequest is what Read returns instead of a rejected message. Its
// method is not a token, so net/http answers "400 Bad Request" and closes.
// Where a reject happens inside a chunked body, net/http fails on it as
// well: "{" is not a hex digit (chunk-size line), not CR (the CRLF after
// chunk data), and the line has no colon (trailer section). io.EOF follows
// it, so no message can be completed after it.
const rejectRequest = "{framing-rejected} / HTTP/1.1\r\n\r\n"

// Options configures a Conn. The zero value is ready to use.
type Options struct {
	// MaxHeadBytes bounds a request head (request line, fields, final CRLF)
	// and a chunked trailer section, in bytes. A longer one is rejected
	// with a 400 (a head with a 431 under StatusResponses); it is not
	// passed on unchecked for net/http to answer 431. Zero means
	// DefaultMaxHeadBytes, which matches http.Server.MaxHeaderBytes = 64 KiB
	// (net/http reads up to MaxHeaderBytes+4096). A head within MaxHeadBytes
	// but over the server's own limit still gets net/http's 431; with
	// MaxHeadBytes equal to the server's MaxHeaderBytes that never happens.
	MaxHeadBytes int

	// OnReject, if not nil, is called once per rejected connection, with
	// the client address and the reason (a fixed string, see Error.Reason),
	// before Read returns the reject request. It runs on the goroutine
	// reading the connection, must be safe for concurrent use across
	// connections, and must not call methods of the Conn.
	OnReject func(remote net.Addr, reason string)

	// RejectLinger is how long Close of a rejected connection waits, after
	// half-closing it, for the client to read the 400 and hang up, while
	// discarding what the client still sends. Without it a close with
	// unread input makes the kernel send a reset, which can destroy the
	// response. Zero means DefaultRejectLinger; negative disables lingering.
	RejectLinger time.Duration

	// MaxRequestLine bounds the request line (method, target and version,
	// without its CRLF), in bytes; a longer one is rejected (Error.Status
	// 414). It is checked as the line arrives, before the rest of the head.
	// Zero means no bound but MaxHeadBytes.
	MaxRequestLine int

	// StatusResponses makes a rejection with a status of its own (414 for
	// the request line, 431 for the head: see Error.Status) reach the
	// server's handler as a fixed, well-formed request that [Handler]
	// answers with that status, instead of net/http's plain 400. Set it
	// only when the server's Handler is wrapped by Handler and its
	// ConnContext is [ConnContext].
	StatusResponses bool
}

// state is where the Conn is in the request stream.
type state uint8

const (
	stHead      state = iota // assembling a request head at hs
	stBody                   // remain bytes of Content-Length body
	stChunkLine              // assembling a chunk-size line at hs
	stChunkData              // remain bytes of chunk data
	stChunkCRLF              // expecting the CRLF after chunk data
	stTrailer                // assembling the trailer section at hs
	stPass                   // Passthrough: no more checks
	stReject                 // rejected: reject request, then io.EOF
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// Conn is a server-side net.Conn that checks the framing of the HTTP/1.x
// requests read from it; see the package comment. It is created by
// NewListener or NewConn. Its methods may be called concurrently; Reads are
// serialised. Besides net.Conn it implements io.ReaderFrom and CloseWrite
// (both used by net/http) by delegating to the wrapped connection.
type Conn struct {
	nc       net.Conn
	max      int
	maxLine  int
	status   bool // Options.StatusResponses
	onReject func(net.Addr, string)
	linger   time.Duration

	statusOut atomic.Int32 // the status request was delivered: its status

	pass     atomic.Bool // Passthrough was called
	rejected atomic.Bool // st reached stReject; read by Close
	closing  atomic.Bool // Close was called

	mu sync.Mutex // guards everything below; held by Read
	st state
	// buf[r:ok] is checked and not yet returned, buf[ok:w] is read from nc
	// but not yet checked. hs is where the unit being assembled (head, chunk
	// line, trailers) starts, ls where its current line starts, scan where
	// the search for the next LF resumes.
	buf                    []byte
	r, ok, w, hs, ls, scan int
	remain                 int64  // body or chunk bytes still to pass through
	lastPost               bool   // the last head was a POST (net/http then skips CRLFs)
	leading                int    // empty lines skipped before the current head
	rerr                   error  // error from nc that came with data, returned next
	rejOff                 int    // bytes of the reject request returned
	rejErr                 *Error // why the stream was rejected
	closed                 bool
	base                   int64           // stream offset of buf[0]
	testHookEnd            func(off int64) // called at each message end with its stream offset
}

// NewConn wraps nc, a freshly accepted server connection, whose first
// bytes are the first request. Close closes nc.
func NewConn(nc net.Conn, opts Options) *Conn {
	c := &Conn{nc: nc, max: opts.MaxHeadBytes, maxLine: opts.MaxRequestLine, status: opts.StatusResponses, onReject: opts.OnReject, linger: opts.RejectLinger}
	if c.max <= 0 {
		c.max = DefaultMaxHeadBytes
	}
	if c.linger == 0 {
		c.linger = DefaultRejectLinger
	}
	return c
}

// NewListener returns a listener whose Accept wraps each connection of l in
// a *Conn configured by opts. Closing it closes l.
func NewListener(l net.Listener, opts Options) net.Listener {
	return &listener{Listener: l, opts: opts}
}

type listener struct {
	net.Listener
	opts Options
}

// Accept returns the next connection of the wrapped listener as a *Conn.
func (l *listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return NewConn(nc, l.opts), nil
}

// Passthrough turns checking off for the rest of the connection: bytes
// already read but not yet checked, and everything after, are returned from
// Read as they are. Call it after hijacking the connection for a protocol
// switch (101 Switching Protocols, CONNECT). It has no effect once the
// connection was rejected. It is safe to call concurrently with Read.
func (c *Conn) Passthrough() { c.pass.Store(true) }

// NetConn returns the wrapped connection. Reading from it directly bypasses
// the checks and desynchronises the Conn.
func (c *Conn) NetConn() net.Conn { return c.nc }

// Read reads checked request bytes; see the package comment. It blocks
// until at least one checked byte is available, even if that needs several
// reads from the wrapped connection. After a reject it returns the reject
// request and then io.EOF.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.ok > c.r {
			n := copy(p, c.buf[c.r:c.ok])
			c.r += n
			if c.r == c.w {
				c.reset()
			}
			return n, nil
		}
		switch c.st {
		case stReject:
			rej := c.rejectBytes()
			if c.rejOff < len(rej) {
				n := copy(p, rej[c.rejOff:])
				c.rejOff += n
				if c.rejOff == len(rej) && rej == statusRequest {
					c.statusOut.Store(int32(c.rejErr.Status()))
				}
				return n, nil
			}
			return 0, io.EOF
		case stPass:
		default:
			if c.pass.Load() {
				c.st = stPass
				c.ok = c.w
				continue
			}
		}
		if c.w > c.ok {
			c.advance()
			if c.ok > c.r || c.st == stReject {
				continue
			}
		}
		if c.rerr != nil {
			err := c.rerr
			c.rerr = nil
			return 0, err
		}
		if c.closed {
			return 0, net.ErrClosed
		}
		if c.r == c.w {
			// Nothing buffered: body bytes go straight into p.
			switch c.st {
			case stPass:
				return c.nc.Read(p)
			case stBody, stChunkData:
				q := p
				if int64(len(q)) > c.remain {
					q = q[:c.remain]
				}
				n, err := c.nc.Read(q)
				c.remain -= int64(n)
				c.base += int64(n)
				if c.remain == 0 {
					c.bodyDone()
				}
				return n, err
			}
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
}

// reset empties the buffer once everything in it was returned.
func (c *Conn) reset() {
	c.base += int64(c.w)
	c.r, c.ok, c.w, c.hs, c.ls, c.scan = 0, 0, 0, 0, 0, 0
}

// fill reads more from nc into buf, compacting or growing it as needed.
// An error that came with data is kept in rerr for later.
func (c *Conn) fill() error {
	if c.buf == nil {
		c.buf = *bufPool.Get().(*[]byte)
	}
	if c.w == len(c.buf) {
		if c.r > 0 {
			n := copy(c.buf, c.buf[c.r:c.w])
			c.base += int64(c.r)
			c.ok -= c.r
			c.hs -= c.r
			c.ls -= c.r
			c.scan -= c.r
			c.r, c.w = 0, n
		}
		if c.w == len(c.buf) {
			// A unit longer than the buffer (advance rejects it once it
			// exceeds its bound, so this stays below max+bufSize).
			nb := make([]byte, 2*len(c.buf))
			copy(nb, c.buf[:c.w])
			c.putBuf()
			c.buf = nb
		}
	}
	n, err := c.nc.Read(c.buf[c.w:])
	c.w += n
	if err != nil {
		if n == 0 {
			return err
		}
		c.rerr = err
	}
	return nil
}

// putBuf returns a pool-sized buffer to the pool.
func (c *Conn) putBuf() {
	if len(c.buf) == bufSize {
		b := c.buf
		bufPool.Put(&b)
	}
	c.buf = nil
}

// advance checks buffered bytes from ok on, moving ok past every unit that
// is complete and valid, until it needs more bytes or rejects.
func (c *Conn) advance() {
	for {
		switch c.st {
		case stHead:
			if !c.headStep() {
				return
			}
		case stBody, stChunkData:
			avail := int64(c.w - c.ok)
			if avail == 0 {
				return
			}
			n := min(avail, c.remain)
			c.ok += int(n)
			c.remain -= n
			if c.remain == 0 {
				c.bodyDone()
			}
		case stChunkCRLF:
			if c.w-c.ok < 2 {
				if c.w > c.ok && c.buf[c.ok] != '\r' {
					c.reject(errChunkCRLF)
				}
				return
			}
			if c.buf[c.ok] != '\r' || c.buf[c.ok+1] != '\n' {
				c.reject(errChunkCRLF)
				return
			}
			c.ok += 2
			c.startUnit(stChunkLine)
		case stChunkLine:
			if !c.chunkLineStep() {
				return
			}
		case stTrailer:
			if !c.trailerStep() {
				return
			}
		default: // stPass, stReject
			return
		}
	}
}

// startUnit enters a state that assembles a unit starting at ok.
func (c *Conn) startUnit(st state) {
	c.st = st
	c.hs, c.ls, c.scan = c.ok, c.ok, c.ok
}

// bodyDone ends a Content-Length body or a chunk's data.
func (c *Conn) bodyDone() {
	if c.st == stChunkData {
		c.st = stChunkCRLF
		return
	}
	c.messageEnd()
}

// messageEnd ends a request: the next byte starts a head.
func (c *Conn) messageEnd() {
	c.startUnit(stHead)
	c.leading = 0
	if c.testHookEnd != nil {
		c.testHookEnd(c.base + int64(c.ok))
	}
}

// headStep looks for the end of the head at hs. It reports whether it
// made progress (the head was checked, or a leading empty line skipped).
func (c *Conn) headStep() bool {
	b := c.buf
	if c.scan == c.hs && c.hs < c.w && b[c.hs] != '\r' && b[c.hs] != '\n' {
		// Fast path for a fresh head: if no LF before the first CRLFCRLF
		// is bare, that is where the line scan below would stop, and if
		// one is, checkHead rejects it as the scan would.
		if e := bytes.Index(b[c.hs:c.w], crlfcrlf); e >= 0 {
			return c.headDone(c.hs + e + 4)
		}
	}
	lf, ok := c.scanToEmptyLine(errHeadTooLarge, c.maxLine)
	if !ok {
		return false
	}
	if c.ls == c.hs {
		// An empty line before the request line. After a POST, net/http
		// skips up to 4 leading CR/LF bytes (RFC 9112 §2.2 tolerance); pass
		// up to two CRLFs through, reject anything it would not skip.
		if !c.lastPost || c.leading == 2 {
			c.reject(errLeadingEmpty)
			return false
		}
		c.leading++
		c.ok = lf + 1
		c.startUnit(stHead)
		return true
	}
	return c.headDone(lf + 1)
}

var crlfcrlf = []byte("\r\n\r\n")

// headDone checks the complete head buf[hs:end] and moves on to its body.
func (c *Conn) headDone(end int) bool {
	head := c.buf[c.hs:end]
	if c.maxLine > 0 && bytes.IndexByte(head, '\n')-1 > c.maxLine {
		c.reject(errLineTooLong)
		return false
	}
	if end-c.hs > c.max {
		c.reject(errHeadTooLarge)
		return false
	}
	f, err := checkHead(head)
	if err != nil {
		c.reject(err)
		return false
	}
	c.lastPost = string(head[:5]) == "POST "
	c.ok = end
	switch f.Body {
	case BodyChunked:
		c.startUnit(stChunkLine)
	case BodyLength:
		if f.ContentLength > 0 {
			c.st = stBody
			c.remain = f.ContentLength
			break
		}
		c.messageEnd()
	default:
		c.messageEnd()
	}
	return true
}

// chunkLineStep checks the chunk-size line at hs once it is complete.
func (c *Conn) chunkLineStep() bool {
	i := bytes.IndexByte(c.buf[c.scan:c.w], '\n')
	if i < 0 {
		c.scan = c.w
		if c.w-c.hs >= maxChunkLine {
			c.reject(errChunkLineLong)
		}
		return false
	}
	lf := c.scan + i
	if lf+1-c.hs > maxChunkLine {
		c.reject(errChunkLineLong)
		return false
	}
	size, err := parseChunkLine(c.buf[c.hs : lf+1])
	if err != nil {
		c.reject(err)
		return false
	}
	c.ok = lf + 1
	if size == 0 {
		c.startUnit(stTrailer)
	} else {
		c.st = stChunkData
		c.remain = size
	}
	return true
}

// trailerStep checks the trailer section at hs once it is complete.
func (c *Conn) trailerStep() bool {
	lf, ok := c.scanToEmptyLine(errTrailerTooLarge, 0)
	if !ok {
		return false
	}
	if err := checkFields(c.buf[c.hs : lf+1]); err != nil {
		c.reject(err)
		return false
	}
	c.ok = lf + 1
	c.messageEnd()
	return true
}

// scanToEmptyLine scans the section at hs (a head or a trailer section)
// line by line from where it stopped, and returns the index of the LF that
// ends its first empty line. It returns false when more bytes are needed,
// or after rejecting a bare LF, a first line longer than maxLine (without
// CRLF; 0 for no bound) or a section over the bound (tooLarge).
func (c *Conn) scanToEmptyLine(tooLarge *Error, maxLine int) (int, bool) {
	b := c.buf
	for {
		i := bytes.IndexByte(b[c.scan:c.w], '\n')
		if i < 0 {
			c.scan = c.w
			switch {
			case maxLine > 0 && c.ls == c.hs && c.w-c.hs > maxLine+1:
				c.reject(errLineTooLong)
			case c.w-c.hs >= c.max:
				c.reject(tooLarge)
			}
			return 0, false
		}
		lf := c.scan + i
		if lf == c.hs || b[lf-1] != '\r' {
			c.reject(errBareLF)
			return 0, false
		}
		if maxLine > 0 && c.ls == c.hs && lf-1-c.hs > maxLine {
			c.reject(errLineTooLong)
			return 0, false
		}
		if lf+1-c.hs > c.max {
			c.reject(tooLarge)
			return 0, false
		}
		if lf-1 > c.ls {
			c.ls, c.scan = lf+1, lf+1 // a field line (or the request line); go on
			continue
		}
		return lf, true
	}
}

// reject stops checking: Read returns what was checked, then the reject
// request, then io.EOF. Unchecked bytes are never returned.
func (c *Conn) reject(err *Error) {
	c.st = stReject
	c.rejErr = err
	c.rejected.Store(true)
	if c.onReject != nil {
		c.onReject(c.nc.RemoteAddr(), err.Reason)
	}
}

// Write writes to the wrapped connection.
func (c *Conn) Write(p []byte) (int, error) { return c.nc.Write(p) }

// ReadFrom copies r to the wrapped connection, with sendfile for a
// filerange.Range or the connection's own ReadFrom (sendfile, splice) when
// it has one. net/http uses it to send files.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if n, err, handled := filerange.Send(c.nc, r, nil); handled {
		return n, err
	}
	if rf, ok := c.nc.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.nc}, r)
}

type closeWriter interface{ CloseWrite() error }

// errNoCloseWrite is returned by CloseWrite when the wrapped connection
// cannot half-close.
var errNoCloseWrite = errors.New("framing: connection does not support CloseWrite")

// CloseWrite half-closes the wrapped connection if it supports that (as
// *net.TCPConn and *net.UnixConn do). net/http uses it to avoid resets.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.nc.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return errNoCloseWrite
}

// Close closes the wrapped connection. On a rejected connection the first
// Close lingers first (see Options.RejectLinger); a concurrent second Close,
// as http.Server.Close makes, ends the linger at once. Calls after the first
// return the wrapped connection's error for a second close.
func (c *Conn) Close() error {
	if !c.closing.CompareAndSwap(false, true) {
		return c.nc.Close()
	}
	if c.rejected.Load() && c.linger > 0 {
		c.lingerClose()
	}
	err := c.nc.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil // a second Close ended the linger
	}
	c.mu.Lock()
	c.closed = true
	if c.buf != nil {
		c.putBuf()
		c.r, c.ok, c.w, c.hs, c.ls, c.scan = 0, 0, 0, 0, 0, 0
	}
	c.mu.Unlock()
	return err
}

// lingerClose half-closes the connection so the client gets the response
// and a FIN, then discards its input until it hangs up, RejectLinger passes
// or maxLingerBytes were read.
func (c *Conn) lingerClose() {
	cw, ok := c.nc.(closeWriter)
	if !ok || cw.CloseWrite() != nil {
		return
	}
	if c.nc.SetReadDeadline(time.Now().Add(c.linger)) != nil {
		return
	}
	// Read in a rejected state never touches nc, so this is the only reader.
	var buf [2048]byte
	for total := 0; total < maxLingerBytes; {
		n, err := c.nc.Read(buf[:])
		total += n
		if err != nil {
			return
		}
	}
}

// LocalAddr returns the local address of the wrapped connection.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the remote address of the wrapped connection.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetDeadline sets the read and write deadlines of the wrapped connection.
// A Read that times out keeps its partial head; a later Read resumes it.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// SetReadDeadline sets the read deadline of the wrapped connection.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline of the wrapped connection.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }
