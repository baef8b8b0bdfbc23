package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// envApp answers with the worker's variables that systemd's protocols use,
// as JSON: they must not reach the app. Its import takes a moment, so a
// READY=1 sent before the app is importable would show.
const envApp = `import json, os, time
time.sleep(0.5)
def application(environ, start_response):
    body = json.dumps({k: v for k, v in os.environ.items()
                       if k.startswith("LISTEN_") or k == "NOTIFY_SOCKET"}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
`

// activated is a whisk started as systemd starts a socket-activated
// service: the sockets from fd 3 on, LISTEN_PID its own pid.
type activated struct {
	cmd    *exec.Cmd
	out    *whisktest.SyncBuffer
	exited chan struct{}
}

// startActivated runs `whisk serve ARGS` with files as fds 3.. and
// LISTEN_FDS, LISTEN_FDNAMES (names) and LISTEN_PID set, plus env. LISTEN_PID
// must be whisk's own pid, which is known only once it runs, so a shell
// sets it to its own pid ($$) and execs whisk, which keeps that pid.
func startActivated(t *testing.T, files []*os.File, names string, env []string, args ...string) *activated {
	t.Helper()
	if os.Geteuid() == 0 {
		args = append(args, "--allow-root")
	}
	shArgs := append([]string{"-c", `LISTEN_PID=$$ exec "$0" serve "$@"`, whisktest.Binary(t)}, args...)
	cmd := exec.Command("/bin/sh", shArgs...)
	cmd.ExtraFiles = files
	cmd.Env = append(os.Environ(), env...)
	if len(files) > 0 {
		cmd.Env = append(cmd.Env, "LISTEN_FDS="+strconv.Itoa(len(files)), "LISTEN_FDNAMES="+names)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	a := &activated{cmd: cmd, out: &whisktest.SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = a.out, a.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(a.exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-a.exited
			t.Errorf("whisk did not stop within 30s of SIGTERM\n%s", a.out)
		}
	})
	return a
}

// wait waits for whisk to exit and returns its exit code.
func (a *activated) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-a.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("whisk still running after 60s\n%s", a.out)
	}
	return a.cmd.ProcessState.ExitCode()
}

// getVia GETs / through network/addr and returns the status and body.
func getVia(t *testing.T, a *activated, network, addr string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: clientTimeout, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
	resp, err := c.Get("http://whisk/")
	if err != nil {
		t.Fatalf("GET via %s %s: %v\n%s", network, addr, err, a.out)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET via %s %s: body: %v", network, addr, err)
	}
	return resp.StatusCode, string(b)
}

