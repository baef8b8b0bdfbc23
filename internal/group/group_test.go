package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/proc"
	"github.com/whiskserver/whisk/internal/whisktest"
	"github.com/whiskserver/whisk/internal/whisktest/fakeworker"

	"golang.org/x/sys/unix"
)

// fixture is a Group of fake workers whose behaviour is read from a mode
// file at each spawn, so a test can script what the next worker does.
type fixture struct {
	g        *Group
	logs     *whisktest.SyncBuffer
	pidDir   string
	modeFile string
}

// newGroup builds a Group of fake workers running mode; cfg's zero fields
// get small defaults. It does not start it.
func newGroup(t *testing.T, mode string, cfg Config) *fixture {
	t.Helper()
	f := &fixture{logs: &whisktest.SyncBuffer{}, pidDir: fakeworker.Track(t), modeFile: filepath.Join(t.TempDir(), "mode")}
	f.setMode(t, mode)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", f.logs)
		}
	})
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	cfg.Processes = max(cfg.Processes, 1)
	cfg.Threads = max(cfg.Threads, 1)
	if cfg.GracefulTimeout == 0 {
		cfg.GracefulTimeout = 2 * time.Second
	}
	cfg.Spec = proc.Spec{
		Python:         fakeworker.Exe(t),
		RuntimeDir:     "/whisk-runtime",
		App:            "file:" + f.modeFile,
		Window:         1 << 20,
		StartupTimeout: 10 * time.Second,
		Env:            fakeworker.Env(f.pidDir),
	}
	cfg.Log = slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.g = New(cfg, fakeSpawner())
	return f
}

// startGroup is newGroup and a Start that must succeed; the test's cleanup
// stops the group.
func startGroup(t *testing.T, mode string, cfg Config) *fixture {
	t.Helper()
	f := newGroup(t, mode, cfg)
	f.start(t)
	return f
}

// start starts a group made by newGroup; the test's cleanup stops it.
func (f *fixture) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.g.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		f.g.Stop(ctx)
	})
}

// setMode sets what the next spawned workers do.
func (f *fixture) setMode(t *testing.T, mode string) {
	t.Helper()
	tmp := f.modeFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(mode), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.modeFile); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) pids() []int {
	var pids []int
	for _, w := range f.g.Workers() {
		pids = append(pids, w.PID)
	}
	return pids
}

func (f *fixture) worker(pid int) (WorkerInfo, bool) {
	for _, w := range f.g.Workers() {
		if w.PID == pid {
			return w, true
		}
	}
	return WorkerInfo{}, false
}

func (f *fixture) waiters() int {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	return len(f.g.waiters)
}

// settled reports whether no spawn is under way and every worker is ready.
func (f *fixture) settled() bool {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	if f.g.spawning != 0 {
		return false
	}
	for _, w := range f.g.workers {
		if w.state != StateReady {
			return false
		}
	}
	return true
}

// stops counts the STOP frames the worker pid reported.
func (f *fixture) stops(pid int) int {
	return len(fakeworker.Lines(f.logs, "fake: STOP", fmt.Sprintf("pid=%d", pid)))
}

func acquire(t *testing.T, g *Group) *Slot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := g.Acquire(ctx)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return s
}

// asyncAcquire starts an Acquire in a goroutine.
func asyncAcquire(g *Group, timeout time.Duration) <-chan acquired {
	c := make(chan acquired, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		s, err := g.Acquire(ctx)
		c <- acquired{s, err}
	}()
	return c
}

type acquired struct {
	s   *Slot
	err error
}

func receive(t *testing.T, c <-chan acquired) acquired {
	t.Helper()
	select {
	case a := <-c:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire did not return")
		return acquired{}
	}
}

// roundTrip checks that s reaches a thread of the worker s.PID names.
func roundTrip(t *testing.T, s *Slot) {
	t.Helper()
	stream := s.NextStream()
	info, err := fakeworker.Request(t, s.Conn(), stream, "/pid")
	if err != nil {
		t.Fatalf("request on a slot of worker %d: %v", s.PID(), err)
	}
	if info.PID != s.PID() || info.Stream != stream {
		t.Fatalf("slot of worker %d answered by pid %d on stream %d (sent %d)", s.PID(), info.PID, info.Stream, stream)
	}
}

