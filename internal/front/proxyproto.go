package front

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whiskserver/whisk/internal/forwarded"
)

// The PROXY protocol (HAProxy's, versions 1 and 2) lets a TCP load
// balancer in front tell whisk who the client is: it sends one header
// before the connection's first byte of HTTP (or TLS), and whisk makes
// that client the connection's RemoteAddr, hence REMOTE_ADDR, the access
// log's address and the peer that forwarded_allow_ips is checked against
// for forwarded headers.
//
// On a listener with proxy_protocol:
//   - a peer in forwarded_allow_ips must send a header (as nginx requires
//     on its proxy_protocol listeners): a connection without one, or with
//     a broken one, is closed. "PROXY UNKNOWN" (v1) and the LOCAL command
//     or the UNSPEC family (v2) keep the peer's own address, as the
//     protocol says; so does a v2 UNIX address, which becomes a local
//     (unix socket) peer.
//   - any other peer must not send one: a connection from an untrusted
//     peer that starts with a PROXY header is closed, so nobody can claim
//     another address, and nothing of a forged header reaches the HTTP
//     parser. An untrusted peer that speaks HTTP (or TLS) right away is
//     served as a direct client, with its own address.
//
// The header is read in the connection's first Read or RemoteAddr, in the
// goroutine that serves it, never in Accept, so a slow peer does not hold
// up the others. It must arrive within ProxyOptions.Timeout (5 s), and is
// at most 107 bytes (v1) or 16 + 65535 (v2, whose TLVs are read and
// skipped, never kept).

// DefaultProxyTimeout is how long a connection on a PROXY protocol
// listener may take to send the header (or, from an untrusted peer, the
// first bytes that show it sends none).
const DefaultProxyTimeout = 5 * time.Second

// ProxyOptions configures ProxyListener.
type ProxyOptions struct {
	// Trust says which peers must send a PROXY header (and which must
	// not): forwarded_allow_ips.
	Trust *forwarded.Trust
	// Timeout bounds the wait for the header; 0 means
	// DefaultProxyTimeout.
	Timeout time.Duration
	// Log receives a line per refused connection (a warning at most
	// every 10 s, the rest at debug level).
	Log *slog.Logger
}

// ProxyListener wraps l so that each connection's PROXY protocol header
// (v1 or v2) is read and its RemoteAddr is the client the header names;
// see the comment above for who must (and must not) send one. Apply it to
// the raw listener, under TLS: the header comes before the TLS handshake.
//
// A connection's RemoteAddr blocks until the header is read (at most the
// timeout): call it from the goroutine that serves the connection, not
// from the accept loop (http.Server's ConnState and ConnContext hooks run
// there).
func ProxyListener(l net.Listener, opts ProxyOptions) net.Listener {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultProxyTimeout
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &proxyListener{Listener: l, opts: opts}
}

type proxyListener struct {
	net.Listener
	opts     ProxyOptions
	lastWarn atomic.Int64 // unix nanoseconds of the last refusal logged as a warning
}

// Accept returns the next connection, its header not yet read.
func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &proxyConn{Conn: c, l: l}, nil
}

// refused logs a refused connection.
func (l *proxyListener) refused(peer net.Addr, err error) {
	level := slog.LevelDebug
	now := time.Now().UnixNano()
	if last := l.lastWarn.Load(); now-last >= int64(10*time.Second) && l.lastWarn.CompareAndSwap(last, now) {
		level = slog.LevelWarn
	}
	l.opts.Log.Log(context.Background(), level, "proxy_protocol: connection refused", "peer", peer.String(), "error", err)
}

// proxyConn is a connection whose PROXY header is read on first use.
type proxyConn struct {
	net.Conn
	l *proxyListener

	once    sync.Once
	err     error    // the header was refused: every Read fails with it
	remote  net.Addr // the client
	pending []byte   // bytes read after the header, returned by Read first

	mu       sync.Mutex
	deadline time.Time // the read deadline the user set, restored after the header
	buf      [256]byte // v1 (107 bytes) or v2's fixed part and addresses (16 + 216)
}

