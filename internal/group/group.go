// Package group runs a process group: Processes worker processes of one
// app with Threads request slots each (an ASGI app: MaxConcurrency slots,
// streams on one shared channel). It hands out idle slots to requests
// (least busy process first) through a bounded queue, respawns workers that
// die (with backoff), recycles them (after MaxRequests, above MaxRSS, or on
// Recycle) with the replacement ready before the old one stops taking work,
// stops an idle group's processes and starts them again on demand, and
// stops them gracefully. It never imports net/http: internal/app turns slots
// and errors into HTTP responses.
//
// Lifecycle: New → Start (every worker ready, or the import error) →
// Acquire/Release per request → Stop.
//
// # Crash loops
//
// A startup failure is a worker that could not be started (import error,
// exit before HELLO, startup timeout) or one that exited unexpectedly less
// than 5 s after it was ready. After a failure, spawn attempts run one at a
// time, each at least a backoff after the last failure: 100 ms, doubling
// per consecutive failure, at most 10 s. At CrashLoopFailures consecutive
// failures the group enters the failed state for FailedRetry: one error
// line is logged, no worker is spawned, and Acquire returns a *FailedError
// at once when no worker is ready (running workers keep serving). Then it
// tries again; a failure puts it back in the failed state for FailedRetry,
// a success lets the next spawn follow at once.
//
// The spawn budget of a crash loop: at most CrashLoopFailures +
// Processes - 1 spawns before the failed state (Processes - 1 replacements
// may already be starting when the first failure happens), then one per
// FailedRetry while workers fail before they are ready (at most Processes
// when they die just after). With one process and the default FailedRetry
// of 30 s that is at most 7 spawns in the first minute, 2 a minute after.
// A worker that stays up 5 s ends the crash loop (the failure count goes
// back to 0); a reload, which makes a new Group, starts with none.
package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whiskserver/whisk/internal/proc"
	"github.com/whiskserver/whisk/internal/wire"
)

// Defaults for the zero values of Config fields.
const (
	// DefaultMaxQueue is the queue length when Config.MaxQueue is 0: 2048,
	// gunicorn's default listen backlog, the number users already expect
	// to be held for a busy server.
	DefaultMaxQueue = 2048
	// DefaultMemoryInterval is how often worker memory is sampled when
	// Config.MemoryInterval is 0.
	DefaultMemoryInterval = 5 * time.Second
	// DefaultFailedRetry is how long a crash-looping group stays failed
	// when Config.FailedRetry is 0.
	DefaultFailedRetry = 30 * time.Second
	// DefaultMaxConcurrency is an ASGI worker's slots when
	// Config.MaxConcurrency is 0.
	DefaultMaxConcurrency = 1000
	// CrashLoopFailures is the number of consecutive startup failures that
	// puts a group in the failed state.
	CrashLoopFailures = 5
)

