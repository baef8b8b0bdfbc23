package proc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
	"github.com/whiskserver/whisk/internal/whisktest/fakeworker"
)

// fakeSpec returns a Spec that starts the fake worker with mode, logging
// into the returned buffer.
func fakeSpec(t *testing.T, mode string) (Spec, *whisktest.SyncBuffer) {
	t.Helper()
	logs := &whisktest.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	return Spec{
		Python:         fakeworker.Exe(t),
		RuntimeDir:     "/whisk-runtime",
		App:            mode,
		Threads:        2,
		Processes:      1,
		Window:         1 << 20,
		StartupTimeout: 10 * time.Second,
		Env:            fakeworker.Env(fakeworker.Track(t)),
		Log:            slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, logs
}

// start starts a fake worker that must come up; the test's cleanup closes
// it and waits for its exit.
func start(t *testing.T, spec Spec) *Process {
	t.Helper()
	p, err := fakeSpawner().Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start(%s): %v", spec.App, err)
	}
	closeOnCleanup(t, p)
	return p
}

// closeOnCleanup has the test's cleanup close p and wait for its exit.
func closeOnCleanup(t *testing.T, p *Process) {
	t.Cleanup(func() {
		p.Close()
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Errorf("worker %d did not exit after Close", p.PID)
			p.Kill()
		}
	})
}

// running fails the test with msg if done is closed.
func running(t *testing.T, done <-chan struct{}, msg string) {
	t.Helper()
	select {
	case <-done:
		t.Fatal(msg)
	default:
	}
}

func TestHelloDjango(t *testing.T) {
	t.Parallel()
	spec, _ := fakeSpec(t, "django")
	p := start(t, spec)
	want := Django{StaticURL: "static/", StaticRoot: "/srv/static"} // nulls are ""
	if p.Hello.Django == nil || *p.Hello.Django != want {
		t.Errorf("Hello.Django = %+v, want %+v", p.Hello.Django, want)
	}
}

func TestStart(t *testing.T) {
	t.Parallel()
	spec, logs := fakeSpec(t, "ok")
	spec.Threads = 3
	spec.Processes = 5
	spec.Window = 4096
	spec.Chdir = t.TempDir()
	spec.PythonPath = []string{"/pp/a", "/pp/b"}
	spec.VirtualEnv = "/venvs/site"
	spec.Env = append(spec.Env, "FAKE_EXTRA=extra value")
	p := start(t, spec)

	want := Hello{PID: p.PID, Python: "3.99.0-fake", Runtime: "fake/1", Wire: 1}
	if p.Hello != want {
		t.Errorf("Hello = %+v, want %+v", p.Hello, want)
	}
	if len(p.Channels) != 3 {
		t.Fatalf("%d channels, want 3 (Threads)", len(p.Channels))
	}
	// Every channel reaches a serving thread of this worker, which got
	// the arguments and environment of the Spec.
	for i, c := range p.Channels {
		info, err := fakeworker.Request(t, c, uint32(i+1), fmt.Sprintf("/ch%d", i))
		if err != nil {
			t.Fatalf("channel %d: %v", i, err)
		}
		if info.PID != p.PID || info.Stream != uint32(i+1) || info.PathInfo != fmt.Sprintf("/ch%d", i) {
			t.Errorf("channel %d answered pid %d stream %d path %q", i, info.PID, info.Stream, info.PathInfo)
		}
		if i > 0 {
			continue
		}
		if info.App != "ok" || info.Threads != 3 || info.Processes != 5 || info.Window != 4096 {
			t.Errorf("worker arguments: app %q threads %d processes %d window %d; want ok 3 5 4096",
				info.App, info.Threads, info.Processes, info.Window)
		}
		if info.RuntimeDir != "/whisk-runtime" {
			t.Errorf("runtime dir %q, want /whisk-runtime", info.RuntimeDir)
		}
		if info.Chdir != spec.Chdir || info.Cwd != spec.Chdir {
			t.Errorf("--chdir %q, cwd %q; want both %q", info.Chdir, info.Cwd, spec.Chdir)
		}
		if !slices.Equal(info.PythonPath, spec.PythonPath) {
			t.Errorf("--pythonpath %q, want %q", info.PythonPath, spec.PythonPath)
		}
		if info.VirtualEnv != "/venvs/site" || !strings.HasPrefix(info.Path, "/venvs/site/bin:") {
			t.Errorf("VIRTUAL_ENV %q PATH %q; want the virtualenv and its bin/ first", info.VirtualEnv, info.Path)
		}
		if info.Unbuffered != "1" || info.Extra != "extra value" {
			t.Errorf("PYTHONUNBUFFERED %q FAKE_EXTRA %q; want \"1\" and Spec.Env's value", info.Unbuffered, info.Extra)
		}
	}
	// The worker's stdout goes to the log, tagged with its pid.
	whisktest.WaitFor(t, 5*time.Second, "waiting for the worker's output in the log", func() bool {
		return len(fakeworker.Lines(logs, "fake: importing ok", "source=worker", fmt.Sprintf("pid=%d", p.PID))) == 1
	})
	if p.Uptime() <= 0 {
		t.Errorf("Uptime = %v", p.Uptime())
	}
	running(t, p.Done(), "Done closed while the worker runs")
}

