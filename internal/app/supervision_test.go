package app

// Tests of the group's supervision features through the handler, with real
// Python workers: the 503s and Retry-After a client sees, and recycling,
// idle stops and crash loops with a real interpreter.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/group"
	"github.com/whiskserver/whisk/internal/proc"
	"github.com/whiskserver/whisk/internal/pyrt"
	"github.com/whiskserver/whisk/internal/whisktest"
)

var spawner = sync.OnceValue(proc.NewSpawner)

// served is a group of real Python workers behind a Handler, served by an
// httptest server.
type served struct {
	g    *group.Group
	srv  *httptest.Server
	logs *whisktest.SyncBuffer
}

// serveApp starts a group running the WSGI script app (a path) with cfg
// (Name, Spec and Log set here; Processes and Threads at least 1) and
// serves it; the test's cleanup stops both.
func serveApp(t *testing.T, app string, env []string, cfg group.Config) *served {
	t.Helper()
	runtime, err := pyrt.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logs := &whisktest.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Name = "test"
	cfg.Processes, cfg.Threads = max(cfg.Processes, 1), max(cfg.Threads, 1)
	cfg.GracefulTimeout = 5 * time.Second
	cfg.Spec = proc.Spec{Python: whisktest.Python(t), RuntimeDir: runtime, App: app, Env: env, Window: 1 << 20, StartupTimeout: 30 * time.Second}
	cfg.Log = log
	g := group.New(cfg, spawner())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	h := &Handler{Group: g, Timeout: 30 * time.Second, MaxBodySize: 1 << 20, BodyMemory: 64 << 10, BodyMemoryTotal: 1 << 20,
		TempDir: t.TempDir(), Window: 1 << 20, Log: log}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		g.Stop(ctx)
	})
	return &served{g: g, srv: srv, logs: logs}
}

// get fetches path and returns the status, the Retry-After header and the
// body; a transport error fails the test.
func (s *served) get(t *testing.T, path string) (int, string, string) {
	t.Helper()
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Get(s.srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
}

// pidOf parses the "PID ..." answer of pid.py and memory.py.
func pidOf(t *testing.T, body string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.Fields(body + " x")[0])
	if err != nil {
		t.Fatalf("answer %q does not start with a pid", body)
	}
	return pid
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// A request that finds the queue full, or waits past the queue timeout,
// gets 503 with Retry-After; the requests in progress and queued are
// served once the gate opens.
func TestQueueLimitsReal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     group.Config
		waiting int // requests queued behind the one in progress
	}{
		{"queue full", group.Config{MaxQueue: 1}, 1},
		{"no queue", group.Config{MaxQueue: -1}, 0},
		{"queue timeout", group.Config{QueueTimeout: 200 * time.Millisecond}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := serveApp(t, whisktest.App(t, "gated.py"), []string{"WHISK_TEST_DIR=" + dir}, tt.cfg)
			type answer struct {
				code int
				body string
			}
			answers := make(chan answer, 1+tt.waiting)
			for i := range 1 + tt.waiting {
				go func() {
					code, _, body := s.get(t, fmt.Sprintf("/wait?id=%d", i))
					answers <- answer{code, body}
				}()
				if i == 0 {
					whisktest.WaitFor(t, 30*time.Second, "waiting for the first request to start", func() bool {
						_, err := os.Stat(filepath.Join(dir, "started-0"))
						return err == nil
					})
				}
			}
			whisktest.WaitFor(t, 10*time.Second, "waiting for the queue", func() bool { return s.g.Status().Queued == tt.waiting })
			code, retry, body := s.get(t, "/wait?id=refused")
			if code != http.StatusServiceUnavailable || retry != "1" {
				t.Errorf("request beyond the queue: %d, Retry-After %q, %q; want 503 with Retry-After 1", code, retry, body)
			}
			if err := os.WriteFile(filepath.Join(dir, "gate"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			for range 1 + tt.waiting {
				a := <-answers
				if a.code != http.StatusOK || !strings.HasPrefix(a.body, "done ") {
					t.Errorf("gated request: %d %q", a.code, a.body)
				}
			}
		})
	}
}

// Workers whose own memory passes max_rss are recycled while clients keep
// sending requests: every request succeeds.
func TestMaxRSSReal(t *testing.T) {
	t.Parallel()
	const clients, requests, mb = 8, 12, 4
	s := serveApp(t, whisktest.App(t, "memory.py"), nil, group.Config{
		Processes: 2, Threads: 2, MaxRSS: 48 << 20, MemoryInterval: 50 * time.Millisecond,
	})
	var mu sync.Mutex
	failed := 0
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range requests {
				code, _, body := s.get(t, fmt.Sprintf("/grow?mb=%d", mb))
				if code != http.StatusOK {
					mu.Lock()
					failed++
					mu.Unlock()
					t.Errorf("GET /grow: %d %q", code, body)
				}
			}
		}()
	}
	wg.Wait()
	// clients*requests*mb = 384 MiB were held in all: well over 2 x 48.
	recycled := map[int]bool{}
	for _, l := range lines(s.logs, "recycling worker", "reason=max_rss") {
		var pid int
		if _, err := fmt.Sscanf(l[strings.Index(l, " pid=")+1:], "pid=%d", &pid); err != nil {
			t.Fatalf("no pid in %q", l)
		}
		recycled[pid] = true
	}
	if failed != 0 || len(recycled) == 0 {
		t.Fatalf("%d of %d requests failed, %d workers recycled for max_rss; want 0 failed and recycles", failed, clients*requests, len(recycled))
	}
	whisktest.WaitFor(t, 30*time.Second, "waiting for the recycled workers to stop", func() bool {
		for pid := range recycled {
			if alive(pid) {
				return false
			}
		}
		return true
	})
	for range 4 {
		code, _, body := s.get(t, "/")
		if code != http.StatusOK || recycled[pidOf(t, body)] {
			t.Errorf("GET / after the recycles: %d %q (recycled: %v)", code, body, recycled)
		}
	}
	whisktest.WaitFor(t, 10*time.Second, "waiting for the new workers' memory samples", func() bool {
		for _, w := range s.g.Workers() {
			if w.Memory <= 0 {
				return false
			}
		}
		return true
	})
}

