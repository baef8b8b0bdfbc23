package proc

// Tests with real Python workers: preload (the fork server) and workers
// running as another user. They run testdata/apps/preload.py, which
// reports where its worker runs.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/pyrt"
	"github.com/whiskserver/whisk/internal/whisktest"
	"github.com/whiskserver/whisk/internal/whisktest/fakeworker"
	"github.com/whiskserver/whisk/internal/wire"
)

// where is testdata/apps/preload.py's answer.
type where struct {
	PID        int      `json:"pid"`
	PPID       int      `json:"ppid"`
	ImportedIn int      `json:"imported_in"`
	PostForkIn int      `json:"post_fork_in"`
	UID        uint32   `json:"uid"`
	GID        uint32   `json:"gid"`
	Groups     []uint32 `json:"groups"`
	Home       string   `json:"home"`
	User       string   `json:"user"`
	Logname    string   `json:"logname"`
	CPUs       []int    `json:"cpus"`
}

// runtimeDir extracts the Python runtime into a directory every user can
// read (the test's temp directory is 0700).
func runtimeDir(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir() // 0755, in the test's own directory, which is 0700
	if err := os.Chmod(filepath.Dir(tmp), 0o755); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(tmp, "rt")
	dir, err := pyrt.Extract(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pySpec returns a Spec for testdata/apps/preload.py on a real interpreter,
// logging into the returned buffer.
func pySpec(t *testing.T, python string) (Spec, *whisktest.SyncBuffer) {
	t.Helper()
	logs := &whisktest.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	return Spec{
		Python:         python,
		RuntimeDir:     runtimeDir(t),
		App:            "preload:application",
		Chdir:          whisktest.App(t, ""),
		Threads:        2,
		Processes:      1,
		Window:         1 << 20,
		StartupTimeout: 20 * time.Second,
		Log:            slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, logs
}

// ask sends a GET on a real worker's channel and decodes its answer.
func ask(t *testing.T, conn *wire.Conn, stream uint32) (where, error) {
	t.Helper()
	body, err := get(t, conn, stream, "/")
	if err != nil {
		return where{}, err
	}
	var w where
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return w, nil
}

// get sends a GET for path on a real worker's channel and returns the body
// of its 200 response.
func get(t *testing.T, conn *wire.Conn, stream uint32, path string) ([]byte, error) {
	t.Helper()
	var rb wire.RequestBuilder
	rb.Begin(stream)
	for _, kv := range [][2]string{{"REQUEST_METHOD", "GET"}, {"PATH_INFO", path}, {"SCRIPT_NAME", ""}, {"QUERY_STRING", ""},
		{"SERVER_NAME", "localhost"}, {"SERVER_PORT", "80"}, {"SERVER_PROTOCOL", "HTTP/1.1"}, {"wsgi.url_scheme", "http"},
		{"HTTP_HOST", "localhost"}, {"REMOTE_ADDR", "127.0.0.1"}, {"REMOTE_PORT", "40000"}} {
		rb.Env(kv[0], kv[1])
	}
	frame, err := rb.Finish(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Write(frame); err != nil {
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	var body []byte
	for {
		f, err := conn.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f.Type {
		case wire.TypeResponse:
			head, b, err := wire.DecodeResponse(f.Payload)
			if err != nil || head.Status != "200 OK" {
				t.Fatalf("GET %s: response %+v, %v", path, head, err)
			}
			body = append(body, b...)
		case wire.TypeData:
			body = append(body, f.Payload...)
		default:
			t.Fatalf("GET %s: worker sent %s", path, f.Type)
		}
		if f.End() {
			return body, nil
		}
	}
}

// startPreload starts a fork server that must come up; the test's cleanup
// closes it and waits for its exit.
func startPreload(t *testing.T, spec Spec) *Preloader {
	t.Helper()
	pl, err := fakeSpawner().StartPreload(context.Background(), spec)
	if err != nil {
		t.Fatalf("StartPreload: %v", err)
	}
	t.Cleanup(func() {
		pl.Close()
		select {
		case <-pl.Done():
		case <-time.After(10 * time.Second):
			t.Errorf("fork server %d did not exit after Close", pl.PID)
			pl.Kill()
		}
	})
	return pl
}

// fork forks a worker that must come up; the test's cleanup closes it.
func fork(t *testing.T, pl *Preloader, spec Spec) *Process {
	t.Helper()
	p, err := pl.Fork(context.Background(), spec)
	if err != nil {
		t.Fatalf("Fork: %v", err)
	}
	closeOnCleanup(t, p)
	return p
}

// gone reports whether pid has exited (a zombie has: it waits for its
// parent, or for init after its parent died).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, after, _ := strings.Cut(string(b), ") ")
	return strings.HasPrefix(after, "Z") || strings.HasPrefix(after, "X")
}

func waitDone(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Done not closed after 10s", what)
	}
}

func TestPreloadForksWorkers(t *testing.T) {
	t.Parallel()
	spec, logs := pySpec(t, whisktest.Python(t))
	spec.PostFork = "preload:post_fork"
	cpus, err := AllowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	pl := startPreload(t, spec)
	if pl.Hello.PID != pl.PID || pl.Hello.Wire != 1 {
		t.Errorf("fork server HELLO %+v, pid %d", pl.Hello, pl.PID)
	}
	var pids []int
	for i := range 3 {
		wspec := spec
		if i == 0 { // pinned through its pid, as a spawned worker is
			wspec.Pin, wspec.CPU = true, cpus[len(cpus)-1]
		}
		p := fork(t, pl, wspec)
		if p.Hello.PID != p.PID || len(p.Channels) != spec.Threads {
			t.Fatalf("worker %d: HELLO %+v, %d channels", p.PID, p.Hello, len(p.Channels))
		}
		pids = append(pids, p.PID)
		for c, conn := range p.Channels {
			w, err := ask(t, conn, 1)
			if err != nil {
				t.Fatalf("worker %d channel %d: %v", p.PID, c, err)
			}
			if w.PID != p.PID || w.PPID != pl.PID {
				t.Errorf("worker %d answered from pid %d, parent %d; want its pid, parent the fork server %d", p.PID, w.PID, w.PPID, pl.PID)
			}
			if w.ImportedIn != pl.PID {
				t.Errorf("worker %d: app imported in %d, want once, in the fork server %d", p.PID, w.ImportedIn, pl.PID)
			}
			if w.PostForkIn != p.PID {
				t.Errorf("worker %d: post_fork ran in %d, want in the worker", p.PID, w.PostForkIn)
			}
			if i == 0 && !slices.Equal(w.CPUs, []int{wspec.CPU}) {
				t.Errorf("pinned worker runs on CPUs %v, want [%d]", w.CPUs, wspec.CPU)
			}
		}
		// What the hook printed is logged with the worker's pid.
		whisktest.WaitFor(t, 5*time.Second, "the hook's line in the log", func() bool {
			return len(fakeworker.Lines(logs, fmt.Sprintf("post_fork ran in %d", p.PID), "source=worker", fmt.Sprintf("pid=%d ", p.PID))) == 1
		})
	}
	if len(slices.Compact(slices.Sorted(slices.Values(pids)))) != 3 {
		t.Errorf("pids %v, want 3 different", pids)
	}
}

func TestPreloadPostForkFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, postFork string
		startErr       []string // StartPreload's error; nil: it starts, and Fork fails
		forkErr        []string
	}{
		{name: "raises", postFork: "preload:failing_hook",
			forkErr: []string{"post_fork hook preload:failing_hook raised RuntimeError: no database", "Traceback (most recent call last):", "preload.py", `raise RuntimeError("no database")`}},
		{name: "no such function", postFork: "preload:nope",
			startErr: []string{"post_fork 'preload:nope': 'preload' has no function 'nope'"}},
		{name: "no such module", postFork: "nomodule:hook",
			startErr: []string{"post_fork 'nomodule:hook': importing 'nomodule' failed: ModuleNotFoundError: No module named 'nomodule'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec, _ := pySpec(t, whisktest.Python(t))
			spec.PostFork = tt.postFork
			check := func(err error, want []string) {
				t.Helper()
				var he *HookError
				if !errors.As(err, &he) {
					t.Fatalf("error %v (%T), want a *HookError", err, err)
				}
				for _, w := range want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error lacks %q:\n%v", w, err)
					}
				}
			}
			if tt.startErr != nil {
				pl, err := fakeSpawner().StartPreload(context.Background(), spec)
				if err == nil {
					pl.Close()
					t.Fatal("StartPreload succeeded")
				}
				check(err, tt.startErr)
				return
			}
			pl := startPreload(t, spec)
			for range 2 { // the fork server survives a failed worker
				p, err := pl.Fork(context.Background(), spec)
				if err == nil {
					p.Close()
					t.Fatal("Fork succeeded")
				}
				check(err, tt.forkErr)
			}
			running(t, pl.Done(), "the fork server exited")
		})
	}
}

