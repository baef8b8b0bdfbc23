package server

import (
	"net"
	"strings"

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
// listener.
func (s *Server) loadCerts(cfg *config.Config) (*front.CertSet, error) {
	if len(cfg.Server.TLSBind) == 0 {
		return nil, nil
	}
	return front.LoadCerts(certPairs(cfg), s.deps.Log)
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
