package wire

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// Len is the number of open streams (for the tests).
func (m *Mux) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.streams)
}

// muxPair returns a Mux over one end of a socketpair and a Conn on the
// other end, playing the worker.
func muxPair(t *testing.T) (*Mux, *Conn) {
	t.Helper()
	front, peer, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	worker, err := FileConn(peer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close(); worker.Close() })
	return NewMux(front), worker
}

// open starts a stream on m with a minimal REQUEST.
func open(t *testing.T, m *Mux) *Stream {
	t.Helper()
	s := m.Open()
	if err := s.Begin(AppendFrame(nil, TypeRequest, 0, 0, []byte{0, 0, 0, 0})); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMuxRoutesFramesByStream(t *testing.T) {
	m, worker := muxPair(t)
	streams := []*Stream{open(t, m), open(t, m), open(t, m)}
	for i, s := range streams {
		if s.ID() != uint32(i+1) {
			t.Fatalf("stream %d has id %d, want %d", i, s.ID(), i+1)
		}
	}
	// The worker answers out of order, interleaving the streams, with a
	// payload larger than the Conn's read buffer for one of them.
	big := bytes.Repeat([]byte("x"), readBufSize+100)
	var out []byte
	for round := range 3 {
		for _, i := range []int{2, 0, 1} {
			payload := fmt.Appendf(nil, "s%d r%d", streams[i].ID(), round)
			if i == 1 && round == 1 {
				payload = big
			}
			out = AppendFrame(out, TypeData, 0, streams[i].ID(), payload)
		}
	}
	if err := worker.Write(out); err != nil {
		t.Fatal(err)
	}
	for i, s := range streams {
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		for round := range 3 {
			f, err := s.ReadFrame()
			if err != nil {
				t.Fatalf("stream %d round %d: %v", i, round, err)
			}
			want := fmt.Appendf(nil, "s%d r%d", s.ID(), round)
			if i == 1 && round == 1 {
				want = big
			}
			if f.Stream != s.ID() || !bytes.Equal(f.Payload, want) {
				t.Fatalf("stream %d round %d: got stream %d payload %.20q, want %.20q", i, round, f.Stream, f.Payload, want)
			}
			if !f.Owned {
				t.Fatalf("a muxed frame must own its payload")
			}
			f.Release()
		}
	}
}

// TestMuxIDsInOrder: however many goroutines start streams at once, their
// REQUEST frames reach the worker with increasing ids.
func TestMuxIDsInOrder(t *testing.T) {
	m, worker := muxPair(t)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 20 {
				open(t, m)
			}
		})
	}
	last := uint32(0)
	for range 16 * 20 {
		f, err := worker.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f.Type != TypeRequest || f.Stream != last+1 {
			t.Fatalf("%s for stream %d after stream %d", f.Type, f.Stream, last)
		}
		last = f.Stream
	}
	wg.Wait()
}

func TestMuxWritesReachTheWorker(t *testing.T) {
	m, worker := muxPair(t)
	var wg sync.WaitGroup
	for range 8 {
		s := open(t, m)
		wg.Go(func() {
			for i := range 50 {
				if err := s.WriteFrame(TypeData, 0, s.ID(), fmt.Appendf(nil, "%d", i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	next := map[uint32]int{}
	for range 8 * 50 {
		f, err := worker.ReadFrame()
		for err == nil && f.Type == TypeRequest {
			f, err = worker.ReadFrame()
		}
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(f.Payload), fmt.Sprint(next[f.Stream]); got != want {
			t.Fatalf("stream %d: frame %q, want %q (frames interleaved or reordered)", f.Stream, got, want)
		}
		next[f.Stream]++
	}
	wg.Wait()
}

func TestMuxDeadline(t *testing.T) {
	m, worker := muxPair(t)
	s := open(t, m)
	s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := s.ReadFrame(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	// A deadline moved into the past wakes a blocked reader.
	s.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := s.ReadFrame(); done <- err }()
	time.Sleep(10 * time.Millisecond)
	s.SetReadDeadline(time.Unix(1, 0))
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a deadline in the past did not wake the reader")
	}
	// Nothing was lost: a frame sent now is read.
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := worker.WriteFrame(TypeCredit, 0, s.ID(), []byte{1, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if f, err := s.ReadFrame(); err != nil || f.Type != TypeCredit {
		t.Fatalf("got %v %v, want the CREDIT", f.Type, err)
	}
}

func TestMuxStaleAndClosedStreams(t *testing.T) {
	m, worker := muxPair(t)
	a, b := open(t, m), open(t, m)
	// Queued but unread frames of a closed stream are dropped, and so are
	// frames that arrive after it closed or for ids never opened.
	if err := worker.Write(AppendFrame(nil, TypeData, 0, a.ID(), []byte("early"))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	a.Close()
	a.Close() // twice is fine
	if _, err := a.ReadFrame(); !errors.Is(err, ErrMuxClosed) {
		t.Fatalf("read of a closed stream: %v, want ErrMuxClosed", err)
	}
	out := AppendFrame(nil, TypeData, 0, a.ID(), []byte("late"))
	out = AppendFrame(out, TypeData, 0, 99, []byte("unknown"))
	out = AppendFrame(out, TypeData, FlagEnd, b.ID(), []byte("b"))
	if err := worker.Write(out); err != nil {
		t.Fatal(err)
	}
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := b.ReadFrame()
	if err != nil || string(f.Payload) != "b" || !f.End() {
		t.Fatalf("stream b: %q %v", f.Payload, err)
	}
	if n := m.Len(); n != 1 {
		t.Fatalf("%d streams open, want 1", n)
	}
}

func TestMuxChannelFailureReachesEveryStream(t *testing.T) {
	m, worker := muxPair(t)
	streams := []*Stream{open(t, m), open(t, m)}
	// A frame queued before the failure is still read first.
	if err := worker.Write(AppendFrame(nil, TypeData, 0, streams[0].ID(), []byte("kept"))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	worker.Close()
	if f, err := streams[0].ReadFrame(); err != nil || string(f.Payload) != "kept" {
		t.Fatalf("got %q %v, want the frame sent before the failure", f.Payload, err)
	}
	for i, s := range streams {
		done := make(chan error, 1)
		go func() { _, err := s.ReadFrame(); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrMuxClosed) {
				t.Fatalf("stream %d: %v, want ErrMuxClosed", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("stream %d: the channel's failure did not reach its reader", i)
		}
	}
	late := m.Open()
	if err := late.Begin(AppendFrame(nil, TypeRequest, 0, 0, nil)); !errors.Is(err, ErrMuxClosed) {
		t.Fatalf("Begin after the failure: %v, want ErrMuxClosed", err)
	}
	if _, err := late.ReadFrame(); !errors.Is(err, ErrMuxClosed) {
		t.Fatalf("a stream opened after the failure: %v, want ErrMuxClosed", err)
	}
}