func TestStartImportError(t *testing.T) {
	t.Parallel()
	spec, _ := fakeSpec(t, "fail-import")
	p, err := fakeSpawner().Start(context.Background(), spec)
	if p != nil {
		t.Errorf("Start returned a process with the error")
	}
	var ie *ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("Start = %v (%T), want an *ImportError", err, err)
	}
	want := ImportError{
		Message:   "ModuleNotFoundError: No module named 'nope'",
		Traceback: "Traceback (most recent call last):\n  File \"app.py\", line 1, in <module>\nModuleNotFoundError: No module named 'nope'\n",
		Hint:      "is the module on sys.path? try --chdir or --pythonpath",
	}
	if *ie != want {
		t.Errorf("ImportError = %#v, want %#v", *ie, want)
	}
	if got := err.Error(); got != "import app: ModuleNotFoundError: No module named 'nope'" {
		t.Errorf("Error() = %q", got)
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode    string
		timeout time.Duration
		want    []string // substrings of the error, in order
		maxTime time.Duration
	}{
		{
			mode:    "hang-import",
			timeout: 300 * time.Millisecond,
			want:    []string{"start worker for hang-import", "app not imported within the startup timeout of 300ms", "last output of the worker:", "fake: importing hang-import"},
			maxTime: 5 * time.Second,
		},
		{
			mode:    "exit-before-hello",
			timeout: 10 * time.Second,
			want: []string{
				"start worker for exit-before-hello", "worker exited before it was ready (exit status 1)",
				"last output of the worker:", "Traceback (most recent call last):",
				`File "app.py", line 3, in <module>`, "SystemExit: bye",
			},
			maxTime: 5 * time.Second,
		},
		{
			mode:    "bad-hello",
			timeout: 10 * time.Second,
			want:    []string{"start worker for bad-hello", "bad HELLO from worker"},
			maxTime: 5 * time.Second,
		},
		{
			mode:    "pong-first",
			timeout: 10 * time.Second,
			want:    []string{"worker sent PONG before HELLO"},
			maxTime: 5 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			spec, _ := fakeSpec(t, tt.mode)
			spec.StartupTimeout = tt.timeout
			began := time.Now()
			p, err := fakeSpawner().Start(context.Background(), spec)
			if err == nil {
				p.Close()
				t.Fatal("Start succeeded")
			}
			if took := time.Since(began); took > tt.maxTime {
				t.Errorf("Start took %v", took)
			}
			var ie *ImportError
			if errors.As(err, &ie) {
				t.Errorf("Start = %v, an *ImportError", err)
			}
			msg := err.Error()
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error lacks %q (in order):\n%s", w, msg)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

func TestStartContextCancelled(t *testing.T) {
	t.Parallel()
	spec, _ := fakeSpec(t, "hang-import")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	p, err := fakeSpawner().Start(ctx, spec)
	if !errors.Is(err, context.DeadlineExceeded) {
		if p != nil {
			p.Close()
		}
		t.Fatalf("Start = %v, want context.DeadlineExceeded", err)
	}
}

func TestStartNotAnInterpreter(t *testing.T) {
	t.Parallel()
	spec, _ := fakeSpec(t, "ok")
	spec.Python = filepath.Join(t.TempDir(), "no-python")
	_, err := fakeSpawner().Start(context.Background(), spec)
	if err == nil {
		t.Fatal("Start succeeded")
	}
	for _, want := range []string{"spawn " + spec.Python, "is --python", "an interpreter?"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// A worker that writes something other than a frame of this protocol on
// the control socket and stays alive must not hang Start: the handshake
// reads a protocol error, then waits for the process to exit without
// killing it or honouring StartupTimeout.
func TestStartGarbageOnControl(t *testing.T) {
	t.Parallel()
	spec, _ := fakeSpec(t, "garbage")
	spec.StartupTimeout = 500 * time.Millisecond
	pidDir := strings.TrimPrefix(spec.Env[2], fakeworker.PIDDirEnv+"=")
	type result struct {
		p   *Process
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := fakeSpawner().Start(context.Background(), spec)
		done <- result{p, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(3 * time.Second):
		t.Errorf("Start still blocked 3s after a garbage frame (StartupTimeout %v): it waits for the worker to exit and never kills it", spec.StartupTimeout)
		for _, pid := range fakeworker.PIDs(t, pidDir) {
			if fakeworker.Alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		r = <-done
	}
	if r.err == nil {
		r.p.Close()
		t.Fatal("Start succeeded after a garbage frame")
	}
	// The error names the protocol problem (wire.ErrVersion), not an exit.
	if !strings.Contains(r.err.Error(), "unsupported protocol version") {
		t.Errorf("error for a frame of version 9: %v", r.err)
	}
}

// A worker that prints a line longer than the output scanner's 1 MiB limit
// must keep running: its output is the app's business. copyOutput stops at
// the long line and closes the pipe, so the worker's next write to its
// stderr fails (SIGPIPE, or BrokenPipeError in Python).
func TestStartLongOutputLine(t *testing.T) {
	t.Parallel()
	spec, logs := fakeSpec(t, "long-line")
	p, err := fakeSpawner().Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start of a worker that printed a 1.5 MiB line: %v", err)
	}
	defer func() {
		p.Close()
		<-p.Done()
	}()
	if _, err := fakeworker.Request(t, p.Channels[0], 1, "/"); err != nil {
		t.Fatalf("request after the long line: %v", err)
	}
	whisktest.WaitFor(t, 5*time.Second, "waiting for the line after the long one in the log", func() bool {
		return len(fakeworker.Lines(logs, "fake: after the long line")) == 1
	})
}

// A failed Start must release everything it opened: here the control
// socket stays open (Start kills the worker but never closes p.control).
func TestStartFailureClosesDescriptors(t *testing.T) {
	// Not parallel: it counts this process's descriptors. GC is off so a
	// finalizer cannot hide a leak.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	spec, _ := fakeSpec(t, "fail-import")
	if _, err := fakeSpawner().Start(context.Background(), spec); err == nil {
		t.Fatal("Start succeeded") // warm up: the spawner's thread, pipes
	}
	before := countFDs(t)
	for range 5 {
		if _, err := fakeSpawner().Start(context.Background(), spec); err == nil {
			t.Fatal("Start succeeded")
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	after := countFDs(t)
	for after > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		after = countFDs(t)
	}
	if after > before {
		t.Errorf("%d descriptors open after 5 failed Starts, %d before: %d leaked", after, before, after-before)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(ents)
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode    string
		grace   time.Duration
		wantErr string // ExitErr after Shutdown; "" for a clean exit
		logs    []string
		noLogs  []string
	}{
		{mode: "ok", grace: 5 * time.Second, wantErr: "", noLogs: []string{"SIGTERM", "SIGKILL"}},
		{mode: "ignore-stop", grace: 200 * time.Millisecond, wantErr: "signal: terminated", logs: []string{"sending SIGTERM"}, noLogs: []string{"SIGKILL"}},
		// SIGKILL comes 5s (fixed) after SIGTERM: the slowest test here.
		{mode: "ignore-stop,ignore-term", grace: 200 * time.Millisecond, wantErr: "signal: killed", logs: []string{"sending SIGTERM", "sending SIGKILL"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			spec, logs := fakeSpec(t, tt.mode)
			p := start(t, spec)
			// The worker serves until told to stop.
			if _, err := fakeworker.Request(t, p.Channels[0], 1, "/"); err != nil {
				t.Fatal(err)
			}
			began := time.Now()
			p.Shutdown(tt.grace)
			took := time.Since(began)
			select {
			case <-p.Done():
			default:
				t.Fatal("Shutdown returned before the process exited")
			}
			got := ""
			if p.ExitErr() != nil {
				got = p.ExitErr().Error()
			}
			if got != tt.wantErr {
				t.Errorf("ExitErr = %q, want %q", got, tt.wantErr)
			}
			if tt.wantErr == "" && took >= tt.grace {
				t.Errorf("a worker that honours STOP took %v to stop", took)
			}
			if tt.wantErr != "" && took < tt.grace {
				t.Errorf("Shutdown escalated after %v, before the grace of %v", took, tt.grace)
			}
			if len(fakeworker.Lines(logs, "fake: STOP", fmt.Sprintf("pid=%d", p.PID))) != 1 {
				t.Errorf("the worker did not report one STOP")
			}
			for _, l := range tt.logs {
				if len(fakeworker.Lines(logs, l, "level=WARN", fmt.Sprintf("pid=%d", p.PID))) != 1 {
					t.Errorf("no warning %q in the log", l)
				}
			}
			for _, l := range tt.noLogs {
				if len(fakeworker.Lines(logs, l)) != 0 {
					t.Errorf("unexpected %q in the log", l)
				}
			}
		})
	}
}

// Close is all a worker needs to exit: its control socket reaches EOF.
func TestCloseIdempotent(t *testing.T) {
	t.Parallel()
	spec, _ := fakeSpec(t, "ok")
	p := start(t, spec)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Close()
		}()
	}
	wg.Wait()
	p.Close()
	waitDone(t, p.Done(), "worker after Close")
	if p.ExitErr() != nil {
		t.Errorf("ExitErr = %v, want a clean exit on control EOF", p.ExitErr())
	}
	for i, c := range p.Channels {
		if _, err := c.ReadFrame(); err == nil {
			t.Errorf("channel %d still readable after Close", i)
		}
	}
	// Stopping a closed, exited worker returns at once.
	began := time.Now()
	p.Shutdown(time.Minute)
	if took := time.Since(began); took > time.Second {
		t.Errorf("Shutdown of an exited worker took %v", took)
	}
	p.Kill()
	p.Terminate()
}

func TestWorkerCrashSeenByDone(t *testing.T) {
	t.Parallel()
	spec, _ := fakeSpec(t, "ok")
	p := start(t, spec)
	if _, err := fakeworker.Request(t, p.Channels[0], 1, "/crash"); err == nil {
		t.Fatal("a crashing request got a response")
	}
	waitDone(t, p.Done(), "worker that crashed")
	if p.ExitErr() == nil || p.ExitErr().Error() != "exit status 1" {
		t.Errorf("ExitErr = %v, want exit status 1", p.ExitErr())
	}
}

func TestWorkerEnv(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	tests := []struct {
		name      string
		spec      Spec
		unsetPath bool
		want      []string // the tail of the environment, in order
		wantPath  string
	}{
		{
			name:     "plain",
			spec:     Spec{Env: []string{"A=1", "PYTHONUNBUFFERED=0"}},
			want:     []string{"PYTHONUNBUFFERED=1", "A=1", "PYTHONUNBUFFERED=0"},
			wantPath: "/usr/bin:/bin",
		},
		{
			name:     "virtualenv",
			spec:     Spec{VirtualEnv: "/srv/venv", Env: []string{"B=2"}},
			want:     []string{"VIRTUAL_ENV=/srv/venv", "PYTHONUNBUFFERED=1", "B=2"},
			wantPath: "/srv/venv/bin:/usr/bin:/bin",
		},
		{
			name:     "user",
			spec:     Spec{User: &Account{Name: "blog", Home: "/srv/blog"}, Env: []string{"HOME=/override"}},
			want:     []string{"PYTHONUNBUFFERED=1", "HOME=/srv/blog", "USER=blog", "LOGNAME=blog", "HOME=/override"},
			wantPath: "/usr/bin:/bin",
		},
		{
			name:      "virtualenv without PATH",
			spec:      Spec{VirtualEnv: "/srv/venv"},
			unsetPath: true,
			want:      []string{"PATH=/srv/venv/bin", "VIRTUAL_ENV=/srv/venv", "PYTHONUNBUFFERED=1"},
			wantPath:  "/srv/venv/bin",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.unsetPath {
				t.Setenv("PATH", "")
				os.Unsetenv("PATH")
			}
			env := workerEnv(tt.spec)
			if len(env) < len(tt.want) || !slices.Equal(env[len(env)-len(tt.want):], tt.want) {
				t.Errorf("environment ends with %q, want %q", env[max(0, len(env)-len(tt.want)):], tt.want)
			}
			var paths []string
			for _, kv := range env {
				if p, ok := strings.CutPrefix(kv, "PATH="); ok {
					paths = append(paths, p)
				}
			}
			if len(paths) != 1 || paths[0] != tt.wantPath {
				t.Errorf("PATH entries %q, want one %q", paths, tt.wantPath)
			}
		})
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 3}
	if tb.String() != "" {
		t.Errorf("empty tail = %q, want \"\"", tb.String())
	}
	for i := range 5 {
		tb.add(fmt.Sprint("line ", i))
	}
	want := "\nlast output of the worker:\n  line 2\n  line 3\n  line 4"
	if got := tb.String(); got != want {
		t.Errorf("tail = %q, want %q", got, want)
	}
}
