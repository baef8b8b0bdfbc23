package app

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// readBody keeps small bodies in memory within the shared budget, spools
// the rest to a temp file, and gives the budget back on close.
func TestReadBody(t *testing.T) {
	tests := []struct {
		name      string
		size      int
		chunked   bool
		budget    int64
		wantFile  bool
		wantError error
	}{
		{"small known length", 1000, false, 1 << 20, false, nil},
		{"at the threshold", 4096, false, 1 << 20, false, nil},
		{"over the threshold", 4097, false, 1 << 20, true, nil},
		{"small chunked", 1000, true, 1 << 20, false, nil},
		{"chunked at the threshold", 4096, true, 1 << 20, false, nil},
		{"large chunked", 100000, true, 1 << 20, true, nil},
		{"budget exhausted", 1000, false, 999, true, nil},
		{"chunked, budget exhausted", 1000, true, 10, true, nil},
		{"over the limit", 200001, false, 1 << 20, false, errTooLarge},
		{"chunked over the limit", 200001, true, 1 << 20, false, errTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Handler{MaxBodySize: 200000, BodyMemory: 4096, BodyMemoryTotal: tt.budget, TempDir: t.TempDir()}
			data := bytes.Repeat([]byte("0123456789abcdef"), tt.size/16+1)[:tt.size]
			r, err := http.NewRequest("POST", "/", io.NopCloser(bytes.NewReader(data)))
			if err != nil {
				t.Fatal(err)
			}
			r.ContentLength = int64(tt.size)
			if tt.chunked {
				r.ContentLength = -1
			}
			b, err := h.readBody(r)
			if tt.wantError != nil {
				if !errors.Is(err, tt.wantError) {
					t.Fatalf("got %v, want %v", err, tt.wantError)
				}
				if got := h.memInUse.Load(); got != 0 {
					t.Fatalf("%d bytes of budget held after an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (b.file != nil) != tt.wantFile {
				t.Errorf("in a file: %v, want %v", b.file != nil, tt.wantFile)
			}
			if b.size != int64(tt.size) {
				t.Errorf("size %d, want %d", b.size, tt.size)
			}
			got := make([]byte, tt.size)
			if n, err := b.ReadAt(got, 0); n != tt.size || (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(got, data) {
				t.Errorf("ReadAt: %d bytes, %v, equal %v", n, err, bytes.Equal(got, data))
			}
			if p, err := b.prefix(int64(min(tt.size, 100))); err != nil || !bytes.Equal(p, data[:len(p)]) {
				t.Errorf("prefix: %v", err)
			}
			if !tt.wantFile && h.memInUse.Load() == 0 {
				t.Error("a body in memory holds no budget")
			}
			b.close()
			if got := h.memInUse.Load(); got != 0 {
				t.Errorf("%d bytes of budget held after close", got)
			}
		})
	}
}

// A body cut short by the client is an error, and frees its budget.
func TestReadBodyTruncated(t *testing.T) {
	h := &Handler{MaxBodySize: 1 << 20, BodyMemory: 4096, BodyMemoryTotal: 1 << 20, TempDir: t.TempDir()}
	r, _ := http.NewRequest("POST", "/", io.NopCloser(strings.NewReader("short")))
	r.ContentLength = 100
	if _, err := h.readBody(r); err == nil {
		t.Fatal("a truncated body was accepted")
	}
	if got := h.memInUse.Load(); got != 0 {
		t.Fatalf("%d bytes of budget held", got)
	}
}
