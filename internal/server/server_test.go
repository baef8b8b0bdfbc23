package server_test

// Tests of the server with real Python workers, in process: the routes of
// a generation, a start or reload that fails (and what it leaves running),
// a reload with requests in flight, and shutdown. e2e/groups_test.go runs
// the same features through the binary; here the tests see the worker pids
// and the generations' groups, and check which processes are left.
//
// Every group's workers get WHISK_TEST_MARK=<test>/<generation> in their
// environment, so a test finds the processes it started (and only those)
// in /proc, whatever else runs in parallel.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/config"
	"github.com/whiskserver/whisk/internal/group"
	"github.com/whiskserver/whisk/internal/proc"
	"github.com/whiskserver/whisk/internal/pyrt"
	"github.com/whiskserver/whisk/internal/server"
	"github.com/whiskserver/whisk/internal/whisktest"
)

var spawner = sync.OnceValue(proc.NewSpawner)

// harness is a Server listening on a loopback port and serving (Serve runs
// from the start); the test's cleanup shuts it down.
type harness struct {
	srv    *server.Server
	url    string
	logs   *whisktest.SyncBuffer
	client *http.Client
	served chan error

	shutdownOnce sync.Once
	shutdownErr  error
}

// newHarness opens the listeners of cfg (which must bind 127.0.0.1:0) and
// serves them; nothing is started yet.
func newHarness(t *testing.T, cfg *config.Config) *harness {
	t.Helper()
	runtime, err := pyrt.Extract(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	logs := &whisktest.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := server.New(cfg, server.Deps{Log: log, RuntimeDir: runtime, TempDir: t.TempDir(), Spawner: spawner()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	addrs := srv.Addrs()
	if len(addrs) != 1 {
		t.Fatalf("Addrs() = %q, want one address", addrs)
	}
	addr, ok := strings.CutPrefix(addrs[0], "tcp:")
	if !ok {
		t.Fatalf("Addrs() = %q, want tcp:HOST:PORT", addrs)
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
		t.Fatalf("Addrs() = %q, want the port the listener got (%v)", addrs, err)
	}
	h := &harness{
		srv:  srv,
		url:  "http://" + addr,
		logs: logs,
		// Keep-alive on: a connection opened before a reload carries
		// requests after it.
		client: &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{}},
		served: make(chan error, 1),
	}
	go func() { h.served <- srv.Serve() }()
	t.Cleanup(func() {
		if err := h.shutdown(t); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		h.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	return h
}

// shutdown shuts the server down once and waits for Serve to return.
func (h *harness) shutdown(t *testing.T) error {
	h.shutdownOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		h.shutdownErr = h.srv.Shutdown(ctx)
		select {
		case err := <-h.served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Serve did not return within 30s of Shutdown")
		}
	})
	return h.shutdownErr
}

// start runs Start with a bounded context and fails the test on error.
func (h *harness) start(t *testing.T, cfg *config.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := h.srv.Start(ctx, cfg); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

// reload runs Reload with a bounded context.
func (h *harness) reload(cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	return h.srv.Reload(ctx, cfg)
}

// get sends GET path with the Host header host ("" for the address) and
// returns the status and body. A transport error is returned, not fatal,
// so that goroutines may call it.
func (h *harness) get(host, path string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, h.url+path, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s%s: %w", host, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s%s: body: %w", host, path, err)
	}
	return resp.StatusCode, string(b), nil
}

// answer is what whoami.py and gated_whoami.py say.
type answer struct {
	Site       string `json:"site"`
	ScriptName string `json:"script_name"`
	PathInfo   string `json:"path_info"`
	PID        int    `json:"pid"`
}

// ask GETs path and decodes the app's answer; anything but 200 fails the
// test.
func (h *harness) ask(t *testing.T, host, path string) answer {
	t.Helper()
	code, body, err := h.get(host, path)
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK {
		t.Fatalf("GET %s%s: %d %s", host, path, code, body)
	}
	return decode(t, body)
}

func decode(t *testing.T, body string) answer {
	t.Helper()
	var a answer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return a
}

// testConfig is a config binding a free loopback port.
func testConfig(groups []config.Group, sites []config.Site) *config.Config {
	s := config.DefaultServer()
	s.Bind = []string{"127.0.0.1:0"}
	return &config.Config{Server: s, Groups: groups, Sites: sites}
}

// testGroup is a group running testdata/apps/APP with the test
// interpreter, one process of two threads, its workers marked with mark.
// env holds KEY=VALUE pairs.
func testGroup(t *testing.T, name, app, mark string, env ...string) config.Group {
	t.Helper()
	g := config.DefaultGroup(1)
	g.Name = name
	g.App = whisktest.App(t, app)
	g.Python = whisktest.Python(t)
	g.AllowRoot = true
	g.Processes, g.Threads = 1, 2
	g.StartupTimeout = 60 * time.Second
	g.GracefulTimeout = 30 * time.Second
	g.CPUAffinity = "off"
	g.Env = map[string]string{"WHISK_TEST_MARK": mark}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		g.Env[k] = v
	}
	return g
}

