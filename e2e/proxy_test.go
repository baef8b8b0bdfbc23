package e2e

// Proxy trust through the real binary: forwarded headers (X-Forwarded-*,
// Forwarded) from trusted and untrusted peers, and the PROXY protocol.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// environVia sends prefix (a PROXY header, or nothing) and then raw on a
// new connection and returns the environ the app saw.
func environVia(t *testing.T, s *whisktest.Server, prefix []byte, raw string) *environDump {
	t.Helper()
	c := dial(t, s)
	defer c.Close()
	if _, err := c.Write(append(append([]byte{}, prefix...), raw...)); err != nil {
		t.Fatal(err)
	}
	resp, body := readResponse(t, s, bufio.NewReader(c), "GET")
	mustStatus(t, s, resp, body, http.StatusOK)
	return decodeEnviron(t, body)
}

func decodeEnviron(t *testing.T, body []byte) *environDump {
	t.Helper()
	d := &environDump{env: map[string]string{}}
	if err := json.Unmarshal(body, d); err != nil {
		t.Fatalf("decode %s: %v", truncate(body), err)
	}
	for k, v := range d.Str {
		b := make([]byte, len(v)/2)
		for i := range b {
			b[i] = unhexByte(v[2*i])<<4 | unhexByte(v[2*i+1])
		}
		d.env[k] = string(b)
	}
	return d
}

func unhexByte(c byte) byte {
	if c >= 'a' {
		return c - 'a' + 10
	}
	return c - '0'
}

// wantEnv checks environ values; "<absent>" says the key must be missing.
func wantEnv(t *testing.T, d *environDump, want map[string]string) {
	t.Helper()
	for k, w := range want {
		got, ok := d.env[k]
		if w == "<absent>" {
			if ok {
				t.Errorf("environ[%s] = %q, want it absent", k, got)
			}
			continue
		}
		if !ok || got != w {
			t.Errorf("environ[%s] = %q (present %v), want %q", k, got, ok, w)
		}
	}
}

// refused sends b on a new connection and checks whisk closes it without
// an answer.
func refused(t *testing.T, s *whisktest.Server, b []byte) {
	t.Helper()
	c := dial(t, s)
	defer c.Close()
	c.Write(b)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if len(got) != 0 {
		t.Errorf("sent %q: got an answer %q, want the connection closed", truncate(b), truncate(got))
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("sent %q: the connection stayed open", truncate(b))
	}
}

