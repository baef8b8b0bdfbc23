package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// pssKiB returns a process's proportional set size: its private pages and
// its share of the pages it shares with others.
func pssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		t.Skipf("no smaps_rollup: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var kib int
		if n, _ := fmt.Sscanf(sc.Text(), "Pss: %d kB", &kib); n == 1 {
			return kib
		}
	}
	t.Fatalf("no Pss in /proc/%d/smaps_rollup", pid)
	return 0
}

// Preload shares the app's memory between the workers: on the Django
// example, 2 processes × 4 threads after a few requests, the workers and
// their fork server together hold less (PSS) than workers that each
// imported Django. WHISK_TEST_VENV names the virtualenv with Django.
func TestPreloadSavesMemory(t *testing.T) {
	venv := os.Getenv("WHISK_TEST_VENV")
	if venv == "" {
		t.Skip("WHISK_TEST_VENV is unset (scripts/testenv.sh makes the virtualenv with Django)")
	}
	spec, _ := pySpec(t, filepath.Join(venv, "bin", "python"))
	spec.VirtualEnv = venv
	spec.Chdir = filepath.Join(whisktest.RepoRoot(t), "examples", "django")
	spec.App = "mysite.wsgi:application"
	spec.Threads, spec.Processes = 4, 2
	warm := func(ps []*Process) {
		for _, p := range ps {
			for i, c := range p.Channels {
				for n := range 5 {
					if _, err := get(t, c, uint32(n+1), "/api/hello"); err != nil {
						t.Fatalf("worker %d channel %d: %v", p.PID, i, err)
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	sum := func(ps []*Process) (total int) {
		for _, p := range ps {
			total += pssKiB(t, p.PID)
		}
		return total
	}

	var spawned []*Process
	for range spec.Processes {
		spawned = append(spawned, start(t, spec))
	}
	warm(spawned)
	without := sum(spawned)
	for _, p := range spawned {
		p.Close()
		<-p.Done()
	}

	pl := startPreload(t, spec)
	var forked []*Process
	for range spec.Processes {
		forked = append(forked, fork(t, pl, spec))
	}
	warm(forked)
	workers := sum(forked)
	server := pssKiB(t, pl.PID)
	t.Logf("PSS of %d Django workers × %d threads: %d KiB spawned; preloaded %d KiB (workers) + %d KiB (fork server) = %d KiB, %.0f%% less",
		spec.Processes, spec.Threads, without, workers, server, workers+server, 100*(1-float64(workers+server)/float64(without)))
	if workers+server >= without {
		t.Errorf("preload holds %d KiB, no less than %d KiB without", workers+server, without)
	}
}
