package e2e

import (
	"encoding/json"
	"os"
	"os/user"
	"strconv"
	"strings"
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