// TestForwardedTrusted: a trusted proxy's X-Forwarded-For, -Proto, -Host
// and Forwarded name the client in REMOTE_ADDR, wsgi.url_scheme, HTTPS
// and HTTP_HOST, and in the access log.
func TestForwardedTrusted(t *testing.T) {
	t.Parallel()
	logPath := filepath.Join(t.TempDir(), "access.log")
	s := startApp(t, "environ.py", "--processes", "1", "--forwarded-allow-ips", "127.0.0.1",
		"--forwarded-allow-ips", "10.0.0.0/8", "--access-log", logPath, "--access-log-format", "%h %v %s")

	d := environVia(t, s, nil, "GET / HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 198.51.100.1, 203.0.113.7, 10.1.1.1\r\nConnection: close\r\n\r\n")
	wantEnv(t, d, map[string]string{
		"REMOTE_ADDR": "203.0.113.7", "REMOTE_PORT": "", "wsgi.url_scheme": "http", "HTTPS": "<absent>",
		"HTTP_X_FORWARDED_FOR": "198.51.100.1, 203.0.113.7, 10.1.1.1", "HTTP_HOST": "app.test",
	})

	d = environVia(t, s, nil, "GET / HTTP/1.1\r\nHost: internal:8000\r\nX-Forwarded-For: 203.0.113.8\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example\r\nConnection: close\r\n\r\n")
	wantEnv(t, d, map[string]string{
		"REMOTE_ADDR": "203.0.113.8", "wsgi.url_scheme": "https", "HTTPS": "on",
		"HTTP_HOST": "shop.example", "SERVER_NAME": "shop.example", "SERVER_PORT": "443",
		"HTTP_X_FORWARDED_PROTO": "https",
	})

	// Forwarded wins over X-Forwarded-*.
	d = environVia(t, s, nil, "GET / HTTP/1.1\r\nHost: internal\r\n"+
		"Forwarded: for=\"[2001:db8::5]:4711\";proto=https;host=fw.example, for=10.2.2.2\r\n"+
		"X-Forwarded-For: 198.51.100.99\r\nX-Forwarded-Proto: http\r\nConnection: close\r\n\r\n")
	wantEnv(t, d, map[string]string{
		"REMOTE_ADDR": "2001:db8::5", "REMOTE_PORT": "4711", "wsgi.url_scheme": "https", "HTTPS": "on",
		"HTTP_HOST": "fw.example", "SERVER_NAME": "fw.example",
	})

	// An obfuscated client: the walk stops there; its proto still counts.
	d = environVia(t, s, nil, "GET / HTTP/1.1\r\nHost: internal\r\nForwarded: for=_hidden;proto=https\r\nConnection: close\r\n\r\n")
	wantEnv(t, d, map[string]string{"REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "https"})

	lines := logLines(t, s, logPath, 4)
	for i, want := range []string{"203.0.113.7 app.test 200", "203.0.113.8 shop.example 200", "2001:db8::5 fw.example 200", "127.0.0.1 internal 200"} {
		if got := strings.TrimSpace(lines[i]); got != want {
			t.Errorf("access log line %d = %q, want %q", i, got, want)
		}
	}
}

// TestForwardedUntrusted: from a peer not in forwarded_allow_ips, the
// forwarded headers are ignored and removed before the app sees them.
func TestForwardedUntrusted(t *testing.T) {
	t.Parallel()
	s := startApp(t, "environ.py", "--processes", "1", "--forwarded-allow-ips", "10.0.0.0/8")
	d, port := environOf(t, s, "GET / HTTP/1.1\r\nHost: app.test\r\n"+
		"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\n"+
		"Forwarded: for=203.0.113.9;proto=https\r\nX-Real-IP: 203.0.113.10\r\nX-Forwarded-Ssl: on\r\n"+
		"X-Other: kept\r\nConnection: close\r\n\r\n")
	wantEnv(t, d, map[string]string{
		"REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "HTTPS": "<absent>", "HTTP_HOST": "app.test",
		"HTTP_X_FORWARDED_FOR": "<absent>", "HTTP_X_FORWARDED_PROTO": "<absent>", "HTTP_X_FORWARDED_HOST": "<absent>",
		"HTTP_FORWARDED": "<absent>", "HTTP_X_REAL_IP": "<absent>", "HTTP_X_FORWARDED_SSL": "<absent>",
		"HTTP_X_OTHER": "kept", "REMOTE_PORT": port,
	})
}

// proxyV2 returns a PROXY v2 header for a TCP client src (and TLVs of
// tlv bytes).
func proxyV2(src netip.AddrPort, tlv int) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n\x21")
	var addrs []byte
	if src.Addr().Is4() {
		b = append(b, 0x11)
		a, d := src.Addr().As4(), [4]byte{192, 0, 2, 250}
		addrs = append(append(addrs, a[:]...), d[:]...)
	} else {
		b = append(b, 0x21)
		a, d := src.Addr().As16(), netip.MustParseAddr("2001:db8::250").As16()
		addrs = append(append(addrs, a[:]...), d[:]...)
	}
	addrs = binary.BigEndian.AppendUint16(addrs, src.Port())
	addrs = binary.BigEndian.AppendUint16(addrs, 443)
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)+tlv))
	b = append(b, addrs...)
	for range tlv {
		b = append(b, 0x04) // PP2_TYPE_NOOP bytes: skipped either way
	}
	return b
}

const proxyGet = "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"

