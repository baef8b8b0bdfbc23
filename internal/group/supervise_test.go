package group

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/proc"
	"github.com/whiskserver/whisk/internal/whisktest"
	"github.com/whiskserver/whisk/internal/whisktest/fakeworker"
)

// spawned counts the fake workers the fixture has started so far.
func (f *fixture) spawned(t *testing.T) int {
	t.Helper()
	return len(fakeworker.PIDs(t, f.pidDir))
}

// readyPID returns a ready worker that is not being recycled and is not
// in except, or 0.
func (f *fixture) readyPID(except ...int) int {
	for _, w := range f.g.Workers() {
		if w.State == StateReady && !w.Recycling && !slices.Contains(except, w.PID) {
			return w.PID
		}
	}
	return 0
}

// checkSlots fails the test unless every worker is ready, idle, and holds
// exactly threads idle slots: no slot was lost or counted twice.
func (f *fixture) checkSlots(t *testing.T, threads int) {
	t.Helper()
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	for _, w := range f.g.workers {
		if w.state != StateReady || w.busy != 0 || len(w.idle) != threads {
			t.Errorf("worker %d: state %v busy %d idle slots %d, want ready, 0, %d", w.p.PID, w.state, w.busy, len(w.idle), threads)
		}
	}
	if len(f.g.waiters) != 0 {
		t.Errorf("%d waiters left", len(f.g.waiters))
	}
}

func TestMaxQueueDefaults(t *testing.T) {
	tests := []struct{ cfg, want int }{
		{0, DefaultMaxQueue},
		{-1, 0},
		{1, 1},
		{5000, 5000},
	}
	for _, tt := range tests {
		g := &Group{cfg: Config{MaxQueue: tt.cfg}}
		if got := g.maxQueue(); got != tt.want {
			t.Errorf("MaxQueue %d: %d waiters allowed, want %d", tt.cfg, got, tt.want)
		}
	}
}

// With MaxQueue requests waiting, one more fails at once with
// ErrQueueFull (its context would let it wait 10s); a negative MaxQueue
// lets no request wait.
func TestQueueFull(t *testing.T) {
	t.Parallel()
	tests := []struct {
		maxQueue int
		waiting  int // requests that may wait
	}{
		{1, 1},
		{3, 3},
		{-1, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.maxQueue), func(t *testing.T) {
			t.Parallel()
			f := startGroup(t, "ok", Config{Processes: 1, Threads: 1, MaxQueue: tt.maxQueue})
			held := acquire(t, f.g)
			var queued []<-chan acquired
			for i := range tt.waiting {
				queued = append(queued, asyncAcquire(f.g, 10*time.Second))
				whisktest.WaitFor(t, 5*time.Second, "waiting for a waiter to queue", func() bool { return f.waiters() == i+1 })
			}
			a := receive(t, asyncAcquire(f.g, 10*time.Second))
			if !errors.Is(a.err, ErrQueueFull) || a.s != nil {
				t.Fatalf("Acquire with %d waiting (MaxQueue %d) = %v, %v; want ErrQueueFull", tt.waiting, tt.maxQueue, a.s, a.err)
			}
			if errors.Is(a.err, ErrNoWorker) {
				t.Errorf("ErrQueueFull matches ErrNoWorker: %v", a.err)
			}
			// The waiters are served in turn.
			f.g.Release(held, true)
			for _, q := range queued {
				b := receive(t, q)
				if b.err != nil {
					t.Fatalf("queued Acquire: %v", b.err)
				}
				roundTrip(t, b.s)
				f.g.Release(b.s, true)
			}
			f.checkSlots(t, 1)
		})
	}
}

// A request that waits past QueueTimeout fails with ErrQueueTimeout,
// though its own context would let it wait longer, and leaves the queue.
func TestQueueTimeout(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 1, Threads: 1, QueueTimeout: 100 * time.Millisecond})
	if got := f.g.QueueTimeout(); got != 100*time.Millisecond {
		t.Errorf("QueueTimeout() = %v", got)
	}
	held := acquire(t, f.g)
	a := receive(t, asyncAcquire(f.g, time.Minute))
	if !errors.Is(a.err, ErrQueueTimeout) || !errors.Is(a.err, ErrNoWorker) || errors.Is(a.err, context.DeadlineExceeded) {
		t.Fatalf("Acquire = %v, want ErrQueueTimeout (an ErrNoWorker), not the context's deadline", a.err)
	}
	if f.waiters() != 0 {
		t.Errorf("%d waiters left after the queue timeout", f.waiters())
	}
	// A context shorter than the queue timeout still wins.
	a = receive(t, asyncAcquire(f.g, 10*time.Millisecond))
	if errors.Is(a.err, ErrQueueTimeout) || !errors.Is(a.err, context.DeadlineExceeded) {
		t.Errorf("Acquire with a 10ms context = %v, want ErrNoWorker wrapping DeadlineExceeded", a.err)
	}
	f.g.Release(held, true)
	s := acquire(t, f.g)
	f.g.Release(s, true)
	f.checkSlots(t, 1)
}