func TestStartAndStop(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 3, Threads: 2})
	ws := f.g.Workers()
	if len(ws) != 3 {
		t.Fatalf("%d workers, want 3", len(ws))
	}
	pids := f.pids()
	for _, w := range ws {
		if w.State != StateReady || w.Busy != 0 || w.Served != 0 {
			t.Errorf("worker %+v, want ready, idle, nothing served", w)
		}
		if !fakeworker.Alive(w.PID) {
			t.Errorf("worker %d is not running", w.PID)
		}
	}
	if slices.Sort(pids); len(slices.Compact(pids)) != 3 {
		t.Errorf("pids %v are not distinct", pids)
	}
	// Every process got Threads and Processes.
	for range 6 {
		s := acquire(t, f.g)
		info, err := fakeworker.Request(t, s.Conn(), s.NextStream(), "/")
		if err != nil {
			t.Fatal(err)
		}
		if info.Threads != 2 || info.Processes != 3 {
			t.Errorf("worker %d started with --threads %d --processes %d, want 2 3", info.PID, info.Threads, info.Processes)
		}
	}
	// (the six slots are never released: Stop is bounded by its context)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	f.g.Stop(ctx)
	for _, pid := range pids {
		if fakeworker.Alive(pid) {
			t.Errorf("worker %d still running after Stop returned", pid)
		}
	}
}

func TestStartImportError(t *testing.T) {
	t.Parallel()
	f := newGroup(t, "fail-import", Config{Processes: 3, Threads: 2})
	err := f.g.Start(context.Background())
	var ie *proc.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("Start = %v, want a *proc.ImportError", err)
	}
	if ie.Message != "ModuleNotFoundError: No module named 'nope'" {
		t.Errorf("ImportError.Message = %q", ie.Message)
	}
	if ws := f.g.Workers(); len(ws) != 0 {
		t.Errorf("Workers after a failed Start = %+v", ws)
	}
}

// One worker that cannot import makes Start fail and stop the others.
func TestStartOneFails(t *testing.T) {
	t.Parallel()
	f := newGroup(t, "only-first", Config{Processes: 3, Threads: 1})
	err := f.g.Start(context.Background())
	var ie *proc.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("Start = %v, want a *proc.ImportError", err)
	}
	if ws := f.g.Workers(); len(ws) != 0 {
		t.Errorf("Workers after a failed Start = %+v", ws)
	}
	// The worker that did start is stopped (checked by fakeworker.Track).
}

