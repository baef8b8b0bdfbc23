package e2e

// ASGI apps under the real binary with real workers (docs/protocol.md,
// "ASGI"): a plain ASGI 3 app (testdata/apps/asgi_app.py) for the protocol's
// details, then Starlette, FastAPI and Django's ASGI handler from the test
// virtualenv. HTTP goes through net/http or raw connections, WebSocket
// through github.com/coder/websocket, all on loopback.
//
// The plain-app tests run with the interpreter the other testdata apps use
// (whisktest.Python); the framework tests need WHISK_TEST_VENV and skip
// without it.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// asgiWait bounds every wait of these tests for something the server or the
// app does (a marker file, a message, a response): generous, so a slow
// machine does not fail them, while a hang still ends.
const asgiWait = 15 * time.Second

// asgiVenv returns the test virtualenv (with Starlette, FastAPI and Django),
// and skips the test when WHISK_TEST_VENV is unset.
func asgiVenv(t *testing.T) string {
	t.Helper()
	if os.Getenv("WHISK_TEST_VENV") == "" {
		t.Skip("WHISK_TEST_VENV is unset: the Starlette, FastAPI and Django ASGI tests need the test virtualenv " +
			`(export WHISK_TEST_VENV="$(scripts/testenv.sh)", or run make test)`)
	}
	return whisktest.Venv(t)
}

// asgiScope is what asgi_app.py's /scope (and /ws-scope) answers: the scope,
// bytes as latin-1 strings and tuples as lists, plus each top-level value's
// Python type name.
type asgiScope struct {
	Type                string            `json:"type"`
	ASGI                map[string]string `json:"asgi"`
	HTTPVersion         string            `json:"http_version"`
	Method              string            `json:"method"`
	Scheme              string            `json:"scheme"`
	Path                string            `json:"path"`
	RawPath             string            `json:"raw_path"`
	QueryString         string            `json:"query_string"`
	RootPath            string            `json:"root_path"`
	Headers             [][2]string       `json:"headers"`
	Client              []any             `json:"client"`
	Server              []any             `json:"server"`
	Subprotocols        []string          `json:"subprotocols"`
	State               map[string]any    `json:"state"`
	Extensions          map[string]any    `json:"extensions"`
	Types               map[string]string `json:"types"`
	HeaderPairsAreBytes bool              `json:"header_pairs_are_bytes"`
}

// header returns the values of the scope's header name, in order.
func (s *asgiScope) header(name string) []string {
	var out []string
	for _, h := range s.Headers {
		if h[0] == name {
			out = append(out, h[1])
		}
	}
	return out
}

// echoReport is what the /echo endpoints answer.
type echoReport struct {
	Bytes    int    `json:"bytes"`
	SHA256   string `json:"sha256"`
	Chunks   int    `json:"chunks"`
	Messages int    `json:"messages"`
}

