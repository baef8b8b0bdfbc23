// Package fakeworker is the fake Python worker of the proc and group tests:
// the test binary itself, re-executed as the "python" of a proc.Spec
// (matryoshka style, as in net/http/cgi). A test package's TestMain turns the
// process into a worker when WorkerEnv is "1" in its environment:
//
//	func TestMain(m *testing.M) {
//		if os.Getenv(fakeworker.WorkerEnv) == "1" {
//			os.Exit(fakeworker.Main(os.Args[1:]))
//		}
//		os.Exit(fakeworker.Run(m))
//	}
//
// The fake speaks the control protocol of docs/protocol.md and serves REQUEST
// frames, answering each with an Info as JSON. What it does is scripted by
// the Spec's App (its --app): comma-separated words, or "file:PATH" to read
// them from PATH at each start (so a test can change what the next spawned
// worker does).
//
//	ok                 HELLO, then serve (the default)
//	fail-import        send FAILED and exit 3
//	only-first         fail-import, except for the first fake of the pid directory
//	hang-import        never send HELLO (exit on control EOF)
//	exit-before-hello  print a traceback-like output and exit 1
//	exit-after-hello   send HELLO, then exit 1
//	garbage            send a frame of protocol version 9 instead of HELLO, then wait
//	bad-hello          send a HELLO whose payload is not JSON
//	pong-first         send PONG before HELLO
//	long-line          print one 1.5 MiB line before HELLO
//	django             HELLO reports Django settings: STATIC_URL "static/",
//	                   STATIC_ROOT "/srv/static", no MEDIA_URL nor MEDIA_ROOT
//	import-delay=DUR   wait DUR before HELLO
//	crash-on-request   exit 1 on the first REQUEST (PATH_INFO /crash does too)
//	ignore-stop        ignore STOP
//	ignore-term        ignore SIGTERM
//	stop-delay=DUR     on STOP, keep reading the control channel for DUR, then exit 0
//
// The package also holds the helpers the tests use to drive fakes and to
// check that none outlives its test.
//
// It must not import internal/proc or internal/group: their in-package tests
// import it.
package fakeworker

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
	"github.com/whiskserver/whisk/internal/wire"
)

const (
	// WorkerEnv names the environment variable that, set to "1", makes the
	// test binary run as the fake worker.
	WorkerEnv = "WHISK_FAKE_WORKER"
	// PIDDirEnv names the environment variable holding a directory in which
	// the fake creates a file named by its pid (see Track).
	PIDDirEnv = "WHISK_FAKE_PIDDIR"
	// GORACE is an environment entry that keeps a -race fake from sleeping
	// 1s at exit.
	GORACE = "GORACE=atexit_sleep_ms=0"
)

// Env returns the environment entries a Spec needs to start the fake
// worker, recording its pid in pidDir (from Track): WorkerEnv, GORACE and
// PIDDirEnv, in that order.
func Env(pidDir string) []string {
	return []string{WorkerEnv + "=1", GORACE, PIDDirEnv + "=" + pidDir}
}

// TestMain is the TestMain of a test binary whose tests run fake workers:
// re-executed as a worker (WorkerEnv set) it is the worker; otherwise it
// runs the tests (Run). It does not return.
func TestMain(m *testing.M) {
	if os.Getenv(WorkerEnv) == "1" {
		os.Exit(Main(os.Args[1:]))
	}
	os.Exit(Run(m))
}

// Run runs the tests of m, then, if they passed, CheckGoroutines. It returns
// the exit code for os.Exit.
func Run(m *testing.M) int {
	code := m.Run()
	if code == 0 {
		code = CheckGoroutines()
	}
	return code
}

// script is the behaviour --app asks for (see the package documentation).
type script struct {
	words      map[string]bool
	importWait time.Duration
	stopDelay  time.Duration
}

func parseScript(app string) (script, error) {
	if path, ok := strings.CutPrefix(app, "file:"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return script{}, err
		}
		app = strings.TrimSpace(string(b))
	}
	m := script{words: map[string]bool{}}
	for _, w := range strings.Split(app, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(w), "=")
		switch k {
		case "import-delay", "stop-delay":
			d, err := time.ParseDuration(v)
			if err != nil {
				return script{}, fmt.Errorf("%s: %w", k, err)
			}
			if k == "import-delay" {
				m.importWait = d
			} else {
				m.stopDelay = d
			}
		default:
			m.words[k] = true
		}
	}
	return m, nil
}