// Config configures a Group.
type Config struct {
	// Name identifies the group in logs.
	Name string
	// Spec is how each worker process is started (Threads, Processes set
	// from the fields below).
	Spec proc.Spec
	// Processes is the number of worker processes.
	Processes int
	// Threads is the number of threads (slots) per process of a WSGI app.
	Threads int
	// MaxConcurrency is the number of slots per process of an ASGI app
	// (streams at once on its one channel); 0 means DefaultMaxConcurrency.
	MaxConcurrency int
	// MaxRequests recycles a worker after that many requests; 0 disables.
	MaxRequests int
	// MaxRequestsJitter adds up to that many requests to each worker's
	// limit, so workers do not all recycle at once.
	MaxRequestsJitter int
	// MaxQueue is the number of requests that may wait for a slot; one
	// more fails at once with ErrQueueFull. 0 means DefaultMaxQueue; a
	// negative value means no request waits (ErrQueueFull whenever no slot
	// is free).
	MaxQueue int
	// QueueTimeout bounds how long a request waits for a slot
	// (ErrQueueTimeout after). While no worker is ready at all (the group
	// is starting on demand after IdleTimeout, or respawning) the bound is
	// at least Spec.StartupTimeout, so a cold start does not fail the
	// requests that woke it. 0: only the caller's context bounds the wait.
	QueueTimeout time.Duration
	// MaxRSS, in bytes, recycles gracefully a worker whose own memory is
	// above it; 0 disables. The memory is the worker's unique set size
	// (USS: Private_Clean + Private_Dirty of /proc/PID/smaps_rollup), not
	// its RSS, which also counts the pages it shares copy-on-write with a
	// preloading parent and its siblings, and not PSS, which grows when a
	// sibling exits (the shared pages are split among fewer processes), so
	// one recycle could push the others over. USS is what recycling the
	// worker gives back. Pages swapped out are not counted.
	MaxRSS int64
	// MemoryInterval is how often each worker's memory is sampled (for
	// MaxRSS and WorkerInfo.Memory). 0 means DefaultMemoryInterval; a
	// negative value turns sampling off.
	MemoryInterval time.Duration
	// IdleTimeout stops all the group's processes (gracefully) once no
	// request has started or ended for that long; the next Acquire starts
	// them again and waits for the first one ready. 0 never stops them.
	IdleTimeout time.Duration
	// FailedRetry is how long a group in the failed state (see the package
	// documentation on crash loops) waits before it tries to start a
	// worker again. 0 means DefaultFailedRetry.
	FailedRetry time.Duration
	// GracefulTimeout bounds how long a stopping worker may finish its
	// requests before it is terminated.
	GracefulTimeout time.Duration
	// PinCPUs, when not empty, are the CPUs workers are pinned to: each new
	// worker gets the one fewest live workers hold. Empty leaves workers
	// free to move between CPUs.
	PinCPUs []int
	// Log is the group's logger. Every line the group logs, worker output
	// included, carries group=Name (and pid= for a worker's lines).
	Log *slog.Logger
	// OnRestart, when set, is called with the reason (one of the Restart*
	// constants) each time a worker is replaced or stopped for good while
	// the group runs: for metrics. It is called with the group's lock
	// held, so it must be quick and must not call the group.
	OnRestart func(reason string)
}

// Why a worker is replaced or stopped while its group runs: the reasons of
// OnRestart and Status.Restarts.
const (
	// RestartCrash: the worker exited unexpectedly, or its channel broke
	// (it died in the middle of a request, or spoke out of protocol).
	RestartCrash = "crash"
	// RestartMaxRequests: it served MaxRequests (plus jitter) requests.
	RestartMaxRequests = "max_requests"
	// RestartMaxRSS: its USS passed MaxRSS.
	RestartMaxRSS = "max_rss"
	// RestartTimeout: one of its threads stayed stuck past the request
	// timeout (Recycle).
	RestartTimeout = "timeout"
	// RestartReload: a reload replaced its group (counted by the caller
	// that stops the old generation, internal/server).
	RestartReload = "reload"
	// RestartIdle: the group stopped its processes after IdleTimeout.
	RestartIdle = "idle"
)

// RestartReasons lists every restart reason, in the order status pages
// show them.
var RestartReasons = []string{RestartCrash, RestartMaxRequests, RestartMaxRSS, RestartTimeout, RestartReload, RestartIdle}

// Errors callers branch on. A *FailedError matches ErrFailed, and
// ErrQueueTimeout matches ErrNoWorker, with errors.Is.
var (
	// ErrStopped: the group is stopping and takes no new requests.
	ErrStopped = errors.New("group: stopped")
	// ErrNoWorker: no slot became free before the context ended.
	ErrNoWorker = errors.New("group: no worker available")
	// ErrQueueTimeout: no slot became free within the QueueTimeout.
	ErrQueueTimeout = fmt.Errorf("%w within the queue timeout", ErrNoWorker)
	// ErrQueueFull: MaxQueue requests were already waiting for a slot.
	ErrQueueFull = errors.New("group: queue full")
	// ErrFailed: the group is in the failed state (its workers keep failing
	// at startup) and no worker is running. Acquire returns it as a
	// *FailedError, which says when the group retries.
	ErrFailed = errors.New("group: failed")
)

// State is a worker's place in its life.
type State int

// Worker states. Transitions: ready → retiring → stopped, or ready → dead.
const (
	StateReady    State = iota // serving requests
	StateRetiring              // finishing its requests; takes no new ones
	StateDead                  // exited or stopped
)