// rootSite is a default site mounting group at /.
func rootSite(group string) config.Site {
	return config.Site{Name: "default", Default: true, Mounts: []config.Mount{{Path: "/", Group: group}}}
}

// marked returns the live processes whose environment holds
// WHISK_TEST_MARK=mark.
func marked(mark string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte("WHISK_TEST_MARK=" + mark)
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		if slices.ContainsFunc(bytes.Split(env, []byte{0}), func(kv []byte) bool { return bytes.Equal(kv, want) }) && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid is a process that has not exited (a zombie
// has).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// pids returns the pids of the groups' workers.
func pids(groups []*group.Group) []int {
	var out []int
	for _, g := range groups {
		for _, w := range g.Workers() {
			out = append(out, w.PID)
		}
	}
	return out
}

func groupNamed(t *testing.T, groups []*group.Group, name string) *group.Group {
	t.Helper()
	for _, g := range groups {
		if g.Name() == name {
			return g
		}
	}
	t.Fatalf("no group %s", name)
	return nil
}

// waitGone waits until none of pids is alive.
func waitGone(t *testing.T, what string, pids []int) {
	t.Helper()
	whisktest.WaitFor(t, 60*time.Second, what+" still running", func() bool {
		return !slices.ContainsFunc(pids, alive)
	})
}

// noneLeft fails the test if a process marked with mark still runs.
func noneLeft(t *testing.T, what, mark string) {
	t.Helper()
	if left := marked(mark); len(left) > 0 {
		t.Errorf("%s: workers %v still running", what, left)
	}
}

// Before Start, the listeners are open and answer 503.
func TestNotStarted(t *testing.T) {
	t.Parallel()
	cfg := testConfig(nil, nil)
	h := newHarness(t, cfg)
	resp, err := h.client.Get(h.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("GET / before Start: %d (Retry-After %q) %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if g := h.srv.Groups(); g != nil {
		t.Errorf("Groups() before Start = %v, want nil", g)
	}
	if err := h.reload(cfg); err == nil {
		t.Error("Reload before Start succeeded")
	}
}

// Start serves every site and mount: the host picks the site, the longest
// prefix on whole segments the mount, and the mount's group sees its
// prefix as SCRIPT_NAME and the rest as PATH_INFO.
func TestStartServesRoutes(t *testing.T) {
	t.Parallel()
	mark := t.Name()
	cfg := testConfig(
		[]config.Group{
			testGroup(t, "alpha", "whoami.py", mark, "SITE=alpha"),
			testGroup(t, "beta", "whoami.py", mark, "SITE=beta"),
		},
		[]config.Site{
			{Name: "main", Hosts: []string{"a.example", "*.a.example"}, Mounts: []config.Mount{
				{Path: "/", Group: "alpha"},
				{Path: "/blog", Group: "beta"},
			}},
			{Name: "api", Hosts: []string{"api.example"}, Mounts: []config.Mount{{Path: "/v1", Group: "beta"}}},
		})
	h := newHarness(t, cfg)
	h.start(t, cfg)
	groups := h.srv.Groups()
	if len(groups) != 2 {
		t.Fatalf("Groups() = %d groups, want 2", len(groups))
	}
	pidsOf := map[string][]int{}
	for _, name := range []string{"alpha", "beta"} {
		pidsOf[name] = pids([]*group.Group{groupNamed(t, groups, name)})
		if len(pidsOf[name]) != 1 {
			t.Fatalf("group %s has workers %v, want 1", name, pidsOf[name])
		}
	}

	tests := []struct {
		name, host, path string
		code             int // 200 when 0
		group            string
		scriptName       string
		pathInfo         string
	}{
		{name: "root", host: "a.example", path: "/", group: "alpha", scriptName: "", pathInfo: "/"},
		{name: "under root", host: "a.example", path: "/x/y", group: "alpha", scriptName: "", pathInfo: "/x/y"},
		{name: "prefix itself", host: "a.example", path: "/blog", group: "beta", scriptName: "/blog", pathInfo: ""},
		{name: "prefix slash", host: "a.example", path: "/blog/", group: "beta", scriptName: "/blog", pathInfo: "/"},
		{name: "under prefix", host: "a.example", path: "/blog/2024/post", group: "beta", scriptName: "/blog", pathInfo: "/2024/post"},
		{name: "not a whole segment", host: "a.example", path: "/blogger", group: "alpha", scriptName: "", pathInfo: "/blogger"},
		{name: "host case and port", host: "A.Example:8080", path: "/blog/x", group: "beta", scriptName: "/blog", pathInfo: "/x"},
		{name: "wildcard host", host: "www.a.example", path: "/blog/x", group: "beta", scriptName: "/blog", pathInfo: "/x"},
		{name: "other site", host: "api.example", path: "/v1/users", group: "beta", scriptName: "/v1", pathInfo: "/users"},
		{name: "no mount", host: "api.example", path: "/v2", code: http.StatusNotFound},
		{name: "unknown host", host: "nobody.example", path: "/", code: http.StatusMisdirectedRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, err := h.get(tt.host, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			want := orDefault(tt.code, http.StatusOK)
			if code != want {
				t.Fatalf("GET %s%s: %d %q, want %d", tt.host, tt.path, code, body, want)
			}
			if want != http.StatusOK {
				return
			}
			a := decode(t, body)
			if a.Site != tt.group || !slices.Contains(pidsOf[tt.group], a.PID) {
				t.Errorf("served by site=%q pid %d, want group %s (pids %v)", a.Site, a.PID, tt.group, pidsOf[tt.group])
			}
			if a.ScriptName != tt.scriptName || a.PathInfo != tt.pathInfo {
				t.Errorf("SCRIPT_NAME %q PATH_INFO %q, want %q %q", a.ScriptName, a.PathInfo, tt.scriptName, tt.pathInfo)
			}
		})
	}
}

func orDefault(v, dflt int) int {
	if v == 0 {
		return dflt
	}
	return v
}

// A group whose app does not import fails Start with a *GroupError naming
// it and wrapping the *proc.ImportError, and no worker of any group is
// left running: the groups that did start are stopped.
func TestStartImportError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		badFirst     bool
		badProcesses int
	}{
		{"bad group first", true, 1},
		{"bad group last", false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mark := t.Name()
			good := testGroup(t, "good", "whoami.py", mark)
			good.Processes = 2
			bad := testGroup(t, "bad", "import_raises.py", mark)
			bad.Processes = tt.badProcesses
			groups := []config.Group{good, bad}
			if tt.badFirst {
				groups = []config.Group{bad, good}
			}
			cfg := testConfig(groups, []config.Site{{Name: "s", Default: true, Mounts: []config.Mount{
				{Path: "/", Group: "good"},
				{Path: "/bad", Group: "bad"},
			}}})
			h := newHarness(t, cfg)

			// Record the workers seen while Start runs, to check each is
			// gone after it.
			var mu sync.Mutex
			seen := map[int]bool{}
			stop, stopped := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(stopped)
				for {
					for _, pid := range marked(mark) {
						mu.Lock()
						seen[pid] = true
						mu.Unlock()
					}
					select {
					case <-stop:
						return
					case <-time.After(2 * time.Millisecond):
					}
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			err := h.srv.Start(ctx, cfg)
			cancel()
			close(stop)
			<-stopped

			var ge *server.GroupError
			if !errors.As(err, &ge) {
				t.Fatalf("Start: %v (%T), want a *server.GroupError", err, err)
			}
			if ge.Group != "bad" || ge.App != bad.App || ge.Python != bad.Python {
				t.Errorf("GroupError{Group: %q, App: %q, Python: %q}, want bad, %s, %s", ge.Group, ge.App, ge.Python, bad.App, bad.Python)
			}
			if !strings.Contains(err.Error(), "group bad") {
				t.Errorf("error %q does not name the group", err)
			}
			var ie *proc.ImportError
			if !errors.As(err, &ie) {
				t.Fatalf("Start: %v, want a wrapped *proc.ImportError", err)
			}
			if !strings.Contains(ie.Message, "whisk-e2e-import-time-failure") {
				t.Errorf("ImportError.Message = %q, want the app's exception", ie.Message)
			}

			// Start returns once every worker is gone, not just signalled.
			noneLeft(t, "after the failed Start", mark)
			mu.Lock()
			all := slices.Collect(maps.Keys(seen))
			mu.Unlock()
			if len(all) == 0 {
				t.Error("saw no worker start: the check above proves nothing")
			}
			for _, pid := range all {
				if alive(pid) {
					t.Errorf("worker %d, seen during Start, still running", pid)
				}
			}
			if g := h.srv.Groups(); g != nil {
				t.Errorf("Groups() after the failed Start = %d groups, want none", len(g))
			}
			if code, body, err := h.get("", "/"); err != nil || code != http.StatusServiceUnavailable {
				t.Errorf("GET / after the failed Start: %d %q %v, want 503", code, body, err)
			}
		})
	}
}

// A reload that fails leaves the running generation serving, and the new
// generation's workers stopped; one that succeeds moves traffic to new
// workers, and the old ones exit once drained.
func TestReload(t *testing.T) {
	t.Parallel()
	mark := t.Name()
	web := func(gen string) config.Group {
		g := testGroup(t, "web", "whoami.py", mark+"/"+gen, "SITE="+gen)
		g.Processes, g.Threads = 2, 1
		return g
	}
	cfg1 := testConfig([]config.Group{web("gen1")}, []config.Site{rootSite("web")})
	h := newHarness(t, cfg1)
	h.start(t, cfg1)
	groups1 := h.srv.Groups()
	old := pids(groups1)
	if len(old) != 2 {
		t.Fatalf("workers %v, want 2", old)
	}

	// askAll asks enough times to reach both workers of a group.
	askAll := func(t *testing.T) []answer {
		t.Helper()
		var out []answer
		for range 6 {
			out = append(out, h.ask(t, "", "/x"))
		}
		return out
	}

	failures := []struct {
		name  string
		cfg   func(gen string) *config.Config
		group string // the group the *GroupError names; "" for none
		imp   bool   // wraps a *proc.ImportError
	}{
		{
			name: "import error",
			cfg: func(gen string) *config.Config {
				return testConfig([]config.Group{testGroup(t, "broken", "import_raises.py", mark+"/"+gen), web(gen)},
					[]config.Site{{Name: "default", Default: true, Mounts: []config.Mount{{Path: "/", Group: "web"}, {Path: "/b", Group: "broken"}}}})
			},
			group: "broken", imp: true,
		},
		{
			name: "no interpreter",
			cfg: func(gen string) *config.Config {
				g := web(gen)
				g.Python = filepath.Join(t.TempDir(), "no-such-python")
				return testConfig([]config.Group{g}, []config.Site{rootSite("web")})
			},
			group: "web",
		},
		{
			name: "bad mount",
			cfg: func(gen string) *config.Config {
				return testConfig([]config.Group{web(gen)}, []config.Site{{Name: "default", Default: true, Mounts: []config.Mount{{Path: "blog/", Group: "web"}}}})
			},
		},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			gen := "fail-" + tt.name
			err := h.reload(tt.cfg(gen))
			if err == nil {
				t.Fatal("Reload succeeded")
			}
			var ge *server.GroupError
			if tt.group != "" && (!errors.As(err, &ge) || ge.Group != tt.group) {
				t.Errorf("Reload: %v, want a *server.GroupError for group %s", err, tt.group)
			}
			var ie *proc.ImportError
			if got := errors.As(err, &ie); got != tt.imp {
				t.Errorf("Reload: %v: wraps a *proc.ImportError: %v, want %v", err, got, tt.imp)
			}
			noneLeft(t, "after the failed Reload", mark+"/"+gen)
			if now := h.srv.Groups(); len(now) != 1 || now[0] != groups1[0] {
				t.Errorf("Groups() after the failed Reload are not the running generation's")
			}
			for _, a := range askAll(t) {
				if a.Site != "gen1" || !slices.Contains(old, a.PID) {
					t.Errorf("after the failed Reload: served by %q pid %d, want gen1 (pids %v)", a.Site, a.PID, old)
				}
			}
		})
	}

	t.Run("good", func(t *testing.T) {
		if err := h.reload(testConfig([]config.Group{web("gen2")}, []config.Site{rootSite("web")})); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		now := pids(h.srv.Groups())
		if len(now) != 2 {
			t.Fatalf("new workers %v, want 2", now)
		}
		for _, a := range askAll(t) {
			if a.Site != "gen2" || !slices.Contains(now, a.PID) {
				t.Errorf("after Reload: served by %q pid %d, want gen2 (pids %v; old %v)", a.Site, a.PID, now, old)
			}
		}
		waitGone(t, "the old generation's workers", old)
		noneLeft(t, "after the drain", mark+"/gen1")
		for _, pid := range now {
			if !alive(pid) {
				t.Errorf("new worker %d exited", pid)
			}
		}
	})
}

