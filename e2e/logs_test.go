package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/accesslog"
	"github.com/whiskserver/whisk/internal/whisktest"
)

// logLines waits until the file at path has n lines (the access log is
// flushed every 100 ms) and returns them.
func logLines(t *testing.T, s *whisktest.Server, path string, n int) []string {
	t.Helper()
	var lines []string
	ok := poll(10*time.Second, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		lines = strings.SplitAfter(string(b), "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		return len(lines) >= n
	})
	if !ok {
		t.Fatalf("%s has %d lines, want %d:\n%s%s", path, len(lines), n, strings.Join(lines, ""), serverOutput(s))
	}
	return lines
}

// TestAccessLogJSONHostile sends requests with quotes, backslashes, tabs,
// bytes that are not UTF-8 and escape sequences in the path and headers,
// over a raw connection (net/http clients refuse to send most of them).
// Every line of the json access log parses, each request is exactly one
// line, and the fields hold what was sent: request id, group, worker pid,
// queue and app time included.
func TestAccessLogJSONHostile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "access.log")
	s := startApp(t, "app_errors.py", "--processes", "1", "--access-log", path, "--access-log-format", "json")
	pid := workerPID(t, s)

	type hostileReq struct{ target, ua, referer string }
	reqs := []hostileReq{
		{`/q"uo"te?a="b"`, `ua "with" quotes`, `http://x/"`},
		{`/back\slash`, `ua\\bs`, `r\`},
		{"/not-utf8-\xff\xfe\xc3", "ua-\xff\xfe", "ref-\x80"},
		{"/tab", "ua\twith\ttab", "ref\tx"},
		{"/ok%0a%0d%22", "ua}{\"],", "]}"},
		{"/ünïcødé", "ua \u2028 sep", "\u0085"},
	}
	for i, r := range reqs {
		raw := "GET " + r.target + " HTTP/1.1\r\nHost: example.com\r\nUser-Agent: " + r.ua +
			"\r\nReferer: " + r.referer + "\r\nX-Request-ID: " + hostileID(i) + "\r\nConnection: close\r\n\r\n"
		resp := roundTripRaw(t, s, raw)
		if !strings.HasPrefix(string(resp), "HTTP/1.1 404") {
			t.Fatalf("request %d (%q): want the app's 404, got %q", i, r.target, truncate(resp))
		}
	}
	// Control bytes other than tab in a header or the request line: net/http
	// answers 400 before any handler runs, and nothing reaches the log; the
	// log must stay intact.
	for _, raw := range []string{
		"GET /esc\x1b[31m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x00b\x01\r\nConnection: close\r\n\r\n",
	} {
		resp := roundTripRaw(t, s, raw)
		if !strings.HasPrefix(string(resp), "HTTP/1.1 400") {
			t.Errorf("%q: want 400, got %q", raw, truncate(resp))
		}
	}
	fetch(t, s, http.MethodGet, "/last", nil)

	lines := logLines(t, s, path, len(reqs)+2) // + /pid + /last
	if len(lines) != len(reqs)+2 {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(reqs)+2, strings.Join(lines, ""))
	}
	for i, l := range lines {
		if strings.Count(l, "\n") != 1 || !strings.HasSuffix(l, "\n") {
			t.Errorf("line %d is not one line: %q", i, l)
		}
		for _, c := range []byte(strings.TrimSuffix(l, "\n")) {
			if c < 0x20 || c == 0x7f {
				t.Errorf("line %d has a raw control byte %#x: %q", i, c, l)
			}
		}
		var a accesslog.JSONLine
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			t.Fatalf("line %d does not parse: %v\n%q", i, err, l)
		}
		if a.Group == nil || *a.Group != "main" || a.PID == nil || *a.PID != pid || a.QueueUs == nil || a.AppUs == nil ||
			*a.AppUs <= 0 || a.DurationUs < *a.AppUs || a.RemoteAddr != "127.0.0.1" || a.Method != "GET" || a.Proto != "HTTP/1.1" {
			t.Errorf("line %d: fields missing or wrong (want group main, pid %d, app time): %s", i, pid, l)
		}
		if _, err := time.Parse(time.RFC3339Nano, a.Time); err != nil || len(a.Time) < len("2006-01-02T15:04:05.000Z") {
			t.Errorf("line %d: time %q: want RFC 3339 with ms (%v)", i, a.Time, err)
		}
		if i == 0 || i > len(reqs) {
			if len(a.RequestID) != 32 {
				t.Errorf("line %d: request id %q: want a generated one", i, a.RequestID)
			}
			continue // /pid and /last
		}
		r := reqs[i-1]
		valid := func(s string) string { return string([]rune(s)) } // encoding/json's U+FFFD per bad byte
		if a.RequestID != valid(hostileID(i-1)) {
			t.Errorf("line %d: request id %q, want the trusted proxy's (loopback) %q", i, a.RequestID, valid(hostileID(i-1)))
		}
		if a.URI != valid(r.target) || a.UserAgent != valid(r.ua) || a.Referer != valid(r.referer) || a.Status != 404 || a.Host != "example.com" {
			t.Errorf("line %d: got uri %q ua %q referer %q status %d host %q\nwant uri %q ua %q referer %q status 404",
				i, a.URI, a.UserAgent, a.Referer, a.Status, a.Host, valid(r.target), valid(r.ua), valid(r.referer))
		}
	}
}

// hostileID is the X-Request-ID of hostile request i, from a trusted
// proxy (loopback is trusted by default), so it is kept as sent.
func hostileID(i int) string { return "id-" + strconv.Itoa(i) + "-\"q\\\xff" }

// TestAccessLogCombinedHostile: the same hostile bytes in the combined
// format come out escaped the way Apache escapes them, one line each.
func TestAccessLogCombinedHostile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "access.log")
	s := startApp(t, "app_errors.py", "--processes", "1", "--access-log", path)
	raw := "GET /a\"b\\c\xff HTTP/1.1\r\nHost: x\r\nUser-Agent: u\"a\tb\xc3\xa9\r\nReferer: r\\\r\nConnection: close\r\n\r\n"
	roundTripRaw(t, s, raw)
	lines := logLines(t, s, path, 1)
	re := regexp.MustCompile(`^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /a\\"b\\\\c\\xff HTTP/1\.1" 404 \d+ "r\\\\" "u\\"a\\tb\\xc3\\xa9" \d+us\n$`)
	if !re.MatchString(lines[0]) {
		t.Errorf("combined line %q does not match %s", lines[0], re)
	}
}

// TestAccessLogCustomFormat: whisk's own directives and Apache's, parsed
// once at startup; an invalid format is refused with the directive named.
func TestAccessLogCustomFormat(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "access.log")
	format := `%{request_id}W %{group}W %{pid}W %P %{queue_us}W %{app_us}W %>s %m %U %q "%{X-Test}i" %{Content-Type}o %b %D`
	s := startApp(t, "app_errors.py", "--processes", "1", "--access-log", path, "--access-log-format", format)
	pid := workerPID(t, s)
	req, err := http.NewRequest(http.MethodGet, s.URL+"/nope?x=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Test", "he said \"hi\"")
	resp := s.Do(t, req)
	resp.Body.Close()
	id := resp.Header.Get("X-Request-ID")
	lines := logLines(t, s, path, 2)
	re := regexp.MustCompile(`^` + id + ` main (\d+) (\d+) \d+ \d+ 404 GET /nope \?x=1 "he said \\"hi\\"" text/plain \d+ \d+\n$`)
	m := re.FindStringSubmatch(lines[1])
	if m == nil {
		t.Fatalf("line %q does not match %s", lines[1], re)
	}
	if m[1] != strconv.Itoa(pid) || m[2] != m[1] {
		t.Errorf("pid %s / %s, want %d", m[1], m[2], pid)
	}

	// An unknown directive: whisk check says which and lists the valid ones.
	code, _, out := runWhisk(t, "check", whisktest.App(t, "app_errors.py"), "--access-log-format", "%h %{bogus}W")
	if code != 2 || !strings.Contains(out, `unknown directive "%{bogus}W"`) || !strings.Contains(out, "%{request_id}W") {
		t.Errorf("whisk check of a bad format: exit %d\n%s", code, out)
	}
}

