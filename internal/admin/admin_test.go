package admin

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/group"
	"github.com/whiskserver/whisk/internal/proc"
	"github.com/whiskserver/whisk/internal/whisktest/fakeworker"
)

// The tests run real groups of fake workers: this test binary, re-executed
// (see package fakeworker).
func TestMain(m *testing.M) { fakeworker.TestMain(m) }

var fakeSpawner = sync.OnceValue(proc.NewSpawner)

// newGroup makes a group of fake workers running app; start starts it.
func newGroup(t *testing.T, name, app string, processes int) *group.Group {
	t.Helper()
	g := group.New(group.Config{
		Name:      name,
		Processes: processes,
		Threads:   2,
		Spec: proc.Spec{
			Python:         fakeworker.Exe(t),
			RuntimeDir:     "/whisk-runtime",
			App:            app,
			Window:         1 << 20,
			StartupTimeout: 10 * time.Second,
			Env:            fakeworker.Env(fakeworker.Track(t)),
		},
		GracefulTimeout: 2 * time.Second,
		FailedRetry:     time.Hour,
		Log:             slog.New(slog.DiscardHandler),
	}, fakeSpawner())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.Stop(ctx)
	})
	return g
}

func start(t *testing.T, g *group.Group) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := g.Start(ctx); err != nil {
		t.Fatalf("start group: %v", err)
	}
}

