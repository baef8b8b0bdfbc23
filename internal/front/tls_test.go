package front

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/forwarded"
	"github.com/whiskserver/whisk/internal/reqinfo"
	"github.com/whiskserver/whisk/internal/whisktest"
)

// tlsFront is a running front with a plain and an HTTPS listener whose
// handler answers "PROTO tls=BOOL PATH".
type tlsFront struct {
	srv       *Server
	plain     string // HOST:PORT
	secure    string // HOST:PORT
	roots     *x509.CertPool
	requests  atomic.Int64
	serveDone chan error
}

func startTLSFront(t *testing.T, h2c bool) *tlsFront {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := whisktest.Cert(t, dir, "localhost", "127.0.0.1")
	set, err := LoadCerts([]CertPair{{Name: "tls_cert", Default: true, CertFile: certFile, KeyFile: keyFile}}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFront{roots: x509.NewCertPool(), serveDone: make(chan error, 1)}
	f.roots.AppendCertsFromPEM(pem)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%s tls=%v %s", r.Proto, r.TLS != nil, r.URL.Path)
	})
	f.srv, err = New(Config{
		Binds:             []string{"127.0.0.1:0"},
		TLSBinds:          []string{"127.0.0.1:0"},
		Certs:             NewCerts(set, nil),
		H2C:               h2c,
		Handler:           handler,
		ReadHeaderTimeout: 2 * time.Second,
		MaxHeaderBytes:    64 << 10,
		Log:               discardLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	addrs := f.srv.Addrs()
	f.plain, f.secure = addrs[0].String(), addrs[1].String()
	go func() { f.serveDone <- f.srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-f.serveDone; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return f
}

func (f *tlsFront) get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestTLSFrontProtocols(t *testing.T) {
	f := startTLSFront(t, false)
	cfg := &tls.Config{RootCAs: f.roots}

	t.Run("HTTP/2 by ALPN", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: cfg.Clone(), ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, body := f.get(t, &http.Client{Transport: tr}, "https://"+f.secure+"/h2")
		if resp.Proto != "HTTP/2.0" || body != "HTTP/2.0 tls=true /h2" {
			t.Errorf("%s %q, want HTTP/2.0 with TLS", resp.Proto, body)
		}
	})
	t.Run("HTTP/1.1", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: cfg.Clone()} // no HTTP/2 with a custom TLS config
		defer tr.CloseIdleConnections()
		resp, body := f.get(t, &http.Client{Transport: tr}, "https://"+f.secure+"/h1")
		if resp.Proto != "HTTP/1.1" || body != "HTTP/1.1 tls=true /h1" {
			t.Errorf("%s %q, want HTTP/1.1 with TLS", resp.Proto, body)
		}
	})
	t.Run("HTTP/1.1 over TLS is guarded", func(t *testing.T) {
		before := f.requests.Load()
		for _, alpn := range [][]string{{"http/1.1"}, nil} {
			c, err := tls.Dial("tcp", f.secure, &tls.Config{RootCAs: f.roots, NextProtos: alpn})
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
			raw, _ := io.ReadAll(c)
			c.Close()
			if !bytes.HasPrefix(raw, []byte("HTTP/1.1 400 ")) || bytes.Count(raw, []byte("HTTP/1.")) != 1 {
				t.Errorf("ALPN %v: CL+TE answered %q, want one 400", alpn, raw)
			}
		}
		if n := f.requests.Load() - before; n != 0 {
			t.Errorf("the handler saw %d requests, want none", n)
		}
	})
	t.Run("plain HTTP to the HTTPS port", func(t *testing.T) {
		c, err := net.Dial("tcp", f.secure)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		raw, _ := io.ReadAll(c)
		if !strings.Contains(string(raw), "400 Bad Request") || !strings.Contains(string(raw), "HTTPS server") {
			t.Errorf("answered %q, want a 400 saying this is an HTTPS server", raw)
		}
	})
	t.Run("plain listener", func(t *testing.T) {
		resp, body := f.get(t, &http.Client{}, "http://"+f.plain+"/p")
		if resp.Proto != "HTTP/1.1" || body != "HTTP/1.1 tls=false /p" {
			t.Errorf("%s %q", resp.Proto, body)
		}
		// Without h2c, prior knowledge is refused (the guard answers 400).
		if resp := h2cGet(t, f.plain); resp != nil {
			t.Errorf("h2c without h2c = true: %s", resp.Proto)
		}
	})
	t.Run("a stalled handshake does not hold others up", func(t *testing.T) {
		stalled, err := net.Dial("tcp", f.secure)
		if err != nil {
			t.Fatal(err)
		}
		defer stalled.Close()
		tr := &http.Transport{TLSClientConfig: cfg.Clone(), ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		f.get(t, &http.Client{Transport: tr, Timeout: 5 * time.Second}, "https://"+f.secure+"/")
	})
}

// h2cGet sends GET / with HTTP/2 prior knowledge; nil if that fails.
func h2cGet(t *testing.T, addr string) *http.Response {
	t.Helper()
	p := &http.Protocols{}
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Post("http://"+addr+"/h2c", "text/plain", strings.NewReader("body"))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	io.ReadAll(resp.Body)
	return resp
}