// gatedGen is a config serving gated_whoami.py (gate in dir) as
// generation gen.
func gatedGen(t *testing.T, mark, gen, dir string) *config.Config {
	g := testGroup(t, "web", "gated_whoami.py", mark+"/"+gen, "SITE="+gen, "WHISK_TEST_DIR="+dir)
	return testConfig([]config.Group{g}, []config.Site{rootSite("web")})
}

type result struct {
	code int
	body string
	err  error
}

// hold sends GET /wait?id=ID in the background and waits until the app has
// it; the answer comes on the channel once the gate opens.
func (h *harness) hold(t *testing.T, dir, id string) <-chan result {
	t.Helper()
	c := make(chan result, 1)
	go func() {
		code, body, err := h.get("", "/wait?id="+id)
		c <- result{code, body, err}
	}()
	whisktest.WaitFor(t, 60*time.Second, "request "+id+" to reach the app", func() bool {
		_, err := os.Stat(filepath.Join(dir, "started-"+id))
		return err == nil
	})
	return c
}

func openGate(t *testing.T, dir string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "gate"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func wait(t *testing.T, c <-chan result) answer {
	t.Helper()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.code != http.StatusOK {
			t.Fatalf("held request: %d %q, want 200", r.code, r.body)
		}
		return decode(t, r.body)
	case <-time.After(90 * time.Second):
		t.Fatal("held request did not finish")
		return answer{}
	}
}

