package e2e

// The worker pool and the process as a whole: workers that crash or hang,
// recycling, import errors, graceful stops, workers dying with the front,
// and the command line.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// workerPID asks crash.py or pid.py which worker answered.
func workerPID(t *testing.T, s *whisktest.Server) int {
	t.Helper()
	resp, body := fetch(t, s, http.MethodGet, "/pid", nil)
	mustStatus(t, s, resp, body, http.StatusOK)
	pid, err := strconv.Atoi(strings.Fields(string(body))[0])
	if err != nil {
		t.Fatalf("/pid answered %q", body)
	}
	return pid
}

// tryGet fetches path and returns the status and body, or an error, without
// failing the test: for polling.
func tryGet(s *whisktest.Server, path string) (int, string, error) {
	resp, err := client().Get(s.URL + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestWorkerCrash(t *testing.T) {
	t.Parallel()
	s := startApp(t, "crash.py", "--processes", "1", "--threads", "2")
	// In sequence: each crash is followed by a respawn of the only worker.
	for _, how := range []string{"/exit", "/segv", "/segv-ctypes", "/sigkill"} {
		t.Run(how, func(t *testing.T) {
			before := workerPID(t, s)
			resp, body := fetch(t, s, http.MethodGet, how, nil)
			mustStatus(t, s, resp, body, http.StatusBadGateway)

			// The server keeps serving, from a new worker.
			var after int
			if !poll(30*time.Second, func() bool {
				code, body, err := tryGet(s, "/pid")
				if err != nil || code != 200 {
					return false
				}
				after, _ = strconv.Atoi(body)
				return after != before
			}) {
				t.Fatalf("no new worker answers /pid after worker %d died on %s%s", before, how, serverOutput(s))
			}
			// The dead worker was reaped by whisk: no zombie left.
			if !poll(10*time.Second, func() bool { _, ok := procState(before); return !ok }) {
				st, _ := procState(before)
				t.Errorf("worker %d that died on %s is still in the process table (state %c): whisk did not reap it", before, how, st)
			}
		})
	}
}

func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	s := startApp(t, "crash.py", "--processes", "1", "--threads", "2", "--timeout", "1s")
	resp, body := fetch(t, s, http.MethodGet, "/sleep?s=0.1", nil)
	mustStatus(t, s, resp, body, http.StatusOK)

	resp, body = fetch(t, s, http.MethodGet, "/sleep?s=5", nil)
	mustStatus(t, s, resp, body, http.StatusGatewayTimeout)

	// The server keeps serving (maybe from a replacement worker).
	for i := range 5 {
		if !poll(30*time.Second, func() bool {
			code, _, err := tryGet(s, "/pid")
			return err == nil && code == 200
		}) {
			t.Fatalf("request %d after the 504: no 200 within 30s%s", i, serverOutput(s))
		}
	}
}

func TestWorkersDieWithFront(t *testing.T) {
	t.Parallel()
	s := startApp(t, "pid.py", "--processes", "2", "--threads", "1")
	front := s.Cmd.Process.Pid
	var workers []int
	if !poll(30*time.Second, func() bool { workers = childPIDs(t, front); return len(workers) == 2 }) {
		t.Fatalf("whisk (pid %d) has children %v, want 2 workers", front, workers)
	}
	resp, body := fetch(t, s, http.MethodGet, "/", nil)
	mustStatus(t, s, resp, body, http.StatusOK)
	var pid, ppid int
	if _, err := fmt.Sscan(string(body), &pid, &ppid); err != nil || ppid != front || (pid != workers[0] && pid != workers[1]) {
		t.Fatalf("the app says pid %d, parent %d (%q); want one of %v, parent %d", pid, ppid, body, workers, front)
	}

	s.Signal(t, syscall.SIGKILL)
	s.Wait(t, 10*time.Second)
	for _, w := range workers {
		if !poll(10*time.Second, func() bool { return !procAlive(w) }) {
			st, _ := procState(w)
			t.Errorf("worker %d still runs (state %c) after whisk was killed with SIGKILL", w, st)
			syscall.Kill(w, syscall.SIGKILL) // ours to clean up: we made whisk spawn it
		}
	}
}

func TestMaxRequests(t *testing.T) {
	t.Parallel()
	s := startApp(t, "pid.py", "--processes", "2", "--threads", "2", "--max-requests", "10", "--max-requests-jitter", "5")
	const total, concurrency = 300, 8
	c := &http.Client{Timeout: clientTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
	defer c.CloseIdleConnections()
	var (
		mu   sync.Mutex
		pids = map[int]int{}
		errs []string
		wg   sync.WaitGroup
	)
	for g := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range total / concurrency {
				resp, err := c.Get(fmt.Sprintf("%s/?g=%d&i=%d", s.URL, g, i))
				if err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				var pid int
				_, serr := fmt.Sscan(string(b), &pid)
				mu.Lock()
				if err != nil || serr != nil || resp.StatusCode != 200 {
					errs = append(errs, fmt.Sprintf("status %d, body %q, %v", resp.StatusCode, b, err))
				} else {
					pids[pid]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Errorf("%d of %d requests failed while workers were recycled; first: %s%s", len(errs), total, errs[0], serverOutput(s))
	}
	// Recycling happened: more workers served than the two at the start.
	// Requests keep coming until it shows, in case the load was faster
	// than the first replacements.
	if !poll(30*time.Second, func() bool {
		code, body, err := tryGet(s, "/")
		var pid int
		if _, serr := fmt.Sscan(body, &pid); err == nil && serr == nil && code == 200 {
			pids[pid]++
		}
		return len(pids) > 2
	}) {
		t.Errorf("requests were served by %d workers %v: with --max-requests 10 the two workers must have been replaced%s", len(pids), pids, serverOutput(s))
	}
}

func TestImportErrors(t *testing.T) {
	t.Parallel()
	apps := filepath.Join(whisktest.RepoRoot(t), "testdata", "apps")
	for _, tc := range []struct {
		name string
		args []string
		want []string // in the output
		hint string   // in the hint: line
	}{
		{"missing module", []string{"whisk_e2e_no_such_module:application", "--chdir", apps},
			[]string{"ModuleNotFoundError: No module named 'whisk_e2e_no_such_module'"},
			"pass --chdir DIR or --pythonpath DIR"},
		{"missing dependency", []string{filepath.Join(apps, "import_missing_dep.py")},
			[]string{"Traceback (most recent call last)", "import whisk_e2e_not_installed", "No module named 'whisk_e2e_not_installed'"},
			"install 'whisk_e2e_not_installed' in this interpreter, or pass --python"},
		{"missing attribute", []string{filepath.Join(apps, "pid.py") + ":no_such_callable"},
			[]string{"has no attribute 'no_such_callable'"},
			"callables found: application"},
		{"syntax error", []string{filepath.Join(apps, "import_syntax_error.py")},
			[]string{"import_syntax_error.py\", line 4", "SyntaxError"},
			"fix the syntax error at " + filepath.Join(apps, "import_syntax_error.py") + ", line 4"},
		{"exception at import", []string{filepath.Join(apps, "import_raises.py")},
			[]string{"Traceback (most recent call last)", "in _configure", "RuntimeError: whisk-e2e-import-time-failure"},
			"fix the error in the app's import-time code"},
		{"missing script", []string{filepath.Join(apps, "whisk_e2e_no_such_script.py")},
			[]string{"cannot read WSGI script"},
			"check the path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := whisktest.StartNoWait(t, append(tc.args, "--processes", "1", "--python", whisktest.Python(t))...)
			code := s.Wait(t, 60*time.Second)
			out := s.Output.String()
			if code != 3 {
				t.Errorf("exit code %d, want 3 (the app could not be imported)%s", code, serverOutput(s))
			}
			if !strings.Contains(out, "cannot import the app") {
				t.Errorf("output lacks %q%s", "cannot import the app", serverOutput(s))
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q%s", w, serverOutput(s))
				}
			}
			hint := ""
			for _, line := range strings.Split(out, "\n") {
				if h, ok := strings.CutPrefix(line, "hint: "); ok {
					hint = h
				}
			}
			if !strings.Contains(hint, tc.hint) {
				t.Errorf("hint: line %q, want it to say %q%s", hint, tc.hint, serverOutput(s))
			}
		})
	}
}

func TestGracefulStop(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := startApp(t, "gated.py", "--processes", "1", "--threads", "4", "--env", "WHISK_TEST_DIR="+dir)
			const inflight = 3
			type result struct {
				code int
				body string
				err  error
			}
			results := make(chan result, inflight)
			for i := range inflight {
				go func() {
					code, body, err := tryGet(s, fmt.Sprintf("/wait?id=%d", i))
					results <- result{code, body, err}
				}()
			}
			// All three are inside the app.
			if !poll(30*time.Second, func() bool {
				m, _ := filepath.Glob(filepath.Join(dir, "started-*"))
				return len(m) == inflight
			}) {
				t.Fatalf("the %d requests did not all reach the app%s", inflight, serverOutput(s))
			}
			s.Signal(t, sig)
			// whisk stops accepting: new connections are refused.
			if !poll(30*time.Second, func() bool {
				c, err := net.DialTimeout("tcp", s.Addr, time.Second)
				if err == nil {
					c.Close()
				}
				return err != nil
			}) {
				t.Errorf("whisk still accepts connections after %v", sig)
			}
			// Let the requests finish: each gets its whole answer.
			if err := os.WriteFile(filepath.Join(dir, "gate"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			for range inflight {
				r := <-results
				if r.err != nil || r.code != 200 || !strings.HasPrefix(r.body, "done ") {
					t.Errorf("in-flight request after %v: status %d, body %q, error %v; want 200 done", sig, r.code, r.body, r.err)
				}
			}
			if code := s.Wait(t, 30*time.Second); code != 0 {
				t.Errorf("exit code %d after %v, want 0%s", code, sig, serverOutput(s))
			}
			if t.Failed() {
				t.Log(serverOutput(s))
			}
		})
	}
}

