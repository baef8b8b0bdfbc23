package server_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whiskserver/whisk/internal/config"
)

// TestDjangoStatic: a django_static group's STATIC_URL and MEDIA_URL are
// served from STATIC_ROOT and MEDIA_ROOT by whisk on the sites that mount
// it (a relative URL under the mount's prefix), a missing root is left to
// the app with a warning until a reload finds it, the config's own mount at
// the same path wins, and a group without the setting keeps its URLs.
func TestDjangoStatic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	staticRoot := filepath.Join(dir, "collected")
	mediaRoot := filepath.Join(dir, "uploads") // created later
	explicitDir := filepath.Join(dir, "explicit")
	for _, d := range []string{staticRoot, explicitDir} {
		if err := os.MkdirAll(filepath.Join(d, "css"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "css", "site.css"), []byte("body{} /* "+filepath.Base(d)+" */"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mark := "django-static/" + t.Name()
	env := []string{"FAKE_STATIC_URL=static/", "FAKE_STATIC_ROOT=" + staticRoot,
		"FAKE_MEDIA_URL=/media/", "FAKE_MEDIA_ROOT=" + mediaRoot}
	dj := testGroup(t, "dj", "fake_django.py", mark, env...)
	dj.DjangoStatic = true
	plain := testGroup(t, "plain", "fake_django.py", mark, env...)
	cfg := testConfig([]config.Group{dj, plain}, []config.Site{
		{Name: "a", Default: true, Mounts: []config.Mount{{Path: "/app", Group: "dj"}}},
		{Name: "b", Hosts: []string{"b.test"}, Mounts: []config.Mount{
			{Path: "/", Group: "dj"},
			{Path: "/static", Static: explicitDir},
		}},
		{Name: "p", Hosts: []string{"p.test"}, Mounts: []config.Mount{{Path: "/", Group: "plain"}}},
	})
	h := newHarness(t, cfg)
	h.start(t, cfg)

	fetch := func(host, path string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, h.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b), resp.Header
	}
	expectFile := func(host, path, want string) {
		t.Helper()
		code, body, hdr := fetch(host, path)
		if code != http.StatusOK || body != want || hdr.Get("ETag") == "" || hdr.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s%s: %d %q (ETag %q, X-Content-Type-Options %q), want whisk's file %q",
				host, path, code, body, hdr.Get("ETag"), hdr.Get("X-Content-Type-Options"), want)
		}
	}
	expectApp := func(host, path, want string) {
		t.Helper()
		if code, body, _ := fetch(host, path); code != http.StatusOK || body != want {
			t.Errorf("GET %s%s: %d %q, want the app's %q", host, path, code, body, want)
		}
	}

	// Site a mounts the app at /app: Django puts SCRIPT_NAME before the
	// relative STATIC_URL.
	expectFile("", "/app/static/css/site.css", "body{} /* collected */")
	// MEDIA_URL is a path: mounted as it is, but MEDIA_ROOT does not exist
	// yet, so nothing is (site a has nothing else there), with a warning.
	for _, path := range []string{"/static/css/site.css", "/media/a.txt"} {
		if code, body, _ := fetch("", path); code != http.StatusNotFound {
			t.Errorf("GET %s: %d %q, want 404: nothing is mounted there", path, code, body)
		}
	}
	if !strings.Contains(h.logs.String(), "MEDIA_ROOT does not exist") {
		t.Errorf("no warning for the missing MEDIA_ROOT:\n%s", h.logs)
	}
	// Site b: the config's /static mount wins over STATIC_URL.
	expectFile("b.test", "/static/css/site.css", "body{} /* explicit */")
	expectApp("b.test", "/media/a.txt", "app  /media/a.txt")
	// Without django_static the app keeps its URLs.
	expectApp("p.test", "/static/css/site.css", "app  /static/css/site.css")

	// Once MEDIA_ROOT exists, a reload mounts it.
	if err := os.MkdirAll(mediaRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mediaRoot, "a.txt"), []byte("uploaded"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.reload(cfg); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	expectFile("", "/media/a.txt", "uploaded")
	expectFile("b.test", "/media/a.txt", "uploaded")
	expectFile("", "/app/static/css/site.css", "body{} /* collected */")
	if code, _, hdr := fetch("", "/media/a.txt"); code == http.StatusOK && strings.Contains(hdr.Get("Cache-Control"), "immutable") {
		t.Errorf("media file sent as immutable: %q", hdr.Get("Cache-Control"))
	}
}
