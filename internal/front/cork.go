package front

import (
	"context"
	"crypto/tls"
	"net"
	"syscall"

	"github.com/whiskserver/whisk/internal/framing"
	"github.com/whiskserver/whisk/internal/static"
)

// connContext is the http.Server's ConnContext: the framing guard's, plus
// a static.Corker for plain TCP connections, which static files use to send
// the response head with the file (see static.Corker).
func connContext(ctx context.Context, nc net.Conn) context.Context {
	ctx = framing.ConnContext(ctx, nc)
	if c := newTCPCorker(nc); c != nil {
		ctx = static.WithCorker(ctx, c)
	}
	return ctx
}

// tcpCorker sets TCP_CORK on a client's TCP socket. Its two Control
// functions are made once per connection, so a static response allocates
// nothing for its two SetCork calls; a connection serves one HTTP/1.x
// request at a time, so err is never shared.
type tcpCorker struct {
	rc      syscall.RawConn
	on, off func(fd uintptr)
	err     error
}

// newTCPCorker returns a corker for the TCP socket under the front's
// wrappers of nc (framing guard, limits, PROXY protocol, h2c preface), or
// nil for unix sockets and TLS connections.
func newTCPCorker(nc net.Conn) *tcpCorker {
	for {
		switch c := nc.(type) {
		case *net.TCPConn:
			rc, err := c.SyscallConn()
			if err != nil {
				return nil
			}
			tc := &tcpCorker{rc: rc}
			tc.on = func(fd uintptr) { tc.err = setCork(fd, true) }
			tc.off = func(fd uintptr) { tc.err = setCork(fd, false) }
			return tc
		case *tls.Conn:
			return nil
		case *proxyConn:
			nc = c.Conn
		case *prefaceConn:
			nc = c.Conn
		case interface{ NetConn() net.Conn }:
			nc = c.NetConn()
		default:
			return nil
		}
	}
}

// SetCork turns TCP_CORK on or off (cork_linux.go; elsewhere it fails
// and static files go without).
func (c *tcpCorker) SetCork(on bool) error {
	f := c.off
	if on {
		f = c.on
	}
	c.err = nil
	if err := c.rc.Control(f); err != nil {
		return err
	}
	return c.err
}