// runWhisk runs the binary with args and returns its exit code, stdout
// and stderr.
func runWhisk(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, whisktest.Binary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("whisk %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

func TestCLI(t *testing.T) {
	t.Parallel()
	t.Run("version", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runWhisk(t, "version")
		if code != 0 || !strings.HasPrefix(stdout, "whisk ") {
			t.Errorf("whisk version: exit %d, stdout %q, stderr %q; want 0 and \"whisk VERSION ...\"", code, stdout, stderr)
		}
	})
	t.Run("serve --help", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runWhisk(t, "serve", "--help")
		out := stdout + stderr
		if code != 0 {
			t.Errorf("whisk serve --help: exit %d, want 0", code)
		}
		for _, flag := range []string{"-bind", "-processes", "-threads", "-timeout", "-max-body-size", "-max-requests", "-python", "unix:"} {
			if !strings.Contains(out, flag) {
				t.Errorf("whisk serve --help does not mention %q:\n%s", flag, out)
			}
		}
	})
	t.Run("bad flag", func(t *testing.T) {
		t.Parallel()
		code, _, stderr := runWhisk(t, "serve", "--no-such-flag", "app:app")
		if code != 2 {
			t.Errorf("whisk serve --no-such-flag: exit %d, want 2", code)
		}
		if !strings.Contains(stderr, "no-such-flag") || !strings.Contains(stderr, "whisk serve --help") {
			t.Errorf("stderr %q: want the bad flag named and a pointer to whisk serve --help", stderr)
		}
	})
	t.Run("bad flag value", func(t *testing.T) {
		t.Parallel()
		code, _, stderr := runWhisk(t, "serve", "--timeout", "soon", "app:app")
		if code != 2 || !strings.Contains(stderr, "-timeout") {
			t.Errorf("whisk serve --timeout soon: exit %d, stderr %q; want 2 and the flag named", code, stderr)
		}
	})
	t.Run("unknown command", func(t *testing.T) {
		t.Parallel()
		code, _, stderr := runWhisk(t, "srve")
		if code != 2 || !strings.Contains(stderr, `"srve"`) {
			t.Errorf("whisk srve: exit %d, stderr %q; want 2 and the command named", code, stderr)
		}
	})
}
