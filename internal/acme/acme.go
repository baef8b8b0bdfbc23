// Package acme obtains and renews TLS certificates for the front's HTTPS
// listeners from an ACME certificate authority (Let's Encrypt, or any
// RFC 8555 server such as a company's own or the pebble test server),
// with golang.org/x/crypto/acme/autocert.
//
// A certificate is requested on the first TLS handshake that names one of
// the configured hosts (SNI), kept in a cache directory across restarts
// and renewed 30 days before it expires. The CA checks that whisk answers
// for the name with the TLS-ALPN-01 challenge, answered on the HTTPS
// listener itself (ALPN "acme-tls/1"), or else with HTTP-01, answered on
// the plain listener under /.well-known/acme-challenge/.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// LetsEncrypt is the default directory: Let's Encrypt's production CA.
const LetsEncrypt = acme.LetsEncryptURL

// ALPNProto is the ALPN protocol of the TLS-ALPN-01 challenge; the HTTPS
// listeners offer it and close such connections after the handshake.
const ALPNProto = acme.ALPNProto

// Config configures a Manager.
type Config struct {
	// Hosts are the exact names certificates are obtained for; a
	// handshake for any other name gets none from the Manager.
	Hosts []string
	// Directory is the CA's ACME directory URL; "" means LetsEncrypt.
	Directory string
	// Email is the contact the CA may write to about the account (expiry
	// notices); optional.
	Email string
	// Cache is the directory the account key and the certificates are
	// kept in (made 0700 when missing).
	Cache string
	// CACert, when set, is a PEM file of CA certificates trusted for the
	// HTTPS connection to Directory, in addition to the system's: for a
	// private CA or a test server.
	CACert string
}

// Manager obtains certificates for its hosts. Its host list can change (on
// reload); the directory, account and cache are fixed for its life.
type Manager struct {
	m         *autocert.Manager
	hosts     atomic.Pointer[map[string]bool]
	directory string
}

// New returns a Manager for cfg. Turning ACME on accepts the CA's terms
// of service, as certbot --agree-tos does.
func New(cfg Config) (*Manager, error) {
	if cfg.Cache == "" {
		return nil, errors.New("acme: no cache directory: set acme_cache")
	}
	if err := os.MkdirAll(cfg.Cache, 0o700); err != nil {
		return nil, fmt.Errorf("acme_cache: %w", err)
	}
	client := &acme.Client{DirectoryURL: cfg.Directory, UserAgent: "whisk"}
	if client.DirectoryURL == "" {
		client.DirectoryURL = LetsEncrypt
	}
	if cfg.CACert != "" {
		pem, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("acme_ca_cert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("acme_ca_cert %s: no PEM certificate in it", cfg.CACert)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
		client.HTTPClient = &http.Client{Transport: tr}
	}
	mgr := &Manager{directory: client.DirectoryURL}
	mgr.SetHosts(cfg.Hosts)
	mgr.m = &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(cfg.Cache),
		HostPolicy: mgr.policy,
		Client:     client,
		Email:      cfg.Email,
	}
	return mgr, nil
}

// SetHosts replaces the names certificates are obtained for.
func (m *Manager) SetHosts(hosts []string) {
	set := make(map[string]bool, len(hosts))
	for _, h := range hosts {
		set[normalize(h)] = true
	}
	m.hosts.Store(&set)
}

// Hosts returns the names certificates are obtained for, sorted.
func (m *Manager) Hosts() []string {
	var out []string
	for h := range *m.hosts.Load() {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// Directory returns the CA's directory URL in use.
func (m *Manager) Directory() string { return m.directory }

// Handles reports whether a handshake for name (SNI) is the Manager's:
// one of its hosts.
func (m *Manager) Handles(name string) bool { return (*m.hosts.Load())[normalize(name)] }

// policy is autocert's HostPolicy: only the configured hosts. For HTTP-01
// autocert passes the request's Host, which may carry a port.
func (m *Manager) policy(_ context.Context, host string) error {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if !m.Handles(host) {
		return fmt.Errorf("acme: %q is not in acme_hosts", host)
	}
	return nil
}

// GetCertificate returns the certificate for a handshake naming one of the
// hosts, obtaining it first when there is none yet (the handshake waits),
// and answers TLS-ALPN-01 challenges; it is a tls.Config.GetCertificate.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.m.GetCertificate(hello)
}

// HTTPHandler answers HTTP-01 challenges and passes every other request
// to next.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler { return m.m.HTTPHandler(next) }

// normalize lower-cases a host name and drops a trailing dot.
func normalize(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }
