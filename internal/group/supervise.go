package group

import (
	"errors"
	"fmt"
	"time"

	"github.com/whiskserver/whisk/internal/proc"
)

// Respawn backoff after a startup failure: firstBackoff, doubling with each
// consecutive failure, at most maxBackoff.
const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 10 * time.Second
	// healthyAfter is how long a worker must stay up for its start to
	// count as a success, ending a crash loop.
	healthyAfter = 5 * time.Second
)

// backoff is the pause before the next spawn attempt after failures
// consecutive startup failures.
func backoff(failures int) time.Duration {
	if failures <= 0 {
		return 0
	}
	return min(firstBackoff<<min(failures-1, 16), maxBackoff)
}

// crashState tracks startup failures (see the package documentation on
// crash loops). Guarded by Group.mu.
type crashState struct {
	failures    int       // consecutive startup failures
	last        error     // the last one
	nextAttempt time.Time // while failures > 0: no spawn attempt before
	probing     bool      // while failures > 0: an attempt is under way
	failedUntil time.Time // the failed state lasts until then
	turn        chan struct{}

	healthyAfter time.Duration // healthyAfter; tests shorten it
}

func newCrashState() crashState {
	return crashState{turn: make(chan struct{}), healthyAfter: healthyAfter}
}

func (c *crashState) failedLocked(now time.Time) bool {
	return now.Before(c.failedUntil)
}

// notifyTurnLocked wakes the spawns waiting for their turn.
func (c *crashState) notifyTurnLocked() {
	close(c.turn)
	c.turn = make(chan struct{})
}

// FailedError is the error of Acquire while the group is in the failed
// state and no worker runs. errors.Is(err, ErrFailed) holds, and it wraps
// the last startup failure (a *proc.ImportError when the import failed).
type FailedError struct {
	// Group is the group's name.
	Group string
	// Failures is the number of consecutive startup failures.
	Failures int
	// Last is the last startup failure.
	Last error
	// Retry is when the group tries to start a worker again.
	Retry time.Time
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("group %s failed: %d startup failures in a row, the last: %v; next attempt at %s",
		e.Group, e.Failures, e.Last, e.Retry.Format(time.TimeOnly))
}

// Is makes errors.Is(err, ErrFailed) true.
func (e *FailedError) Is(target error) bool { return target == ErrFailed }

// Unwrap returns the last startup failure.
func (e *FailedError) Unwrap() error { return e.Last }

// failedErrLocked returns the *FailedError to give requests while the
// group is failed, else nil.
func (g *Group) failedErrLocked(now time.Time) error {
	if !g.crash.failedLocked(now) {
		return nil
	}
	return &FailedError{Group: g.cfg.Name, Failures: g.crash.failures, Last: g.crash.last, Retry: g.crash.failedUntil}
}

// refuseIfFailedLocked turns away the waiting requests when the group is
// failed and no worker is left to serve them.
func (g *Group) refuseIfFailedLocked() {
	if len(g.waiters) == 0 || g.anyReadyLocked() {
		return
	}
	if err := g.failedErrLocked(time.Now()); err != nil {
		g.refuseWaitersLocked(err)
	}
}

func (g *Group) failedRetry() time.Duration {
	if g.cfg.FailedRetry > 0 {
		return g.cfg.FailedRetry
	}
	return DefaultFailedRetry
}

// recordFailureLocked counts a startup failure, sets the backoff before
// the next attempt and, at CrashLoopFailures, puts the group in the failed
// state with one error line.
func (g *Group) recordFailureLocked(err error) {
	c := &g.crash
	now := time.Now()
	c.failures++
	c.last = err
	defer c.notifyTurnLocked()
	if c.failedLocked(now) {
		return // already failed: the retry time stands
	}
	c.nextAttempt = now.Add(backoff(c.failures))
	if c.failures < CrashLoopFailures {
		return
	}
	retry := g.failedRetry()
	c.failedUntil = now.Add(retry)
	c.nextAttempt = c.failedUntil
	serving := 0
	for _, w := range g.workers {
		if w.state == StateReady {
			serving++
		}
	}
	g.log.Error("group failed: its workers keep failing at startup; no new worker until the retry, and requests get 503 while no worker runs",
		"failures", c.failures, "last_error", err.Error(), "retry_in", retry.String(),
		"retry_at", c.failedUntil.Format(time.TimeOnly), "workers_serving", serving)
	g.refuseIfFailedLocked()
}

