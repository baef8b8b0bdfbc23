package e2e

// The HTTP/1.1 front as a client sees it on the wire: connection reuse,
// pipelining, chunked bodies both ways, bodiless responses, Expect, limits,
// request smuggling, slow and stalled clients, unix sockets.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

func TestHTTPFront(t *testing.T) {
	t.Parallel()
	s := startApp(t, "echo.py", "--processes", "1", "--threads", "4", "--max-body-size", "1M")

	t.Run("keep-alive", func(t *testing.T) {
		t.Parallel()
		c := dial(t, s)
		br := bufio.NewReader(c)
		for i := range 5 {
			send(t, c, fmt.Sprintf("GET /ka?i=%d HTTP/1.1\r\nHost: x\r\n\r\n", i))
			resp, body := readResponse(t, s, br, "GET")
			mustStatus(t, s, resp, body, http.StatusOK)
			if want := fmt.Sprintf("GET /ka?i=%d ", i); !strings.HasPrefix(string(body), want) || resp.Close {
				t.Fatalf("request %d on one connection: body %q, Connection: close %v; want %q... and a kept-alive connection", i, body, resp.Close, want)
			}
		}
	})

	t.Run("pipelining", func(t *testing.T) {
		t.Parallel()
		c := dial(t, s)
		send(t, c, "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"+
			"POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"+
			"GET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		raw := readAllRaw(t, c)
		resps, bodies, rest, err := parseResponses(raw, "GET", "POST", "GET")
		if err != nil || len(rest) > 0 {
			t.Fatalf("three pipelined requests: %v, %d bytes left over; raw %q%s", err, len(rest), truncate(raw), serverOutput(s))
		}
		for i, want := range []string{"GET /p1? body=0", "POST /p2? body=5", "GET /p3? body=0"} {
			if resps[i].StatusCode != 200 || !strings.HasPrefix(string(bodies[i]), want) {
				t.Errorf("response %d: status %d, body %q; want 200 and %q...", i+1, resps[i].StatusCode, bodies[i], want)
			}
		}
	})

	t.Run("chunked request body", func(t *testing.T) {
		t.Parallel()
		body := "hello, chunked world"
		sum := sha256.Sum256([]byte(body))
		raw := roundTripRaw(t, s, "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
			"5;ext=1\r\nhello\r\n"+"f\r\n, chunked world\r\n"+"0\r\nX-Trailer: t\r\n\r\n")
		resps, bodies, _, err := parseResponses(raw, "POST")
		if err != nil {
			t.Fatalf("%v; raw %q%s", err, raw, serverOutput(s))
		}
		want := fmt.Sprintf("POST /c? body=%d sha256=%s", len(body), hex.EncodeToString(sum[:]))
		if resps[0].StatusCode != 200 || !strings.HasPrefix(string(bodies[0]), want) {
			t.Errorf("status %d, body %q; want 200 and %q...", resps[0].StatusCode, bodies[0], want)
		}
	})

	t.Run("chunked response", func(t *testing.T) {
		t.Parallel()
		resp, body := fetch(t, s, http.MethodGet, "/stream?n=5", nil)
		mustStatus(t, s, resp, body, http.StatusOK)
		if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || resp.ContentLength != -1 {
			t.Errorf("Transfer-Encoding %q, Content-Length %d: a generator without Content-Length must be sent chunked", resp.TransferEncoding, resp.ContentLength)
		}
		if want := "line 0\nline 1\nline 2\nline 3\nline 4\n"; string(body) != want {
			t.Errorf("body %q, want %q", body, want)
		}
		raw := roundTripRaw(t, s, "GET /stream?n=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		if !bytes.HasSuffix(raw, []byte("\r\n0\r\n\r\n")) {
			t.Errorf("raw chunked response %q does not end with the last chunk", raw)
		}
	})

	t.Run("generator with Content-Length", func(t *testing.T) {
		t.Parallel()
		resp, body := fetch(t, s, http.MethodGet, "/gen-length", nil)
		mustStatus(t, s, resp, body, http.StatusOK)
		if resp.ContentLength != 10 || len(resp.TransferEncoding) != 0 || string(body) != "0123456789" {
			t.Errorf("Content-Length %d, Transfer-Encoding %q, body %q; want 10, none, 0123456789", resp.ContentLength, resp.TransferEncoding, body)
		}
	})

	// A response that must have no body, though the app returns one: the
	// next response on the connection parses only if no body byte leaked.
	for _, tc := range []struct {
		name, method, path string
		status             int
	}{
		{"HEAD of a list body", "HEAD", "/head", 200},
		{"HEAD of a chunked generator", "HEAD", "/stream?n=3", 200},
		{"HEAD of a generator with Content-Length", "HEAD", "/gen-length", 200},
		{"HEAD of a 204", "HEAD", "/status/204", 204},
		{"204 with a body from the app", "GET", "/status/204", 204},
		{"304 with a body from the app", "GET", "/status/304", 304},
		{"204 with a generator body from the app", "GET", "/status/204?gen", 204},
		{"304 with a generator body from the app", "GET", "/status/304?gen", 304},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, s)
			send(t, c, tc.method+" "+tc.path+" HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			raw := readAllRaw(t, c)
			resps, bodies, rest, err := parseResponses(raw, tc.method, "GET")
			if err != nil || len(rest) > 0 {
				t.Fatalf("%s %s then GET /next on one connection: %v, %d bytes left over; raw %q%s",
					tc.method, tc.path, err, len(rest), truncate(raw), serverOutput(s))
			}
			if resps[0].StatusCode != tc.status || len(bodies[0]) != 0 {
				t.Errorf("%s %s: status %d, %d body bytes; want %d and none", tc.method, tc.path, resps[0].StatusCode, len(bodies[0]), tc.status)
			}
			if te := resps[0].TransferEncoding; tc.status != 200 && len(te) > 0 {
				t.Errorf("%d response with Transfer-Encoding %q", tc.status, te)
			}
			if resps[1].StatusCode != 200 || !strings.HasPrefix(string(bodies[1]), "GET /next?") {
				t.Errorf("the next request on the connection: status %d, body %q", resps[1].StatusCode, bodies[1])
			}
			if raw := string(raw); strings.Contains(raw, "must not reach") {
				t.Errorf("the app's body went to the client: %q", raw)
			}
		})
	}

	t.Run("Expect: 100-continue", func(t *testing.T) {
		t.Parallel()
		c := dial(t, s)
		br := bufio.NewReader(c)
		send(t, c, "POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
		interim, err := http.ReadResponse(br, &http.Request{Method: "POST"})
		if err != nil {
			t.Fatalf("waiting for 100 Continue: %v%s", err, serverOutput(s))
		}
		if interim.StatusCode != http.StatusContinue {
			t.Fatalf("first response %d, want 100 Continue before the body is sent", interim.StatusCode)
		}
		send(t, c, "hello")
		resp, body := readResponse(t, s, br, "POST")
		mustStatus(t, s, resp, body, http.StatusOK)
		if !strings.HasPrefix(string(body), "POST /expect? body=5") {
			t.Errorf("body %q, want the app's echo of the 5-byte body", body)
		}
	})

	t.Run("Expect: 100-continue over the size limit", func(t *testing.T) {
		t.Parallel()
		c := dial(t, s)
		send(t, c, "POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\nExpect: 100-continue\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "POST"})
		if err != nil {
			t.Fatalf("reading the response: %v%s", err, serverOutput(s))
		}
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("first response %d, want 413 without a 100 Continue first", resp.StatusCode)
		}
	})

	t.Run("413 by Content-Length", func(t *testing.T) {
		t.Parallel()
		c := dial(t, s)
		send(t, c, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n"+strings.Repeat("x", 4096))
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "POST"})
		if err != nil {
			t.Fatalf("reading the response: %v%s", err, serverOutput(s))
		}
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413 for a body over --max-body-size", resp.StatusCode)
		}
	})

	t.Run("413 chunked", func(t *testing.T) {
		t.Parallel()
		c := dial(t, s)
		send(t, c, "POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
		go func() {
			// 2 MiB in 64 KiB chunks; the server may stop reading and
			// close once it has seen enough, so write errors are expected.
			chunk := fmt.Sprintf("10000\r\n%s\r\n", strings.Repeat("y", 1<<16))
			for range 32 {
				if _, err := io.WriteString(c, chunk); err != nil {
					return
				}
			}
			io.WriteString(c, "0\r\n\r\n")
		}()
		resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "POST"})
		if err != nil {
			t.Fatalf("reading the response: %v%s", err, serverOutput(s))
		}
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413 for a chunked body over --max-body-size", resp.StatusCode)
		}
	})

	t.Run("body at the size limit", func(t *testing.T) {
		t.Parallel()
		resp, body := fetch(t, s, http.MethodPost, "/limit", bytes.NewReader(make([]byte, 1<<20)))
		mustStatus(t, s, resp, body, http.StatusOK)
		if !strings.HasPrefix(string(body), "POST /limit? body=1048576 ") {
			t.Errorf("body %q: want the app to have read all 1 MiB", truncate(body))
		}
	})

	t.Run("100 parallel requests", func(t *testing.T) {
		t.Parallel()
		const n = 100
		c := &http.Client{Timeout: clientTimeout}
		defer c.CloseIdleConnections()
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				payload := strings.Repeat(fmt.Sprintf("request %d;", i), i*50)
				sum := sha256.Sum256([]byte(payload))
				resp, err := c.Post(fmt.Sprintf("%s/par?i=%d", s.URL, i), "text/plain", strings.NewReader(payload))
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				want := fmt.Sprintf("POST /par?i=%d body=%d sha256=%s ", i, len(payload), hex.EncodeToString(sum[:]))
				if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(b), want) {
					errs <- fmt.Errorf("request %d: status %d, body %q, error %v; want 200 and %q", i, resp.StatusCode, truncate(b), err, want)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("Date", func(t *testing.T) {
		t.Parallel()
		resp, body := fetch(t, s, http.MethodGet, "/date", nil)
		mustStatus(t, s, resp, body, http.StatusOK)
		if _, err := http.ParseTime(resp.Header.Get("Date")); err != nil {
			t.Errorf("Date header %q: %v", resp.Header.Get("Date"), err)
		}
	})

	t.Run("HTTP/1.1 without Host", func(t *testing.T) {
		t.Parallel()
		raw := roundTripRaw(t, s, "GET /nohost HTTP/1.1\r\nConnection: close\r\n\r\n")
		if !bytes.HasPrefix(raw, []byte("HTTP/1.1 400 ")) {
			t.Errorf("response %q, want 400 Bad Request", truncate(raw))
		}
	})

	t.Run("HTTP/1.0 without Host", func(t *testing.T) {
		t.Parallel()
		raw := roundTripRaw(t, s, "GET /old HTTP/1.0\r\n\r\n")
		resps, bodies, _, err := parseResponses(raw, "GET")
		if err != nil || resps[0].StatusCode != 200 || !strings.Contains(string(bodies[0]), "proto=HTTP/1.0") {
			t.Errorf("HTTP/1.0 request without Host: %v; raw %q; want 200", err, truncate(raw))
		}
	})

	t.Run("200 slowloris connections", func(t *testing.T) {
		t.Parallel()
		var conns []net.Conn
		for i := range 200 {
			c, err := net.DialTimeout("tcp", s.Addr, rawTimeout)
			if err != nil {
				t.Fatalf("slow connection %d: %v", i, err)
			}
			defer c.Close()
			conns = append(conns, c)
			// Half stop after the request line; the others after a partial header.
			head := "GET /slow HTTP/1.1\r\n"
			if i%2 == 1 {
				head += "Host: x\r\nX-Slow: aaa"
			}
			if _, err := io.WriteString(c, head); err != nil {
				t.Fatalf("slow connection %d: %v", i, err)
			}
		}
		// Some keep trickling one byte at a time while the normal client asks.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		defer wg.Wait()
		for _, c := range conns[:20] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
						if _, err := c.Write([]byte("a")); err != nil {
							return
						}
					}
				}
			}()
		}
		for i := range 3 {
			resp, body := fetch(t, s, http.MethodGet, fmt.Sprintf("/normal?i=%d", i), nil)
			mustStatus(t, s, resp, body, http.StatusOK)
		}
	})
}

