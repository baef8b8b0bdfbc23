package route

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// named answers with its own name, so a test sees which mount served.
type named string

func (n named) ServeHTTP(w http.ResponseWriter, r *http.Request) { io.WriteString(w, string(n)) }

func table(t *testing.T) *Table {
	t.Helper()
	tb, err := New([]Site{
		{Name: "blog", Hosts: []string{"blog.example.com", "*.blog.example.com"}, Mounts: []Mount{
			{Prefix: "/", Handler: named("blog-root")},
			{Prefix: "/blog", Handler: named("blog-blog")},
			{Prefix: "/blog/admin", Handler: named("blog-admin")},
		}},
		{Name: "wild", Hosts: []string{"*.example.com"}, Mounts: []Mount{{Prefix: "/", Handler: named("wild")}}},
		{Name: "api", Hosts: []string{"api.example.com"}, Mounts: []Mount{{Prefix: "/v1", Handler: named("api-v1")}}},
		{Name: "fallback", Default: true, Mounts: []Mount{{Prefix: "/", Handler: named("fallback")}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestRoute(t *testing.T) {
	tests := []struct {
		host, path string
		status     int
		want       string
	}{
		{"blog.example.com", "/", 200, "blog-root"},
		{"BLOG.Example.COM:8443", "/blog", 200, "blog-blog"},
		{"blog.example.com.", "/blog/", 200, "blog-blog"},
		{"blog.example.com", "/blog/x/y", 200, "blog-blog"},
		{"blog.example.com", "/blogger", 200, "blog-root"}, // never a partial segment
		{"blog.example.com", "/blog/admin", 200, "blog-admin"},
		{"blog.example.com", "/blog/administrator", 200, "blog-blog"},
		{"www.blog.example.com", "/blog", 200, "blog-blog"}, // the longer wildcard wins
		{"a.b.blog.example.com", "/", 200, "blog-root"},
		{"www.example.com", "/", 200, "wild"},
		{"example.com", "/", 200, "fallback"},           // *.example.com needs a label before it
		{"api.example.com", "/v1/users", 200, "api-v1"}, // exact beats wildcard
		{"api.example.com", "/v2", 404, ""},             // a site without a mount for the path
		{"unknown.org", "/x", 200, "fallback"},
		{"", "/", 200, "fallback"},
		{"[::1]:8000", "/", 200, "fallback"},
	}
	tb := table(t)
	for _, tt := range tests {
		t.Run(tt.host+tt.path, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://x"+tt.path, nil)
			r.Host = tt.host
			w := httptest.NewRecorder()
			tb.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if tt.want != "" && w.Body.String() != tt.want {
				t.Errorf("served by %q, want %q", w.Body.String(), tt.want)
			}
		})
	}
}

func TestNoDefaultSite421(t *testing.T) {
	tb, err := New([]Site{{Name: "only", Hosts: []string{"example.com"}, Mounts: []Mount{{Prefix: "/", Handler: named("only")}}}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "other.org"
	w := httptest.NewRecorder()
	tb.ServeHTTP(w, r)
	if w.Code != http.StatusMisdirectedRequest || !strings.Contains(w.Body.String(), "other.org") {
		t.Fatalf("unknown host: %d %q, want 421 naming the host", w.Code, w.Body.String())
	}
}

func TestNewRejects(t *testing.T) {
	h := named("x")
	tests := map[string][]Site{
		"two defaults":      {{Name: "a", Default: true}, {Name: "b", Default: true}},
		"host in two sites": {{Name: "a", Hosts: []string{"x.org"}}, {Name: "b", Hosts: []string{"X.org"}}},
		"trailing slash":    {{Name: "a", Mounts: []Mount{{Prefix: "/blog/", Handler: h}}}},
		"relative prefix":   {{Name: "a", Mounts: []Mount{{Prefix: "blog", Handler: h}}}},
	}
	for name, sites := range tests {
		if _, err := New(sites); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestSwitch(t *testing.T) {
	one, _ := New([]Site{{Name: "s", Default: true, Mounts: []Mount{{Prefix: "/", Handler: named("one")}}}})
	two, _ := New([]Site{{Name: "s", Default: true, Mounts: []Mount{{Prefix: "/", Handler: named("two")}}}})
	sw := NewSwitch(one)
	get := func() string {
		w := httptest.NewRecorder()
		sw.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		return w.Body.String()
	}
	if got := get(); got != "one" {
		t.Fatalf("before Store: %q", got)
	}
	if old := sw.Swap(two); old != one {
		t.Fatalf("Swap returned %p, want the first table %p", old, one)
	}
	if got := get(); got != "two" {
		t.Fatalf("after Swap: %q", got)
	}
	if err := one.Drain(context.Background()); err != nil {
		t.Fatalf("Drain of an idle table: %v", err)
	}
}

// gate blocks each request until released, to hold requests in flight.
type gate struct {
	entered chan struct{}
	release chan struct{}
}

func (g gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.entered <- struct{}{}
	<-g.release
	io.WriteString(w, "gate")
}

// TestDrainWaitsForInFlight: Drain returns only after the requests that
// started on the old table ended, and gives up when its context does.
func TestDrainWaitsForInFlight(t *testing.T) {
	g := gate{entered: make(chan struct{}), release: make(chan struct{})}
	old, _ := New([]Site{{Name: "s", Default: true, Mounts: []Mount{{Prefix: "/", Handler: g}}}})
	next, _ := New([]Site{{Name: "s", Default: true, Mounts: []Mount{{Prefix: "/", Handler: named("next")}}}})
	sw := NewSwitch(old)
	done := make(chan string)
	go func() {
		w := httptest.NewRecorder()
		sw.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		done <- w.Body.String()
	}()
	<-g.entered
	sw.Swap(next)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := old.Drain(ctx); err == nil {
		t.Fatal("Drain returned while a request was in flight")
	}
	drained := make(chan error)
	go func() { drained <- old.Drain(context.Background()) }()
	close(g.release)
	if body := <-done; body != "gate" {
		t.Fatalf("in-flight request got %q", body)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	sw.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Body.String() != "next" {
		t.Fatalf("after the swap: %q", w.Body.String())
	}
}

// FuzzUnder: a path is under a prefix exactly when it equals it or
// continues with a slash.
func FuzzUnder(f *testing.F) {
	f.Add("/blog/x", "/blog")
	f.Add("/blogger", "/blog")
	f.Add("/", "/")
	f.Fuzz(func(t *testing.T, path, prefix string) {
		got := Under(path, prefix)
		want := prefix == "/" || path == prefix || strings.HasPrefix(path, prefix+"/")
		if got != want {
			t.Fatalf("Under(%q, %q) = %v, want %v", path, prefix, got, want)
		}
	})
}
