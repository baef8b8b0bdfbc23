package reqinfo

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/forwarded"
)

// TestRequestID: a trusted peer's id is kept; an untrusted peer's, a
// missing or an overlong one is replaced by a generated id, which the app
// sees in the request and the client in the response.
func TestRequestID(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name, remote, id string
		keep             bool
	}{
		{"trusted proxy", "10.1.2.3:5000", "abc-123", true},
		{"trusted IPv6", "[::1]:5000", "abc-123", true},
		{"IPv4-mapped trusted", "[::ffff:10.0.0.1]:5000", "abc-123", true},
		{"untrusted peer", "203.0.113.9:5000", "forged", false},
		{"no id", "10.1.2.3:5000", "", false},
		{"overlong id", "10.1.2.3:5000", strings.Repeat("x", 201), false},
		{"unix socket peer, ::1 trusted: local, trusted", "@", "abc", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen string
			var done *Info
			h := Handler(Config{Trust: forwarded.NewTrust(trusted), Done: []func(*http.Request, *Info){func(_ *http.Request, i *Info) { done = i }}},
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					seen = r.Header.Get("X-Request-ID")
					if From(r.Context()) == nil {
						t.Error("no Info in the request's context")
					}
				}))
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			if tt.id != "" {
				r.Header.Set("X-Request-ID", tt.id)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if tt.keep && seen != tt.id {
				t.Errorf("app saw id %q, want the trusted %q", seen, tt.id)
			}
			if !tt.keep && (seen == tt.id || len(seen) != 32) {
				t.Errorf("app saw id %q, want a generated 32-hex id", seen)
			}
			if got := w.Header().Get("X-Request-ID"); got != seen {
				t.Errorf("response id %q, app's %q", got, seen)
			}
			if done == nil || done.ID != seen || done.Status != 200 {
				t.Errorf("Done got %+v, want id %q and status 200", done, seen)
			}
		})
	}
}

// TestRecorder: status and bytes reach Done, whether the handler writes,
// copies (ReadFrom) or sets only a status.
func TestRecorder(t *testing.T) {
	tests := []struct {
		name   string
		handle func(w http.ResponseWriter)
		status int
		bytes  int64
	}{
		{"write", func(w http.ResponseWriter) { io.WriteString(w, "hello") }, 200, 5},
		{"status then write", func(w http.ResponseWriter) { w.WriteHeader(404); io.WriteString(w, "no") }, 404, 2},
		{"status only", func(w http.ResponseWriter) { w.WriteHeader(204) }, 204, 0},
		{"nothing", func(w http.ResponseWriter) {}, 200, 0},
		{"copy", func(w http.ResponseWriter) { io.Copy(w, strings.NewReader("abcdef")) }, 200, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var done *Info
			h := Handler(Config{Header: "X-Trace", Done: []func(*http.Request, *Info){func(_ *http.Request, i *Info) { done = i }}},
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tt.handle(w) }))
			before := time.Now()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			if done.Status != tt.status || done.Bytes != tt.bytes {
				t.Errorf("Info status %d bytes %d, want %d %d", done.Status, done.Bytes, tt.status, tt.bytes)
			}
			if done.Start.Before(before) || w.Header().Get("X-Trace") == "" {
				t.Errorf("Start %v (before %v), X-Trace %q", done.Start, before, w.Header().Get("X-Trace"))
			}
		})
	}
}

func BenchmarkHandler(b *testing.B) {
	h := Handler(Config{Done: []func(*http.Request, *Info){func(*http.Request, *Info) {}}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	r := httptest.NewRequest("GET", "/", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// TestForwarded: a trusted proxy's X-Forwarded-For and -Proto reach the
// app, Info and Done (the access log) alike; the request id is still
// trusted by the proxy's address, not the client's.
func TestForwarded(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	var app, logged *http.Request
	var done *Info
	h := Handler(Config{Trust: forwarded.NewTrust(trusted), Done: []func(*http.Request, *Info){func(r *http.Request, i *Info) { logged, done = r, i }}},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { app = r }))
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:5000"
	r.Header.Set("X-Forwarded-For", "192.0.2.1")
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Request-ID", "from-proxy")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if app.RemoteAddr != "192.0.2.1:" || logged.RemoteAddr != "192.0.2.1:" {
		t.Errorf("app saw %q, Done %q, want the client", app.RemoteAddr, logged.RemoteAddr)
	}
	if done.Peer != "10.0.0.1:5000" || done.Scheme != "https" || done.ID != "from-proxy" {
		t.Errorf("Info: peer %q scheme %q id %q", done.Peer, done.Scheme, done.ID)
	}
	if r.RemoteAddr != "10.0.0.1:5000" {
		t.Errorf("the server's request was changed: %q", r.RemoteAddr)
	}

	r = httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.9:5000"
	r.Header.Set("X-Forwarded-Proto", "https")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if done.Scheme != "http" || app.Header.Get("X-Forwarded-Proto") != "" || app.RemoteAddr != "192.0.2.9:5000" {
		t.Errorf("untrusted: scheme %q, header %q, remote %q", done.Scheme, app.Header.Get("X-Forwarded-Proto"), app.RemoteAddr)
	}
}
