package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// whoami is what testdata/apps/whoami.py answers.
type whoami struct {
	Site       string `json:"site"`
	Settings   string `json:"settings"`
	ScriptName string `json:"script_name"`
	PathInfo   string `json:"path_info"`
	PID        int    `json:"pid"`
	UID        int    `json:"uid"`
	Version    string `json:"version"`
}

// writeConfig writes a whisk.toml into dir and returns its path.
func writeConfig(t testing.TB, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "whisk.toml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// ask sends GET path with a Host header and decodes whoami's answer.
func ask(t testing.TB, s *whisktest.Server, host, path string) (int, whoami) {
	t.Helper()
	req, err := http.NewRequest("GET", s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := client().Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var w whoami
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &w); err != nil {
			t.Fatalf("GET %s%s: %v in %q", host, path, err, body)
		}
	}
	return resp.StatusCode, w
}

// TestGroupsByHostAndPrefix: two groups with different process-wide
// environments (two DJANGO_SETTINGS_MODULE values), served side by side by
// host and by prefix, with SCRIPT_NAME and PATH_INFO split as
// WSGIScriptAlias does.
func TestGroupsByHostAndPrefix(t *testing.T) {
	dir := t.TempDir()
	conf := writeConfig(t, dir, fmt.Sprintf(`
python = %q
processes = 1
threads = 2

[groups.blog]
app = %q
env = { SITE = "blog", DJANGO_SETTINGS_MODULE = "blog.settings" }

[groups.shop]
app = %q
env = { SITE = "shop", DJANGO_SETTINGS_MODULE = "shop.settings" }

[sites.blog]
hosts = ["blog.test"]
default = true
mounts = [{ path = "/", group = "blog" }, { path = "/shop", group = "shop" }]

[sites.shop]
hosts = ["shop.test", "*.shop.test"]
mounts = [{ path = "/", group = "shop" }]
`, whisktest.Python(t), whisktest.App(t, "whoami.py"), whisktest.App(t, "whoami.py")))
	s := whisktest.Start(t, "--config", conf)

	tests := []struct {
		host, path                 string
		site, settings, script, pi string
	}{
		{"blog.test", "/x/y", "blog", "blog.settings", "", "/x/y"},
		{"blog.test", "/shop", "shop", "shop.settings", "/shop", ""},
		{"blog.test", "/shop/cart", "shop", "shop.settings", "/shop", "/cart"},
		{"blog.test", "/shopping", "blog", "blog.settings", "", "/shopping"}, // whole segments only
		{"BLOG.test:80", "/", "blog", "blog.settings", "", "/"},
		{"shop.test", "/a", "shop", "shop.settings", "", "/a"},
		{"www.shop.test", "/shop/x", "shop", "shop.settings", "", "/shop/x"},
		{"unknown.test", "/z", "blog", "blog.settings", "", "/z"}, // the default site
	}
	pids := map[string]int{}
	for _, tt := range tests {
		status, w := ask(t, s, tt.host, tt.path)
		if status != 200 {
			t.Errorf("%s%s: status %d", tt.host, tt.path, status)
			continue
		}
		got := [4]string{w.Site, w.Settings, w.ScriptName, w.PathInfo}
		want := [4]string{tt.site, tt.settings, tt.script, tt.pi}
		if got != want {
			t.Errorf("%s%s: (site, settings, SCRIPT_NAME, PATH_INFO) = %q, want %q", tt.host, tt.path, got, want)
		}
		if p, ok := pids[w.Site]; ok && p != w.PID {
			t.Errorf("group %s answered from pids %d and %d with processes = 1", w.Site, p, w.PID)
		}
		pids[w.Site] = w.PID
	}
	if pids["blog"] == pids["shop"] {
		t.Errorf("both groups answered from pid %d: want a process per group", pids["blog"])
	}
}

