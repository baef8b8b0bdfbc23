package front

import (
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/whiskserver/whisk/internal/whisktest"
)

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// commonName returns the subject of the certificate the set sends for name.
func commonName(t *testing.T, set *CertSet, name string) string {
	t.Helper()
	c := set.Certificate(name)
	if c == nil || c.Leaf == nil {
		t.Fatalf("no certificate for %q", name)
	}
	return c.Leaf.Subject.CommonName
}

func TestCertSetChoosesBySNI(t *testing.T) {
	dir := t.TempDir()
	defCert, defKey := whisktest.Cert(t, dir, "default.test")
	blogCert, blogKey := whisktest.Cert(t, dir, "blog.example.com", "*.blog.example.com")
	wildCert, wildKey := whisktest.Cert(t, dir, "wild.example.com", "*.example.com")
	apiCert, apiKey := whisktest.Cert(t, dir, "api.example.com")
	set, err := LoadCerts([]CertPair{
		{Name: "tls_cert", Default: true, CertFile: defCert, KeyFile: defKey},
		{Name: "site wild", Hosts: []string{"*.example.com"}, CertFile: wildCert, KeyFile: wildKey},
		{Name: "site blog", Hosts: []string{"blog.example.com", "*.blog.example.com"}, CertFile: blogCert, KeyFile: blogKey},
		{Name: "site api", Hosts: []string{"API.example.com"}, CertFile: apiCert, KeyFile: apiKey},
	}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"api.example.com":      "api.example.com",  // exact, case-insensitive host
		"API.Example.COM.":     "api.example.com",  // name case and trailing dot
		"blog.example.com":     "blog.example.com", // exact beats wildcard
		"www.blog.example.com": "blog.example.com", // the longer wildcard wins
		"shop.example.com":     "wild.example.com",
		"a.b.example.com":      "wild.example.com", // wildcards match any depth, as sites do
		"example.com":          "default.test",     // *.example.com needs a label before it
		"other.test":           "default.test",
		"":                     "default.test", // no SNI
	} {
		if got := commonName(t, set, name); got != want {
			t.Errorf("%q: certificate of %s, want %s", name, got, want)
		}
	}
}

func TestCertSetDefault(t *testing.T) {
	dir := t.TempDir()
	aCert, aKey := whisktest.Cert(t, dir, "a.test")
	bCert, bKey := whisktest.Cert(t, dir, "b.test")
	// No pair marked default: the first is.
	set, err := LoadCerts([]CertPair{
		{Name: "site a", Hosts: []string{"a.test"}, CertFile: aCert, KeyFile: aKey},
		{Name: "site b", Hosts: []string{"b.test"}, CertFile: bCert, KeyFile: bKey},
	}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	if got := commonName(t, set, "c.test"); got != "a.test" {
		t.Errorf("unknown name: %s, want the first pair's a.test", got)
	}
	set, err = LoadCerts([]CertPair{
		{Name: "site a", Hosts: []string{"a.test"}, CertFile: aCert, KeyFile: aKey},
		{Name: "site b", Hosts: []string{"b.test"}, Default: true, CertFile: bCert, KeyFile: bKey},
	}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	if got := commonName(t, set, "c.test"); got != "b.test" {
		t.Errorf("unknown name: %s, want the default pair's b.test", got)
	}
	if _, err := LoadCerts(nil, discardLog()); err == nil {
		t.Error("LoadCerts of no pairs: no error")
	}
}

// TestCertsReload: a set that fails to load is not made, so the store
// keeps serving the old one; a good one replaces it.
func TestCertsReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := whisktest.Cert(t, dir, "one.test")
	pairs := []CertPair{{Name: "tls_cert", Default: true, CertFile: certFile, KeyFile: keyFile}}
	set, err := LoadCerts(pairs, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	certs := NewCerts(set, nil)
	serial := func() string {
		c, err := certs.GetCertificate(&tls.ClientHelloInfo{ServerName: "one.test"})
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.String()
	}
	before := serial()

	// A broken renewal: the certificate file is cut short.
	if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCerts(pairs, discardLog()); err == nil || !strings.Contains(err.Error(), "tls_cert") || !strings.Contains(err.Error(), certFile) {
		t.Errorf("loading a broken pair: %v, want an error naming tls_cert and its file", err)
	}
	if got := serial(); got != before {
		t.Errorf("after a failed load the store serves serial %s, want the old %s", got, before)
	}

	// A good renewal.
	whisktest.Cert(t, dir, "one.test")
	set, err = LoadCerts(pairs, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	certs.Swap(set)
	if got := serial(); got == before {
		t.Errorf("after the swap the store still serves serial %s", got)
	}
}

// fakeACME hands out one certificate for its hosts and counts the calls.
type fakeACME struct {
	hosts map[string]bool
	cert  *tls.Certificate
	calls int
}

func (f *fakeACME) Handles(name string) bool { return f.hosts[name] }
func (f *fakeACME) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.calls++
	return f.cert, nil
}

// TestCertsACME: a handshake for an ACME host, or an ACME CA's TLS-ALPN-01
// check, goes to the ACME source; other names get the loaded certificates,
// or an error naming the host when there are none; the ALPN offer carries
// the challenge protocol only with ACME.
func TestCertsACME(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := whisktest.Cert(t, dir, "static.test")
	set, err := LoadCerts([]CertPair{{Name: "tls_cert", Default: true, CertFile: certFile, KeyFile: keyFile}}, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	acmeCert := &tls.Certificate{}
	fake := &fakeACME{hosts: map[string]bool{"acme.test": true}, cert: acmeCert}
	certs := NewCerts(set, fake)
	for _, tt := range []struct {
		hello    tls.ClientHelloInfo
		wantACME bool
	}{
		{tls.ClientHelloInfo{ServerName: "acme.test"}, true},
		{tls.ClientHelloInfo{ServerName: "acme.test", SupportedProtos: []string{acmeALPN}}, true},
		{tls.ClientHelloInfo{ServerName: "other.test", SupportedProtos: []string{acmeALPN}}, true},
		{tls.ClientHelloInfo{ServerName: "static.test"}, false},
		{tls.ClientHelloInfo{ServerName: ""}, false},
	} {
		before := fake.calls
		c, err := certs.GetCertificate(&tt.hello)
		if err != nil {
			t.Fatalf("%+v: %v", tt.hello, err)
		}
		if gotACME := c == acmeCert && fake.calls == before+1; gotACME != tt.wantACME {
			t.Errorf("%q %v: from ACME %v, want %v", tt.hello.ServerName, tt.hello.SupportedProtos, gotACME, tt.wantACME)
		}
	}
	if !slices.Contains(certs.TLSConfig().NextProtos, acmeALPN) {
		t.Errorf("ALPN %v lacks %s with ACME", certs.TLSConfig().NextProtos, acmeALPN)
	}
	if slices.Contains(NewCerts(set, nil).TLSConfig().NextProtos, acmeALPN) {
		t.Error("ALPN offers the ACME challenge without ACME")
	}
	onlyACME := NewCerts(nil, fake)
	if _, err := onlyACME.GetCertificate(&tls.ClientHelloInfo{ServerName: "other.test"}); err == nil || !strings.Contains(err.Error(), "other.test") {
		t.Errorf("a name outside acme_hosts with no tls_cert: %v, want an error naming it", err)
	}
}
