package forwarded

import (
	"net/http"
	"net/netip"
	"strings"
)

// Request decides whether r's peer (r.RemoteAddr) is a trusted proxy of
// t (Trust.Remote), rewrites r accordingly, and returns the scheme the
// client used ("http" or "https") and whether the peer is trusted.
//
// From a trusted peer, the client is read from the Forwarded header when
// the request has one that parses, else from X-Forwarded-For, -Proto and
// -Host:
//
//   - the client's address is the rightmost address of the chain (the
//     for= parameters of Forwarded, or X-Forwarded-For) that is not itself
//     a trusted proxy: the walk goes from the right, skipping trusted
//     addresses, like nginx's real_ip_recursive. If every address is
//     trusted, the leftmost is the client. An entry that is not an
//     address ("unknown", an obfuscated "_name", garbage) ends the walk:
//     the client is hidden, so the nearest address already walked (or
//     the peer's) stays. r.RemoteAddr becomes "ADDR:PORT", with an empty
//     port when the header gives none;
//   - with Forwarded, proto= and host= come from the element that names
//     the client (the one the walk stopped at);
//   - with X-Forwarded-*, the scheme and host are the last value of
//     X-Forwarded-Proto and X-Forwarded-Host: the one the nearest proxy
//     set.
//
// The scheme counts only when it is http or https and the host only when
// it is a valid Host value; r.Host becomes the host. The headers stay in
// the request for the app.
//
// From an untrusted peer, the headers are ignored and removed (Strip), so
// an app that reads them (Django's SECURE_PROXY_SSL_HEADER,
// USE_X_FORWARDED_HOST, Werkzeug's ProxyFix) cannot be fooled by a client.
func Request(r *http.Request, t *Trust) (scheme string, trusted bool) {
	scheme = "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if !t.Remote(r.RemoteAddr) {
		Strip(r.Header)
		return scheme, false
	}
	var c client
	if fw := r.Header["Forwarded"]; len(fw) == 0 || !c.fromForwarded(fw, t) {
		c = client{}
		c.fromX(r.Header, t)
	}
	if c.addr.IsValid() {
		r.RemoteAddr = formatAddr(c.addr, c.port)
	}
	if c.proto != "" {
		scheme = c.proto
	}
	if c.host != "" {
		r.Host = c.host
	}
	return scheme, true
}

// Strip removes the headers by which proxies describe the client from h:
// Forwarded, X-Forwarded-* (For, Host, Proto, Port, Prefix, Protocol,
// Scheme, Server, Ssl), X-Real-Ip, X-Url-Scheme and Front-End-Https.
func Strip(h http.Header) {
	for k := range h {
		if isProxyHeader(k) {
			delete(h, k)
		}
	}
}

// isProxyHeader reports whether the canonical header name k is one Strip
// removes.
func isProxyHeader(k string) bool {
	if rest, ok := strings.CutPrefix(k, "X-Forwarded-"); ok {
		switch rest {
		case "For", "Host", "Proto", "Port", "Prefix", "Protocol", "Scheme", "Server", "Ssl":
			return true
		}
		return false
	}
	switch k {
	case "Forwarded", "X-Real-Ip", "X-Url-Scheme", "Front-End-Https":
		return true
	}
	return false
}

// client is what the headers say of the client.
type client struct {
	addr  netip.Addr // invalid: the peer's stays
	port  string     // digits, or "" when unknown
	proto string     // "http", "https" or "" when not said
	host  string     // "" when not said
}

// formatAddr returns a as a RemoteAddr: "1.2.3.4:PORT" or "[::1]:PORT",
// where PORT may be empty.
func formatAddr(a netip.Addr, port string) string {
	var buf [64]byte
	b := buf[:0]
	if a.Is6() {
		b = append(b, '[')
		b = a.AppendTo(b)
		b = append(b, ']')
	} else {
		b = a.AppendTo(b)
	}
	b = append(b, ':')
	b = append(b, port...)
	return string(b)
}

// element is one forwarded-element of a Forwarded header.
type element struct {
	forNode, proto, host string
	hasFor               bool
}

// fromForwarded reads Forwarded header values; false if they do not parse
// or hold no element.
func (c *client) fromForwarded(values []string, t *Trust) bool {
	var buf [8]element
	els, ok := parseForwarded(values, buf[:0])
	if !ok || len(els) == 0 {
		return false
	}
	at := 0 // the element naming the client
	for i := len(els) - 1; i >= 0; i-- {
		at = i
		if !els[i].hasFor {
			break
		}
		a, port, ok := parseNode(els[i].forNode)
		if !ok {
			break
		}
		c.addr, c.port = a, port
		if !t.Addr(a) {
			break
		}
	}
	c.proto = parseProto(els[at].proto)
	if validHost(els[at].host) {
		c.host = els[at].host
	}
	return true
}

// fromX reads X-Forwarded-For, -Proto and -Host.
func (c *client) fromX(h http.Header, t *Trust) {
	xff := h["X-Forwarded-For"]
walk:
	for i := len(xff) - 1; i >= 0; i-- {
		s := xff[i]
		for s != "" {
			var entry string
			if j := strings.LastIndexByte(s, ','); j >= 0 {
				s, entry = s[:j], s[j+1:]
			} else {
				s, entry = "", s
			}
			entry = trimOWS(entry)
			if entry == "" {
				continue // an empty list element
			}
			a, port, ok := parseNode(entry)
			if !ok {
				break walk
			}
			c.addr, c.port = a, port
			if !t.Addr(a) {
				break walk
			}
		}
	}
	if v := h["X-Forwarded-Proto"]; len(v) > 0 {
		c.proto = parseProto(lastValue(v))
	}
	if v := h["X-Forwarded-Host"]; len(v) > 0 {
		if host := lastValue(v); validHost(host) {
			c.host = host
		}
	}
}

