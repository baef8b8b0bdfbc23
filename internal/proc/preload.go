package proc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/whiskserver/whisk/internal/wire"
)

// Preloader is a fork server (Spec.Preload): one Python process that
// imported the app once and forks a group's workers from itself, so that
// they share its memory copy-on-write. A forked worker is an ordinary
// *Process. When the fork server dies, its workers die with it. Its methods
// are safe for concurrent use.
type Preloader struct {
	// PID is the fork server's process id.
	PID int
	// Hello is its HELLO report.
	Hello Hello

	p     *Process      // the fork server's process
	ended chan struct{} // the control read loop ended: no more reports
	done  chan struct{} // the process exited and ended is closed

	mu       sync.Mutex
	nextID   int
	waiting  map[int]chan forkReply // FORK id → its FORKED answer
	children map[int]chan error     // pid → its exit status, from EXITED
}

// forkReply is the fork server's answer to a FORK, with what the front
// needs to watch the child.
type forkReply struct {
	pid   int
	pidfd *pidfd
	exit  chan error
	err   error
}

// errForkServerGone is the exit status of a worker whose fork server died
// before reporting the worker's exit: PR_SET_PDEATHSIG killed it.
var errForkServerGone = errors.New("killed with its fork server")

// StartPreload spawns a fork server for spec and waits until it has
// imported the app (and loaded spec.PostFork). Import errors are an
// *ImportError, as from Start; spec.Threads, Pin and CPU are not used.
func (s *Spawner) StartPreload(ctx context.Context, spec Spec) (*Preloader, error) {
	p, tail, err := s.spawn(spec, true)
	if err != nil {
		return nil, err
	}
	if err := p.ready(ctx, spec, tail, 0); err != nil {
		return nil, err
	}
	pl := &Preloader{PID: p.PID, Hello: p.Hello, p: p, ended: make(chan struct{}), done: make(chan struct{}),
		waiting: map[int]chan forkReply{}, children: map[int]chan error{}}
	go pl.readControl()
	go func() {
		<-p.done
		<-pl.ended
		close(pl.done)
	}()
	return pl, nil
}

// readControl dispatches the fork server's reports until its control
// socket ends.
func (pl *Preloader) readControl() {
	defer close(pl.ended)
	for {
		f, err := pl.p.control.ReadFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) {
				pl.p.log.Error("bad control frame from the fork server; killing it", "error", err)
				pl.p.Kill()
			}
			return
		}
		switch f.Type {
		case wire.TypeForked:
			var r struct {
				ID    int    `json:"id"`
				PID   int    `json:"pid"`
				Error string `json:"error"`
			}
			if err := json.Unmarshal(f.Payload, &r); err != nil {
				pl.p.log.Error("bad FORKED report from the fork server", "error", err)
				continue
			}
			pl.forked(r.ID, r.PID, r.Error)
		case wire.TypeExited:
			var r struct {
				PID  int `json:"pid"`
				Code int `json:"code"`
			}
			if err := json.Unmarshal(f.Payload, &r); err != nil {
				pl.p.log.Error("bad EXITED report from the fork server", "error", err)
				continue
			}
			pl.mu.Lock()
			exit := pl.children[r.PID]
			delete(pl.children, r.PID)
			pl.mu.Unlock()
			if exit != nil {
				exit <- exitStatus(r.Code)
			}
		case wire.TypePong:
		default:
			pl.p.log.Warn("unexpected frame from the fork server", "type", f.Type.String())
		}
		if f.File != nil {
			f.File.Close()
		}
	}
}