// waitServing polls until a GET through network/addr gets 200.
func waitServing(t *testing.T, a *activated, network, addr string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-a.exited:
			t.Fatalf("whisk exited: %v\n%s", a.cmd.ProcessState, a.out)
		default:
		}
		if c, err := net.DialTimeout(network, addr, time.Second); err == nil {
			c.Close()
			if code, body := getVia(t, a, network, addr); code == http.StatusOK {
				return body
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("whisk not serving on %s %s after 60s\n%s", network, addr, a.out)
	return ""
}

// listenerFile returns a listening socket's descriptor as a file (for
// ExtraFiles) and its address; the socket stays open through the file.
func listenerFile(t *testing.T, network, addr string) (*os.File, string) {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	var f *os.File
	switch l := l.(type) {
	case *net.TCPListener:
		f, err = l.File()
	case *net.UnixListener:
		l.SetUnlinkOnClose(false) // the socket file is systemd's, like the socket
		f, err = l.File()
	}
	if err != nil {
		t.Fatal(err)
	}
	l.Close() // f holds a duplicate
	t.Cleanup(func() { f.Close() })
	return f, l.Addr().String()
}

func writeEnvApp(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "envapp.py")
	if err := os.WriteFile(path, []byte(envApp), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSocketActivation: with bind unset, whisk serves every socket systemd
// passed (TCP and unix), binds nothing else, keeps the unix socket's mode
// and file, and the workers see no LISTEN_* variable.
func TestSocketActivation(t *testing.T) {
	tcpFile, tcpAddr := listenerFile(t, "tcp", "127.0.0.1:0")
	sock := filepath.Join(t.TempDir(), "app.sock")
	unixFile, _ := listenerFile(t, "unix", sock)
	if err := os.Chmod(sock, 0o660); err != nil {
		t.Fatal(err)
	}
	a := startActivated(t, []*os.File{tcpFile, unixFile}, "web:private", nil,
		"--python", whisktest.Python(t), "--processes", "1", writeEnvApp(t))
	if body := waitServing(t, a, "tcp", tcpAddr); body != "{}" {
		t.Errorf("the app sees systemd's variables: %s", body)
	}
	waitServing(t, a, "unix", sock)
	out := a.out.String()
	for _, want := range []string{"name=web", "name=private", "listening on a socket systemd passed"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "127.0.0.1:8000") {
		t.Errorf("whisk bound the default address besides systemd's sockets:\n%s", out)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	if code := a.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, a.out)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatalf("whisk removed systemd's socket file: %v", err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v after whisk ran, want 0660 (systemd's SocketMode)", fi.Mode().Perm())
	}
}

// TestSocketActivationWithBind: an explicit bind takes the inherited socket
// with its address and binds the others itself; an inherited socket no bind
// names stops whisk with an error naming it.
func TestSocketActivationWithBind(t *testing.T) {
	app := writeEnvApp(t)
	t.Run("matched", func(t *testing.T) {
		f, addr := listenerFile(t, "tcp", "127.0.0.1:0")
		other := whisktest.FreeAddr(t)
		a := startActivated(t, []*os.File{f}, "web", nil,
			"--python", whisktest.Python(t), "--processes", "1", "--bind", addr, "--bind", other, app)
		waitServing(t, a, "tcp", addr)
		waitServing(t, a, "tcp", other)
	})
	t.Run("health", func(t *testing.T) {
		// bind unset: the app takes every socket but the one health_bind names.
		app1, appAddr := listenerFile(t, "tcp", "127.0.0.1:0")
		health, healthAddr := listenerFile(t, "tcp", "127.0.0.1:0")
		a := startActivated(t, []*os.File{app1, health}, "web:health", nil,
			"--python", whisktest.Python(t), "--processes", "1", "--health-bind", healthAddr, app)
		waitServing(t, a, "tcp", appAddr)
		resp, err := http.Get("http://" + healthAddr + "/healthz")
		if err != nil {
			t.Fatalf("/healthz on the inherited health socket: %v\n%s", err, a.out)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("/healthz: status %d\n%s", resp.StatusCode, a.out)
		}
	})
	t.Run("unmatched", func(t *testing.T) {
		f, addr := listenerFile(t, "tcp", "127.0.0.1:0")
		a := startActivated(t, []*os.File{f}, "stray", nil,
			"--python", whisktest.Python(t), "--bind", whisktest.FreeAddr(t), app)
		if code := a.wait(t); code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, a.out)
		}
		out := a.out.String()
		if !strings.Contains(out, addr) || !strings.Contains(out, `"stray"`) || !strings.Contains(out, "no bind names") {
			t.Errorf("the error does not name the stray socket %s:\n%s", addr, out)
		}
	})
}

// TestSDNotify: READY=1 comes once the app is importable (a request right
// after it is served by the app, not answered 503), RELOADING=1 and READY=1
// around a reload, STOPPING=1 on SIGTERM; the workers do not see
// NOTIFY_SOCKET.
func TestSDNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	read := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	addr := whisktest.FreeAddr(t)
	a := startActivated(t, nil, "", []string{"NOTIFY_SOCKET=" + path},
		"--python", whisktest.Python(t), "--processes", "2", "--bind", addr, writeEnvApp(t))

	msg := read()
	if !strings.HasPrefix(msg, "READY=1\n") {
		t.Fatalf("first notification %q, want READY=1", msg)
	}
	code, body := getVia(t, a, "tcp", addr)
	if code != http.StatusOK {
		t.Fatalf("right after READY=1: status %d (%s), want 200 from the app", code, body)
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(body), &env); err != nil || len(env) != 0 {
		t.Errorf("the app sees %s (%v); want no NOTIFY_SOCKET or LISTEN_*", body, err)
	}

	a.cmd.Process.Signal(syscall.SIGHUP)
	if msg := read(); !strings.HasPrefix(msg, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("after SIGHUP: %q, want RELOADING=1", msg)
	}
	if msg := read(); !strings.HasPrefix(msg, "READY=1\n") || !strings.Contains(msg, "reloaded") {
		t.Fatalf("after the reload: %q, want READY=1 with STATUS=...reloaded", msg)
	}

	a.cmd.Process.Signal(syscall.SIGTERM)
	if msg := read(); !strings.HasPrefix(msg, "STOPPING=1\n") {
		t.Fatalf("after SIGTERM: %q, want STOPPING=1", msg)
	}
	if code := a.wait(t); code != 0 {
		t.Fatalf("exit %d\n%s", code, a.out)
	}
}