func (s State) String() string {
	switch s {
	case StateReady:
		return "ready"
	case StateRetiring:
		return "retiring"
	case StateDead:
		return "dead"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Slot is one request's place in a worker, held by one request at a time:
// a WSGI worker thread's request channel, or one of the streams an ASGI
// worker's channel carries at once.
type Slot struct {
	w      *worker
	conn   *wire.Conn   // WSGI: the thread's channel
	mux    *wire.Mux    // ASGI: the process's channel, shared by its slots
	cur    *wire.Stream // ASGI: the stream NextStream opened
	stream uint32
	held   bool // Hold was called: a WebSocket holds the slot

	// What the slot serves, for status pages: set by Begin, cleared by
	// Release. Its own lock, so the request path never takes the group's.
	curMu  sync.Mutex
	method string
	path   string
	since  time.Time // zero when no request is recorded
}

// Begin records the request the slot now serves (its method and path), for
// status pages; Release clears it. Calling it is optional.
func (s *Slot) Begin(method, path string) {
	now := time.Now()
	s.curMu.Lock()
	s.method, s.path, s.since = method, path, now
	s.curMu.Unlock()
}

// end clears what Begin recorded.
func (s *Slot) end() {
	s.curMu.Lock()
	s.method, s.path, s.since = "", "", time.Time{}
	s.curMu.Unlock()
}

// current returns the request Begin recorded; ok is false when none is.
func (s *Slot) current() (r Request, ok bool) {
	s.curMu.Lock()
	defer s.curMu.Unlock()
	if s.since.IsZero() {
		return Request{}, false
	}
	return Request{Method: s.method, Path: s.path, Since: s.since}, true
}

// Conn is the slot's channel to its worker: the thread's channel (WSGI),
// or the stream NextStream opened (ASGI). Call NextStream first.
func (s *Slot) Conn() wire.StreamConn {
	if s.mux != nil {
		return s.cur
	}
	return s.conn
}

// NextStream opens a new stream for the request holding the slot and
// returns its id. An ASGI stream's id is 0 until its REQUEST is written
// with Conn().(*wire.Stream).Begin, which assigns it.
func (s *Slot) NextStream() uint32 {
	if s.mux != nil {
		s.cur = s.mux.Open()
		return 0
	}
	s.stream++
	return s.stream
}

// Hold marks slot s as held by a long-lived connection, an accepted
// WebSocket, until Release. A retiring or stopping worker does not wait for
// such slots: it gets STOP once its other requests are done, and closes its
// WebSockets itself (1001, docs/protocol.md).
func (g *Group) Hold(s *Slot) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s.held {
		return
	}
	s.held = true
	s.w.held++
	g.stopIfDoneLocked(s.w)
	g.notifyLocked()
}

// ASGI reports whether the slot's worker serves an ASGI app.
func (s *Slot) ASGI() bool { return s.mux != nil }

// PID is the process id of the worker behind the slot.
func (s *Slot) PID() int { return s.w.p.PID }

type worker struct {
	p        *proc.Process
	state    State
	slots    []*Slot // all of them, busy or idle
	idle     []*Slot // LIFO: the warmest thread first
	busy     int
	held     int // of busy: slots held by WebSockets (Slot.Hold)
	served   int
	limit    int    // recycle after this many requests; 0 = never
	replaced bool   // a replacement has been started (or is not wanted)
	memory   Memory // at the last sample; zero before the first

	stopStarted bool // retire has been called
	cpu         int  // the CPU it is pinned to, or -1
}

// grant is what a waiting Acquire receives: a slot, or why there is none.
type grant struct {
	s   *Slot
	err error
}

// Group is a supervised set of worker processes. Its methods are safe for
// concurrent use.
type Group struct {
	cfg     Config
	spawner *proc.Spawner
	log     *slog.Logger

	mu       sync.Mutex
	workers  []*worker
	waiters  []chan grant // each has room for one grant
	spawning int
	stopping bool
	changed  chan struct{} // closed and replaced on every change

	crash crashState

	idle       bool      // processes stopped after IdleTimeout; Acquire starts them
	lastActive time.Time // a request last started or ended (kept when IdleTimeout is set)

	// readMemory samples a process's memory; tests replace it.
	readMemory func(pid int) (Memory, error)
	memWarned  bool // a memory sample failed and was logged

	cpuUse map[int]int // workers (live or starting) pinned to each CPU

	restarts map[string]int // by reason (the Restart* constants)

	django *proc.Django // the first ready worker's report of Django's settings
	asgi   atomic.Bool  // the last ready worker serves an ASGI app

	ctx    context.Context // cancelled by Stop: ends spawns in progress
	cancel context.CancelFunc

	plMu sync.Mutex      // guards pl; held while a fork server starts
	pl   *proc.Preloader // the fork server, with Spec.Preload
	done chan struct{}   // closed by Stop: ends backoffs and housekeeping
}

// New returns a Group that will start workers with spawner.
func New(cfg Config, spawner *proc.Spawner) *Group {
	cfg.Spec.Threads = cfg.Threads
	cfg.Spec.Processes = cfg.Processes
	log := cfg.Log.With("group", cfg.Name)
	cfg.Spec.Log = log // worker output and lifecycle lines carry group= too
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{
		cfg: cfg, spawner: spawner, log: log,
		changed:    make(chan struct{}),
		crash:      newCrashState(),
		readMemory: readMemoryFile,
		restarts:   map[string]int{},
		cpuUse:     map[int]int{},
		ctx:        ctx, cancel: cancel, done: make(chan struct{}),
	}
}

// Name is the group's name.
func (g *Group) Name() string { return g.cfg.Name }

// ASGI reports whether the group's app is an ASGI app, as its last ready
// worker said (false before any worker was ready). Its slots say so for
// certain (Slot.ASGI).
func (g *Group) ASGI() bool { return g.asgi.Load() }

// Django returns what the group's first ready worker reported of a Django
// app's settings (where its static and media files are), or nil when it
// reported none (not a Django app, or no worker ready yet). The report is
// kept while the group's processes stop and start again (IdleTimeout,
// recycling): they run the same code.
func (g *Group) Django() *proc.Django {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.django == nil {
		return nil
	}
	d := *g.django
	return &d
}

// QueueTimeout is the configured Config.QueueTimeout: how long Acquire
// lets a request wait for a slot (0: only the caller's context bounds it).
func (g *Group) QueueTimeout() time.Duration { return g.cfg.QueueTimeout }

// maxQueue is the number of waiters allowed.
func (g *Group) maxQueue() int {
	switch {
	case g.cfg.MaxQueue == 0:
		return DefaultMaxQueue
	case g.cfg.MaxQueue < 0:
		return 0
	}
	return g.cfg.MaxQueue
}

// reserveCPULocked picks the pinned CPU for a new worker: the one fewest
// workers hold (the first on a tie). It returns -1 when pinning is off.
func (g *Group) reserveCPULocked() int {
	best := -1
	for _, c := range g.cfg.PinCPUs {
		if best < 0 || g.cpuUse[c] < g.cpuUse[best] {
			best = c
		}
	}
	if best >= 0 {
		g.cpuUse[best]++
	}
	return best
}

func (g *Group) releaseCPULocked(cpu int) {
	if cpu >= 0 {
		g.cpuUse[cpu]--
	}
}

// spec returns the process spec for a worker pinned to cpu (-1: unpinned).
func (g *Group) spec(cpu int) proc.Spec {
	spec := g.cfg.Spec
	spec.Pin, spec.CPU = cpu >= 0, cpu
	return spec
}

// Start spawns every worker and waits until all are ready. If one cannot
// import the app, Start stops the others and returns its error (a
// *proc.ImportError when the import failed). Once started, the group
// samples worker memory and watches for idleness until Stop.
func (g *Group) Start(ctx context.Context) error {
	type result struct {
		p   *proc.Process
		err error
		cpu int
	}
	results := make(chan result, g.cfg.Processes)
	for i := 0; i < g.cfg.Processes; i++ {
		g.mu.Lock()
		cpu := g.reserveCPULocked()
		g.mu.Unlock()
		go func() {
			p, err := g.startWorker(ctx, cpu)
			results <- result{p, err, cpu}
		}()
	}
	var started []result
	var firstErr error
	for i := 0; i < g.cfg.Processes; i++ {
		r := <-results
		if r.err != nil {
			if firstErr == nil {
				firstErr = r.err
			}
			g.mu.Lock()
			g.releaseCPULocked(r.cpu)
			g.mu.Unlock()
			continue
		}
		started = append(started, r)
	}
	if firstErr != nil {
		g.mu.Lock()
		for _, r := range started {
			r.p.Close()
			r.p.Kill()
			g.releaseCPULocked(r.cpu)
		}
		g.mu.Unlock()
		for _, r := range started {
			<-r.p.Done() // gone when Start returns: a failed start leaves nothing behind
		}
		g.stopPreloader()
		return firstErr
	}
	for _, r := range started {
		g.add(r.p, nil, r.cpu)
	}
	g.mu.Lock()
	g.lastActive = time.Now()
	g.mu.Unlock()
	if g.memoryInterval() > 0 {
		go g.sampleMemory()
	}
	if g.cfg.IdleTimeout > 0 {
		go g.watchIdle()
	}
	return nil
}

// add registers a ready process and hands its slots to waiting requests.
// When it replaces old, old starts retiring.
func (g *Group) add(p *proc.Process, old *worker, cpu int) {
	w := &worker{p: p, state: StateReady, cpu: cpu}
	if g.cfg.MaxRequests > 0 {
		w.limit = g.cfg.MaxRequests
		if g.cfg.MaxRequestsJitter > 0 {
			w.limit += rand.IntN(g.cfg.MaxRequestsJitter + 1)
		}
	}
	if p.Hello.ASGI() && len(p.Channels) > 0 {
		mux := wire.NewMux(p.Channels[0])
		n := g.cfg.MaxConcurrency
		if n <= 0 {
			n = DefaultMaxConcurrency
		}
		for range n {
			w.slots = append(w.slots, &Slot{w: w, mux: mux})
		}
	} else {
		for _, c := range p.Channels {
			w.slots = append(w.slots, &Slot{w: w, conn: c})
		}
	}
	w.idle = slices.Clone(w.slots)
	g.mu.Lock()
	if g.stopping {
		g.releaseCPULocked(cpu)
		g.mu.Unlock()
		g.retire(w) // synchronously: Stop waits for spawns in progress
		return
	}
	g.workers = append(g.workers, w)
	g.asgi.Store(p.Hello.ASGI())
	if g.django == nil && p.Hello.Django != nil {
		d := *p.Hello.Django
		g.django = &d
	}
	for len(w.idle) > 0 && len(g.waiters) > 0 {
		g.handOff(g.takeIdle(w))
	}
	if old != nil && old.state == StateReady {
		g.retireLocked(old)
	}
	g.watchHealthLocked(w)
	g.notifyLocked()
	g.mu.Unlock()
	g.log.Info("worker ready", "pid", p.PID, "python", p.Hello.Python)
	go g.watch(w)
}

func (g *Group) takeIdle(w *worker) *Slot {
	s := w.idle[len(w.idle)-1]
	w.idle = w.idle[:len(w.idle)-1]
	g.startLocked(w)
	return s
}

// startLocked counts a request starting on w and, at its request limit,
// starts its replacement.
func (g *Group) startLocked(w *worker) {
	w.busy++
	w.served++
	if g.cfg.IdleTimeout > 0 {
		g.lastActive = time.Now()
	}
	if w.limit > 0 && w.served >= w.limit {
		g.recycleLocked(w, RestartMaxRequests, "served", w.served)
	}
}

// handOff gives s to the oldest waiter. Caller holds g.mu and knows a waiter
// exists; waiter channels have room for one grant.
func (g *Group) handOff(s *Slot) {
	c := g.waiters[0]
	g.waiters = g.waiters[1:]
	c <- grant{s: s}
}

// refuseWaitersLocked answers every waiting Acquire with err.
func (g *Group) refuseWaitersLocked(err error) {
	for _, c := range g.waiters {
		c <- grant{err: err}
	}
	g.waiters = nil
}

// TryAcquire returns an idle slot if one is free right now, else nil. It
// lets the common case skip setting up a wait.
func (g *Group) TryAcquire() *Slot {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping || len(g.waiters) > 0 {
		return nil
	}
	if w := g.leastBusyLocked(); w != nil {
		return g.takeIdle(w)
	}
	return nil
}

// leastBusyLocked returns the ready worker with an idle slot and the
// fewest requests in progress, or nil.
func (g *Group) leastBusyLocked() *worker {
	var best *worker
	for _, w := range g.workers {
		if w.state == StateReady && len(w.idle) > 0 && (best == nil || w.busy < best.busy) {
			best = w
		}
	}
	return best
}

func (g *Group) anyReadyLocked() bool {
	for _, w := range g.workers {
		if w.state == StateReady {
			return true
		}
	}
	return false
}

// Acquire returns an idle slot, waiting in the queue until one is free.
// The caller must Release it. It fails at once with ErrStopped, with
// ErrQueueFull when MaxQueue requests already wait, or with a *FailedError
// (ErrFailed) when the group is failed and no worker runs; it fails after
// QueueTimeout with ErrQueueTimeout, or when ctx ends with ErrNoWorker
// wrapping the context's error. A group stopped by IdleTimeout starts its
// processes again.
func (g *Group) Acquire(ctx context.Context) (*Slot, error) {
	g.mu.Lock()
	if g.stopping {
		g.mu.Unlock()
		return nil, ErrStopped
	}
	if w := g.leastBusyLocked(); w != nil {
		s := g.takeIdle(w)
		g.mu.Unlock()
		return s, nil
	}
	c, timeout, err := g.enqueueLocked()
	g.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return g.wait(ctx, c, timeout)
}

// enqueueLocked queues a waiter when the group can take one, and returns
// its channel and how long it may wait (0: no bound of the group's).
func (g *Group) enqueueLocked() (chan grant, time.Duration, error) {
	if g.idle {
		g.wakeLocked()
	}
	ready := g.anyReadyLocked()
	if !ready {
		if err := g.failedErrLocked(time.Now()); err != nil {
			return nil, 0, err
		}
	}
	if n := g.maxQueue(); len(g.waiters) >= n {
		return nil, 0, fmt.Errorf("%w: %d requests already wait for a worker of group %s", ErrQueueFull, n, g.cfg.Name)
	}
	c := make(chan grant, 1)
	g.waiters = append(g.waiters, c)
	timeout := g.cfg.QueueTimeout
	if timeout > 0 && !ready {
		timeout = max(timeout, g.cfg.Spec.StartupTimeout)
	}
	return c, timeout, nil
}

// wait waits for a grant on c, for at most timeout when it is not 0.
func (g *Group) wait(ctx context.Context, c chan grant, timeout time.Duration) (*Slot, error) {
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case gr := <-c:
		return gr.s, gr.err
	case <-expired:
		g.leave(c)
		return nil, fmt.Errorf("%w of %v", ErrQueueTimeout, timeout)
	case <-ctx.Done():
		g.leave(c)
		return nil, fmt.Errorf("%w: %w", ErrNoWorker, ctx.Err())
	}
}