func TestAcquireRelease(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 2, Threads: 2})
	var slots []*Slot
	perPID := map[int]int{}
	for range 4 {
		s := acquire(t, f.g)
		roundTrip(t, s)
		slots = append(slots, s)
		perPID[s.PID()]++
	}
	if len(perPID) != 2 || perPID[slots[0].PID()] != 2 {
		t.Errorf("slots per worker %v, want 2 and 2", perPID)
	}
	for _, w := range f.g.Workers() {
		if w.Busy != 2 || w.Served != 2 {
			t.Errorf("worker %+v, want busy 2 served 2", w)
		}
	}
	if s := f.g.TryAcquire(); s != nil {
		t.Errorf("TryAcquire with every slot busy = slot of %d", s.PID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if s, err := f.g.Acquire(ctx); !errors.Is(err, ErrNoWorker) || !errors.Is(err, context.DeadlineExceeded) || s != nil {
		t.Errorf("Acquire with every slot busy = %v, %v; want ErrNoWorker wrapping DeadlineExceeded", s, err)
	}
	if f.waiters() != 0 {
		t.Errorf("%d waiters left after a timed-out Acquire", f.waiters())
	}

	f.g.Release(slots[1], true)
	if w, _ := f.worker(slots[1].PID()); w.Busy != 1 {
		t.Errorf("after Release: worker %+v, want busy 1", w)
	}
	s := f.g.TryAcquire()
	if s != slots[1] {
		t.Fatalf("TryAcquire after Release = %v, want the released slot", s)
	}
	roundTrip(t, s)
	for _, s := range slots {
		f.g.Release(s, true)
	}
	for _, w := range f.g.Workers() {
		if w.Busy != 0 || w.State != StateReady {
			t.Errorf("after releasing everything: %+v", w)
		}
	}
}

// Slots go to the least busy process, so two requests land on two
// processes rather than two threads of one.
func TestLeastBusy(t *testing.T) {
	t.Parallel()
	tests := []struct{ processes, threads, acquire int }{
		{2, 2, 2},
		{2, 2, 4},
		{3, 2, 5},
		{3, 4, 9},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dx%d", tt.processes, tt.threads), func(t *testing.T) {
			t.Parallel()
			f := startGroup(t, "ok", Config{Processes: tt.processes, Threads: tt.threads})
			var slots []*Slot
			for i := range tt.acquire {
				slots = append(slots, acquire(t, f.g))
				lo, hi := tt.threads, 0
				for _, w := range f.g.Workers() {
					lo, hi = min(lo, w.Busy), max(hi, w.Busy)
				}
				if hi-lo > 1 {
					t.Fatalf("after %d acquires busy counts range %d..%d: %+v", i+1, lo, hi, f.g.Workers())
				}
			}
			if tt.acquire >= 2 && slots[0].PID() == slots[1].PID() {
				t.Errorf("the first two slots are both of worker %d", slots[0].PID())
			}
			for _, s := range slots {
				f.g.Release(s, true)
			}
		})
	}
}

// A released slot goes straight to the oldest waiter.
func TestAcquireWaitsForRelease(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 1, Threads: 1})
	s := acquire(t, f.g)
	first := asyncAcquire(f.g, 10*time.Second)
	whisktest.WaitFor(t, 5*time.Second, "waiting for the first waiter to queue", func() bool { return f.waiters() == 1 })
	second := asyncAcquire(f.g, 10*time.Second)
	whisktest.WaitFor(t, 5*time.Second, "waiting for the second waiter to queue", func() bool { return f.waiters() == 2 })

	select {
	case a := <-first:
		t.Fatalf("Acquire returned %v, %v with no slot free", a.s, a.err)
	default:
	}
	f.g.Release(s, true)
	a := receive(t, first)
	if a.err != nil || a.s != s {
		t.Fatalf("first waiter got %v, %v; want the released slot", a.s, a.err)
	}
	roundTrip(t, a.s)
	if w := f.g.Workers()[0]; w.Busy != 1 || w.Served != 2 {
		t.Errorf("after the hand-off: %+v, want busy 1 served 2", w)
	}
	select {
	case a := <-second:
		t.Fatalf("second waiter got %v, %v before a second release", a.s, a.err)
	default:
	}
	f.g.Release(a.s, true)
	b := receive(t, second)
	if b.err != nil || b.s != s {
		t.Fatalf("second waiter got %v, %v; want the slot", b.s, b.err)
	}
	f.g.Release(b.s, true)
	if w := f.g.Workers()[0]; w.Busy != 0 || w.Served != 3 {
		t.Errorf("at the end: %+v, want busy 0 served 3", w)
	}
}

func TestAcquireTimeout(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 1, Threads: 1})
	s := acquire(t, f.g)
	defer f.g.Release(s, true)
	began := time.Now()
	a := receive(t, asyncAcquire(f.g, 100*time.Millisecond))
	if !errors.Is(a.err, ErrNoWorker) || !errors.Is(a.err, context.DeadlineExceeded) {
		t.Fatalf("Acquire = %v, want ErrNoWorker wrapping context.DeadlineExceeded", a.err)
	}
	if took := time.Since(began); took < 100*time.Millisecond {
		t.Errorf("Acquire gave up after %v, before its context ended", took)
	}
	if f.waiters() != 0 {
		t.Errorf("%d waiters left", f.waiters())
	}
	// A cancelled context behaves the same.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.g.Acquire(ctx); !errors.Is(err, ErrNoWorker) || !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with a cancelled context = %v", err)
	}
}