// TestAccessLogReopen: under load, the access log file is renamed and
// whisk gets SIGUSR1; new requests land in a new file at the original
// path, the earlier ones stay in the renamed file, and after a graceful
// stop every request has exactly one line in one of the two.
func TestAccessLogReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "access.log")
	s := startApp(t, "app_errors.py", "--processes", "2", "--access-log", path, "--access-log-format", "%{request_id}W %s")

	var served atomic.Int64
	var ids sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := client()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(s.URL + "/pid")
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				resp.Body.Close()
				ids.Store(resp.Header.Get("X-Request-ID"), true)
				served.Add(1)
			}
		})
	}
	poll(10*time.Second, func() bool { return served.Load() > 200 })
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	before := served.Load()
	s.Signal(t, syscall.SIGUSR1)
	waitOutput(t, s, "access log reopened")
	poll(10*time.Second, func() bool { return served.Load() > before+200 })
	close(stop)
	wg.Wait()
	s.Stop(t)
	if code := s.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d%s", code, serverOutput(s))
	}

	count := func(p string) map[string]int {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		seen := map[string]int{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			id, status, _ := strings.Cut(sc.Text(), " ")
			if status != "200" {
				t.Errorf("line %q", sc.Text())
			}
			seen[id]++
		}
		return seen
	}
	old, now := count(path+".1"), count(path)
	if len(old) == 0 || len(now) == 0 {
		t.Fatalf("%d lines in the renamed file, %d in the new one: want both", len(old), len(now))
	}
	total := 0
	ids.Range(func(k, _ any) bool {
		total++
		if n := old[k.(string)] + now[k.(string)]; n != 1 {
			t.Errorf("request %s has %d lines", k, n)
		}
		return true
	})
	if len(old)+len(now) != total || int64(total) != served.Load() {
		t.Errorf("%d + %d lines, %d request ids, %d requests served", len(old), len(now), total, served.Load())
	}
	t.Logf("%d lines before the reopen, %d after", len(old), len(now))
}

