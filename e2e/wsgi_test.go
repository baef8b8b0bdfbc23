package e2e

// PEP 3333 through the real binary and real workers: the environ, the
// start_response contract, response iterables and close(), app errors,
// wsgi.input and wsgi.file_wrapper.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// environDump is what testdata/apps/environ.py answers.
type environDump struct {
	Str   map[string]string // key → hex of the value's latin-1 bytes
	Other map[string]string // key → repr(value)
	Facts struct {
		InputMethods        []string `json:"input_methods"`
		ErrorsMethods       []string `json:"errors_methods"`
		FileWrapperCallable bool     `json:"file_wrapper_callable"`
		VersionIsTuple      bool     `json:"version_is_tuple"`
		FlagsAreBool        bool     `json:"flags_are_bool"`
	}
	env map[string]string // Str decoded: key → the value's bytes
}

// environOf sends raw (a whole request that asks for Connection: close) on
// a new connection and returns the environ the app saw, with the local
// port of that connection.
func environOf(t *testing.T, s *whisktest.Server, raw string) (*environDump, string) {
	t.Helper()
	c := dial(t, s)
	_, port, _ := net.SplitHostPort(c.LocalAddr().String())
	send(t, c, raw)
	resp, body := readResponse(t, s, bufio.NewReader(c), "GET")
	mustStatus(t, s, resp, body, http.StatusOK)
	d := &environDump{}
	if err := json.Unmarshal(body, d); err != nil {
		t.Fatalf("decode %s: %v", truncate(body), err)
	}
	d.env = map[string]string{}
	for k, v := range d.Str {
		b, err := hex.DecodeString(v)
		if err != nil {
			t.Fatal(err)
		}
		d.env[k] = string(b)
	}
	return d, port
}