// Recycle starts the worker's replacement; once it is ready the old worker
// takes no new request, finishes the one it has, and gets one STOP. A
// second Recycle of the same worker and a Recycle of an unknown pid do
// nothing.
func TestRecycle(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 2, Threads: 2})
	before := f.spawned(t)
	held := acquire(t, f.g)
	old := held.PID()
	f.g.Recycle(1<<30, "unknown")
	f.g.Recycle(old, "test")
	f.g.Recycle(old, "again")
	whisktest.WaitFor(t, 10*time.Second, "waiting for the replacement to be ready and the old worker retiring", func() bool {
		w, ok := f.worker(old)
		return ok && w.State == StateRetiring && len(f.g.Workers()) == 3 && f.settledExcept(old)
	})
	if n := f.spawned(t) - before; n != 1 {
		t.Errorf("%d workers spawned for one recycle (called twice, plus an unknown pid), want 1", n)
	}
	for range 8 {
		s := acquire(t, f.g)
		if s.PID() == old {
			t.Errorf("slot of the retiring worker %d", old)
		}
		roundTrip(t, s)
		f.g.Release(s, true)
	}
	roundTrip(t, held) // its request in progress still completes
	if f.stops(old) != 0 {
		t.Fatal("old worker got STOP with a request in progress")
	}
	f.g.Release(held, true)
	whisktest.WaitFor(t, 10*time.Second, "waiting for the old worker to stop", func() bool {
		_, listed := f.worker(old)
		return !listed && !fakeworker.Alive(old)
	})
	if n := f.stops(old); n != 1 {
		t.Errorf("old worker got %d STOP frames, want 1", n)
	}
	if n := len(fakeworker.Lines(f.logs, "recycling worker", "reason=timeout", "detail=test", fmt.Sprintf("pid=%d", old))); n != 1 {
		t.Errorf("%d log lines about recycling %d with reason=timeout detail=test, want 1", n, old)
	}
	if got := f.g.Restarts(); got[RestartTimeout] != 1 || len(got) != 1 {
		t.Errorf("Restarts() = %v, want one %s", got, RestartTimeout)
	}
	f.checkSlots(t, 2)
}

// settledExcept is settled, ignoring the worker pid.
func (f *fixture) settledExcept(pid int) bool {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	if f.g.spawning != 0 {
		return false
	}
	for _, w := range f.g.workers {
		if w.p.PID != pid && w.state != StateReady {
			return false
		}
	}
	return true
}

// Recycles while clients keep acquiring and releasing: every request gets
// a slot and an answer, and at the end every slot is back, once.
func TestRecycleUnderLoad(t *testing.T) {
	t.Parallel()
	const processes, threads, clients, recycles = 2, 2, 8, 5
	f := startGroup(t, "ok", Config{Processes: processes, Threads: threads, QueueTimeout: 10 * time.Second})
	var stop atomic.Bool
	var served atomic.Int64
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				s, err := f.g.Acquire(context.Background())
				if err != nil {
					errs <- fmt.Errorf("Acquire: %w", err)
					return
				}
				info, err := fakeworker.Request(t, s.Conn(), s.NextStream(), "/")
				f.g.Release(s, err == nil)
				if err != nil || info.PID != s.PID() {
					errs <- fmt.Errorf("request on a slot of %d: answered by %d, %v", s.PID(), info.PID, err)
					return
				}
				served.Add(1)
			}
		}()
	}
	var recycled []int
	for range recycles {
		var pid int
		whisktest.WaitFor(t, 10*time.Second, "waiting for a ready worker to recycle", func() bool {
			pid = f.readyPID(recycled...)
			return pid != 0
		})
		f.g.Recycle(pid, "test")
		recycled = append(recycled, pid)
		whisktest.WaitFor(t, 10*time.Second, "waiting for the recycled worker to stop", func() bool {
			_, listed := f.worker(pid)
			return !listed
		})
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if served.Load() == 0 {
		t.Error("no request served")
	}
	whisktest.WaitFor(t, 10*time.Second, "waiting for the group to settle", f.settled)
	if ws := f.g.Workers(); len(ws) != processes {
		t.Errorf("%d workers after the recycles, want %d: %+v", len(ws), processes, ws)
	}
	f.checkSlots(t, threads)
	for _, pid := range recycled {
		if n := f.stops(pid); n != 1 {
			t.Errorf("recycled worker %d got %d STOP frames, want 1", pid, n)
		}
		if len(fakeworker.Lines(f.logs, "REQUEST after STOP", fmt.Sprintf("pid=%d", pid))) != 0 {
			t.Errorf("recycled worker %d got a request after STOP", pid)
		}
	}
}