// A request in flight during a reload finishes on the old generation; the
// requests after it go to the new one; the old worker stops only once the
// request is done.
func TestReloadInFlight(t *testing.T) {
	t.Parallel()
	mark, dir := t.Name(), t.TempDir()
	cfg1 := gatedGen(t, mark, "gen1", dir)
	h := newHarness(t, cfg1)
	h.start(t, cfg1)
	oldGroups := h.srv.Groups()
	old := pids(oldGroups)
	if len(old) != 1 {
		t.Fatalf("workers %v, want 1", old)
	}

	held := h.hold(t, dir, "old")
	if err := h.reload(gatedGen(t, mark, "gen2", dir)); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	now := pids(h.srv.Groups())
	if len(now) != 1 || now[0] == old[0] {
		t.Fatalf("workers after Reload %v, want one new (old %v)", now, old)
	}
	for range 3 {
		if a := h.ask(t, "", "/x"); a.Site != "gen2" || a.PID != now[0] {
			t.Errorf("after Reload: served by %q pid %d, want gen2 pid %d", a.Site, a.PID, now[0])
		}
	}
	// A slow request that starts now goes to the new generation too.
	heldNew := h.hold(t, dir, "new")

	if !alive(old[0]) {
		t.Fatalf("old worker %d exited with a request in flight", old[0])
	}
	if w := oldGroups[0].Workers(); len(w) != 1 || w[0].Busy != 1 {
		t.Errorf("old group's workers %+v, want one busy with the held request", w)
	}
	select {
	case r := <-held:
		t.Fatalf("held request finished before the gate opened: %+v", r)
	default:
	}

	openGate(t, dir)
	if a := wait(t, held); a.Site != "gen1" || a.PID != old[0] || a.PathInfo != "/wait" {
		t.Errorf("held request served by %q pid %d path %q, want gen1 pid %d /wait", a.Site, a.PID, a.PathInfo, old[0])
	}
	if a := wait(t, heldNew); a.Site != "gen2" || a.PID != now[0] {
		t.Errorf("request started after Reload served by %q pid %d, want gen2 pid %d", a.Site, a.PID, now[0])
	}
	waitGone(t, "the old worker after its request finished", old)
	noneLeft(t, "after the drain", mark+"/gen1")
	if !alive(now[0]) {
		t.Errorf("new worker %d exited", now[0])
	}
}