// TryAcquire never jumps the queue: with a waiter queued it returns nil
// even if a slot is idle (the waiter is about to get it).
func TestTryAcquireWithWaiters(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 1, Threads: 2})
	dummy := make(chan grant, 1)
	f.g.mu.Lock()
	f.g.waiters = append(f.g.waiters, dummy)
	f.g.mu.Unlock()
	if s := f.g.TryAcquire(); s != nil {
		t.Errorf("TryAcquire with a waiter queued = slot of %d, want nil", s.PID())
	}
	f.g.mu.Lock()
	f.g.waiters = slices.DeleteFunc(f.g.waiters, func(c chan grant) bool { return c == dummy })
	f.g.mu.Unlock()
	s := f.g.TryAcquire()
	if s == nil {
		t.Fatal("TryAcquire with an idle slot and no waiter = nil")
	}
	f.g.Release(s, true)
}

// A worker killed from outside is respawned; the others keep serving, and
// the backoff before the respawn holds no lock.
func TestRespawnAfterCrash(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 2, Threads: 1})
	pids := f.pids()
	victim, survivor := pids[0], pids[1]
	f.setMode(t, "import-delay=1s") // the replacement takes a while
	syscall.Kill(victim, syscall.SIGKILL)
	whisktest.WaitFor(t, 5*time.Second, "waiting for the dead worker to leave Workers", func() bool {
		_, ok := f.worker(victim)
		return !ok
	})
	// While the replacement is on its way, the survivor serves at once.
	f.g.mu.Lock()
	pending := f.g.spawning
	f.g.mu.Unlock()
	if pending != 1 {
		t.Errorf("%d spawns under way after a crash, want 1", pending)
	}
	// The acquire deadline (500ms) is shorter than the replacement's import
	// (1s): a slot that arrives at all came from the survivor, without
	// waiting for the respawn.
	for range 3 {
		s := f.g.TryAcquire()
		if s == nil {
			a := receive(t, asyncAcquire(f.g, 500*time.Millisecond))
			if a.err != nil {
				t.Fatalf("Acquire during the respawn: %v", a.err)
			}
			s = a.s
		}
		if s.PID() != survivor {
			t.Errorf("slot of %d during the respawn, want the survivor %d", s.PID(), survivor)
		}
		roundTrip(t, s)
		f.g.Release(s, true)
	}
	whisktest.WaitFor(t, 10*time.Second, "waiting for a replacement worker", func() bool {
		ps := f.pids()
		return len(ps) == 2 && f.settled() && slices.Contains(ps, survivor) && !slices.Contains(ps, victim)
	})
	if !f.settled() || len(f.g.Workers()) != 2 {
		t.Errorf("workers after the respawn: %+v", f.g.Workers())
	}
	if len(fakeworker.Lines(f.logs, "worker exited unexpectedly; respawning", fmt.Sprintf("pid=%d", victim))) != 1 {
		t.Error("no warning about the crash")
	}
	if got := f.g.Status().Restarts; got[RestartCrash] != 1 || len(got) != 1 {
		t.Errorf("restarts after a crash: %v, want one %s", got, RestartCrash)
	}
}

// A worker that dies during a request: the holder sees the channel fail
// and releases the slot unhealthy; exactly one replacement comes.
func TestCrashDuringRequest(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 1, Threads: 2})
	s := acquire(t, f.g)
	old := s.PID()
	if _, err := fakeworker.Request(t, s.Conn(), s.NextStream(), "/crash"); err == nil {
		t.Fatal("a crashing request got an answer")
	}
	f.g.Release(s, false)
	whisktest.WaitFor(t, 10*time.Second, "waiting for one replacement worker", func() bool {
		ps := f.pids()
		return len(ps) == 1 && ps[0] != old && f.settled()
	})
	s = acquire(t, f.g)
	roundTrip(t, s)
	f.g.Release(s, true)
	if fakeworker.Alive(old) {
		t.Errorf("crashed worker %d not reaped", old)
	}
	// Counted once: by the broken channel, not again when the process exits.
	if got := f.g.Restarts(); got[RestartCrash] != 1 || len(got) != 1 {
		t.Errorf("restarts after a crash during a request: %v, want one %s", got, RestartCrash)
	}
}

