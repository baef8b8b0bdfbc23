package e2e

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"testing"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// TestCompress: with --compress a large response is sent gzip-encoded to
// a client that accepts it, and decodes to the app's bytes; a small one is
// sent as is; without --compress nothing is encoded.
func TestCompress(t *testing.T) {
	get := func(s *whisktest.Server, path string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := http.DefaultTransport.RoundTrip(req) // no transparent decoding
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	s := whisktest.Start(t, "--compress", "--processes", "1", "--threads", "2", "--python", whisktest.Python(t), whisktest.App(t, "text.py"))
	for _, path := range []string{"/page?kb=1024", "/stream?kb=1024"} {
		checkCompressed(t, get, s, path)
	}
	if resp, body := get(s, "/small"); resp.Header.Get("Content-Encoding") != "" || string(body) != "small\n" {
		t.Errorf("small response: Content-Encoding %q body %q", resp.Header.Get("Content-Encoding"), body)
	}

	plainServer := whisktest.Start(t, "--processes", "1", "--threads", "1", "--python", whisktest.Python(t), whisktest.App(t, "text.py"))
	if resp, _ := get(plainServer, "/page?kb=64"); resp.Header.Get("Content-Encoding") != "" {
		t.Errorf("without --compress: Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
}

// checkCompressed GETs path and checks it came gzip-encoded and decodes
// to the app's 1 MiB page.
func checkCompressed(t *testing.T, get func(*whisktest.Server, string) (*http.Response, []byte), s *whisktest.Server, path string) {
	t.Helper()
	resp, body := get(s, path)
	if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("%s with --compress: Content-Encoding %q Vary %q", path, resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || len(plain) != 1<<20 || !bytes.HasPrefix(plain, []byte("<p>whisk serves")) {
		t.Fatalf("%s: decoded %d bytes (%v), want the app's 1 MiB page", path, len(plain), err)
	}
	if len(body) > len(plain)/10 {
		t.Errorf("%s: 1 MiB of a repeating paragraph compressed to %d bytes", path, len(body))
	}
}
