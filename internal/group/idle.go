package group

import "time"

// watchIdle stops the group's processes once it has been idle for
// IdleTimeout (see idleCheck), until the group stops.
func (g *Group) watchIdle() {
	t := time.NewTimer(g.cfg.IdleTimeout)
	defer t.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-t.C:
			t.Reset(g.idleCheck())
		}
	}
}

// idleCheck retires every worker when no request has started or ended for
// IdleTimeout and none is in progress, queued or being spawned for; it
// returns when to check next.
func (g *Group) idleCheck() time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	limit := g.cfg.IdleTimeout
	if g.idle || g.stopping || len(g.workers) == 0 || g.spawning > 0 || len(g.waiters) > 0 || g.busyLocked() > 0 {
		return limit
	}
	if quiet := time.Since(g.lastActive); quiet < limit {
		return limit - quiet
	}
	g.idle = true
	g.log.Info("group idle: stopping its processes until the next request", "idle_timeout", limit.String(), "processes", len(g.workers))
	for _, w := range g.workers {
		if w.state == StateReady {
			w.replaced = true
			g.restartedLocked(RestartIdle)
			g.retireLocked(w)
		}
	}
	g.notifyLocked()
	if g.cfg.Spec.Preload {
		go g.stopPreloader() // the next request starts a new one
	}
	return limit
}

// wakeLocked starts the processes of an idle group again.
func (g *Group) wakeLocked() {
	g.idle = false
	g.lastActive = time.Now()
	g.log.Info("request for an idle group: starting its processes", "processes", g.cfg.Processes)
	for range g.cfg.Processes {
		g.spawnLocked(nil)
	}
}