func TestEnviron(t *testing.T) {
	t.Parallel()
	// Two shapes of pool, for wsgi.multithread and wsgi.multiprocess.
	threaded := startApp(t, "environ.py", "--processes", "1", "--threads", "2")
	forked := startApp(t, "environ.py", "--processes", "2", "--threads", "1")

	t.Run("cgi keys", func(t *testing.T) {
		t.Parallel()
		raw := "GET /some/path?b=2&a=1 HTTP/1.1\r\n" +
			"Host: example.test:8123\r\n" +
			"User-Agent: whisk-e2e\r\n" +
			"X-Custom: v1\r\n" +
			"X-Multi: a\r\n" +
			"X-Multi: b\r\n" +
			"Cookie: a=1\r\n" +
			"Cookie: b=2\r\n" +
			"X-Forwarded-For: 203.0.113.7\r\n" +
			"X_Forwarded_For: 198.51.100.66\r\n" +
			"X_Custom: forged\r\n" +
			"Connection: close\r\n\r\n"
		d, _ := environOf(t, threaded, raw)
		want := map[string]string{
			"REQUEST_METHOD":       "GET",
			"SCRIPT_NAME":          "",
			"PATH_INFO":            "/some/path",
			"QUERY_STRING":         "b=2&a=1",
			"SERVER_NAME":          "example.test",
			"SERVER_PORT":          "8123",
			"SERVER_PROTOCOL":      "HTTP/1.1",
			"REMOTE_ADDR":          "203.0.113.7", // loopback is a trusted proxy by default (e2e/proxy_test.go)
			"REMOTE_PORT":          "",
			"wsgi.url_scheme":      "http",
			"HTTP_HOST":            "example.test:8123",
			"HTTP_USER_AGENT":      "whisk-e2e",
			"HTTP_X_CUSTOM":        "v1",
			"HTTP_X_MULTI":         "a, b",
			"HTTP_COOKIE":          "a=1; b=2",
			"HTTP_X_FORWARDED_FOR": "203.0.113.7",
			"HTTP_CONNECTION":      "close",
		}
		checkEnviron(t, d, want)
		// Exactly these HTTP_ keys: nothing from the names with '_'.
		var httpKeys []string
		for k := range d.env {
			if strings.HasPrefix(k, "HTTP_") {
				httpKeys = append(httpKeys, k)
			}
		}
		slices.Sort(httpKeys)
		// HTTP_X_REQUEST_ID: whisk gives every request an id.
		wantKeys := []string{"HTTP_CONNECTION", "HTTP_COOKIE", "HTTP_HOST", "HTTP_USER_AGENT", "HTTP_X_CUSTOM", "HTTP_X_FORWARDED_FOR", "HTTP_X_MULTI", "HTTP_X_REQUEST_ID"}
		if !slices.Equal(httpKeys, wantKeys) {
			t.Errorf("HTTP_* keys %q, want %q", httpKeys, wantKeys)
		}
		for k, v := range d.env {
			if strings.Contains(v, "198.51.100.66") || strings.Contains(v, "forged") {
				t.Errorf("environ[%q] = %q comes from a header whose name holds '_': such headers must be dropped", k, v)
			}
		}
		// A GET without a body has no CONTENT_TYPE and an empty or no
		// CONTENT_LENGTH.
		for _, k := range []string{"CONTENT_TYPE", "CONTENT_LENGTH"} {
			if v, ok := d.env[k]; ok && v != "" {
				t.Errorf("GET without a body: %s = %q, want it absent or empty", k, v)
			}
		}
	})

	t.Run("underscore headers alone", func(t *testing.T) {
		t.Parallel()
		d, _ := environOf(t, threaded, "GET / HTTP/1.1\r\nHost: example.test\r\nX_Forwarded_For: 198.51.100.66\r\n"+
			"Content_Type: forged/type\r\nX_Real_IP: 198.51.100.67\r\nConnection: close\r\n\r\n")
		for _, k := range []string{"HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "CONTENT_TYPE", "HTTP_CONTENT_TYPE"} {
			if v, ok := d.env[k]; ok {
				t.Errorf("%s = %q, from a header whose name holds '_': such headers must be dropped", k, v)
			}
		}
	})

	t.Run("post", func(t *testing.T) {
		t.Parallel()
		raw := "POST /form HTTP/1.1\r\nHost: example.test\r\nContent-Type: text/plain; charset=utf-8\r\n" +
			"Content-Length: 11\r\nConnection: close\r\n\r\nhello world"
		d, _ := environOf(t, threaded, raw)
		checkEnviron(t, d, map[string]string{
			"REQUEST_METHOD": "POST",
			"CONTENT_TYPE":   "text/plain; charset=utf-8",
			"CONTENT_LENGTH": "11",
			"SERVER_NAME":    "example.test",
			"SERVER_PORT":    "80", // no port in Host
		})
		for _, k := range []string{"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING"} {
			if v, ok := d.env[k]; ok {
				t.Errorf("%s = %q: PEP 3333 has no such key (CONTENT_TYPE/CONTENT_LENGTH carry it)", k, v)
			}
		}
	})

	t.Run("chunked post", func(t *testing.T) {
		t.Parallel()
		raw := "PUT /up HTTP/1.1\r\nHost: example.test\r\nContent-Type: application/octet-stream\r\n" +
			"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
		d, _ := environOf(t, threaded, raw)
		// The front reads the whole body first, so CONTENT_LENGTH is known.
		checkEnviron(t, d, map[string]string{
			"REQUEST_METHOD": "PUT",
			"CONTENT_TYPE":   "application/octet-stream",
			"CONTENT_LENGTH": "11",
		})
	})

	t.Run("http/1.0", func(t *testing.T) {
		t.Parallel()
		// No Host: PEP 3333 says SERVER_NAME and SERVER_PORT "can never be
		// empty strings"; they name the address the request came in on.
		d, _ := environOf(t, threaded, "GET /old HTTP/1.0\r\n\r\n")
		host, port, _ := net.SplitHostPort(threaded.Addr)
		checkEnviron(t, d, map[string]string{
			"SERVER_PROTOCOL": "HTTP/1.0",
			"PATH_INFO":       "/old",
			"SERVER_NAME":     host,
			"SERVER_PORT":     port,
		})
	})

	t.Run("absolute-form target", func(t *testing.T) {
		t.Parallel()
		// RFC 9112 §3.2.2: the target's host wins over the Host field.
		d, _ := environOf(t, threaded, "GET http://abs.test:9000/x%20y?z=%41 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n")
		checkEnviron(t, d, map[string]string{
			"PATH_INFO":    "/x y",
			"QUERY_STRING": "z=%41",
			"SERVER_NAME":  "abs.test",
			"SERVER_PORT":  "9000",
		})
	})

	// PATH_INFO is the percent-decoded target path, byte for byte, as a
	// latin-1 native string; QUERY_STRING is never decoded.
	for _, tc := range []struct {
		name, target, path, query string
	}{
		{"plain", "/plain", "/plain", ""},
		{"space", "/a%20b", "/a b", ""},
		{"NUL", "/nul%00byte", "/nul\x00byte", ""},
		{"high bytes", "/ff%FF%fe", "/ff\xff\xfe", ""},
		{"raw UTF-8 in the request line", "/caf\xc3\xa9", "/caf\xc3\xa9", ""},
		{"encoded UTF-8", "/caf%C3%A9", "/caf\xc3\xa9", ""},
		{"encoded slash", "/a%2Fb%2f", "/a/b/", ""},
		{"dot segments kept", "/%2e%2e/x/../y", "/../x/../y", ""},
		{"double slashes kept", "//double//slash", "//double//slash", ""},
		{"plus stays", "/a+b", "/a+b", ""},
		{"query undecoded", "/q?a=%20b+c&d=%FF&e&&f=%00&g=%2F", "/q", "a=%20b+c&d=%FF&e&&f=%00&g=%2F"},
		{"raw UTF-8 query", "/q?caf\xc3\xa9=1", "/q", "caf\xc3\xa9=1"},
		{"empty query", "/e?", "/e", ""},
	} {
		t.Run("path "+tc.name, func(t *testing.T) {
			t.Parallel()
			d, _ := environOf(t, threaded, "GET "+tc.target+" HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
			checkEnviron(t, d, map[string]string{"PATH_INFO": tc.path, "QUERY_STRING": tc.query})
		})
	}

	for _, tc := range []struct {
		name              string
		s                 *whisktest.Server
		thread, multiproc string
	}{
		{"wsgi keys 1x2", threaded, "True", "False"},
		{"wsgi keys 2x1", forked, "False", "True"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, _ := environOf(t, tc.s, "GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
			want := map[string]string{
				"wsgi.version":          "(1, 0)",
				"wsgi.multithread":      tc.thread,
				"wsgi.multiprocess":     tc.multiproc,
				"wsgi.run_once":         "False",
				"wsgi.input_terminated": "True",
			}
			for k, v := range want {
				if got, ok := d.Other[k]; !ok || got != v {
					t.Errorf("%s = %q (present %v), want %s", k, got, ok, v)
				}
			}
			for _, k := range []string{"wsgi.input", "wsgi.errors", "wsgi.file_wrapper"} {
				if _, ok := d.Other[k]; !ok {
					t.Errorf("environ lacks %s", k)
				}
			}
			f := d.Facts
			if !f.VersionIsTuple || !f.FlagsAreBool || !f.FileWrapperCallable {
				t.Errorf("wsgi.version is a tuple: %v; wsgi.* flags are bool: %v; wsgi.file_wrapper is callable: %v; want all true",
					f.VersionIsTuple, f.FlagsAreBool, f.FileWrapperCallable)
			}
			if want := []string{"read", "readline", "readlines", "__iter__"}; !slices.Equal(f.InputMethods, want) {
				t.Errorf("wsgi.input has %q, want %q", f.InputMethods, want)
			}
			if want := []string{"write", "writelines", "flush"}; !slices.Equal(f.ErrorsMethods, want) {
				t.Errorf("wsgi.errors has %q, want %q", f.ErrorsMethods, want)
			}
		})
	}
}

// checkEnviron compares the str values of the environ with want.
func checkEnviron(t *testing.T, d *environDump, want map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		got, ok := d.env[k]
		if !ok {
			if _, other := d.Other[k]; other {
				t.Errorf("environ[%q] = %s, want the str %q", k, d.Other[k], want[k])
			} else {
				t.Errorf("environ lacks %s (want %q)", k, want[k])
			}
			continue
		}
		if got != want[k] {
			t.Errorf("environ[%q] = %q, want %q", k, got, want[k])
		}
	}
}