// slowReport is what asgi_app.py's /slow answers.
type slowReport struct {
	PID   int     `json:"pid"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	Peak  int     `json:"peak"`
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// randomBytes returns n pseudo-random bytes (seeded, so a failure repeats).
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{'a', 's', 'g', 'i', seed}).Read(b)
	return b
}

// checkEcho decodes an /echo report and checks it counted exactly data;
// it returns the report for further checks. who names the app in errors.
func checkEcho(t testing.TB, s *whisktest.Server, body, data []byte, who string) echoReport {
	t.Helper()
	var got echoReport
	decodeJSON(t, s, body, &got)
	if got.Bytes != len(data) || got.SHA256 != sha256Hex(data) {
		t.Errorf("%s read %d bytes, sha256 %s; sent %d, sha256 %s", who, got.Bytes, got.SHA256, len(data), sha256Hex(data))
	}
	return got
}

// checkLines checks a streamed body of n lines "line I of N" (the
// framework apps' /stream views).
func checkLines(t testing.TB, body []byte, n int) {
	t.Helper()
	var want strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&want, "line %d of %d\n", i, n)
	}
	if string(body) != want.String() {
		t.Errorf("streamed body differs:\n%s", truncate(body))
	}
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// waitFile waits up to asgiWait for the app to write path and returns its
// content; what says what the file means, for the failure message.
func waitFile(t testing.TB, s *whisktest.Server, path, what string) string {
	t.Helper()
	if !poll(asgiWait, func() bool { return fileExists(path) }) {
		t.Fatalf("%s: the app did not write %s within %v%s", what, filepath.Base(path), asgiWait, serverOutput(s))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// decodeJSON decodes body into v, failing the test with the body.
func decodeJSON(t testing.TB, s *whisktest.Server, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("decode %s: %v%s", truncate(body), err, serverOutput(s))
	}
}

// wsURL returns the ws:// URL of path on s.
func wsURL(s *whisktest.Server, path string) string {
	return "ws://" + s.Addr + path
}

// wsDial opens a WebSocket to path on s with opts (nil for none), with a
// read limit large enough for the tests' messages; it is closed when the
// test ends.
func wsDial(t testing.TB, s *whisktest.Server, path string, opts *websocket.DialOptions) (*websocket.Conn, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), asgiWait)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(s, path), opts)
	if err != nil {
		status := "no response"
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("WebSocket %s: %v (%s)%s", path, err, status, serverOutput(s))
	}
	c.SetReadLimit(8 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c, resp
}

// wsRead reads one message within asgiWait.
func wsRead(t testing.TB, s *whisktest.Server, c *websocket.Conn) (websocket.MessageType, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), asgiWait)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("WebSocket read: %v%s", err, serverOutput(s))
	}
	return typ, b
}

// wsWrite writes one message within asgiWait.
func wsWrite(t testing.TB, s *whisktest.Server, c *websocket.Conn, typ websocket.MessageType, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), asgiWait)
	defer cancel()
	if err := c.Write(ctx, typ, b); err != nil {
		t.Fatalf("WebSocket write (%d bytes): %v%s", len(b), err, serverOutput(s))
	}
}

// wsExpectClose reads until the server closes the WebSocket and checks the
// close frame's code and reason.
func wsExpectClose(t testing.TB, s *whisktest.Server, c *websocket.Conn, code websocket.StatusCode, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), asgiWait)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err == nil {
		t.Fatalf("got a %v message %q, want the server's close %d %q", typ, truncate(b), code, reason)
	}
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("read: %v, want the server's close frame %d %q%s", err, code, reason, serverOutput(s))
	}
	if ce.Code != code || ce.Reason != reason {
		t.Fatalf("server closed with %d %q, want %d %q%s", ce.Code, ce.Reason, code, reason, serverOutput(s))
	}
}

// startPlainASGI serves asgi_app.py from a config file that forces
// interface = "asgi" and mounts the group twice, at / and at /mnt (for
// root_path).
func startPlainASGI(t *testing.T) *whisktest.Server {
	t.Helper()
	conf := writeConfig(t, t.TempDir(), fmt.Sprintf(`
python = %q
processes = 2
threads = 2

[groups.plain]
app = %q
interface = "asgi"

[sites.main]
default = true
mounts = [{ path = "/", group = "plain" }, { path = "/mnt", group = "plain" }]
`, whisktest.Python(t), whisktest.App(t, "asgi_app.py")))
	return whisktest.Start(t, "--config", conf)
}

// TestASGIHTTP: the plain ASGI app's HTTP side: the scope, streamed request
// and response bodies, pathsend and disconnect detection.
func TestASGIHTTP(t *testing.T) {
	t.Parallel()
	s := startPlainASGI(t)
	_, port, _ := net.SplitHostPort(s.Addr)

	t.Run("hello", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/hello", "/mnt/hello"} {
			resp, body := fetch(t, s, http.MethodGet, path, nil)
			mustStatus(t, s, resp, body, http.StatusOK)
			if string(body) != "hello, asgi" || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Errorf("GET %s: %q (Content-Type %q), want %q as text/plain; charset=utf-8",
					path, body, resp.Header.Get("Content-Type"), "hello, asgi")
			}
		}
	})

	t.Run("scope", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name, target, proto                 string
			path, rawPath, query, root, version string
		}{
			{"root", "/scope/a%20b/%C3%A9?x=1&y=%20", "HTTP/1.1",
				"/scope/a b/é", "/scope/a%20b/%C3%A9", "x=1&y=%20", "", "1.1"},
			{"mounted", "/mnt/scope/x%2Fy?q", "HTTP/1.1",
				"/mnt/scope/x/y", "/mnt/scope/x%2Fy", "q", "/mnt", "1.1"},
			{"mount root", "/mnt/scope", "HTTP/1.1",
				"/mnt/scope", "/mnt/scope", "", "/mnt", "1.1"},
			{"http/1.0", "/scope", "HTTP/1.0",
				"/scope", "/scope", "", "", "1.0"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := dial(t, s)
				send(t, c, "GET "+tt.target+" "+tt.proto+"\r\nHost: 127.0.0.1:"+port+
					"\r\nX-Multi: one\r\nUser-Agent: whisk-e2e\r\nX-Multi: two\r\nConnection: close\r\n\r\n")
				localPort := c.LocalAddr().(*net.TCPAddr).Port
				resp, body := readResponse(t, s, bufio.NewReader(c), http.MethodGet)
				mustStatus(t, s, resp, body, http.StatusOK)
				var sc asgiScope
				decodeJSON(t, s, body, &sc)

				got := [7]string{sc.Type, sc.HTTPVersion, sc.Method, sc.Scheme, sc.Path, sc.RawPath, sc.QueryString}
				want := [7]string{"http", tt.version, "GET", "http", tt.path, tt.rawPath, tt.query}
				if got != want {
					t.Errorf("(type, http_version, method, scheme, path, raw_path, query_string) = %q, want %q", got, want)
				}
				if sc.RootPath != tt.root {
					t.Errorf("root_path = %q, want %q", sc.RootPath, tt.root)
				}
				if sc.ASGI["version"] != "3.0" || sc.ASGI["spec_version"] == "" {
					t.Errorf("asgi = %v, want version 3.0 and a spec_version", sc.ASGI)
				}
				for key, typ := range map[string]string{
					"raw_path": "bytes", "query_string": "bytes", "path": "str", "root_path": "str",
					"headers": "list", "client": "tuple", "server": "tuple", "state": "dict",
				} {
					if sc.Types[key] != typ {
						t.Errorf("type(scope[%q]) = %q, want %s", key, sc.Types[key], typ)
					}
				}
				if !sc.HeaderPairsAreBytes {
					t.Errorf("headers are not all (bytes, bytes) pairs: %v", sc.Headers)
				}
				if len(sc.Headers) == 0 || sc.Headers[0] != [2]string{"host", "127.0.0.1:" + port} {
					t.Errorf("headers %q: want host first, lower-cased", sc.Headers)
				}
				if h := sc.header("x-multi"); !slices.Equal(h, []string{"one", "two"}) {
					t.Errorf("x-multi headers %q, want [one two] in the client's order (all headers: %q)", h, sc.Headers)
				}
				if h := sc.header("user-agent"); !slices.Equal(h, []string{"whisk-e2e"}) {
					t.Errorf("user-agent %q, want [whisk-e2e]", h)
				}
				if h := sc.header("connection"); !slices.Equal(h, []string{"close"}) {
					t.Errorf("connection %q, want the client's [close] kept", h)
				}
				for _, h := range sc.Headers {
					if h[0] != strings.ToLower(h[0]) {
						t.Errorf("header name %q is not lower-cased", h[0])
					}
				}
				if len(sc.Client) != 2 || sc.Client[0] != "127.0.0.1" || sc.Client[1] != float64(localPort) {
					t.Errorf("client = %v, want [127.0.0.1 %d]", sc.Client, localPort)
				}
				if len(sc.Server) != 2 || sc.Server[0] != "127.0.0.1" || fmt.Sprint(sc.Server[1]) != port {
					t.Errorf("server = %v, want [127.0.0.1 %s]", sc.Server, port)
				}
				if _, ok := sc.Extensions["http.response.pathsend"]; !ok {
					t.Errorf("extensions = %v, want http.response.pathsend", sc.Extensions)
				}
				if sc.State["started_by"] != "asgi_app" {
					t.Errorf("state = %v, want the lifespan's started_by=asgi_app", sc.State)
				}
				if t.Failed() {
					t.Logf("scope: %s", body)
				}
			})
		}
	})

	t.Run("streamed request", func(t *testing.T) {
		t.Parallel()
		// A chunked body on a raw connection, so the test decides when each
		// piece leaves: the first, then (once the app has it) the rest.
		data := randomBytes(3<<20+17, 1)
		mark := filepath.Join(t.TempDir(), "first-chunk")
		c := dial(t, s)
		send(t, c, "POST /echo?mark="+url.QueryEscape(mark)+" HTTP/1.1\r\nHost: 127.0.0.1\r\n"+
			"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
		chunk := func(b []byte) string { return fmt.Sprintf("%x\r\n%s\r\n", len(b), b) }
		send(t, c, chunk(data[:1000]))
		// The app must have the first piece while the body is still open:
		// whisk forwards the body as it arrives, not buffered whole.
		if !poll(asgiWait, func() bool { return fileExists(mark) }) {
			t.Fatalf("the app did not receive the first 1000 bytes within %v while the request body was still open: "+
				"the body is not forwarded as it arrives%s", asgiWait, serverOutput(s))
		}
		for rest := data[1000:]; len(rest) > 0; {
			n := min(len(rest), 256<<10)
			send(t, c, chunk(rest[:n]))
			rest = rest[n:]
		}
		send(t, c, "0\r\n\r\n")
		resp, body := readResponse(t, s, bufio.NewReader(c), http.MethodPost)
		mustStatus(t, s, resp, body, http.StatusOK)
		got := checkEcho(t, s, body, data, "the app")
		if got.Chunks < 2 {
			t.Errorf("the body reached the app in %d http.request message(s), want it in chunks as it arrived", got.Chunks)
		}
	})

	t.Run("request bodies", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name string
			size int
		}{
			{"empty", 0},
			{"small", 100},
			{"4 MB with Content-Length", 4 << 20},
		} {
			t.Run(tt.name, func(t *testing.T) {
				data := randomBytes(tt.size, 2)
				resp, body := fetch(t, s, http.MethodPost, "/echo", bytes.NewReader(data))
				mustStatus(t, s, resp, body, http.StatusOK)
				got := checkEcho(t, s, body, data, "the app")
				if tt.size == 0 && (got.Chunks != 0 || got.Messages != 1) {
					t.Errorf("empty body: %d non-empty chunks in %d messages, want one http.request without body", got.Chunks, got.Messages)
				}
			})
		}
	})

	t.Run("streamed response", func(t *testing.T) {
		t.Parallel()
		gate := filepath.Join(t.TempDir(), "gate")
		req := newRequest(t, s, http.MethodGet, "/stream?n=3&gate="+url.QueryEscape(gate), nil)
		resp, err := client().Do(req)
		if err != nil {
			t.Fatalf("GET /stream: %v%s", err, serverOutput(s))
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ContentLength != -1 {
			t.Fatalf("status %d, Content-Length %d; want 200 streamed%s", resp.StatusCode, resp.ContentLength, serverOutput(s))
		}
		// The app sends its first chunk, then waits for the gate: reading
		// the first line before creating it shows whisk does not hold the
		// response back.
		br := bufio.NewReader(resp.Body)
		first, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read the first chunk: %v (got %q)%s", err, first, serverOutput(s))
		}
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("read the rest: %v (got %q)%s", err, rest, serverOutput(s))
		}
		got := first + string(rest)
		if strings.Contains(got, "gave up waiting") {
			t.Fatalf("the first chunk reached the client only after the app gave up waiting: the response was buffered\n%s%s", got, serverOutput(s))
		}
		if want := "chunk 1 of 3\nchunk 2 of 3\nchunk 3 of 3\n"; got != want {
			t.Errorf("body %q, want %q", got, want)
		}
	})

	t.Run("many chunks", func(t *testing.T) {
		t.Parallel()
		const n = 5000
		resp, body := fetch(t, s, http.MethodGet, "/stream?n="+strconv.Itoa(n), nil)
		mustStatus(t, s, resp, body, http.StatusOK)
		var want strings.Builder
		for i := 1; i <= n; i++ {
			fmt.Fprintf(&want, "chunk %d of %d\n", i, n)
		}
		if string(body) != want.String() {
			t.Errorf("body of %d bytes differs from the %d bytes of %d chunks:\n%s", len(body), want.Len(), n, truncate(body))
		}
	})

	t.Run("pathsend", func(t *testing.T) {
		t.Parallel()
		data := randomBytes(3<<20, 3)
		path := filepath.Join(t.TempDir(), "payload.bin")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		resp, body := fetch(t, s, http.MethodGet, "/pathsend?file="+url.QueryEscape(path), nil)
		mustStatus(t, s, resp, body, http.StatusOK)
		if !bytes.Equal(body, data) {
			t.Errorf("got %d bytes (sha256 %s), want the file's %d (sha256 %s)", len(body), sha256Hex(body), len(data), sha256Hex(data))
		}
		if resp.ContentLength != int64(len(data)) || resp.Header.Get("X-Sent-By") != "pathsend" {
			t.Errorf("Content-Length %d, X-Sent-By %q; want the app's head: %d, pathsend", resp.ContentLength, resp.Header.Get("X-Sent-By"), len(data))
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		t.Parallel()
		// One after the other, then a request: the process still serves.
		for _, tt := range []struct {
			mode, want string
		}{
			// Waiting in receive() after the body: http.disconnect.
			{"receive", "http.disconnect"},
			// Streaming: send() raises ClientDisconnected, an OSError.
			{"send", "raised ClientDisconnected oserror=True"},
		} {
			t.Run(tt.mode, func(t *testing.T) {
				mark := filepath.Join(t.TempDir(), "mark")
				c := dial(t, s)
				send(t, c, "GET /disconnect?mode="+tt.mode+"&mark="+url.QueryEscape(mark)+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
				waitFile(t, s, mark+".started", "the request reaching the app")
				if tt.mode == "send" {
					// Some of the stream reached the client.
					buf := make([]byte, 1)
					if _, err := io.ReadFull(c, buf); err != nil {
						t.Fatalf("read the response's start: %v%s", err, serverOutput(s))
					}
				}
				c.Close()
				if got := waitFile(t, s, mark, "the app seeing the client leave"); got != tt.want {
					t.Errorf("the app recorded %q, want %q%s", got, tt.want, serverOutput(s))
				}
			})
		}
		resp, body := fetch(t, s, http.MethodGet, "/hello", nil)
		mustStatus(t, s, resp, body, http.StatusOK)
	})
}

// TestASGIWebSocket: the plain app's WebSocket echo through whisk: 1 MB
// messages both ways, close codes in both directions, subprotocol, accept
// headers, deny → 403, ping, and the websocket scope.
func TestASGIWebSocket(t *testing.T) {
	t.Parallel()
	s := startPlainASGI(t)

	t.Run("echo 1 MB both ways", func(t *testing.T) {
		t.Parallel()
		c, _ := wsDial(t, s, "/ws", nil)
		unit := "héllo wörld ✓ 0123456789 "
		text := strings.Repeat(unit, 1<<20/len(unit)+1) // a little over 1 MB of UTF-8
		msgs := []struct {
			typ  websocket.MessageType
			data []byte
		}{
			{websocket.MessageBinary, randomBytes(1<<20, 4)},
			{websocket.MessageText, []byte(text)},
			{websocket.MessageBinary, randomBytes(1<<20+1, 5)},
			{websocket.MessageText, []byte("small")},
			{websocket.MessageBinary, nil},
			{websocket.MessageText, []byte(text)},
		}
		// Write from a goroutine while reading here: each side's flow
		// control has to move for the other to make progress.
		werr := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), asgiWait)
			defer cancel()
			for _, m := range msgs {
				if err := c.Write(ctx, m.typ, m.data); err != nil {
					werr <- fmt.Errorf("write %d bytes: %w", len(m.data), err)
					return
				}
			}
			werr <- nil
		}()
		for i, m := range msgs {
			typ, got := wsRead(t, s, c)
			if typ != m.typ || !bytes.Equal(got, m.data) {
				t.Fatalf("message %d: got %v of %d bytes (sha256 %s), want %v of %d bytes (sha256 %s)",
					i, typ, len(got), sha256Hex(got), m.typ, len(m.data), sha256Hex(m.data))
			}
		}
		if err := <-werr; err != nil {
			t.Fatal(err)
		}
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Errorf("close: %v", err)
		}
	})

	t.Run("server closes", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			code   websocket.StatusCode
			reason string
		}{
			{websocket.StatusNormalClosure, "done"},
			{4001, "going away now"},
			{3000, ""},
			{websocket.StatusPolicyViolation, "policy"},
		} {
			t.Run(strconv.Itoa(int(tt.code)), func(t *testing.T) {
				t.Parallel()
				c, _ := wsDial(t, s, "/ws", nil)
				wsWrite(t, s, c, websocket.MessageText, []byte("before the close"))
				if _, got := wsRead(t, s, c); string(got) != "before the close" {
					t.Fatalf("echo %q", got)
				}
				wsWrite(t, s, c, websocket.MessageText, []byte(fmt.Sprintf("close:%d:%s", tt.code, tt.reason)))
				wsExpectClose(t, s, c, tt.code, tt.reason)
			})
		}
	})

	t.Run("client closes", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name string
			code websocket.StatusCode // -1: the connection just drops
			want string
		}{
			{"1000", websocket.StatusNormalClosure, "disconnect 1000"},
			{"4002", 4002, "disconnect 4002"},
			{"1001", websocket.StatusGoingAway, "disconnect 1001"},
			{"dropped", -1, "disconnect 1006"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				mark := filepath.Join(t.TempDir(), "mark")
				c, _ := wsDial(t, s, "/ws?mark="+url.QueryEscape(mark), nil)
				wsWrite(t, s, c, websocket.MessageBinary, []byte{1, 2, 3})
				if _, got := wsRead(t, s, c); !bytes.Equal(got, []byte{1, 2, 3}) {
					t.Fatalf("echo %v", got)
				}
				if tt.code < 0 {
					c.CloseNow()
				} else if err := c.Close(tt.code, "client bye"); err != nil {
					// Close waits for the server to answer the close frame.
					t.Errorf("close %d: %v (the server did not answer the close handshake)%s", tt.code, err, serverOutput(s))
				}
				if got := waitFile(t, s, mark, "websocket.disconnect"); got != tt.want {
					t.Errorf("the app recorded %q, want %q%s", got, tt.want, serverOutput(s))
				}
			})
		}
	})

	t.Run("subprotocol and accept headers", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			offered []string
			want    string
		}{
			{nil, ""},
			{[]string{"whisk.v2", "whisk.v1"}, "whisk.v2"},
			{[]string{"graphql-transport-ws"}, "graphql-transport-ws"},
		} {
			c, resp := wsDial(t, s, "/ws", &websocket.DialOptions{Subprotocols: tt.offered})
			if got := c.Subprotocol(); got != tt.want {
				t.Errorf("offered %q: subprotocol %q, want %q", tt.offered, got, tt.want)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Whisk-Ws") != "accepted" {
				t.Errorf("offered %q: handshake %s, X-Whisk-Ws %q; want 101 with the accept's header x-whisk-ws: accepted",
					tt.offered, resp.Status, resp.Header.Get("X-Whisk-Ws"))
			}
			c.Close(websocket.StatusNormalClosure, "")
		}
	})

	t.Run("deny", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), asgiWait)
		defer cancel()
		c, resp, err := websocket.Dial(ctx, wsURL(s, "/ws-deny"), nil)
		if err == nil {
			c.CloseNow()
			t.Fatalf("the handshake succeeded; want 403 (the app closed before accepting)")
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			status := "no response"
			if resp != nil {
				status = resp.Status
			}
			t.Fatalf("dial: %v (%s); want a 403 response%s", err, status, serverOutput(s))
		}
	})

	t.Run("ping", func(t *testing.T) {
		t.Parallel()
		c, _ := wsDial(t, s, "/ws", nil)
		// coder/websocket reads pongs in Read: read in the background.
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			for {
				if _, _, err := c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), asgiWait)
		defer cancel()
		for i := range 3 {
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("ping %d: %v%s", i, err, serverOutput(s))
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
		<-readDone
	})

	t.Run("scope", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			path, root string
		}{
			{"/ws-scope?a=b", ""},
			{"/mnt/ws-scope?a=b", "/mnt"},
		} {
			c, _ := wsDial(t, s, tt.path, &websocket.DialOptions{Subprotocols: []string{"p1", "p2"}})
			typ, body := wsRead(t, s, c)
			if typ != websocket.MessageText {
				t.Errorf("%s: scope came as %v, want text", tt.path, typ)
			}
			var sc asgiScope
			decodeJSON(t, s, body, &sc)
			wantPath := strings.Split(tt.path, "?")[0]
			got := [6]string{sc.Type, sc.Scheme, sc.Path, sc.RawPath, sc.QueryString, sc.RootPath}
			want := [6]string{"websocket", "ws", wantPath, wantPath, "a=b", tt.root}
			if got != want {
				t.Errorf("%s: (type, scheme, path, raw_path, query_string, root_path) = %q, want %q", tt.path, got, want)
			}
			if !slices.Equal(sc.Subprotocols, []string{"p1", "p2"}) {
				t.Errorf("%s: subprotocols %q, want [p1 p2]", tt.path, sc.Subprotocols)
			}
			if sc.Method != "" {
				t.Errorf("%s: a websocket scope with method %q", tt.path, sc.Method)
			}
			if sc.State["started_by"] != "asgi_app" {
				t.Errorf("%s: state = %v, want the lifespan's started_by=asgi_app", tt.path, sc.State)
			}
			wsExpectClose(t, s, c, websocket.StatusNormalClosure, "scope sent")
		}
	})
}

// TestASGILifespan: the plain app's lifespan state reaches requests, and its
// shutdown runs when whisk stops on SIGTERM. The app is auto-detected (no
// --interface).
func TestASGILifespan(t *testing.T) {
	t.Parallel()
	marker := filepath.Join(t.TempDir(), "shutdown")
	s := startApp(t, "asgi_app.py", "--processes", "1", "--env", "WHISK_TEST_SHUTDOWN_MARKER="+marker)

	resp, body := fetch(t, s, http.MethodGet, "/state", nil)
	mustStatus(t, s, resp, body, http.StatusOK)
	var state map[string]any
	decodeJSON(t, s, body, &state)
	resp, pidBody := fetch(t, s, http.MethodGet, "/pid", nil)
	mustStatus(t, s, resp, pidBody, http.StatusOK)
	if state["started_by"] != "asgi_app" || fmt.Sprint(state["startup_pid"]) != string(pidBody) {
		t.Errorf("state %v, want started_by asgi_app and startup_pid %s (the lifespan ran in the worker)", state, pidBody)
	}
	if fileExists(marker) {
		t.Fatalf("the shutdown marker exists while whisk runs")
	}

	s.Signal(t, syscall.SIGTERM)
	if code := s.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0%s", code, serverOutput(s))
	}
	b, err := os.ReadFile(marker)
	if err != nil || string(b) != "shutdown" {
		t.Errorf("shutdown marker: %q, %v; want \"shutdown\" (lifespan.shutdown ran before the worker exited)%s", b, err, serverOutput(s))
	}
}

// TestASGILifespanStartupFailure: a failed lifespan startup is reported like
// an import failure: whisk exits 3 with the app's message.
func TestASGILifespanStartupFailure(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		mode, message string
	}{
		{"failed", "whisk-e2e-lifespan-failed"}, // lifespan.startup.failed
		{"raise", "whisk-e2e-lifespan-raised"},  // raises after receiving lifespan.startup
	} {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			s := whisktest.StartNoWait(t, whisktest.App(t, "asgi_lifespan_fail.py"), "--python", whisktest.Python(t),
				"--processes", "1", "--env", "WHISK_TEST_LIFESPAN="+tt.mode)
			code := s.Wait(t, 60*time.Second)
			out := s.Output.String()
			if code != 3 {
				t.Errorf("exit code %d, want 3 (as for an import failure)%s", code, serverOutput(s))
			}
			for _, want := range []string{"ASGI lifespan startup failed", tt.message} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q%s", want, serverOutput(s))
				}
			}
			if strings.Contains(out, "this app must never serve") {
				t.Errorf("the app served a request%s", serverOutput(s))
			}
		})
	}
}

// TestASGIInterface: auto-detection of the interface (a coroutine function,
// an instance with an async __call__, a WSGI function) and forcing it.
func TestASGIInterface(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		app   string
		flags []string
		path  string
		want  string // the body ("" for any); path "" when whisk must refuse to start
	}{
		{"auto: coroutine function", "asgi_app.py", nil, "/hello", "hello, asgi"},
		{"auto: async __call__", "asgi_class.py", nil, "/x", "class app /x"},
		{"auto: wsgi", "pid.py", nil, "/", ""},
		{"forced asgi", "asgi_app.py", []string{"--interface", "asgi"}, "/hello", "hello, asgi"},
		{"forced asgi, async __call__", "asgi_class.py", []string{"--interface", "asgi"}, "/y", "class app /y"},
		{"forced wsgi", "pid.py", []string{"--interface", "wsgi"}, "/", ""},
		{"forced wsgi on a coroutine function", "asgi_app.py", []string{"--interface", "wsgi"}, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{whisktest.App(t, tt.app), "--python", whisktest.Python(t), "--processes", "1"}, tt.flags...)
			if tt.path == "" {
				// Refused: the import fails with a hint, as for any
				// app that cannot be served.
				s := whisktest.StartNoWait(t, args...)
				if code := s.Wait(t, 60*time.Second); code != 3 {
					t.Errorf("exit code %d, want 3 (the app cannot be served as WSGI)%s", code, serverOutput(s))
				}
				if out := s.Output.String(); !strings.Contains(out, "hint: ") || !strings.Contains(strings.ToLower(out), "asgi") {
					t.Errorf("output lacks a hint naming ASGI%s", serverOutput(s))
				}
				return
			}
			s := whisktest.Start(t, args...)
			resp, body := fetch(t, s, http.MethodGet, tt.path, nil)
			mustStatus(t, s, resp, body, http.StatusOK)
			if tt.want != "" && string(body) != tt.want {
				t.Errorf("GET %s: %q, want %q", tt.path, body, tt.want)
			}
		})
	}
}

// TestASGIConcurrency: 1,000 slow requests (asyncio.sleep(0.5) each) at once
// on one process are all answered, overlapping: the event loop serves them
// together, far faster than one after another (500 s).
func TestASGIConcurrency(t *testing.T) {
	t.Parallel()
	s := startApp(t, "asgi_app.py", "--processes", "1", "--threads", "1")
	const n = 1000

	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}

	reports := make([]slowReport, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(s.URL + "/slow?s=0.5")
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d: %s", resp.StatusCode, truncate(b))
			}
			if err == nil {
				err = json.Unmarshal(b, &reports[i])
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			if failed <= 10 {
				t.Errorf("request %d: %v", i, err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d requests failed (in %v)%s", failed, n, elapsed, serverOutput(s))
	}
	pids := map[int]int{}
	peak := 0
	for _, r := range reports {
		pids[r.PID]++
		peak = max(peak, r.Peak)
	}
	if len(pids) != 1 {
		t.Errorf("answered by processes %v, want one", pids)
	}
	// Overlap: the app saw many in flight at once, and the whole batch took
	// far less than one after another (generous bounds: no timing race).
	if peak < 100 {
		t.Errorf("at most %d /slow requests were in the app at once, want hundreds of the %d", peak, n)
	}
	if elapsed > 30*time.Second {
		t.Errorf("%d requests of 0.5 s took %v, want far less than %v: they did not overlap", n, elapsed, n*500*time.Millisecond)
	}
	t.Logf("%d requests of 0.5 s on one process: %v, at most %d in the app at once", n, elapsed, peak)
}

// TestASGIMaxConcurrency: max_concurrency bounds the streams a process
// serves at once; the rest wait in the group's queue and are answered.
func TestASGIMaxConcurrency(t *testing.T) {
	t.Parallel()
	s := startApp(t, "asgi_app.py", "--processes", "1", "--max-concurrency", "3")
	const n = 9
	var wg sync.WaitGroup
	reports := make([]slowReport, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, body, err := tryGet(s, "/slow?s=0.3")
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("status %d: %s", code, body)
			}
			if err == nil {
				err = json.Unmarshal([]byte(body), &reports[i])
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	peak := 0
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
		peak = max(peak, reports[i].Peak)
	}
	if peak > 3 {
		t.Errorf("%d requests were in the app at once with --max-concurrency 3", peak)
	}
	t.Logf("%d requests with --max-concurrency 3: at most %d in the app at once", n, peak)
	if t.Failed() {
		t.Log(serverOutput(s))
	}
}

// TestASGITimeout: the request timeout cancels the app's task (the client
// gets 504, the app sees asyncio.CancelledError) and the process serves on;
// it bounds only the wait for a WebSocket's accept, not the connection.
func TestASGITimeout(t *testing.T) {
	t.Parallel()
	s := startApp(t, "asgi_app.py", "--processes", "1", "--request-timeout", "1s")
	resp, pid := fetch(t, s, http.MethodGet, "/pid", nil)
	mustStatus(t, s, resp, pid, http.StatusOK)

	t.Run("504 and cancelled", func(t *testing.T) {
		t.Parallel()
		mark := filepath.Join(t.TempDir(), "hang")
		start := time.Now()
		resp, body := fetch(t, s, http.MethodGet, "/hang?mark="+url.QueryEscape(mark), nil)
		mustStatus(t, s, resp, body, http.StatusGatewayTimeout)
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("the 504 came after %v with a 1 s timeout", d)
		}
		if got := waitFile(t, s, mark, "the task's cancellation"); got != "cancelled" {
			t.Errorf("the app recorded %q, want cancelled (asyncio.CancelledError in the task)", got)
		}
		// Cancelled, not recycled: the same process answers.
		resp, again := fetch(t, s, http.MethodGet, "/pid", nil)
		mustStatus(t, s, resp, again, http.StatusOK)
		if string(again) != string(pid) {
			t.Errorf("after the timeout pid %s answers, want %s: the task should be cancelled, not the process replaced%s", again, pid, serverOutput(s))
		}
	})

	t.Run("websocket outlives the timeout", func(t *testing.T) {
		t.Parallel()
		c, _ := wsDial(t, s, "/ws", nil)
		time.Sleep(1500 * time.Millisecond) // past the 1 s request timeout
		wsWrite(t, s, c, websocket.MessageText, []byte("still here"))
		if _, got := wsRead(t, s, c); string(got) != "still here" {
			t.Errorf("echo after the timeout: %q", got)
		}
		if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
			t.Errorf("close: %v", err)
		}
	})
}

// TestASGIStarlette: a Starlette app with a lifespan: state in requests,
// streaming, FileResponse (pathsend), WebSocket, and the shutdown on SIGTERM.
func TestASGIStarlette(t *testing.T) {
	t.Parallel()
	venv := asgiVenv(t)
	marker := filepath.Join(t.TempDir(), "shutdown")
	s := whisktest.Start(t, whisktest.App(t, "asgi_starlette.py")+":app", "--python", venv,
		"--processes", "1", "--env", "WHISK_TEST_SHUTDOWN_MARKER="+marker)

	t.Run("pages", func(t *testing.T) {
		t.Run("home", func(t *testing.T) {
			t.Parallel()
			resp, body := fetch(t, s, http.MethodGet, "/", nil)
			mustStatus(t, s, resp, body, http.StatusOK)
			if string(body) != "Hello from Starlette" {
				t.Errorf("body %q", body)
			}
		})

		t.Run("lifespan state", func(t *testing.T) {
			t.Parallel()
			resp, body := fetch(t, s, http.MethodGet, "/state", nil)
			mustStatus(t, s, resp, body, http.StatusOK)
			var got struct {
				Greeting   string
				StartupPID int `json:"startup_pid"`
				PID        int
			}
			decodeJSON(t, s, body, &got)
			if got.Greeting != "hello from the lifespan" || got.StartupPID != got.PID {
				t.Errorf("got %+v, want the lifespan's greeting and its pid equal to the worker's", got)
			}
		})

		t.Run("not found", func(t *testing.T) {
			t.Parallel()
			resp, body := fetch(t, s, http.MethodGet, "/nope", nil)
			mustStatus(t, s, resp, body, http.StatusNotFound)
		})

		t.Run("request body", func(t *testing.T) {
			t.Parallel()
			data := randomBytes(2<<20+3, 6)
			resp, body := fetch(t, s, http.MethodPost, "/echo", bytes.NewReader(data))
			mustStatus(t, s, resp, body, http.StatusOK)
			checkEcho(t, s, body, data, "Starlette")
		})

		t.Run("streaming response", func(t *testing.T) {
			t.Parallel()
			resp, body := fetch(t, s, http.MethodGet, "/stream?n=300", nil)
			mustStatus(t, s, resp, body, http.StatusOK)
			checkLines(t, body, 300)
		})

		t.Run("FileResponse", func(t *testing.T) {
			t.Parallel()
			data := randomBytes(2<<20, 7)
			path := filepath.Join(t.TempDir(), "f.bin")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			resp, body := fetch(t, s, http.MethodGet, "/file?path="+url.QueryEscape(path), nil)
			mustStatus(t, s, resp, body, http.StatusOK)
			if !bytes.Equal(body, data) || resp.ContentLength != int64(len(data)) {
				t.Errorf("got %d bytes (Content-Length %d), want the file's %d", len(body), resp.ContentLength, len(data))
			}
		})

		t.Run("websocket", func(t *testing.T) {
			t.Parallel()
			c, _ := wsDial(t, s, "/ws", &websocket.DialOptions{Subprotocols: []string{"chat", "other"}})
			if c.Subprotocol() != "chat" {
				t.Errorf("subprotocol %q, want chat", c.Subprotocol())
			}
			for _, m := range []string{"hello", "wörld", strings.Repeat("x", 200<<10)} {
				wsWrite(t, s, c, websocket.MessageText, []byte(m))
				if typ, got := wsRead(t, s, c); typ != websocket.MessageText || string(got) != strings.ToUpper(m) {
					t.Errorf("sent %q, got %v %q", truncate([]byte(m)), typ, truncate(got))
				}
			}
			wsWrite(t, s, c, websocket.MessageText, []byte("bye"))
			wsExpectClose(t, s, c, 4000, "bye")
		})
	})

	// After the pages: SIGTERM runs the lifespan's shutdown.
	if fileExists(marker) {
		t.Fatalf("the shutdown marker exists while whisk runs")
	}
	s.Signal(t, syscall.SIGTERM)
	if code := s.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0%s", code, serverOutput(s))
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "shutdown complete" {
		t.Errorf("shutdown marker: %q, %v; want the lifespan's shutdown to have run%s", b, err, serverOutput(s))
	}
}

// TestASGIFastAPI: a FastAPI app: JSON bodies validated by pydantic, path and
// query parameters, a sync endpoint (run in a thread), OpenAPI, WebSocket.
func TestASGIFastAPI(t *testing.T) {
	t.Parallel()
	venv := asgiVenv(t)
	s := whisktest.Start(t, whisktest.App(t, "asgi_fastapi.py")+":app", "--python", venv, "--processes", "2")

	for _, tt := range []struct {
		name, method, path, body string
		status                   int
		want                     map[string]any // fields of the JSON answer
		contains                 string         // or a substring of it
	}{
		{"root", "GET", "/", "", 200, map[string]any{"framework": "fastapi"}, ""},
		{"item", "POST", "/items/42?q=hi", `{"name": "widget", "price": 9.5, "tags": ["a", "b"]}`, 200,
			map[string]any{"item_id": 42.0, "name": "widget", "price": 9.5, "tags": []any{"a", "b"}, "q": "hi"}, ""},
		{"item without query", "POST", "/items/7", `{"name": "w", "price": 1}`, 200,
			map[string]any{"item_id": 7.0, "q": nil, "tags": []any{}}, ""},
		{"invalid body", "POST", "/items/1", `{"name": "w", "price": -1}`, 422, nil, `"price"`},
		{"invalid path param", "POST", "/items/abc", `{"name": "w", "price": 1}`, 422, nil, `"item_id"`},
		{"sync endpoint", "GET", "/users/7", "", 200, map[string]any{"user_id": 7.0, "in_event_loop": false}, ""},
		{"openapi", "GET", "/openapi.json", "", 200, nil, `"/items/{item_id}"`},
		{"not found", "GET", "/nope", "", 404, map[string]any{"detail": "Not Found"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req := newRequest(t, s, tt.method, tt.path, body)
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, got := whisktest.ReadAll(t, do(t, s, client(), req))
			expectStatus(t, s, resp, got, tt.status)
			if tt.contains != "" && !strings.Contains(string(got), tt.contains) {
				t.Errorf("body lacks %s:\n%s", tt.contains, truncate(got))
			}
			if tt.want != nil {
				var m map[string]any
				decodeJSON(t, s, got, &m)
				for k, v := range tt.want {
					if fmt.Sprint(m[k]) != fmt.Sprint(v) {
						t.Errorf("%s = %v, want %v (body %s)", k, m[k], v, got)
					}
				}
			}
		})
	}

	t.Run("websocket", func(t *testing.T) {
		t.Parallel()
		c, _ := wsDial(t, s, "/ws/lobby", nil)
		for i := range 3 {
			wsWrite(t, s, c, websocket.MessageText, []byte(fmt.Sprintf(`{"n": %d}`, i)))
			_, b := wsRead(t, s, c)
			var got struct {
				Room string
				Echo map[string]int
			}
			decodeJSON(t, s, b, &got)
			if got.Room != "lobby" || got.Echo["n"] != i {
				t.Errorf("message %d: got %s", i, b)
			}
		}
		wsWrite(t, s, c, websocket.MessageText, []byte(`{"close": 4003}`))
		wsExpectClose(t, s, c, 4003, "")
	})
}

// TestASGIDjango: a Django project served by its ASGI handler
// (get_asgi_application): async and sync views, a streaming response, a
// request body, and SCRIPT_NAME from root_path when mounted under a prefix.
// Django's handler refuses the lifespan scope, so the worker serves it
// without lifespan.
func TestASGIDjango(t *testing.T) {
	t.Parallel()
	venv := asgiVenv(t)
	dir := filepath.Join(whisktest.RepoRoot(t), "testdata", "apps", "django_asgi")
	conf := writeConfig(t, t.TempDir(), fmt.Sprintf(`
python = %q
processes = 2

[groups.django]
app = "asgisite.asgi:application"
chdir = %q
env = { PYTHONDONTWRITEBYTECODE = "1" }

[sites.main]
default = true
mounts = [{ path = "/", group = "django" }, { path = "/sub", group = "django" }]
`, venv, dir))
	s := whisktest.Start(t, "--config", conf)

	type facts struct {
		View       string  `json:"view"`
		InLoop     bool    `json:"in_event_loop"`
		Method     string  `json:"method"`
		Path       string  `json:"path"`
		PathInfo   string  `json:"path_info"`
		ScriptName string  `json:"script_name"`
		Query      *string `json:"query"`
	}
	for _, tt := range []struct {
		path                              string
		view                              string
		inLoop                            bool
		wantPath, pathInfo, script, query string
	}{
		{"/async/?q=%C3%A9", "async", true, "/async/", "/async/", "", "é"},
		{"/sync/", "sync", false, "/sync/", "/sync/", "", ""},
		{"/sub/async/?q=x", "async", true, "/sub/async/", "/async/", "/sub", "x"},
		{"/sub/sync/", "sync", false, "/sub/sync/", "/sync/", "/sub", ""},
	} {
		t.Run(tt.path, func(t *testing.T) {
			t.Parallel()
			resp, body := fetch(t, s, http.MethodGet, tt.path, nil)
			mustStatus(t, s, resp, body, http.StatusOK)
			var got facts
			decodeJSON(t, s, body, &got)
			query := ""
			if got.Query != nil {
				query = *got.Query
			}
			if got.View != tt.view || got.InLoop != tt.inLoop || got.Method != "GET" ||
				got.Path != tt.wantPath || got.PathInfo != tt.pathInfo || got.ScriptName != tt.script || query != tt.query {
				t.Errorf("got %s\nwant view %s, in_event_loop %v, path %q, path_info %q, script_name %q, query %q",
					body, tt.view, tt.inLoop, tt.wantPath, tt.pathInfo, tt.script, tt.query)
			}
		})
	}

	t.Run("streaming", func(t *testing.T) {
		t.Parallel()
		resp, body := fetch(t, s, http.MethodGet, "/stream/?n=100", nil)
		mustStatus(t, s, resp, body, http.StatusOK)
		checkLines(t, body, 100)
	})

	t.Run("request body", func(t *testing.T) {
		t.Parallel()
		data := randomBytes(1<<20+5, 8)
		resp, body := fetch(t, s, http.MethodPost, "/echo/", bytes.NewReader(data))
		mustStatus(t, s, resp, body, http.StatusOK)
		checkEcho(t, s, body, data, "Django")
	})

	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		resp, body := fetch(t, s, http.MethodGet, "/nope/", nil)
		mustStatus(t, s, resp, body, http.StatusNotFound)
	})
}

// TestASGIShutdownClosesWebSockets: on SIGTERM, an HTTP request in progress
// finishes, then the open WebSocket is closed with 1001 (the client sees it,
// the app's receive() returns websocket.disconnect 1001) and whisk exits 0
// without waiting for its graceful timeout.
func TestASGIShutdownClosesWebSockets(t *testing.T) {
	t.Parallel()
	s := startApp(t, "asgi_app.py", "--processes", "1", "--graceful-timeout", "60s")
	mark := filepath.Join(t.TempDir(), "mark")
	c, _ := wsDial(t, s, "/ws?mark="+url.QueryEscape(mark), nil)
	wsWrite(t, s, c, websocket.MessageText, []byte("before"))
	if _, got := wsRead(t, s, c); string(got) != "before" {
		t.Fatalf("echo %q", got)
	}
	slow := make(chan int, 1)
	go func() {
		resp, err := client().Get("http://" + s.Addr + "/slow")
		if err != nil {
			slow <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		slow <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond) // the slow request is in the app
	start := time.Now()
	s.Signal(t, syscall.SIGTERM)
	wsExpectClose(t, s, c, websocket.StatusGoingAway, "server shutting down")
	if got := <-slow; got != http.StatusOK {
		t.Errorf("the request in progress at SIGTERM got %d, want 200%s", got, serverOutput(s))
	}
	if got := waitFile(t, s, mark, "websocket.disconnect"); got != "disconnect 1001" {
		t.Errorf("the app recorded %q, want %q", got, "disconnect 1001")
	}
	if code := s.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0%s", code, serverOutput(s))
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("whisk took %v to stop: the WebSocket held it until the graceful timeout", took)
	}
}