// lastValue returns the last element of a comma-separated header's values.
func lastValue(values []string) string {
	s := values[len(values)-1]
	if j := strings.LastIndexByte(s, ','); j >= 0 {
		s = s[j+1:]
	}
	return trimOWS(s)
}

// parseProto returns "http" or "https" for those schemes (in any case),
// else "".
func parseProto(s string) string {
	switch {
	case strings.EqualFold(s, "https"):
		return "https"
	case strings.EqualFold(s, "http"):
		return "http"
	}
	return ""
}

// validHost reports whether s may be a Host header: a host name or an IP
// literal with an optional port, in the characters RFC 3986 allows there.
func validHost(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~:[]%!$&'()*+;=", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// parseNode parses a node of Forwarded's for= or an X-Forwarded-For
// entry: "192.0.2.1", "192.0.2.1:4711", "[2001:db8::1]",
// "[2001:db8::1]:4711", or a bare IPv6 address. The port is "" when none
// or an obfuscated one ("_x") is given. "unknown" and obfuscated names
// ("_hidden") are not addresses: ok is false.
func parseNode(s string) (a netip.Addr, port string, ok bool) {
	host := s
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, "", false
		}
		host, port = s[1:end], s[end+1:]
		if port != "" {
			p, cut := strings.CutPrefix(port, ":")
			if !cut {
				return netip.Addr{}, "", false
			}
			port = p
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() {
			return netip.Addr{}, "", false
		}
		if port, ok = parsePort(port); !ok {
			return netip.Addr{}, "", false
		}
		return a.Unmap().WithZone(""), port, true
	}
	if i := strings.IndexByte(s, ':'); i >= 0 && strings.IndexByte(s[i+1:], ':') < 0 {
		host, port = s[:i], s[i+1:]
		if port, ok = parsePort(port); !ok {
			return netip.Addr{}, "", false
		}
		if port == "" && s[i+1:] == "" {
			return netip.Addr{}, "", false // "1.2.3.4:" has no port
		}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, "", false
	}
	if port != "" && !a.Is4() {
		return netip.Addr{}, "", false
	}
	return a.Unmap().WithZone(""), port, true
}

// parsePort checks a node's port: decimal 0-65535, or an obfuscated port
// ("_abc"), which is returned as "" (unknown).
func parsePort(s string) (string, bool) {
	if s == "" {
		return "", true
	}
	if s[0] == '_' {
		for i := 1; i < len(s); i++ {
			if !isObfChar(s[i]) {
				return "", false
			}
		}
		return "", len(s) > 1
	}
	if len(s) > 5 {
		return "", false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return "", false
		}
		n = n*10 + int(c-'0')
	}
	return s, n <= 65535
}

func isObfChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// parseForwarded parses Forwarded header values (RFC 7239 section 4),
// appending their elements to els. Parameters other than for, proto and
// host (by, extensions) are skipped. ok is false when a value does not
// parse or an element repeats a parameter.
func parseForwarded(values []string, els []element) (_ []element, ok bool) {
	for _, s := range values {
		var cur element
		empty := true
		i := 0
		for {
			i = skipOWS(s, i)
			if i >= len(s) {
				break
			}
			switch s[i] {
			case ',':
				if !empty {
					els = append(els, cur)
				}
				cur, empty = element{}, true
				i++
				continue
			case ';':
				i++
				continue
			}
			j := i
			for j < len(s) && isTchar(s[j]) {
				j++
			}
			if j == i || j >= len(s) || s[j] != '=' {
				return els, false
			}
			name := s[i:j]
			j++
			var val string
			if j < len(s) && s[j] == '"' {
				var n int
				if val, n, ok = quoted(s[j:]); !ok {
					return els, false
				}
				j += n
			} else {
				k := j
				for k < len(s) && isTchar(s[k]) {
					k++
				}
				if k == j {
					return els, false
				}
				val, j = s[j:k], k
			}
			switch {
			case strings.EqualFold(name, "for"):
				if cur.hasFor {
					return els, false
				}
				cur.forNode, cur.hasFor = val, true
			case strings.EqualFold(name, "proto"):
				if cur.proto != "" {
					return els, false
				}
				cur.proto = val
			case strings.EqualFold(name, "host"):
				if cur.host != "" {
					return els, false
				}
				cur.host = val
			}
			empty = false
			i = skipOWS(s, j)
			if i < len(s) && s[i] != ';' && s[i] != ',' {
				return els, false
			}
		}
		if !empty {
			els = append(els, cur)
		}
	}
	return els, true
}

// quoted parses the quoted-string at the start of s and returns its
// content (quoted-pairs undone) and its length in s.
func quoted(s string) (string, int, bool) {
	escaped := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			escaped = true
			i++
		case c == '"':
			if !escaped {
				return s[1:i], i + 1, true
			}
			var b strings.Builder
			for k := 1; k < i; k++ {
				if s[k] == '\\' {
					k++
				}
				b.WriteByte(s[k])
			}
			return b.String(), i + 1, true
		case c < ' ' && c != '\t' || c == 0x7f:
			return "", 0, false
		}
	}
	return "", 0, false
}

func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func trimOWS(s string) string { return strings.Trim(s, " \t") }

// isTchar reports whether c is a token character (RFC 9110 section 5.6.2).
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