// source is a Source the test sets.
type source struct {
	mu       sync.Mutex
	groups   []*group.Group
	gen      int
	stopping bool
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

func (s *source) ConfigDigest() string {
	if s.Generation() == 0 {
		return ""
	}
	return "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}

func (s *source) ShuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

func get(t *testing.T, h http.Handler, path string, header ...string) (int, http.Header, string) {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, rec.Header(), string(b)
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	src := &source{}
	h := Health(src)
	if code, _, _ := get(t, h, "/healthz"); code != 200 {
		t.Errorf("/healthz before start: %d", code)
	}
	if code, _, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "starting") {
		t.Errorf("/readyz before start: %d %q, want 503 starting", code, body)
	}
	a := newGroup(t, "a", "ok", 1)
	start(t, a)
	src.mu.Lock()
	src.gen, src.groups = 1, []*group.Group{a}
	src.mu.Unlock()
	if code, _, body := get(t, h, "/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz serving: %d %q", code, body)
	}
	// A group whose workers fail at import and is not started yet cannot
	// serve.
	broken := newGroup(t, "broken", "fail-import", 1)
	src.mu.Lock()
	src.groups = []*group.Group{a, broken}
	src.mu.Unlock()
	if code, _, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "group broken starting") {
		t.Errorf("/readyz with a group without workers: %d %q", code, body)
	}
	src.mu.Lock()
	src.groups = []*group.Group{a}
	src.stopping = true
	src.mu.Unlock()
	if code, _, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz shutting down: %d %q", code, body)
	}
	if code, _, _ := get(t, h, "/healthz"); code != 200 {
		t.Errorf("/healthz shutting down: %d, want 200 (alive)", code)
	}
	// health_bind serves nothing else.
	for _, p := range []string{"/metrics", "/status", "/status.json", "/"} {
		if code, _, _ := get(t, h, p); code != 404 {
			t.Errorf("health handler serves %s: %d", p, code)
		}
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	a := newGroup(t, "web", "ok", 2)
	start(t, a)
	b := newGroup(t, "api", "ok", 1)
	start(t, b)
	src := &source{gen: 3, groups: []*group.Group{a, b}}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics here\n") })
	h := Handler(Config{Source: src, Metrics: metrics, Version: "9.9", Log: slog.New(slog.DiscardHandler)})

	slot, err := a.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release(slot, true)
	slot.Begin("POST", `/upload/<script>alert("x")</script>`)
	time.Sleep(10 * time.Millisecond)

	code, hdr, body := get(t, h, "/status.json")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("/status.json: %d %s\n%s", code, hdr.Get("Content-Type"), body)
	}
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status.json: %v\n%s", err, body)
	}
	if st.Generation != 3 || !st.Ready || st.Version != "9.9" || st.PID != os.Getpid() || len(st.Groups) != 2 || !strings.HasPrefix(st.ConfigDigest, "0123") {
		t.Fatalf("status: %+v", st)
	}
	web := st.Groups[0]
	if web.Name != "web" || web.State != "serving" || web.Processes != 2 || web.Threads != 2 || web.Busy != 1 || web.Idle != 3 || len(web.Workers) != 2 {
		t.Errorf("group web: %+v", web)
	}
	pids := map[int]bool{}
	for _, g := range []*group.Group{a, b} {
		for _, w := range g.Workers() {
			pids[w.PID] = true
		}
	}
	found := 0
	for _, g := range st.Groups {
		for _, w := range g.Workers {
			if !pids[w.PID] {
				t.Errorf("worker %d in /status.json is not a live worker", w.PID)
			}
			found++
			if w.PID == slot.PID() {
				if len(w.Requests) != 1 || w.Requests[0].Method != "POST" || w.Requests[0].Age < 0.01 || w.Busy != 1 {
					t.Errorf("busy worker: %+v", w)
				}
			}
		}
	}
	if found != len(pids) {
		t.Errorf("%d workers in /status.json, want %d", found, len(pids))
	}

	// The page: every pid, the request escaped, no external asset.
	code, hdr, page := get(t, h, "/status")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("/status: %d %s", code, hdr.Get("Content-Type"))
	}
	for pid := range pids {
		if !strings.Contains(page, `data-pid="`+strconv.Itoa(pid)+`"`) {
			t.Errorf("page lacks worker %d", pid)
		}
	}
	if strings.Contains(page, "<script>") || !strings.Contains(page, "&lt;script&gt;") {
		t.Error("the request path is not escaped on the page")
	}
	for _, bad := range []string{"src=", "<link", "@import", "http://", "https://"} {
		if strings.Contains(page, bad) {
			t.Errorf("page refers to an external asset: %q", bad)
		}
	}
	if strings.Contains(page, `http-equiv="refresh"`) {
		t.Error("page refreshes without ?refresh")
	}
	if _, _, p := get(t, h, "/status?refresh=5"); !strings.Contains(p, `<meta http-equiv="refresh" content="5">`) {
		t.Error("?refresh=5 does not refresh")
	}
	// Content negotiation: /status gives JSON to a client that asks.
	if _, hdr, body := get(t, h, "/status", "Accept", "application/json"); hdr.Get("Content-Type") != "application/json" || !strings.HasPrefix(body, "{") {
		t.Errorf("/status with Accept: application/json: %s", hdr.Get("Content-Type"))
	}
	if code, _, body := get(t, h, "/metrics"); code != 200 || body != "metrics here\n" {
		t.Errorf("/metrics: %d %q", code, body)
	}
	if code, hdr, _ := get(t, h, "/"); code != 302 || hdr.Get("Location") != "/status" {
		t.Errorf("/: %d %s", code, hdr.Get("Location"))
	}
	if code, _, _ := get(t, h, "/readyz"); code != 200 {
		t.Errorf("/readyz on the admin handler: %d", code)
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		got, want string
	}{
		{formatBytes(0), "–"},
		{formatBytes(512), "512 B"},
		{formatBytes(3 << 10), "3 KiB"},
		{formatBytes(45 << 20), "45.0 MiB"},
		{formatBytes(3 << 30), "3.00 GiB"},
		{formatSeconds(0.85), "850ms"},
		{formatSeconds(12.34), "12.3s"},
		{formatSeconds(245), "4m05s"},
		{formatSeconds(3*3600 + 12*60), "3h12m"},
		{formatSeconds(50 * 3600), "2d02h"},
		{truncate("abc", 2), "ab…"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