// Read returns the connection's bytes after the PROXY header.
func (c *proxyConn) Read(p []byte) (int, error) {
	c.once.Do(c.handshake)
	if c.err != nil {
		return 0, c.err
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// RemoteAddr returns the client the PROXY header names (reading it
// first), or the peer's address when it names none or was refused.
func (c *proxyConn) RemoteAddr() net.Addr {
	c.once.Do(c.handshake)
	return c.remote
}

// SetDeadline sets the read and write deadlines.
func (c *proxyConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline sets the read deadline; while the header is read, the
// earlier of it and the header timeout applies.
func (c *proxyConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	return c.Conn.SetReadDeadline(t)
}

// ReadFrom copies r to the connection with the wrapped connection's own
// ReadFrom (sendfile, splice) when it has one.
func (c *proxyConn) ReadFrom(r io.Reader) (int64, error) { return readFrom(c.Conn, r) }

// CloseWrite half-closes the wrapped connection if it can.
func (c *proxyConn) CloseWrite() error { return closeWrite(c.Conn) }

// handshake reads the header; on refusal it closes the connection.
func (c *proxyConn) handshake() {
	peer := c.Conn.RemoteAddr()
	c.remote = peer
	if err := c.readHeader(c.l.opts.Trust.NetAddr(peer)); err != nil {
		c.err = fmt.Errorf("proxy_protocol: from %s: %w", peer, err)
		if errors.Is(err, errNothingSent) {
			// A TCP health check that connects and hangs up: not worth a warning.
			c.l.opts.Log.Debug("proxy_protocol: connection closed before its first byte", "peer", peer.String())
		} else {
			c.l.refused(peer, err)
		}
		c.Conn.Close()
	}
}

// errNothingSent is a connection closed before its first byte.
var errNothingSent = errors.New("closed before sending anything")

// errUntrustedHeader refuses a PROXY header from a peer not in
// forwarded_allow_ips.
var errUntrustedHeader = errors.New("a PROXY header from a peer not in forwarded_allow_ips")

// readHeader reads the PROXY header (trusted peer) or checks there is none
// (untrusted peer), within the timeout.
func (c *proxyConn) readHeader(trusted bool) error {
	c.mu.Lock()
	deadline := time.Now().Add(c.l.opts.Timeout)
	if !c.deadline.IsZero() && c.deadline.Before(deadline) {
		deadline = c.deadline
	}
	err := c.Conn.SetReadDeadline(deadline)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("set the header deadline: %w", err)
	}
	n := 0
	for {
		if n == len(c.buf) { // cannot happen: the parser decides within 232 bytes
			return errors.New("PROXY header too long")
		}
		m, err := c.Conn.Read(c.buf[n:])
		n += m
		if !trusted {
			switch proxyPrefix(c.buf[:n]) {
			case prefixNone:
				c.pending = c.buf[:n]
				return c.restoreDeadline()
			case prefixFull:
				return errUntrustedHeader
			}
		} else {
			h, size, perr := parseProxyHeader(c.buf[:n])
			if perr == nil {
				if h.src != nil {
					c.remote = h.src
				}
				if size <= n {
					c.pending = c.buf[size:n]
				} else if _, err := io.CopyN(io.Discard, c.Conn, int64(size-n)); err != nil {
					return fmt.Errorf("read the header's TLVs: %w", err)
				}
				return c.restoreDeadline()
			}
			if !errors.Is(perr, errShortHeader) {
				return perr
			}
		}
		if err != nil {
			if n == 0 && errors.Is(err, io.EOF) {
				return errNothingSent
			}
			return fmt.Errorf("reading the PROXY header: %w", err)
		}
	}
}

// restoreDeadline puts back the read deadline the user set.
func (c *proxyConn) restoreDeadline() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.Conn.SetReadDeadline(c.deadline); err != nil {
		return fmt.Errorf("reset the read deadline: %w", err)
	}
	return nil
}

var (
	v1Prefix = []byte("PROXY ")
	v2Sig    = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// v1MaxLen is the longest v1 header, CRLF included.
const v1MaxLen = 107

// The results of proxyPrefix.
const (
	prefixNone  = iota // b does not start a PROXY header
	prefixMaybe        // b is too short to tell
	prefixFull         // b starts with a PROXY header's signature
)

// proxyPrefix reports whether b starts with a PROXY header's signature.
func proxyPrefix(b []byte) int {
	for _, sig := range [][]byte{v1Prefix, v2Sig} {
		k := min(len(b), len(sig))
		if k > 0 && bytes.Equal(b[:k], sig[:k]) {
			if k == len(sig) {
				return prefixFull
			}
			return prefixMaybe
		}
	}
	if len(b) == 0 {
		return prefixMaybe
	}
	return prefixNone
}

// proxyHeader is a parsed PROXY header.
type proxyHeader struct {
	// src is the client; nil when the header names none (v1 UNKNOWN, v2
	// LOCAL or UNSPEC): the peer's own address stays.
	src net.Addr
}

// errShortHeader says more bytes are needed to parse a header.
var errShortHeader = errors.New("PROXY header incomplete")

// parseProxyHeader parses the PROXY header (v1 or v2) at the start of b.
// It returns the header and its length, which for v2 may exceed len(b)
// when TLVs follow the addresses (the caller skips the rest), or
// errShortHeader when b holds too little to decide.
func parseProxyHeader(b []byte) (proxyHeader, int, error) {
	switch proxyPrefix(b) {
	case prefixNone:
		return proxyHeader{}, 0, errors.New("no PROXY header (the peer is in forwarded_allow_ips, so it must send one)")
	case prefixMaybe:
		return proxyHeader{}, 0, errShortHeader
	}
	if b[0] == 'P' {
		return parseV1(b)
	}
	return parseV2(b)
}

// parseV1 parses a text header: "PROXY TCP4 SRC DST SPORT DPORT\r\n",
// TCP6 alike, or "PROXY UNKNOWN ...\r\n".
func parseV1(b []byte) (proxyHeader, int, error) {
	end := bytes.IndexByte(b[:min(len(b), v1MaxLen)], '\n')
	if end < 0 {
		if len(b) >= v1MaxLen {
			return proxyHeader{}, 0, errors.New("PROXY v1 header longer than 107 bytes")
		}
		return proxyHeader{}, 0, errShortHeader
	}
	if b[end-1] != '\r' {
		return proxyHeader{}, 0, errors.New("PROXY v1 header does not end with CRLF")
	}
	line := b[len(v1Prefix) : end-1]
	size := end + 1
	fields := bytes.Split(line, []byte{' '})
	switch string(fields[0]) {
	case "UNKNOWN":
		return proxyHeader{}, size, nil
	case "TCP4", "TCP6":
	default:
		return proxyHeader{}, 0, fmt.Errorf("PROXY v1: unknown protocol %q", fields[0])
	}
	if len(fields) != 5 {
		return proxyHeader{}, 0, errors.New("PROXY v1: want PROTO SRC DST SPORT DPORT")
	}
	v4 := string(fields[0]) == "TCP4"
	src, err1 := parseV1Addr(fields[1], v4)
	_, err2 := parseV1Addr(fields[2], v4)
	sport, err3 := parseV1Port(fields[3])
	_, err4 := parseV1Port(fields[4])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return proxyHeader{}, 0, fmt.Errorf("PROXY v1: %w", err)
	}
	return proxyHeader{src: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src.Unmap(), sport))}, size, nil
}