// logRecord is a record of the json server log.
type logRecord map[string]any

// jsonRecords parses every line of the server's output as a JSON record.
func jsonRecords(t *testing.T, s *whisktest.Server) []logRecord {
	t.Helper()
	var recs []logRecord
	for _, l := range strings.Split(strings.TrimSpace(s.Output.String()), "\n") {
		var r logRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("server log line is not JSON: %v\n%q", err, l)
		}
		recs = append(recs, r)
	}
	return recs
}

// TestTracebackOneRecord: with log_format json, an exception in the app
// is one record (message, traceback, group and pid), the stack dump of a
// timed-out thread is one record too, and every line of the server log is
// a JSON object.
func TestTracebackOneRecord(t *testing.T) {
	t.Parallel()
	s := startApp(t, "app_errors.py", "--processes", "1", "--log-format", "json")
	pid := workerPID(t, s)
	resp, body := fetch(t, s, http.MethodGet, "/raise-before", nil)
	mustStatus(t, s, resp, body, http.StatusInternalServerError)
	waitOutput(t, s, "whisk-e2e-boom-before")
	time.Sleep(300 * time.Millisecond) // past the folder's idle flush

	var found logRecord
	for _, r := range jsonRecords(t, s) {
		msg, _ := r["msg"].(string)
		if strings.Contains(msg, "whisk-e2e-boom-before") {
			if found != nil {
				t.Errorf("two records name the exception: %v and %v", found, r)
			}
			found = r
		}
		if strings.HasPrefix(strings.TrimSpace(msg), "File ") || strings.HasPrefix(msg, "Traceback") {
			t.Errorf("a traceback line is a record of its own: %v", r)
		}
	}
	if found == nil {
		t.Fatalf("no record of the exception%s", serverOutput(s))
	}
	tb, _ := found["traceback"].(string)
	id := resp.Header.Get("X-Request-Id")
	if found["level"] != "ERROR" || found["group"] != "main" || found["pid"] != float64(pid) || id == "" || found["request_id"] != id ||
		!strings.HasPrefix(found["msg"].(string), "error in app handling GET /raise-before [request "+id+"]: RuntimeError: whisk-e2e-boom-before") ||
		!strings.HasPrefix(tb, "Traceback (most recent call last):\n") || !strings.Contains(tb, "app_errors.py") ||
		!strings.HasSuffix(tb, "RuntimeError: whisk-e2e-boom-before") {
		t.Errorf("exception record: %v", found)
	}
}

// TestStackDumpOneRecord: the stack the worker writes for a timed-out
// request is one record, with group and pid.
func TestStackDumpOneRecord(t *testing.T) {
	t.Parallel()
	s := startApp(t, "stuck.py", "--processes", "1", "--threads", "2", "--timeout", "1s", "--log-format", "json")
	pid := workerPID(t, s)
	resp, body := fetch(t, s, http.MethodGet, "/spin", nil)
	mustStatus(t, s, resp, body, http.StatusGatewayTimeout)
	waitOutput(t, s, "the app's thread was interrupted and is free again")
	var found logRecord
	for _, r := range jsonRecords(t, s) {
		if msg, _ := r["msg"].(string); strings.Contains(msg, "GET /spin [request ") && strings.Contains(msg, "] timed out") {
			found = r
		}
	}
	stack, _ := found["stack"].(string)
	if found == nil || found["group"] != "main" || found["pid"] != float64(pid) || found["level"] != "WARN" ||
		found["request_id"] != resp.Header.Get("X-Request-Id") ||
		!strings.Contains(stack, "in spin_forever") || !strings.Contains(stack, "stuck.py") {
		t.Errorf("stack record: %v%s", found, serverOutput(s))
	}
}