func TestStartResponseExcInfo(t *testing.T) {
	t.Parallel()
	s := startApp(t, "exc_info.py", "--processes", "1", "--threads", "2")

	for _, path := range []string{"/before", "/after-empty"} {
		t.Run("headers replaced "+path, func(t *testing.T) {
			t.Parallel()
			resp, body := fetch(t, s, http.MethodGet, path, nil)
			mustStatus(t, s, resp, body, http.StatusInternalServerError)
			if resp.Header.Get("X-Second") != "1" || resp.Header.Get("X-First") != "" {
				t.Errorf("headers %v: want the exc_info call's X-Second and not the first call's X-First", resp.Header)
			}
			if !strings.HasPrefix(string(body), "handled whisk-e2e-exc-") {
				t.Errorf("body %q, want the app's error page", body)
			}
		})
	}

	t.Run("re-raised after the head was sent", func(t *testing.T) {
		t.Parallel()
		resp, err := client().Get(s.URL + "/after-sent")
		if err != nil {
			t.Fatalf("GET /after-sent: %v%s", err, serverOutput(s))
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-First") != "1" {
			t.Errorf("status %d, headers %v: want the 200 head that went out before the error", resp.StatusCode, resp.Header)
		}
		if err == nil {
			t.Errorf("the body ended cleanly (%q): once the head is out, an error must cut the connection", body)
		}
		if bytes.Contains(body, []byte("did not re-raise")) {
			t.Errorf("start_response(..., exc_info) after the head was sent returned instead of raising: body %q", body)
		}
		if !bytes.HasPrefix(body, []byte("first block\n")) {
			t.Errorf("body %q, want the first block before the cut", body)
		}
		waitOutput(t, s, "whisk-e2e-exc-after-sent")
	})
}