// TestUnknownHost421: with no default site, a request for a host no site
// names gets 421, and the named host still works.
func TestUnknownHost421(t *testing.T) {
	dir := t.TempDir()
	conf := writeConfig(t, dir, fmt.Sprintf(`
python = %q
processes = 1
threads = 1

[groups.only]
app = %q

[sites.only]
hosts = ["only.test"]
mounts = [{ path = "/app", group = "only" }]
`, whisktest.Python(t), whisktest.App(t, "whoami.py")))
	s := whisktest.Start(t, "--config", conf)
	if status, _ := ask(t, s, "other.test", "/app"); status != http.StatusMisdirectedRequest {
		t.Errorf("unknown host: status %d, want 421", status)
	}
	if status, _ := ask(t, s, "only.test", "/elsewhere"); status != http.StatusNotFound {
		t.Errorf("unmounted path: status %d, want 404", status)
	}
	if status, w := ask(t, s, "only.test", "/app/x"); status != 200 || w.ScriptName != "/app" || w.PathInfo != "/x" {
		t.Errorf("mounted path: %d %+v", status, w)
	}
}

// reloadApp writes an app whose answers carry version, or one that fails
// to import when version is "broken".
func reloadApp(t testing.TB, dir, version string) {
	t.Helper()
	src, err := os.ReadFile(whisktest.App(t, "whoami.py"))
	if err != nil {
		t.Fatal(err)
	}
	code := strings.Replace(string(src), `VERSION = "1"`, fmt.Sprintf("VERSION = %q", version), 1)
	if version == "broken" {
		code = "raise RuntimeError('this deploy is broken')\n" + code
	}
	if err := os.WriteFile(filepath.Join(dir, "site_app.py"), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
}

// load runs clients that GET path in a loop until finish, counting the
// answers; any transport error or status other than 200 is a failure.
// Each 200 body goes to onBody, when set.
type load struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	failures   []string
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startLoad(s *whisktest.Server, clients int, path string, onBody func([]byte)) *load {
	l := &load{stop: make(chan struct{})}
	for range clients {
		l.wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second}
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.get(c, s.URL+path, onBody)
			}
		})
	}
	return l
}

// every adds a client that GETs path once per interval.
func (l *load) every(s *whisktest.Server, interval time.Duration, path string) {
	l.wg.Go(func() {
		c := &http.Client{Timeout: 30 * time.Second}
		for {
			select {
			case <-l.stop:
				return
			case <-time.After(interval):
				l.get(c, s.URL+path, nil)
			}
		}
	})
}

func (l *load) get(c *http.Client, url string, onBody func([]byte)) {
	resp, err := c.Get(url)
	if err != nil {
		l.fail(err.Error())
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		l.fail(fmt.Sprintf("status %d: %s", resp.StatusCode, body))
		return
	}
	l.ok.Add(1)
	if onBody != nil {
		onBody(body)
	}
}

func (l *load) fail(msg string) {
	l.failed.Add(1)
	l.mu.Lock()
	if len(l.failures) < 10 {
		l.failures = append(l.failures, msg)
	}
	l.mu.Unlock()
}

// finish stops the clients and fails the test if any request failed.
func (l *load) finish(t testing.TB) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if l.failed.Load() > 0 || l.ok.Load() == 0 {
		t.Errorf("under load: %d ok, %d failed: %q", l.ok.Load(), l.failed.Load(), l.failures)
	}
}