func TestH2C(t *testing.T) {
	f := startTLSFront(t, true)
	if resp := h2cGet(t, f.plain); resp == nil || resp.Proto != "HTTP/2.0" || resp.StatusCode != 200 {
		t.Fatalf("h2c with prior knowledge: %v", resp)
	}
	// HTTP/1.1 on the same listener is still guarded.
	c, err := net.Dial("tcp", f.plain)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	raw, _ := io.ReadAll(c)
	if !bytes.HasPrefix(raw, []byte("HTTP/1.1 400 ")) {
		t.Errorf("CL+TE with h2c on: %q, want 400", raw)
	}
	// A request cut short inside the preface's length is still HTTP/1.1.
	c2, err := net.Dial("tcp", f.plain)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c2, "GET /x HTTP/1.0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("short HTTP/1.0 request with h2c on: %v %v", resp, err)
	}
}

func TestHTTPSHandler(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") })
	if HTTPS(next, HTTPSOptions{}) == nil {
		t.Fatal("nil handler")
	}
	h := HTTPS(next, HTTPSOptions{Redirect: true, Port: 8443, HSTSMaxAge: 365 * 24 * time.Hour})
	for _, tc := range []struct {
		method, target, host string
		code                 int
		location             string
	}{
		{"GET", "/a/b?x=1&y=%2F", "example.com", 301, "https://example.com:8443/a/b?x=1&y=%2F"},
		{"HEAD", "/", "example.com:8080", 301, "https://example.com:8443/"},
		{"POST", "/form", "example.com", 308, "https://example.com:8443/form"},
		{"GET", "/", "[::1]:80", 301, "https://[::1]:8443/"},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		r.Host = tc.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.code || w.Header().Get("Location") != tc.location {
			t.Errorf("%s %s (Host %s): %d %q, want %d %q", tc.method, tc.target, tc.host, w.Code, w.Header().Get("Location"), tc.code, tc.location)
		}
		if w.Header().Get("Strict-Transport-Security") != "" {
			t.Errorf("HSTS on a plain response")
		}
	}
	r := httptest.NewRequest("GET", "https://example.com/", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || w.Body.String() != "app" || w.Header().Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Errorf("over TLS: %d %q HSTS %q", w.Code, w.Body.String(), w.Header().Get("Strict-Transport-Security"))
	}
	h = HTTPS(next, HTTPSOptions{Redirect: true, Port: 443})
	r = httptest.NewRequest("GET", "/x", nil)
	r.Host = "example.com:80"
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if got := w.Header().Get("Location"); got != "https://example.com/x" {
		t.Errorf("port 443: Location %q", got)
	}

	// Behind a trusted proxy that terminated TLS: no redirect loop, HSTS.
	h = reqinfo.Handler(reqinfo.Config{Trust: forwarded.NewTrust([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})},
		HTTPS(next, HTTPSOptions{Redirect: true, Port: 443, HSTSMaxAge: time.Hour}))
	r = httptest.NewRequest("GET", "/x", nil)
	r.RemoteAddr = "127.0.0.1:5555"
	r.Header.Set("X-Forwarded-Proto", "https")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || w.Header().Get("Strict-Transport-Security") != "max-age=3600" {
		t.Errorf("https at a trusted proxy: %d Location %q HSTS %q, want the app with HSTS", w.Code, w.Header().Get("Location"), w.Header().Get("Strict-Transport-Security"))
	}
}

// TestTLSInheritedAndUnix: with bind unset, tls_bind takes the socket
// systemd passed with its address (HTTPS), the other passed socket is
// served as plain HTTP; an HTTPS unix socket works too.
func TestTLSInheritedAndUnix(t *testing.T) {
	plainFile, plainAddr := tcpFile(t)
	tlsFile, tlsAddr := tcpFile(t)
	first := passFDs(t, plainFile, tlsFile)
	in, err := inherit(strconv.Itoa(os.Getpid()), "2", "http:https", os.Getpid(), first)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dir := t.TempDir()
	certFile, keyFile := whisktest.Cert(t, dir, "localhost", "127.0.0.1")
	set, err := LoadCerts([]CertPair{{Name: "tls_cert", Default: true, CertFile: certFile, KeyFile: keyFile}}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "tls.sock")
	s, err := New(Config{
		Binds:          []string{"127.0.0.1:8000"}, // the default: not bound
		Inherited:      in,
		ServeInherited: true,
		TLSBinds:       []string{tlsAddr, "unix:" + sock},
		Certs:          NewCerts(set, nil),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s tls=%v", r.Proto, r.TLS != nil)
		}),
		Log: discardLog(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Unused(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	defer func() {
		if err := s.Shutdown(t.Context()); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if got := get(t, "tcp", plainAddr); got != "HTTP/1.1 tls=false" {
		t.Errorf("plain inherited socket: %q", got)
	}
	pem, _ := os.ReadFile(certFile)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	for _, dst := range []struct{ network, addr string }{{"tcp", tlsAddr}, {"unix", sock}} {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "localhost"},
			ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, dst.network, dst.addr)
			},
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://localhost/")
		if err != nil {
			t.Fatalf("HTTPS via %s %s: %v", dst.network, dst.addr, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if string(b) != "HTTP/2.0 tls=true" {
			t.Errorf("HTTPS via %s: %q, want HTTP/2 over TLS", dst.network, b)
		}
	}
}
