package server

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/whiskserver/whisk/internal/acme"
	"github.com/whiskserver/whisk/internal/config"
	"github.com/whiskserver/whisk/internal/front"
)

// certPairs lists the certificates of cfg: tls_cert (the default) first,
// then each site's, sent for the site's hosts. Without tls_cert, the
// default site's pair is the default.
func certPairs(cfg *config.Config) []front.CertPair {
	var pairs []front.CertPair
	s := cfg.Server
	if s.TLSCert != "" {
		pairs = append(pairs, front.CertPair{Name: "tls_cert", Default: true, CertFile: s.TLSCert, KeyFile: s.TLSKey})
	}
	for _, site := range cfg.Sites {
		if site.TLSCert == "" {
			continue
		}
		pairs = append(pairs, front.CertPair{
			Name:     "site " + site.Name,
			Hosts:    site.Hosts,
			Default:  site.Default && s.TLSCert == "",
			CertFile: site.TLSCert,
			KeyFile:  site.TLSKey,
		})
	}
	return pairs
}

// loadCerts reads the certificates of cfg; nil when it has no HTTPS
// listener, or only ACME certificates.
func (s *Server) loadCerts(cfg *config.Config) (*front.CertSet, error) {
	pairs := certPairs(cfg)
	if len(cfg.Server.TLSBind) == 0 || (len(pairs) == 0 && len(cfg.Server.ACMEHosts) > 0) {
		return nil, nil
	}
	return front.LoadCerts(pairs, s.deps.Log)
}

// openCerts loads the certificates of cfg and starts its ACME manager,
// for the HTTPS listeners; nothing without tls_bind.
func (s *Server) openCerts(cfg *config.Config) error {
	if len(cfg.Server.TLSBind) == 0 {
		return nil
	}
	set, err := s.loadCerts(cfg)
	if err != nil {
		return err
	}
	var source front.ACME
	if hosts := cfg.Server.ACMEHosts; len(hosts) > 0 {
		dir := cfg.Server.ACMECache
		if dir == "" {
			dir = acmeCacheDir()
		}
		s.acme, err = acme.New(acme.Config{
			Hosts:     hosts,
			Directory: cfg.Server.ACMEDirectory,
			Email:     cfg.Server.ACMEEmail,
			Cache:     dir,
			CACert:    cfg.Server.ACMECACert,
		})
		if err != nil {
			return err
		}
		source = s.acme
		s.acmeDir = dir
		s.deps.Log.Info("TLS certificates from ACME", "hosts", strings.Join(s.acme.Hosts(), ","), "directory", s.acme.Directory(), "cache", dir)
	}
	s.certs = front.NewCerts(set, source)
	return nil
}

// acmeCacheDir is acme_cache's default: /var/lib/whisk/acme for root,
// else whisk/acme in the user's cache directory.
func acmeCacheDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/whisk/acme"
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "whisk", "acme")
	}
	return filepath.Join(os.TempDir(), "whisk-acme")
}

// ACMECache returns the ACME cache directory in use; "" without ACME.
func (s *Server) ACMECache() string { return s.acmeDir }

// acmeChallenges answers the ACME CA's HTTP-01 challenges ahead of next
// (before the redirect to HTTPS); next alone without ACME.
func (s *Server) acmeChallenges(next http.Handler) http.Handler {
	if s.acme == nil {
		return next
	}
	return s.acme.HTTPHandler(next)
}

// swapACMEHosts gives the ACME manager the acme_hosts of cfg (reload).
func (s *Server) swapACMEHosts(cfg *config.Config) {
	if s.acme != nil && len(cfg.Server.ACMEHosts) > 0 {
		s.acme.SetHosts(cfg.Server.ACMEHosts)
	}
}

// httpsOptions returns the redirect and HSTS settings of cfg. The redirect
// names the port of the first TCP tls_bind.
func httpsOptions(cfg *config.Config) front.HTTPSOptions {
	opts := front.HTTPSOptions{Redirect: cfg.Server.RedirectHTTPS, HSTSMaxAge: cfg.Server.HSTSMaxAge}
	for _, b := range cfg.Server.TLSBind {
		if strings.HasPrefix(b, "unix:") {
			continue
		}
		if _, port, err := net.SplitHostPort(b); err == nil {
			if n, err := net.LookupPort("tcp", port); err == nil {
				opts.Port = n
				break
			}
		}
	}
	return opts
}

// swapCerts makes set the certificates the HTTPS listeners send from now
// on (nil: no HTTPS, nothing to swap).
func (s *Server) swapCerts(set *front.CertSet) {
	if s.certs != nil && set != nil {
		s.certs.Swap(set)
		s.deps.Log.Info("reload: TLS certificates swapped")
	}
}
