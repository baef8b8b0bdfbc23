package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen opens a unixgram socket at addr and returns a function that
// reads one datagram.
func listen(t *testing.T, addr string) func() string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func() string {
		t.Helper()
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read notification: %v", err)
		}
		return string(buf[:n])
	}
}

func TestNotifyPathAndAbstract(t *testing.T) {
	for _, addr := range []string{
		filepath.Join(t.TempDir(), "notify.sock"),
		fmt.Sprintf("@whisk-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano()),
	} {
		t.Run(addr[:1], func(t *testing.T) {
			read := listen(t, addr)
			n, err := New(addr)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Ready("serving\non 1 listener"); err != nil {
				t.Fatal(err)
			}
			if got, want := read(), "READY=1\nSTATUS=serving on 1 listener\n"; got != want {
				t.Errorf("Ready sent %q, want %q", got, want)
			}
			if err := n.Reloading(""); err != nil {
				t.Fatal(err)
			}
			got := read()
			if !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") || strings.HasSuffix(got, "MONOTONIC_USEC=0\n") {
				t.Errorf("Reloading sent %q", got)
			}
			if err := n.Stopping("stopping"); err != nil {
				t.Fatal(err)
			}
			if got, want := read(), "STOPPING=1\nSTATUS=stopping\n"; got != want {
				t.Errorf("Stopping sent %q, want %q", got, want)
			}
		})
	}
}

func TestNilNotifier(t *testing.T) {
	n, err := New("")
	if err != nil || n != nil {
		t.Fatalf("New(\"\") = %v, %v; want nil, nil", n, err)
	}
	if err := n.Ready("x"); err != nil {
		t.Errorf("nil Ready: %v", err)
	}
	if err := n.Stopping(""); err != nil {
		t.Errorf("nil Stopping: %v", err)
	}
}

func TestBadSocket(t *testing.T) {
	if _, err := New("relative.sock"); err == nil {
		t.Error("New accepted a relative path")
	}
	n, err := New(filepath.Join(t.TempDir(), "nobody-listens"))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(""); err == nil || !strings.Contains(err.Error(), "nobody-listens") {
		t.Errorf("Ready to a missing socket: %v; want an error naming it", err)
	}
}

func TestFromEnvUnsets(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "notify.sock")
	read := listen(t, addr)
	t.Setenv(EnvSocket, addr)
	n, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := os.LookupEnv(EnvSocket); ok {
		t.Errorf("%s still set after FromEnv", EnvSocket)
	}
	if n.Socket() != addr {
		t.Errorf("Socket() = %q, want %q", n.Socket(), addr)
	}
	if err := n.Status("hi"); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "STATUS=hi\n" {
		t.Errorf("Status sent %q", got)
	}
}
