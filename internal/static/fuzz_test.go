package static

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzPath sends fuzzed request targets and Accept-Encoding/Range values:
// the handler must never panic, never answer 500, and never serve a byte of
// the file outside the root (reachable only through "..", encodings of it,
// or the symlinks in the tree).
func FuzzPath(f *testing.F) {
	for _, s := range traversals {
		f.Add(s, "", "")
	}
	f.Add("/static/app.js", "br;q=0.5, gzip", "bytes=0-3")
	f.Add("/static/link-dir/page.txt", "*", "bytes=-1,0-0")
	f.Add("/static/sub/", "", "")
	f.Add("/static/list/", "identity;q=0", "")
	f.Add("/static/.well-known/../link-outside", "zstd", "bytes=5-")
	root := tree(f)
	handlers := []*Handler{
		newHandler(f, root, "/static", Options{}),
		newHandler(f, root, "/static", Options{Index: "index.html", Listing: true, ServeDotfiles: true}),
	}
	f.Fuzz(func(t *testing.T, target, ae, rng string) {
		raw := "GET " + target + " HTTP/1.1\r\nHost: x\r\nAccept-Encoding: " + ae + "\r\nRange: " + rng + "\r\n\r\n"
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // net/http would answer 400 itself
		}
		for _, h := range handlers {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code == http.StatusInternalServerError {
				t.Fatalf("%q: 500 %q", target, w.Body.String())
			}
			if strings.Contains(w.Body.String(), secret) {
				t.Fatalf("%q: served the file outside the root", target)
			}
		}
	})
}
