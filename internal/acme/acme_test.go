package acme

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestHosts: the Manager answers for its hosts only, case and a trailing
// dot aside, and a reload's SetHosts replaces them.
func TestHosts(t *testing.T) {
	m, err := New(Config{Hosts: []string{"Example.com", "www.example.com."}, Cache: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"example.com": true, "EXAMPLE.COM.": true, "www.example.com": true,
		"other.example.com": false, "": false, "example.org": false,
	} {
		if got := m.Handles(name); got != want {
			t.Errorf("Handles(%q) = %v, want %v", name, got, want)
		}
		if err := m.policy(context.Background(), name); (err == nil) != want {
			t.Errorf("policy(%q) = %v", name, err)
		}
	}
	if err := m.policy(context.Background(), "example.com:8080"); err != nil {
		t.Errorf("policy for an HTTP-01 Host with a port: %v", err)
	}
	m.SetHosts([]string{"example.org"})
	if m.Handles("example.com") || !m.Handles("example.org") || !slices.Equal(m.Hosts(), []string{"example.org"}) {
		t.Errorf("after SetHosts: hosts %v", m.Hosts())
	}
}

// TestNew: the cache directory is made private; a CA file without a
// certificate, a missing one, or no cache directory are errors naming the
// setting.
func TestNew(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "a", "acme")
	if _, err := New(Config{Hosts: []string{"example.com"}, Cache: cache}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache directory: %v, %v; want 0700", fi, err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o644)
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Cache: t.TempDir(), CACert: notPEM}, "acme_ca_cert"},
		{Config{Cache: t.TempDir(), CACert: filepath.Join(t.TempDir(), "missing.pem")}, "acme_ca_cert"},
		{Config{}, "acme_cache"},
	} {
		if _, err := New(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tt.cfg, err, tt.want)
		}
	}
}
