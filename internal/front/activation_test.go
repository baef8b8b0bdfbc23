package front

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMatches(t *testing.T) {
	tcp := func(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }
	unixAddr := func(p string) net.Addr { return &net.UnixAddr{Name: p, Net: "unix"} }
	for _, c := range []struct {
		bind string
		addr net.Addr
		want bool
	}{
		{"127.0.0.1:8000", tcp("127.0.0.1", 8000), true},
		{"127.0.0.1:8000", tcp("127.0.0.1", 8001), false},
		{"127.0.0.2:8000", tcp("127.0.0.1", 8000), false},
		{"0.0.0.0:8000", tcp("::", 8000), true}, // ListenStream=8000 is dual-stack [::]
		{"[::]:8000", tcp("0.0.0.0", 8000), true},
		{":8000", tcp("::", 8000), true},
		{"0.0.0.0:8000", tcp("127.0.0.1", 8000), false},
		{"[::1]:8000", tcp("::1", 8000), true},
		{"localhost:8000", tcp("127.0.0.1", 8000), true},
		{"127.0.0.1:http", tcp("127.0.0.1", 80), true},
		{"unix:/run/whisk/app.sock", unixAddr("/run/whisk/app.sock"), true},
		{"unix:/run/whisk//app.sock", unixAddr("/run/whisk/app.sock"), true},
		{"unix:/run/whisk/other.sock", unixAddr("/run/whisk/app.sock"), false},
		{"unix:@whisk", unixAddr("@whisk"), true},
		{"unix:/run/whisk.sock", tcp("127.0.0.1", 8000), false},
		{"127.0.0.1:8000", unixAddr("/run/whisk.sock"), false},
		{"nonsense", tcp("127.0.0.1", 8000), false},
	} {
		if got := Matches(c.bind, c.addr); got != c.want {
			t.Errorf("Matches(%q, %v) = %v, want %v", c.bind, c.addr, got, c.want)
		}
	}
}

// passFDs duplicates the listeners' descriptors to consecutive numbers, as
// systemd passes them from 3 on, and returns the first.
func passFDs(t *testing.T, files ...*os.File) int {
	t.Helper()
	first := -1
	for i, f := range files {
		want := 0
		if first >= 0 {
			want = first + i
		} else {
			want = 400
		}
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, want)
		if err != nil {
			t.Fatal(err)
		}
		if first < 0 {
			first = fd
		} else if fd != first+i {
			unix.Close(fd)
			t.Skipf("descriptor %d is taken; cannot make consecutive descriptors", first+i)
		}
	}
	return first
}

func tcpFile(t *testing.T) (*os.File, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, l.Addr().String()
}

func unixFile(t *testing.T, path string) *os.File {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	defer l.Close()
	f, err := l.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestInherit(t *testing.T) {
	tf, addr := tcpFile(t)
	sock := filepath.Join(t.TempDir(), "app.sock")
	uf := unixFile(t, sock)
	first := passFDs(t, tf, uf)
	pid := strconv.Itoa(os.Getpid())

	if in, err := inherit("1", "2", "", os.Getpid(), first); in != nil || err != nil {
		t.Fatalf("LISTEN_PID of another process: got %v, %v; want nil, nil", in, err)
	}
	in, err := inherit(pid, "2", "web:private", os.Getpid(), first)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if in.Len() != 2 {
		t.Fatalf("Len = %d, want 2", in.Len())
	}
	if _, err := unix.FcntlInt(uintptr(first), unix.F_GETFD, 0); err == nil {
		t.Errorf("fd %d still open: the listener should hold its own close-on-exec duplicate", first)
	}
	if _, ok := in.Take("127.0.0.1:1"); ok {
		t.Error("Take of an address no socket has succeeded")
	}
	l, ok := in.Take("unix:" + sock)
	if !ok {
		t.Fatal("Take of the unix socket failed")
	}
	if _, ok := in.Take("unix:" + sock); ok {
		t.Error("a socket was handed out twice")
	}
	err = in.Unused()
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), `"web"`) {
		t.Errorf("Unused = %v; want an error naming %s and its name web", err, addr)
	}
	l.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("closing an inherited unix socket removed its file: %v", err)
	}
}

func TestInheritRejectsConnections(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[1])
	defer unix.Close(fds[0])
	_, err = inherit(strconv.Itoa(os.Getpid()), "1", "", os.Getpid(), fds[0])
	if err == nil || !strings.Contains(err.Error(), "not a listening socket") {
		t.Errorf("inherit of a connected socket: %v; want 'not a listening socket'", err)
	}
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = inherit(strconv.Itoa(os.Getpid()), "1", "", os.Getpid(), int(f.Fd()))
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("inherit of a file: %v; want 'not a socket'", err)
	}
}

func TestActivationUnsets(t *testing.T) {
	t.Setenv(envListenPID, "1")
	t.Setenv(envListenFDs, "1")
	t.Setenv(envListenFDNames, "x")
	in, err := Activation()
	if in != nil || err != nil {
		t.Fatalf("Activation for another pid = %v, %v", in, err)
	}
	for _, k := range []string{envListenPID, envListenFDs, envListenFDNames} {
		if _, ok := os.LookupEnv(k); ok {
			t.Errorf("%s still set", k)
		}
	}
}

func get(t *testing.T, network, addr string) string {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{Dial: func(string, string) (net.Conn, error) { return net.Dial(network, addr) }}}
	resp, err := c.Get("http://whisk/")
	if err != nil {
		t.Fatalf("GET via %s %s: %v", network, addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestServeInherited(t *testing.T) {
	tf, addr := tcpFile(t)
	admin, adminAddr := tcpFile(t)
	sock := filepath.Join(t.TempDir(), "app.sock")
	uf := unixFile(t, sock)
	if err := os.Chmod(sock, 0o660); err != nil {
		t.Fatal(err)
	}
	first := passFDs(t, tf, uf, admin)
	in, err := inherit(strconv.Itoa(os.Getpid()), "3", "", os.Getpid(), first)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	s, err := New(Config{
		Binds:          []string{"127.0.0.1:8000"}, // the default: not bound
		Inherited:      in,
		ServeInherited: true,
		Reserved:       []string{adminAddr},
		Handler:        handler,
		Log:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(s.Addrs()); got != 2 {
		t.Fatalf("serving %d listeners, want 2: %v", got, s.Addrs())
	}
	l, ok := in.Take(adminAddr)
	if !ok {
		t.Fatal("the reserved socket was taken by the front")
	}
	l.Close()
	if err := in.Unused(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	if got := get(t, "tcp", addr); got != "hello" {
		t.Errorf("tcp: %q", got)
	}
	if got := get(t, "unix", sock); got != "hello" {
		t.Errorf("unix: %q", got)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatalf("the socket file of an inherited socket is gone after shutdown: %v", err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660 as systemd set it", fi.Mode().Perm())
	}
}

func TestBindTakesInherited(t *testing.T) {
	tf, addr := tcpFile(t)
	first := passFDs(t, tf)
	in, err := inherit(strconv.Itoa(os.Getpid()), "1", "", os.Getpid(), first)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	s, err := New(Config{
		Binds:     []string{addr, "127.0.0.1:0"},
		Inherited: in,
		Handler:   http.NotFoundHandler(),
		Log:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	if err := in.Unused(); err != nil {
		t.Errorf("the bind did not take its inherited socket: %v", err)
	}
	if got := s.Addrs(); len(got) != 2 || got[0].String() != addr {
		t.Errorf("Addrs = %v, want %s first", got, addr)
	}
}
