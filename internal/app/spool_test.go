package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/wire"
)

// spoolOp is one step of a scripted spool exchange: put bytes, put a FILE
// item, or read one item and expect it.
type spoolOp struct {
	put     string // putData
	putFile string // putItem with a file whose name is this
	read    string // next returns these bytes ...
	readF   string // ... or the file with this name
	inFile  bool   // after the op, the spool's temp file holds unread bytes
}

func TestSpoolOrder(t *testing.T) {
	tests := []struct {
		name     string
		memLimit int
		ops      []spoolOp
	}{
		{
			name:     "memory only",
			memLimit: 100,
			ops: []spoolOp{
				{put: "aaa"}, {put: "bbb"},
				{read: "aaa"}, {read: "bbb"},
			},
		},
		{
			name:     "memory, then file, then memory again",
			memLimit: 8,
			ops: []spoolOp{
				{put: "aaaa"},                       // memory: 4
				{put: "bbbbbbbb", inFile: true},     // over 8: file
				{put: "cc", inFile: true},           // fits in memory, but the file holds bytes: file too
				{read: "aaaa", inFile: true},        // memory first: it is older
				{read: "bbbbbbbbcc", inFile: false}, // the file in one read
				{put: "dd"},                         // file drained: memory again
				{read: "dd"},
				{put: "eeeeeeeee", inFile: true}, // one put over the limit, spool empty
				{read: "eeeeeeeee"},
			},
		},
		{
			name:     "FILE after file bytes comes after them",
			memLimit: 4,
			ops: []spoolOp{
				{put: "aa"},
				{put: "bbbbb", inFile: true},
				{putFile: "f1", inFile: true},
				{read: "aa", inFile: true},
				{read: "bbbbb"},
				{readF: "f1"},
			},
		},
		{
			name:     "FILE with an empty spool file goes in order with memory",
			memLimit: 100,
			ops: []spoolOp{
				{put: "head"}, {putFile: "f1"}, {put: "tail"},
				{read: "head"}, {readF: "f1"}, {read: "tail"},
			},
		},
		{
			// Bytes put after a FILE item that waits behind file bytes
			// must not overtake it (the spool promises order).
			name:     "data after a FILE that waits behind file bytes",
			memLimit: 4,
			ops: []spoolOp{
				{put: "bbbbb", inFile: true},
				{putFile: "f1", inFile: true},
				{put: "cc", inFile: true},
				{read: "bbbbb"},
				{readF: "f1"},
				{read: "cc"},
			},
		},
		{
			name:     "data after a FILE that waited behind file bytes now drained",
			memLimit: 4,
			ops: []spoolOp{
				{put: "bbbbb", inFile: true},
				{putFile: "f1", inFile: true},
				{read: "bbbbb"},
				{put: "cc"},
				{readF: "f1"},
				{read: "cc"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSpool(tt.memLimit, t.TempDir())
			defer s.release()
			files := map[string]*os.File{}
			for i, op := range tt.ops {
				switch {
				case op.put != "":
					if err := s.putData([]byte(op.put)); err != nil {
						t.Fatalf("op %d: putData: %v", i, err)
					}
				case op.putFile != "":
					f := tempFile(t, op.putFile)
					files[op.putFile] = f
					s.putItem(item{file: f, rng: wire.FileRange{Count: -1}})
				case op.read != "":
					it := nextItem(t, s)
					if it.file != nil || string(it.data) != op.read {
						t.Fatalf("op %d: next = %s, want data %q", i, describe(it), op.read)
					}
				case op.readF != "":
					it := nextItem(t, s)
					if it.file != files[op.readF] {
						t.Fatalf("op %d: next = %s, want file %s", i, describe(it), op.readF)
					}
				}
				if got := spoolFileHolds(s); got != op.inFile {
					t.Errorf("op %d (%+v): temp file holds unread bytes = %v, want %v", i, op, got, op.inFile)
				}
			}
			s.finish()
			if it, err := s.next(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the last item: next = %s, %v; want io.EOF", describe(it), err)
			}
			if !s.empty() {
				t.Error("empty() = false after everything was read")
			}
		})
	}
}

func spoolFileHolds(s *spool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wOff > s.rOff
}

func tempFile(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func describe(it item) string {
	switch {
	case it.err != nil:
		return fmt.Sprintf("error %v", it.err)
	case it.file != nil:
		return "file " + it.file.Name()
	}
	return fmt.Sprintf("data %q", it.data)
}

// nextItem returns the spool's next item, failing if none comes in time.
func nextItem(t *testing.T, s *spool) item {
	t.Helper()
	type result struct {
		it  item
		err error
	}
	c := make(chan result, 1)
	go func() {
		it, err := s.next()
		if it.data != nil {
			it.data = bytes.Clone(it.data) // the file read buffer is reused
		}
		c <- result{it, err}
	}()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatalf("next: %v", r.err)
		}
		return r.it
	case <-time.After(5 * time.Second):
		t.Fatal("next blocked with items queued")
		return item{}
	}
}