// leave takes c out of the queue. A slot handed over just before is
// released, so it goes to the next waiter.
func (g *Group) leave(c chan grant) {
	g.mu.Lock()
	if i := slices.Index(g.waiters, c); i >= 0 {
		g.waiters = slices.Delete(g.waiters, i, i+1)
	}
	g.mu.Unlock()
	select {
	case gr := <-c:
		if gr.s != nil {
			g.Release(gr.s, true)
		}
	default:
	}
}

// Release returns a slot after its stream ended. healthy=false means the
// channel can no longer be trusted (protocol error, lost worker, a stream
// abandoned mid-way): the slot is closed and its worker replaced.
//
// An ASGI slot's stream is closed either way; its channel is not, as other
// requests share it: it closes when the worker, replaced, stops.
func (g *Group) Release(s *Slot, healthy bool) {
	s.end()
	if s.cur != nil {
		s.cur.Close()
		s.cur = nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	w := s.w
	w.busy--
	if s.held {
		s.held = false
		w.held--
	}
	if g.cfg.IdleTimeout > 0 {
		g.lastActive = time.Now()
	}
	if !healthy {
		if s.conn != nil {
			s.conn.Close()
		}
		if w.state == StateReady {
			g.log.Warn("worker channel broken; replacing the worker", "pid", w.p.PID)
			if !g.stopping && !w.replaced {
				w.replaced = true
				g.restartedLocked(RestartCrash)
				g.spawnLocked(nil)
			}
			g.retireLocked(w)
		}
	} else if w.state == StateReady {
		if len(g.waiters) > 0 {
			g.startLocked(w)
			g.handOff(s)
		} else {
			w.idle = append(w.idle, s)
		}
	}
	g.stopIfDoneLocked(w)
	g.notifyLocked()
}

// retireLocked stops a worker from taking requests; it is stopped once its
// busy slots are released.
func (g *Group) retireLocked(w *worker) {
	w.state = StateRetiring
	w.idle = nil
	g.stopIfDoneLocked(w)
}

// stopIfDoneLocked stops a retiring worker once its last request is done,
// exactly once.
func (g *Group) stopIfDoneLocked(w *worker) {
	if w.state == StateRetiring && w.busy-w.held == 0 && !w.stopStarted {
		w.stopStarted = true
		go g.retire(w)
	}
}

// retire stops a worker that has no request in progress.
func (g *Group) retire(w *worker) {
	w.p.Shutdown(g.cfg.GracefulTimeout)
	w.p.Close()
}

// watch waits for a worker's exit and, unless the group is stopping or the
// worker was retired, respawns it after a backoff.
func (g *Group) watch(w *worker) {
	<-w.p.Done()
	g.mu.Lock()
	prev := w.state
	w.state = StateDead
	w.idle = nil
	g.releaseCPULocked(w.cpu)
	if i := slices.Index(g.workers, w); i >= 0 {
		g.workers = slices.Delete(g.workers, i, i+1)
	}
	if prev == StateReady {
		uptime := w.p.Uptime()
		status := fmt.Sprint(w.p.ExitErr())
		g.log.Warn("worker exited unexpectedly; respawning", "pid", w.p.PID, "status", status, "uptime", uptime.Round(time.Millisecond).String())
		if uptime < g.crash.healthyAfter {
			g.recordFailureLocked(fmt.Errorf("worker %d exited %v after it was ready (%s)", w.p.PID, uptime.Round(time.Millisecond), status))
		}
		if !g.stopping && !w.replaced {
			g.restartedLocked(RestartCrash)
			g.spawnLocked(nil)
		}
	} else {
		g.log.Info("worker stopped", "pid", w.p.PID)
	}
	g.refuseIfFailedLocked()
	g.notifyLocked()
	g.mu.Unlock()
	w.p.Close()
}

func (g *Group) notifyLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// restartedLocked counts a worker replaced or stopped for reason.
func (g *Group) restartedLocked(reason string) {
	g.restarts[reason]++
	if g.cfg.OnRestart != nil {
		g.cfg.OnRestart(reason)
	}
}

// Restarts returns how many workers the group has replaced or stopped,
// by reason (the Restart* constants; a reason that never happened is
// absent).
func (g *Group) Restarts() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return maps.Clone(g.restarts)
}