// Past MaxRequests a worker's replacement is started; the old worker takes
// no new request once the replacement is ready, and it is stopped only
// after its last busy slot is released.
func TestMaxRequestsRecycle(t *testing.T) {
	t.Parallel()
	var hooked []string
	var hookMu sync.Mutex
	f := startGroup(t, "ok", Config{Processes: 1, Threads: 2, MaxRequests: 3, OnRestart: func(reason string) {
		hookMu.Lock()
		hooked = append(hooked, reason)
		hookMu.Unlock()
	}})
	old := f.pids()[0]
	for range 2 {
		s := acquire(t, f.g)
		roundTrip(t, s)
		f.g.Release(s, true)
	}
	if len(f.pids()) != 1 {
		t.Fatalf("a replacement started after 2 of 3 requests: %+v", f.g.Workers())
	}
	held := acquire(t, f.g) // the third request: the limit
	if held.PID() != old {
		t.Fatalf("third slot from %d, want %d", held.PID(), old)
	}
	var repl int
	whisktest.WaitFor(t, 10*time.Second, "waiting for the replacement to be ready", func() bool {
		for _, w := range f.g.Workers() {
			if w.PID != old && w.State == StateReady {
				repl = w.PID
				return true
			}
		}
		return false
	})
	w, ok := f.worker(old)
	if !ok || w.State != StateRetiring || w.Busy != 1 {
		t.Fatalf("old worker after the replacement is ready: %+v (listed %v), want retiring with 1 busy", w, ok)
	}
	// Every new slot comes from the replacement, none from the old worker.
	var fresh []*Slot
	for range 2 {
		s := acquire(t, f.g)
		if s.PID() != repl {
			t.Errorf("slot of %d after the replacement %d was ready", s.PID(), repl)
		}
		roundTrip(t, s)
		fresh = append(fresh, s)
	}
	if s := f.g.TryAcquire(); s != nil {
		t.Errorf("TryAcquire = slot of %d with the replacement's slots all busy", s.PID())
	}
	// The old worker still serves its request in progress.
	if !fakeworker.Alive(old) {
		t.Fatal("old worker stopped with a request in progress")
	}
	roundTrip(t, held)
	if n := f.stops(old); n != 0 {
		t.Fatalf("old worker got %d STOP with a busy slot", n)
	}
	f.g.Release(held, true)
	whisktest.WaitFor(t, 10*time.Second, "waiting for the old worker to stop", func() bool {
		_, listed := f.worker(old)
		return !listed && !fakeworker.Alive(old)
	})
	if n := f.stops(old); n != 1 {
		t.Errorf("old worker got %d STOP frames, want 1", n)
	}
	for _, s := range fresh {
		f.g.Release(s, true)
	}
	if ws := f.g.Workers(); len(ws) != 1 || ws[0].PID != repl {
		t.Errorf("workers at the end: %+v, want only %d", ws, repl)
	}
	if len(fakeworker.Lines(f.logs, "recycling worker", "reason=max_requests", fmt.Sprintf("pid=%d", old))) != 1 {
		t.Error("no log line about the recycling")
	}
	if got := f.g.Restarts(); got[RestartMaxRequests] != 1 || len(got) != 1 {
		t.Errorf("Restarts() = %v, want one %s", got, RestartMaxRequests)
	}
	hookMu.Lock()
	defer hookMu.Unlock()
	if !slices.Equal(hooked, []string{RestartMaxRequests}) {
		t.Errorf("OnRestart got %q, want [%s]", hooked, RestartMaxRequests)
	}
}

