package static

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// secret is the content of the only file outside the served root; no
// response may ever carry it unless AllowSymlinksOutside is on.
const secret = "OUTSIDE-SECRET-7f3a"

const (
	appJS   = "console.log('app');\n// padding padding padding padding\n"
	appBR   = "BROTLI-BYTES-app.js"
	appZST  = "ZSTD-BYTES-app.js"
	appGZ   = "GZIP-BYTES-app.js"
	styleGZ = "GZIP-BYTES-style.css"
	hashed  = "app.3f2a9c8e1b7d.js"
)

// tree builds
//
//	base/
//	  outside/secret.txt             (secret)
//	  rootx/secret.txt               (secret; a sibling whose name extends root's)
//	  root/
//	    app.js app.js.br app.js.zst app.js.gz
//	    style.css style.css.gz
//	    app.3f2a9c8e1b7d.js
//	    data.txt img.png font.woff2 icon.svg noext empty.txt up.PNG
//	    .env .well-known/acme.txt
//	    sub/index.html sub/page.txt
//	    list/a.txt list/<b>&.txt list/.hidden list/d/
//	    fifo                         (a named pipe)
//	    link-inside -> app.js        link-dir -> sub
//	    link-outside -> ../outside/secret.txt
//	    link-outside-dir -> ../outside
//	    link-prefix -> ../rootx/secret.txt
//	    link-abs-inside -> base/root/app.js (absolute)
//	    link-abs-outside -> base/outside/secret.txt (absolute)
//	    link-loop -> link-loop
//
// and returns base/root.
func tree(t testing.TB) string {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	files := map[string]string{
		"outside/secret.txt":        secret,
		"rootx/secret.txt":          secret,
		"root/app.js":               appJS,
		"root/app.js.br":            appBR,
		"root/app.js.zst":           appZST,
		"root/app.js.gz":            appGZ,
		"root/style.css":            "body{color:red}\n",
		"root/style.css.gz":         styleGZ,
		"root/" + hashed:            "hashed();\n",
		"root/data.txt":             "0123456789abcdefghij",
		"root/img.png":              "\x89PNG\r\n\x1a\nnot really",
		"root/font.woff2":           "wOF2",
		"root/icon.svg":             "<svg/>",
		"root/noext":                "no extension",
		"root/empty.txt":            "",
		"root/up.PNG":               "\x89PNG",
		"root/.env":                 "DOTENV",
		"root/.well-known/acme.txt": "token",
		"root/sub/index.html":       "<h1>sub</h1>",
		"root/sub/page.txt":         "page",
		"root/list/a.txt":           "a",
		"root/list/<b>&.txt":        "b",
		"root/list/.hidden":         "h",
	}
	for name, body := range files {
		p := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "list", "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"link-inside":      "app.js",
		"link-dir":         "sub",
		"link-outside":     "../outside/secret.txt",
		"link-outside-dir": "../outside",
		"link-prefix":      "../rootx/secret.txt",
		"link-abs-inside":  filepath.Join(root, "app.js"),
		"link-abs-outside": filepath.Join(base, "outside", "secret.txt"),
		"link-loop":        "link-loop",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func newHandler(t testing.TB, root, prefix string, opts Options) *Handler {
	t.Helper()
	h, err := New(root, prefix, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// serve sends one request with a raw request target, parsed the way
// net/http's server parses it (no path cleaning), with header lines
// "Key: value".
func serve(t testing.TB, h http.Handler, method, target string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	raw := method + " " + target + " HTTP/1.1\r\nHost: example.com\r\n"
	for _, hl := range headers {
		raw += hl + "\r\n"
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + "\r\n")))
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}
