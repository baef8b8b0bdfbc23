package static

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// discardWriter is a ResponseWriter with no sendfile path: it measures the
// handler's own work (open, stat, headers, conditionals) and a 100 KB copy.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func benchRoot(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	body := strings.Repeat("0123456789abcdef", 100<<10/16)
	for _, n := range []string{"file.bin", "app.js", "app.js.br"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkHandler100KB serves a 100 KB file to an in-memory writer.
func BenchmarkHandler100KB(b *testing.B) {
	for _, c := range []struct{ name, method, path, ae string }{
		{"identity", "GET", "/static/file.bin", ""},
		{"br", "GET", "/static/app.js", "gzip, deflate, br, zstd"},
		{"js-identity", "GET", "/static/app.js", ""},
		// HEAD: the handler's own cost, without the body copy.
		{"head", "HEAD", "/static/file.bin", ""},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := newHandler(b, benchRoot(b), "/static", Options{})
			req := httptest.NewRequest(c.method, c.path, nil)
			if c.ae != "" {
				req.Header.Set("Accept-Encoding", c.ae)
			}
			b.SetBytes(100 << 10)
			b.ReportAllocs()
			for b.Loop() {
				w := &discardWriter{h: http.Header{}}
				h.ServeHTTP(w, req)
			}
		})
	}
}

// BenchmarkGet100KB fetches a 100 KB file from a real net/http server over
// loopback with keep-alive clients in parallel: the body goes out with
// sendfile.
func BenchmarkGet100KB(b *testing.B) {
	h := newHandler(b, benchRoot(b), "/static", Options{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	url := srv.URL + "/static/file.bin"
	b.SetBytes(100 << 10)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || n != 100<<10 {
				b.Errorf("status %d, %d bytes", resp.StatusCode, n)
				return
			}
		}
	})
}