// fakeMemory is a Group.readMemory whose values the test sets per pid.
type fakeMemory struct {
	mu  sync.Mutex
	uss map[int]int64
}

func (m *fakeMemory) set(pid int, uss int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.uss[pid] = uss
}

func (m *fakeMemory) read(pid int) (Memory, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if uss, ok := m.uss[pid]; ok {
		return Memory{USS: uss, PSS: uss + 1, RSS: uss + 2}, nil
	}
	return Memory{USS: 1 << 20, PSS: 1<<20 + 1, RSS: 1<<20 + 2}, nil
}

// A worker whose memory goes over MaxRSS is recycled gracefully; the
// others are left alone, and requests keep being served throughout.
func TestMaxRSS(t *testing.T) {
	t.Parallel()
	const limit = 100 << 20
	f := newGroup(t, "ok", Config{Processes: 2, Threads: 2, MaxRSS: limit, MemoryInterval: 10 * time.Millisecond})
	mem := &fakeMemory{uss: map[int]int64{}}
	f.g.readMemory = mem.read
	f.start(t)
	pids := f.pids()
	fat, thin := pids[0], pids[1]
	whisktest.WaitFor(t, 5*time.Second, "waiting for a memory sample", func() bool {
		w, _ := f.worker(fat)
		return w.Memory == 1<<20
	})
	// One slot on each worker (the least busy first); keep fat's busy.
	held, other := acquire(t, f.g), acquire(t, f.g)
	if held.PID() != fat {
		held, other = other, held
	}
	f.g.Release(other, true)
	mem.set(fat, limit) // at the limit is not over it
	mem.set(thin, limit-1)
	whisktest.WaitFor(t, 5*time.Second, "waiting for the samples at the limit", func() bool {
		a, _ := f.worker(fat)
		b, _ := f.worker(thin)
		return a.Memory == limit && b.Memory == limit-1
	})
	if len(f.g.Workers()) != 2 || f.spawned(t) != 2 {
		t.Fatalf("workers at the limit were recycled: %+v", f.g.Workers())
	}
	mem.set(fat, limit+1)
	whisktest.WaitFor(t, 10*time.Second, "waiting for the worker over max_rss to be replaced", func() bool {
		w, ok := f.worker(fat)
		return ok && w.State == StateRetiring && len(f.g.Workers()) == 3
	})
	for range 6 {
		s := acquire(t, f.g)
		if s.PID() == fat {
			t.Errorf("slot of the worker over max_rss after its replacement was ready")
		}
		roundTrip(t, s)
		f.g.Release(s, true)
	}
	roundTrip(t, held)
	f.g.Release(held, true)
	whisktest.WaitFor(t, 10*time.Second, "waiting for the worker over max_rss to stop", func() bool {
		_, listed := f.worker(fat)
		return !listed && !fakeworker.Alive(fat)
	})
	if _, ok := f.worker(thin); !ok {
		t.Errorf("worker %d under the limit was recycled", thin)
	}
	if f.spawned(t) != 3 {
		t.Errorf("%d workers spawned, want 3 (one replacement, once)", f.spawned(t))
	}
	if len(fakeworker.Lines(f.logs, "recycling worker", "reason=max_rss", fmt.Sprintf("pid=%d", fat), fmt.Sprintf("memory=%d", limit+1))) != 1 {
		t.Error("no single log line about the max_rss recycle with the memory")
	}
	if got := f.g.Restarts(); got[RestartMaxRSS] != 1 || len(got) != 1 {
		t.Errorf("Restarts() = %v, want one %s", got, RestartMaxRSS)
	}
	if w, _ := f.worker(thin); w.Memory != limit-1 || w.PSS != limit || w.RSS != limit+1 {
		t.Errorf("worker memory %d/%d/%d, want USS/PSS/RSS %d/%d/%d", w.Memory, w.PSS, w.RSS, limit-1, limit, limit+1)
	}
}