// Info is the body of the fake worker's response to every request: what
// it was started with, and the stream and PATH_INFO of the request.
type Info struct {
	PID      int    `json:"pid"`       // the fake's process id
	Stream   uint32 `json:"stream"`    // the request's stream
	PathInfo string `json:"path_info"` // the request's PATH_INFO
	// The worker command line: its --app, --threads, --processes,
	// --window, --chdir and --pythonpath (each one given), and the runtime
	// directory argument.
	App        string   `json:"app"`
	Threads    int      `json:"threads"`
	Processes  int      `json:"processes"`
	Window     int      `json:"window"`
	Chdir      string   `json:"chdir"`
	PythonPath []string `json:"pythonpath"`
	RuntimeDir string   `json:"runtime_dir"`
	// The process's working directory and environment: VIRTUAL_ENV, PATH,
	// PYTHONUNBUFFERED and FAKE_EXTRA (a variable a test may set in
	// Spec.Env).
	Cwd        string `json:"cwd"`
	VirtualEnv string `json:"virtual_env"`
	Path       string `json:"path"`
	Unbuffered string `json:"unbuffered"`
	Extra      string `json:"extra"`
}

type pathList []string

func (l *pathList) String() string     { return strings.Join(*l, ":") }
func (l *pathList) Set(v string) error { *l = append(*l, v); return nil }

