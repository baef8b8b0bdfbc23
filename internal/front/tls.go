package front

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/whiskserver/whisk/internal/framing"
)

// HTTP/1.1 over TLS behind the framing guard, HTTP/2 beside it.
//
// net/http serves HTTP/2 on a connection only when its listener returns
// exactly a *tls.Conn (it checks the type, handshakes, and hands an "h2"
// connection to its TLSNextProto); the framing guard, though, must read the
// clear-text HTTP/1.1 bytes, above crypto/tls. So the TLS listener
// handshakes each connection itself (concurrently, bounded by a timeout)
// before Accept returns it, and then looks at what ALPN chose:
//
//   - "h2": the *tls.Conn as it is; net/http's handshake is then a no-op and
//     HTTP/2 takes over (its framing is binary and unambiguous: no guard).
//   - anything else (http/1.1, or no ALPN): the *tls.Conn wrapped in a
//     framing.Conn, with a ConnectionState method, from which net/http fills
//     Request.TLS for HTTP/1.x. Since the wrapper is not a *tls.Conn,
//     net/http serves it as HTTP/1.x whatever the server's protocols.

// defaultHandshakeTimeout bounds a TLS handshake when no header timeout is
// set.
const defaultHandshakeTimeout = 10 * time.Second

// tlsListener accepts TLS connections from a plain listener; see above.
type tlsListener struct {
	inner   net.Listener
	config  *tls.Config
	guard   framing.Options
	timeout time.Duration
	log     *slog.Logger

	ready chan net.Conn     // handshaken, waiting for Accept
	errc  chan error        // errors of the inner Accept
	done  chan struct{}     // closed by Close
	dead  chan struct{}     // closed when the inner listener fails for good
	err   error             // why dead; set before dead closes
	once  sync.Once         // Close
	mu    sync.Mutex        // guards pending
	hands map[net.Conn]bool // raw connections being handshaken or handed over
}

// newTLSListener starts accepting on inner; connections come out of
// Accept once their handshake is done.
func newTLSListener(inner net.Listener, config *tls.Config, guard framing.Options, timeout time.Duration, log *slog.Logger) *tlsListener {
	if timeout <= 0 {
		timeout = defaultHandshakeTimeout
	}
	l := &tlsListener{
		inner: inner, config: config, guard: guard, timeout: timeout, log: log,
		ready: make(chan net.Conn), errc: make(chan error), done: make(chan struct{}), dead: make(chan struct{}),
		hands: map[net.Conn]bool{},
	}
	go l.acceptLoop()
	return l
}

// acceptLoop accepts raw connections and handshakes each on its own
// goroutine, so a slow client holds up no other.
func (l *tlsListener) acceptLoop() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				l.err = err
				close(l.dead)
				return
			}
			// Passed on for http.Server to back off (EMFILE and the like).
			select {
			case l.errc <- err:
				continue
			case <-l.done:
				return
			}
		}
		if !l.track(c) {
			c.Close()
			return
		}
		go l.handshake(c)
	}
}

// track registers a connection being handshaken; false once closed.
func (l *tlsListener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hands == nil {
		return false
	}
	l.hands[c] = true
	return true
}

func (l *tlsListener) untrack(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.hands, c)
}

// handshake runs the TLS handshake of raw and hands the connection to
// Accept, guarded when it speaks HTTP/1.x.
func (l *tlsListener) handshake(raw net.Conn) {
	defer l.untrack(raw)
	tc := tls.Server(raw, l.config)
	raw.SetDeadline(time.Now().Add(l.timeout))
	if err := tc.Handshake(); err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			// Plain HTTP sent to the HTTPS port: say so, as net/http does.
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		}
		l.log.Debug("TLS handshake failed", "remote", raw.RemoteAddr().String(), "error", err)
		raw.Close()
		return
	}
	raw.SetDeadline(time.Time{})
	state := tc.ConnectionState()
	if state.NegotiatedProtocol == acmeALPN {
		// An ACME CA checking the TLS-ALPN-01 challenge: the handshake
		// was the answer.
		tc.Close()
		return
	}
	var c net.Conn = tc
	if state.NegotiatedProtocol != "h2" {
		c = &guardedTLSConn{Conn: framing.NewConn(tc, l.guard), state: state}
	}
	select {
	case l.ready <- c:
	case <-l.done:
		c.Close()
	}
}

// looksLikeHTTP reports whether the first bytes of a TLS record are those
// of a plain HTTP request (net/http's check).
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// Accept returns the next handshaken connection: a *tls.Conn for HTTP/2,
// a guarded connection for HTTP/1.x.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.dead:
		return nil, l.err
	}
}

