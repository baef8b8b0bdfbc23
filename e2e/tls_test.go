package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// environMap decodes testdata/apps/environ.py's answer to key → value.
func environMap(t testing.TB, body []byte) map[string]string {
	t.Helper()
	var d environDump
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("decode %s: %v", truncate(body), err)
	}
	env := map[string]string{}
	for k, v := range d.Str {
		b, err := hex.DecodeString(v)
		if err != nil {
			t.Fatal(err)
		}
		env[k] = string(b)
	}
	return env
}

// certPool trusts the self-signed certificate files.
func certPool(t testing.TB, files ...string) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for _, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			t.Fatalf("no certificate in %s", f)
		}
	}
	return pool
}

// tlsClient returns a client over TLS trusting pool; h2 lets it offer
// HTTP/2 by ALPN.
func tlsClient(pool *x509.CertPool, h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
	return &http.Client{Transport: tr, Timeout: clientTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func getBody(t testing.TB, s *whisktest.Server, c *http.Client, method, url string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v%s", method, url, err, serverOutput(s))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestTLS: HTTPS on tls_bind with HTTP/2 by ALPN and HTTP/1.1, the environ
// of a request over TLS, the framing guard on HTTP/1.1 over TLS,
// redirect_https on bind (not on health_bind) and HSTS on HTTPS only.
func TestTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := whisktest.Cert(t, dir, "localhost", "127.0.0.1")
	tlsAddr, healthAddr := whisktest.FreeAddr(t), whisktest.FreeAddr(t)
	s := startApp(t, "environ.py", "--processes", "1", "--threads", "4",
		"--tls-bind", tlsAddr, "--tls-cert", certFile, "--tls-key", keyFile,
		"--redirect-https", "--hsts-max-age", "1h", "--health-bind", healthAddr)
	pool := certPool(t, certFile)
	base := "https://" + tlsAddr

	t.Run("HTTP/2", func(t *testing.T) {
		resp, body := getBody(t, s, tlsClient(pool, true), "GET", base+"/a?b=c")
		mustStatus(t, s, resp, body, 200)
		if resp.Proto != "HTTP/2.0" {
			t.Errorf("protocol %s, want HTTP/2.0", resp.Proto)
		}
		env := environMap(t, body)
		for k, want := range map[string]string{"wsgi.url_scheme": "https", "HTTPS": "on", "SERVER_PROTOCOL": "HTTP/2.0", "SERVER_PORT": strings.Split(tlsAddr, ":")[1], "PATH_INFO": "/a", "QUERY_STRING": "b=c"} {
			if got := env[k]; got != want {
				t.Errorf("environ %s = %q, want %q", k, got, want)
			}
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=3600" {
			t.Errorf("Strict-Transport-Security %q, want max-age=3600", got)
		}
	})
	t.Run("HTTP/1.1", func(t *testing.T) {
		resp, body := getBody(t, s, tlsClient(pool, false), "GET", base+"/")
		mustStatus(t, s, resp, body, 200)
		env := environMap(t, body)
		if resp.Proto != "HTTP/1.1" || env["wsgi.url_scheme"] != "https" || env["HTTPS"] != "on" {
			t.Errorf("%s, wsgi.url_scheme %q, HTTPS %q: want HTTP/1.1 with https and on", resp.Proto, env["wsgi.url_scheme"], env["HTTPS"])
		}
		if resp.Header.Get("Strict-Transport-Security") == "" {
			t.Error("no Strict-Transport-Security over HTTP/1.1 with TLS")
		}
	})
	t.Run("smuggling over TLS", func(t *testing.T) {
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(rawTimeout))
		send(t, c, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
		raw := readAllRaw(t, c)
		if !bytes.HasPrefix(raw, []byte("HTTP/1.1 400 ")) || bytes.Count(raw, []byte("HTTP/1.")) != 1 {
			t.Errorf("CL+TE over TLS answered %q, want exactly one 400", truncate(raw))
		}
	})
	t.Run("redirect", func(t *testing.T) {
		port := strings.Split(tlsAddr, ":")[1]
		for _, tc := range []struct {
			method string
			code   int
		}{{"GET", 301}, {"HEAD", 301}, {"POST", 308}} {
			resp, _ := getBody(t, s, client(), tc.method, s.URL+"/x/y?q=1")
			want := "https://127.0.0.1:" + port + "/x/y?q=1"
			if resp.StatusCode != tc.code || resp.Header.Get("Location") != want {
				t.Errorf("%s on bind: %d %q, want %d %q", tc.method, resp.StatusCode, resp.Header.Get("Location"), tc.code, want)
			}
			if resp.Header.Get("Strict-Transport-Security") != "" {
				t.Errorf("%s on bind: Strict-Transport-Security on a plain response", tc.method)
			}
		}
		resp, body := getBody(t, s, client(), "GET", "http://"+healthAddr+"/healthz")
		if resp.StatusCode != 200 {
			t.Errorf("health_bind: %d %q, want 200 (no redirect)", resp.StatusCode, body)
		}
	})
}

// TestTLSSitesAndReload: each site's certificate is sent for its hosts
// (SNI), the default one otherwise; a reload with renewed files serves
// them, and a reload with a broken file keeps the old certificates.
func TestTLSSitesAndReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	defCert, defKey := whisktest.Cert(t, dir, "default.test")
	aCert, aKey := whisktest.Cert(t, dir, "a.test")
	bCert, bKey := whisktest.Cert(t, dir, "b.test", "*.b.test")
	tlsAddr := whisktest.FreeAddr(t)
	conf := writeConfig(t, dir, fmt.Sprintf(`
python = %q
processes = 1
threads = 2
tls_bind = [%q]
tls_cert = %q
tls_key = %q

[groups.main]
app = %q

[sites.a]
hosts = ["a.test"]
default = true
tls_cert = %q
tls_key = %q
mounts = [{ path = "/", group = "main" }]

[sites.b]
hosts = ["b.test", "*.b.test"]
tls_cert = %q
tls_key = %q
mounts = [{ path = "/", group = "main" }]
`, whisktest.Python(t), tlsAddr, defCert, defKey, whisktest.App(t, "whoami.py"), aCert, aKey, bCert, bKey))
	s := whisktest.Start(t, "--config", conf)
	pool := certPool(t, defCert, aCert, bCert)

	// leaf handshakes with server name sni and returns the certificate sent.
	leaf := func(sni string) *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("handshake for %q: %v%s", sni, err, serverOutput(s))
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	for sni, want := range map[string]string{"a.test": "a.test", "b.test": "b.test", "www.b.test": "b.test", "c.test": "default.test", "": "default.test"} {
		if got := leaf(sni).Subject.CommonName; got != want {
			t.Errorf("SNI %q: certificate for %s, want %s", sni, got, want)
		}
	}
	// A verifying client over HTTP/2 reaches the right site.
	c := tlsClient(pool, true)
	tr := c.Transport.(*http.Transport)
	tr.TLSClientConfig.ServerName = "www.b.test"
	req, _ := http.NewRequest("GET", "https://"+tlsAddr+"/", nil)
	req.Host = "www.b.test"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET over TLS as www.b.test: %v%s", err, serverOutput(s))
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
		t.Errorf("www.b.test: %d %s", resp.StatusCode, resp.Proto)
	}

	// Renewal: new files, then SIGHUP.
	old := leaf("b.test").SerialNumber
	whisktest.Cert(t, dir, "b.test", "*.b.test")
	s.Signal(t, syscall.SIGHUP)
	whisktest.WaitFor(t, 60*time.Second, "the renewed certificate served", func() bool {
		return leaf("b.test").SerialNumber.Cmp(old) != 0
	})
	renewed := leaf("b.test").SerialNumber

	// A broken renewal: the reload fails and the certificates stay.
	if err := os.WriteFile(bCert, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Signal(t, syscall.SIGHUP)
	waitOutput(t, s, "RELOAD FAILED")
	if !strings.Contains(serverOutput(s), bCert) {
		t.Errorf("the failed reload's log does not name %s%s", bCert, serverOutput(s))
	}
	if got := leaf("b.test").SerialNumber; got.Cmp(renewed) != 0 {
		t.Errorf("after a failed reload: serial %v, want the renewed %v", got, renewed)
	}
}

// TestH2C: h2c = true serves HTTP/2 with prior knowledge on bind, and
// HTTP/1.1 there is still guarded.
func TestH2C(t *testing.T) {
	t.Parallel()
	s := startApp(t, "environ.py", "--processes", "1", "--threads", "2", "--h2c")
	p := &http.Protocols{}
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: p}, Timeout: clientTimeout}
	resp, body := getBody(t, s, c, "POST", s.URL+"/h2c")
	mustStatus(t, s, resp, body, 200)
	env := environMap(t, body)
	if resp.Proto != "HTTP/2.0" || env["SERVER_PROTOCOL"] != "HTTP/2.0" || env["wsgi.url_scheme"] != "http" {
		t.Errorf("%s, SERVER_PROTOCOL %q, wsgi.url_scheme %q: want HTTP/2.0 over http", resp.Proto, env["SERVER_PROTOCOL"], env["wsgi.url_scheme"])
	}
	if _, ok := env["HTTPS"]; ok {
		t.Error("HTTPS in the environ of a plain request")
	}
	conn := dial(t, s)
	send(t, conn, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if raw := readAllRaw(t, conn); !bytes.HasPrefix(raw, []byte("HTTP/1.1 400 ")) {
		t.Errorf("CL+TE with h2c on: %q, want 400", truncate(raw))
	}
}