// Slot.Begin records the request a slot serves: Workers lists it with its
// age until Release clears it; Idle counts the free slots.
func TestCurrentRequests(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 1, Threads: 3})
	a, b := acquire(t, f.g), acquire(t, f.g)
	before := time.Now()
	a.Begin("GET", "/first")
	time.Sleep(5 * time.Millisecond)
	b.Begin("POST", "/second")
	ws := f.g.Workers()
	if len(ws) != 1 {
		t.Fatalf("workers: %+v", ws)
	}
	w := ws[0]
	if w.Busy != 2 || w.Idle != 1 {
		t.Errorf("busy %d, idle %d; want 2 and 1", w.Busy, w.Idle)
	}
	if len(w.Requests) != 2 || w.Requests[0].Method != "GET" || w.Requests[0].Path != "/first" ||
		w.Requests[1].Method != "POST" || w.Requests[1].Path != "/second" || w.Requests[0].Since.Before(before) {
		t.Fatalf("requests: %+v, want GET /first then POST /second", w.Requests)
	}
	f.g.Release(a, true)
	if rs := f.g.Workers()[0].Requests; len(rs) != 1 || rs[0].Path != "/second" {
		t.Errorf("requests after one release: %+v, want only /second", rs)
	}
	f.g.Release(b, true)
	// A slot taken without Begin shows no request.
	c := acquire(t, f.g)
	if rs := f.g.Workers()[0].Requests; len(rs) != 0 {
		t.Errorf("requests after release: %+v, want none", rs)
	}
	f.g.Release(c, true)
}

// CanServe: a ready worker, or an idle (not failed) group; not a group
// that is starting, failed without a worker, or stopping.
func TestStatusCanServe(t *testing.T) {
	ready := []WorkerInfo{{PID: 1, State: StateReady}}
	retiring := []WorkerInfo{{PID: 1, State: StateRetiring}}
	tests := []struct {
		name string
		st   Status
		want bool
	}{
		{"ready worker", Status{Workers: ready}, true},
		{"failed but a worker serves", Status{Workers: ready, Failed: true}, true},
		{"only a retiring worker", Status{Workers: retiring}, false},
		{"starting", Status{}, false},
		{"idle", Status{Idle: true}, true},
		{"idle and failed", Status{Idle: true, Failed: true}, false},
		{"failed", Status{Failed: true}, false},
		{"stopping", Status{Workers: ready, Stopping: true}, false},
	}
	for _, tt := range tests {
		if got := tt.st.CanServe(); got != tt.want {
			t.Errorf("%s: CanServe() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A request handed straight from Release to a waiter counts towards
// MaxRequests like any other: a worker kept busy by a queue must still be
// recycled.
func TestMaxRequestsCountsHandOffs(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 1, Threads: 1, MaxRequests: 2})
	old := f.pids()[0]
	s := acquire(t, f.g) // request 1
	waiting := asyncAcquire(f.g, 10*time.Second)
	whisktest.WaitFor(t, 5*time.Second, "waiting for the waiter to queue", func() bool { return f.waiters() == 1 })
	f.g.Release(s, true) // request 2 goes to the waiter
	a := receive(t, waiting)
	if a.err != nil {
		t.Fatal(a.err)
	}
	defer f.g.Release(a.s, true)
	if w, _ := f.worker(old); w.Served != 2 {
		t.Fatalf("worker %+v, want served 2", w)
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && len(f.pids()) == 1 {
		time.Sleep(10 * time.Millisecond)
	}
	if len(f.pids()) == 1 {
		t.Errorf("worker %d served %d requests (MaxRequests 2), the last one handed off by Release, and no replacement was started: Release's hand-off skips the limit check of takeIdle",
			old, f.g.Workers()[0].Served)
	}
}

// Release(s, false) retires the worker (stopped at once if idle) and
// starts one replacement.
func TestReleaseUnhealthy(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 1, Threads: 2})
	s := acquire(t, f.g)
	old := s.PID()
	f.g.Release(s, false)
	if _, err := s.Conn().ReadFrame(); err == nil {
		t.Error("the broken slot's channel is still open")
	}
	whisktest.WaitFor(t, 10*time.Second, "waiting for one replacement worker", func() bool {
		ps := f.pids()
		return len(ps) == 1 && ps[0] != old && f.settled()
	})
	if fakeworker.Alive(old) {
		t.Errorf("retired worker %d still running", old)
	}
	s = acquire(t, f.g)
	roundTrip(t, s)
	f.g.Release(s, true)
}

// The worker is retired once: Release(s, false) on its last busy slot both
// retires it (retireLocked starts retire when busy is 0) and then, seeing
// it retiring and idle, starts retire again, so two Shutdowns run and the
// worker gets two STOP frames (and two escalations if it ignores them).
func TestReleaseUnhealthyRetiresOnce(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "stop-delay=300ms", Config{Processes: 1, Threads: 2})
	s := acquire(t, f.g)
	old := s.PID()
	f.g.Release(s, false)
	whisktest.WaitFor(t, 10*time.Second, "waiting for the retired worker to exit", func() bool { return !fakeworker.Alive(old) })
	if n := f.stops(old); n != 1 {
		t.Errorf("retired worker got %d STOP frames, want 1", n)
	}
}

