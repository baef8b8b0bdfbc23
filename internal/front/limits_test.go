package front

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/filerange"
)

// serveLimited serves h on a loopback listener wrapped by the limiter of lim.
func serveLimited(t *testing.T, lim Limits, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelDebug)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(newLimiter(lim).wrap(ln))
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// getOn sends GET path on c and reads the response, or fails after wait.
func getOn(c net.Conn, br *bufio.Reader, path string, wait time.Duration) (string, error) {
	c.SetDeadline(time.Now().Add(wait))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestMaxConnections(t *testing.T) {
	addr := serveLimited(t, Limits{MaxConnections: 2}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok "+r.URL.Path)
	}))
	var conns []net.Conn
	var readers []*bufio.Reader
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		readers = append(readers, bufio.NewReader(c))
	}
	for i := range 2 {
		if got, err := getOn(conns[i], readers[i], fmt.Sprintf("/%d", i), 5*time.Second); err != nil || got != fmt.Sprintf("ok /%d", i) {
			t.Fatalf("connection %d: %q, %v", i, got, err)
		}
	}
	// The third waits in the backlog: connected (the kernel completed the
	// handshake) but not accepted, so not served.
	c3, br3 := conns[2], readers[2]
	fmt.Fprintf(c3, "GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
	c3.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := br3.Peek(1); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a third connection was served with max_connections = 2 (%v)", err)
	}
	// Once one of the two closes, it is.
	conns[0].Close()
	c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br3, nil)
	if err != nil {
		t.Fatalf("the third connection was not served after one closed: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "ok /2" {
		t.Errorf("third connection got %q", b)
	}
	// The second still works.
	if got, err := getOn(conns[1], readers[1], "/again", 5*time.Second); err != nil || got != "ok /again" {
		t.Errorf("connection 1 again: %q, %v", got, err)
	}
}

// A client that does not read a big response is cut after the write
// timeout; the handler's write fails, and other clients are served.
func TestWriteTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	failed := make(chan time.Duration, 1)
	addr := serveLimited(t, Limits{WriteTimeout: timeout}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			io.WriteString(w, "small")
			return
		}
		block := bytes.Repeat([]byte("z"), 1<<20)
		start := time.Now()
		for range 512 {
			if _, err := w.Write(block); err != nil {
				failed <- time.Since(start)
				return
			}
		}
		failed <- -1
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	// Never read. Meanwhile another client is served.
	other, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if got, err := getOn(other, bufio.NewReader(other), "/small", 5*time.Second); err != nil || got != "small" {
		t.Fatalf("another client: %q, %v", got, err)
	}
	select {
	case took := <-failed:
		if took < 0 {
			t.Fatal("512 MiB written to a client that reads nothing")
		}
		if took > timeout+5*time.Second {
			t.Errorf("the write failed only after %v", took)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the handler's write did not fail")
	}
	// The connection is closed: after what was buffered, EOF or a reset.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.Copy(io.Discard, c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("reading the cut response: %v, want EOF or a reset", err)
	}
}

// ReadFrom hands the kernel writeChunk bytes per deadline and keeps a
// LimitedReader's count right, so net/http's sendfile path is unchanged.
func TestLimitedConnReadFrom(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 100000) // 1 MB: several chunks
	f, err := os.CreateTemp(t.TempDir(), "data")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(data)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(c)
		got <- b
	}()
	for _, tt := range []struct {
		name  string
		wt    time.Duration
		limit int64
	}{
		{"write timeout, limited", time.Second, 700000},
	} {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c := &limitedConn{Conn: nc, lm: &limiter{writeTimeout: tt.wt}}
		f.Seek(3, io.SeekStart)
		lr := &io.LimitedReader{R: f, N: tt.limit}
		n, err := c.ReadFrom(lr)
		if err != nil || n != tt.limit || lr.N != 0 {
			t.Errorf("%s: ReadFrom = %d, %v; N left %d", tt.name, n, err, lr.N)
		}
		c.Close()
		if b := <-got; !bytes.Equal(b, data[3:3+tt.limit]) {
			t.Errorf("%s: peer got %d bytes, not the file's", tt.name, len(b))
		}
	}
}

// The caller's own write deadline still cuts a write short.
func TestLimitedConnCallerDeadline(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := &limitedConn{Conn: a, lm: &limiter{writeTimeout: time.Hour}}
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	start := time.Now()
	_, err := c.Write([]byte("nobody reads this"))
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("Write = %v after %v, want a deadline error soon", err, time.Since(start))
	}
	c.Close()
}

// Closing a connection gives its slot back once, however often it is
// closed; closing the listener ends an Accept waiting for a slot.
func TestLimitListenerSlots(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimiter(Limits{MaxConnections: 1}).wrap(ln)
	go func() {
		for range 2 {
			if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
				defer c.Close()
			}
		}
		time.Sleep(time.Second)
	}()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Close() // a second close must not free a second slot
	c2, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Bool
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted.Store(true)
			c.Close()
		}
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	if accepted.Load() {
		t.Fatal("accepted a second connection while one is open with max_connections = 1")
	}
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept waiting for a slot did not end at Close")
	}
	c2.Close()
}

