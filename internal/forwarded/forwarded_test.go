package forwarded

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func testTrust() *Trust {
	return NewTrust([]netip.Prefix{
		netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8:ffff::/48"),
	})
}

// TestTrust: addresses in the prefixes (IPv4-mapped and zoned ones too)
// and unix socket peers when loopback is trusted.
func TestTrust(t *testing.T) {
	tr := testTrust()
	for remote, want := range map[string]bool{
		"127.0.0.1:5000":          true,
		"10.9.9.9:1":              true,
		"[::ffff:10.1.1.1]:80":    true,
		"[2001:db8:ffff::1]:80":   true,
		"[2001:db8:ffff::1%1]:80": true,
		"[::1]:80":                false,
		"192.0.2.1:80":            false,
		"@":                       true, // unix socket: local, 127.0.0.1 is trusted
		"":                        true,
		"garbage:80":              false,
	} {
		if got := tr.Remote(remote); got != want {
			t.Errorf("Remote(%q) = %v, want %v", remote, got, want)
		}
	}
	if NewTrust([]netip.Prefix{netip.MustParsePrefix("::1/128")}).Remote("@") != true {
		t.Error("a unix socket peer is not trusted though ::1 is")
	}
	if NewTrust([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}).Remote("@") {
		t.Error("a unix socket peer is trusted though no loopback address is")
	}
	var none *Trust
	if none.Remote("127.0.0.1:1") || none.NetAddr(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}) {
		t.Error("a nil Trust trusts someone")
	}
	if !tr.NetAddr(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 9}) || tr.NetAddr(&net.TCPAddr{IP: net.IPv4(192, 0, 2, 1)}) {
		t.Error("NetAddr disagrees with the prefixes")
	}
	if !tr.NetAddr(&net.UnixAddr{Name: "@", Net: "unix"}) {
		t.Error("NetAddr: a unix peer is not local")
	}
}