func TestPreloadImportError(t *testing.T) {
	t.Parallel()
	spec, _ := pySpec(t, whisktest.Python(t))
	spec.App = "import_raises:application"
	pl, err := fakeSpawner().StartPreload(context.Background(), spec)
	var ie *ImportError
	if !errors.As(err, &ie) {
		if pl != nil {
			pl.Close()
		}
		t.Fatalf("StartPreload = %v (%T), want an *ImportError", err, err)
	}
	if !strings.Contains(ie.Message, "import_raises") {
		t.Errorf("ImportError %q does not name the module", ie.Message)
	}
}

// A forked worker's death is seen like a spawned one's, with its status.
func TestPreloadWorkerExit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		end     func(p *Process)
		wantErr string
	}{
		{"kill", (*Process).Kill, "signal: killed"},
		{"terminate", (*Process).Terminate, "signal: terminated"},
		{"shutdown", func(p *Process) { p.Shutdown(5 * time.Second) }, ""},
		{"close", (*Process).Close, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec, _ := pySpec(t, whisktest.Python(t))
			pl := startPreload(t, spec)
			p := fork(t, pl, spec)
			other := fork(t, pl, spec)
			tt.end(p)
			waitDone(t, p.Done(), "ended worker")
			got := ""
			if p.ExitErr() != nil {
				got = p.ExitErr().Error()
			}
			if got != tt.wantErr {
				t.Errorf("ExitErr = %q, want %q", got, tt.wantErr)
			}
			if !gone(p.PID) {
				t.Errorf("worker %d still runs after Done", p.PID)
			}
			// Signals to an exited worker go nowhere, whoever has its pid now.
			p.Kill()
			if _, err := ask(t, other.Channels[0], 1); err != nil {
				t.Errorf("the other worker: %v", err)
			}
			if _, err := pl.Fork(context.Background(), spec); err != nil {
				t.Errorf("Fork after a worker's death: %v", err)
			}
		})
	}
}