func TestNewLimiter(t *testing.T) {
	if newLimiter(Limits{}) != nil {
		t.Error("a limiter without limits")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var lm *limiter
	if lm.wrap(ln) != ln {
		t.Error("a nil limiter wraps the listener")
	}
}

func TestLookupOwner(t *testing.T) {
	root, err := user.LookupId("0")
	if err != nil {
		t.Skip("no user 0")
	}
	rootGroup, err := user.LookupGroupId("0")
	if err != nil {
		t.Skip("no group 0")
	}
	tests := []struct {
		owner    string
		uid, gid int
		err      string
	}{
		{root.Username + ":" + rootGroup.Name, 0, 0, ""},
		{root.Username, 0, -1, ""},
		{":" + rootGroup.Name, -1, 0, ""},
		{"0:0", 0, 0, ""},
		{"no-such-user-whisk:" + rootGroup.Name, 0, 0, `no user "no-such-user-whisk"`},
		{root.Username + ":no-such-group-whisk", 0, 0, `no group "no-such-group-whisk"`},
	}
	for _, tt := range tests {
		uid, gid, err := lookupOwner(tt.owner)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.owner, err, tt.err)
			}
		case err != nil || uid != tt.uid || gid != tt.gid:
			t.Errorf("%q: %d, %d, %v; want %d, %d", tt.owner, uid, gid, err, tt.uid, tt.gid)
		}
	}
}

// New gives the unix sockets it binds socket_mode and socket_owner.
func TestSocketPerms(t *testing.T) {
	dir, err := os.MkdirTemp("", "whisk-front-") // short: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	owner, wantUID, wantGID := "", os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("nobody"); err == nil {
			if g, err := user.LookupGroup("nogroup"); err == nil {
				owner = "nobody:nogroup"
				fmt.Sscan(u.Uid, &wantUID)
				fmt.Sscan(g.Gid, &wantGID)
			}
		}
	}
	tests := []struct {
		name  string
		lim   Limits
		mode  os.FileMode // 0: as the umask left it
		owner bool
		err   string
	}{
		{"mode", Limits{SocketMode: 0o660}, 0o660, false, ""},
		{"other mode", Limits{SocketMode: 0o600}, 0o600, false, ""},
		{"mode and owner", Limits{SocketMode: 0o660, SocketOwner: owner}, 0o660, owner != "", ""},
		{"no such owner", Limits{SocketOwner: "no-such-user-whisk"}, 0, false, `socket_owner "no-such-user-whisk": no user`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(dir, fmt.Sprintf("s%d.sock", i))
			s, err := New(Config{Binds: []string{"unix:" + sock}, Handler: http.NotFoundHandler(), Limits: tt.lim, Log: slog.New(slog.DiscardHandler)})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("New: %v, want an error with %q", err, tt.err)
				}
				if _, err := os.Stat(sock); !os.IsNotExist(err) {
					t.Errorf("the socket is left behind after the error: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.closeListeners()
			fi, err := os.Stat(sock)
			if err != nil {
				t.Fatal(err)
			}
			if tt.mode != 0 && fi.Mode().Perm() != tt.mode {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), tt.mode)
			}
			if tt.owner {
				st := fi.Sys().(*syscall.Stat_t)
				if int(st.Uid) != wantUID || int(st.Gid) != wantGID {
					t.Errorf("owner %d:%d, want %d:%d", st.Uid, st.Gid, wantUID, wantGID)
				}
			}
		})
	}
}

// sendRangeOver sends the whole of a file of size bytes as a
// filerange.Range through a limitedConn with the given write timeout, to a
// peer that reads with read (given a channel closed once ReadFrom has
// returned), and returns ReadFrom's count and error and what the peer got.
func sendRangeOver(t *testing.T, data []byte, timeout time.Duration, read func(c net.Conn, sent <-chan struct{}) []byte) (int64, error, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := filerange.FD(f)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	sent := make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		got <- read(c, sent)
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// Small buffers, so the sender must wait for the reader.
	nc.(*net.TCPConn).SetWriteBuffer(32 << 10)
	c := &limitedConn{Conn: nc, lm: &limiter{writeTimeout: timeout}}
	n, err := c.ReadFrom(filerange.New(f, fd, int64(len(data))))
	close(sent)
	c.Close()
	return n, err, <-got
}

// A static file (filerange.Range) goes out in one sendfile loop whose
// write deadline moves with each byte the client takes: a slow but steady
// client gets the whole file although it takes several write timeouts,
// and a client that stops reading is cut after one.
func TestLimitedConnSendsFileRange(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	const timeout = 300 * time.Millisecond
	start := time.Now()
	n, err, got := sendRangeOver(t, data, timeout, func(c net.Conn, _ <-chan struct{}) []byte {
		c.(*net.TCPConn).SetReadBuffer(32 << 10)
		var out []byte
		buf := make([]byte, 64<<10)
		for {
			time.Sleep(timeout / 6) // about 4 timeouts in all
			m, err := c.Read(buf)
			out = append(out, buf[:m]...)
			if err != nil {
				return out
			}
		}
	})
	if err != nil || n != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatalf("slow reader: ReadFrom = %d, %v; peer got %d bytes (equal: %v)", n, err, len(got), bytes.Equal(got, data))
	}
	if took := time.Since(start); took < 2*timeout {
		t.Fatalf("the slow reader took only %v: the test did not outlast the write timeout", took)
	}

	start = time.Now()
	n, err, _ = sendRangeOver(t, data, timeout, func(c net.Conn, sent <-chan struct{}) []byte {
		c.(*net.TCPConn).SetReadBuffer(32 << 10)
		<-sent // read nothing until the sender gave up
		return nil
	})
	if !errors.Is(err, os.ErrDeadlineExceeded) || n >= int64(len(data)) {
		t.Fatalf("stalled reader: ReadFrom = %d, %v; want a deadline error", n, err)
	}
	if took := time.Since(start); took > timeout+5*time.Second {
		t.Errorf("stalled reader cut only after %v", took)
	}
}