// Shutdown lets in-flight requests finish, then stops every worker before
// it returns: the current generation's and one a reload is still
// draining.
func TestShutdown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		held   bool // a request is in flight when Shutdown starts
		reload bool // ... on a generation that a reload replaced
	}{
		{name: "idle"},
		{name: "request in flight", held: true},
		{name: "old generation draining", held: true, reload: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mark, dir := t.Name(), t.TempDir()
			cfg := gatedGen(t, mark, "gen1", dir)
			cfg.Groups[0].Processes = 2
			other := testGroup(t, "other", "whoami.py", mark+"/gen1")
			other.Processes = 2
			cfg.Groups = append(cfg.Groups, other)
			cfg.Sites[0].Mounts = append(cfg.Sites[0].Mounts, config.Mount{Path: "/other", Group: "other"})
			h := newHarness(t, cfg)
			h.start(t, cfg)
			all := pids(h.srv.Groups())
			if len(all) != 4 {
				t.Fatalf("workers %v, want 4", all)
			}
			var held <-chan result
			if tt.held {
				held = h.hold(t, dir, "1")
			}
			if tt.reload {
				if err := h.reload(gatedGen(t, mark, "gen2", dir)); err != nil {
					t.Fatalf("Reload: %v", err)
				}
				all = append(all, pids(h.srv.Groups())...)
			}

			done := make(chan error, 1)
			go func() { done <- h.shutdown(t) }()
			if tt.held {
				// Shutdown waits for the request; the listener closes.
				whisktest.WaitFor(t, 30*time.Second, "the listener to close", func() bool {
					c, err := net.DialTimeout("tcp", strings.TrimPrefix(h.url, "http://"), time.Second)
					if err == nil {
						c.Close()
					}
					return err != nil
				})
				select {
				case err := <-done:
					t.Fatalf("Shutdown returned with a request in flight: %v", err)
				default:
				}
				openGate(t, dir)
				if a := wait(t, held); a.Site != "gen1" {
					t.Errorf("held request served by %q, want gen1", a.Site)
				}
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			case <-time.After(90 * time.Second):
				t.Fatal("Shutdown did not return")
			}
			for _, pid := range all {
				if alive(pid) {
					t.Errorf("worker %d still running after Shutdown returned", pid)
				}
			}
			noneLeft(t, "after Shutdown", mark+"/gen1")
			noneLeft(t, "after Shutdown", mark+"/gen2")
			if g := h.srv.Groups(); g != nil {
				t.Errorf("Groups() after Shutdown = %d groups, want none", len(g))
			}
		})
	}
}