// WorkerInfo describes a worker for logs, tests, status pages and metrics.
type WorkerInfo struct {
	// PID is the worker's process id.
	PID int
	// State is ready, or retiring (finishing its requests before it stops).
	State State
	// Recycling is set once the worker's replacement is being started
	// (max requests, max RSS, Recycle); it keeps serving until then.
	Recycling bool
	// Busy is the number of its slots held by requests.
	Busy int
	// Idle is the number of its slots free to take a request (0 unless
	// it is ready).
	Idle int
	// Served is the number of requests it has been given.
	Served int
	// CPU is the CPU it is pinned to, or -1.
	CPU int
	// Memory is its unique memory (USS) in bytes at the last sample, 0
	// before the first (see Config.MaxRSS and Config.MemoryInterval).
	Memory int64
	// PSS and RSS are its proportional and resident set sizes in bytes at
	// the last sample (see Memory), 0 before the first.
	PSS, RSS int64
	// Uptime is how long ago its process was started.
	Uptime time.Duration
	// Requests are the requests its slots serve, as recorded by
	// Slot.Begin, oldest first.
	Requests []Request
}

// Request is a request a worker thread is serving.
type Request struct {
	// Method and Path are the request's method and URL path.
	Method, Path string
	// Since is when the slot was given to it.
	Since time.Time
}