// A broken channel on a worker whose max-requests replacement is already
// being started must not start a second replacement.
func TestReleaseUnhealthyDuringRecycle(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 1, Threads: 2, MaxRequests: 1})
	s := acquire(t, f.g) // reaches the limit: a replacement is spawned
	old := s.PID()
	f.g.Release(s, false)
	whisktest.WaitFor(t, 10*time.Second, "waiting for the spawns to finish and the old worker to stop", func() bool {
		_, listed := f.worker(old)
		return f.settled() && !listed
	})
	if ws := f.g.Workers(); len(ws) != 1 {
		t.Errorf("%d workers after recycling 1 of 1 (%+v): the max-requests replacement and the broken-channel replacement were both started", len(ws), ws)
	}
}

// Stop refuses new requests at once, waits for busy slots, then stops the
// processes and returns after they exited.
func TestStopWaitsForBusySlots(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 2, Threads: 1})
	pids := f.pids()
	held := acquire(t, f.g)
	other := acquire(t, f.g)
	queued := asyncAcquire(f.g, 10*time.Second)
	whisktest.WaitFor(t, 5*time.Second, "waiting for a waiter", func() bool { return f.waiters() == 1 })
	f.g.Release(other, true) // handed to the waiter
	a := receive(t, queued)
	if a.err != nil {
		t.Fatal(a.err)
	}
	late := asyncAcquire(f.g, 10*time.Second)
	whisktest.WaitFor(t, 5*time.Second, "waiting for a second waiter", func() bool { return f.waiters() == 1 })

	stopped := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		f.g.Stop(ctx)
		close(stopped)
	}()
	// The waiter is turned away; new requests too.
	if l := receive(t, late); !errors.Is(l.err, ErrStopped) {
		t.Errorf("queued Acquire during Stop = %v, want ErrStopped", l.err)
	}
	if _, err := f.g.Acquire(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("Acquire during Stop = %v, want ErrStopped", err)
	}
	if s := f.g.TryAcquire(); s != nil {
		t.Error("TryAcquire during Stop returned a slot")
	}
	// Requests in progress still complete.
	roundTrip(t, held)
	roundTrip(t, a.s)
	f.g.Release(held, true)
	select {
	case <-stopped:
		t.Fatal("Stop returned with a slot still busy")
	default:
	}
	for _, pid := range pids {
		if !fakeworker.Alive(pid) {
			t.Errorf("worker %d stopped with a slot busy", pid)
		}
	}
	f.g.Release(a.s, true)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return after the last slot was released")
	}
	for _, pid := range pids {
		if fakeworker.Alive(pid) {
			t.Errorf("worker %d still running after Stop returned", pid)
		}
		if n := f.stops(pid); n != 1 {
			t.Errorf("worker %d got %d STOP frames, want 1", pid, n)
		}
	}
}

