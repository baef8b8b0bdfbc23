// Package e2e runs real Python web applications under the real whisk binary
// and talks to them over loopback HTTP, the way a user's browser or client
// would: the examples/ projects (Django, Flask, the hello app) with the
// interpreters a user would point --python at.
//
// The Django and Flask tests need the test virtualenv: WHISK_TEST_VENV, made
// by scripts/testenv.sh from testdata/requirements-test.txt (the Starlette,
// FastAPI and Django ASGI tests of asgi_test.go skip without it):
//
//	WHISK_TEST_VENV="$(scripts/testenv.sh)" go test ./e2e/
//
// The system-interpreter test needs Debian's /usr/bin/python3.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// exampleDir returns the absolute path of examples/NAME.
func exampleDir(t testing.TB, name string) string {
	t.Helper()
	return filepath.Join(whisktest.RepoRoot(t), "examples", name)
}

// envFlags turns KEY=VALUE pairs into repeated --env flags.
func envFlags(env []string) []string {
	var args []string
	for _, kv := range env {
		args = append(args, "--env", kv)
	}
	return args
}

// runPython runs python with args in dir, with env added to this process's
// environment, and fails the test with the command's output if it fails.
func runPython(t testing.TB, dir string, env []string, python string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", python, strings.Join(args, " "), dir, err, out)
	}
	return string(out)
}

// newClient returns a client like a browser's: it keeps cookies, and it
// does not follow redirects, so tests see them.
func newClient(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Jar:           jar,
		Timeout:       60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// newRequest builds a request for s.URL+path, failing the test on error.
func newRequest(t testing.TB, s *whisktest.Server, method, path string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// do sends req with c; on a transport error it fails the test with the
// server's output. The caller closes the body.
func do(t testing.TB, s *whisktest.Server, c *http.Client, req *http.Request) *http.Response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v%s", req.Method, req.URL, err, serverOutput(s))
	}
	return resp
}

// get fetches path with c and returns the response with its body read.
func get(t testing.TB, s *whisktest.Server, c *http.Client, path string) (*http.Response, []byte) {
	t.Helper()
	return whisktest.ReadAll(t, do(t, s, c, newRequest(t, s, http.MethodGet, path, nil)))
}

// expectStatus fails the test unless resp has the status code want.
func expectStatus(t testing.TB, s *whisktest.Server, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d\nheaders: %v\nbody:\n%s%s",
			resp.Request.Method, resp.Request.URL, resp.StatusCode, want, resp.Header, truncate(body), serverOutput(s))
	}
}

// serverOutput formats the server's output for a failure message.
func serverOutput(s *whisktest.Server) string {
	return fmt.Sprintf("\n--- whisk output ---\n%s--- end of whisk output ---", s.Output.String())
}

// truncate shortens a body for a failure message.
func truncate(b []byte) string {
	const limit = 4 << 10
	if len(b) > limit {
		return fmt.Sprintf("%s\n... (%d more bytes)", b[:limit], len(b)-limit)
	}
	return string(b)
}
