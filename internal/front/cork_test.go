package front

import (
	"bufio"
	"bytes"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/framing"
	"github.com/whiskserver/whisk/internal/static"
)

// The corker reaches the TCP socket under the front's wrappers and sets
// TCP_CORK; unix sockets get none.
func TestTCPCorker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	wrapped := framing.NewConn(&limitedConn{Conn: &prefaceConn{Conn: raw}, lm: &limiter{}}, framing.Options{})
	c := newTCPCorker(wrapped)
	if c == nil {
		t.Fatal("no corker for a TCP connection under the guard")
	}
	corked := func() int {
		var v int
		var gerr error
		rc, _ := raw.(*net.TCPConn).SyscallConn()
		rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK) })
		if gerr != nil {
			t.Fatal(gerr)
		}
		return v
	}
	for _, on := range []bool{true, false} {
		if err := c.SetCork(on); err != nil {
			t.Fatalf("SetCork(%v): %v", on, err)
		}
		if got, want := corked(), map[bool]int{true: 1, false: 0}[on]; got != want {
			t.Errorf("after SetCork(%v) TCP_CORK is %d", on, got)
		}
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if newTCPCorker(framing.NewConn(a, framing.Options{})) != nil {
		t.Error("a corker for a connection that is not TCP")
	}
}

// Static files served through the front come whole and at once, one after
// another on a keep-alive connection: nothing waits for the kernel's
// 200 ms cork timer.
func TestStaticCorkedThroughFront(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("whisk-static-"), 100000) // ~1.3 MB: several write chunks
	os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(dir, "small.txt"), []byte("small"), 0o644)
	files, err := static.New(dir, "/", static.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	s, err := New(Config{
		Binds:   []string{"127.0.0.1:0"},
		Handler: files,
		Limits:  Limits{WriteTimeout: 10 * time.Second},
		Log:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer s.Shutdown(t.Context())
	c, err := net.Dial("tcp", s.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, path := range []string{"/big.bin", "/small.txt", "/big.bin", "/big.bin", "/small.txt"} {
		start := time.Now()
		got, err := getOn(c, br, path, 5*time.Second)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if want := map[string]string{"/big.bin": string(big), "/small.txt": "small"}[path]; got != want {
			t.Fatalf("GET %s: %d bytes, want %d", path, len(got), len(want))
		}
		if took := time.Since(start); took > 150*time.Millisecond {
			t.Errorf("GET %s took %v: the tail waited for the cork timer?", path, took)
		}
	}
}