// Close stops accepting and closes the connections still in their
// handshake.
func (l *tlsListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.inner.Close()
		l.mu.Lock()
		for c := range l.hands {
			c.Close()
		}
		l.hands = nil
		l.mu.Unlock()
	})
	return err
}

// Addr returns the inner listener's address.
func (l *tlsListener) Addr() net.Addr { return l.inner.Addr() }

// guardedTLSConn is an HTTP/1.x connection over TLS behind the framing
// guard. Its ConnectionState makes net/http set Request.TLS.
type guardedTLSConn struct {
	*framing.Conn
	state tls.ConnectionState
}

// ConnectionState returns the state of the finished TLS handshake.
func (c *guardedTLSConn) ConnectionState() tls.ConnectionState { return c.state }

// h2Preface is what an HTTP/2 client with prior knowledge sends first
// (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2cGuardListener wraps a plain listener for h2c: each connection goes
// behind the framing guard unless it opens with the HTTP/2 preface, which
// the guard would reject as an unsupported version.
type h2cGuardListener struct {
	net.Listener
	guard framing.Options
}

// Accept returns the next connection behind the guard, watched for the
// HTTP/2 preface.
func (l *h2cGuardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	pc := &prefaceConn{Conn: c}
	fc := framing.NewConn(pc, l.guard)
	pc.onPreface = fc.Passthrough
	return fc, nil
}

// prefaceConn sits under the framing guard and reads the first bytes of
// the connection; if they are the HTTP/2 preface it turns the guard off
// (onPreface) before returning them. It reads no further than the preface,
// so the guard sees every byte.
type prefaceConn struct {
	net.Conn
	onPreface func()
	decided   bool
	head      []byte // read while deciding, not yet returned
	err       error  // read error that came while deciding
	scratch   [len(h2Preface)]byte
}

// Read reads from the connection; see prefaceConn. The guard serialises
// its calls.
func (c *prefaceConn) Read(p []byte) (int, error) {
	if !c.decided {
		n := 0
		for n < len(h2Preface) && bytes.HasPrefix([]byte(h2Preface), c.scratch[:n]) {
			m, err := c.Conn.Read(c.scratch[n:])
			n += m
			if err != nil {
				c.err = err
				break
			}
		}
		c.decided = true
		c.head = c.scratch[:n]
		if string(c.head) == h2Preface {
			c.onPreface()
		}
	}
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	if c.err != nil {
		err := c.err
		c.err = nil
		return 0, err
	}
	return c.Conn.Read(p)
}

// ReadFrom lets responses use the connection's sendfile.
func (c *prefaceConn) ReadFrom(r io.Reader) (int64, error) { return readFrom(c.Conn, r) }

// CloseWrite half-closes the connection, if it can.
func (c *prefaceConn) CloseWrite() error { return closeWrite(c.Conn) }

// openTLS opens the HTTPS listeners of cfg.TLSBinds.
func (s *Server) openTLS() error {
	if len(s.cfg.TLSBinds) == 0 {
		return nil
	}
	if s.cfg.Certs == nil {
		return errors.New("tls_bind: no certificates: set tls_cert and tls_key (or a site's)")
	}
	for _, b := range s.cfg.TLSBinds {
		l, err := Listen(b, s.cfg.Inherited)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("tls_bind: %w", err)
		}
		s.tlsListeners = append(s.tlsListeners, l)
	}
	return nil
}

// allListeners returns the plain listeners, then the HTTPS ones.
func (s *Server) allListeners() []net.Listener {
	return slices.Concat(s.listeners, s.tlsListeners)
}

// guardPlain puts the framing guard on a plain listener; with h2c, a
// connection that opens with the HTTP/2 preface goes without it.
func (s *Server) guardPlain(l net.Listener, opts framing.Options) net.Listener {
	if s.cfg.H2C {
		return &h2cGuardListener{Listener: l, guard: opts}
	}
	return framing.NewListener(l, opts)
}

// guardTLS puts TLS on a listener, and the framing guard on its HTTP/1.x
// connections.
func (s *Server) guardTLS(l net.Listener, opts framing.Options) net.Listener {
	return newTLSListener(l, s.cfg.Certs.TLSConfig(), opts, s.cfg.ReadHeaderTimeout, s.cfg.Log)
}

// protocols returns what the server speaks: HTTP/1.1, HTTP/2 over TLS (by
// ALPN), and with h2c HTTP/2 over plain connections with prior knowledge.
// (net/http has no h2c Upgrade, which RFC 9113 deprecates.)
func protocols(h2c bool) *http.Protocols {
	p := &http.Protocols{}
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(h2c)
	return p
}
