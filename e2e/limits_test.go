package e2e

// The limits through the real binary: each gives its status (414, 431,
// 408) or closes what it must (write_timeout, max_connections), and the
// server keeps serving; unix socket listeners get socket_mode and
// socket_owner.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// rawResponse sends raw on a new connection and reads one response and
// then until the server closes the connection; closed says it did.
func rawResponse(t *testing.T, s *whisktest.Server, raw string) (resp *http.Response, body string, closed bool) {
	t.Helper()
	c := dial(t, s)
	send(t, c, raw)
	br := bufio.NewReader(c)
	resp, b := readResponse(t, s, br, http.MethodGet)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := br.ReadByte()
	return resp, string(b), err == io.EOF || isReset(err)
}

func TestLimitRequestLine(t *testing.T) {
	t.Parallel()
	s := startApp(t, "echo.py", "--processes", "1", "--threads", "2", "--max-request-line", "1K", "--access-log", "-")
	long := "/" + strings.Repeat("a", 2000)
	resp, body, closed := rawResponse(t, s, "GET "+long+" HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != http.StatusRequestURITooLong || !strings.Contains(body, "1024 bytes") {
		t.Errorf("a 2 KB request line got %d %q, want 414 naming the limit%s", resp.StatusCode, body, serverOutput(s))
	}
	if !closed {
		t.Error("the connection stays open after the 414")
	}
	// The access log has a line for it, as nginx's does.
	whisktest.WaitFor(t, 5*time.Second, "an access log line for the 414", func() bool {
		return strings.Contains(s.Output.String(), `"GET /.well-known/whisk-framing-rejected HTTP/1.1" 414 `)
	})
	// A line just within the limit is served, and so is the next request
	// on a new connection.
	within := "/" + strings.Repeat("b", 1000)
	r2, b2 := fetch(t, s, http.MethodGet, within, nil)
	mustStatus(t, s, r2, b2, http.StatusOK)
	if !strings.HasPrefix(string(b2), "GET "+within) {
		t.Errorf("body %q", truncate(b2))
	}
	r3, b3 := fetch(t, s, http.MethodGet, "/after", nil)
	mustStatus(t, s, r3, b3, http.StatusOK)
}

func TestLimitHeaderSize(t *testing.T) {
	t.Parallel()
	s := startApp(t, "echo.py", "--processes", "1", "--threads", "2", "--max-header-size", "4K")
	resp, body, closed := rawResponse(t, s, "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("h", 8000)+"\r\n\r\n")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(body, "4096 bytes") {
		t.Errorf("an 8 KB head got %d %q, want 431 naming the limit%s", resp.StatusCode, body, serverOutput(s))
	}
	if !closed {
		t.Error("the connection stays open after the 431")
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, s.URL+"/fits", nil)
	req.Header.Set("X-Fits", strings.Repeat("f", 3000))
	r2, b2 := whisktest.ReadAll(t, s.Do(t, req))
	mustStatus(t, s, r2, b2, http.StatusOK)
}

// A client uploading slower than min_body_rate gets 408 once the 10 s
// grace is over, and the worker never sees the request.
func TestLimitBodyRate(t *testing.T) {
	t.Parallel()
	s := startApp(t, "echo.py", "--processes", "1", "--threads", "1", "--min-body-rate", "1K")
	c := dial(t, s)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	send(t, c, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
	stop := make(chan struct{})
	defer close(stop)
	go func() { // one byte a second
		for {
			if _, err := c.Write([]byte("s")); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
		}
	}()
	br := bufio.NewReader(c)
	resp, body := readResponse(t, s, br, http.MethodPost)
	took := time.Since(start)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("a 1 byte/s upload got %d %q, want 408%s", resp.StatusCode, body, serverOutput(s))
	}
	if took < 9*time.Second || took > 20*time.Second {
		t.Errorf("408 after %v, want right after the 10 s grace", took)
	}
	if _, err := br.ReadByte(); err != io.EOF && !isReset(err) {
		t.Errorf("the connection stays open after the 408 (%v)", err)
	}
	// The only worker thread is free: it never had the request.
	r2, b2 := fetch(t, s, http.MethodPost, "/fast", strings.NewReader("quick"))
	mustStatus(t, s, r2, b2, http.StatusOK)
	if !strings.HasPrefix(string(b2), "POST /fast? body=5") {
		t.Errorf("body %q", truncate(b2))
	}
}