// TestFramingRejected sends requests whose framing two HTTP parsers could
// read differently, each followed by a smuggled request. whisk must answer
// 400 and close, and the smuggled request must never reach the app.
func TestFramingRejected(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "paths.log")
	if err := os.WriteFile(log, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := startApp(t, "record_paths.py", "--processes", "1", "--threads", "2", "--env", "WHISK_TEST_PATH_LOG="+log)
	seen := func() string {
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	t.Run("cases", func(t *testing.T) {
		for _, tc := range []struct{ name, head, body string }{
			{"Content-Length with Transfer-Encoding",
				"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\n\r\n"},
			{"Transfer-Encoding with Content-Length",
				"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n", "0\r\n\r\n"},
			{"two different Content-Lengths",
				"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n", ""},
			{"Content-Length list",
				"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0, 44\r\n\r\n", ""},
			{"space before the colon of Transfer-Encoding",
				"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 0\r\n\r\n", "0\r\n\r\n"},
			{"obfuscated Transfer-Encoding value",
				"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", "0\r\n\r\n"},
			{"Transfer-Encoding chunked, identity",
				"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n", "0\r\n\r\n"},
			{"two Transfer-Encodings",
				"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n", "0\r\n\r\n"},
			{"obs-fold Transfer-Encoding",
				"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n", "0\r\n\r\n"},
			{"Transfer-Encoding in HTTP/1.0",
				"POST /a HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "0\r\n\r\n"},
			{"bare LF line ends",
				"GET /a HTTP/1.1\nHost: x\n\n", ""},
			{"bare LF in one field",
				"GET /a HTTP/1.1\r\nHost: x\nX-Y: z\r\n\r\n", ""},
			{"bare CR",
				"GET /a HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				marker := "/smuggled-" + strings.NewReplacer(" ", "-", ",", "", "/", "").Replace(tc.name)
				smuggled := "GET " + marker + " HTTP/1.1\r\nHost: x\r\n\r\n"
				c := dial(t, s)
				send(t, c, tc.head+tc.body+smuggled)
				raw := readAllRaw(t, c)
				if !bytes.HasPrefix(raw, []byte("HTTP/1.1 400 ")) {
					t.Errorf("response %q, want 400 Bad Request", truncate(raw))
				}
				if n := bytes.Count(raw, []byte("HTTP/1.")); n != 1 {
					t.Errorf("%d responses on the connection, want exactly one (the 400): %q", n, truncate(raw))
				}
				// The connection is closed: the app must never have seen the
				// smuggled request (nor the ambiguous one).
				if got := seen(); strings.Contains(got, marker) || strings.Contains(got, " /a\n") {
					t.Errorf("the app saw a request it must not have:\n%s", got)
				}
			})
		}
	})

	// The control: a plain request with a body, then a pipelined one, both reach the app.
	c := dial(t, s)
	send(t, c, "POST /control-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /control-2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	raw := readAllRaw(t, c)
	if n := bytes.Count(raw, []byte("HTTP/1.1 200 ")); n != 2 {
		t.Errorf("control: %d responses 200 to two valid pipelined requests, want 2: %q", n, truncate(raw))
	}
	if got := seen(); !strings.Contains(got, "POST /control-1\n") || !strings.Contains(got, "GET /control-2\n") {
		t.Errorf("control: the app's log lacks the two valid requests:\n%s", got)
	}
	if got := seen(); strings.Contains(got, "smuggled") {
		t.Errorf("the app saw a smuggled request:\n%s", got)
	}
}

// bigBlock is block i of big.py's response: the index as 8 digits, repeated.
func bigBlock(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("%08d", i)), (256<<10)/8)
}