// Workers returns a snapshot of the live workers.
func (g *Group) Workers() []WorkerInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.workersLocked()
}

func (g *Group) workersLocked() []WorkerInfo {
	out := make([]WorkerInfo, 0, len(g.workers))
	for _, w := range g.workers {
		info := WorkerInfo{
			PID: w.p.PID, State: w.state, Recycling: w.replaced && w.state == StateReady,
			Busy: w.busy, Idle: len(w.idle), Served: w.served, CPU: w.cpu,
			Memory: w.memory.USS, PSS: w.memory.PSS, RSS: w.memory.RSS, Uptime: w.p.Uptime(),
		}
		if w.busy > 0 {
			for _, s := range w.slots {
				if r, ok := s.current(); ok {
					info.Requests = append(info.Requests, r)
				}
			}
			slices.SortFunc(info.Requests, func(a, b Request) int { return a.Since.Compare(b.Since) })
		}
		out = append(out, info)
	}
	return out
}

// Status is a snapshot of a group for status pages and metrics.
type Status struct {
	// Name is the group's name.
	Name string
	// App is the WSGI app its workers serve.
	App string
	// Processes and Threads are its configured processes and threads
	// per process.
	Processes, Threads int
	// Workers are its live workers.
	Workers []WorkerInfo
	// Queued is the number of requests waiting for a slot.
	Queued int
	// Idle is set while its processes are stopped after IdleTimeout.
	Idle bool
	// Failed is set while the group is in the failed state.
	Failed bool
	// RetryAt, when Failed, is when the group tries to start a worker again.
	RetryAt time.Time
	// LastFailure is the last startup failure, "" when there was none.
	LastFailure string
	// Failures is the number of consecutive startup failures (0 once a
	// worker has stayed up 5 s).
	Failures int
	// Restarts counts the workers replaced or stopped while the group
	// ran, by reason (see Restarts).
	Restarts map[string]int
	// Stopping is set once Stop has been called.
	Stopping bool
}

