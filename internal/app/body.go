package app

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/whiskserver/whisk/internal/wire"
)

// body is a request body read whole by the front before a worker slot is
// taken: in memory when it fits the per-request threshold and the memory
// budget shared by all requests, else in an unlinked temp file. Either way
// it is a ReaderAt of known size.
type body struct {
	mem      []byte // the body, when in memory (in pooled)
	pooled   *[]byte
	file     *os.File
	size     int64
	reserved int64 // bytes held against Handler.bodyMemory()
	h        *Handler
}

// errTooLarge reports a body over MaxBodySize.
var errTooLarge = errors.New("request body too large")

// reserve counts n bytes against the in-memory budget, if they fit.
func (h *Handler) reserve(n int64) bool {
	for {
		cur := h.bodyMemory().Load()
		if cur+n > h.BodyMemoryTotal {
			return false
		}
		if h.bodyMemory().CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// readBody reads r.Body fully. The caller must call close.
func (h *Handler) readBody(r *http.Request) (*body, error) {
	b := &body{h: h}
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return b, nil
	}
	limited := io.LimitReader(r.Body, h.MaxBodySize+1)
	// A known length that fits: one buffer, read with a few large reads.
	if n := r.ContentLength; n > 0 && n <= h.BodyMemory && h.reserve(n) {
		b.reserved = n
		b.pooled = wire.GetBuffer(int(n))
		m, err := io.ReadFull(limited, *b.pooled)
		b.mem, b.size = (*b.pooled)[:m], int64(m)
		if err != nil {
			b.close()
			return nil, fmt.Errorf("read request body: %w", err)
		}
		return b, nil
	}
	// Unknown length (chunked): memory up to the threshold, then the file.
	var head []byte
	if r.ContentLength < 0 && h.reserve(h.BodyMemory+1) {
		b.reserved = h.BodyMemory + 1
		b.pooled = wire.GetBuffer(int(h.BodyMemory + 1))
		m, err := io.ReadFull(limited, *b.pooled)
		b.size = int64(m)
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			if b.size > h.MaxBodySize {
				b.close()
				return nil, errTooLarge
			}
			b.mem = (*b.pooled)[:m]
			return b, nil
		case err != nil:
			b.close()
			return nil, fmt.Errorf("read request body: %w", err)
		}
		head = (*b.pooled)[:m]
	}
	// Past the threshold or the budget: spool to the 0700 body directory,
	// unlinked at once so nothing is left behind on a crash.
	f, err := os.CreateTemp(h.TempDir, "body-")
	if err != nil {
		b.close()
		return nil, fmt.Errorf("spool request body: %w", err)
	}
	os.Remove(f.Name())
	_, err = f.Write(head)
	b.releaseMem()
	b.file = f
	if err != nil {
		b.close()
		return nil, fmt.Errorf("spool request body: %w", err)
	}
	buf := wire.GetBuffer(chunkSize)
	m, err := io.CopyBuffer(f, limited, *buf) // large reads and writes: a few syscalls per MiB
	wire.PutBuffer(buf)
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
	if off >= int64(len(b.mem)) {
		return 0, io.EOF
	}
	n := copy(p, b.mem[off:])
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
	if b.file == nil {
		return b.mem[:n], nil
	}
	p := make([]byte, n)
	_, err := b.file.ReadAt(p, 0)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return p, err
}

// releaseMem returns the memory buffer and its budget.
func (b *body) releaseMem() {
	if b.pooled != nil {
		wire.PutBuffer(b.pooled)
		b.pooled, b.mem = nil, nil
	}
	if b.reserved > 0 {
		b.h.bodyMemory().Add(-b.reserved)
		b.reserved = 0
	}
}

func (b *body) close() {
	b.releaseMem()
	if b.file != nil {
		b.file.Close()
		b.file = nil
	}
}
