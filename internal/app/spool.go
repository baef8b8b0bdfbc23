package app

import (
	"errors"
	"io"
	"os"
	"sync"

	"github.com/whiskserver/whisk/internal/wire"
)

// maxSpool bounds the response bytes the front buffers for one slow client
// (memory up to the response window, the rest on disk). Past it the worker
// waits for the client, as it would behind nginx's proxy_max_temp_file_size.
const maxSpool = 256 << 20

// item is one piece of a streamed response: body bytes, a file handed over
// by the worker, or the error that ended the stream early.
type item struct {
	data []byte
	file *os.File
	rng  wire.FileRange
	err  error
}

// spool carries a streamed response from the pump (which reads the worker)
// to the goroutine writing to the client. Bytes stay in memory up to
// memLimit and go to an unlinked temp file past it, so the worker can finish
// and free its thread while a slow client is still reading, and the front's
// memory stays bounded. Order is kept: while the file holds unread bytes,
// new bytes go to the file too.
type spool struct {
	memLimit int
	dir      string

	mu        sync.Mutex
	wake      chan struct{} // one pending signal for the reader
	mem       []item
	memBytes  int
	file      *os.File
	rOff      int64
	wOff      int64
	tail      []item // FILE items that arrived while the file held bytes, and what followed them
	tailBytes int
	done      bool    // the pump has finished
	discard   bool    // the client is gone: drop what comes
	readBuf   *[]byte // from wire.GetBuffer, for reading the file back
}

func newSpool(memLimit int, dir string) *spool {
	return &spool{memLimit: memLimit, dir: dir, wake: make(chan struct{}, 1)}
}

func (s *spool) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// putData queues body bytes; p is copied or written before it returns.
func (s *spool) putData(p []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.discard || len(p) == 0 {
		return nil
	}
	defer s.signal()
	if len(s.tail) > 0 {
		// A FILE item waits behind file bytes: later data waits behind it.
		s.tail = append(s.tail, item{data: append([]byte(nil), p...)})
		s.tailBytes += len(p)
		return nil
	}
	if s.wOff == s.rOff && s.memBytes+len(p) <= s.memLimit {
		s.mem = append(s.mem, item{data: append([]byte(nil), p...)})
		s.memBytes += len(p)
		return nil
	}
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "response-")
		if err != nil {
			return err
		}
		os.Remove(f.Name())
		s.file = f
	}
	n, err := s.file.WriteAt(p, s.wOff)
	s.wOff += int64(n)
	return err
}

// putItem queues a FILE item or a final error.
func (s *spool) putItem(it item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.signal()
	if s.discard {
		if it.file != nil {
			it.file.Close()
		}
		return
	}
	if s.wOff > s.rOff {
		s.tail = append(s.tail, it)
		return
	}
	s.mem = append(s.mem, it)
}

// finish marks the end of the stream.
func (s *spool) finish() {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	s.signal()
}

// buffered is the number of body bytes held (memory and disk).
func (s *spool) buffered() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(s.memBytes+s.tailBytes) + s.wOff - s.rOff
}

// next returns the next item, blocking until one is there; io.EOF after
// the last one.
func (s *spool) next() (item, error) {
	for {
		s.mu.Lock()
		switch {
		case len(s.mem) > 0:
			it := s.mem[0]
			s.mem[0] = item{}
			s.mem = s.mem[1:]
			s.memBytes -= len(it.data)
			s.mu.Unlock()
			return it, nil
		case s.wOff > s.rOff:
			if s.readBuf == nil {
				s.readBuf = wire.GetBuffer(chunkSize)
			}
			buf := *s.readBuf
			n := int(min(int64(len(buf)), s.wOff-s.rOff))
			f, off := s.file, s.rOff
			s.mu.Unlock()
			// Only this goroutine reads and advances rOff; the writer only
			// appends past wOff, so reading outside the lock is safe.
			m, err := f.ReadAt(buf[:n], off)
			if err != nil && !errors.Is(err, io.EOF) {
				return item{}, err
			}
			s.mu.Lock()
			s.rOff += int64(m)
			if s.rOff == s.wOff {
				// Drained: the next bytes reuse the file from the start,
				// so disk use follows what is buffered, not what passed.
				s.rOff, s.wOff = 0, 0
			}
			s.mu.Unlock()
			return item{data: buf[:m]}, nil
		case len(s.tail) > 0:
			it := s.tail[0]
			s.tail[0] = item{}
			s.tail = s.tail[1:]
			s.tailBytes -= len(it.data)
			s.mu.Unlock()
			return it, nil
		case s.done:
			s.mu.Unlock()
			return item{}, io.EOF
		}
		s.mu.Unlock()
		<-s.wake
	}
}

// empty reports whether nothing is waiting to be written (time to flush).
func (s *spool) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mem) == 0 && s.wOff == s.rOff && len(s.tail) == 0
}

// drop discards what is queued and what comes later (the client is gone).
func (s *spool) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discard = true
	for _, it := range append(s.mem, s.tail...) {
		if it.file != nil {
			it.file.Close()
		}
	}
	s.mem, s.tail, s.memBytes, s.tailBytes = nil, nil, 0, 0
	s.close()
}

// close releases the temp file. Caller holds mu.
func (s *spool) close() {
	if s.file != nil {
		s.file.Close()
		s.file = nil
		s.rOff, s.wOff = 0, 0
	}
}

// release frees the spool once the writer is done with it.
func (s *spool) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.close()
	if s.readBuf != nil {
		wire.PutBuffer(s.readBuf)
		s.readBuf = nil
	}
}
