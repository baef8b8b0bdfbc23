package static

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fakeCorker records SetCork calls and how much body had been written
// when each came.
type fakeCorker struct {
	rec   *httptest.ResponseRecorder
	calls []bool
	at    []int
}

func (c *fakeCorker) SetCork(on bool) error {
	c.calls = append(c.calls, on)
	c.at = append(c.at, c.rec.Body.Len())
	return nil
}

// A file sent with sendfile is corked before its head is written and
// uncorked once all of it is; small files, HEAD, HTTP/2 and requests
// without a Corker are left alone.
func TestCork(t *testing.T) {
	root := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	os.WriteFile(filepath.Join(root, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(root, "small.txt"), []byte("small"), 0o644)
	h := newHandler(t, root, "/", Options{})
	for _, tt := range []struct {
		name, method, target string
		proto                int
		want                 []bool
	}{
		{"big GET", http.MethodGet, "/big.bin", 1, []bool{true, false}},
		{"small GET", http.MethodGet, "/small.txt", 1, nil},
		{"big HEAD", http.MethodHead, "/big.bin", 1, nil},
		{"big GET over HTTP/2", http.MethodGet, "/big.bin", 2, nil},
	} {
		rec := httptest.NewRecorder()
		c := &fakeCorker{rec: rec}
		r := httptest.NewRequest(tt.method, tt.target, nil)
		r.ProtoMajor = tt.proto
		r = r.WithContext(WithCorker(r.Context(), c))
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d", tt.name, rec.Code)
		}
		if !slices.Equal(c.calls, tt.want) {
			t.Errorf("%s: SetCork calls %v, want %v", tt.name, c.calls, tt.want)
		}
		if tt.want != nil && (c.at[0] != 0 || c.at[1] != len(big)) {
			t.Errorf("%s: corked after %d body bytes, uncorked after %d; want 0 and %d", tt.name, c.at[0], c.at[1], len(big))
		}
	}
	// No Corker in the context: served as before.
	if rec := serve(t, h, http.MethodGet, "/big.bin"); rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), big) {
		t.Errorf("without a Corker: status %d, %d bytes", rec.Code, rec.Body.Len())
	}
}
