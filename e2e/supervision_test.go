package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// firstField returns the first space-separated field of a body: the pid
// in the answers of pid.py, memory.py and fragile.py.
func firstField(b []byte) int {
	f, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	n, _ := strconv.Atoi(f)
	return n
}

// TestRecycleUnderLoad: 20 clients keep requesting while workers are
// recycled at least 5 times, by max_requests and by max_rss; every
// response is counted and none fails.
func TestRecycleUnderLoad(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		grow  string // a path one extra client requests every 100 ms, to grow memory
		limit time.Duration
	}{
		{name: "max_requests", args: []string{"--max-requests", "40", "--max-requests-jitter", "10", whisktest.App(t, "pid.py")}, limit: 60 * time.Second},
		{name: "max_rss", args: []string{"--max-rss", "48M", whisktest.App(t, "memory.py")}, grow: "/grow?mb=8", limit: 120 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--processes", "2", "--threads", "2", "--python", whisktest.Python(t)}, tt.args...)
			s := whisktest.Start(t, args...)
			var mu sync.Mutex
			pids := map[int]bool{}
			l := startLoad(s, 20, "/", func(body []byte) {
				mu.Lock()
				pids[firstField(body)] = true
				mu.Unlock()
			})
			if tt.grow != "" {
				l.every(s, 100*time.Millisecond, tt.grow)
			}
			// 2 first workers + 5 replacements.
			whisktest.WaitFor(t, tt.limit, "5 recycles", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(pids) >= 7
			})
			l.finish(t)
			t.Logf("%d requests, %d worker pids", l.ok.Load(), len(pids))
		})
	}
}

// TestQueueFull: with every thread busy and max_queue requests waiting,
// the next request gets 503 with Retry-After at once; the queued one is
// served once a thread is free.
func TestQueueFull(t *testing.T) {
	dir := t.TempDir()
	s := whisktest.Start(t, "--processes", "1", "--threads", "1", "--max-queue", "1", "--env", "WHISK_TEST_DIR="+dir,
		"--python", whisktest.Python(t), whisktest.App(t, "gated.py"))
	results := make(chan int, 2)
	get := func(id string) {
		resp, err := client().Get(s.URL + "/wait?id=" + id)
		if err != nil {
			results <- -1
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		results <- resp.StatusCode
	}
	go get("a")
	whisktest.WaitFor(t, 30*time.Second, "request a running", func() bool {
		_, err := os.Stat(filepath.Join(dir, "started-a"))
		return err == nil
	})
	go get("b") // queued: the one thread is busy
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	resp, body := s.Get(t, "/wait?id=c")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("request beyond the queue: %d Retry-After %q %s; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("the refusal took %v: want it at once", waited)
	}
	if err := os.WriteFile(filepath.Join(dir, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if code := <-results; code != 200 {
			t.Errorf("running or queued request: status %d, want 200", code)
		}
	}
}

// TestCrashLoop: a group whose workers keep failing at startup makes a
// bounded number of spawns, then is failed (503 with Retry-After) instead
// of spinning; a reload with the code fixed brings it back.
func TestCrashLoop(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(whisktest.App(t, "fragile.py"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fragile.py"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	s := whisktest.Start(t, "--processes", "1", "--threads", "1", "--chdir", dir, "--python", whisktest.Python(t), "fragile:application")
	if resp, body := s.Get(t, "/"); resp.StatusCode != 200 { // imported
		t.Fatalf("before the break: %d %s", resp.StatusCode, body)
	}
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if resp, err := client().Get(s.URL + "/exit"); err == nil { // the worker dies; its replacements cannot import
		resp.Body.Close()
	}
	waitOutput(t, s, "group failed")
	resp, body := s.Get(t, "/")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("failed group: %d Retry-After %q %s; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// The stated budget: 5 failures in a row fail the group, with one
	// process; no further spawn until the retry (30 s).
	time.Sleep(2 * time.Second)
	if n := strings.Count(serverOutput(s), "worker failed to import the app"); n > 5 {
		t.Errorf("%d spawns failed before and after the failed state; the budget is 5 until the retry", n)
	}
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	s.Signal(t, syscall.SIGHUP)
	whisktest.WaitFor(t, 60*time.Second, "the reloaded group serving", func() bool {
		resp, _ := s.Get(t, "/")
		return resp.StatusCode == 200
	})
}

// TestIdleTimeout: an idle group's processes stop; the next request starts
// them again and succeeds.
func TestIdleTimeout(t *testing.T) {
	s := whisktest.Start(t, "--processes", "1", "--threads", "1", "--idle-timeout", "1s", "--python", whisktest.Python(t), whisktest.App(t, "pid.py"))
	_, body := s.Get(t, "/")
	first := firstField(body)
	waitOutput(t, s, "group idle")
	whisktest.WaitFor(t, 30*time.Second, "the idle worker gone", func() bool { return !procAlive(first) })
	resp, body := s.Get(t, "/")
	if resp.StatusCode != 200 {
		t.Fatalf("request to an idle group: %d %s", resp.StatusCode, body)
	}
	if second := firstField(body); second == first || second == 0 {
		t.Errorf("answered by pid %d after idle stop (before: %d): want a new worker", second, first)
	}
}
