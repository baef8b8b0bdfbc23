// Package route picks the mount that serves a request: the site by Host
// (exact name, then the longest matching wildcard, then the default site),
// then the mount by the longest URL prefix on whole path segments, the way
// WSGIScriptAlias does: /blog serves /blog and /blog/x, never /blogger.
package route

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Mount serves a URL prefix of a site.
type Mount struct {
	// Prefix is "/" or a path without a trailing slash ("/blog").
	Prefix string
	// Handler serves the requests under Prefix.
	Handler http.Handler
}

// Site is a virtual host and its mounts.
type Site struct {
	// Name identifies the site in errors.
	Name string
	// Hosts are exact names or wildcards ("*.example.com"), lower case.
	Hosts []string
	// Default makes the site answer hosts no site names.
	Default bool
	// Mounts are the site's prefixes.
	Mounts []Mount
}

// Table routes requests to mounts. It is immutable once built, so a reload
// builds a new one and swaps it in (see Switch).
type Table struct {
	active   atomic.Int64 // requests in progress
	retired  atomic.Bool  // replaced: new requests go to the newer table
	exact    map[string]*Site
	wildcard []wildcard // longest suffix first
	fallback *Site
}

type wildcard struct {
	suffix string // ".example.com"
	site   *Site
}

// New builds a table. Mounts are tried longest prefix first; a host may
// belong to one site only, and one site at most is the default.
func New(sites []Site) (*Table, error) {
	t := &Table{exact: map[string]*Site{}}
	for i := range sites {
		s := sites[i]
		s.Mounts = slices.Clone(s.Mounts)
		for _, m := range s.Mounts {
			if m.Prefix != "/" && (!strings.HasPrefix(m.Prefix, "/") || strings.HasSuffix(m.Prefix, "/")) {
				return nil, fmt.Errorf("site %s: mount %q: want \"/\" or a prefix like \"/blog\"", s.Name, m.Prefix)
			}
		}
		slices.SortStableFunc(s.Mounts, func(a, b Mount) int { return len(b.Prefix) - len(a.Prefix) })
		if s.Default {
			if t.fallback != nil {
				return nil, fmt.Errorf("sites %s and %s are both the default", t.fallback.Name, s.Name)
			}
			t.fallback = &s
		}
		for _, h := range s.Hosts {
			h = strings.ToLower(h)
			if suffix, ok := strings.CutPrefix(h, "*"); ok {
				t.wildcard = append(t.wildcard, wildcard{suffix: suffix, site: &s})
				continue
			}
			if other, ok := t.exact[h]; ok {
				return nil, fmt.Errorf("host %s is in sites %s and %s", h, other.Name, s.Name)
			}
			t.exact[h] = &s
		}
	}
	slices.SortStableFunc(t.wildcard, func(a, b wildcard) int { return len(b.suffix) - len(a.suffix) })
	return t, nil
}

// Site returns the site for a Host header value, or nil when no site
// answers it and there is no default.
func (t *Table) Site(host string) *Site {
	host = normalHost(host)
	if s, ok := t.exact[host]; ok {
		return s
	}
	for _, w := range t.wildcard {
		if strings.HasSuffix(host, w.suffix) && len(host) > len(w.suffix) {
			return w.site
		}
	}
	return t.fallback
}

// Mount returns the site's mount for a decoded URL path.
func (s *Site) Mount(path string) (Mount, bool) {
	for _, m := range s.Mounts {
		if Under(path, m.Prefix) {
			return m, true
		}
	}
	return Mount{}, false
}

// Under reports whether path is prefix or below it on whole segments.
func Under(path, prefix string) bool {
	if prefix == "/" {
		return true
	}
	return strings.HasPrefix(path, prefix) && (len(path) == len(prefix) || path[len(prefix)] == '/')
}

// normalHost lowers the host and drops the port and a trailing dot.
func normalHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// ServeHTTP sends the request to its mount: 421 when no site answers the
// host, 404 when no mount covers the path.
func (t *Table) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := t.Site(r.Host)
	if s == nil {
		http.Error(w, "421 Misdirected Request: this server has no site for host "+strconvQuote(r.Host), http.StatusMisdirectedRequest)
		return
	}
	m, ok := s.Mount(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	m.Handler.ServeHTTP(w, r)
}

func strconvQuote(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return fmt.Sprintf("%q", s)
}

// Switch serves with the current table and lets a reload replace it while
// requests are in flight: each request runs to its end on the table it
// started with, and a replaced table can be drained (Drain) before the
// process groups behind it stop.
type Switch struct {
	table atomic.Pointer[Table]
}

// NewSwitch returns a Switch serving t.
func NewSwitch(t *Table) *Switch {
	s := &Switch{}
	s.table.Store(t)
	return s
}

// Swap makes t serve the next requests and returns the table it replaced,
// which takes no new requests from now on.
func (s *Switch) Swap(t *Table) *Table {
	old := s.table.Swap(t)
	if old != nil {
		old.retired.Store(true)
	}
	return old
}

// ServeHTTP implements http.Handler.
func (s *Switch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for {
		t := s.table.Load()
		t.active.Add(1)
		// Checked after counting the request: a Drain that saw no active
		// request has already marked t retired, so the request moves on
		// to the newer table instead of reaching stopped groups.
		if t.retired.Load() {
			t.active.Add(-1)
			continue
		}
		defer t.active.Add(-1)
		t.ServeHTTP(w, r)
		return
	}
}

// Drain waits until no request is in progress on a table that Swap
// replaced, or ctx ends.
func (t *Table) Drain(ctx context.Context) error {
	t.retired.Store(true)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for t.active.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain routes: %d requests still in progress: %w", t.active.Load(), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}
