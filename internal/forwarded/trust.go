// Package forwarded decides which peers are trusted proxies
// (forwarded_allow_ips) and, for a request from one, who the client is:
// the address, scheme and host that the Forwarded header (RFC 7239) or the
// X-Forwarded-For, -Proto and -Host headers name. From any other peer those
// headers are removed, so that nothing behind whisk can be fooled by them.
//
// It is the one definition of "trusted peer" in whisk: internal/reqinfo
// uses it for request ids and forwarded headers, internal/front for the
// PROXY protocol.
package forwarded

import (
	"net"
	"net/netip"
)

// Trust is the set of trusted proxies. The zero value (and nil) trusts
// no one.
type Trust struct {
	prefixes []netip.Prefix
	local    bool
}

// NewTrust returns the set of proxies in prefixes (config's
// Server.TrustedProxies). A peer on a unix socket is local: it is trusted
// when a loopback address (127.0.0.1 or ::1) is.
func NewTrust(prefixes []netip.Prefix) *Trust {
	t := &Trust{prefixes: prefixes}
	t.local = t.Addr(netip.AddrFrom4([4]byte{127, 0, 0, 1})) || t.Addr(netip.IPv6Loopback())
	return t
}

// Addr reports whether a is a trusted proxy's address. An IPv4-mapped
// IPv6 address counts as its IPv4 address; a zone is ignored.
func (t *Trust) Addr(a netip.Addr) bool {
	if t == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Local reports whether a local peer (a unix socket's) is trusted.
func (t *Trust) Local() bool { return t != nil && t.local }

// Remote reports whether the peer at remote, an http.Request's RemoteAddr
// ("host:port", or what a unix socket peer has: "@" or ""), is trusted.
func (t *Trust) Remote(remote string) bool {
	if t == nil {
		return false
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return t.local // a unix socket: a local peer
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return t.Addr(a)
}

// NetAddr reports whether the peer at a, a connection's RemoteAddr, is
// trusted: a TCP address in the set, or a unix socket when local peers
// are trusted.
func (t *Trust) NetAddr(a net.Addr) bool {
	switch a := a.(type) {
	case *net.TCPAddr:
		return t.Addr(a.AddrPort().Addr())
	case *net.UnixAddr:
		return t.Local()
	case nil:
		return false
	default:
		return t.Remote(a.String())
	}
}