func TestSpoolNextBlocksUntilPut(t *testing.T) {
	s := newSpool(16, t.TempDir())
	defer s.release()
	got := make(chan item, 1)
	go func() {
		it, err := s.next()
		if err != nil {
			it.err = err
		}
		it.data = bytes.Clone(it.data)
		got <- it
	}()
	select {
	case it := <-got:
		t.Fatalf("next returned %s from an empty spool", describe(it))
	default:
	}
	if err := s.putData([]byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case it := <-got:
		if string(it.data) != "x" {
			t.Fatalf("next = %s, want data \"x\"", describe(it))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("next not woken by putData")
	}
}

func TestSpoolFinish(t *testing.T) {
	s := newSpool(4, t.TempDir())
	defer s.release()
	s.putData([]byte("ab"))
	s.putData([]byte("cdefgh")) // to the file
	errItem := errors.New("stream ended early")
	s.putItem(item{err: errItem})
	s.finish()
	// finish does not drop what is queued: the reader gets it all, then EOF.
	if it := nextItem(t, s); string(it.data) != "ab" {
		t.Fatalf("next = %s, want \"ab\"", describe(it))
	}
	if it := nextItem(t, s); string(it.data) != "cdefgh" {
		t.Fatalf("next = %s, want \"cdefgh\"", describe(it))
	}
	if it := nextItem(t, s); it.err != errItem {
		t.Fatalf("next = %s, want the error item", describe(it))
	}
	for range 2 {
		if _, err := s.next(); !errors.Is(err, io.EOF) {
			t.Fatalf("next after finish = %v, want io.EOF (every time)", err)
		}
	}
}

func TestSpoolFinishWakesBlockedReader(t *testing.T) {
	s := newSpool(4, t.TempDir())
	defer s.release()
	errc := make(chan error, 1)
	go func() {
		_, err := s.next()
		errc <- err
	}()
	s.finish()
	select {
	case err := <-errc:
		if !errors.Is(err, io.EOF) {
			t.Fatalf("next = %v, want io.EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("finish did not wake a blocked next")
	}
}

func TestSpoolDrop(t *testing.T) {
	s := newSpool(4, t.TempDir())
	s.putData([]byte("ab"))
	s.putData([]byte("cdefgh"))
	queued := tempFile(t, "queued")
	s.putItem(item{file: queued})
	if s.buffered() != 8 {
		t.Fatalf("buffered = %d, want 8", s.buffered())
	}
	s.drop()
	if s.buffered() != 0 || !s.empty() {
		t.Fatalf("after drop: buffered %d, empty %v; want 0, true", s.buffered(), s.empty())
	}
	if _, err := queued.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("a FILE item queued before drop was not closed (Stat: %v)", err)
	}
	// What comes after drop is discarded, files closed.
	if err := s.putData([]byte("late")); err != nil {
		t.Fatalf("putData after drop: %v", err)
	}
	late := tempFile(t, "late")
	s.putItem(item{file: late})
	if _, err := late.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("a FILE item put after drop was not closed (Stat: %v)", err)
	}
	if s.buffered() != 0 || !s.empty() {
		t.Fatalf("after drop and more puts: buffered %d, empty %v; want 0, true", s.buffered(), s.empty())
	}
	s.finish()
	if it, err := s.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("next after drop and finish = %s, %v; want io.EOF", describe(it), err)
	}
	s.release()
	s.release() // idempotent
}