// When the fork server dies, its workers die too and each one's Done
// closes, as does the Preloader's.
func TestPreloadServerDeath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		end  func(pl *Preloader)
	}{
		{"kill", (*Preloader).Kill},
		{"close", (*Preloader).Close},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec, _ := pySpec(t, whisktest.Python(t))
			pl := startPreload(t, spec)
			ps := []*Process{fork(t, pl, spec), fork(t, pl, spec)}
			tt.end(pl)
			waitDone(t, pl.Done(), "fork server")
			for _, p := range ps {
				waitDone(t, p.Done(), "worker of a dead fork server")
				if !gone(p.PID) {
					t.Errorf("worker %d still runs after Done", p.PID)
				}
				if !errors.Is(p.ExitErr(), errForkServerGone) {
					t.Errorf("worker %d: ExitErr = %v, want %v", p.PID, p.ExitErr(), errForkServerGone)
				}
			}
			if _, err := pl.Fork(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "fork worker from fork server") {
				t.Errorf("Fork from a dead fork server = %v", err)
			}
		})
	}
}

// Run as root with User set, a worker (spawned, or forked from a fork
// server that runs as that user too) has the account's ids, groups and
// login environment.
func TestWorkerRunsAsUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	python := "/usr/bin/python3" // the test interpreter may live under /root, which nobody cannot enter
	if _, err := os.Stat(python); err != nil {
		t.Skipf("no %s: %v", python, err)
	}
	tests := []struct {
		name, user, group string
		preload           bool
	}{
		{name: "spawned", user: "nobody"},
		{name: "spawned with group", user: "nobody", group: "daemon"},
		{name: "preload", user: "nobody", group: "nogroup", preload: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			acct, err := LookupAccount(tt.user, tt.group)
			if err != nil {
				t.Skipf("no account %s:%s on this machine: %v", tt.user, tt.group, err)
			}
			spec, _ := pySpec(t, python)
			spec.User = acct // HOME, USER, LOGNAME replace whisk's own
			var p *Process
			if tt.preload {
				pl := startPreload(t, spec)
				p = fork(t, pl, spec)
			} else {
				p = start(t, spec)
			}
			w, err := ask(t, p.Channels[0], 1)
			if err != nil {
				t.Fatal(err)
			}
			if w.UID != acct.UID || w.GID != acct.GID || !slices.Equal(w.Groups, acct.Groups) {
				t.Errorf("worker runs as uid %d gid %d groups %v; want %d %d %v", w.UID, w.GID, w.Groups, acct.UID, acct.GID, acct.Groups)
			}
			if w.Home != acct.Home || w.User != acct.Name || w.Logname != acct.Name {
				t.Errorf("HOME %q USER %q LOGNAME %q; want %q %q %q", w.Home, w.User, w.Logname, acct.Home, acct.Name, acct.Name)
			}
		})
	}
}

