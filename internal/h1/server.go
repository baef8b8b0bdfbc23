package h1

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ArmAfter is how long a request runs before its connection is watched
// for the client going away (see the package doc).
const ArmAfter = 20 * time.Millisecond

// Server serves HTTP/1.x connections (see the package doc). Its fields are
// set before Serve and not changed afterwards.
type Server struct {
	// Handler serves every request the loop takes.
	Handler http.Handler
	// ConnContext, when set, derives each connection's base context, as
	// http.Server.ConnContext.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// ReadHeaderTimeout bounds the time a client may take to send a request
	// head once its first byte arrived (the first request's from accept).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections that stay idle that long;
	// zero means ReadHeaderTimeout.
	IdleTimeout time.Duration
	// HandOff takes the connections the loop does not serve itself; an
	// http.Server serves it.
	HandOff *Listener
	// Log receives handler panics and accept errors; nil discards them.
	Log *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	done      chan struct{} // made with the watcher by the first Serve; closed by Shutdown and Close
	closing   atomic.Bool
	date      atomic.Pointer[dateLine] // the Date field of the current second
}

// Serve accepts connections on l and serves each on its own goroutine
// until Shutdown or Close, then returns http.ErrServerClosed; any other
// accept error that is not temporary is returned.
func (s *Server) Serve(l net.Listener) error {
	if !s.track(l) {
		l.Close()
		return http.ErrServerClosed
	}
	defer s.untrack(l)
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			if temporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log().Warn("accept failed; retrying", "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := &conn{srv: s, nc: nc}
		c.res.c = c
		if !s.add(c) {
			nc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// temporary reports whether an accept error is worth retrying (out of
// descriptors, a connection aborted before accept), as net/http does.
func temporary(err error) bool {
	var t interface{ Temporary() bool }
	return !errors.Is(err, net.ErrClosed) && errors.As(err, &t) && t.Temporary()
}

func (s *Server) track(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.done == nil {
		s.listeners = make(map[net.Listener]struct{})
		s.conns = make(map[*conn]struct{})
		s.done = make(chan struct{})
		go s.watch(s.done)
	}
	s.listeners[l] = struct{}{}
	return true
}

// log returns Log, or a logger that discards when Log is nil.
func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Server) untrack(l net.Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
}

func (s *Server) add(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) remove(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// watch arms the background read of each connection whose request has run
// for ArmAfter, until done is closed.
func (s *Server) watch(done chan struct{}) {
	t := time.NewTicker(ArmAfter)
	defer t.Stop()
	var busy []*conn
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		busy = busy[:0]
		s.mu.Lock()
		for c := range s.conns {
			if c.state.Load() == stateBusy {
				busy = append(busy, c)
			}
		}
		s.mu.Unlock()
		now := time.Now()
		for _, c := range busy {
			c.arm(now)
		}
		clear(busy)
	}
}

// Shutdown stops accepting, closes idle connections, lets the others finish
// their request (answered with "Connection: close") and returns once all are
// gone, or with ctx's error when ctx ends first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error {
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
	return nil
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Swap(true) {
		return
	}
	for l := range s.listeners {
		l.Close()
	}
	if s.done != nil {
		close(s.done)
	}
}

// closeIdle closes the connections waiting for a request and reports
// whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.nc.Close()
		}
	}
	return len(s.conns) == 0
}

// Listener is a net.Listener whose connections are those a Server hands
// over; an http.Server serves it.
type Listener struct {
	addr      net.Addr
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

// NewListener returns a Listener that reports addr as its address.
func NewListener(addr net.Addr) *Listener {
	return &Listener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept returns the next connection handed over.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept return net.ErrClosed; connections handed over later
// are closed.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return nil
}

// Addr returns the address given to NewListener.
func (l *Listener) Addr() net.Addr { return l.addr }

// put hands c to Accept, or closes it when the listener is closed.
func (l *Listener) put(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}