// A client slower than the app makes the spool spill to its temp file
// again and again. What the front holds (buffered) stays small, but read
// bytes are never reclaimed: the file's offsets are reset only by release,
// so the file grows with the whole response rather than with what is
// buffered, and a long stream to a slow client can fill the disk.
func TestSpoolFileReusedOnceDrained(t *testing.T) {
	s := newSpool(16, t.TempDir())
	defer s.release()
	chunk := bytes.Repeat([]byte("x"), 1000)
	maxBuffered := int64(0)
	for range 100 {
		// Each round spills 2000 bytes to the file, then the reader
		// drains the spool completely.
		s.putData(chunk)
		s.putData(chunk)
		maxBuffered = max(maxBuffered, s.buffered())
		for s.buffered() > 0 {
			nextItem(t, s)
		}
	}
	s.mu.Lock()
	f := s.file
	s.mu.Unlock()
	if f == nil {
		t.Fatal("the spool never used a temp file")
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 4*maxBuffered {
		t.Errorf("spool temp file is %d bytes after 200000 bytes streamed, though at most %d were buffered at once and the spool was drained after each round: drained space is never reused",
			st.Size(), maxBuffered)
	}
}

// TestSpoolConcurrent streams random-sized chunks through a spool with a
// small memory limit while a reader consumes them at its own pace, and
// checks the byte stream arrives whole and in order.
func TestSpoolConcurrent(t *testing.T) {
	for _, memLimit := range []int{1, 64, 4096} {
		t.Run(fmt.Sprint("memLimit=", memLimit), func(t *testing.T) {
			t.Parallel()
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 1))
			var want bytes.Buffer
			var chunks [][]byte
			for range 2000 {
				n := rng.IntN(700)
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				want.Write(p)
				chunks = append(chunks, p)
			}
			readerPauses := make([]bool, 4000)
			for i := range readerPauses {
				readerPauses[i] = rng.IntN(10) == 0
			}

			s := newSpool(memLimit, t.TempDir())
			defer s.release()
			var wg sync.WaitGroup
			wg.Add(1)
			var putErr error
			go func() {
				defer wg.Done()
				defer s.finish()
				for _, p := range chunks {
					if err := s.putData(p); err != nil {
						putErr = err
						return
					}
				}
			}()
			var got bytes.Buffer
			for i := 0; ; i++ {
				it, err := s.next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("next: %v", err)
				}
				if it.err != nil || it.file != nil {
					t.Fatalf("next = %s, want data", describe(it))
				}
				got.Write(it.data)
				if readerPauses[i%len(readerPauses)] {
					time.Sleep(50 * time.Microsecond) // a slow client, now and then
				}
			}
			wg.Wait()
			if putErr != nil {
				t.Fatalf("putData: %v", putErr)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				i := 0
				for i < min(got.Len(), want.Len()) && got.Bytes()[i] == want.Bytes()[i] {
					i++
				}
				t.Fatalf("stream differs: got %d bytes, want %d; first difference at byte %d", got.Len(), want.Len(), i)
			}
			if s.buffered() != 0 {
				t.Errorf("buffered = %d after the stream was read", s.buffered())
			}
		})
	}
}

func TestSpoolPutDataCopies(t *testing.T) {
	s := newSpool(100, t.TempDir())
	defer s.release()
	p := []byte("original")
	s.putData(p)
	copy(p, strings.Repeat("X", len(p)))
	if it := nextItem(t, s); string(it.data) != "original" {
		t.Fatalf("next = %s: putData kept a reference to its argument", describe(it))
	}
}