// checkBig reads a big.py response of mb MiB from br and checks every byte.
func checkBig(t *testing.T, s *whisktest.Server, br *bufio.Reader, mb int) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatalf("reading the head: %v%s", err, serverOutput(s))
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	buf := make([]byte, 256<<10)
	for i := range mb * 4 {
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatalf("block %d of %d: %v%s", i, mb*4, err, serverOutput(s))
		}
		if !bytes.Equal(buf, bigBlock(i)) {
			t.Fatalf("block %d of the body is wrong", i)
		}
	}
	if n, _ := io.Copy(io.Discard, resp.Body); n != 0 {
		t.Errorf("%d bytes past the end", n)
	}
}

// TestSlowClient: a client that reads nothing while the app produces a big
// response must hold neither the worker thread nor its own response hostage
// to --timeout.
func TestSlowClient(t *testing.T) {
	t.Parallel()
	// One worker thread: a second request succeeds only if the first
	// request's thread was freed.
	const timeout = 2 * time.Second
	s := startApp(t, "big.py", "--processes", "1", "--threads", "1", "--timeout", timeout.String())
	c := dial(t, s)
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	send(t, c, "GET /big?mb=20 HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReaderSize(c, 64)
	// Wait until the response started (one small read), then stall.
	if _, err := br.Peek(12); err != nil {
		t.Fatalf("waiting for the response to start: %v%s", err, serverOutput(s))
	}
	stalled := time.Now()

	// With the thread free, this is answered at once; with the thread held
	// by the stalled client it waits --timeout for a slot and gets a 503.
	resp, body := fetch(t, s, http.MethodGet, "/small", nil)
	if resp.StatusCode != http.StatusOK || string(body) != "small\n" {
		t.Errorf("while a client stalls on a 20 MiB response, another request got %d %q; want 200 (the worker thread must be freed)%s",
			resp.StatusCode, body, serverOutput(s))
	}

	// Stay stalled past --timeout: it bounds the app's pauses, and this app
	// has long produced everything; a slow reader is no reason to cut it.
	time.Sleep(time.Until(stalled.Add(timeout + time.Second)))
	// The stalled client now reads everything, intact.
	checkBig(t, s, br, 20)
}

// TestSlowClientsMemory: ten clients stalled on 50 MiB responses must not
// make the front hold their responses in memory.
func TestSlowClientsMemory(t *testing.T) {
	t.Parallel()
	const clients, mb = 10, 50
	limitKB := 100 << 10
	if os.Getenv("WHISK_TEST_RACE") != "" {
		limitKB *= 4 // the race detector's shadow memory, not the front's buffers
	}
	progress := t.TempDir()
	s := startApp(t, "big.py", "--processes", "2", "--threads", "5", "--env", "WHISK_TEST_PROGRESS_DIR="+progress)
	pid := s.Cmd.Process.Pid

	var readers []*bufio.Reader
	var conns []net.Conn
	for i := range clients {
		c := dial(t, s)
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		send(t, c, fmt.Sprintf("GET /big?mb=%d&id=c%d HTTP/1.1\r\nHost: x\r\n\r\n", mb, i))
		conns = append(conns, c)
		readers = append(readers, bufio.NewReaderSize(c, 64))
	}
	for i, br := range readers {
		if _, err := br.Peek(12); err != nil {
			t.Fatalf("client %d: waiting for the response to start: %v%s", i, err, serverOutput(s))
		}
	}
	// Wait until every app has handed the front at least the response
	// window (1 MiB), so the front holds what it will hold.
	sent := func(i int) int {
		b, _ := os.ReadFile(filepath.Join(progress, fmt.Sprintf("c%d", i)))
		n, _ := strconv.Atoi(string(b))
		return n
	}
	if !poll(30*time.Second, func() bool {
		for i := range clients {
			if sent(i) < 1<<20 {
				return false
			}
		}
		return true
	}) {
		var got []string
		for i := range clients {
			got = append(got, strconv.Itoa(sent(i)))
		}
		t.Logf("bytes each app got out before stalling: %s (the front holds no more than the window per client)", strings.Join(got, ", "))
	}
	// Sample for a while longer: the peak must stay low throughout.
	for range 25 {
		if rss := statusKB(t, pid, "VmRSS"); rss > limitKB {
			t.Fatalf("whisk's RSS is %d MiB with %d clients stalled on %d MiB responses, want < %d MiB", rss>>10, clients, mb, limitKB>>10)
		}
		time.Sleep(40 * time.Millisecond)
	}
	hwm := statusKB(t, pid, "VmHWM")
	t.Logf("whisk's peak RSS with %d clients stalled on %d MiB responses: %d MiB", clients, mb, hwm>>10)
	if hwm > limitKB {
		t.Errorf("whisk's peak RSS was %d MiB with %d clients stalled on %d MiB responses, want < %d MiB", hwm>>10, clients, mb, limitKB>>10)
	}
	// Two of the stalled clients read their whole response, intact.
	for i := range 2 {
		checkBig(t, s, readers[i], mb)
	}
	for _, c := range conns {
		c.Close()
	}
	// And the server is fine after the others hang up.
	resp, body := fetch(t, s, http.MethodGet, "/small", nil)
	mustStatus(t, s, resp, body, http.StatusOK)
}

func TestUnixSocket(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "whisk-e2e-sock-") // short: sun_path holds 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "whisk.sock")
	s := whisktest.StartNoWait(t, whisktest.App(t, "echo.py"), "--python", whisktest.Python(t), "--processes", "1", "--threads", "1", "--bind", "unix:"+sock)
	if !poll(60*time.Second, func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("nothing accepts on %s%s", sock, serverOutput(s))
	}
	c := &http.Client{
		Timeout: clientTimeout,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	for i := range 3 { // several requests, reusing the connection
		resp, err := c.Post(fmt.Sprintf("http://whisk.sock/unix?i=%d", i), "text/plain", strings.NewReader("over a unix socket"))
		if err != nil {
			t.Fatalf("POST over %s: %v%s", sock, err, serverOutput(s))
		}
		resp, body := whisktest.ReadAll(t, resp)
		mustStatus(t, s, resp, body, http.StatusOK)
		if want := fmt.Sprintf("POST /unix?i=%d body=18 ", i); !strings.HasPrefix(string(body), want) || !strings.Contains(string(body), "remote= ") {
			t.Errorf("body %q, want %q... and an empty REMOTE_ADDR (a unix socket peer has none)", body, want)
		}
	}
	s.Signal(t, syscall.SIGTERM)
	if code := s.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0%s", code, serverOutput(s))
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the socket file %s is still there after whisk stopped (%v)", sock, err)
	}
}