// TestRequest: what a trusted peer's forwarded headers make of a request,
// and that an untrusted peer's are ignored and removed.
func TestRequest(t *testing.T) {
	tests := []struct {
		name    string
		peer    string // RemoteAddr; default a trusted 10.0.0.1:4000
		tls     bool
		headers [][2]string
		remote  string // want RemoteAddr
		scheme  string // want
		host    string // want Host; default "app.test"
	}{
		{name: "no headers", remote: "10.0.0.1:4000", scheme: "http"},
		{name: "no headers, TLS", tls: true, remote: "10.0.0.1:4000", scheme: "https"},
		{name: "XFF one", headers: [][2]string{{"X-Forwarded-For", "192.0.2.7"}}, remote: "192.0.2.7:", scheme: "http"},
		{name: "XFF rightmost untrusted", headers: [][2]string{{"X-Forwarded-For", "198.51.100.1, 192.0.2.7, 10.0.0.5"}}, remote: "192.0.2.7:", scheme: "http"},
		{name: "XFF all trusted: leftmost", headers: [][2]string{{"X-Forwarded-For", "10.1.1.1, 10.2.2.2"}}, remote: "10.1.1.1:", scheme: "http"},
		{name: "XFF across lines", headers: [][2]string{{"X-Forwarded-For", "198.51.100.1"}, {"X-Forwarded-For", "10.3.3.3"}}, remote: "198.51.100.1:", scheme: "http"},
		{name: "XFF with port", headers: [][2]string{{"X-Forwarded-For", "192.0.2.7:5555"}}, remote: "192.0.2.7:5555", scheme: "http"},
		{name: "XFF IPv6", headers: [][2]string{{"X-Forwarded-For", "2001:db8::1"}}, remote: "[2001:db8::1]:", scheme: "http"},
		{name: "XFF bracketed IPv6 port", headers: [][2]string{{"X-Forwarded-For", "[2001:db8::1]:443"}}, remote: "[2001:db8::1]:443", scheme: "http"},
		{name: "XFF mapped", headers: [][2]string{{"X-Forwarded-For", "::ffff:192.0.2.9"}}, remote: "192.0.2.9:", scheme: "http"},
		{name: "XFF garbage ends walk at the peer", headers: [][2]string{{"X-Forwarded-For", "unknown"}}, remote: "10.0.0.1:4000", scheme: "http"},
		{name: "XFF garbage behind a trusted hop", headers: [][2]string{{"X-Forwarded-For", "192.0.2.1, unknown, 10.5.5.5"}}, remote: "10.5.5.5:", scheme: "http"},
		{name: "XFF empty elements", headers: [][2]string{{"X-Forwarded-For", " , 192.0.2.7 ,,"}}, remote: "192.0.2.7:", scheme: "http"},
		{name: "XFP https", headers: [][2]string{{"X-Forwarded-Proto", "https"}}, remote: "10.0.0.1:4000", scheme: "https"},
		{name: "XFP last value", headers: [][2]string{{"X-Forwarded-Proto", "http, HTTPS"}}, remote: "10.0.0.1:4000", scheme: "https"},
		{name: "XFP http over TLS", tls: true, headers: [][2]string{{"X-Forwarded-Proto", "http"}}, remote: "10.0.0.1:4000", scheme: "http"},
		{name: "XFP junk ignored", headers: [][2]string{{"X-Forwarded-Proto", "gopher"}}, remote: "10.0.0.1:4000", scheme: "http"},
		{name: "XFH", headers: [][2]string{{"X-Forwarded-Host", "a.test, shop.example:8443"}}, remote: "10.0.0.1:4000", scheme: "http", host: "shop.example:8443"},
		{name: "XFH invalid ignored", headers: [][2]string{{"X-Forwarded-Host", "evil/path"}}, remote: "10.0.0.1:4000", scheme: "http"},
		{name: "Forwarded", headers: [][2]string{{"Forwarded", `for=192.0.2.60;proto=https;host=shop.example;by=203.0.113.43`}}, remote: "192.0.2.60:", scheme: "https", host: "shop.example"},
		{name: "Forwarded quoted IPv6", headers: [][2]string{{"Forwarded", `For="[2001:db8:cafe::17]:4711"`}}, remote: "[2001:db8:cafe::17]:4711", scheme: "http"},
		{name: "Forwarded chain", headers: [][2]string{{"Forwarded", `for=192.0.2.43;proto=https, for="[2001:db8:ffff::3]";proto=http`}}, remote: "192.0.2.43:", scheme: "https"},
		{name: "Forwarded chain across lines", headers: [][2]string{{"Forwarded", `for=192.0.2.43;host=a.test`}, {"Forwarded", `for=10.0.0.9;host=b.test`}}, remote: "192.0.2.43:", scheme: "http", host: "a.test"},
		{name: "Forwarded obfuscated", headers: [][2]string{{"Forwarded", `for=_hidden;proto=https, for=10.0.0.9`}}, remote: "10.0.0.9:", scheme: "https"},
		{name: "Forwarded unknown", headers: [][2]string{{"Forwarded", `for=unknown;proto=https`}}, remote: "10.0.0.1:4000", scheme: "https"},
		{name: "Forwarded obfuscated port", headers: [][2]string{{"Forwarded", `for="192.0.2.1:_p1"`}}, remote: "192.0.2.1:", scheme: "http"},
		{name: "Forwarded escaped quoted", headers: [][2]string{{"Forwarded", `for="\192.0.2.1";proto="https"`}}, remote: "192.0.2.1:", scheme: "https"},
		{name: "Forwarded preferred", headers: [][2]string{{"Forwarded", `for=192.0.2.1`}, {"X-Forwarded-For", "198.51.100.2"}, {"X-Forwarded-Proto", "https"}}, remote: "192.0.2.1:", scheme: "http"},
		{name: "Forwarded malformed: X-Forwarded-For", headers: [][2]string{{"Forwarded", `for=[::1]`}, {"X-Forwarded-For", "198.51.100.2"}}, remote: "198.51.100.2:", scheme: "http"},
		{name: "Forwarded repeated param: malformed", headers: [][2]string{{"Forwarded", `for=192.0.2.1;for=192.0.2.2`}}, remote: "10.0.0.1:4000", scheme: "http"},
		{name: "unix peer trusted", peer: "@", headers: [][2]string{{"X-Forwarded-For", "192.0.2.7"}}, remote: "192.0.2.7:", scheme: "http"},
		{name: "untrusted peer ignored", peer: "192.0.2.200:1234", headers: [][2]string{{"X-Forwarded-For", "1.2.3.4"}, {"X-Forwarded-Proto", "https"}, {"Forwarded", "for=1.2.3.4"}, {"X-Forwarded-Host", "evil.test"}}, remote: "192.0.2.200:1234", scheme: "http"},
	}
	tr := testTrust()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://app.test/", nil)
			r.RemoteAddr = "10.0.0.1:4000"
			if tt.peer != "" {
				r.RemoteAddr = tt.peer
			}
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			for _, h := range tt.headers {
				r.Header.Add(h[0], h[1])
			}
			trusted := tr.Remote(r.RemoteAddr)
			scheme, got := Request(r, tr)
			if got != trusted {
				t.Errorf("Request says trusted %v, Remote %v", got, trusted)
			}
			want := tt.host
			if want == "" {
				want = "app.test"
			}
			if r.RemoteAddr != tt.remote || scheme != tt.scheme || r.Host != want {
				t.Errorf("RemoteAddr %q scheme %q host %q, want %q %q %q", r.RemoteAddr, scheme, r.Host, tt.remote, tt.scheme, want)
			}
			if h, p, err := net.SplitHostPort(r.RemoteAddr); err != nil && tt.peer != "@" {
				t.Errorf("RemoteAddr %q does not split: %v", r.RemoteAddr, err)
			} else if err == nil && net.JoinHostPort(h, p) != r.RemoteAddr {
				t.Errorf("RemoteAddr %q does not round-trip", r.RemoteAddr)
			}
			if !trusted && len(r.Header) != 0 {
				t.Errorf("an untrusted peer's forwarded headers stayed: %v", r.Header)
			}
		})
	}
}

