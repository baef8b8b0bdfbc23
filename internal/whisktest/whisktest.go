// Package whisktest holds helpers for tests that run the real whisk binary
// against real Python workers: build the binary once, find an interpreter or
// the test virtualenv, start `whisk serve` on a free loopback port and stop it.
package whisktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error

	pythonOnce sync.Once
	pythonPath string
	pythonErr  error
)

// RepoRoot returns the repository root (the directory holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("whisktest: cannot locate source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Binary builds cmd/whisk once per test process and returns the path of the
// binary. WHISK_TEST_BINARY, when set, names a prebuilt binary instead.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("WHISK_TEST_BINARY"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "whisk-test-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "whisk")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/whisk")
		cmd.Dir = RepoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/whisk: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// Python returns the interpreter tests use: WHISK_TEST_PYTHON, else python3
// on PATH, resolved to its real executable (sys.executable), so workers start
// without a launcher script such as a pyenv shim in between. It fails the
// test when neither exists.
func Python(t testing.TB) string {
	t.Helper()
	pythonOnce.Do(func() {
		p := os.Getenv("WHISK_TEST_PYTHON")
		if p == "" {
			if p, pythonErr = exec.LookPath("python3"); pythonErr != nil {
				pythonErr = errors.New("no python3 on PATH and WHISK_TEST_PYTHON unset")
				return
			}
		}
		out, err := exec.Command(p, "-c", "import sys; print(sys.executable)").Output()
		pythonPath, pythonErr = strings.TrimSpace(string(out)), err
		if pythonErr == nil && pythonPath == "" {
			pythonErr = fmt.Errorf("%s reports no sys.executable", p)
		}
	})
	if pythonErr != nil {
		t.Fatalf("whisktest: python: %v", pythonErr)
	}
	return pythonPath
}

// Venv returns the test virtualenv (with Django and Flask, made by
// scripts/testenv.sh from testdata/requirements-test.txt), named by
// WHISK_TEST_VENV. It fails the test when the variable is unset or the
// directory has no bin/python: run the README's test command, which sets it.
func Venv(t testing.TB) string {
	t.Helper()
	v := os.Getenv("WHISK_TEST_VENV")
	if v == "" {
		t.Fatal("whisktest: WHISK_TEST_VENV is unset; run `make test` (it creates the test virtualenv)")
	}
	if _, err := os.Stat(filepath.Join(v, "bin", "python")); err != nil {
		t.Fatalf("whisktest: WHISK_TEST_VENV=%s has no bin/python: %v", v, err)
	}
	return v
}

// App returns the absolute path of testdata/apps/NAME.
func App(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(RepoRoot(t), "testdata", "apps", name)
}

// handedOut holds the ports FreeAddr returned in this test process: the
// kernel may pick a just-released port again, and two addresses of one
// test (a server's bind and its admin_bind, pebble's two listeners) must
// not be the same.
var handedOut struct {
	sync.Mutex
	ports map[string]bool
}

// FreeAddr returns a loopback TCP address that was free a moment ago and
// that no earlier FreeAddr call in this process returned.
func FreeAddr(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[string]bool{}
	}
	for range 1000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if !handedOut.ports[addr] {
			handedOut.ports[addr] = true
			return addr
		}
	}
	t.Fatal("no loopback port that was not handed out already")
	return ""
}

// Server is a running `whisk serve` process.
type Server struct {
	// URL is "http://ADDR" of the first --bind.
	URL string
	// Addr is the HOST:PORT it listens on.
	Addr string
	// Cmd is the process; Stop waits for it.
	Cmd *exec.Cmd
	// Output collects the process's stdout and stderr.
	Output *SyncBuffer

	exitOnce sync.Once
	exitErr  error
	exited   chan struct{}
}

// Start runs `whisk serve` with args (the APP and any flags) plus
// `--bind ADDR` on a free loopback port, unless args already hold a --bind.
// It waits until the port accepts connections (or the process exits, which
// fails the test with its output) and stops the server when the test ends.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	s := StartNoWait(t, args...)
	s.WaitReady(t, 60*time.Second)
	return s
}

// StartNoWait is Start without waiting for readiness: for tests that expect
// the server to fail at startup, or that watch it start.
func StartNoWait(t testing.TB, args ...string) *Server {
	t.Helper()
	addr := ""
	hasBind := false
	for i, a := range args {
		if a == "--bind" && i+1 < len(args) && !strings.HasPrefix(args[i+1], "unix:") && addr == "" {
			addr = args[i+1]
			hasBind = true
		} else if a == "--bind" {
			hasBind = true
		}
	}
	full := append([]string{"serve"}, args...)
	if os.Geteuid() == 0 && !slices.ContainsFunc(args, func(a string) bool {
		return a == "--user" || strings.HasPrefix(a, "--allow-root")
	}) {
		// Tests run as root here; whisk refuses root workers unless told.
		full = append(full, "--allow-root")
	}
	if !hasBind {
		addr = FreeAddr(t)
		full = append(full, "--bind", addr)
	}
	cmd := exec.Command(Binary(t), full...)
	// If the test process dies before its cleanup runs, take the server
	// (and through its own Pdeathsig, its workers) with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := &SyncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start whisk: %v", err)
	}
	s := &Server{URL: "http://" + addr, Addr: addr, Cmd: cmd, Output: out, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		s.exitOnce.Do(func() { s.exitErr = err })
		close(s.exited)
	}()
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// WaitReady polls until the server's address accepts TCP connections.
func (s *Server) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			t.Fatalf("whisk exited before it was ready: %v\n%s", s.exitErr, s.Output.String())
		default:
		}
		if s.Addr != "" {
			c, err := net.DialTimeout("tcp", s.Addr, time.Second)
			if err == nil {
				// A dial to a port nothing listens on yet can connect to
				// itself (TCP simultaneous open, when the kernel picks
				// the same ephemeral port): that is not the server.
				self := c.LocalAddr().String() == c.RemoteAddr().String()
				c.Close()
				if !self {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("whisk not ready after %v\n%s", timeout, s.Output.String())
}

// Wait waits up to timeout for the process to exit and returns its exit
// code; it fails the test when the process is still running.
func (s *Server) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(timeout):
		t.Fatalf("whisk still running after %v\n%s", timeout, s.Output.String())
	}
	if s.Cmd.ProcessState == nil {
		return -1
	}
	return s.Cmd.ProcessState.ExitCode()
}

// Signal sends sig to the whisk process.
func (s *Server) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := s.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal whisk: %v", err)
	}
}

// Stop sends SIGTERM and waits (then SIGKILL after 30 s). It is safe to call
// more than once and after the process exited.
func (s *Server) Stop(t testing.TB) {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.Cmd.Process.Kill()
		<-s.exited
		t.Errorf("whisk did not stop within 30s of SIGTERM\n%s", s.Output.String())
	}
}

// Do sends req to the server with a fresh client that has a 30 s timeout.
func (s *Server) Do(t testing.TB, req *http.Request) *http.Response {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\nserver output:\n%s", req.Method, req.URL, err, s.Output.String())
	}
	return resp
}

// Get fetches path and returns the response with its body read.
func (s *Server) Get(t testing.TB, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ReadAll(t, s.Do(t, req))
}

// ReadAll reads and closes resp.Body.
func ReadAll(t testing.TB, resp *http.Response) (*http.Response, []byte) {
	t.Helper()
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, b.Bytes()
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WaitFor polls until cond returns true or timeout passes; it fails the test
// with msg on timeout.
func WaitFor(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out after %v: %s", timeout, msg)
}
