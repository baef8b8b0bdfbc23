package front

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// CertPair names a certificate chain and its private key (PEM files) and
// the host names (SNI) it is sent for.
type CertPair struct {
	// Name says where the pair is configured, for errors and the log:
	// "tls_cert", "site blog".
	Name string
	// Hosts are exact names or wildcards ("*.example.com", which matches
	// any name ending in ".example.com", as a site's hosts do).
	Hosts []string
	// Default sends the pair to clients whose name no pair's hosts match,
	// and to clients that send no name.
	Default bool
	// CertFile and KeyFile are the PEM files.
	CertFile, KeyFile string
}

// CertSet is a loaded, immutable set of certificates with the names each
// serves. LoadCerts makes one; a Certs serves one at a time.
type CertSet struct {
	exact map[string]*tls.Certificate
	wild  []wildCert // longest suffix first
	def   *tls.Certificate
}

type wildCert struct {
	suffix string // ".example.com"
	cert   *tls.Certificate
}

// LoadCerts reads every pair's files (a file pair shared by several sites
// once). The default certificate, for names no pair's hosts match, is the
// first pair marked Default, else the first pair. It fails, naming the pair,
// if any pair does not load: a set is complete or not made at all.
func LoadCerts(pairs []CertPair, log *slog.Logger) (*CertSet, error) {
	if len(pairs) == 0 {
		return nil, errors.New("TLS: no certificate configured: set tls_cert and tls_key (or a site's)")
	}
	set := &CertSet{exact: map[string]*tls.Certificate{}}
	type files struct{ cert, key string }
	loaded := map[files]*tls.Certificate{}
	var first *tls.Certificate
	for _, p := range pairs {
		f := files{p.CertFile, p.KeyFile}
		cert, ok := loaded[f]
		if !ok {
			c, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("TLS %s: load %s with %s: %w", p.Name, p.CertFile, p.KeyFile, err)
			}
			cert = &c
			loaded[f] = cert
			logCert(log, p, cert)
		}
		if first == nil {
			first = cert
		}
		if p.Default && set.def == nil {
			set.def = cert
		}
		for _, h := range p.Hosts {
			h = strings.TrimSuffix(strings.ToLower(h), ".")
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				set.wild = append(set.wild, wildCert{suffix: suffix, cert: cert})
			} else if _, dup := set.exact[h]; !dup {
				set.exact[h] = cert
			}
		}
	}
	if set.def == nil {
		set.def = first
	}
	slices.SortStableFunc(set.wild, func(a, b wildCert) int { return len(b.suffix) - len(a.suffix) })
	return set, nil
}

// logCert logs what a certificate is for and until when, and warns about
// an expired one and about hosts it does not name (clients will refuse it
// for them).
func logCert(log *slog.Logger, p CertPair, cert *tls.Certificate) {
	leaf := cert.Leaf
	if leaf == nil || log == nil {
		return
	}
	log.Info("TLS certificate loaded", "for", p.Name, "file", p.CertFile, "names", strings.Join(leaf.DNSNames, ","), "expires", leaf.NotAfter.UTC().Format(time.RFC3339))
	if time.Now().After(leaf.NotAfter) {
		log.Warn("TLS certificate has expired: renew it, then whisk reload", "for", p.Name, "file", p.CertFile, "expired", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	for _, h := range p.Hosts {
		name := h
		if suffix, ok := strings.CutPrefix(h, "*"); ok {
			name = "www" + suffix // a name the wildcard site answers
		}
		if err := leaf.VerifyHostname(name); err != nil {
			log.Warn("TLS certificate does not name a host of its site: clients will refuse it for that host", "for", p.Name, "file", p.CertFile, "host", h)
		}
	}
}

// Certificate returns the certificate for a client that asked for name
// (SNI; empty when it sent none): an exact host, then the longest matching
// wildcard, then the default.
func (s *CertSet) Certificate(name string) *tls.Certificate {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" {
		return s.def
	}
	if c, ok := s.exact[name]; ok {
		return c
	}
	for _, w := range s.wild {
		if strings.HasSuffix(name, w.suffix) && len(name) > len(w.suffix) {
			return w.cert
		}
	}
	return s.def
}

// Certs serves the certificates of the HTTPS listeners: one CertSet at a
// time, swapped atomically on reload, so a handshake sees either the old
// set or the new one; and, with an ACME source, the certificates of its
// hosts.
type Certs struct {
	cur  atomic.Pointer[CertSet]
	acme ACME // nil: none
}

// ACME is a source of certificates obtained from an ACME CA for some
// host names (internal/acme.Manager).
type ACME interface {
	// Handles reports whether name (SNI) is one of its hosts.
	Handles(name string) bool
	// GetCertificate returns the certificate for a handshake naming one
	// of its hosts, and answers TLS-ALPN-01 challenges.
	GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error)
}

// acmeALPN is the ALPN protocol of the ACME TLS-ALPN-01 challenge (RFC
// 8737): a connection that negotiates it only carries the handshake.
const acmeALPN = "acme-tls/1"

// NewCerts returns a Certs serving set (nil: none, when acme serves every
// host) and, for acme's hosts, acme (nil: none).
func NewCerts(set *CertSet, acme ACME) *Certs {
	c := &Certs{acme: acme}
	c.cur.Store(set)
	return c
}

// Swap makes set the one served from now on.
func (c *Certs) Swap(set *CertSet) { c.cur.Store(set) }

// GetCertificate picks the certificate for a handshake by its server name;
// it is a tls.Config.GetCertificate.
func (c *Certs) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c.acme != nil && (c.acme.Handles(hello.ServerName) || slices.Contains(hello.SupportedProtos, acmeALPN)) {
		return c.acme.GetCertificate(hello)
	}
	set := c.cur.Load()
	if set == nil {
		return nil, fmt.Errorf("no certificate for %q: not in acme_hosts, and no tls_cert", hello.ServerName)
	}
	return set.Certificate(hello.ServerName), nil
}

// TLSConfig returns whisk's server TLS settings with certificates from c:
// TLS 1.2 and 1.3 (1.3 preferred by the handshake itself), Go's default
// cipher suites and curves, session tickets on (keys rotated by crypto/tls),
// and ALPN offering HTTP/2 then HTTP/1.1, plus the ACME challenge's
// protocol when c has an ACME source.
func (c *Certs) TLSConfig() *tls.Config {
	protos := []string{"h2", "http/1.1"}
	if c.acme != nil {
		protos = append(protos, acmeALPN)
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     protos,
		GetCertificate: c.GetCertificate,
	}
}
