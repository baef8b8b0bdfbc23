// Package proc starts and talks to one Python worker process: it spawns the
// interpreter with a control socket, waits for the app to import (HELLO or
// FAILED), hands the worker one request channel per thread over the control
// socket, folds the worker's stdout and stderr into the server log, and stops
// or kills it. It knows nothing of HTTP or of pools; internal/group does.
package proc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/whiskserver/whisk/internal/wire"
)

// Spec says how to start a worker process.
type Spec struct {
	// Python is the interpreter to run (an absolute path or a name on PATH).
	Python string
	// VirtualEnv, when set, is the virtualenv Python belongs to; it is
	// exported as VIRTUAL_ENV with its bin/ first on PATH, as activate does.
	VirtualEnv string
	// RuntimeDir holds the extracted whisk_worker package (pyrt.Extract).
	RuntimeDir string
	// App is "module:callable" or the path of a WSGI script file.
	App string
	// Chdir is the worker's working directory; empty keeps whisk's.
	Chdir string
	// PythonPath entries go first on the worker's sys.path, in order.
	PythonPath []string
	// Env holds extra KEY=VALUE pairs for the worker's environment.
	Env []string
	// Threads is the number of request channels (one thread each) of a
	// WSGI worker; an ASGI worker gets one channel, and Threads sizes its
	// event loop's executor for sync code.
	Threads int
	// Interface is "wsgi", "asgi", or "auto" or empty: the worker decides
	// from the app it imported and says which in its HELLO.
	Interface string
	// Processes is the group's process count (for wsgi.multiprocess).
	Processes int
	// Window is the response body credit per stream, in bytes.
	Window int
	// StartupTimeout bounds the wait for the app to import.
	StartupTimeout time.Duration
	// Pin, when set, restricts the worker (all its threads) to CPU.
	// Pinning keeps GIL handoffs between a process's threads on one core,
	// where they are cheap (see docs/architecture.md).
	Pin bool
	// CPU is the CPU to pin to when Pin is set.
	CPU int
	// User, when set, is the account the worker runs as (LookupAccount):
	// its uid, gid and supplementary groups, with HOME, USER and LOGNAME
	// set as login does. Nil keeps whisk's own; CheckAccount says when
	// that is allowed.
	User *Account
	// Preload tells internal/group to import the app once in a fork server
	// (StartPreload) and fork the workers from it (Preloader.Fork). Start
	// itself ignores it.
	Preload bool
	// PostFork, when set, is a Python "module:function" each worker calls,
	// with no arguments, before it serves: after the fork with Preload
	// (to reopen connections the app made at import), after the import
	// without. If it raises, the worker fails to start with a *HookError.
	PostFork string
	// Log receives the worker's output and lifecycle events.
	Log *slog.Logger
}

// ImportError is returned by Start when the worker could not import the app.
type ImportError struct {
	// Message is one line: the exception.
	Message string `json:"error"`
	// Traceback is the Python traceback, as Python printed it.
	Traceback string `json:"traceback"`
	// Hint names the likely fix (module path, --chdir, --pythonpath, --python).
	Hint string `json:"hint"`
}

func (e *ImportError) Error() string {
	return "import app: " + e.Message
}

// HookError is returned when a worker could not load or run the PostFork
// hook.
type HookError struct {
	// Message is one line naming post_fork and the exception.
	Message string
	// Traceback is the Python traceback.
	Traceback string
	// Hint names the likely fix.
	Hint string
}

func (e *HookError) Error() string {
	if e.Traceback == "" {
		return e.Message
	}
	return e.Message + "\n" + strings.TrimRight(e.Traceback, "\n")
}

// Hello is what a worker reports once its app is imported.
type Hello struct {
	PID     int    `json:"pid"`
	Python  string `json:"python"`
	Runtime string `json:"runtime"`
	Wire    int    `json:"wire"`
	// Interface is "wsgi" or "asgi": how the worker serves the app.
	Interface string `json:"interface"`
	// Django is where a Django app keeps its static and media files; nil
	// when the app has not configured Django's settings.
	Django *Django `json:"django,omitempty"`
}