// The real sampler reads the fake workers' own memory.
func TestMemorySampled(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 2, Threads: 1, MemoryInterval: 10 * time.Millisecond})
	whisktest.WaitFor(t, 5*time.Second, "waiting for every worker's memory", func() bool {
		for _, w := range f.g.Workers() {
			if w.Memory <= 0 {
				return false
			}
		}
		return true
	})
	// A negative interval turns sampling off.
	g := startGroup(t, "ok", Config{Processes: 1, Threads: 1, MemoryInterval: -1})
	time.Sleep(50 * time.Millisecond)
	if w := g.g.Workers()[0]; w.Memory != 0 {
		t.Errorf("memory sampled with MemoryInterval -1: %+v", w)
	}
}

// parseMemory reads RSS and PSS beside USS.
func TestParseMemory(t *testing.T) {
	m, err := parseMemory([]byte("Rss: 1752 kB\nPss: 427 kB\nPss_Anon: 9 kB\nPrivate_Clean: 52 kB\nPrivate_Dirty: 112 kB\n"))
	if want := (Memory{USS: 164 << 10, PSS: 427 << 10, RSS: 1752 << 10}); err != nil || m != want {
		t.Errorf("parseMemory = %+v, %v; want %+v", m, err, want)
	}
	self, err := readMemoryFile(syscall.Getpid())
	if err != nil || self.USS <= 0 || self.PSS < self.USS || self.RSS < self.PSS {
		t.Errorf("readMemoryFile(self) = %+v, %v; want 0 < USS <= PSS <= RSS", self, err)
	}
}

func TestParseUSS(t *testing.T) {
	rollup := `55d0a4a00000-7ffd5a9f5000 ---p 00000000 00:00 0                          [rollup]
Rss:                1752 kB
Pss:                 427 kB
Shared_Clean:       1588 kB
Shared_Dirty:          0 kB
Private_Clean:        52 kB
Private_Dirty:       112 kB
Private_Hugetlb:       0 kB
Swap:                  0 kB
`
	smaps := `00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/python3
Size:                328 kB
Private_Clean:         4 kB
Private_Dirty:         0 kB
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
Size:                132 kB
Private_Clean:         0 kB
Private_Dirty:        16 kB
`
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr string
	}{
		{"rollup", rollup, (52 + 112) << 10, ""},
		{"smaps sums every mapping", smaps, 20 << 10, ""},
		{"empty (a zombie)", "", 0, "no Private_Clean"},
		{"no private fields", "Rss: 4 kB\n", 0, "no Private_Clean"},
		{"bad unit", "Private_Clean: 4 MB\n", 0, "is not"},
		{"bad number", "Private_Dirty: x kB\n", 0, "bad size"},
		{"negative", "Private_Dirty: -4 kB\n", 0, "bad size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseMemory([]byte(tt.in))
			got := m.USS
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseMemory USS = %d, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseMemory USS = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// The USS of this process: some memory, less than its RSS; a process that
// does not exist is an fs.ErrNotExist.
func TestReadUSS(t *testing.T) {
	self, err := readMemoryFile(syscall.Getpid())
	uss := self.USS
	if err != nil {
		t.Fatal(err)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	if maxRSS := ru.Maxrss << 10; uss <= 0 || uss > maxRSS {
		t.Errorf("USS %d, want between 0 and the peak RSS %d", uss, maxRSS)
	}
	if _, err := readMemoryFile(1 << 30); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("readMemoryFile of a missing process = %v", err)
	}
}

// After IdleTimeout without a request the processes stop (not while a
// request is in progress); the next requests, arriving together, start
// them again exactly once and succeed, though the start takes longer than
// the queue timeout.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = 200 * time.Millisecond
	f := startGroup(t, "ok", Config{Processes: 2, Threads: 1, IdleTimeout: idle, QueueTimeout: 50 * time.Millisecond})
	first := f.pids()
	held := acquire(t, f.g)
	time.Sleep(3 * idle) // no stop while a request is in progress
	if st := f.g.Status(); st.Idle || len(st.Workers) != 2 {
		t.Fatalf("group stopped for idleness with a request in progress: %+v", st)
	}
	roundTrip(t, held)
	f.g.Release(held, true)
	whisktest.WaitFor(t, 10*time.Second, "waiting for the idle group's processes to stop", func() bool {
		for _, pid := range first {
			if fakeworker.Alive(pid) {
				return false
			}
		}
		return len(f.g.Workers()) == 0 && f.g.Status().Idle
	})
	if len(fakeworker.Lines(f.logs, "group idle: stopping its processes")) != 1 {
		t.Error("no single log line about the idle stop")
	}
	if got := f.g.Restarts(); got[RestartIdle] != 2 || len(got) != 1 {
		t.Errorf("Restarts() = %v, want two %s", got, RestartIdle)
	}
	if !f.g.Status().CanServe() {
		t.Error("an idle group cannot serve: it starts on demand")
	}
	for _, pid := range first {
		if n := f.stops(pid); n != 1 {
			t.Errorf("idle worker %d got %d STOP frames, want 1 (a graceful stop)", pid, n)
		}
	}

	f.setMode(t, "import-delay=300ms") // longer than the queue timeout
	before := f.spawned(t)
	const requests = 5
	results := make(chan acquired, requests)
	for range requests {
		go func() { results <- receive(t, asyncAcquire(f.g, 20*time.Second)) }()
	}
	for range requests {
		a := receive(t, results)
		if a.err != nil {
			t.Fatalf("Acquire waking the idle group: %v", a.err)
		}
		roundTrip(t, a.s)
		f.g.Release(a.s, true) // to the next waiter
	}
	if n := f.spawned(t) - before; n != 2 {
		t.Errorf("%d workers started for 5 concurrent requests to an idle group of 2 processes, want 2", n)
	}
	if len(fakeworker.Lines(f.logs, "request for an idle group: starting its processes")) != 1 {
		t.Error("no single log line about the wake-up")
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{0, 0},
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{5, 1600 * time.Millisecond},
		{7, 6400 * time.Millisecond},
		{8, 10 * time.Second},
		{1000, 10 * time.Second},
	}
	for _, tt := range tests {
		if got := backoff(tt.failures); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.failures, got, tt.want)
		}
	}
}

