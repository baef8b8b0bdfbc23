package front

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whiskserver/whisk/internal/filerange"
)

// Limits are the app listeners' limits beyond net/http's own timeouts and
// MaxHeaderBytes. The zero value sets none.
type Limits struct {
	// MaxRequestLine bounds the request line in bytes, without its CRLF
	// (414 URI Too Long beyond); the framing guard checks it before
	// net/http parses the head. Zero means no bound but MaxHeaderBytes.
	MaxRequestLine int
	// WriteTimeout bounds each write to a client: a client that does not
	// take writeChunk bytes of the response within it has its connection
	// closed. Zero means no bound.
	WriteTimeout time.Duration
	// MaxConnections bounds the client connections open at once on the app
	// listeners (plain and TLS together); further ones wait in the
	// kernel's backlog until one closes. Zero means no bound.
	MaxConnections int
	// SocketMode, when not zero, is the permission bits given to the unix
	// sockets the front binds (not those systemd passes) right after bind.
	SocketMode os.FileMode
	// SocketOwner, when set, is "USER:GROUP", "USER" or ":GROUP" (names or
	// numeric ids): the owner given to the unix sockets the front binds.
	SocketOwner string
}

// writeChunk is the most one write (or one sendfile call) hands the
// connection under a single write deadline: WriteTimeout is the longest a
// client may take to accept this much.
const writeChunk = 256 << 10

// limiter applies Limits.MaxConnections and Limits.WriteTimeout to the
// listeners of one Serve: the connection slots are shared by all of them.
type limiter struct {
	slots        chan struct{} // one token per open connection; nil: no bound
	writeTimeout time.Duration
}

// newLimiter returns the limiter for lim, or nil when lim sets neither a
// connection bound nor a write timeout.
func newLimiter(lim Limits) *limiter {
	if lim.MaxConnections <= 0 && lim.WriteTimeout <= 0 {
		return nil
	}
	l := &limiter{writeTimeout: lim.WriteTimeout}
	if lim.MaxConnections > 0 {
		l.slots = make(chan struct{}, lim.MaxConnections)
	}
	return l
}

// wrap returns l with the limits applied; a nil limiter returns l.
func (lm *limiter) wrap(l net.Listener) net.Listener {
	if lm == nil {
		return l
	}
	return &limitListener{Listener: l, lm: lm, done: make(chan struct{})}
}

// limitListener takes a connection slot before each Accept, so the
// connections beyond MaxConnections stay in the kernel's backlog (as
// golang.org/x/net/netutil.LimitListener does), and wraps what it accepts.
type limitListener struct {
	net.Listener
	lm        *limiter
	done      chan struct{} // closed by Close: an Accept waiting for a slot returns
	closeOnce sync.Once
}

// Accept waits for a free connection slot, then accepts.
func (l *limitListener) Accept() (net.Conn, error) {
	if l.lm.slots != nil {
		select {
		case l.lm.slots <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.lm.release()
		return nil, err
	}
	return &limitedConn{Conn: c, lm: l.lm}, nil
}

// Close closes the listener and ends an Accept waiting for a slot.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// release gives a connection slot back.
func (lm *limiter) release() {
	if lm.slots != nil {
		<-lm.slots
	}
}

// limitedConn holds a connection slot until closed and arms the write
// deadline before each write.
type limitedConn struct {
	net.Conn
	lm     *limiter
	closed atomic.Bool
	// callerDeadline is a write deadline set through SetDeadline or
	// SetWriteDeadline (Unix nanoseconds; 0 for none): the armed deadline
	// never goes past it, so a caller's deadline still cuts writes short.
	callerDeadline atomic.Int64
}

// arm sets the write deadline for the next write: WriteTimeout from now,
// or the caller's deadline if that is sooner.
func (c *limitedConn) arm() {
	if c.lm.writeTimeout <= 0 {
		return
	}
	d := time.Now().Add(c.lm.writeTimeout)
	if cd := c.callerDeadline.Load(); cd != 0 && cd < d.UnixNano() {
		d = time.Unix(0, cd)
	}
	c.Conn.SetWriteDeadline(d)
}

// Write writes p in chunks of at most writeChunk bytes, each under its own
// write deadline.
func (c *limitedConn) Write(p []byte) (int, error) {
	if c.lm.writeTimeout <= 0 {
		return c.Conn.Write(p)
	}
	written := 0
	for {
		chunk := p[written:]
		if len(chunk) > writeChunk {
			chunk = chunk[:writeChunk]
		}
		c.arm()
		n, err := c.Conn.Write(chunk)
		written += n
		if err != nil || written == len(p) {
			return written, err
		}
	}
}

// ReadFrom copies r to the connection. A filerange.Range goes out with
// one sendfile loop whose write deadline moves each time the client takes
// bytes; anything else goes through the connection's own ReadFrom
// (sendfile, splice), writeChunk bytes per write deadline, with an
// *io.LimitedReader unwrapped so the kernel still sees the file.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if _, ok := c.Conn.(io.ReaderFrom); !ok {
		return io.Copy(writerOnly{c}, r)
	}
	if c.lm.writeTimeout <= 0 {
		return readFrom(c.Conn, r)
	}
	c.arm()
	if n, err, handled := filerange.Send(innerConn(c.Conn), r, c.arm); handled {
		return n, err
	}
	src, remain := r, int64(-1) // -1: until src ends
	lr, limited := r.(*io.LimitedReader)
	if limited {
		src, remain = lr.R, lr.N
	}
	var total int64
	for remain != 0 {
		n := int64(writeChunk)
		if remain > 0 {
			n = min(n, remain)
		}
		part := &io.LimitedReader{R: src, N: n}
		c.arm()
		m, err := readFrom(c.Conn, part)
		total += m
		if remain > 0 {
			remain -= m
		}
		if limited {
			lr.N -= m
		}
		if err != nil {
			return total, err
		}
		if part.N > 0 {
			break // src ended
		}
	}
	return total, nil
}

