package metrics

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/whiskserver/whisk/internal/group"
	"github.com/whiskserver/whisk/internal/proc"
	"github.com/whiskserver/whisk/internal/reqinfo"
	"github.com/whiskserver/whisk/internal/whisktest"
	"github.com/whiskserver/whisk/internal/whisktest/fakeworker"
)

// The collector tests run real groups of fake workers: this test binary,
// re-executed (see package fakeworker).
func TestMain(m *testing.M) { fakeworker.TestMain(m) }

var fakeSpawner = sync.OnceValue(proc.NewSpawner)

// startGroup starts a group of fake workers; the test's cleanup stops it.
func startGroup(t *testing.T, name string, processes, threads int, onRestart func(string)) *group.Group {
	t.Helper()
	g := group.New(group.Config{
		Name:      name,
		Processes: processes,
		Threads:   threads,
		Spec: proc.Spec{
			Python:         fakeworker.Exe(t),
			RuntimeDir:     "/whisk-runtime",
			App:            "ok",
			Window:         1 << 20,
			StartupTimeout: 10 * time.Second,
			Env:            fakeworker.Env(fakeworker.Track(t)),
		},
		MemoryInterval:  10 * time.Millisecond,
		GracefulTimeout: 2 * time.Second,
		Log:             slog.New(slog.DiscardHandler),
		OnRestart:       onRestart,
	}, fakeSpawner())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatalf("start group: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.Stop(ctx)
	})
	return g
}

// source is a Source whose groups and generation the test sets.
type source struct {
	mu     sync.Mutex
	groups []*group.Group
	gen    int
}

func (s *source) Groups() []*group.Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups
}

func (s *source) Generation() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

func (s *source) set(gen int, groups ...*group.Group) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen, s.groups = gen, groups
}

func newMetrics(src Source) *Metrics { return New(src, slog.New(slog.DiscardHandler)) }