// Django is what a worker reports of a Django app's settings (HELLO's
// "django" field, docs/protocol.md). A setting that is unset or empty is
// "".
type Django struct {
	// StaticURL is STATIC_URL as written: relative ("static/", which
	// Django prefixes with SCRIPT_NAME), a path ("/static/") or a URL
	// ("https://cdn.example.com/static/").
	StaticURL string `json:"static_url"`
	// StaticRoot is STATIC_ROOT, absolute (made so against the worker's
	// working directory).
	StaticRoot string `json:"static_root"`
	// MediaURL is MEDIA_URL as written, like StaticURL.
	MediaURL string `json:"media_url"`
	// MediaRoot is MEDIA_ROOT, absolute.
	MediaRoot string `json:"media_root"`
}

// The interfaces a worker serves an app with (Spec.Interface, Hello.Interface).
const (
	InterfaceWSGI = "wsgi"
	InterfaceASGI = "asgi"
)

// ASGI reports whether the worker serves an ASGI app: one request channel
// carrying many streams at once.
func (h Hello) ASGI() bool { return h.Interface == InterfaceASGI }

// Process is one running worker.
type Process struct {
	// PID is the worker's process id.
	PID int
	// Hello is the worker's HELLO report.
	Hello Hello
	// Channels are the request channels, one per worker thread.
	Channels []*wire.Conn

	signal  func(syscall.Signal) error
	control *wire.Conn
	done    chan struct{}
	exitErr error
	output  sync.WaitGroup
	log     *slog.Logger
	started time.Time

	closeOnce sync.Once
}

// Spawner starts processes from one OS thread that never exits, so that
// PR_SET_PDEATHSIG (which the kernel ties to the thread that forked the
// child, not the process) fires only when whisk itself dies.
type Spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

// NewSpawner starts the spawning thread. It lives as long as the process.
func NewSpawner() *Spawner {
	s := &Spawner{reqs: make(chan spawnReq)}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must outlive every child
		for r := range s.reqs {
			r.err <- r.cmd.Start()
		}
	}()
	return s
}

func (s *Spawner) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, err: errc}
	return <-errc
}

// bootstrap is the -c program: import whisk_worker from the runtime
// directory given as the first argument, then run it.
const bootstrap = "import sys; sys.path.insert(0, sys.argv.pop(1)); from whisk_worker.main import main; sys.exit(main(sys.argv[1:]))"

// Start spawns a worker and waits until it reports the app imported, then
// hands it Threads request channels. A worker that fails to import returns
// an *ImportError; one that exits or stays silent past StartupTimeout
// returns an error carrying its last output lines.
func (s *Spawner) Start(ctx context.Context, spec Spec) (*Process, error) {
	p, tail, err := s.spawn(spec, false)
	if err != nil {
		return nil, err
	}
	if err := p.ready(ctx, spec, tail, spec.Threads); err != nil {
		return nil, err
	}
	go p.readControl()
	return p, nil
}

// spawn starts the interpreter with its control socket (as a fork server
// when preload is set) and starts folding its output into the log.
func (s *Spawner) spawn(spec Spec, preload bool) (*Process, *tailBuffer, error) {
	ctl, ctlPeer, err := wire.Pair()
	if err != nil {
		return nil, nil, fmt.Errorf("spawn %s: %w", spec.App, err)
	}
	args := []string{"-u", "-c", bootstrap, spec.RuntimeDir,
		"--control-fd", "3", "--app", spec.App,
		"--threads", strconv.Itoa(spec.Threads), "--processes", strconv.Itoa(spec.Processes),
		"--window", strconv.Itoa(spec.Window)}
	if spec.Interface != "" {
		args = append(args, "--interface", spec.Interface)
	}
	if spec.Chdir != "" {
		args = append(args, "--chdir", spec.Chdir)
	}
	for _, p := range spec.PythonPath {
		args = append(args, "--pythonpath", p)
	}
	if spec.PostFork != "" {
		args = append(args, "--post-fork", spec.PostFork)
	}
	if preload {
		args = append(args, "--preload")
	}
	cmd := exec.Command(spec.Python, args...)
	cmd.Env = workerEnv(spec)
	if spec.Chdir != "" && spec.User == nil {
		// As another user, the worker changes directory itself (--chdir):
		// exec would report a directory that user cannot enter as an
		// interpreter it cannot run.
		cmd.Dir = spec.Chdir
	}
	cmd.ExtraFiles = []*os.File{ctlPeer}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true, Credential: spec.User.credential()}
	outR, outW, err := os.Pipe()
	if err != nil {
		ctl.Close()
		ctlPeer.Close()
		return nil, nil, fmt.Errorf("spawn %s: %w", spec.App, err)
	}
	cmd.Stdout, cmd.Stderr = outW, outW
	err = s.start(cmd)
	ctlPeer.Close()
	outW.Close()
	if err != nil {
		ctl.Close()
		outR.Close()
		return nil, nil, spawnError(spec, err)
	}
	signal := func(sig syscall.Signal) error { return cmd.Process.Signal(sig) }
	p, tail := newProcess(spec, cmd.Process.Pid, ctl, signal, outR, cmd.Wait, preload)
	return p, tail, nil
}

