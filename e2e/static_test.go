package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// TestStaticMount: --static serves a directory's files beside the app
// (ETag and 304, a hashed name cached as immutable, a precompressed
// sibling) and never a file outside it.
func TestStaticMount(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"static/site.css":               "body { color: #333 }\n",
		"static/app.3f2a9c8e1b7d.js":    "console.log('hashed')\n",
		"static/app.3f2a9c8e1b7d.js.gz": "not really gzip, but a sibling",
		"secret.txt":                    "outside the root",
	}
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := whisktest.Start(t, "--static", "/static/="+filepath.Join(dir, "static"), "--processes", "1", "--threads", "1",
		"--python", whisktest.Python(t), whisktest.App(t, "whoami.py"))

	resp, body := s.Get(t, "/static/site.css")
	if resp.StatusCode != 200 || string(body) != files["static/site.css"] || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("site.css: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	etag := resp.Header.Get("ETag")
	req, _ := http.NewRequest("GET", s.URL+"/static/site.css", nil)
	req.Header.Set("If-None-Match", etag)
	if resp := s.Do(t, req); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %s: %d, want 304", etag, resp.StatusCode)
	}
	req, _ = http.NewRequest("GET", s.URL+"/static/app.3f2a9c8e1b7d.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, body = whisktest.ReadAll(t, s.Do(t, req))
	if !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || resp.Header.Get("Content-Encoding") != "gzip" || string(body) != files["static/app.3f2a9c8e1b7d.js.gz"] {
		t.Errorf("hashed name with a .gz sibling: Cache-Control %q Content-Encoding %q body %q", resp.Header.Get("Cache-Control"), resp.Header.Get("Content-Encoding"), body)
	}
	for _, path := range []string{"/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/..%2fsecret.txt", "/static/missing.css"} {
		raw := roundTripRaw(t, s, "GET "+path+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if strings.Contains(string(raw), "outside the root") || !strings.Contains(string(raw), " 404 ") && !strings.Contains(string(raw), " 400 ") {
			t.Errorf("GET %s: %q", path, truncate(raw))
		}
	}
	// The app still serves everything else.
	if status, w := ask(t, s, "x", "/staticfile"); status != 200 || w.PathInfo != "/staticfile" {
		t.Errorf("/staticfile went to %d %+v, want the app", status, w)
	}
}