func TestResponseIterables(t *testing.T) {
	t.Parallel()
	s := startApp(t, "iterables.py", "--processes", "1", "--threads", "2")
	hello := "hello, world\n"
	t.Run("cases", func(t *testing.T) {
		for _, tc := range []struct{ path, want string }{
			{"/list", hello},
			{"/tuple", hello},
			{"/generator", hello},
			{"/iterator", hello},
			{"/custom", hello},
			{"/empty", ""},
			{"/many", strings.Repeat("x", 100*1000)},
			{"/write-only", hello},
			{"/write-mixed", hello},
			{"/write-list", hello},
		} {
			for _, validate := range []bool{false, true} {
				name := tc.path
				q := ""
				if validate {
					name += " validated"
					q = "?validate=1"
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					resp, body := fetch(t, s, http.MethodGet, tc.path+q, nil)
					mustStatus(t, s, resp, body, http.StatusOK)
					if string(body) != tc.want {
						t.Errorf("body %q (%d bytes), want %q (%d bytes)", truncate(body), len(body), truncate([]byte(tc.want)), len(tc.want))
					}
				})
			}
		}
	})
	// wsgiref.validate reports an iterable that was never closed, or any
	// other breach, from a destructor: it shows up only in the output.
	for _, bad := range []string{"Traceback", "AssertionError", "WSGIWarning", "without being closed"} {
		if strings.Contains(s.Output.String(), bad) {
			t.Errorf("whisk's output has %q%s", bad, serverOutput(s))
		}
	}
}

func TestCloseCalled(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "close.log")
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := startApp(t, "close_called.py", "--processes", "1", "--threads", "4", "--env", "WHISK_TEST_CLOSE_LOG="+log)
	// waitClosed polls the log until close() of request id was recorded.
	waitClosed := func(t *testing.T, id string) {
		t.Helper()
		if !poll(20*time.Second, func() bool {
			b, _ := os.ReadFile(log)
			return slices.Contains(strings.Split(string(b), "\n"), "closed "+id)
		}) {
			b, _ := os.ReadFile(log)
			t.Fatalf("close() of the response iterable of request %s was not called; the log:\n%s%s", id, b, serverOutput(s))
		}
	}

	t.Run("cases", func(t *testing.T) {
		for _, tc := range []struct{ path, body string }{
			{"/finite", "abc"},
			{"/generator", "ab"},
		} {
			t.Run("after a complete response "+tc.path, func(t *testing.T) {
				t.Parallel()
				id := strings.TrimPrefix(tc.path, "/")
				resp, body := fetch(t, s, http.MethodGet, tc.path+"?id="+id, nil)
				mustStatus(t, s, resp, body, http.StatusOK)
				if string(body) != tc.body {
					t.Errorf("body %q, want %q", body, tc.body)
				}
				waitClosed(t, id)
			})
		}

		t.Run("after the iterable raised", func(t *testing.T) {
			t.Parallel()
			resp, err := client().Get(s.URL + "/raises?id=raises")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			waitClosed(t, "raises")
		})

		t.Run("client disconnects mid-response", func(t *testing.T) {
			t.Parallel()
			resp, err := client().Get(s.URL + "/forever?id=gone")
			if err != nil {
				t.Fatalf("GET /forever: %v%s", err, serverOutput(s))
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
				t.Fatalf("read the start of the endless body: %v", err)
			}
			resp.Body.Close() // unread body: the transport closes the connection
			waitClosed(t, "gone")
		})

		t.Run("raw client disconnects before reading", func(t *testing.T) {
			t.Parallel()
			c := dial(t, s)
			send(t, c, "GET /forever?id=rawgone HTTP/1.1\r\nHost: x\r\n\r\n")
			if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
				t.Fatalf("read the head: %v", err)
			}
			c.Close()
			waitClosed(t, "rawgone")
		})
	})
	// A client that leaves costs a CANCEL, not a worker process: the
	// worker ends the stream and its channel serves the next request.
	for _, bad := range []string{"replacing", "panic:"} {
		if strings.Contains(s.Output.String(), bad) {
			t.Errorf("whisk's output has %q: a client disconnect must not break the worker's channel%s", bad, serverOutput(s))
		}
	}
}

