package compress

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// decode undoes a content coding.
func decode(t testing.TB, coding string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch coding {
	case "":
		return body
	case "gzip":
		g, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r = g
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "zstd":
		z, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer z.Close()
		r = z
	default:
		t.Fatalf("unknown coding %q", coding)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode %s: %v", coding, err)
	}
	return out
}

var page = []byte(strings.Repeat("<p>hello, compressible world</p>\n", 400)) // 13 KB

func TestCompress(t *testing.T) {
	tests := []struct {
		name       string
		accept     string
		method     string
		reqHeader  map[string]string
		respHeader map[string]string
		status     int
		body       []byte
		wantCoding string
		wantVary   bool
	}{
		{name: "gzip", accept: "gzip", wantCoding: "gzip", wantVary: true},
		{name: "br preferred at equal q", accept: "gzip, deflate, br, zstd", wantCoding: "br", wantVary: true},
		{name: "zstd before gzip", accept: "gzip, zstd", wantCoding: "zstd", wantVary: true},
		{name: "q-values win", accept: "br;q=0.5, gzip;q=0.9", wantCoding: "gzip", wantVary: true},
		{name: "q=0 refuses", accept: "gzip;q=0", wantCoding: "", wantVary: true},
		{name: "wildcard", accept: "*", wantCoding: "br", wantVary: true},
		{name: "wildcard minus refused", accept: "br;q=0, *", wantCoding: "zstd", wantVary: true},
		{name: "identity only", accept: "identity", wantCoding: "", wantVary: true},
		{name: "x-gzip is gzip", accept: "x-gzip", wantCoding: "gzip", wantVary: true},
		{name: "identity preferred", accept: "identity;q=1, gzip;q=0.5", wantCoding: "", wantVary: true},
		{name: "malformed q ignored", accept: "gzip;q=2", wantCoding: "", wantVary: true},
		{name: "no Accept-Encoding", accept: "", wantCoding: "", wantVary: true},
		{name: "small body", accept: "gzip", body: []byte("short"), wantCoding: "", wantVary: true},
		{name: "small Content-Length", accept: "gzip", body: []byte("short"), respHeader: map[string]string{"Content-Length": "5"}, wantCoding: ""},
		{name: "already compressed type", accept: "gzip", respHeader: map[string]string{"Content-Type": "image/png"}, wantCoding: ""},
		{name: "svg is text", accept: "gzip", respHeader: map[string]string{"Content-Type": "image/svg+xml"}, wantCoding: "gzip", wantVary: true},
		{name: "app's own Content-Encoding", accept: "gzip", respHeader: map[string]string{"Content-Encoding": "identity"}, wantCoding: "identity"},
		{name: "no-transform", accept: "gzip", respHeader: map[string]string{"Cache-Control": "public, no-transform"}, wantCoding: ""},
		{name: "range request", accept: "gzip", reqHeader: map[string]string{"Range": "bytes=0-10"}, wantCoding: ""},
		{name: "partial content", accept: "gzip", status: 206, respHeader: map[string]string{"Content-Range": "bytes 0-99/13200"}, wantCoding: ""},
		{name: "HEAD", accept: "gzip", method: "HEAD", wantCoding: ""},
		{name: "error page compressed too", accept: "gzip", status: 500, wantCoding: "gzip", wantVary: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if body == nil {
				body = page
			}
			h := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Header().Set("ETag", `"v1"`)
				for k, v := range tt.respHeader {
					w.Header().Set(k, v)
				}
				if tt.status != 0 {
					w.WriteHeader(tt.status)
				}
				if r.Method != "HEAD" {
					w.Write(body[:len(body)/2])
					w.Write(body[len(body)/2:])
				}
			}))
			method := tt.method
			if method == "" {
				method = "GET"
			}
			r := httptest.NewRequest(method, "/", nil)
			if tt.accept != "" {
				r.Header.Set("Accept-Encoding", tt.accept)
			}
			for k, v := range tt.reqHeader {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			res := w.Result()
			coding := res.Header.Get("Content-Encoding")
			if coding != tt.wantCoding {
				t.Fatalf("Content-Encoding %q, want %q", coding, tt.wantCoding)
			}
			if vary := strings.Contains(res.Header.Get("Vary"), "Accept-Encoding"); vary != tt.wantVary {
				t.Errorf("Vary %q, want Accept-Encoding: %v", res.Header.Get("Vary"), tt.wantVary)
			}
			if method == "HEAD" {
				return
			}
			got := w.Body.Bytes()
			if coding != "" && coding != "identity" {
				if res.Header.Get("Content-Length") != "" {
					t.Errorf("compressed response keeps Content-Length %q", res.Header.Get("Content-Length"))
				}
				if res.Header.Get("ETag") != `W/"v1"` {
					t.Errorf("ETag %q, want the weak W/\"v1\"", res.Header.Get("ETag"))
				}
				if len(got) >= len(body) {
					t.Errorf("compressed %d bytes into %d", len(body), len(got))
				}
				got = decode(t, coding, got)
			}
			if !bytes.Equal(got, body) {
				t.Errorf("body differs after decoding: %d bytes, want %d", len(got), len(body))
			}
			if tt.status != 0 && res.StatusCode != tt.status {
				t.Errorf("status %d, want %d", res.StatusCode, tt.status)
			}
		})
	}
}

// TestStreamingFlush: each flushed part of a streamed response reaches the
// client decodable before the response ends.
func TestStreamingFlush(t *testing.T) {
	next := make(chan struct{})
	srv := httptest.NewServer(New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "first part\n")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "second part\n")
	})))
	defer srv.Close()
	defer close(next)
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	line := make([]byte, len("first part\n"))
	if _, err := io.ReadFull(zr, line); err != nil || string(line) != "first part\n" {
		t.Fatalf("first part: %q %v", line, err)
	}
}

// FuzzRoundTrip: whatever the body, its chunking and Accept-Encoding, the
// client decodes exactly the bytes the app wrote.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("hello"), uint16(1), "gzip")
	f.Add(page, uint16(700), "br, zstd")
	f.Add(bytes.Repeat([]byte{0}, 5000), uint16(1024), "*")
	f.Fuzz(func(t *testing.T, body []byte, chunk uint16, accept string) {
		h := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			n := int(chunk%4096) + 1
			for rest := body; len(rest) > 0; {
				k := min(n, len(rest))
				w.Write(rest[:k])
				rest = rest[k:]
			}
		}))
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Encoding", accept)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		got := decode(t, w.Result().Header.Get("Content-Encoding"), w.Body.Bytes())
		if !bytes.Equal(got, body) {
			t.Fatalf("decoded %d bytes, app wrote %d", len(got), len(body))
		}
	})
}

func BenchmarkCompress(b *testing.B) {
	for _, coding := range []string{"gzip", "br", "zstd"} {
		b.Run(coding, func(b *testing.B) {
			h := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.Write(page)
			}))
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Accept-Encoding", coding)
			b.SetBytes(int64(len(page)))
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
}