// Main runs the fake worker with args (os.Args[1:]: the worker command line
// proc builds, "-u -c BOOTSTRAP RUNTIME_DIR --control-fd 3 --app APP ...")
// and returns its exit code. A TestMain calls it, then exits with its result,
// when WorkerEnv is "1" in the environment.
func Main(args []string) int {
	say := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "fake: "+format+"\n", a...) }
	// python -u -c BOOTSTRAP RUNTIME_DIR --control-fd 3 --app APP ...
	if len(args) < 4 || args[0] != "-u" || args[1] != "-c" || !strings.Contains(args[2], "whisk_worker") {
		say("unexpected arguments %q", args)
		return 2
	}
	info := Info{PID: os.Getpid(), RuntimeDir: args[3]}
	fs := flag.NewFlagSet("fake", flag.ContinueOnError)
	controlFD := fs.Int("control-fd", -1, "")
	fs.StringVar(&info.App, "app", "", "")
	fs.IntVar(&info.Threads, "threads", 0, "")
	fs.IntVar(&info.Processes, "processes", 0, "")
	fs.IntVar(&info.Window, "window", 0, "")
	fs.StringVar(&info.Chdir, "chdir", "", "")
	fs.Var((*pathList)(&info.PythonPath), "pythonpath", "")
	if err := fs.Parse(args[4:]); err != nil || *controlFD != 3 {
		say("bad arguments %q (control fd %d): %v", args[4:], *controlFD, err)
		return 2
	}
	info.Cwd, _ = os.Getwd()
	info.VirtualEnv = os.Getenv("VIRTUAL_ENV")
	info.Path = os.Getenv("PATH")
	info.Unbuffered = os.Getenv("PYTHONUNBUFFERED")
	info.Extra = os.Getenv("FAKE_EXTRA")
	dir := os.Getenv(PIDDirEnv)
	if dir != "" {
		os.WriteFile(filepath.Join(dir, fmt.Sprint(os.Getpid())), nil, 0o644)
	}
	mode, err := parseScript(info.App)
	if err != nil {
		say("bad mode: %v", err)
		return 2
	}
	if mode.words["only-first"] {
		first, err := os.OpenFile(filepath.Join(dir, "first"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			mode.words["fail-import"] = true
		} else {
			first.Close()
		}
	}
	if mode.words["ignore-term"] {
		signal.Ignore(syscall.SIGTERM)
	}
	ctl, err := wire.FileConn(os.NewFile(3, "control"))
	if err != nil {
		say("control: %v", err)
		return 2
	}
	fmt.Println("fake: importing", info.App) // stdout, as an app's print would
	waitEOF := func() int {
		for {
			if _, err := ctl.ReadFrame(); err != nil {
				return 0
			}
		}
	}

	switch {
	case mode.words["fail-import"]:
		msg, _ := json.Marshal(map[string]string{
			"error":     "ModuleNotFoundError: No module named 'nope'",
			"traceback": "Traceback (most recent call last):\n  File \"app.py\", line 1, in <module>\nModuleNotFoundError: No module named 'nope'\n",
			"hint":      "is the module on sys.path? try --chdir or --pythonpath",
		})
		ctl.Write(wire.AppendFrame(nil, wire.TypeFailed, 0, 0, msg))
		return 3
	case mode.words["hang-import"]:
		return waitEOF()
	case mode.words["exit-before-hello"]:
		fmt.Fprintln(os.Stderr, "Traceback (most recent call last):")
		fmt.Fprintln(os.Stderr, "  File \"app.py\", line 3, in <module>")
		fmt.Fprintln(os.Stderr, "SystemExit: bye")
		return 1
	case mode.words["garbage"]:
		ctl.Write([]byte{9, byte(wire.TypeHello), 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, '{', '}'})
		return waitEOF()
	case mode.words["bad-hello"]:
		ctl.Write(wire.AppendFrame(nil, wire.TypeHello, 0, 0, []byte("{not json")))
		return waitEOF()
	case mode.words["pong-first"]:
		ctl.Write(wire.AppendFrame(nil, wire.TypePong, 0, 0, nil))
		return waitEOF()
	}
	if mode.words["long-line"] {
		os.Stderr.Write(append(bytes.Repeat([]byte("x"), 3<<19), '\n'))
		say("after the long line")
	}
	if mode.importWait > 0 {
		time.Sleep(mode.importWait) // the fake app's import time, not a test assertion
	}
	msg := map[string]any{"pid": os.Getpid(), "python": "3.99.0-fake", "runtime": "fake/1", "wire": 1}
	if mode.words["django"] {
		msg["django"] = map[string]any{"static_url": "static/", "static_root": "/srv/static", "media_url": nil, "media_root": nil}
	}
	hello, _ := json.Marshal(msg)
	if err := ctl.Write(wire.AppendFrame(nil, wire.TypeHello, 0, 0, hello)); err != nil {
		return 0 // the front is gone
	}
	if mode.words["exit-after-hello"] {
		return 1
	}

	inflight := newCounter()
	var stopping atomic.Bool
	for {
		f, err := ctl.ReadFrame()
		if err != nil {
			return 0 // EOF: the front is gone, exit at once
		}
		switch f.Type {
		case wire.TypeChannel:
			conn, err := wire.FileConn(f.File)
			if err != nil {
				say("channel: %v", err)
				return 2
			}
			go serve(conn, info, mode, inflight, &stopping)
		case wire.TypePing:
			ctl.WriteFrame(wire.TypePong, 0, f.Stream, f.Payload)
		case wire.TypeStop:
			say("STOP")
			switch {
			case mode.words["ignore-stop"]:
			case mode.stopDelay > 0:
				stopping.Store(true)
				time.AfterFunc(mode.stopDelay, func() { os.Exit(0) })
			default:
				stopping.Store(true)
				inflight.Wait()
				return 0
			}
		default:
			say("unexpected %s on the control channel", f.Type)
			return 2
		}
	}
}

// counter counts requests in progress. Unlike a sync.WaitGroup it may
// start counting from zero while someone waits (a REQUEST arriving as STOP
// is handled), which WaitGroup forbids.
type counter struct {
	mu   sync.Mutex
	n    int
	zero *sync.Cond
}

func newCounter() *counter {
	c := &counter{}
	c.zero = sync.NewCond(&c.mu)
	return c
}

// Add adds d (1 or -1) to the count.
func (c *counter) Add(d int) {
	c.mu.Lock()
	c.n += d
	if c.n == 0 {
		c.zero.Broadcast()
	}
	c.mu.Unlock()
}

// Done is Add(-1).
func (c *counter) Done() { c.Add(-1) }

// Wait returns once the count is zero.
func (c *counter) Wait() {
	c.mu.Lock()
	for c.n > 0 {
		c.zero.Wait()
	}
	c.mu.Unlock()
}