// CanServe reports whether the group can serve a request now: it has a
// ready worker, or it is stopped after IdleTimeout (the request starts
// it) and not failed. A group that is starting or respawning its only
// workers, a failed group without a worker, and a stopping group cannot.
func (st Status) CanServe() bool {
	if st.Stopping {
		return false
	}
	for _, w := range st.Workers {
		if w.State == StateReady {
			return true
		}
	}
	return st.Idle && !st.Failed
}

// Status returns a snapshot of the group.
func (g *Group) Status() Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := Status{
		Name: g.cfg.Name, App: g.cfg.Spec.App, Processes: g.cfg.Processes, Threads: g.cfg.Threads,
		Workers: g.workersLocked(), Queued: len(g.waiters), Idle: g.idle, Failures: g.crash.failures,
		Restarts: maps.Clone(g.restarts), Stopping: g.stopping,
	}
	if g.crash.failedLocked(time.Now()) {
		st.Failed, st.RetryAt = true, g.crash.failedUntil
	}
	if g.crash.last != nil {
		st.LastFailure = g.crash.last.Error()
	}
	return st
}

// heldLocked counts the slots WebSockets hold (Slot.Hold): stopping does
// not wait for them.
func (g *Group) heldLocked() int {
	n := 0
	for _, w := range g.workers {
		n += w.held
	}
	return n
}