// TestReload: SIGHUP under load starts a new generation (new pids, new
// code) without losing or resetting a request; a reload whose new code
// fails to import keeps the old generation serving; `whisk reload` finds
// the server through its pid file.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	reloadApp(t, dir, "1")
	conf := writeConfig(t, dir, fmt.Sprintf(`
app = "site_app:application"
python = %q
processes = 2
threads = 2
pid_file = "whisk.pid"
`, whisktest.Python(t)))
	s := whisktest.Start(t, "--config", conf)
	_, first := ask(t, s, "x", "/")
	if first.Version != "1" {
		t.Fatalf("version %q before reload", first.Version)
	}

	l := startLoad(s, 20, "/", nil)
	time.Sleep(300 * time.Millisecond)
	reloadApp(t, dir, "2")
	s.Signal(t, syscall.SIGHUP)
	whisktest.WaitFor(t, 60*time.Second, "the new code serving", func() bool {
		_, w := ask(t, s, "x", "/")
		return w.Version == "2"
	})
	time.Sleep(300 * time.Millisecond)
	l.finish(t)
	_, second := ask(t, s, "x", "/")
	if second.PID == first.PID {
		t.Errorf("pid %d served before and after the reload: want a new generation", first.PID)
	}
	whisktest.WaitFor(t, 30*time.Second, "old generation stopped", func() bool { return !procAlive(first.PID) })

	// A broken deploy: the old generation keeps serving.
	reloadApp(t, dir, "broken")
	s.Signal(t, syscall.SIGHUP)
	waitOutput(t, s, "RELOAD FAILED")
	if !strings.Contains(serverOutput(s), "this deploy is broken") {
		t.Errorf("the failed reload's log lacks the import error:\n%s", serverOutput(s))
	}
	if status, w := ask(t, s, "x", "/"); status != 200 || w.Version != "2" {
		t.Fatalf("after a failed reload: %d version %q, want 200 from version 2", status, w.Version)
	}

	// Fixed, and reloaded through `whisk reload`.
	reloadApp(t, dir, "3")
	cmd := exec.Command(whisktest.Binary(t), "reload", "--config", conf)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("whisk reload: %v\n%s", err, out)
	}
	whisktest.WaitFor(t, 60*time.Second, "version 3 serving", func() bool {
		_, w := ask(t, s, "x", "/")
		return w.Version == "3"
	})
}

// TestCheck: `whisk check` prints the effective config, and exits 2 with
// the file, line and fix of each problem.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	conf := writeConfig(t, dir, "app = \"app:app\"\nallow_root = true\nthreads = 3\nmax_request = 5\n")
	cmd := exec.Command(whisktest.Binary(t), "check", "--config", conf)
	out, err := cmd.CombinedOutput()
	if code := exitCode(err); code != 2 || !strings.Contains(string(out), "whisk.toml:4: max_request: unknown setting: did you mean max_requests?") {
		t.Errorf("check of a config with a typo: exit %d\n%s", code, out)
	}
	conf = writeConfig(t, dir, "app = \"app:app\"\nallow_root = true\nthreads = 3\n")
	out, err = exec.Command(whisktest.Binary(t), "check", "--config", conf, "--processes", "5").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "threads = 3\n") || !strings.Contains(string(out), "processes = 5\n") {
		t.Errorf("check: %v\n%s", err, out)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// TestReloadOnCodeChange: with --reload, saving a .py file under a
// group's chdir starts new workers for that group, with the new code; the
// other group's workers keep running.
func TestReloadOnCodeChange(t *testing.T) {
	dir := t.TempDir()
	for _, g := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(dir, g), 0o755); err != nil {
			t.Fatal(err)
		}
		reloadApp(t, filepath.Join(dir, g), "1")
	}
	conf := writeConfig(t, dir, fmt.Sprintf(`
python = %q
processes = 1
threads = 1

[groups.a]
app = "site_app:application"
chdir = "a"

[groups.b]
app = "site_app:application"
chdir = "b"

[sites.s]
default = true
mounts = [{ path = "/a", group = "a" }, { path = "/b", group = "b" }]
`, whisktest.Python(t)))
	s := whisktest.Start(t, "--config", conf, "--reload")
	waitOutput(t, s, "watching .py files")
	_, a1 := ask(t, s, "x", "/a")
	_, b1 := ask(t, s, "x", "/b")
	if a1.Version != "1" || b1.Version != "1" {
		t.Fatalf("versions %q %q at start", a1.Version, b1.Version)
	}
	reloadApp(t, filepath.Join(dir, "a"), "2")
	whisktest.WaitFor(t, 60*time.Second, "group a's changed code serving", func() bool {
		_, w := ask(t, s, "x", "/a")
		return w.Version == "2"
	})
	if _, b2 := ask(t, s, "x", "/b"); b2.PID != b1.PID {
		t.Errorf("group b restarted (pid %d → %d) for a change under group a's chdir", b1.PID, b2.PID)
	}
}