// forked hands the answer to FORK id to the Fork waiting for it. The pidfd
// is opened at once: until the front reads EXITED for pid, the fork server
// has not reaped it, so pid is that child's (barring a reap in the instant
// between the two, which would need the pid reused as well to matter).
func (pl *Preloader) forked(id, pid int, failed string) {
	r := forkReply{pid: pid}
	if failed != "" {
		r.err = errors.New(failed)
	} else if r.pidfd, r.err = openPidfd(pid); r.err == nil {
		r.exit = make(chan error, 1)
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	wait := pl.waiting[id]
	delete(pl.waiting, id)
	if wait == nil { // Fork gave up: the child exits at its control socket's EOF
		if r.pidfd != nil {
			r.pidfd.close()
		}
		return
	}
	if r.exit != nil {
		pl.children[pid] = r.exit
	}
	wait <- r // buffered; under mu so that takeReply never misses it
}

// takeReply stops waiting for the answer to FORK id: it returns the answer
// if it came meanwhile, else one carrying err.
func (pl *Preloader) takeReply(id int, reply chan forkReply, err error) forkReply {
	pl.mu.Lock()
	delete(pl.waiting, id)
	pl.mu.Unlock()
	select {
	case r := <-reply:
		return r
	default:
		return forkReply{err: err}
	}
}

// Fork asks the fork server for a new worker and waits until it is ready
// to serve, as Start does: it has run spec.PostFork and holds spec.Threads
// request channels. The worker's stdout and stderr go to the log with its
// pid; spec.Pin and CPU pin it. The rest of spec (the app, interpreter,
// environment, user) was fixed when the fork server started. A post-fork
// hook that raised returns a *HookError.
func (pl *Preloader) Fork(ctx context.Context, spec Spec) (*Process, error) {
	ctl, ctlPeer, err := wire.Pair()
	if err != nil {
		return nil, fmt.Errorf("fork worker: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		ctl.Close()
		ctlPeer.Close()
		return nil, fmt.Errorf("fork worker: %w", err)
	}
	reply := make(chan forkReply, 1)
	pl.mu.Lock()
	id := pl.nextID
	pl.nextID++
	pl.waiting[id] = reply
	pl.mu.Unlock()
	frame := wire.AppendFrame(nil, wire.TypeFork, 0, 0, []byte(`{"id": `+strconv.Itoa(id)+`}`))
	err = pl.p.control.WriteWithFDs(frame, ctlPeer, outW)
	ctlPeer.Close()
	outW.Close()
	var r forkReply
	if err != nil {
		r = pl.takeReply(id, reply, err)
	} else {
		timer := time.NewTimer(spec.StartupTimeout)
		select {
		case r = <-reply:
		case <-pl.ended:
			r = pl.takeReply(id, reply, errors.New("the fork server exited"))
		case <-ctx.Done():
			r = pl.takeReply(id, reply, ctx.Err())
		case <-timer.C:
			r = pl.takeReply(id, reply, fmt.Errorf("no answer from the fork server within %v", spec.StartupTimeout))
		}
		timer.Stop()
	}
	if r.err != nil { // a child forked too late exits at its control socket's EOF
		ctl.Close()
		outR.Close()
		return nil, fmt.Errorf("fork worker from fork server %d: %w", pl.PID, r.err)
	}

	p, tail := newProcess(spec, r.pid, ctl, r.pidfd.signal, outR, func() error { return pl.waitChild(r) }, false)
	if err := p.ready(ctx, spec, tail, spec.Threads); err != nil {
		return nil, err
	}
	go p.readControl()
	return p, nil
}

// waitChild returns a forked worker's exit status once it has exited: from
// the fork server's report, or, when the fork server died first, once its
// pidfd says the worker is gone too.
func (pl *Preloader) waitChild(r forkReply) error {
	defer r.pidfd.close()
	select {
	case err := <-r.exit:
		return err
	case <-pl.ended:
	}
	select {
	case err := <-r.exit: // reported just before the end
		return err
	default:
	}
	r.pidfd.wait()
	return errForkServerGone
}

// Done is closed when the fork server has exited. Its workers die with it;
// each one's own Done closes once it is gone.
func (pl *Preloader) Done() <-chan struct{} { return pl.done }

// ExitErr is the fork server's exit status; valid after Done is closed.
func (pl *Preloader) ExitErr() error { return pl.p.ExitErr() }

// Close closes the fork server's control socket: it exits at once, and its
// workers with it (stop them first to let their requests finish). Safe to
// call more than once.
func (pl *Preloader) Close() { pl.p.Close() }

// Kill sends SIGKILL to the fork server, which takes its workers with it.
func (pl *Preloader) Kill() { pl.p.Kill() }

// exitStatus turns the fork server's report of a child's exit (the code,
// or minus the signal that killed it) into the error os/exec would give.
func exitStatus(code int) error {
	switch {
	case code == 0:
		return nil
	case code < 0:
		return fmt.Errorf("signal: %v", syscall.Signal(-code))
	default:
		return fmt.Errorf("exit status %d", code)
	}
}

// pidfd refers to one process even after its pid is reused: a signal
// through it never reaches another process.
type pidfd struct {
	mu sync.Mutex
	fd int // -1 once closed
}

func openPidfd(pid int) (*pidfd, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return &pidfd{fd: -1}, nil // already gone: its EXITED report follows
	}
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d (preload needs Linux 5.3 or later): %w", pid, err)
	}
	return &pidfd{fd: fd}, nil
}

// signal sends sig; after close it does nothing.
func (h *pidfd) signal(sig syscall.Signal) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fd < 0 {
		return os.ErrProcessDone
	}
	return unix.PidfdSendSignal(h.fd, sig, nil, 0)
}

// wait blocks until the process has exited. Only the goroutine that closes
// h may call it.
func (h *pidfd) wait() {
	if h.fd < 0 {
		return
	}
	fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

func (h *pidfd) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fd >= 0 {
		unix.Close(h.fd)
		h.fd = -1
	}
}