// busyLocked counts the requests in progress.
func (g *Group) busyLocked() int {
	busy := 0
	for _, w := range g.workers {
		busy += w.busy
	}
	return busy
}

// waitIdle waits until no request is in progress (WebSockets aside: their
// workers close them) and no worker is being spawned, or ctx ends; it
// returns how many were still busy then.
func (g *Group) waitIdle(ctx context.Context) int {
	for {
		g.mu.Lock()
		busy := g.spawning + g.busyLocked() - g.heldLocked()
		changed := g.changed
		g.mu.Unlock()
		if busy == 0 {
			return 0
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return busy
		}
	}
}

// Stop refuses new requests, waits until in-flight ones are released or
// ctx ends, then stops every worker (STOP, then signals after the graceful
// timeout) and returns once they have exited.
func (g *Group) Stop(ctx context.Context) {
	g.mu.Lock()
	if !g.stopping {
		g.stopping = true
		close(g.done)
	}
	g.refuseWaitersLocked(ErrStopped)
	g.mu.Unlock()
	if busy := g.waitIdle(ctx); busy > 0 {
		g.log.Warn("stopping with requests still in progress", "busy", busy)
		g.cancel() // a worker still importing is killed
	}
	g.mu.Lock()
	ws := append([]*worker(nil), g.workers...)
	for _, w := range ws {
		w.state = StateRetiring
		w.idle = nil
	}
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			grace := g.cfg.GracefulTimeout
			if dl, ok := ctx.Deadline(); ok {
				grace = max(time.Until(dl), 100*time.Millisecond)
			}
			w.p.Shutdown(grace)
		}()
	}
	wg.Wait()
	g.stopPreloader()
	g.cancel()
}
