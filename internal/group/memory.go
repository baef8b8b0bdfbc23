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

// sampleOnce records each live worker's memory and recycles those whose
// USS is above MaxRSS. The files are read without the lock.
func (g *Group) sampleOnce() {
	g.mu.Lock()
	ws := slices.Clone(g.workers)
	g.mu.Unlock()
	for _, w := range ws {
		m, err := g.readMemory(w.p.PID)
		g.mu.Lock()
		if err != nil {
			g.memoryErrorLocked(w, err)
		} else {
			w.memory = m
			if g.cfg.MaxRSS > 0 && m.USS > g.cfg.MaxRSS {
				g.recycleLocked(w, RestartMaxRSS, "memory", m.USS, "max_rss", g.cfg.MaxRSS)
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

// Memory is a worker's memory at one sample, in bytes, from
// /proc/PID/smaps_rollup.
type Memory struct {
	// USS is its unique set size: the resident pages no other process
	// maps (Private_Clean + Private_Dirty). What recycling it gives back,
	// and what MaxRSS limits.
	USS int64
	// PSS is its proportional set size: its private pages plus its share
	// of the pages it shares (with a preload fork server, its siblings).
	PSS int64
	// RSS is its resident set size: every resident page it maps, shared
	// ones counted in full.
	RSS int64
}

// readMemoryFile returns the memory of process pid. It reads
// /proc/PID/smaps_rollup, or /proc/PID/smaps (summing every mapping) on
// kernels older than 4.14.
func readMemoryFile(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(fmt.Sprintf("/proc/%d", pid)); serr == nil {
			b, err = os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
		}
	}
	if err != nil {
		return Memory{}, fmt.Errorf("memory of process %d: %w", pid, err)
	}
	m, err := parseMemory(b)
	if err != nil {
		return Memory{}, fmt.Errorf("memory of process %d: %w", pid, err)
	}
	return m, nil
}

// errNoMemory: a smaps file without the Private_* fields, as a zombie's is.
var errNoMemory = fmt.Errorf("no Private_Clean or Private_Dirty in smaps: %w", fs.ErrNotExist)

// parseMemory sums the Rss, Pss, Private_Clean and Private_Dirty lines
// ("Name:  N kB") of a smaps or smaps_rollup file, in bytes. Without a
// Private_* line it fails with errNoMemory.
func parseMemory(b []byte) (Memory, error) {
	var rss, pss, uss int64
	found := false
	for line := range bytes.Lines(b) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var sum *int64
		switch string(name) {
		case "Private_Clean", "Private_Dirty":
			sum = &uss
			found = true
		case "Rss":
			sum = &rss
		case "Pss":
			sum = &pss
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return Memory{}, fmt.Errorf("smaps line %q is not \"%s: N kB\"", bytes.TrimSpace(line), name)
		}
		n, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || n < 0 {
			return Memory{}, fmt.Errorf("smaps line %q: bad size", bytes.TrimSpace(line))
		}
		*sum += n
	}
	if !found {
		return Memory{}, errNoMemory
	}
	return Memory{USS: uss << 10, PSS: pss << 10, RSS: rss << 10}, nil
}
