package e2e

// The admin endpoints and the graceful shutdown, through the binary:
// /metrics moving as requests flow, /status.json and the status page (in
// headless Chromium) naming the live workers, /readyz, and SIGTERM under
// load.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// admin is a whisk's admin listener.
type admin struct {
	t   testing.TB
	url string
	c   *http.Client
}

func newAdmin(t testing.TB, addr string) *admin {
	return &admin{t: t, url: "http://" + addr, c: &http.Client{Timeout: 10 * time.Second}}
}

// get returns the status and body of GET path, or 0 and the error.
func (a *admin) get(path string) (int, string, error) {
	resp, err := a.c.Get(a.url + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metrics scrapes /metrics into series → value.
func (a *admin) metrics() map[string]float64 {
	a.t.Helper()
	code, body, err := a.get("/metrics")
	if err != nil || code != 200 {
		a.t.Fatalf("/metrics: %d %v", code, err)
	}
	out := map[string]float64{}
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(strings.TrimSpace(line), ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line)[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// statusJSON is the part of /status.json the tests read.
type statusJSON struct {
	Generation   int    `json:"generation"`
	ConfigDigest string `json:"config_digest"`
	Ready        bool   `json:"ready"`
	Groups       []struct {
		Name    string `json:"name"`
		Workers []struct {
			PID      int    `json:"pid"`
			State    string `json:"state"`
			Served   int    `json:"served"`
			USS      int64  `json:"uss_bytes"`
			Requests []struct {
				Method string  `json:"method"`
				Path   string  `json:"path"`
				Age    float64 `json:"age_seconds"`
			} `json:"requests"`
		} `json:"workers"`
	} `json:"groups"`
}

func (a *admin) status() statusJSON {
	a.t.Helper()
	code, body, err := a.get("/status.json")
	if err != nil || code != 200 {
		a.t.Fatalf("/status.json: %d %v", code, err)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		a.t.Fatalf("/status.json: %v\n%s", err, body)
	}
	return st
}

func (st statusJSON) pids() []int {
	var out []int
	for _, g := range st.Groups {
		for _, w := range g.Workers {
			out = append(out, w.PID)
		}
	}
	slices.Sort(out)
	return out
}

// waitReady polls /readyz until it answers 200.
func (a *admin) waitReady() {
	a.t.Helper()
	whisktest.WaitFor(a.t, 60*time.Second, "/readyz to answer 200", func() bool {
		code, _, _ := a.get("/readyz")
		return code == 200
	})
}

// workerPIDs returns whisk's live children: its workers.
func workerPIDs(t testing.TB, s *whisktest.Server) []int {
	pids := childPIDs(t, s.Cmd.Process.Pid)
	slices.Sort(pids)
	return pids
}

// Requests move the counters and histograms of their group; recycles after
// max_requests count as restarts; /status.json lists whisk's workers.
func TestMetricsMove(t *testing.T) {
	t.Parallel()
	adminAddr, healthAddr := whisktest.FreeAddr(t), whisktest.FreeAddr(t)
	s := startApp(t, "slow.py", "--processes", "2", "--threads", "2", "--max-requests", "5", "--max-requests-jitter", "0",
		"--admin-bind", adminAddr, "--health-bind", healthAddr)
	a, health := newAdmin(t, adminAddr), newAdmin(t, healthAddr)
	health.waitReady()
	if code, _, _ := health.get("/metrics"); code != 404 {
		t.Errorf("health_bind serves /metrics: %d", code)
	}
	before := a.metrics()
	if v := before[`whisk_requests_total{code="200",group="main"}`]; v != 0 {
		t.Errorf("requests before any: %v", v)
	}
	if before[`whisk_worker_restarts_total{group="main",reason="max_requests"}`] != 0 || before["whisk_generation"] != 1 {
		t.Errorf("before: restarts %v, generation %v", before[`whisk_worker_restarts_total{group="main",reason="max_requests"}`], before["whisk_generation"])
	}
	const n = 12
	for i := range n {
		resp, body := fetch(t, s, "GET", fmt.Sprintf("/?ms=%d", i%3), nil)
		mustStatus(t, s, resp, body, 200)
	}
	after := a.metrics()
	for series, want := range map[string]float64{
		`whisk_requests_total{code="200",group="main"}`:      n,
		`whisk_request_duration_seconds_count{group="main"}`: n,
		`whisk_request_queue_seconds_count{group="main"}`:    n,
		`whisk_request_app_seconds_count{group="main"}`:      n,
	} {
		if got := after[series]; got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if sum := after[`whisk_request_app_seconds_sum{group="main"}`]; sum < 0.010 { // 4 × 1 ms + 4 × 2 ms at least
		t.Errorf("app time sum %v s, want at least 12 ms", sum)
	}
	// The worker that took the first 5 requests is recycled (least-busy
	// dispatch gives sequential requests to the same worker until then).
	whisktest.WaitFor(t, 30*time.Second, "a restart for max_requests", func() bool {
		return a.metrics()[`whisk_worker_restarts_total{group="main",reason="max_requests"}`] >= 1
	})
	// Once the recycles are over, /status.json and the metrics name
	// exactly whisk's children.
	whisktest.WaitFor(t, 30*time.Second, "/status.json to list whisk's workers", func() bool {
		got, want := a.status().pids(), workerPIDs(t, s)
		return len(got) == 2 && slices.Equal(got, want)
	})
	m := a.metrics()
	for _, pid := range workerPIDs(t, s) {
		if _, ok := m[fmt.Sprintf(`whisk_worker_requests{group="main",pid="%d"}`, pid)]; !ok {
			t.Errorf("no whisk_worker_requests for worker %d", pid)
		}
	}
	if m[`whisk_workers{group="main",state="ready"}`] != 2 || m[`whisk_slots{group="main",state="idle"}`] != 4 || m[`whisk_group_ready{group="main"}`] != 1 {
		t.Errorf("workers %v, idle slots %v, ready %v; want 2, 4, 1", m[`whisk_workers{group="main",state="ready"}`],
			m[`whisk_slots{group="main",state="idle"}`], m[`whisk_group_ready{group="main"}`])
	}
	if m["go_goroutines"] == 0 || m["process_resident_memory_bytes"] == 0 {
		t.Error("no Go runtime or process metrics")
	}
}

// Requests waiting for a worker show as queue depth; the one in the app
// shows on /status.json as the worker's current request, with its age.
func TestQueueDepthAndCurrentRequest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	adminAddr := whisktest.FreeAddr(t)
	s := startApp(t, "gated.py", "--processes", "1", "--threads", "1", "--admin-bind", adminAddr, "--env", "WHISK_TEST_DIR="+dir)
	a := newAdmin(t, adminAddr)
	a.waitReady()
	const requests = 3
	results := make(chan int, requests)
	for i := range requests {
		go func() {
			code, _, err := tryGet(s, fmt.Sprintf("/wait?id=%d", i))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
			}
			results <- code
		}()
	}
	whisktest.WaitFor(t, 30*time.Second, "2 requests queued behind 1 in the app", func() bool {
		m := a.metrics()
		return m[`whisk_queue_depth{group="main"}`] == 2 && m[`whisk_slots{group="main",state="busy"}`] == 1 && m[`whisk_slots{group="main",state="idle"}`] == 0
	})
	time.Sleep(50 * time.Millisecond)
	st := a.status()
	if len(st.Groups) != 1 || len(st.Groups[0].Workers) != 1 {
		t.Fatalf("status: %+v", st)
	}
	w := st.Groups[0].Workers[0]
	if len(w.Requests) != 1 || w.Requests[0].Method != "GET" || w.Requests[0].Path != "/wait" || w.Requests[0].Age < 0.05 {
		t.Errorf("current requests %+v, want GET /wait at least 50 ms old", w.Requests)
	}
	if err := os.WriteFile(filepath.Join(dir, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range requests {
		if code := <-results; code != 200 {
			t.Errorf("status %d, want 200", code)
		}
	}
	m := a.metrics()
	if m[`whisk_queue_depth{group="main"}`] != 0 || m[`whisk_request_queue_seconds_count{group="main"}`] != requests {
		t.Errorf("after: queue %v, queue waits observed %v", m[`whisk_queue_depth{group="main"}`], m[`whisk_request_queue_seconds_count{group="main"}`])
	}
	if sum := m[`whisk_request_queue_seconds_sum{group="main"}`]; sum < 0.1 {
		t.Errorf("queue wait sum %v s, want the two queued requests' wait (at least 0.1 s)", sum)
	}
	if len(a.status().Groups[0].Workers[0].Requests) != 0 {
		t.Error("a current request is still shown after the requests ended")
	}
}

// SIGTERM under load from 20 clients: /readyz fails at once, requests are
// still served during shutdown_delay, then the listener closes; every
// request whisk took gets its whole answer (the access log has as many as
// the clients received), none fails, and whisk exits 0 within
// graceful_timeout.
func TestShutdownUnderLoad(t *testing.T) {
	t.Parallel()
	const (
		clients  = 20
		delay    = 2 * time.Second
		graceful = 10 * time.Second
	)
	healthAddr := whisktest.FreeAddr(t)
	accessLog := filepath.Join(t.TempDir(), "access.log")
	s := startApp(t, "slow.py", "--processes", "2", "--threads", "4", "--health-bind", healthAddr,
		"--shutdown-delay", delay.String(), "--graceful-timeout", graceful.String(), "--access-log", accessLog)
	health := newAdmin(t, healthAddr)
	health.waitReady()

	var (
		ok, lost atomic.Int64
		mu       sync.Mutex
		failures []string
		okTimes  []time.Time // when each 200 arrived
		refused  []time.Time // when each client first found the listener closed
		wg       sync.WaitGroup
	)
	for i := range clients {
		wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
			defer c.CloseIdleConnections()
			for j := 0; ; j++ {
				resp, err := c.Get(fmt.Sprintf("%s/?ms=%d", s.URL, 20+(i+j)%30))
				if errors.Is(err, syscall.ECONNREFUSED) {
					mu.Lock()
					refused = append(refused, time.Now())
					mu.Unlock()
					return // the listener is closed: whisk took no request
				}
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 || len(body) == 0 {
					lost.Add(1)
					mu.Lock()
					if len(failures) < 10 {
						if err != nil {
							failures = append(failures, err.Error())
						} else {
							failures = append(failures, fmt.Sprintf("status %d: %q", resp.StatusCode, body))
						}
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
				mu.Lock()
				okTimes = append(okTimes, time.Now())
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	if ok.Load() == 0 {
		t.Fatalf("no request served under load%s", serverOutput(s))
	}
	sigAt := time.Now()
	s.Signal(t, syscall.SIGTERM)
	var notReadyAt time.Time
	whisktest.WaitFor(t, delay, "/readyz to fail after SIGTERM", func() bool {
		code, _, _ := health.get("/readyz")
		if code == 503 {
			notReadyAt = time.Now()
		}
		return code == 503
	})
	code := s.Wait(t, graceful+5*time.Second)
	exitedAt := time.Now()
	wg.Wait()

	if code != 0 {
		t.Errorf("exit code %d, want 0%s", code, serverOutput(s))
	}
	if took := exitedAt.Sub(sigAt); took > graceful {
		t.Errorf("whisk took %v to exit after SIGTERM, more than graceful_timeout %v", took, graceful)
	}
	if lost.Load() > 0 {
		t.Errorf("%d requests failed (%d ok): %q%s", lost.Load(), ok.Load(), failures, serverOutput(s))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != clients {
		t.Errorf("%d clients saw the listener close, want %d", len(refused), clients)
	}
	slices.SortFunc(refused, func(a, b time.Time) int { return a.Compare(b) })
	if len(refused) > 0 && refused[0].Sub(sigAt) < delay-100*time.Millisecond {
		t.Errorf("the listener closed %v after SIGTERM, before shutdown_delay %v", refused[0].Sub(sigAt), delay)
	}
	// Requests answered while /readyz failed and the delay ran.
	during := 0
	for _, at := range okTimes {
		if at.After(notReadyAt) && at.Before(sigAt.Add(delay-200*time.Millisecond)) {
			during++
		}
	}
	if during == 0 {
		t.Errorf("no request answered during shutdown_delay after /readyz failed")
	}
	// Every answer whisk logged reached a client, and no more.
	b, err := os.ReadFile(accessLog)
	if err != nil {
		t.Fatal(err)
	}
	logged := strings.Count(string(b), "GET /?ms=")
	if int64(logged) != ok.Load() {
		t.Errorf("access log has %d requests, clients received %d", logged, ok.Load())
	}
	t.Logf("%d requests answered (%d during the %v delay), /readyz failed %v after SIGTERM, listener closed %v after, exit %v after",
		ok.Load(), during, delay, notReadyAt.Sub(sigAt).Round(time.Millisecond), refused[0].Sub(sigAt).Round(time.Millisecond), exitedAt.Sub(sigAt).Round(time.Millisecond))
}

// chromium returns the headless Chromium to render pages with:
// WHISK_TEST_CHROMIUM, else chromium on PATH (scripts/chromium.sh, which
// `make test` runs, installs it).
func chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("WHISK_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium: run `make test` (scripts/chromium.sh installs Debian's chromium) or set WHISK_TEST_CHROMIUM")
	return ""
}

// chromiumRun runs headless Chromium with args and returns its stdout.
func chromiumRun(t testing.TB, args ...string) []byte {
	t.Helper()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.Command(chromium(t), append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %q: %v\n%s", args, err, stderr.String())
	}
	return out
}

var pidCellRE = regexp.MustCompile(`<td class="pid">(\d+)</td>`)

// The status page, rendered by headless Chromium, shows the pids of the
// live workers of both groups: the children of the whisk process.
// WHISK_STATUS_SCREENSHOT=FILE also saves a screenshot of it.
func TestStatusPageChromium(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	adminAddr := whisktest.FreeAddr(t)
	conf := writeConfig(t, dir, fmt.Sprintf(`
python = %q
admin_bind = %q

[groups.web]
app = %q
processes = 3
threads = 4
env = { WHISK_TEST_DIR = %q }

[groups.api]
app = %q
processes = 2
threads = 2

[sites.main]
default = true
mounts = [{ path = "/", group = "web" }, { path = "/api", group = "api" }]
`, whisktest.Python(t), adminAddr, whisktest.App(t, "gated.py"), dir, whisktest.App(t, "pid.py")))
	s := whisktest.Start(t, "--config", conf)
	a := newAdmin(t, adminAddr)
	a.waitReady()
	for range 5 {
		resp, body := fetch(t, s, "GET", "/api/", nil)
		mustStatus(t, s, resp, body, 200)
	}
	// One request in progress, to show on the page.
	held := make(chan int, 1)
	go func() {
		code, _, _ := tryGet(s, "/wait?id=page")
		held <- code
	}()
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(dir, "gate"), nil, 0o644)
		<-held
	})
	whisktest.WaitFor(t, 30*time.Second, "the request to reach the app", func() bool {
		_, err := os.Stat(filepath.Join(dir, "started-page"))
		return err == nil
	})
	// Wait for the first memory sample (every 5 s), so the page shows it.
	whisktest.WaitFor(t, 30*time.Second, "a memory sample of every worker", func() bool {
		for _, g := range a.status().Groups {
			for _, w := range g.Workers {
				if w.USS == 0 {
					return false
				}
			}
		}
		return true
	})

	want := workerPIDs(t, s)
	if len(want) != 5 {
		t.Fatalf("whisk has %d children %v, want 5 workers", len(want), want)
	}
	dom := chromiumRun(t, "--dump-dom", a.url+"/status")
	var got []int
	for _, m := range pidCellRE.FindAllSubmatch(dom, -1) {
		pid, _ := strconv.Atoi(string(m[1]))
		got = append(got, pid)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("pids on the page rendered by Chromium %v, want whisk's workers %v\n%s", got, want, dom)
	}
	for _, s := range []string{"/wait", `id="group-web"`, `id="group-api"`} {
		if !strings.Contains(string(dom), s) {
			t.Errorf("the rendered page lacks %q", s)
		}
	}
	if out := os.Getenv("WHISK_STATUS_SCREENSHOT"); out != "" {
		abs, err := filepath.Abs(out)
		if err != nil {
			t.Fatal(err)
		}
		chromiumRun(t, "--hide-scrollbars", "--window-size=1280,900", "--screenshot="+abs, a.url+"/status")
		t.Logf("screenshot saved to %s", abs)
	}
}
