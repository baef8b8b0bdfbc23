package front

import (
	"crypto/tls"
	"io"
	"log/slog"
	"os"
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
	certs := NewCerts(set)
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
