package group

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"time"
)

func (g *Group) memoryInterval() time.Duration {
	if g.cfg.MemoryInterval == 0 {
		return DefaultMemoryInterval
	}
	return g.cfg.MemoryInterval
}

// sampleMemory samples every worker's memory each MemoryInterval until
// the group stops.
func (g *Group) sampleMemory() {
	t := time.NewTicker(g.memoryInterval())
	defer t.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-t.C:
			g.sampleOnce()
		}
	}
}

// sampleOnce records each live worker's USS and recycles those above
// MaxRSS. The files are read without the lock.
func (g *Group) sampleOnce() {
	g.mu.Lock()
	ws := slices.Clone(g.workers)
	g.mu.Unlock()
	for _, w := range ws {
		uss, err := g.readMemory(w.p.PID)
		g.mu.Lock()
		if err != nil {
			g.memoryErrorLocked(w, err)
		} else {
			w.memory = uss
			if g.cfg.MaxRSS > 0 && uss > g.cfg.MaxRSS {
				g.recycleLocked(w, "max_rss", "memory", uss, "max_rss", g.cfg.MaxRSS)
			}
		}
		g.mu.Unlock()
	}
}

// memoryErrorLocked logs a failed sample of a live worker, once per group
// (a worker that just exited is not an error).
func (g *Group) memoryErrorLocked(w *worker, err error) {
	if w.state == StateDead || errors.Is(err, fs.ErrNotExist) || g.memWarned {
		return
	}
	g.memWarned = true
	g.log.Warn("cannot sample worker memory; max_rss is not enforced", "pid", w.p.PID, "error", err)
}

// readUSS returns the unique set size of process pid in bytes: the
// resident pages no other process maps (Private_Clean + Private_Dirty). It
// reads /proc/PID/smaps_rollup, or /proc/PID/smaps (summing every mapping)
// on kernels older than 4.14.
func readUSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(fmt.Sprintf("/proc/%d", pid)); serr == nil {
			b, err = os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
		}
	}
	if err != nil {
		return 0, fmt.Errorf("memory of process %d: %w", pid, err)
	}
	uss, err := parseUSS(b)
	if err != nil {
		return 0, fmt.Errorf("memory of process %d: %w", pid, err)
	}
	return uss, nil
}

// errNoMemory: a smaps file without the Private_* fields, as a zombie's is.
var errNoMemory = fmt.Errorf("no Private_Clean or Private_Dirty in smaps: %w", fs.ErrNotExist)

// parseUSS sums the Private_Clean and Private_Dirty lines ("Name:  N kB")
// of a smaps or smaps_rollup file, in bytes.
func parseUSS(b []byte) (int64, error) {
	var kb int64
	found := false
	for line := range bytes.Lines(b) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok || (string(name) != "Private_Clean" && string(name) != "Private_Dirty") {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("smaps line %q is not \"%s: N kB\"", bytes.TrimSpace(line), name)
		}
		n, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("smaps line %q: bad size", bytes.TrimSpace(line))
		}
		kb += n
		found = true
	}
	if !found {
		return 0, errNoMemory
	}
	return kb << 10, nil
}
