package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// The ACME tests run whisk against pebble, Let's Encrypt's ACME test
// server, with pebble-challtestsrv as the DNS server pebble resolves the
// names to validate with: it answers 127.0.0.1 for every name, so the
// challenges pebble sends for whisk.test reach the whisk under test.
// scripts/test.sh builds both (pinned) and names them in WHISK_TEST_PEBBLE
// and WHISK_TEST_CHALLTESTSRV.

// acmeTimeout bounds a handshake that makes whisk obtain a certificate:
// the client's handshake waits while whisk runs the whole ACME exchange
// (with pebble's random validation sleeps off, about a second).
const acmeTimeout = 60 * time.Second

// acmeHost is the name whisk obtains certificates for.
const acmeHost = "whisk.test"

// proc is a helper process (pebble or its DNS server) that the test owns.
type proc struct {
	name   string
	cmd    *exec.Cmd
	out    *whisktest.SyncBuffer
	exited chan struct{}
}

// startProc starts bin with args and extra environment; it is killed when
// the test ends (or with the test process).
func startProc(t testing.TB, env []string, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{name: filepath.Base(bin), cmd: cmd, out: &whisktest.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout = p.out
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.stop)
	return p
}

// stop kills the process and waits for it; it is safe to call twice.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
	}
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// output returns the process's output for a failure message.
func (p *proc) output() string {
	return fmt.Sprintf("\n--- %s output ---\n%s--- end of %s output ---", p.name, p.out.String(), p.name)
}

