// Package group runs a process group: Processes worker processes of one
// app with Threads request slots each. It hands out idle slots to requests
// (least busy process first), respawns workers that die (with backoff),
// recycles them after MaxRequests with the replacement ready before the old
// one stops taking work, and stops them gracefully. It never imports
// net/http: internal/app turns slots into HTTP responses.
//
// Lifecycle: New → Start (every worker ready, or the import error) →
// Acquire/Release per request → Stop.
package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/whiskserver/whisk/internal/proc"
	"github.com/whiskserver/whisk/internal/wire"
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
	// Threads is the number of threads (slots) per process.
	Threads int
	// MaxRequests recycles a worker after that many requests; 0 disables.
	MaxRequests int
	// MaxRequestsJitter adds up to that many requests to each worker's
	// limit, so workers do not all recycle at once.
	MaxRequestsJitter int
	// GracefulTimeout bounds how long a stopping worker may finish its
	// requests before it is terminated.
	GracefulTimeout time.Duration
	// PinCPUs, when not empty, are the CPUs workers are pinned to: each new
	// worker gets the one fewest live workers hold. Empty leaves workers
	// free to move between CPUs.
	PinCPUs []int
	// Log is the group's logger.
	Log *slog.Logger
}

// Errors callers branch on.
var (
	// ErrStopped: the group is stopping and takes no new requests.
	ErrStopped = errors.New("group: stopped")
	// ErrNoWorker: no slot became free before the context ended.
	ErrNoWorker = errors.New("group: no worker available")
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

// Slot is one worker thread's request channel, held by one request at a time.
type Slot struct {
	w      *worker
	conn   *wire.Conn
	stream uint32
}

// Conn is the slot's channel to its worker thread.
func (s *Slot) Conn() *wire.Conn { return s.conn }

// NextStream returns a new stream id for this channel.
func (s *Slot) NextStream() uint32 {
	s.stream++
	return s.stream
}

// PID is the process id of the worker behind the slot.
func (s *Slot) PID() int { return s.w.p.PID }

type worker struct {
	p        *proc.Process
	state    State
	idle     []*Slot // LIFO: the warmest thread first
	busy     int
	served   int
	limit    int  // recycle after this many requests; 0 = never
	replaced bool // a replacement has been started (or is not wanted)

	stopStarted bool // retire has been called
	cpu         int  // the CPU it is pinned to, or -1
}

// Group is a supervised set of worker processes. Its methods are safe for
// concurrent use.
type Group struct {
	cfg     Config
	spawner *proc.Spawner
	log     *slog.Logger

	mu       sync.Mutex
	workers  []*worker
	waiters  []chan *Slot
	spawning int
	stopping bool
	failures int // consecutive short-lived workers, for backoff
	changed  chan struct{}

	cpuUse map[int]int // workers (live or starting) pinned to each CPU

	ctx    context.Context // cancelled by Stop: ends spawns in progress
	cancel context.CancelFunc
	done   chan struct{} // closed by Stop: ends respawn backoffs
}

// New returns a Group that will start workers with spawner.
func New(cfg Config, spawner *proc.Spawner) *Group {
	cfg.Spec.Threads = cfg.Threads
	cfg.Spec.Processes = cfg.Processes
	log := cfg.Log.With("group", cfg.Name)
	cfg.Spec.Log = log
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{cfg: cfg, spawner: spawner, log: log, changed: make(chan struct{}), ctx: ctx, cancel: cancel, done: make(chan struct{}), cpuUse: map[int]int{}}
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
// *proc.ImportError when the import failed).
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
			p, err := g.spawner.Start(ctx, g.spec(cpu))
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
		return firstErr
	}
	for _, r := range started {
		g.add(r.p, nil, r.cpu)
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
	for _, c := range p.Channels {
		w.idle = append(w.idle, &Slot{w: w, conn: c})
	}
	g.mu.Lock()
	if g.stopping {
		g.releaseCPULocked(cpu)
		g.mu.Unlock()
		g.retire(w) // synchronously: Stop waits for spawns in progress
		return
	}
	g.workers = append(g.workers, w)
	for len(w.idle) > 0 && len(g.waiters) > 0 {
		g.handOff(g.takeIdle(w))
	}
	if old != nil && old.state == StateReady {
		g.retireLocked(old)
	}
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
	if w.limit > 0 && w.served >= w.limit && !w.replaced && w.state == StateReady {
		w.replaced = true
		g.log.Info("worker reached max requests; starting its replacement", "pid", w.p.PID, "served", w.served)
		g.spawnLocked(w)
	}
}

// handOff gives s to the oldest waiter. Caller holds g.mu and knows a waiter
// exists; waiter channels have room for one slot.
func (g *Group) handOff(s *Slot) {
	c := g.waiters[0]
	g.waiters = g.waiters[1:]
	c <- s
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

// Acquire returns an idle slot, waiting until one is free or ctx ends
// (ErrNoWorker wrapping the context's error). The caller must Release it.
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
	c := make(chan *Slot, 1)
	g.waiters = append(g.waiters, c)
	g.mu.Unlock()
	select {
	case s := <-c:
		if s == nil {
			return nil, ErrStopped
		}
		return s, nil
	case <-ctx.Done():
		g.mu.Lock()
		for i, wc := range g.waiters {
			if wc == c {
				g.waiters = append(g.waiters[:i], g.waiters[i+1:]...)
				break
			}
		}
		g.mu.Unlock()
		// A slot may have been handed over just before we left the queue.
		select {
		case s := <-c:
			if s != nil {
				g.Release(s, true)
			}
		default:
		}
		return nil, fmt.Errorf("%w: %w", ErrNoWorker, ctx.Err())
	}
}

// Release returns a slot after its stream ended. healthy=false means the
// channel can no longer be trusted (protocol error, lost worker, a stream
// abandoned mid-way): the slot is closed and its worker replaced.
func (g *Group) Release(s *Slot, healthy bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := s.w
	w.busy--
	if !healthy {
		s.conn.Close()
		if w.state == StateReady {
			g.log.Warn("worker channel broken; replacing the worker", "pid", w.p.PID)
			if !g.stopping && !w.replaced {
				w.replaced = true
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
	if w.state == StateRetiring && w.busy == 0 && !w.stopStarted {
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
	for i, x := range g.workers {
		if x == w {
			g.workers = append(g.workers[:i], g.workers[i+1:]...)
			break
		}
	}
	unexpected := prev == StateReady
	if unexpected {
		if w.p.Uptime() < 5*time.Second {
			g.failures++
		} else {
			g.failures = 0
		}
		g.log.Warn("worker exited unexpectedly; respawning", "pid", w.p.PID, "status", fmt.Sprint(w.p.ExitErr()), "uptime", w.p.Uptime().Round(time.Millisecond).String())
		if !g.stopping && !w.replaced {
			g.spawnLocked(nil)
		}
	} else {
		g.log.Info("worker stopped", "pid", w.p.PID)
	}
	g.notifyLocked()
	g.mu.Unlock()
	w.p.Close()
}

// spawnLocked starts one worker in the background, after a backoff that
// grows with consecutive early deaths. old, when set, retires once the new
// worker is ready.
func (g *Group) spawnLocked(old *worker) {
	g.spawning++
	cpu := g.reserveCPULocked()
	delay := time.Duration(0)
	if g.failures > 0 && old == nil {
		delay = min(100*time.Millisecond<<min(g.failures-1, 7), 10*time.Second)
	}
	go func() {
		added := false
		defer func() {
			g.mu.Lock()
			g.spawning--
			if !added {
				g.releaseCPULocked(cpu)
			}
			g.notifyLocked()
			g.mu.Unlock()
		}()
		for {
			if delay > 0 {
				select {
				case <-time.After(delay):
				case <-g.done:
					return
				}
			}
			g.mu.Lock()
			stopping := g.stopping
			g.mu.Unlock()
			if stopping {
				return
			}
			p, err := g.spawner.Start(g.ctx, g.spec(cpu))
			if err == nil {
				added = true // add owns the CPU now (it releases it if stopping)
				g.add(p, old, cpu)
				return
			}
			if g.ctx.Err() != nil {
				return
			}
			var ie *proc.ImportError
			if errors.As(err, &ie) {
				g.log.Error("worker failed to import the app; will retry", "error", ie.Message, "hint", ie.Hint, "traceback", ie.Traceback)
			} else {
				g.log.Error("worker failed to start; will retry", "error", err)
			}
			delay = min(max(2*delay, 500*time.Millisecond), 10*time.Second)
		}
	}()
}

func (g *Group) notifyLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// Snapshot describes a worker for logs, tests and status pages.
type Snapshot struct {
	PID    int
	State  State
	Busy   int
	Served int
	CPU    int // pinned CPU, or -1
}

// Workers returns a snapshot of the live workers.
func (g *Group) Workers() []Snapshot {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Snapshot, 0, len(g.workers))
	for _, w := range g.workers {
		out = append(out, Snapshot{PID: w.p.PID, State: w.state, Busy: w.busy, Served: w.served, CPU: w.cpu})
	}
	return out
}

// waitIdle waits until no request is in progress and no worker is being
// spawned, or ctx ends; it returns how many were still busy then.
func (g *Group) waitIdle(ctx context.Context) int {
	for {
		g.mu.Lock()
		busy := g.spawning
		for _, w := range g.workers {
			busy += w.busy
		}
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
	for _, c := range g.waiters {
		c <- nil
	}
	g.waiters = nil
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
	g.cancel()
}