// writerOnly hides a Writer's ReadFrom, so io.Copy does not recurse.
type writerOnly struct{ io.Writer }

// CloseWrite half-closes the connection if it can.
func (c *limitedConn) CloseWrite() error { return closeWrite(c.Conn) }

// The front's connection wrappers (limitedConn, proxyConn, prefaceConn)
// pass sendfile and half-closes through to the connection they wrap.

// readFrom copies r to nc with sendfile for a filerange.Range, or with
// nc's own ReadFrom (sendfile, splice) when it has one.
func readFrom(nc net.Conn, r io.Reader) (int64, error) {
	if n, err, handled := filerange.Send(nc, r, nil); handled {
		return n, err
	}
	if rf, ok := nc.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{nc}, r)
}

// innerConn returns the connection under the front's pass-through
// wrappers (PROXY protocol, h2c preface), to which writes go unchanged.
func innerConn(nc net.Conn) net.Conn {
	for {
		switch c := nc.(type) {
		case *proxyConn:
			nc = c.Conn
		case *prefaceConn:
			nc = c.Conn
		default:
			return nc
		}
	}
}

// errNoCloseWrite is CloseWrite's error when the wrapped connection
// cannot half-close.
var errNoCloseWrite = errors.New("front: connection does not support CloseWrite")

// closeWrite half-closes nc if it can.
func closeWrite(nc net.Conn) error {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errNoCloseWrite
}

// SetDeadline sets both deadlines; the write deadline also caps the ones
// Write arms.
func (c *limitedConn) SetDeadline(t time.Time) error {
	c.setCallerDeadline(t)
	return c.Conn.SetDeadline(t)
}

// SetWriteDeadline sets the write deadline, which also caps the ones
// Write arms.
func (c *limitedConn) SetWriteDeadline(t time.Time) error {
	c.setCallerDeadline(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *limitedConn) setCallerDeadline(t time.Time) {
	if t.IsZero() {
		c.callerDeadline.Store(0)
		return
	}
	c.callerDeadline.Store(t.UnixNano())
}

// Close closes the connection and gives its slot back (once).
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.lm.release()
	}
	return err
}

// NetConn returns the wrapped connection.
func (c *limitedConn) NetConn() net.Conn { return c.Conn }

// applySocketPerms gives a unix socket the front bound the mode and owner
// of lim. Other listeners, and abstract sockets, are left alone.
func applySocketPerms(l net.Listener, lim Limits) error {
	ul, ok := l.(*net.UnixListener)
	if !ok || (lim.SocketMode == 0 && lim.SocketOwner == "") {
		return nil
	}
	path := ul.Addr().String()
	if path == "" || path[0] == '@' {
		return nil
	}
	if lim.SocketOwner != "" {
		uid, gid, err := lookupOwner(lim.SocketOwner)
		if err != nil {
			return fmt.Errorf("socket_owner %q: %w", lim.SocketOwner, err)
		}
		if err := os.Chown(path, uid, gid); err != nil {
			return fmt.Errorf("socket_owner %q: %w (whisk must run as root to give a socket away)", lim.SocketOwner, err)
		}
	}
	if lim.SocketMode != 0 {
		if err := os.Chmod(path, lim.SocketMode); err != nil {
			return fmt.Errorf("socket_mode %04o: %w", lim.SocketMode, err)
		}
	}
	return nil
}

// lookupOwner resolves "USER:GROUP", "USER" or ":GROUP" (names or numeric
// ids) to the uid and gid for os.Chown; -1 leaves one unchanged.
func lookupOwner(owner string) (uid, gid int, err error) {
	name, group, _ := strings.Cut(owner, ":")
	uid, gid = -1, -1
	if name != "" {
		u, err := user.Lookup(name)
		if err != nil {
			if u, err = user.LookupId(name); err != nil {
				return 0, 0, fmt.Errorf("no user %q", name)
			}
		}
		if uid, err = strconv.Atoi(u.Uid); err != nil {
			return 0, 0, fmt.Errorf("user %q has uid %q: %w", name, u.Uid, err)
		}
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			if g, err = user.LookupGroupId(group); err != nil {
				return 0, 0, fmt.Errorf("no group %q", group)
			}
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return 0, 0, fmt.Errorf("group %q has gid %q: %w", group, g.Gid, err)
		}
	}
	return uid, gid, nil
}