// watchHealthLocked ends the crash loop, if there is one, once w has been
// up for healthyAfter.
func (g *Group) watchHealthLocked(w *worker) {
	if g.crash.failures == 0 {
		return
	}
	time.AfterFunc(g.crash.healthyAfter, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if w.state == StateDead || g.crash.failures == 0 {
			return
		}
		if g.crash.failedUntil.IsZero() {
			g.log.Info("workers start again; backoff reset", "failures", g.crash.failures)
		} else {
			g.log.Info("group recovered from the failed state: a new worker stayed up", "pid", w.p.PID, "failures", g.crash.failures)
		}
		g.crash = crashState{turn: g.crash.turn, healthyAfter: g.crash.healthyAfter}
		g.crash.notifyTurnLocked()
	})
}

// awaitTurn waits until a spawn attempt may begin: at once while there is
// no startup failure; else one attempt at a time, each at least the
// backoff (or, failed, the retry interval) after the last failure. probe
// says the caller holds the turn and must give it back with attemptDone;
// ok is false when the group is stopping.
func (g *Group) awaitTurn() (probe, ok bool) {
	for {
		g.mu.Lock()
		if g.stopping {
			g.mu.Unlock()
			return false, false
		}
		c := &g.crash
		if c.failures == 0 {
			g.mu.Unlock()
			return false, true
		}
		wait := time.Until(c.nextAttempt)
		if !c.probing && wait <= 0 {
			c.probing = true
			g.mu.Unlock()
			return true, true
		}
		turn := c.turn
		probing := c.probing
		g.mu.Unlock()
		if probing {
			wait = -1 // until the attempt under way ends
		}
		if !g.sleep(wait, turn) {
			return false, false
		}
	}
}

// sleep waits for d (forever if negative) or until wake is closed; it
// returns false if the group stops meanwhile.
func (g *Group) sleep(d time.Duration, wake <-chan struct{}) bool {
	var expired <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-expired:
	case <-wake:
	case <-g.done:
		return false
	}
	return true
}

// attemptDone records the end of a spawn attempt: err is its startup
// failure, or nil. After a success the next attempt may follow at once
// (still one at a time), so a group recovers quickly once its app is fixed.
func (g *Group) attemptDone(probe bool, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if probe {
		g.crash.probing = false
		if err == nil {
			g.crash.nextAttempt = time.Time{}
		}
		g.crash.notifyTurnLocked()
	}
	if err != nil {
		g.recordFailureLocked(err)
	}
}

// spawnLocked starts one worker in the background, in its turn (see
// awaitTurn). old, when set, retires once the new worker is ready.
func (g *Group) spawnLocked(old *worker) {
	g.spawning++
	cpu := g.reserveCPULocked()
	go g.spawn(old, cpu)
}

// spawn starts a worker pinned to cpu, retrying until it is ready or the
// group stops.
func (g *Group) spawn(old *worker, cpu int) {
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
		probe, ok := g.awaitTurn()
		if !ok {
			return
		}
		p, err := g.startWorker(g.ctx, cpu)
		if err == nil {
			g.attemptDone(probe, nil)
			added = true // add owns the CPU now (it releases it if stopping)
			g.add(p, old, cpu)
			return
		}
		if g.ctx.Err() != nil {
			g.attemptDone(probe, nil)
			return
		}
		g.logStartError(err)
		g.attemptDone(probe, err)
	}
}

func (g *Group) logStartError(err error) {
	var ie *proc.ImportError
	if errors.As(err, &ie) {
		g.log.Error("worker failed to import the app; will retry", "error", ie.Message, "hint", ie.Hint, "traceback", ie.Traceback)
		return
	}
	g.log.Error("worker failed to start; will retry", "error", err)
}

// Recycle replaces the worker pid gracefully: its replacement is started,
// and once that one is ready the old worker takes no new request and is
// stopped when its requests in progress are done (the path MaxRequests and
// MaxRSS take). reason goes to the log. It is how internal/app recycles a
// worker with a thread stuck past the request timeout, so the restart is
// counted as RestartTimeout. An unknown pid, a worker already being
// replaced or retiring, and a stopping group make it a no-op.
func (g *Group) Recycle(pid int, reason string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, w := range g.workers {
		if w.p.PID == pid {
			g.recycleLocked(w, RestartTimeout, "detail", reason)
			return
		}
	}
	g.log.Debug("recycle of an unknown worker ignored", "pid", pid, "reason", reason)
}

// recycleLocked starts the replacement of w, once, and counts it as a
// restart for reason; attrs are logged.
func (g *Group) recycleLocked(w *worker, reason string, attrs ...any) {
	if w.replaced || w.state != StateReady || g.stopping {
		return
	}
	w.replaced = true
	g.restartedLocked(reason)
	g.log.Info("recycling worker: starting its replacement", append([]any{"pid", w.p.PID, "reason", reason}, attrs...)...)
	g.spawnLocked(w)
}