func TestAppErrors(t *testing.T) {
	t.Parallel()
	// One worker thread: every request goes to the same worker.
	s := startApp(t, "app_errors.py", "--processes", "1", "--threads", "1")
	pid := func() string {
		t.Helper()
		resp, body := fetch(t, s, http.MethodGet, "/pid", nil)
		mustStatus(t, s, resp, body, http.StatusOK)
		return string(body)
	}
	first := pid()

	t.Run("exception before start_response", func(t *testing.T) {
		resp, body := fetch(t, s, http.MethodGet, "/raise-before", nil)
		mustStatus(t, s, resp, body, http.StatusInternalServerError)
		if bytes.Contains(body, []byte("whisk-e2e-boom")) || bytes.Contains(body, []byte("Traceback")) {
			t.Errorf("the 500 page shows the exception to the client: %q", body)
		}
		waitOutput(t, s, "whisk-e2e-boom-before")
		waitOutput(t, s, "Traceback (most recent call last)")
		if got := pid(); got != first {
			t.Errorf("after the exception, /pid answered from worker %s, want the same worker %s", got, first)
		}
	})

	t.Run("exception after the head, chunked", func(t *testing.T) {
		resp, err := client().Get(s.URL + "/raise-after")
		if err != nil {
			t.Fatalf("GET /raise-after: %v%s", err, serverOutput(s))
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "partial body\n" || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("status %d, body %q, read error %v; want 200, the first block, then io.ErrUnexpectedEOF (no last chunk)",
				resp.StatusCode, body, err)
		}
		// The same, seen on the wire: no terminating zero-length chunk.
		raw := roundTripRaw(t, s, "GET /raise-after HTTP/1.1\r\nHost: x\r\n\r\n")
		head, rest, _ := strings.Cut(string(raw), "\r\n\r\n")
		if !strings.Contains(head, "Transfer-Encoding: chunked") || !strings.Contains(rest, "partial body") || strings.HasSuffix(rest, "0\r\n\r\n") {
			t.Errorf("raw response %q: want a chunked body with the first block and no terminating chunk", raw)
		}
		waitOutput(t, s, "whisk-e2e-boom-after")
	})

	t.Run("exception after the head, Content-Length", func(t *testing.T) {
		resp, err := client().Get(s.URL + "/raise-after-cl")
		if err != nil {
			t.Fatalf("GET /raise-after-cl: %v%s", err, serverOutput(s))
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ContentLength != 100 || string(body) != "partial body\n" || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Content-Length %d, body %q, read error %v; want 100, the first block, then io.ErrUnexpectedEOF",
				resp.ContentLength, body, err)
		}
	})

	if got := pid(); got != first {
		t.Errorf("after the app's exceptions, /pid answered from worker %s, want the same worker %s", got, first)
	}
}

// testBody returns size bytes of lines of varied lengths (1 to 300 bytes,
// some empty), the last one without its newline.
func testBody(size int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < size; i++ {
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), (i*37)%300))
		b.WriteByte('\n')
	}
	out := b.Bytes()[:size]
	if size > 0 && out[size-1] == '\n' {
		out[size-1] = '!'
	}
	return out
}