// TestProxyProtocol: on a proxy_protocol listener, a trusted peer's v1
// and v2 headers set REMOTE_ADDR and REMOTE_PORT; a trusted peer without
// a header is refused; the client the header names is then the peer whose
// forwarded headers are (not) trusted; the server keeps serving.
func TestProxyProtocol(t *testing.T) {
	t.Parallel()
	s := startApp(t, "environ.py", "--processes", "1", "--proxy-protocol", "--forwarded-allow-ips", "127.0.0.1")

	d := environVia(t, s, []byte("PROXY TCP4 192.0.2.44 192.0.2.250 5555 443\r\n"), proxyGet)
	wantEnv(t, d, map[string]string{"REMOTE_ADDR": "192.0.2.44", "REMOTE_PORT": "5555"})

	d = environVia(t, s, proxyV2(netip.MustParseAddrPort("[2001:db8::44]:6666"), 300), proxyGet)
	wantEnv(t, d, map[string]string{"REMOTE_ADDR": "2001:db8::44", "REMOTE_PORT": "6666"})

	d = environVia(t, s, proxyV2(netip.MustParseAddrPort("192.0.2.45:7777"), 0), proxyGet)
	wantEnv(t, d, map[string]string{"REMOTE_ADDR": "192.0.2.45", "REMOTE_PORT": "7777"})

	// PROXY UNKNOWN keeps the peer.
	d = environVia(t, s, []byte("PROXY UNKNOWN\r\n"), proxyGet)
	wantEnv(t, d, map[string]string{"REMOTE_ADDR": "127.0.0.1"})

	// The client the header names (192.0.2.44) is no trusted proxy: its
	// X-Forwarded-For is removed.
	d = environVia(t, s, []byte("PROXY TCP4 192.0.2.44 192.0.2.250 5555 443\r\n"),
		"GET / HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 203.0.113.1\r\nConnection: close\r\n\r\n")
	wantEnv(t, d, map[string]string{"REMOTE_ADDR": "192.0.2.44", "HTTP_X_FORWARDED_FOR": "<absent>"})
	// ... while a header naming a trusted address passes it on.
	d = environVia(t, s, []byte("PROXY TCP4 127.0.0.1 192.0.2.250 5555 443\r\n"),
		"GET / HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 203.0.113.1\r\nConnection: close\r\n\r\n")
	wantEnv(t, d, map[string]string{"REMOTE_ADDR": "203.0.113.1"})

	// A trusted peer must send the header; a broken one is refused too.
	refused(t, s, []byte(proxyGet))
	refused(t, s, []byte("PROXY TCP4 192.0.2.44 2001:db8::1 5555 443\r\n"+proxyGet))
	refused(t, s, []byte("PROXY TCP4 192.0.2.44 192.0.2.250 5555 443\n"+proxyGet))

	// Keep-alive: the header counts for every request of the connection.
	c := dial(t, s)
	defer c.Close()
	send(t, c, "PROXY TCP4 192.0.2.46 192.0.2.250 1 443\r\n")
	br := bufio.NewReader(c)
	for range 2 {
		send(t, c, "GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
		resp, body := readResponse(t, s, br, "GET")
		mustStatus(t, s, resp, body, http.StatusOK)
		wantEnv(t, decodeEnviron(t, body), map[string]string{"REMOTE_ADDR": "192.0.2.46"})
	}

	d = environVia(t, s, []byte("PROXY TCP4 192.0.2.47 192.0.2.250 1 443\r\n"), proxyGet)
	wantEnv(t, d, map[string]string{"REMOTE_ADDR": "192.0.2.47"})
}

// TestProxyProtocolUntrusted: a peer outside forwarded_allow_ips that
// sends a PROXY header (v1 or v2) is refused; one that speaks HTTP at once
// is served as itself; the server keeps serving.
func TestProxyProtocolUntrusted(t *testing.T) {
	t.Parallel()
	s := startApp(t, "environ.py", "--processes", "1", "--proxy-protocol", "--forwarded-allow-ips", "10.0.0.0/8")
	refused(t, s, []byte("PROXY TCP4 192.0.2.44 192.0.2.250 5555 443\r\n"+proxyGet))
	refused(t, s, append(proxyV2(netip.MustParseAddrPort("192.0.2.44:5555"), 0), proxyGet...))
	d := environVia(t, s, nil, proxyGet)
	wantEnv(t, d, map[string]string{"REMOTE_ADDR": "127.0.0.1"})
	refused(t, s, []byte("PROXY UNKNOWN\r\n"+proxyGet))
	d = environVia(t, s, nil, "POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
	wantEnv(t, d, map[string]string{"REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "POST"})
}

// TestProxyProtocolTLS: on tls_bind the PROXY header comes before the TLS
// handshake; HTTP/2 and HTTP/1.1 over TLS then see the client it names.
func TestProxyProtocolTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := whisktest.Cert(t, dir, "localhost", "127.0.0.1")
	tlsAddr := whisktest.FreeAddr(t)
	s := startApp(t, "environ.py", "--processes", "1", "--proxy-protocol", "--forwarded-allow-ips", "127.0.0.1",
		"--tls-bind", tlsAddr, "--tls-cert", certFile, "--tls-key", keyFile)
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: certPool(t, certFile)},
			ForceAttemptHTTP2: h2,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				if _, err := io.WriteString(c, "PROXY TCP6 2001:db8::77 2001:db8::1 7070 443\r\n"); err != nil {
					c.Close()
					return nil, err
				}
				return c, nil
			},
		}
		resp, body := getBody(t, s, &http.Client{Transport: tr, Timeout: clientTimeout}, "GET", "https://"+tlsAddr+"/")
		tr.CloseIdleConnections()
		mustStatus(t, s, resp, body, http.StatusOK)
		if (resp.ProtoMajor == 2) != h2 {
			t.Errorf("protocol %s, want HTTP/2: %v", resp.Proto, h2)
		}
		wantEnv(t, decodeEnviron(t, body), map[string]string{"REMOTE_ADDR": "2001:db8::77", "REMOTE_PORT": "7070", "wsgi.url_scheme": "https"})
	}
	// TLS without the header from a trusted peer: refused.
	c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: certPool(t, certFile)})
	if err == nil {
		c.Close()
		t.Error("a TLS handshake without a PROXY header succeeded")
	}
}