// waitFailed waits until the group logged its n-th "group failed" line.
func (f *fixture) waitFailed(t *testing.T, n int) {
	t.Helper()
	whisktest.WaitFor(t, 20*time.Second, fmt.Sprintf("waiting for failed state #%d", n), func() bool {
		return len(fakeworker.Lines(f.logs, "group failed")) >= n
	})
}

// Workers that keep failing at startup put the group in the failed state
// after at most CrashLoopFailures + Processes - 1 spawns: one error line,
// and Acquire fails at once with the last failure. Each retry interval
// then brings exactly one spawn, and a good one ends the failed state.
func TestCrashLoop(t *testing.T) {
	t.Parallel()
	for _, processes := range []int{1, 3} {
		t.Run(fmt.Sprint(processes), func(t *testing.T) {
			t.Parallel()
			const retry = 700 * time.Millisecond
			f := startGroup(t, "ok", Config{Processes: processes, Threads: 1, FailedRetry: retry})
			started := f.spawned(t)
			f.setMode(t, "fail-import")
			for _, pid := range f.pids() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			f.waitFailed(t, 1)
			spawns := f.spawned(t) - started
			if spawns > CrashLoopFailures+processes-1 {
				t.Errorf("%d spawns before the failed state, want at most %d", spawns, CrashLoopFailures+processes-1)
			}
			line := fakeworker.Lines(f.logs, "group failed")[0]
			for _, want := range []string{"group=test", "failures=5", "No module named 'nope'", "retry_in=700ms", "retry_at="} {
				if !strings.Contains(line, want) {
					t.Errorf("failed-state line lacks %q: %s", want, line)
				}
			}
			_, err := f.g.Acquire(context.Background()) // no context bound: must not wait
			var fe *FailedError
			var ie *proc.ImportError
			if !errors.Is(err, ErrFailed) || !errors.As(err, &fe) || !errors.As(err, &ie) {
				t.Fatalf("Acquire in the failed state = %v, want a *FailedError wrapping the ImportError", err)
			}
			if until := time.Until(fe.Retry); until <= 0 || until > retry || fe.Group != "test" || fe.Failures < CrashLoopFailures {
				t.Errorf("FailedError %+v: retry in %v, want within %v", fe, until, retry)
			}
			if st := f.g.Status(); !st.Failed || st.LastFailure == "" {
				t.Errorf("Status in the failed state: %+v", st)
			}

			// One spawn per retry interval, which fails again.
			f.waitFailed(t, 2)
			if n := f.spawned(t) - started - spawns; n != 1 {
				t.Errorf("%d spawns between two failed states, want 1", n)
			}
			// A fixed app: the next retry starts the workers.
			f.setMode(t, "ok")
			whisktest.WaitFor(t, 20*time.Second, "waiting for the group to recover", func() bool {
				return len(f.g.Workers()) == processes && f.settled()
			})
			s := acquire(t, f.g)
			roundTrip(t, s)
			f.g.Release(s, true)
			if n := len(fakeworker.Lines(f.logs, "group failed")); n != 2 {
				t.Errorf("%d failed-state lines, want 2", n)
			}
		})
	}
}

