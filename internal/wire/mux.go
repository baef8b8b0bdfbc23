package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// StreamConn is what one request's exchange needs of a request channel:
// read the stream's frames, write frames, and bound the wait for the next
// one. A *Conn is one (a WSGI channel carries one stream at a time); so is
// a *Stream of a Mux (an ASGI channel carries many).
type StreamConn interface {
	// ReadFrame returns the stream's next frame.
	ReadFrame() (Frame, error)
	// Write writes whole frames.
	Write(bufs ...[]byte) error
	// WriteFrame writes one frame.
	WriteFrame(t Type, flags Flags, stream uint32, payload []byte) error
	// SetReadDeadline bounds ReadFrame; a zero time means no bound, and a
	// time in the past makes a blocked ReadFrame return at once with an
	// error wrapping os.ErrDeadlineExceeded.
	SetReadDeadline(t time.Time) error
}

// ErrMuxClosed is what the streams of a Mux read once its channel failed
// or was closed; the channel's own error is wrapped with it.
var ErrMuxClosed = errors.New("wire: request channel closed")

// Mux shares one request channel among many streams, as an ASGI worker's
// channel is shared (docs/protocol.md, ASGI). One goroutine reads the
// channel and queues each frame on its stream; frames for a stream that is
// not open are stale and dropped. Writes go straight to the channel, whose
// writes are serialised. Response bytes are bounded per stream by the
// credits the exchange grants, so a queue never outgrows one window.
type Mux struct {
	c *Conn

	order sync.Mutex // held from taking an id to writing its REQUEST: ids reach the worker in order

	mu      sync.Mutex
	streams map[uint32]*Stream
	next    uint32
	err     error // why the reader stopped; nil while it runs
}

// NewMux starts reading c. The Mux owns c's reads from now on; closing c
// ends it, and every open stream then reads ErrMuxClosed.
func NewMux(c *Conn) *Mux {
	m := &Mux{c: c, streams: map[uint32]*Stream{}}
	go m.read()
	return m
}

// Open returns a new stream. It has no id until Begin writes its REQUEST.
func (m *Mux) Open() *Stream {
	return &Stream{m: m, wake: make(chan struct{}, 1)}
}

// Begin gives the stream the channel's next id, writes it into frame (a
// whole REQUEST frame built for stream 0) and writes the frame. Ids reach
// the worker in increasing order, as docs/protocol.md asks, however many
// exchanges start streams at once. On a channel that already failed, the
// stream's reads fail at once.
func (s *Stream) Begin(frame []byte) error {
	m := s.m
	m.order.Lock()
	defer m.order.Unlock()
	m.mu.Lock()
	m.next++
	if m.next == 0 { // ids wrap after 2^32 streams; 0 is the channel's own
		m.next = 1
	}
	s.id = m.next
	failed := m.err
	if failed == nil {
		m.streams[s.id] = s
	}
	m.mu.Unlock()
	if failed != nil {
		s.fail(failed)
		return failed
	}
	binary.LittleEndian.PutUint32(frame[4:8], s.id)
	return m.c.Write(frame)
}

// read hands each frame to its stream until the channel fails.
func (m *Mux) read() {
	for {
		f, err := m.c.ReadFrame()
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrMuxClosed, err)
			m.mu.Lock()
			m.err = err
			streams := m.streams
			m.streams = nil
			m.mu.Unlock()
			for _, s := range streams {
				s.fail(err)
			}
			return
		}
		if !f.Owned {
			// The payload aliases the Conn's buffer, which the next read
			// reuses: the stream gets its own copy.
			buf := GetBuffer(len(f.Payload))
			copy(*buf, f.Payload)
			f.Payload, f.Owned, f.pooled = *buf, true, buf
		}
		m.mu.Lock()
		s := m.streams[f.Stream]
		m.mu.Unlock()
		if s == nil {
			drop(f)
			continue
		}
		s.push(f)
	}
}

// drop releases a frame no one will read.
func drop(f Frame) {
	if f.File != nil {
		f.File.Close()
	}
	f.Release()
}

// Stream is one stream of a Mux. It implements StreamConn; one goroutine
// reads it at a time, and any goroutine may write or set the deadline.
type Stream struct {
	m  *Mux
	id uint32

	mu       sync.Mutex
	queue    []Frame
	err      error // the channel failed
	closed   bool
	deadline time.Time
	wake     chan struct{} // room for one: a frame, an error or a new deadline
}

// ID is the stream's id on its channel (0 before Begin).
func (s *Stream) ID() uint32 { return s.id }

func (s *Stream) push(f Frame) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		drop(f)
		return
	}
	s.queue = append(s.queue, f)
	s.mu.Unlock()
	s.poke()
}

func (s *Stream) fail(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
	s.poke()
}

func (s *Stream) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ReadFrame returns the stream's next frame, waiting for it until the read
// deadline. Queued frames are returned before a channel error.
func (s *Stream) ReadFrame() (Frame, error) {
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			f := s.queue[0]
			s.queue[0] = Frame{}
			s.queue = s.queue[1:]
			s.mu.Unlock()
			return f, nil
		}
		err, deadline := s.err, s.deadline
		if s.closed && err == nil {
			err = fmt.Errorf("%w: stream %d closed", ErrMuxClosed, s.id)
		}
		s.mu.Unlock()
		if err != nil {
			return Frame{}, err
		}
		if deadline.IsZero() {
			<-s.wake
			continue
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return Frame{}, fmt.Errorf("read stream %d: %w", s.id, os.ErrDeadlineExceeded)
		}
		t := time.NewTimer(wait)
		select {
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// SetReadDeadline bounds ReadFrame, as Conn.SetReadDeadline does.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	s.mu.Unlock()
	s.poke()
	return nil
}

// Write writes whole frames to the channel.
func (s *Stream) Write(bufs ...[]byte) error { return s.m.c.Write(bufs...) }

// WriteFrame writes one frame to the channel.
func (s *Stream) WriteFrame(t Type, flags Flags, stream uint32, payload []byte) error {
	return s.m.c.WriteFrame(t, flags, stream, payload)
}

// Close ends the stream on the front's side: later frames for its id are
// stale, and frames queued but not read are released. It is safe to call
// more than once.
func (s *Stream) Close() {
	m := s.m
	m.mu.Lock()
	if m.streams != nil && m.streams[s.id] == s {
		delete(m.streams, s.id)
	}
	m.mu.Unlock()
	s.mu.Lock()
	queue := s.queue
	s.queue, s.closed = nil, true
	s.mu.Unlock()
	for _, f := range queue {
		drop(f)
	}
	s.poke()
}