// A client that never reads a large response is cut after write_timeout,
// while other clients are served by the same single worker thread.
func TestLimitWriteTimeout(t *testing.T) {
	t.Parallel()
	s := startApp(t, "big.py", "--processes", "1", "--threads", "1", "--write-timeout", "1s")
	c := dial(t, s)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	send(t, c, "GET /big?mb=64 HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReaderSize(c, 64)
	if _, err := br.Peek(12); err != nil {
		t.Fatalf("waiting for the response to start: %v%s", err, serverOutput(s))
	}
	// Stall past the timeout; others are served meanwhile.
	for range 3 {
		resp, body := fetch(t, s, http.MethodGet, "/small", nil)
		mustStatus(t, s, resp, body, http.StatusOK)
		time.Sleep(time.Second)
	}
	// Now read: what the kernel buffered, then the cut, well short of 64 MiB.
	n, err := io.Copy(io.Discard, br)
	if err != nil && !isReset(err) {
		t.Fatalf("reading the stalled response: %v after %d bytes%s", err, n, serverOutput(s))
	}
	if n >= 64<<20 {
		t.Fatalf("the stalled client got the whole response (%d bytes); want it cut after write_timeout", n)
	}
	t.Logf("the stalled client got %d bytes before the cut", n)
	// The server, its worker and its spool are fine.
	for range 3 {
		resp, body := fetch(t, s, http.MethodGet, "/big?mb=2", nil)
		mustStatus(t, s, resp, body, http.StatusOK)
		if len(body) != 2<<20 {
			t.Fatalf("a 2 MiB response after the cut has %d bytes", len(body))
		}
	}
}

// With max_connections = 2 a third connection is not served until one of
// the first two closes.
func TestLimitMaxConnections(t *testing.T) {
	t.Parallel()
	s := startApp(t, "echo.py", "--processes", "1", "--threads", "4", "--max-connections", "2")
	get := func(c net.Conn, br *bufio.Reader, path string) error {
		send(t, c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return err
	}
	c1, c2, c3 := dial(t, s), dial(t, s), dial(t, s)
	br1, br2, br3 := bufio.NewReader(c1), bufio.NewReader(c2), bufio.NewReader(c3)
	for i, p := range []struct {
		c  net.Conn
		br *bufio.Reader
	}{{c1, br1}, {c2, br2}} {
		if err := get(p.c, p.br, fmt.Sprintf("/keep%d", i)); err != nil {
			t.Fatalf("connection %d: %v%s", i+1, err, serverOutput(s))
		}
	}
	send(t, c3, "GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
	c3.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := br3.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a third connection was served with --max-connections 2 (%v)", err)
	}
	c1.Close()
	c3.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br3, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatalf("the third connection was not served after the first closed: %v%s", err, serverOutput(s))
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "GET /third") {
		t.Errorf("third connection: %d %q", resp.StatusCode, truncate(body))
	}
	if err := get(c2, br2, "/again"); err != nil {
		t.Errorf("connection 2 again: %v", err)
	}
}

// socket_mode and socket_owner are applied to a unix socket whisk binds,
// and a client that may connect is served.
func TestLimitUnixSocketPerms(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	nogroup, err := user.LookupGroup("nogroup")
	if err != nil {
		t.Skip("no group nogroup")
	}
	dir, err := os.MkdirTemp("", "whisk-e2e-perm-") // short: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "app.sock")
	s := whisktest.StartNoWait(t, whisktest.App(t, "echo.py"), "--python", whisktest.Python(t), "--processes", "1", "--threads", "1",
		"--bind", "unix:"+sock, "--socket-mode", "0660", "--socket-owner", "nobody:nogroup")
	if !poll(60*time.Second, func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("nothing accepts on %s%s", sock, serverOutput(s))
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fmt.Sprint(st.Uid) != nobody.Uid || fmt.Sprint(st.Gid) != nogroup.Gid {
		t.Errorf("socket owner %d:%d, want nobody:nogroup (%s:%s)", st.Uid, st.Gid, nobody.Uid, nogroup.Gid)
	}
	c := &http.Client{Timeout: clientTimeout, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://app.sock/perm")
	if err != nil {
		t.Fatalf("GET over %s: %v%s", sock, err, serverOutput(s))
	}
	resp, body := whisktest.ReadAll(t, resp)
	mustStatus(t, s, resp, body, http.StatusOK)
}

// A socket_owner that names no user stops whisk at startup, naming the
// setting (the config check catches it; front.New would too).
func TestLimitUnixSocketBadOwner(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "whisk-e2e-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := whisktest.StartNoWait(t, whisktest.App(t, "echo.py"), "--python", whisktest.Python(t),
		"--bind", "unix:"+filepath.Join(dir, "app.sock"), "--socket-owner", "no-such-user-whisk")
	if code := s.Wait(t, 30*time.Second); code == 0 {
		t.Fatalf("whisk started with an unknown socket_owner%s", serverOutput(s))
	}
	if out := s.Output.String(); !strings.Contains(out, "socket_owner") && !strings.Contains(out, "--socket-owner") {
		t.Errorf("the error does not name socket_owner%s", serverOutput(s))
	}
}
