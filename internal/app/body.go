package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
)

// body is a request body read whole by the front before a worker slot is
// taken: in memory up to the handler's BodyMemory, then in an unlinked
// temp file. Either way it is a ReaderAt of known size.
type body struct {
	mem  *bytes.Buffer
	file *os.File
	size int64
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// errTooLarge reports a body over MaxBodySize.
var errTooLarge = errors.New("request body too large")

// readBody reads r.Body fully. The caller must call close.
func (h *Handler) readBody(r *http.Request) (*body, error) {
	b := &body{}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return b, nil
	}
	limited := io.LimitReader(r.Body, h.MaxBodySize+1)
	b.mem = bufPool.Get().(*bytes.Buffer)
	b.mem.Reset()
	n, err := b.mem.ReadFrom(io.LimitReader(limited, h.BodyMemory+1))
	b.size = n
	if err != nil {
		b.close()
		return nil, fmt.Errorf("read request body: %w", err)
	}
	if n <= h.BodyMemory {
		if n > h.MaxBodySize {
			b.close()
			return nil, errTooLarge
		}
		return b, nil
	}
	// Past the memory threshold: spill to a temp file in the 0700 body
	// directory, unlinked at once so nothing is left behind on a crash.
	f, err := os.CreateTemp(h.TempDir, "body-")
	if err != nil {
		b.close()
		return nil, fmt.Errorf("spool request body: %w", err)
	}
	os.Remove(f.Name())
	b.file = f
	if _, err := f.Write(b.mem.Bytes()); err != nil {
		b.close()
		return nil, fmt.Errorf("spool request body: %w", err)
	}
	bufPool.Put(b.mem)
	b.mem = nil
	m, err := io.Copy(f, limited)
	b.size += m
	if err != nil {
		b.close()
		return nil, fmt.Errorf("read request body: %w", err)
	}
	if b.size > h.MaxBodySize {
		b.close()
		return nil, errTooLarge
	}
	return b, nil
}

// ReadAt reads body bytes at off.
func (b *body) ReadAt(p []byte, off int64) (int, error) {
	if b.file != nil {
		return b.file.ReadAt(p, off)
	}
	if b.mem == nil || off >= int64(b.mem.Len()) {
		return 0, io.EOF
	}
	n := copy(p, b.mem.Bytes()[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// prefix returns the first n bytes (n ≤ size) without copying when in memory.
func (b *body) prefix(n int64) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if b.mem != nil {
		return b.mem.Bytes()[:n], nil
	}
	p := make([]byte, n)
	_, err := b.file.ReadAt(p, 0)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return p, err
}

func (b *body) close() {
	if b.mem != nil && b.mem.Cap() <= 1<<20 {
		bufPool.Put(b.mem)
	}
	b.mem = nil
	if b.file != nil {
		b.file.Close()
		b.file = nil
	}
}
