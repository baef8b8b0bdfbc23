package group

import (
	"context"

	"github.com/whiskserver/whisk/internal/proc"
)

// startWorker starts one worker process pinned to cpu (-1: unpinned):
// spawned, or with Spec.Preload forked from the group's fork server.
func (g *Group) startWorker(ctx context.Context, cpu int) (*proc.Process, error) {
	if !g.cfg.Spec.Preload {
		return g.spawner.Start(ctx, g.spec(cpu))
	}
	pl, err := g.preloader(ctx)
	if err != nil {
		return nil, err
	}
	return pl.Fork(ctx, g.spec(cpu))
}

// preloader returns the group's live fork server, starting one (the app's
// import) when there is none or the last one died. One start at a time:
// concurrent spawns wait for it and fork from the same server.
func (g *Group) preloader(ctx context.Context) (*proc.Preloader, error) {
	g.plMu.Lock()
	defer g.plMu.Unlock()
	if g.pl != nil {
		select {
		case <-g.pl.Done():
			g.log.Warn("fork server exited; starting a new one", "pid", g.pl.PID, "error", g.pl.ExitErr())
			g.pl = nil
		default:
			return g.pl, nil
		}
	}
	pl, err := g.spawner.StartPreload(ctx, g.cfg.Spec)
	if err != nil {
		return nil, err
	}
	g.log.Info("fork server ready: the app is imported once and workers are forked from it", "pid", pl.PID)
	g.pl = pl
	return pl, nil
}

// stopPreloader stops the fork server, if any; it kills workers still
// forked from it, so call it once they are stopped.
func (g *Group) stopPreloader() {
	g.plMu.Lock()
	pl := g.pl
	g.pl = nil
	g.plMu.Unlock()
	if pl != nil {
		pl.Close()
		<-pl.Done()
	}
}
