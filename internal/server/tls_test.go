package server

import (
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/config"
)

func TestHTTPSOptions(t *testing.T) {
	cfg := &config.Config{Server: config.DefaultServer()}
	cfg.Server.TLSBind = []string{"unix:/run/tls.sock", "[::]:8443", "0.0.0.0:9443"}
	cfg.Server.RedirectHTTPS = true
	cfg.Server.HSTSMaxAge = time.Hour
	opts := httpsOptions(cfg)
	if !opts.Redirect || opts.Port != 8443 || opts.HSTSMaxAge != time.Hour {
		t.Errorf("httpsOptions = %+v, want redirect to the first TCP tls_bind's port 8443 and HSTS 1h", opts)
	}
}

func TestCertPairs(t *testing.T) {
	cfg := &config.Config{Server: config.DefaultServer()}
	cfg.Sites = []config.Site{
		{Name: "a", Hosts: []string{"a.test"}, Default: true, TLSCert: "a.crt", TLSKey: "a.key"},
		{Name: "plain", Hosts: []string{"p.test"}},
		{Name: "b", Hosts: []string{"*.b.test"}, TLSCert: "b.crt", TLSKey: "b.key"},
	}
	pairs := certPairs(cfg)
	if len(pairs) != 2 || pairs[0].Name != "site a" || !pairs[0].Default || pairs[1].Name != "site b" || pairs[1].Default {
		t.Errorf("without tls_cert: %+v, want sites a (the default) and b", pairs)
	}
	cfg.Server.TLSCert, cfg.Server.TLSKey = "d.crt", "d.key"
	pairs = certPairs(cfg)
	if len(pairs) != 3 || pairs[0].Name != "tls_cert" || !pairs[0].Default || pairs[1].Default {
		t.Errorf("with tls_cert: %+v, want tls_cert first and the only default", pairs)
	}
}