func TestStopBoundedByContext(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 1, Threads: 1})
	pid := f.pids()[0]
	s := acquire(t, f.g) // never released before Stop
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	f.g.Stop(ctx)
	if took := time.Since(began); took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("Stop with a busy slot and a 300ms context took %v", took)
	}
	if fakeworker.Alive(pid) {
		t.Errorf("worker %d still running after Stop returned", pid)
	}
	if len(fakeworker.Lines(f.logs, "stopping with requests still in progress", "busy=1")) != 1 {
		t.Error("no warning about the request cut short")
	}
	// The late Release of a slot of a stopped group is harmless.
	f.g.Release(s, true)
	if s := f.g.TryAcquire(); s != nil {
		t.Error("TryAcquire after Stop returned a slot")
	}
}

// Stop must not return while a worker it will never stop is being
// spawned: a respawn under way when Stop is called finishes afterwards, and
// its worker outlives Stop (add sees the group stopping and retires it in
// the background).
func TestStopDuringRespawn(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 1, Threads: 1})
	victim := f.pids()[0]
	f.setMode(t, "import-delay=700ms")
	syscall.Kill(victim, syscall.SIGKILL)
	var repl int
	whisktest.WaitFor(t, 10*time.Second, "waiting for the respawned worker's process", func() bool {
		for _, pid := range fakeworker.PIDs(t, f.pidDir) {
			if pid != victim {
				repl = pid
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.g.Stop(ctx)
	if fakeworker.Alive(repl) {
		t.Errorf("worker %d, spawned before Stop, still running after Stop returned", repl)
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateReady: "ready", StateRetiring: "retiring", StateDead: "dead", State(7): "State(7)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int(s), got, want)
		}
	}
}

// Pinned workers get distinct CPUs, and a respawned worker takes the CPU
// its predecessor left; the kernel's own affinity mask says so.
func TestPinCPUs(t *testing.T) {
	t.Parallel()
	allowed, err := proc.AllowedCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(allowed) < 2 {
		t.Skipf("needs two usable CPUs, have %v", allowed)
	}
	cpus := allowed[:2]
	f := startGroup(t, "ok", Config{Processes: 2, Threads: 2, PinCPUs: cpus})
	check := func() map[int]int {
		t.Helper()
		got := map[int]int{} // cpu -> pid
		for _, w := range f.g.Workers() {
			var set unix.CPUSet
			if err := unix.SchedGetaffinity(w.PID, &set); err != nil {
				t.Fatalf("affinity of %d: %v", w.PID, err)
			}
			if set.Count() != 1 || !set.IsSet(w.CPU) {
				t.Fatalf("worker %d: Workers() says CPU %d, kernel mask has %d CPUs", w.PID, w.CPU, set.Count())
			}
			got[w.CPU] = w.PID
		}
		if len(got) != 2 || got[cpus[0]] == 0 || got[cpus[1]] == 0 {
			t.Fatalf("workers on CPUs %v, want one on each of %v", got, cpus)
		}
		return got
	}
	before := check()
	victim := before[cpus[1]]
	syscall.Kill(victim, syscall.SIGKILL)
	whisktest.WaitFor(t, 10*time.Second, "waiting for the replacement", func() bool {
		ps := f.pids()
		return len(ps) == 2 && f.settled() && !slices.Contains(ps, victim)
	})
	after := check()
	if after[cpus[0]] != before[cpus[0]] {
		t.Errorf("the survivor moved: %v -> %v", before, after)
	}
}

func TestDjango(t *testing.T) {
	t.Parallel()
	if d := startGroup(t, "ok", Config{}).g.Django(); d != nil {
		t.Errorf("Django() = %+v for an app that reported none, want nil", d)
	}
	f := newGroup(t, "django", Config{Processes: 2})
	if d := f.g.Django(); d != nil {
		t.Errorf("Django() = %+v before Start, want nil", d)
	}
	f.start(t)
	want := proc.Django{StaticURL: "static/", StaticRoot: "/srv/static"}
	d := f.g.Django()
	if d == nil || *d != want {
		t.Fatalf("Django() = %+v, want %+v", d, want)
	}
	d.StaticRoot = "/elsewhere" // a copy: the group's report stays
	if d := f.g.Django(); d == nil || *d != want {
		t.Errorf("Django() after changing a copy = %+v, want %+v", d, want)
	}
}
