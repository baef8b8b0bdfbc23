package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/admin"
	"github.com/whiskserver/whisk/internal/config"
	"github.com/whiskserver/whisk/internal/whisktest"
)

// adminGet GETs path on the admin listener at addr (tcp:HOST:PORT).
func adminGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + strings.TrimPrefix(addr, "tcp:") + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricLine returns the value of series in a /metrics body, or "".
func metricLine(body, series string) string {
	for l := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// The admin listeners: /healthz answers before Start, /readyz once every
// group is ready; /status.json shows the generation, its config digest and
// its workers; a reload counts the replaced workers as restarts for
// reload. ShutdownAfter fails /readyz at once and keeps serving requests
// for the delay; then the listener closes, the request in flight
// finishes, and the admin listeners close last.
func TestAdminAndShutdownAfter(t *testing.T) {
	t.Parallel()
	mark, dir := t.Name(), t.TempDir()
	cfg := gatedGen(t, mark, "gen1", dir)
	cfg.Groups[0].Processes = 2
	cfg.Server.AdminBind = "127.0.0.1:0"
	cfg.Server.HealthBind = "127.0.0.1:0"
	h := newHarness(t, cfg)
	addrs := h.srv.AdminAddrs()
	if len(addrs) != 2 {
		t.Fatalf("AdminAddrs() = %q, want admin and health", addrs)
	}
	adminAddr, healthAddr := addrs[0], addrs[1]
	if code, _ := adminGet(t, healthAddr, "/healthz"); code != 200 {
		t.Errorf("/healthz before Start: %d", code)
	}
	if code, body := adminGet(t, healthAddr, "/readyz"); code != 503 || !strings.Contains(body, "starting") {
		t.Errorf("/readyz before Start: %d %q", code, body)
	}
	if code, _ := adminGet(t, healthAddr, "/metrics"); code != 404 {
		t.Errorf("health_bind serves /metrics: %d", code)
	}
	h.start(t, cfg)
	if code, body := adminGet(t, healthAddr, "/readyz"); code != 200 {
		t.Errorf("/readyz after Start: %d %q", code, body)
	}
	for range 3 {
		h.ask(t, "", "/hello")
	}
	_, body := adminGet(t, adminAddr, "/metrics")
	if v := metricLine(body, `whisk_requests_total{code="200",group="web"}`); v != "3" {
		t.Errorf("requests after 3: %q\n%s", v, body)
	}
	if v := metricLine(body, "whisk_generation"); v != "1" {
		t.Errorf("generation %q, want 1", v)
	}

	var st admin.Status
	_, body = adminGet(t, adminAddr, "/status.json")
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status.json: %v\n%s", err, body)
	}
	want := pids(h.srv.Groups())
	var got []int
	for _, g := range st.Groups {
		for _, w := range g.Workers {
			got = append(got, w.PID)
		}
	}
	if len(got) != 2 || len(want) != 2 || !sameSet(got, want) {
		t.Errorf("/status.json workers %v, want %v", got, want)
	}
	if st.Generation != 1 || len(st.ConfigDigest) != 64 || st.ConfigDigest != h.srv.ConfigDigest() {
		t.Errorf("generation %d, digest %q", st.Generation, st.ConfigDigest)
	}

	// A reload: generation 2, a new digest (SITE changed), two restarts
	// for reload.
	if err := h.reload(gatedGen2(t, mark, dir)); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	_, body = adminGet(t, adminAddr, "/metrics")
	if v := metricLine(body, `whisk_worker_restarts_total{group="web",reason="reload"}`); v != "2" {
		t.Errorf("restarts for reload: %q, want 2", v)
	}
	if v := metricLine(body, "whisk_generation"); v != "2" {
		t.Errorf("generation after reload %q, want 2", v)
	}
	if h.srv.ConfigDigest() == st.ConfigDigest {
		t.Error("the config digest did not change with the config")
	}

	held := h.hold(t, dir, "1")
	done := make(chan error, 1)
	const delay = 1500 * time.Millisecond
	began := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		done <- h.srv.ShutdownAfter(ctx, delay)
	}()
	whisktest.WaitFor(t, 5*time.Second, "/readyz to fail", func() bool {
		code, _ := adminGet(t, healthAddr, "/readyz")
		return code == 503
	})
	if code, body := adminGet(t, healthAddr, "/readyz"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz during the delay: %d %q", code, body)
	}
	// During the delay new requests are still served.
	if a := h.ask(t, "", "/during"); a.Site != "gen2" {
		t.Errorf("request during the delay served by %q", a.Site)
	}
	if time.Since(began) >= delay {
		t.Fatalf("the checks took longer than the delay (%v)", time.Since(began))
	}
	whisktest.WaitFor(t, 30*time.Second, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(h.url, "http://"), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if closed := time.Since(began); closed < delay {
		t.Errorf("the listener closed %v after ShutdownAfter, before the delay %v", closed, delay)
	}
	// The admin listener still answers while the request finishes.
	if code, _ := adminGet(t, healthAddr, "/healthz"); code != 200 {
		t.Errorf("/healthz while draining: %d", code)
	}
	openGate(t, dir)
	if a := wait(t, held); a.Site != "gen2" {
		t.Errorf("held request served by %q", a.Site)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("ShutdownAfter: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("ShutdownAfter did not return")
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(healthAddr, "tcp:"), time.Second); err == nil {
		t.Error("the health listener still accepts after Shutdown")
	}
	noneLeft(t, "after Shutdown", mark+"/gen1")
	noneLeft(t, "after Shutdown", mark+"/gen2")
}

func gatedGen2(t *testing.T, mark, dir string) *config.Config {
	cfg := gatedGen(t, mark, "gen2", dir)
	cfg.Groups[0].Processes = 2
	cfg.Server.AdminBind = "127.0.0.1:0" // restart-only: the listeners stay
	cfg.Server.HealthBind = "127.0.0.1:0"
	return cfg
}

func sameSet(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[int]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		seen[x]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}