// An idle group stops its processes; the next request starts them again.
func TestIdleTimeoutReal(t *testing.T) {
	t.Parallel()
	s := serveApp(t, whisktest.App(t, "pid.py"), nil, group.Config{Processes: 1, IdleTimeout: 300 * time.Millisecond})
	code, _, body := s.get(t, "/")
	if code != http.StatusOK {
		t.Fatalf("GET /: %d %q", code, body)
	}
	first := pidOf(t, body)
	whisktest.WaitFor(t, 20*time.Second, "waiting for the idle worker to stop", func() bool {
		return s.g.Status().Idle && !alive(first)
	})
	code, _, body = s.get(t, "/")
	if code != http.StatusOK || pidOf(t, body) == first {
		t.Fatalf("GET / after the idle stop: %d %q; want 200 from a new worker", code, body)
	}
}

// The app's code breaks on disk and its worker dies: the group enters the
// failed state and answers 503 with Retry-After at once; once the code is
// fixed, the next retry brings it back.
func TestCrashLoopReal(t *testing.T) {
	t.Parallel()
	app := filepath.Join(t.TempDir(), "app.py")
	good, err := os.ReadFile(whisktest.App(t, "pid.py"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		t.Helper()
		if err := os.WriteFile(app+".tmp", b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(app+".tmp", app); err != nil {
			t.Fatal(err)
		}
	}
	write(good)
	const retry = time.Second
	s := serveApp(t, app, nil, group.Config{Processes: 1, FailedRetry: retry})
	_, _, body := s.get(t, "/")
	write([]byte("raise RuntimeError('broken deploy')\n"))
	syscall.Kill(pidOf(t, body), syscall.SIGKILL)
	whisktest.WaitFor(t, 30*time.Second, "waiting for the failed state", func() bool { return s.g.Status().Failed })
	code, retryAfter, _ := s.get(t, "/")
	if code != http.StatusServiceUnavailable || retryAfter != "1" {
		t.Errorf("GET / in the failed state: %d, Retry-After %q; want 503 with Retry-After 1", code, retryAfter)
	}
	failedLines := lines(s.logs, "group failed", "broken deploy")
	if len(failedLines) == 0 {
		t.Error("no failed-state line naming the import error")
	}
	write(good)
	whisktest.WaitFor(t, 30*time.Second, "waiting for the group to recover", func() bool {
		return len(s.g.Workers()) == 1 && !s.g.Status().Failed
	})
	if code, _, body := s.get(t, "/"); code != http.StatusOK {
		t.Errorf("GET / after the fix: %d %q", code, body)
	}
}

// unavailable maps each error of Acquire to a 503 with Retry-After.
func TestUnavailable(t *testing.T) {
	g := group.New(group.Config{Name: "test", Log: slog.New(slog.DiscardHandler)}, nil)
	h := &Handler{Group: g, Timeout: time.Second, Log: slog.New(slog.DiscardHandler)}
	tests := []struct {
		name   string
		err    error
		retry  []string // acceptable Retry-After values
		inBody string
	}{
		{"queue full", fmt.Errorf("%w: 3 waiting", group.ErrQueueFull), []string{"1"}, "too many requests"},
		{"queue timeout", fmt.Errorf("%w of 1s", group.ErrQueueTimeout), []string{"1"}, "no worker was free"},
		{"context deadline", fmt.Errorf("%w: %w", group.ErrNoWorker, context.DeadlineExceeded), []string{"1"}, "no worker was free"},
		{"stopped", group.ErrStopped, []string{"1"}, "stopping"},
		{"failed", &group.FailedError{Group: "test", Failures: 5, Last: errors.New("boom"), Retry: time.Now().Add(9500 * time.Millisecond)}, []string{"9", "10"}, "failing to start"},
		{"failed, retry due", &group.FailedError{Group: "test", Failures: 5, Last: errors.New("boom"), Retry: time.Now()}, []string{"1"}, "failing to start"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.unavailable(rec, httptest.NewRequest(http.MethodGet, "/", nil), tt.err)
			retry := rec.Header().Get("Retry-After")
			ok := false
			for _, r := range tt.retry {
				ok = ok || r == retry
			}
			if rec.Code != http.StatusServiceUnavailable || !ok || !strings.Contains(rec.Body.String(), tt.inBody) {
				t.Errorf("%v: %d, Retry-After %q, %q; want 503, one of %q, a body with %q", tt.err, rec.Code, retry, rec.Body, tt.retry, tt.inBody)
			}
		})
	}
}

// lines returns the lines of log that contain every one of subs.
func lines(log *whisktest.SyncBuffer, subs ...string) []string {
	var out []string
	for _, l := range strings.Split(log.String(), "\n") {
		ok := l != ""
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}