// waitProc polls ready every 20 ms for up to 20 s; it fails the test when
// the process exits first or the time runs out.
func waitProc(t testing.TB, p *proc, what string, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ready() {
		if !p.running() {
			t.Fatalf("%s exited before %s%s", p.name, what, p.output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %s after 20s%s", p.name, what, p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// acmeBinaries returns pebble and pebble-challtestsrv, skipping the test
// when WHISK_TEST_PEBBLE is unset.
func acmeBinaries(t testing.TB) (pebbleBin, challBin string) {
	t.Helper()
	pebbleBin = os.Getenv("WHISK_TEST_PEBBLE")
	if pebbleBin == "" {
		t.Skip("WHISK_TEST_PEBBLE is unset: run `make test` (scripts/test.sh builds pebble, the ACME test server, and sets it)")
	}
	challBin = os.Getenv("WHISK_TEST_CHALLTESTSRV")
	if challBin == "" {
		challBin = filepath.Join(filepath.Dir(pebbleBin), "pebble-challtestsrv")
	}
	for _, b := range []string{pebbleBin, challBin} {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("ACME test server: %v (WHISK_TEST_PEBBLE=%s, WHISK_TEST_CHALLTESTSRV=%s; `make test` builds them)", err, pebbleBin, os.Getenv("WHISK_TEST_CHALLTESTSRV"))
		}
	}
	return pebbleBin, challBin
}

// startDNS runs pebble-challtestsrv as a DNS server answering 127.0.0.1
// (and no IPv6 address) for every name, with its challenge servers off,
// and returns its address once it accepts TCP (pebble queries over TCP).
func startDNS(t testing.TB, challBin string) string {
	t.Helper()
	dnsAddr, mgmtAddr := whisktest.FreeAddr(t), whisktest.FreeAddr(t)
	p := startProc(t, nil, challBin,
		"-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-dnsserver", dnsAddr, "-management", mgmtAddr,
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	waitProc(t, p, "DNS server on "+dnsAddr, func() bool {
		c, err := net.DialTimeout("tcp", dnsAddr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	return dnsAddr
}

// pebble is a running pebble ACME server.
type pebble struct {
	*proc
	// Directory is the ACME directory URL, for --acme-directory.
	Directory string
	// CAFile is the PEM certificate pebble serves its HTTPS API with
	// (self-signed, its own CA), for --acme-ca-cert.
	CAFile string
	// Roots holds the root pebble issues certificates under.
	Roots *x509.CertPool
}

// startPebble runs pebble with DNS from dnsAddr, checking HTTP-01 on
// httpPort and TLS-ALPN-01 on tlsPort of the address whisk.test resolves
// to, and waits until its directory answers.
func startPebble(t testing.TB, pebbleBin, dnsAddr string, httpPort, tlsPort int) *pebble {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := whisktest.Cert(t, dir, "localhost", "127.0.0.1")
	listen, mgmt := whisktest.FreeAddr(t), whisktest.FreeAddr(t)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": mgmt,
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                httpPort,
		"tlsPort":                 tlsPort,
		"ocspResponderURL":        "",
		"keyAlgorithm":            "ecdsa",
		// Poll the authorization and order every second, not every 3-5.
		"retryAfter": map[string]int{"authz": 1, "order": 1},
	}}
	b, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(confFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// No random sleep before validating, no rejected nonces, and a fresh
	// authorization for every order (so a failed challenge type is
	// retried for real with the next one).
	env := []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}
	p := &pebble{
		proc:      startProc(t, env, pebbleBin, "-config", confFile, "-dnsserver", dnsAddr),
		Directory: "https://" + listen + "/dir",
		CAFile:    certFile,
	}
	api := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certPool(t, certFile)}}}
	get := func(url string) ([]byte, error) {
		resp, err := api.Get(url)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return body, err
	}
	waitProc(t, p.proc, "ACME directory at "+p.Directory, func() bool {
		_, err := get(p.Directory)
		return err == nil
	})
	var rootPEM []byte
	waitProc(t, p.proc, "root certificate at https://"+mgmt+"/roots/0", func() bool {
		rootPEM, err = get("https://" + mgmt + "/roots/0")
		return err == nil
	})
	p.Roots = x509.NewCertPool()
	if !p.Roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("pebble's /roots/0 holds no PEM certificate: %q%s", rootPEM, p.output())
	}
	return p
}

// port returns the port number of HOST:PORT.
func port(t testing.TB, addr string) int {
	t.Helper()
	_, ps, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(ps)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// acmeEnv is one ACME scenario: a pebble set up for a whisk with plain
// listener plainAddr and HTTPS listener tlsAddr, and the whisk flags that
// obtain whisk.test's certificate from it.
type acmeEnv struct {
	pebble    *pebble
	plainAddr string
	tlsAddr   string
	cache     string
}

// newACMEEnv starts pebble for a whisk to be started on fresh loopback
// ports. Pebble checks TLS-ALPN-01 on whisk's tls_bind port when alpn is
// true and HTTP-01 on its bind port when http01 is true; a challenge type
// that is off is checked on a port nothing listens on, so it fails.
func newACMEEnv(t testing.TB, pebbleBin, dnsAddr string, alpn, http01 bool) *acmeEnv {
	t.Helper()
	addrs := []string{whisktest.FreeAddr(t), whisktest.FreeAddr(t), whisktest.FreeAddr(t)} // whisk's two, and one nothing listens on
	e := &acmeEnv{plainAddr: addrs[0], tlsAddr: addrs[1], cache: filepath.Join(t.TempDir(), "acme")}
	httpPort, tlsPort := port(t, e.plainAddr), port(t, e.tlsAddr)
	if !alpn {
		tlsPort = port(t, addrs[2])
	}
	if !http01 {
		httpPort = port(t, addrs[2])
	}
	e.pebble = startPebble(t, pebbleBin, dnsAddr, httpPort, tlsPort)
	return e
}

// startWhisk starts whisk serving testdata/apps/pid.py with ACME for
// whisk.test from the env's pebble.
func (e *acmeEnv) startWhisk(t testing.TB) *whisktest.Server {
	t.Helper()
	return startApp(t, "pid.py", "--processes", "1", "--threads", "2",
		"--bind", e.plainAddr, "--tls-bind", e.tlsAddr,
		"--acme-hosts", acmeHost,
		"--acme-directory", e.pebble.Directory,
		"--acme-ca-cert", e.pebble.CAFile,
		"--acme-cache", e.cache,
		"--acme-email", "admin@whisk.test")
}

// failure formats whisk's and pebble's output for a failure message.
func (e *acmeEnv) failure(s *whisktest.Server) string {
	return serverOutput(s) + e.pebble.output()
}

// handshake dials whisk's HTTPS listener with SNI name and returns the
// connection state; the handshake may wait for whisk to obtain the
// certificate, so it is bounded by acmeTimeout. With roots nil the
// server's certificate is not verified.
func handshake(addr, name string, roots *x509.CertPool) (tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), acmeTimeout)
	defer cancel()
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config:    &tls.Config{ServerName: name, RootCAs: roots, InsecureSkipVerify: roots == nil, NextProtos: []string{"http/1.1"}},
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState(), nil
}

// mustACMECert handshakes with whisk for whisk.test and checks the
// certificate: issued by pebble for whisk.test. It returns the leaf.
func mustACMECert(t testing.TB, e *acmeEnv, s *whisktest.Server) *x509.Certificate {
	t.Helper()
	start := time.Now()
	st, err := handshake(e.tlsAddr, acmeHost, e.pebble.Roots)
	if err != nil {
		t.Fatalf("TLS handshake for %s (after %v): %v%s", acmeHost, time.Since(start).Round(time.Millisecond), err, e.failure(s))
	}
	t.Logf("handshake for %s took %v", acmeHost, time.Since(start).Round(time.Millisecond))
	leaf := st.PeerCertificates[0]
	// The handshake verified the chain already; check it again explicitly,
	// so a failure names what is wrong with the certificate.
	inter := x509.NewCertPool()
	for _, c := range st.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: acmeHost, Roots: e.pebble.Roots, Intermediates: inter}); err != nil {
		t.Fatalf("certificate for %s (subject %q, names %v, issuer %q): %v", acmeHost, leaf.Subject, leaf.DNSNames, leaf.Issuer, err)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != acmeHost {
		t.Errorf("certificate names %v, want [%s]", leaf.DNSNames, acmeHost)
	}
	return leaf
}