// A chdir the worker's user cannot enter is named in the error, as a
// worker reports it.
func TestStartAsUserCannotEnterChdir(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	acct, err := LookupAccount("nobody", "")
	if err != nil {
		t.Skip(err)
	}
	spec, _ := pySpec(t, "/usr/bin/python3")
	spec.User = acct
	spec.Chdir = t.TempDir()
	if err := os.Chmod(spec.Chdir, 0o700); err != nil {
		t.Fatal(err)
	}
	p, err := fakeSpawner().Start(context.Background(), spec)
	if err == nil {
		p.Close()
		t.Fatal("Start succeeded")
	}
	var ie *ImportError
	want := "cannot change to directory '" + spec.Chdir + "': Permission denied"
	if !errors.As(err, &ie) || ie.Message != want || !strings.Contains(ie.Hint, "user may enter") {
		t.Errorf("error %#v, want an *ImportError %q with a hint on the user", err, want)
	}
}

func TestLookupAccount(t *testing.T) {
	t.Parallel()
	nobody, err := LookupAccount("nobody", "")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	if nobody.Name != "nobody" || nobody.Home == "" || !slices.Contains(nobody.Groups, nobody.GID) {
		t.Errorf("nobody = %+v: want its name, home, and its primary group among its groups", nobody)
	}
	byID, err := LookupAccount(fmt.Sprint(nobody.UID), "")
	if err != nil || byID.UID != nobody.UID || byID.Name != "nobody" {
		t.Errorf("LookupAccount by uid = %+v, %v", byID, err)
	}
	withGroup, err := LookupAccount("nobody", "daemon")
	if err == nil && (withGroup.GID == nobody.GID || !slices.Contains(withGroup.Groups, withGroup.GID) || !slices.Contains(withGroup.Groups, nobody.GID)) {
		t.Errorf("nobody with group daemon = %+v: want daemon's gid, in the groups with nobody's own", withGroup)
	}
	// A numeric uid with no passwd entry (a container's arbitrary uid)
	// takes the group it is given, numeric or by name.
	const noEntry = "4242424"
	if _, err := user.LookupId(noEntry); err == nil {
		t.Fatalf("uid %s has a passwd entry here; pick another", noEntry)
	}
	for _, tt := range []struct {
		group string
		gid   uint32
	}{{"4242425", 4242425}, {"nogroup", 65534}} {
		if tt.group == "nogroup" {
			if g, err := user.LookupGroup("nogroup"); err != nil || g.Gid != "65534" {
				continue
			}
		}
		a, err := LookupAccount(noEntry, tt.group)
		if err != nil || a.UID != 4242424 || a.GID != tt.gid || !slices.Equal(a.Groups, []uint32{tt.gid}) || a.Home != "/" || a.Name != noEntry {
			t.Errorf("LookupAccount(%s, %s) = %+v, %v", noEntry, tt.group, a, err)
		}
	}
	for _, tt := range []struct{ user, group, want string }{
		{"no-such-user-whisk", "", "user \"no-such-user-whisk\": no such user: create it (useradd --system no-such-user-whisk) or fix `user`"},
		{"nobody", "no-such-group-whisk", "group \"no-such-group-whisk\": no such group: create it (groupadd --system no-such-group-whisk) or fix `group`"},
		{noEntry, "", "user \"4242424\" has no passwd entry, so no primary group: set group too (a name, or a numeric gid)"},
		{noEntry, "no-such-group-whisk", "group \"no-such-group-whisk\": no such group: create it (groupadd --system no-such-group-whisk) or fix `group`"},
	} {
		if _, err := LookupAccount(tt.user, tt.group); err == nil || err.Error() != tt.want {
			t.Errorf("LookupAccount(%q, %q) = %v, want %q", tt.user, tt.group, err, tt.want)
		}
	}
}

func TestCheckAccount(t *testing.T) {
	t.Parallel()
	www := &Account{Name: "www-data", UID: 33, GID: 33}
	root := &Account{Name: "root"}
	tests := []struct {
		name      string
		euid      int
		acct      *Account
		allowRoot bool
		want      string
	}{
		{"root without user", 0, nil, false, `whisk runs as root and group "main" sets no user: set user = "www-data" (and group) for its workers, or allow_root = true to run them as root on purpose`},
		{"root without user, allowed", 0, nil, true, ""},
		{"root with user", 0, www, false, ""},
		{"user root", 0, root, false, `group "main" sets user = "root", which is root: set an unprivileged user, or allow_root = true to run its workers as root on purpose`},
		{"user root, allowed", 0, root, true, ""},
		{"unprivileged without user", 1000, nil, false, ""},
		{"unprivileged as itself", 33, www, false, ""},
		{"unprivileged as another", 1000, www, true, `group "main" sets user = "www-data" but whisk runs as uid 1000, which cannot switch users: start whisk as root, or remove ` + "`user`"},
	}
	for _, tt := range tests {
		err := checkAccount(tt.euid, "main", tt.acct, tt.allowRoot)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: error %q, want %q", tt.name, got, tt.want)
		}
	}
}