// A request queued when the group fails (no worker left) is turned away
// with the FailedError rather than left to wait.
func TestCrashLoopRefusesWaiters(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Processes: 1, Threads: 1, FailedRetry: time.Minute})
	held := acquire(t, f.g)
	queued := asyncAcquire(f.g, time.Minute)
	whisktest.WaitFor(t, 5*time.Second, "waiting for the waiter to queue", func() bool { return f.waiters() == 1 })
	f.setMode(t, "fail-import")
	syscall.Kill(held.PID(), syscall.SIGKILL)
	a := receive(t, queued)
	if !errors.Is(a.err, ErrFailed) {
		t.Fatalf("queued Acquire when the group failed = %v, want ErrFailed", a.err)
	}
	f.g.Release(held, false)
}

// When the app's code breaks while the group runs, recycles cannot start
// replacements: the group fails, but its running workers keep serving.
func TestCrashLoopKeepsRunningWorkers(t *testing.T) {
	t.Parallel()
	const processes = 3
	f := startGroup(t, "ok", Config{Processes: processes, Threads: 1, FailedRetry: time.Minute})
	started := f.spawned(t)
	f.setMode(t, "fail-import")
	for _, pid := range f.pids() {
		f.g.Recycle(pid, "test")
	}
	f.waitFailed(t, 1)
	if n := f.spawned(t) - started; n > CrashLoopFailures+processes-1 {
		t.Errorf("%d spawns before the failed state, want at most %d", n, CrashLoopFailures+processes-1)
	}
	line := fakeworker.Lines(f.logs, "group failed")[0]
	if !strings.Contains(line, "workers_serving=3") {
		t.Errorf("failed-state line does not say 3 workers still serve: %s", line)
	}
	for range 2 * processes {
		s := acquire(t, f.g)
		roundTrip(t, s)
		f.g.Release(s, true)
	}
	if ws := f.g.Workers(); len(ws) != processes {
		t.Errorf("workers in the failed state: %+v, want the 3 old ones", ws)
	}
}

// A worker that stays up healthyAfter ends the crash loop: the failure
// count goes back to 0.
func TestCrashLoopHealthyResets(t *testing.T) {
	t.Parallel()
	f := newGroup(t, "ok", Config{Processes: 1, Threads: 1})
	f.g.crash.healthyAfter = time.Second
	f.start(t)
	victim := f.pids()[0]
	syscall.Kill(victim, syscall.SIGKILL)
	whisktest.WaitFor(t, 10*time.Second, "waiting for the respawn", func() bool {
		ps := f.pids()
		return len(ps) == 1 && ps[0] != victim && f.settled()
	})
	if n := f.g.Status().Failures; n != 1 {
		t.Errorf("%d failures after an early death, want 1", n)
	}
	whisktest.WaitFor(t, 10*time.Second, "waiting for the failure count to reset", func() bool { return f.g.Status().Failures == 0 })
}

// The workers' output reaches the group's log with the group and the pid.
func TestWorkerOutputLogged(t *testing.T) {
	t.Parallel()
	f := startGroup(t, "ok", Config{Name: "site-a", Processes: 1, Threads: 1})
	pid := f.pids()[0]
	// The output pipe is read on its own goroutine: the line may be
	// logged just after "worker ready".
	var lines []string
	whisktest.WaitFor(t, 10*time.Second, "the worker's output in the log", func() bool {
		lines = fakeworker.Lines(f.logs, "fake: importing")
		return len(lines) > 0
	})
	if len(lines) != 1 {
		t.Fatalf("%d log lines with the worker's output, want 1", len(lines))
	}
	for _, want := range []string{"group=site-a", fmt.Sprintf("pid=%d", pid), "source=worker"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("worker output line lacks %q: %s", want, lines[0])
		}
	}
}
