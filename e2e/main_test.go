package e2e

import (
	"bufio"
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
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// TestMain builds cmd/whisk once for every test of the package (unless
// WHISK_TEST_BINARY names a prebuilt one) and removes the build when the
// tests end.
//
// With WHISK_TEST_RACE=1 the binary is built with -race, every whisk the
// tests start writes its race reports to a temporary directory, and the run
// fails if there is any: the e2e scenarios double as a race test of the
// server.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	raceDir := ""
	if os.Getenv("WHISK_TEST_BINARY") == "" {
		dir, err := os.MkdirTemp("", "whisk-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "whisk")
		args := []string{"build", "-o", bin}
		if os.Getenv("WHISK_TEST_RACE") == "1" {
			args = append(args, "-race")
			raceDir = filepath.Join(dir, "race")
			if err := os.Mkdir(raceDir, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, "e2e:", err)
				return 1
			}
			os.Setenv("GORACE", "halt_on_error=0 log_path="+filepath.Join(raceDir, "report"))
		}
		cmd := exec.Command("go", append(args, "./cmd/whisk")...)
		cmd.Dir = ".." // the repository root: go test runs in e2e/
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
			return 1
		}
		os.Setenv("WHISK_TEST_BINARY", bin)
	}
	code := m.Run()
	if raceDir != "" {
		reports, _ := filepath.Glob(filepath.Join(raceDir, "report.*"))
		for _, r := range reports {
			b, _ := os.ReadFile(r)
			fmt.Fprintf(os.Stderr, "e2e: whisk (pid %s) reported data races:\n%s\n", strings.TrimPrefix(filepath.Ext(r), "."), b)
		}
		if len(reports) > 0 && code == 0 {
			code = 1
		}
	}
	return code
}

// Timeouts of the raw-connection helpers: generous, so a slow machine never
// fails a test, while a hang still ends.
const (
	rawTimeout    = 30 * time.Second
	clientTimeout = 30 * time.Second
)

// startApp serves testdata/apps/NAME (a script path; callable application)
// with flags, and waits until it accepts connections.
func startApp(t testing.TB, name string, flags ...string) *whisktest.Server {
	t.Helper()
	args := append([]string{whisktest.App(t, name), "--python", whisktest.Python(t)}, flags...)
	return whisktest.Start(t, args...)
}

// client returns an HTTP client with a timeout that does not follow redirects.
func client() *http.Client {
	return &http.Client{
		Timeout:       clientTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// fetch sends method path with body (nil for none) and returns the response
// with its body read; a transport or body error fails the test.
func fetch(t testing.TB, s *whisktest.Server, method, path string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v%s", method, path, err, serverOutput(s))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v (got %d bytes)%s", method, path, err, len(b), serverOutput(s))
	}
	return resp, b
}

// mustStatus fails the test unless resp has status want.
func mustStatus(t testing.TB, s *whisktest.Server, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d\nheaders: %v\nbody:\n%s%s", resp.Request.Method, resp.Request.URL.RequestURI(),
			resp.StatusCode, want, resp.Header, truncate(body), serverOutput(s))
	}
}

// dial opens a raw TCP connection to s with a deadline of rawTimeout; it is
// closed when the test ends.
func dial(t testing.TB, s *whisktest.Server) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr, rawTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	c.SetDeadline(time.Now().Add(rawTimeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// send writes raw bytes to c.
func send(t testing.TB, c net.Conn, raw string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write request: %v", err)
	}
}

// readAllRaw reads from c until the server closes it (or the deadline).
func readAllRaw(t testing.TB, c net.Conn) []byte {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("reading until the server closes: %v (got %q)", err, truncate(b))
	}
	return b
}

// isReset reports a connection reset, which a server may cause by closing
// with unread bytes; the bytes read before it still count.
func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// roundTripRaw sends raw (which should ask for Connection: close) on a new
// connection and returns everything the server sent until it closed.
func roundTripRaw(t testing.TB, s *whisktest.Server, raw string) []byte {
	t.Helper()
	c := dial(t, s)
	send(t, c, raw)
	return readAllRaw(t, c)
}

// readResponse reads one response to a request with method from br,
// including its body.
func readResponse(t testing.TB, s *whisktest.Server, br *bufio.Reader, method string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response to %s: %v%s", method, err, serverOutput(s))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of the response to %s (status %d): %v%s", method, resp.StatusCode, err, serverOutput(s))
	}
	return resp, body
}

// parseResponses parses raw as a sequence of responses to requests with
// the given methods and returns those it could parse and what was left.
func parseResponses(raw []byte, methods ...string) ([]*http.Response, [][]byte, []byte, error) {
	br := bufio.NewReader(bytes.NewReader(raw))
	var resps []*http.Response
	var bodies [][]byte
	for _, m := range methods {
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			rest, _ := io.ReadAll(br)
			return resps, bodies, rest, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			rest, _ := io.ReadAll(br)
			return resps, bodies, rest, err
		}
		resps = append(resps, resp)
		bodies = append(bodies, body)
	}
	rest, _ := io.ReadAll(br)
	return resps, bodies, rest, nil
}

// poll calls cond every 20 ms until it returns true or timeout passes, and
// reports whether it did.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOutput waits until the server's output contains want.
func waitOutput(t testing.TB, s *whisktest.Server, want string) {
	t.Helper()
	if !poll(20*time.Second, func() bool { return strings.Contains(s.Output.String(), want) }) {
		t.Fatalf("whisk's output lacks %q%s", want, serverOutput(s))
	}
}

// procState returns the state letter of process pid from /proc/PID/stat
// (R, S, D, Z, ...) and false when there is no such process.
func procState(pid int) (byte, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}

// procAlive reports whether pid is a live process (not gone, not a zombie).
func procAlive(pid int) bool {
	st, ok := procState(pid)
	return ok && st != 'Z' && st != 'X'
}

// childPIDs returns the live processes whose parent is ppid.
func childPIDs(t testing.TB, ppid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		if p, _ := strconv.Atoi(f[1]); p == ppid {
			out = append(out, pid)
		}
	}
	return out
}

// statusKB returns a "kB" field of /proc/PID/status, like VmRSS or VmHWM.
func statusKB(t testing.TB, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("/proc/%d/status: %q: %v", pid, line, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}