// serve answers each REQUEST on conn with a RESPONSE whose body is info as
// JSON.
func serve(conn *wire.Conn, info Info, mode script, inflight *counter, stopping *atomic.Bool) {
	defer conn.Close()
	for {
		f, err := conn.ReadFrame()
		if err != nil {
			return
		}
		if f.Type != wire.TypeRequest {
			continue // CREDIT, CANCEL, DATA: nothing to do for these bodies
		}
		if stopping.Load() {
			fmt.Fprintln(os.Stderr, "fake: REQUEST after STOP")
		}
		inflight.Add(1)
		env, _, err := wire.DecodeRequest(f.Payload)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake: bad REQUEST:", err)
			os.Exit(2)
		}
		if mode.words["crash-on-request"] || env["PATH_INFO"] == "/crash" {
			os.Exit(1)
		}
		info.Stream = f.Stream
		info.PathInfo = env["PATH_INFO"]
		body, _ := json.Marshal(info)
		head := wire.Head{Status: "200 OK", Fields: []wire.Field{{Name: "Content-Type", Value: "application/json"}}}
		err = conn.Write(wire.AppendResponse(nil, wire.FlagEnd, f.Stream, head, body))
		inflight.Done()
		if err != nil {
			return
		}
	}
}

// Request sends a GET for path on stream of conn, a fake worker's request
// channel, and returns the fake's answer. It returns an error when the
// channel fails (the fake died) and fails the test when the answer is not
// the fake's.
func Request(t testing.TB, conn wire.StreamConn, stream uint32, path string) (Info, error) {
	t.Helper()
	var rb wire.RequestBuilder
	rb.Begin(stream)
	rb.Env("REQUEST_METHOD", "GET")
	rb.Env("PATH_INFO", path)
	frame, err := rb.Finish(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Write(frame); err != nil {
		return Info{}, err
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	f, err := conn.ReadFrame()
	if err != nil {
		return Info{}, err
	}
	if f.Type != wire.TypeResponse || f.Stream != stream || !f.End() {
		t.Fatalf("fake answered %s stream %d end %v, want an ended RESPONSE on stream %d", f.Type, f.Stream, f.End(), stream)
	}
	head, body, err := wire.DecodeResponse(f.Payload)
	if err != nil || head.Status != "200 OK" {
		t.Fatalf("fake's response: %+v, %v", head, err)
	}
	var info Info
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatalf("fake's body %q: %v", body, err)
	}
	return info, nil
}

// Exe returns the test binary's absolute path, the "python" that starts a
// fake worker (Spec.Chdir must not break it).
func Exe(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// Track returns a directory for the fakes' pid files (see Env) and registers
// a cleanup that fails the test if any fake it started is still running
// shortly after the test (and kills it then).
func Track(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() {
		pids := PIDs(t, dir)
		deadline := time.Now().Add(5 * time.Second)
		for _, pid := range pids {
			for Alive(pid) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if Alive(pid) {
				t.Errorf("fake worker %d still running after the test", pid)
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return dir
}

// PIDs lists, in increasing order, the pids of the fakes started with pid
// directory dir.
func PIDs(t testing.TB, dir string) []int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// Alive reports whether pid exists (a zombie counts: it was not reaped).
func Alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

// Lines returns the lines of log that contain every one of subs.
func Lines(log *whisktest.SyncBuffer, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(log.String(), "\n") {
		ok := l != ""
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// CheckGoroutines reports, on standard error, goroutines of this module
// still running (after a grace of 5s) once every test has run, other than
// the spawner's thread. It returns an exit code: 0 when there are none.
func CheckGoroutines() int {
	var leaked []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		leaked = leaked[:0]
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for i, g := range strings.Split(string(buf), "\n\n") {
			if i == 0 || !strings.Contains(g, "whiskserver/whisk/internal/") || strings.Contains(g, "NewSpawner") {
				continue // the first is this goroutine
			}
			leaked = append(leaked, g)
		}
		if len(leaked) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "%d goroutines leaked:\n\n%s\n", len(leaked), strings.Join(leaked, "\n\n"))
	return 1
}