// newProcess watches a child that was just started (by spawn, or forked by
// a fork server) and has yet to say HELLO: it pins it unless it is a fork
// server, folds out (its stdout and stderr) into the log, keeping the last
// lines in the returned tail, and closes Done once wait has returned and
// the output is drained.
func newProcess(spec Spec, pid int, ctl *wire.Conn, signal func(syscall.Signal) error, out io.ReadCloser, wait func() error, forkServer bool) (*Process, *tailBuffer) {
	p := &Process{PID: pid, signal: signal, control: ctl, done: make(chan struct{}), started: time.Now()}
	p.log = spec.Log.With("pid", p.PID)
	if forkServer {
		p.log = p.log.With("role", "fork server")
	} else if spec.Pin {
		// The child is still importing (or running the post-fork hook) on
		// its main thread; the threads it starts for its channels inherit
		// the mask.
		if err := pin(p.PID, spec.CPU); err != nil {
			p.log.Warn("cannot pin worker to a CPU; it runs unpinned", "error", err)
		}
	}
	tail := &tailBuffer{max: 40}
	p.output.Add(1)
	go p.copyOutput(out, tail)
	go func() {
		err := wait()
		p.output.Wait()
		p.exitErr = err
		close(p.done)
	}()
	return p, tail
}

// spawnError explains why exec failed: most often the interpreter, or a
// directory or file the worker's user may not use.
func spawnError(spec Spec, err error) error {
	as := ""
	if spec.User != nil {
		as = fmt.Sprintf(" as user %q", spec.User.Name)
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("spawn %s%s: %w (may that user run it, and enter every directory above it?)", spec.Python, as, err)
	}
	return fmt.Errorf("spawn %s: %w (is --python %q an interpreter?)", spec.Python, err, spec.Python)
}

// ready waits for the worker's HELLO and hands it threads request
// channels. On failure it kills the process, waits for its exit and
// releases it.
func (p *Process) ready(ctx context.Context, spec Spec, tail *tailBuffer, threads int) error {
	hello, err := p.handshake(ctx, spec.StartupTimeout)
	if err != nil {
		p.Kill()
		<-p.done
		p.Close()
		var ie *ImportError
		var he *HookError
		if errors.As(err, &ie) || errors.As(err, &he) {
			return err
		}
		return fmt.Errorf("start worker for %s: %w%s", spec.App, err, tail.String())
	}
	p.Hello = hello
	if hello.Interface == InterfaceASGI && threads > 0 {
		threads = 1 // one channel carries all of an ASGI worker's streams
	}
	for i := 0; i < threads; i++ {
		conn, peer, err := wire.Pair()
		if err == nil {
			frame := wire.AppendFrame(nil, wire.TypeChannel, 0, 0, []byte(`{"id": `+strconv.Itoa(i)+`}`))
			err = p.control.WriteWithFD(frame, peer)
			peer.Close()
		}
		if err != nil {
			if conn != nil {
				conn.Close()
			}
			p.Kill()
			<-p.done
			p.Close()
			return fmt.Errorf("hand channel %d to worker %d: %w", i, p.PID, err)
		}
		p.Channels = append(p.Channels, conn)
	}
	return nil
}

func workerEnv(spec Spec) []string {
	env := os.Environ()
	if spec.VirtualEnv != "" {
		path := spec.VirtualEnv + "/bin"
		for i, kv := range env {
			if strings.HasPrefix(kv, "PATH=") {
				env[i] = "PATH=" + path + ":" + kv[len("PATH="):]
				path = ""
			}
		}
		if path != "" {
			env = append(env, "PATH="+path)
		}
		env = append(env, "VIRTUAL_ENV="+spec.VirtualEnv)
	}
	env = append(env, "PYTHONUNBUFFERED=1")
	env = append(env, spec.User.env()...)
	return append(env, spec.Env...)
}

