package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// where is what testdata/apps/preload.py answers.
type where struct {
	PID        int    `json:"pid"`
	PPID       int    `json:"ppid"`
	ImportedIn int    `json:"imported_in"`
	PostForkIn int    `json:"post_fork_in"`
	UID        int    `json:"uid"`
	GID        int    `json:"gid"`
	Groups     []int  `json:"groups"`
	Home       string `json:"home"`
	User       string `json:"user"`
}

func askWhere(t testing.TB, s *whisktest.Server) where {
	t.Helper()
	resp, body := s.Get(t, "/")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /: %d %s\n%s", resp.StatusCode, body, s.Output.String())
	}
	var w where
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatalf("%v in %q", err, body)
	}
	return w
}

// TestWorkersRunAsUser: started as root with user = nobody, the workers'
// uid, gid, HOME and USER are nobody's.
func TestWorkersRunAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	s := whisktest.Start(t, "--user", "nobody", "--python", systemPython, "--chdir", whisktest.RepoRoot(t),
		"--processes", "1", "--threads", "1", whisktest.App(t, "preload.py"))
	w := askWhere(t, s)
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	if w.UID != uid || w.GID != gid || w.User != "nobody" || w.Home != nobody.HomeDir {
		t.Errorf("worker runs as uid %d gid %d USER %q HOME %q; want nobody (%d, %d, %q)", w.UID, w.GID, w.User, w.Home, uid, gid, nobody.HomeDir)
	}
}

// TestRootWithoutUserRefused: as root, with neither user nor allow_root,
// whisk stops at once with an error naming both settings.
func TestRootWithoutUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	s := whisktest.StartNoWait(t, "--allow-root=false", whisktest.App(t, "preload.py"))
	if code := s.Wait(t, 30*time.Second); code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, s.Output.String())
	}
	out := s.Output.String()
	for _, want := range []string{"runs as root", "--user", "--allow-root"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestPreload: with --preload the app is imported once, in a fork server
// that is the parent of every worker, and the post_fork hook runs in each
// worker.
func TestPreload(t *testing.T) {
	s := whisktest.Start(t, "--preload", "--post-fork", "preload:post_fork", "--chdir", whisktest.RepoRoot(t)+"/testdata/apps",
		"--python", whisktest.Python(t), "--processes", "2", "--threads", "1", "preload:application")
	seen := map[int]where{}
	whisktest.WaitFor(t, 30*time.Second, "both workers answering", func() bool {
		// Concurrent requests: one at a time would all go to the first
		// (least busy) worker.
		answers := make(chan where, 8)
		for range 8 {
			go func() {
				var w where
				if resp, err := client().Get(s.URL + "/"); err == nil {
					json.NewDecoder(resp.Body).Decode(&w)
					resp.Body.Close()
				}
				answers <- w
			}()
		}
		for range 8 {
			if w := <-answers; w.PID != 0 {
				seen[w.PID] = w
			}
		}
		return len(seen) == 2
	})
	for pid, w := range seen {
		if w.ImportedIn != w.PPID || w.ImportedIn == pid {
			t.Errorf("worker %d: app imported in %d, parent %d: want imported once, in the parent", pid, w.ImportedIn, w.PPID)
		}
		if w.PostForkIn != pid {
			t.Errorf("worker %d: post_fork ran in %d", pid, w.PostForkIn)
		}
	}
}

// TestFrontDropsRoot: started as root with every group as nobody, the
// front gives up root once its listeners are bound, and still does what
// needs its files and its workers: serves, spools a large body, answers
// /metrics, reloads on SIGHUP (new workers, spawned without switching),
// and on SIGTERM leaves no pid file naming it, though the pid file's
// directory is root's.
func TestFrontDropsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	pidFile := filepath.Join(t.TempDir(), "whisk.pid") // a 0700 directory of root's
	admin := whisktest.FreeAddr(t)
	s := whisktest.Start(t, "--user", "nobody", "--python", systemPython, "--chdir", whisktest.RepoRoot(t),
		"--processes", "1", "--threads", "2", "--pid-file", pidFile, "--admin-bind", admin,
		whisktest.App(t, "preload.py"))
	// Every thread of the front: real, effective, saved and fs ids.
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", s.Cmd.Process.Pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("the front's threads: %v, %v", tasks, err)
	}
	wantUID := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", uid, uid, uid, uid)
	wantGID := fmt.Sprintf("Gid:\t%d\t%d\t%d\t%d", gid, gid, gid, gid)
	for _, task := range tasks {
		status, err := os.ReadFile(task)
		if err != nil {
			continue // a thread that ended
		}
		if !strings.Contains(string(status), wantUID) || !strings.Contains(string(status), wantGID) {
			t.Fatalf("%s lacks %q and %q:\n%s", task, wantUID, wantGID, status)
		}
	}
	if !strings.Contains(s.Output.String(), "front runs as the workers' user") {
		t.Errorf("no log line about dropping root:\n%s", s.Output.String())
	}
	first := askWhere(t, s)
	if first.UID != uid || first.GID != gid || first.User != "nobody" {
		t.Errorf("worker runs as uid %d gid %d USER %q; want nobody", first.UID, first.GID, first.User)
	}

	// A body over body_buffer_size goes to the spool directory, which
	// root made and gave to nobody.
	req, _ := http.NewRequest("POST", s.URL+"/", bytes.NewReader(bytes.Repeat([]byte("b"), 3<<20)))
	if resp, body := whisktest.ReadAll(t, s.Do(t, req)); resp.StatusCode != 200 {
		t.Errorf("POST of 3 MiB: %d %s\n%s", resp.StatusCode, body, s.Output.String())
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := whisktest.ReadAll(t, resp); resp.StatusCode != 200 || !bytes.Contains(body, []byte("process_open_fds")) {
		t.Errorf("/metrics after dropping root: %d\n%.500s", resp.StatusCode, body)
	}

	s.Signal(t, syscall.SIGHUP)
	whisktest.WaitFor(t, 30*time.Second, "a new worker after SIGHUP", func() bool {
		return askWhere(t, s).PID != first.PID
	})
	if w := askWhere(t, s); w.UID != uid || w.User != "nobody" {
		t.Errorf("worker after reload runs as uid %d USER %q", w.UID, w.User)
	}

	s.Stop(t)
	if code := s.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit %d\n%s", code, s.Output.String())
	}
	if data, err := os.ReadFile(pidFile); err == nil && strings.TrimSpace(string(data)) != "" {
		t.Errorf("pid file still names %q after exit", data)
	}
}