// lines splits b after each '\n', as readline does; with n > 0 a line
// longer than n comes in pieces of n, as readline(n) does.
func lines(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n') + 1
		if i == 0 {
			i = len(b)
		}
		if n > 0 && i > n {
			i = n
		}
		out = append(out, b[:i])
		b = b[i:]
	}
	return out
}

// piecesDigest is input.py's digest of the pieces an op returned.
func piecesDigest(pieces [][]byte) string {
	h := sha256.New()
	for _, p := range pieces {
		binary.Write(h, binary.BigEndian, uint32(len(p)))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// inputReport is what testdata/apps/input.py answers.
type inputReport struct {
	Op            string
	Length        int
	SHA256        string
	Pieces        string
	Count         int
	ContentLength *string `json:"content_length"`
	After         []string
}

// postInput sends body to input.py with op (and n), with a
// Content-Length or chunked, and returns the report.
func postInput(t *testing.T, s *whisktest.Server, op string, n int, body []byte, chunked bool) inputReport {
	t.Helper()
	var r io.Reader = bytes.NewReader(body)
	if chunked {
		r = io.MultiReader(bytes.NewReader(body)) // hides the length
	}
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/?op=%s&n=%d", s.URL, op, n), r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if chunked {
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
	}
	resp, err := client().Do(req)
	if err != nil {
		t.Fatalf("POST ?op=%s: %v%s", op, err, serverOutput(s))
	}
	resp, got := whisktest.ReadAll(t, resp)
	mustStatus(t, s, resp, got, http.StatusOK)
	var rep inputReport
	if err := json.Unmarshal(got, &rep); err != nil {
		t.Fatalf("decode %s: %v", truncate(got), err)
	}
	return rep
}

func TestInput(t *testing.T) {
	t.Parallel()
	// A short timeout: an input read that blocks shows up as a 504, not a hang.
	s := startApp(t, "input.py", "--processes", "1", "--threads", "4", "--timeout", "10s")

	sizes := []struct {
		name string
		size int
	}{
		{"empty", 0},
		{"small", 1000},
		{"over 64KiB", 200 << 10},
		{"over 1MiB", 3 << 20},
	}
	for _, sz := range sizes {
		body := testBody(sz.size)
		sum := sha256.Sum256(body)
		wantSHA := hex.EncodeToString(sum[:])
		for _, chunked := range []bool{false, true} {
			framing := "content-length"
			if chunked {
				framing = "chunked"
			}
			for _, op := range []struct {
				name   string
				n      int
				exact  bool     // the pieces must be exactly these
				pieces [][]byte //
			}{
				{"read", 0, true, [][]byte{body}},
				{"readn", 7, false, nil},
				{"readn", 65536, false, nil},
				{"readline", 0, true, lines(body, 0)},
				{"readlinen", 100, true, lines(body, 100)},
				{"readlines", 0, true, lines(body, 0)},
				{"iter", 0, true, lines(body, 0)},
				{"pastend", 0, true, [][]byte{body}},
			} {
				if op.name == "readn" && op.n == 7 && sz.size > 1<<20 {
					continue // 450,000 reads: too slow to be worth it
				}
				name := fmt.Sprintf("%s %s %s", sz.name, framing, op.name)
				if op.n > 0 {
					name += strconv.Itoa(op.n)
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					rep := postInput(t, s, op.name, op.n, body, chunked)
					if rep.Length != len(body) || rep.SHA256 != wantSHA {
						t.Fatalf("the app read %d bytes (sha256 %s), want %d bytes (sha256 %s)", rep.Length, rep.SHA256, len(body), wantSHA)
					}
					if op.exact {
						if want := piecesDigest(op.pieces); rep.Pieces != want || rep.Count != len(op.pieces) {
							t.Errorf("%s returned %d pieces (digest %s), want %d (digest %s)", op.name, rep.Count, rep.Pieces, len(op.pieces), want)
						}
					} else if least := (len(body) + op.n - 1) / op.n; rep.Count < least {
						t.Errorf("read(%d) returned %d pieces for %d bytes: some were longer than %d", op.n, rep.Count, len(body), op.n)
					}
					switch cl := rep.ContentLength; {
					case chunked || len(body) > 0:
						if cl == nil || *cl != strconv.Itoa(len(body)) {
							t.Errorf("CONTENT_LENGTH %v, want %q", quoteOrAbsent(cl), strconv.Itoa(len(body)))
						}
					case cl != nil && *cl != "" && *cl != "0":
						t.Errorf("CONTENT_LENGTH %q for an empty body, want absent, empty or 0", *cl)
					}
					if op.name == "pastend" {
						if want := []string{"b''", "b''", "b''", "[]"}; !slices.Equal(rep.After, want) {
							t.Errorf("read(), read(10), readline(), readlines() past the end returned %q, want %q", rep.After, want)
						}
					}
				})
			}
		}
	}

	t.Run("GET reads nothing", func(t *testing.T) {
		t.Parallel()
		resp, got := fetch(t, s, http.MethodGet, "/?op=pastend", nil)
		mustStatus(t, s, resp, got, http.StatusOK)
		var rep inputReport
		if err := json.Unmarshal(got, &rep); err != nil {
			t.Fatal(err)
		}
		if rep.Length != 0 || !slices.Equal(rep.After, []string{"b''", "b''", "b''", "[]"}) {
			t.Errorf("GET: read %d bytes, then %q; want 0 and empty reads", rep.Length, rep.After)
		}
	})

	for _, up := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{"upload 5MiB", 5 << 20, false},
		{"upload 3MiB chunked", 3 << 20, true},
	} {
		t.Run(up.name, func(t *testing.T) {
			t.Parallel()
			data := make([]byte, up.size)
			rand.Read(data)
			sum := sha256.Sum256(data)
			rep := postInput(t, s, "sha", 0, data, up.chunked)
			if want := hex.EncodeToString(sum[:]); rep.Length != len(data) || rep.SHA256 != want {
				t.Errorf("the app received %d bytes with sha256 %s, want %d bytes with sha256 %s", rep.Length, rep.SHA256, len(data), want)
			}
		})
	}
}