// scrape fetches /metrics through the handler.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// line returns the sample line of series (name{labels} as exposed), or "".
func line(body, series string) string {
	for l := range strings.Lines(body) {
		if strings.HasPrefix(l, series+" ") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func info(groupName string, status int, pid int, queue, app time.Duration) *reqinfo.Info {
	return &reqinfo.Info{Start: time.Now().Add(-app - queue), Group: groupName, Status: status, PID: pid, Queue: queue, App: app}
}

func TestObserve(t *testing.T) {
	m := newMetrics(&source{})
	m.Observe(nil, info("a", 200, 10, 2*time.Millisecond, 30*time.Millisecond))
	m.Observe(nil, info("a", 200, 10, 0, 3*time.Millisecond))
	m.Observe(nil, info("a", 503, 0, 0, 0)) // no worker: no queue or app time
	m.Observe(nil, info("", 404, 0, 0, 0))
	for _, tt := range []struct {
		group, code string
		want        float64
	}{{"a", "200", 2}, {"a", "503", 1}, {"", "404", 1}} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(tt.group, tt.code)); got != tt.want {
			t.Errorf("requests{group=%q,code=%s} = %v, want %v", tt.group, tt.code, got, tt.want)
		}
	}
	body := scrape(t, m)
	checks := []struct {
		series string
		want   string
	}{
		{`whisk_request_duration_seconds_count{group="a"}`, "3"},
		{`whisk_request_queue_seconds_count{group="a"}`, "2"},
		{`whisk_request_app_seconds_count{group="a"}`, "2"},
		{`whisk_request_app_seconds_bucket{group="a",le="0.005"}`, "1"},
		{`whisk_request_app_seconds_bucket{group="a",le="0.05"}`, "2"},
		{`whisk_request_queue_seconds_bucket{group="a",le="0.0001"}`, "1"},
		{`whisk_request_duration_seconds_count{group=""}`, "1"},
		{`whisk_requests_total{code="200",group="a"}`, "2"},
	}
	for _, c := range checks {
		if got := line(body, c.series); got != c.series+" "+c.want {
			t.Errorf("scrape: %q, want %s %s", got, c.series, c.want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "whisk_generation"} {
		if !strings.Contains(body, "\n"+name+" ") {
			t.Errorf("scrape lacks %s", name)
		}
	}
}

// Observe allocates nothing once a group and status have been seen.
func TestObserveAllocs(t *testing.T) {
	m := newMetrics(&source{})
	in := info("a", 200, 10, time.Millisecond, 5*time.Millisecond)
	m.Observe(nil, in)
	if n := testing.AllocsPerRun(1000, func() { m.Observe(nil, in) }); n != 0 {
		t.Errorf("Observe allocates %v times per request, want 0", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	m := newMetrics(&source{})
	codes := []int{200, 200, 200, 304, 404, 500}
	var i atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		in := info("site", 200, 10, time.Millisecond, 5*time.Millisecond)
		for pb.Next() {
			in.Status = codes[i.Add(1)%int64(len(codes))]
			m.Observe(nil, in)
		}
	})
}

// Restart counters exist at zero once a group is added, and count.
func TestRestarts(t *testing.T) {
	m := newMetrics(&source{})
	m.AddGroup("a")
	body := scrape(t, m)
	for _, reason := range group.RestartReasons {
		series := `whisk_worker_restarts_total{group="a",reason="` + reason + `"}`
		if got := line(body, series); got != series+" 0" {
			t.Errorf("after AddGroup: %q, want %s 0", got, series)
		}
	}
	m.Restart("a", group.RestartMaxRequests)
	m.Restarts("a", group.RestartReload, 3)
	m.Restarts("a", group.RestartReload, 0)
	body = scrape(t, m)
	for series, want := range map[string]string{
		`whisk_worker_restarts_total{group="a",reason="max_requests"}`: "1",
		`whisk_worker_restarts_total{group="a",reason="reload"}`:       "3",
		`whisk_worker_restarts_total{group="a",reason="crash"}`:        "0",
	} {
		if got := line(body, series); got != series+" "+want {
			t.Errorf("%q, want %s %s", got, series, want)
		}
	}
}

// The group collector reads the groups at scrape time: slots, workers,
// queue, readiness, memory; a group the source no longer lists is gone.
func TestGroupCollector(t *testing.T) {
	t.Parallel()
	src := &source{}
	m := newMetrics(src)
	if body := scrape(t, m); line(body, "whisk_generation") != "whisk_generation 0" || strings.Contains(body, "whisk_slots{") {
		t.Fatalf("before start:\n%s", body)
	}
	a := startGroup(t, "a", 2, 2, func(reason string) { m.Restart("a", reason) })
	b := startGroup(t, "b", 1, 1, nil)
	src.set(1, a, b)

	held, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	held.Begin("GET", "/slow")
	// b's only slot is held, so the next request for b queues.
	bHeld, err := b.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	queued := make(chan *group.Slot, 1)
	go func() {
		s, err := b.Acquire(context.Background())
		if err != nil {
			t.Error(err)
		}
		queued <- s
	}()
	whisktest.WaitFor(t, 10*time.Second, "a request queued for b", func() bool { return b.Status().Queued == 1 })
	whisktest.WaitFor(t, 10*time.Second, "a memory sample of every worker", func() bool {
		for _, w := range append(a.Workers(), b.Workers()...) {
			if w.Memory == 0 {
				return false
			}
		}
		return true
	})

	body := scrape(t, m)
	for series, want := range map[string]string{
		"whisk_generation":                          "1",
		`whisk_slots{group="a",state="busy"}`:       "1",
		`whisk_slots{group="a",state="idle"}`:       "3",
		`whisk_slots{group="b",state="busy"}`:       "1",
		`whisk_slots{group="b",state="idle"}`:       "0",
		`whisk_workers{group="a",state="ready"}`:    "2",
		`whisk_workers{group="a",state="retiring"}`: "0",
		`whisk_queue_depth{group="a"}`:              "0",
		`whisk_queue_depth{group="b"}`:              "1",
		`whisk_group_ready{group="a"}`:              "1",
		`whisk_group_failed{group="a"}`:             "0",
		`whisk_group_idle{group="a"}`:               "0",
	} {
		if got := line(body, series); got != series+" "+want {
			t.Errorf("%q, want %s %s", got, series, want)
		}
	}
	for _, w := range a.Workers() {
		for _, kind := range []string{"uss", "pss", "rss"} {
			series := `whisk_worker_memory_bytes{group="a",kind="` + kind + `",pid="` + itoa(w.PID) + `"}`
			if line(body, series) == "" {
				t.Errorf("no %s", series)
			}
		}
		if line(body, `whisk_worker_requests{group="a",pid="`+itoa(w.PID)+`"}`) == "" {
			t.Errorf("no whisk_worker_requests of %d", w.PID)
		}
	}
	b.Release(bHeld, true)
	b.Release(<-queued, true)

	// A recycle: the old pid's series go once it has stopped.
	old := held.PID()
	a.Recycle(old, "test")
	a.Release(held, true)
	whisktest.WaitFor(t, 10*time.Second, "the recycled worker's replacement", func() bool {
		ws := a.Workers()
		return len(ws) == 2 && ws[0].PID != old && ws[1].PID != old
	})
	body = scrape(t, m)
	if strings.Contains(body, `pid="`+itoa(old)+`"`) {
		t.Errorf("series of the recycled worker %d remain:\n%s", old, body)
	}
	if got := line(body, `whisk_worker_restarts_total{group="a",reason="timeout"}`); got != `whisk_worker_restarts_total{group="a",reason="timeout"} 1` {
		t.Errorf("restarts after Recycle: %q", got)
	}

	// A reload: the source lists other groups; a's series go.
	src.set(2, b)
	body = scrape(t, m)
	if strings.Contains(body, `whisk_slots{group="a"`) || line(body, "whisk_generation") != "whisk_generation 2" {
		t.Errorf("after the reload:\n%s", body)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// The handler serves the text format to a plain client.
func TestHandler(t *testing.T) {
	m := newMetrics(&source{})
	m.Observe(nil, info("a", 200, 1, 0, 0))
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(string(b), "# TYPE whisk_requests_total counter") {
		t.Errorf("Content-Type %q, body:\n%s", ct, b)
	}
}