func (p *Process) handshake(ctx context.Context, timeout time.Duration) (Hello, error) {
	type result struct {
		f   wire.Frame
		err error
	}
	res := make(chan result, 1)
	go func() {
		f, err := p.control.ReadFrame()
		if err == nil {
			f.Payload = append([]byte(nil), f.Payload...)
		}
		res <- result{f, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-res:
		if r.err != nil {
			if !errors.Is(r.err, io.EOF) && !errors.Is(r.err, io.ErrUnexpectedEOF) {
				return Hello{}, fmt.Errorf("bad control frame from the worker: %w", r.err)
			}
			select {
			case <-p.done:
				return Hello{}, fmt.Errorf("worker exited before it was ready (%v)", p.exitDescription())
			case <-timer.C:
				return Hello{}, errors.New("worker closed its control socket but did not exit")
			}
		}
		switch r.f.Type {
		case wire.TypeHello:
			var h Hello
			if err := json.Unmarshal(r.f.Payload, &h); err != nil {
				return Hello{}, fmt.Errorf("bad HELLO from worker: %w", err)
			}
			return h, nil
		case wire.TypeFailed:
			var failed struct {
				ImportError
				Stage string `json:"stage"`
			}
			if err := json.Unmarshal(r.f.Payload, &failed); err != nil {
				return Hello{}, fmt.Errorf("bad FAILED report from worker: %w", err)
			}
			if failed.Stage == "post_fork" {
				return Hello{}, &HookError{Message: failed.Message, Traceback: failed.Traceback, Hint: failed.Hint}
			}
			return Hello{}, &failed.ImportError
		default:
			return Hello{}, fmt.Errorf("worker sent %s before HELLO", r.f.Type)
		}
	case <-timer.C:
		return Hello{}, fmt.Errorf("app not imported within the startup timeout of %v", timeout)
	case <-ctx.Done():
		return Hello{}, ctx.Err()
	}
}

func (p *Process) exitDescription() string {
	if p.exitErr == nil {
		return "exit status 0"
	}
	return p.exitErr.Error()
}

// readControl consumes control frames after the handshake (PONGs, and EOF
// when the worker exits).
func (p *Process) readControl() {
	for {
		f, err := p.control.ReadFrame()
		if err != nil {
			return
		}
		if f.File != nil {
			f.File.Close()
		}
	}
}

// copyOutput logs the lines the worker prints (a traceback or a stack
// dump as one record: folder), keeping the last ones in tail for startup
// errors. A line longer than the buffer is logged in pieces; the pipe is
// read to the end, so the worker never gets EPIPE.
func (p *Process) copyOutput(r io.ReadCloser, tail *tailBuffer) {
	defer p.output.Done()
	defer r.Close()
	fold := newFolder(p.log)
	defer fold.close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			text := strings.TrimRight(string(line), "\r\n")
			tail.add(text)
			fold.line(text)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr is the process's exit status; valid after Done is closed.
func (p *Process) ExitErr() error { return p.exitErr }

// Uptime is how long ago the process was started.
func (p *Process) Uptime() time.Duration { return time.Since(p.started) }

// Stop asks the worker to finish its streams in progress and exit (STOP).
func (p *Process) Stop() {
	_ = p.control.WriteFrame(wire.TypeStop, 0, 0, nil)
}

// Terminate sends SIGTERM.
func (p *Process) Terminate() { _ = p.signal(syscall.SIGTERM) }

// Kill sends SIGKILL.
func (p *Process) Kill() { _ = p.signal(syscall.SIGKILL) }

// Close releases the front's ends of the channels and the control socket;
// a worker whose control socket closes exits at once. Safe to call more
// than once.
func (p *Process) Close() {
	p.closeOnce.Do(func() {
		for _, c := range p.Channels {
			c.Close()
		}
		p.control.Close()
	})
}

// Shutdown stops the worker gracefully: STOP, then after grace SIGTERM,
// then after another grace SIGKILL. It returns once the process is gone.
func (p *Process) Shutdown(grace time.Duration) {
	p.Stop()
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	p.log.Warn("worker did not stop in time; sending SIGTERM", "grace", grace)
	p.Terminate()
	select {
	case <-p.done:
		return
	case <-time.After(5 * time.Second):
	}
	p.log.Warn("worker ignored SIGTERM; sending SIGKILL")
	p.Kill()
	<-p.done
}

type tailBuffer struct {
	mu    sync.Mutex
	lines []string
	max   int
}

func (t *tailBuffer) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, l)
	if len(t.lines) > t.max {
		t.lines = t.lines[1:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return ""
	}
	return "\nlast output of the worker:\n  " + strings.Join(t.lines, "\n  ")
}