func quoteOrAbsent(p *string) string {
	if p == nil {
		return "absent"
	}
	return strconv.Quote(*p)
}

func TestFileWrapper(t *testing.T) {
	t.Parallel()
	s := startApp(t, "file_wrapper.py", "--processes", "1", "--threads", "2")
	data := make([]byte, 5<<20+123)
	rand.Read(data)
	path := filepath.Join(t.TempDir(), "served.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	q := "?path=" + hex.EncodeToString([]byte(path))

	for _, tc := range []struct {
		name, query string
		want        []byte
		wantLength  int64 // -1: not checked (a streamed body)
	}{
		{"whole file", "", data, int64(len(data))},
		{"after seek", "&offset=1000", data[1000:], int64(len(data) - 1000)},
		{"after seek with Content-Length", "&offset=1000&length=4096", data[1000 : 1000+4096], 4096},
		{"file-like without a descriptor", "&mem=1", data, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := fetch(t, s, http.MethodGet, "/"+q+tc.query, nil)
			mustStatus(t, s, resp, body, http.StatusOK)
			if !bytes.Equal(body, tc.want) {
				t.Errorf("body of %d bytes differs from the %d bytes of the file part", len(body), len(tc.want))
			}
			if tc.wantLength >= 0 && resp.ContentLength != tc.wantLength {
				t.Errorf("Content-Length %d (header %q), want %d", resp.ContentLength, resp.Header.Get("Content-Length"), tc.wantLength)
			}
		})
	}

	t.Run("HEAD", func(t *testing.T) {
		t.Parallel()
		c := dial(t, s)
		// HEAD then GET on one connection: any body byte after the HEAD
		// response would break the parse of the GET response.
		send(t, c, "HEAD /"+q+" HTTP/1.1\r\nHost: x\r\n\r\nGET /"+q+"&offset=5000000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		raw := readAllRaw(t, c)
		resps, bodies, rest, err := parseResponses(raw, "HEAD", "GET")
		if err != nil || len(rest) > 0 {
			t.Fatalf("HEAD then GET: %v, %d bytes left over; raw start %q%s", err, len(rest), truncate(raw), serverOutput(s))
		}
		if resps[0].StatusCode != 200 || resps[1].StatusCode != 200 || !bytes.Equal(bodies[1], data[5000000:]) {
			t.Errorf("HEAD status %d, GET status %d with %d bytes; want 200, 200 and the file's tail of %d bytes",
				resps[0].StatusCode, resps[1].StatusCode, len(bodies[1]), len(data)-5000000)
		}
	})
}