// TestStrip: every proxy header goes; others stay.
func TestStrip(t *testing.T) {
	h := http.Header{}
	for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port",
		"X-Forwarded-Prefix", "X-Forwarded-Protocol", "X-Forwarded-Scheme", "X-Forwarded-Server", "X-Forwarded-Ssl",
		"X-Real-Ip", "X-Url-Scheme", "Front-End-Https"} {
		h.Set(k, "x")
	}
	h.Set("X-Forwarded-Other", "keep")
	h.Set("Accept", "keep")
	Strip(h)
	if len(h) != 2 || h.Get("Accept") != "keep" || h.Get("X-Forwarded-Other") != "keep" {
		t.Errorf("after Strip: %v", h)
	}
}

// TestParseForwardedSyntax: RFC 7239's examples parse; broken values do not.
func TestParseForwardedSyntax(t *testing.T) {
	good := []string{
		`for="_gazonk"`,
		`For="[2001:db8:cafe::17]:4711"`,
		`for=192.0.2.60;proto=http;by=203.0.113.43`,
		`for=192.0.2.43, for=198.51.100.17`,
		`for=192.0.2.43,for="[2001:db8:cafe::17]",for=unknown`,
		` for=a ; proto=https ,, `,
		`;;for=a`,
	}
	for _, v := range good {
		if _, ok := parseForwarded([]string{v}, nil); !ok {
			t.Errorf("%q does not parse", v)
		}
	}
	bad := []string{`for`, `for=`, `for="x`, `=x`, `for=a b`, `for=[::1]`, "for=\"a\x01\"", `for=a;for=b`}
	for _, v := range bad {
		if _, ok := parseForwarded([]string{v}, nil); ok {
			t.Errorf("%q parses", v)
		}
	}
}

func BenchmarkRequest(b *testing.B) {
	tr := testTrust()
	for _, bc := range []struct {
		name    string
		peer    string
		headers [][2]string
	}{
		{"trusted-none", "10.0.0.1:4000", nil},
		{"trusted-xff", "10.0.0.1:4000", [][2]string{{"X-Forwarded-For", "192.0.2.7"}, {"X-Forwarded-Proto", "https"}}},
		{"untrusted", "192.0.2.1:4000", [][2]string{{"Accept", "*/*"}, {"User-Agent", "x"}, {"Accept-Encoding", "gzip"}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/", nil)
			for _, h := range bc.headers {
				r.Header.Add(h[0], h[1])
			}
			b.ReportAllocs()
			for b.Loop() {
				r.RemoteAddr = bc.peer
				Request(r, tr)
			}
		})
	}
}

// FuzzRequest: any Forwarded and X-Forwarded-* values from a trusted peer
// leave a RemoteAddr that splits into an address and a port, a scheme of
// http or https and a valid host; nothing panics.
func FuzzRequest(f *testing.F) {
	f.Add(`for="[2001:db8::1]:80";proto=https;host=a.test, for=10.0.0.2`, "192.0.2.1, 10.0.0.3", "https", "b.test")
	f.Add(`for=_x;by=y`, "unknown", "HTTP", "[::1]:8080")
	f.Add(`for="\"q\""`, "[2001:db8::1]:1,", "", "")
	tr := testTrust()
	f.Fuzz(func(t *testing.T, fw, xff, xfp, xfh string) {
		r := httptest.NewRequest("GET", "http://app.test/", nil)
		r.RemoteAddr = "10.0.0.1:4000"
		for k, v := range map[string]string{"Forwarded": fw, "X-Forwarded-For": xff, "X-Forwarded-Proto": xfp, "X-Forwarded-Host": xfh} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		scheme, _ := Request(r, tr)
		host, port, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			t.Fatalf("RemoteAddr %q: %v", r.RemoteAddr, err)
		}
		if _, err := netip.ParseAddr(host); err != nil {
			t.Fatalf("RemoteAddr %q: host %v", r.RemoteAddr, err)
		}
		if _, ok := parsePort(port); !ok || port != "" && port[0] == '_' {
			t.Fatalf("RemoteAddr %q: port", r.RemoteAddr)
		}
		if scheme != "http" && scheme != "https" {
			t.Fatalf("scheme %q", scheme)
		}
		if r.Host != "app.test" && !validHost(r.Host) {
			t.Fatalf("host %q", r.Host)
		}
	})
}