// mustHTTPS sends GET / over HTTPS to whisk.test and wants pid.py's 200.
func mustHTTPS(t testing.TB, e *acmeEnv, s *whisktest.Server) {
	t.Helper()
	c := &http.Client{Timeout: clientTimeout, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{ServerName: acmeHost, RootCAs: e.pebble.Roots},
		ForceAttemptHTTP2: true,
	}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest("GET", "https://"+e.tlsAddr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = acmeHost
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET https://%s/ (Host %s): %v%s", e.tlsAddr, acmeHost, err, e.failure(s))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	mustStatus(t, s, resp, body, 200)
	if f := strings.Fields(string(body)); len(f) != 2 || f[1] != strconv.Itoa(s.Cmd.Process.Pid) {
		t.Errorf("body %q, want pid.py's \"PID %d\"", body, s.Cmd.Process.Pid)
	}
}

// TestACME: whisk obtains certificates for acme_hosts from an ACME CA
// (pebble) on the first handshake naming them, by TLS-ALPN-01 on tls_bind
// or else HTTP-01 on bind, keeps them in acme_cache across restarts, and
// has no certificate for other names.
func TestACME(t *testing.T) {
	t.Parallel()
	pebbleBin, challBin := acmeBinaries(t)
	dnsAddr := startDNS(t, challBin)

	t.Run("TLS-ALPN-01", func(t *testing.T) {
		t.Parallel()
		// HTTP-01 is checked on a dead port: only TLS-ALPN-01 can pass.
		e := newACMEEnv(t, pebbleBin, dnsAddr, true, false)
		s := e.startWhisk(t)
		mustACMECert(t, e, s)
		mustHTTPS(t, e, s)
	})

	t.Run("HTTP-01 fallback", func(t *testing.T) {
		t.Parallel()
		// TLS-ALPN-01 is checked on a dead port, so it fails and whisk
		// must try HTTP-01, answered on bind.
		e := newACMEEnv(t, pebbleBin, dnsAddr, false, true)
		s := e.startWhisk(t)
		mustACMECert(t, e, s)
		mustHTTPS(t, e, s)
		if !strings.Contains(e.pebble.out.String(), "Attempting to validate w/ HTTP") {
			t.Errorf("pebble never checked HTTP-01%s", e.pebble.output())
		}
	})

	t.Run("restart uses the cache", func(t *testing.T) {
		t.Parallel()
		e := newACMEEnv(t, pebbleBin, dnsAddr, true, true)
		s := e.startWhisk(t)
		first := mustACMECert(t, e, s)
		s.Stop(t)
		// With the CA gone, the only certificate whisk can serve is the
		// one in acme_cache.
		e.pebble.stop()
		s = e.startWhisk(t)
		again := mustACMECert(t, e, s)
		if again.SerialNumber.Cmp(first.SerialNumber) != 0 {
			t.Errorf("after the restart: certificate serial %x, want the cached %x", again.SerialNumber, first.SerialNumber)
		}
		mustHTTPS(t, e, s)
	})

	t.Run("other names", func(t *testing.T) {
		t.Parallel()
		e := newACMEEnv(t, pebbleBin, dnsAddr, true, true)
		s := e.startWhisk(t)
		// The client does not verify, so only whisk can fail the
		// handshake: it must not hand out a certificate, neither before
		// nor after it has whisk.test's.
		other := func(when string) {
			t.Helper()
			start := time.Now()
			st, err := handshake(e.tlsAddr, "other.test", nil)
			if err == nil {
				t.Errorf("%s: a handshake for other.test (not in acme_hosts) succeeded with a certificate for %v", when, st.PeerCertificates[0].DNSNames)
			} else if time.Since(start) > 30*time.Second {
				t.Errorf("%s: a handshake for other.test took %v to fail", when, time.Since(start))
			}
		}
		other("before whisk.test's certificate")
		mustACMECert(t, e, s)
		other("after whisk.test's certificate")
		mustHTTPS(t, e, s)
		if strings.Contains(e.pebble.out.String(), "other.test") {
			t.Errorf("whisk asked the CA about other.test%s", e.pebble.output())
		}
	})
}