func parseV1Addr(b []byte, v4 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(string(b))
	if err != nil || a.Zone() != "" || a.Is4() != v4 {
		return netip.Addr{}, fmt.Errorf("bad address %q", b)
	}
	return a, nil
}

func parseV1Port(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || len(b) > 1 && b[0] == '0' {
		return 0, fmt.Errorf("bad port %q", b)
	}
	n, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", b)
	}
	return uint16(n), nil
}

// v2 address block lengths.
const (
	v2Inet4Len = 12  // src, dst addresses, src, dst ports
	v2Inet6Len = 36  // alike
	v2UnixLen  = 216 // src, dst paths of 108 bytes
)

// parseV2 parses a binary header: the signature, version and command,
// family and transport, length, addresses, TLVs (skipped).
func parseV2(b []byte) (proxyHeader, int, error) {
	if len(b) < 16 {
		return proxyHeader{}, 0, errShortHeader
	}
	if b[12]>>4 != 2 {
		return proxyHeader{}, 0, fmt.Errorf("PROXY v2: unknown version %d", b[12]>>4)
	}
	length := int(binary.BigEndian.Uint16(b[14:16]))
	size := 16 + length
	switch b[12] & 0xf {
	case 0: // LOCAL: the proxy's own connection (a health check)
		return proxyHeader{}, size, nil
	case 1: // PROXY
	default:
		return proxyHeader{}, 0, fmt.Errorf("PROXY v2: unknown command %d", b[12]&0xf)
	}
	need := 0
	switch fam := b[13]; fam {
	case 0x00: // UNSPEC
		return proxyHeader{}, size, nil
	case 0x11: // TCP over IPv4
		need = v2Inet4Len
	case 0x21: // TCP over IPv6
		need = v2Inet6Len
	case 0x31: // UNIX stream
		need = v2UnixLen
	default:
		return proxyHeader{}, 0, fmt.Errorf("PROXY v2: unsupported family and transport 0x%02x (want TCP or a unix stream)", fam)
	}
	if length < need {
		return proxyHeader{}, 0, fmt.Errorf("PROXY v2: address block of %d bytes, want %d", length, need)
	}
	if len(b) < 16+need {
		return proxyHeader{}, 0, errShortHeader
	}
	a := b[16:]
	var src net.Addr
	switch b[13] {
	case 0x11:
		ip := netip.AddrFrom4([4]byte(a[0:4]))
		src = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(a[8:10])))
	case 0x21:
		ip := netip.AddrFrom16([16]byte(a[0:16])).Unmap()
		src = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(a[32:34])))
	case 0x31:
		path := a[:108]
		if i := bytes.IndexByte(path, 0); i >= 0 {
			path = path[:i]
		}
		src = &net.UnixAddr{Name: string(path), Net: "unix"}
	}
	return proxyHeader{src: src}, size, nil
}

// wrapProxy puts ProxyListener on the raw app listeners when the config
// asks for the PROXY protocol; TLS goes on top of it in Serve.
func (s *Server) wrapProxy() {
	if s.cfg.Proxy == nil {
		return
	}
	opts := *s.cfg.Proxy
	if opts.Log == nil {
		opts.Log = s.cfg.Log
	}
	for i, l := range s.listeners {
		s.listeners[i] = ProxyListener(l, opts)
	}
	for i, l := range s.tlsListeners {
		s.tlsListeners[i] = ProxyListener(l, opts)
	}
}
