package h1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// ioTimeout bounds every client read and write of these tests: a server
// that neither answers nor closes shows up as a timeout, never a hang.
const ioTimeout = 3 * time.Second

// servedByHeader marks the responses of the http.Server that serves the
// hand-off listener.
const servedByHeader = "X-Served-By"

// loop is an h1.Server on loopback with an http.Server serving its
// HandOff listener, both running the same handler.
type loop struct {
	srv       *Server
	handOff   *http.Server
	addr      string
	served    atomic.Int64 // requests h1 served (the handler saw *response)
	handedOff atomic.Int64 // requests net/http served after a hand-off
	serveErr  chan error   // what srv.Serve returned
}

// startLoop starts h with an h1.Server (configured by the options, with a
// discarding Log) and an http.Server on its HandOff listener; t.Cleanup
// shuts both down and checks that Serve returned http.ErrServerClosed.
func startLoop(t *testing.T, h http.Handler, opts ...func(*Server)) *loop {
	t.Helper()
	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lp := &loop{addr: nl.Addr().String(), serveErr: make(chan error, 1)}
	handOffListener := NewListener(nl.Addr()) // served even when an option drops it
	lp.srv = &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, ok := w.(*response); ok {
				lp.served.Add(1)
			}
			h.ServeHTTP(w, r)
		}),
		HandOff: handOffListener,
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(lp.srv)
	}
	lp.handOff = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, ok := w.(*response); !ok {
				lp.handedOff.Add(1)
				w.Header().Set(servedByHeader, "net/http")
			}
			h.ServeHTTP(w, r)
		}),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	handOffErr := make(chan error, 1)
	go func() { handOffErr <- lp.handOff.Serve(handOffListener) }()
	go func() { lp.serveErr <- lp.srv.Serve(nl) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := lp.srv.Shutdown(ctx); err != nil {
			lp.srv.Close()
			t.Errorf("h1 Shutdown: %v", err)
		}
		if err := lp.handOff.Shutdown(ctx); err != nil {
			lp.handOff.Close()
		}
		for _, c := range []chan error{lp.serveErr, handOffErr} {
			select {
			case err, ok := <-c:
				if ok && !errors.Is(err, http.ErrServerClosed) {
					t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
				}
			case <-time.After(2 * time.Second):
				t.Error("Serve did not return after Shutdown")
			}
		}
	})
	return lp
}

// startPlain starts h with a plain http.Server on loopback, the reference
// the loop is compared with, and returns its address.
func startPlain(t *testing.T, h http.Handler) string {
	t.Helper()
	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0)}
	go hs.Serve(nl)
	t.Cleanup(func() { hs.Close() })
	return nl.Addr().String()
}

// client is a raw TCP connection to a server under test.
type client struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, br: bufio.NewReaderSize(nc, 64<<10)}
}

// write writes s in one write.
func (c *client) write(s string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// result is one exchange as a client sees it.
type result struct {
	Informational []string // the 1xx responses before the final one: "103 Link=..."
	Status        string
	Proto         string
	Header        http.Header // without Date
	HasDate       bool
	TE            []string // resp.TransferEncoding
	ContentLength int64
	Body          string
	BodyErr       bool // reading the body failed (the framing promised more)
	Next          string
	Probe         string // what the handler reported, for some cases
}

// read reads one response (after any 1xx) to a request with the given
// method, and its body. The header fields are recorded as sent (http.Header
// drops "Connection: close" from an HTTP/1.1 response). The error is the
// head's; a body error is recorded in BodyErr.
func (c *client) read(method string) (result, error) {
	var res result
	c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	for {
		head, err := peekHead(c.br)
		if err != nil {
			return res, err
		}
		fields := rawFields(head)
		resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
		if err != nil {
			return res, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			res.Informational = append(res.Informational, resp.Status+" "+headerString(fields))
			continue
		}
		res.Status, res.Proto = resp.Status, resp.Proto
		_, res.HasDate = fields["Date"]
		delete(fields, "Date")
		res.Header = fields
		res.TE, res.ContentLength = resp.TransferEncoding, resp.ContentLength
		body, err := io.ReadAll(resp.Body)
		res.Body, res.BodyErr = string(body), err != nil
		return res, nil
	}
}

// peekHead returns the response head at the front of br without
// consuming it.
func peekHead(br *bufio.Reader) ([]byte, error) {
	for {
		b, _ := br.Peek(br.Buffered())
		if i := bytes.Index(b, crlfcrlf); i >= 0 {
			return b[:i+4], nil
		}
		if _, err := br.Peek(len(b) + 1); err != nil { // waits for more
			return nil, err
		}
	}
}

// rawFields returns the header fields of a head, keyed by their names as
// sent.
func rawFields(head []byte) http.Header {
	h := http.Header{}
	lines := strings.Split(strings.TrimSuffix(string(head), "\r\n\r\n"), "\r\n")
	for _, line := range lines[1:] {
		name, value, _ := strings.Cut(line, ":")
		h[name] = append(h[name], strings.TrimLeft(value, " "))
	}
	return h
}

// mustRead is read, failing the test on a head error.
func (c *client) mustRead(method string) result {
	c.t.Helper()
	res, err := c.read(method)
	if err != nil {
		c.t.Fatalf("reading a response: %v", err)
	}
	return res
}

// next writes a follow-up request and reports whether it is answered
// ("kept"), the connection ends ("closed"), or nothing happens ("hung").
func (c *client) next(req string) string {
	c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	io.WriteString(c.nc, req) // the server may be gone: the read tells
	res, err := c.read(http.MethodGet)
	switch {
	case err == nil:
		return "kept: " + res.Status + " " + res.Body
	case isTimeout(err):
		return "hung"
	default:
		return "closed"
	}
}

// expectClosed checks that the server closes the connection, sending
// nothing, within ioTimeout.
func (c *client) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	b, err := c.br.ReadByte()
	switch {
	case err == nil:
		rest, _ := c.br.Peek(c.br.Buffered())
		c.t.Fatalf("read %q, want the connection closed", append([]byte{b}, rest...))
	case isTimeout(err):
		c.t.Fatal("the connection stayed open")
	}
}

func headerString(h http.Header) string {
	var b strings.Builder
	h.WriteSubset(&b, map[string]bool{"Date": true})
	return strings.TrimSpace(strings.ReplaceAll(b.String(), "\r\n", "; "))
}

const getSecond = "GET /second HTTP/1.1\r\nHost: x\r\n\r\n"

// echo answers "METHOD PATH len(body) sha256(body)[:8]", reading the body.
func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256(body)
	fmt.Fprintf(w, "%s %s %d %x", r.Method, r.URL.Path, len(body), sum[:4])
}

func echoLine(method, path string, body []byte) string {
	sum := sha256.Sum256(body)
	return fmt.Sprintf("%s %s %d %x", method, path, len(body), sum[:4])
}

// TestHandOff sends heads the loop does not serve and checks that net/http
// answers each exactly as a plain http.Server does, and that net/http then
// owns the connection for the requests that follow.
func TestHandOff(t *testing.T) {
	bigHead := "GET /big HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 9000) + "\r\n\r\n"
	cases := []struct {
		name    string
		req     string
		status  int
		body    string // when not empty, the expected body
		handler bool   // the handler runs (under net/http)
		kept    bool   // a later request on the connection is answered
	}{
		{"chunked upload", "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
			200, echoLine("POST", "/up", []byte("hello world")), true, true},
		{"expect 100-continue", "POST /exp HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
			200, echoLine("POST", "/exp", []byte("hello")), true, true},
		{"upgrade", "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
			200, echoLine("GET", "/ws", nil), true, true},
		{"absolute-form target", "GET http://x/abs?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
			200, echoLine("GET", "/abs", nil), true, true},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", 400, "", false, false},
		{"malformed header line", "GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 400, "", false, false},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "", false, false},
		{"duplicate host", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, "", false, false},
		{"same content-length twice", "POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
			200, echoLine("POST", "/cl", []byte("abc")), true, true},
		{"bad content-length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400, "", false, false},
		{"HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "", false, false},
		{"head over 8 KiB", bigHead, 200, echoLine("GET", "/big", nil), true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := func() result {
				c := dial(t, startPlain(t, http.HandlerFunc(echo)))
				c.write(tc.req)
				return c.mustRead("POST")
			}()
			if got := want.Status[:3]; got != strconv.Itoa(tc.status) {
				t.Fatalf("the test is wrong: net/http answers %s, want %d", want.Status, tc.status)
			}

			lp := startLoop(t, http.HandlerFunc(echo))
			c := dial(t, lp.addr)
			c.write(tc.req)
			got := c.mustRead("POST")
			if got.Status != want.Status || got.Body != want.Body {
				t.Errorf("answered %q %q, net/http %q %q", got.Status, got.Body, want.Status, want.Body)
			}
			if tc.body != "" && got.Body != tc.body {
				t.Errorf("body %q, want %q", got.Body, tc.body)
			}
			if lp.served.Load() != 0 {
				t.Errorf("h1 served %d requests, want none", lp.served.Load())
			}
			if tc.handler {
				if got.Header.Get(servedByHeader) != "net/http" || lp.handedOff.Load() != 1 {
					t.Errorf("%s = %q, net/http served %d requests; want the hand-off server", servedByHeader, got.Header.Get(servedByHeader), lp.handedOff.Load())
				}
			}
			next := c.next(getSecond)
			if tc.kept {
				if want := "kept: 200 OK " + echoLine("GET", "/second", nil); next != want {
					t.Errorf("the next request: %s, want %s", next, want)
				}
				if lp.served.Load() != 0 || lp.handedOff.Load() != 2 {
					t.Errorf("h1 served %d, net/http %d; want net/http to keep the connection", lp.served.Load(), lp.handedOff.Load())
				}
			} else if next != "closed" {
				t.Errorf("the next request: %s, want the connection closed", next)
			}
		})
	}
}

// TestHandOffPipelined checks that the bytes after a handed-off head (its
// body, the requests after it) reach net/http intact, and that a
// connection h1 served first is handed over at a message boundary.
func TestHandOffPipelined(t *testing.T) {
	body := make([]byte, 100<<10)
	for i := range body {
		body[i] = byte(i*7 + i>>8)
	}
	lp := startLoop(t, http.HandlerFunc(echo))

	t.Run("big head then body then request", func(t *testing.T) {
		c := dial(t, lp.addr)
		go func() {
			// The head fills the loop's buffer; 100 KiB follow it.
			c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
			c.nc.Write([]byte("POST /big HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 10000) +
				"\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body) + getSecond))
		}()
		if got, want := c.mustRead("POST"), echoLine("POST", "/big", body); got.Body != want || got.Header.Get(servedByHeader) != "net/http" {
			t.Errorf("got %q (%s %q), want %q from net/http", got.Body, servedByHeader, got.Header.Get(servedByHeader), want)
		}
		if got := c.mustRead("GET"); got.Body != echoLine("GET", "/second", nil) || got.Header.Get(servedByHeader) != "net/http" {
			t.Errorf("the pipelined request: %q (%s %q)", got.Body, servedByHeader, got.Header.Get(servedByHeader))
		}
	})

	t.Run("served, then chunked, then plain", func(t *testing.T) {
		before := lp.served.Load()
		c := dial(t, lp.addr)
		c.write("GET /first HTTP/1.1\r\nHost: x\r\n\r\n" +
			"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
			"GET /third HTTP/1.1\r\nHost: x\r\n\r\n")
		first := c.mustRead("GET")
		if first.Body != echoLine("GET", "/first", nil) || first.Header.Get(servedByHeader) != "" {
			t.Errorf("first: %q (%s %q), want h1's answer", first.Body, servedByHeader, first.Header.Get(servedByHeader))
		}
		for _, want := range []string{echoLine("POST", "/chunked", []byte("abc")), echoLine("GET", "/third", nil)} {
			if got := c.mustRead("GET"); got.Body != want || got.Header.Get(servedByHeader) != "net/http" {
				t.Errorf("got %q (%s %q), want %q from net/http", got.Body, servedByHeader, got.Header.Get(servedByHeader), want)
			}
		}
		if n := lp.served.Load() - before; n != 1 {
			t.Errorf("h1 served %d requests, want 1", n)
		}
	})

	t.Run("body split across reads", func(t *testing.T) {
		// The hand-off comes with part of the next head already read.
		c := dial(t, lp.addr)
		c.write("GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nTransfer-Enc")
		if got := c.mustRead("GET"); got.Body != echoLine("GET", "/a", nil) {
			t.Errorf("first: %q", got.Body)
		}
		c.write("oding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
		if got := c.mustRead("POST"); got.Body != echoLine("POST", "/b", []byte("hi")) || got.Header.Get(servedByHeader) != "net/http" {
			t.Errorf("second: %q (%s %q)", got.Body, servedByHeader, got.Header.Get(servedByHeader))
		}
	})
}

// TestBareLFHead sends a head with bare LF line endings, which net/http
// accepts (whisk's framing guard rejects them before the loop sees them).
func TestBareLFHead(t *testing.T) {
	const req = "GET /lf HTTP/1.1\nHost: x\n\n"
	plain := dial(t, startPlain(t, http.HandlerFunc(echo)))
	plain.write(req)
	want := plain.mustRead("GET")

	lp := startLoop(t, http.HandlerFunc(echo))
	c := dial(t, lp.addr)
	c.write(req)
	got, err := c.read("GET")
	if err != nil {
		t.Fatalf("no answer (%v); net/http answers %s %q", err, want.Status, want.Body)
	}
	if got.Status != want.Status || got.Body != want.Body {
		t.Errorf("answered %s %q, net/http %s %q", got.Status, got.Body, want.Status, want.Body)
	}
}

// TestPipelining writes several requests in one write and checks they are
// answered in order on one connection, by the loop.
func TestPipelining(t *testing.T) {
	lp := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ignore" {
			io.WriteString(w, "ignored") // the body is skipped after
			return
		}
		echo(w, r)
	}))
	c := dial(t, lp.addr)
	c.write("GET /one HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\nGET /not-a-request\r\n" +
		"GET /three?x=1 HTTP/1.1\r\nHost: x\r\n\r\n" +
		"HEAD /four HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /five HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	for _, want := range []struct{ method, body string }{
		{"GET", echoLine("GET", "/one", nil)},
		{"POST", echoLine("POST", "/two", []byte("hello"))},
		{"POST", "ignored"},
		{"GET", echoLine("GET", "/three", nil)},
		{"HEAD", ""},
		{"GET", echoLine("GET", "/five", nil)},
	} {
		got := c.mustRead(want.method)
		if got.Status != "200 OK" || got.Body != want.body {
			t.Errorf("%s: %s %q, want 200 %q", want.method, got.Status, got.Body, want.body)
		}
	}
	c.expectClosed()
	if n := lp.served.Load(); n != 6 {
		t.Errorf("h1 served %d requests, want 6", n)
	}
}

// TestClientDisconnect checks that a long request's context is canceled
// when its client goes away, with or without a request body.
func TestClientDisconnect(t *testing.T) {
	for _, tc := range []struct{ name, req string }{
		{"no body", "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"body read", "POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started := make(chan struct{})
			outcome := make(chan string, 1)
			lp := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				close(started)
				select {
				case <-r.Context().Done():
					outcome <- "canceled: " + context.Cause(r.Context()).Error()
				case <-time.After(3 * time.Second):
					outcome <- "not canceled"
				}
			}))
			c := dial(t, lp.addr)
			c.write(tc.req)
			<-started
			time.Sleep(2 * ArmAfter) // a request that runs on
			c.nc.Close()
			select {
			case got := <-outcome:
				if !strings.HasPrefix(got, "canceled") {
					t.Errorf("the handler's context: %s, want canceled when the client left", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the handler did not return")
			}
		})
	}
}

// TestArmedReadKeepsByte checks that the byte the background read takes
// from the next request, sent while the handler still runs, is kept.
func TestArmedReadKeepsByte(t *testing.T) {
	started := make(chan struct{}, 2)
	var canceled atomic.Bool
	lp := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			select {
			case <-r.Context().Done():
				canceled.Store(true)
			case <-time.After(150 * time.Millisecond):
			}
		}
		echo(w, r)
	}))
	c := dial(t, lp.addr)
	for range 2 {
		c.write("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
		<-started
		time.Sleep(4 * ArmAfter) // the watcher has armed the read by now
		c.write("GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
		for _, want := range []string{echoLine("GET", "/slow", nil), echoLine("GET", "/next", nil)} {
			if got := c.mustRead("GET"); got.Status != "200 OK" || got.Body != want {
				t.Fatalf("got %s %q, want 200 %q", got.Status, got.Body, want)
			}
		}
	}
	if canceled.Load() {
		t.Error("the slow request's context was canceled while its client stayed")
	}
	if n := lp.served.Load(); n != 4 {
		t.Errorf("h1 served %d requests, want 4", n)
	}
}

// TestShutdown checks that Shutdown closes idle connections, lets a busy
// request finish with "Connection: close", returns nil, makes Serve return
// http.ErrServerClosed, and that Serve after Shutdown returns at once.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	lp := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			started <- struct{}{}
			<-release
		}
		echo(w, r)
	}))
	idle := dial(t, lp.addr)
	idle.write("GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := idle.mustRead("GET"); got.Status != "200 OK" || got.Header.Get("Connection") != "" {
		t.Fatalf("before Shutdown: %s Connection=%q", got.Status, got.Header.Get("Connection"))
	}
	busy := dial(t, lp.addr)
	busy.write("GET /busy HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		shutdown <- lp.srv.Shutdown(ctx)
	}()
	idle.expectClosed()
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v while a request runs", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	got := busy.mustRead("GET")
	if got.Status != "200 OK" || got.Body != echoLine("GET", "/busy", nil) || got.Header.Get("Connection") != "close" {
		t.Errorf("the busy request: %s %q Connection=%q, want 200 with Connection: close", got.Status, got.Body, got.Header.Get("Connection"))
	}
	busy.expectClosed()
	select {
	case err := <-shutdown:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	select {
	case err := <-lp.serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
		close(lp.serveErr) // for the cleanup
	case <-time.After(time.Second):
		t.Fatal("Serve did not return")
	}
	if nc, err := net.DialTimeout("tcp", lp.addr, time.Second); err == nil {
		nc.Close()
		t.Error("the listener still accepts connections after Shutdown")
	}
	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.srv.Serve(nl); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v, want http.ErrServerClosed", err)
	}
	if _, err := nl.Accept(); err == nil {
		t.Error("Serve after Shutdown left its listener open")
	}
}

// TestShutdownContext checks that Shutdown returns the context's error
// when a request outlives it, and that Close then ends the connection.
func TestShutdownContext(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	lp := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	c := dial(t, lp.addr)
	c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := lp.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	lp.srv.Close()
	c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := c.br.ReadByte(); err == nil || isTimeout(err) {
		t.Errorf("after Close: read %v, want the connection closed", err)
	}
}

// TestPanic checks that a handler's panic closes its connection without
// a response, is logged (unless it is http.ErrAbortHandler), and leaves
// the server serving.
func TestPanic(t *testing.T) {
	for _, tc := range []struct {
		name   string
		value  any
		logged bool
	}{
		{"panic", "boom in handler", true},
		{"ErrAbortHandler", http.ErrAbortHandler, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logBuf whisktest.SyncBuffer
			lp := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/panic" {
					io.WriteString(w, "partial")
					panic(tc.value)
				}
				echo(w, r)
			}), func(s *Server) { s.Log = slog.New(slog.NewTextHandler(&logBuf, nil)) })
			c := dial(t, lp.addr)
			c.write("GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
			c.expectClosed()

			c2 := dial(t, lp.addr)
			c2.write("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
			if got := c2.mustRead("GET"); got.Body != echoLine("GET", "/after", nil) {
				t.Errorf("a new connection after the panic: %s %q", got.Status, got.Body)
			}
			logged := strings.Contains(logBuf.String(), "boom in handler")
			if tc.logged != logged || !tc.logged && logBuf.String() != "" {
				t.Errorf("panic logged: %v, want %v; log:\n%s", logged, tc.logged, logBuf.String())
			}
		})
	}
}

// TestTimeouts checks IdleTimeout and ReadHeaderTimeout.
func TestTimeouts(t *testing.T) {
	const timeout = 200 * time.Millisecond
	lp := startLoop(t, http.HandlerFunc(echo), func(s *Server) {
		s.IdleTimeout = timeout
		s.ReadHeaderTimeout = timeout
	})
	for _, tc := range []struct {
		name  string
		first string // a request answered first
		then  string // bytes sent then
	}{
		{"idle keep-alive connection", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", ""},
		{"no request at all", "", ""},
		{"half a head", "", "GET / HTTP/1.1\r\nHost: x\r\nX-Part"},
		{"half a head after a request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET / HTTP/1.1\r\nHo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, lp.addr)
			if tc.first != "" {
				c.write(tc.first)
				if got := c.mustRead("GET"); got.Status != "200 OK" {
					t.Fatalf("first request: %s", got.Status)
				}
			}
			if tc.then != "" {
				c.write(tc.then)
			}
			start := time.Now()
			c.expectClosed()
			if d := time.Since(start); d < timeout/2 {
				t.Errorf("closed after %v, before the %v timeout", d, timeout)
			}
		})
	}

	t.Run("idle longer than ReadHeaderTimeout", func(t *testing.T) {
		// IdleTimeout, not ReadHeaderTimeout, bounds the wait for the
		// next request; ReadHeaderTimeout then bounds its head.
		lp := startLoop(t, http.HandlerFunc(echo), func(s *Server) {
			s.IdleTimeout = 5 * timeout
			s.ReadHeaderTimeout = timeout
		})
		c := dial(t, lp.addr)
		c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		c.mustRead("GET")
		time.Sleep(2 * timeout)
		if got := c.next(getSecond); got != "kept: 200 OK "+echoLine("GET", "/second", nil) {
			t.Errorf("a request after %v idle: %s", 2*timeout, got)
		}
		c.write("GET /third HTTP/1.1\r\n")
		time.Sleep(2 * timeout)
		if got := c.next("Host: x\r\n\r\n"); got != "closed" {
			t.Errorf("a head that took %v: %s, want the connection closed", 2*timeout, got)
		}
	})

	t.Run("slow but in time", func(t *testing.T) {
		// Each part comes within the timeout; the head as a whole too.
		c := dial(t, lp.addr)
		c.write("GET /slow HTTP/1.1\r\n")
		time.Sleep(timeout / 4)
		c.write("Host: x\r\n\r\n")
		if got := c.mustRead("GET"); got.Body != echoLine("GET", "/slow", nil) {
			t.Errorf("got %s %q", got.Status, got.Body)
		}
		time.Sleep(timeout / 2)
		if got := c.next(getSecond); got != "kept: 200 OK "+echoLine("GET", "/second", nil) {
			t.Errorf("a request within IdleTimeout: %s", got)
		}
	})
}

// TestHandlerRunsPastHeaderTimeout checks that the head's deadline bounds
// neither a handler that runs longer than ReadHeaderTimeout nor a body
// that comes later.
func TestHandlerRunsPastHeaderTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	lp := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/sleep" {
			time.Sleep(2 * timeout)
		}
		echo(w, r)
	}), func(s *Server) { s.ReadHeaderTimeout = timeout })

	t.Run("slow handler", func(t *testing.T) {
		c := dial(t, lp.addr)
		for range 2 {
			c.write("GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
			if got := c.mustRead("GET"); got.Body != echoLine("GET", "/sleep", nil) {
				t.Fatalf("got %s %q", got.Status, got.Body)
			}
		}
	})

	t.Run("slow handler, pipelined head", func(t *testing.T) {
		c := dial(t, lp.addr)
		c.write("GET /sleep HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
		for _, want := range []string{echoLine("GET", "/sleep", nil), echoLine("GET", "/b", nil)} {
			if got := c.mustRead("GET"); got.Body != want {
				t.Fatalf("got %s %q, want %q", got.Status, got.Body, want)
			}
		}
	})

	t.Run("late body of a pipelined head", func(t *testing.T) {
		c := dial(t, lp.addr)
		c.write("GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
		if got := c.mustRead("GET"); got.Body != echoLine("GET", "/a", nil) {
			t.Fatalf("got %s %q", got.Status, got.Body)
		}
		time.Sleep(timeout + timeout/2)
		c.write("abc")
		if got := c.mustRead("POST"); got.Body != echoLine("POST", "/b", []byte("abc")) {
			t.Errorf("got %s %q", got.Status, got.Body)
		}
	})
}

// TestConnContext checks the request context: ConnContext's value, the
// local address, and the remote address.
func TestConnContext(t *testing.T) {
	type key struct{}
	got := make(chan string, 1)
	lp := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		v, _ := r.Context().Value(key{}).(string)
		got <- fmt.Sprintf("%s|%v|%s", v, la, r.RemoteAddr)
	}), func(s *Server) {
		s.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, key{}, "from "+c.RemoteAddr().String())
		}
	})
	c := dial(t, lp.addr)
	c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.mustRead("GET")
	local := c.nc.LocalAddr().String()
	if want := "from " + local + "|" + lp.addr + "|" + local; <-got != want {
		t.Errorf("want %q", want)
	}
}

// TestListener checks the HandOff listener on its own.
func TestListener(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1234}
	l := NewListener(addr)
	if l.Addr() != addr {
		t.Errorf("Addr() = %v", l.Addr())
	}
	a, b := net.Pipe()
	defer b.Close()
	go l.put(a)
	got, err := l.Accept()
	if err != nil || got != a {
		t.Fatalf("Accept() = %v, %v", got, err)
	}
	l.Close()
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	c, d := net.Pipe()
	defer d.Close()
	l.put(c) // closes c rather than blocking
	if _, err := c.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("a connection put after Close: write %v, want it closed", err)
	}
}

// TestParseRequest checks the heads parseRequest takes and those it leaves
// to net/http.
func TestParseRequest(t *testing.T) {
	type want struct {
		Method, Path, RawQuery, Host, RequestURI, Proto string
		Header                                          http.Header
		ContentLength                                   int64
		Close                                           bool
	}
	accepted := []struct {
		head string
		want want
	}{
		{"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\naccept: */*\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n",
			want{"GET", "/a/b", "x=1&y=2", "example.com", "/a/b?x=1&y=2", "HTTP/1.1",
				http.Header{"Accept": {"*/*"}, "X-Multi": {"1", "2"}}, 0, false}},
		{"POST /p HTTP/1.1\r\nhost: h:8080\r\ncontent-length: 12\r\nContent-Type: text/plain\r\n\r\n",
			want{"POST", "/p", "", "h:8080", "/p", "HTTP/1.1",
				http.Header{"Content-Length": {"12"}, "Content-Type": {"text/plain"}}, 12, false}},
		{"GET / HTTP/1.0\r\n\r\n",
			want{"GET", "/", "", "", "/", "HTTP/1.0", http.Header{}, 0, true}},
		{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			want{"GET", "/", "", "", "/", "HTTP/1.0", http.Header{"Connection": {"keep-alive"}}, 0, false}},
		{"GET / HTTP/1.0\r\nHost: h\r\nConnection: Keep-Alive, close\r\n\r\n",
			want{"GET", "/", "", "h", "/", "HTTP/1.0", http.Header{"Connection": {"Keep-Alive, close"}}, 0, true}},
		{"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
			want{"GET", "/", "", "h", "/", "HTTP/1.1", http.Header{"Connection": {"close"}}, 0, true}},
		{"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
			want{"GET", "/", "", "h", "/", "HTTP/1.1", http.Header{"Connection": {"keep-alive"}}, 0, false}},
		{"DELETE /a%20b HTTP/1.1\r\nHost: h\r\nX-Pad:  \t spaced value \t\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n",
			want{"DELETE", "/a b", "", "h", "/a%20b", "HTTP/1.1",
				http.Header{"X-Pad": {"spaced value"}, "X-Empty": {""}, "Content-Length": {"0"}}, 0, false}},
		{"PURGE /x HTTP/1.1\r\nHost:\r\n\r\n",
			want{"PURGE", "/x", "", "", "/x", "HTTP/1.1", http.Header{}, 0, false}},
	}
	for _, tc := range accepted {
		r, err := parseRequest([]byte(tc.head))
		if err != nil {
			t.Errorf("parseRequest(%q): %v", tc.head, err)
			continue
		}
		got := want{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.RequestURI, r.Proto, r.Header, r.ContentLength, r.Close}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseRequest(%q):\n got %+v\nwant %+v", tc.head, got, tc.want)
		}
		if r.ProtoMajor != 1 || r.ProtoMinor != int(tc.want.Proto[7]-'0') || r.Body != http.NoBody {
			t.Errorf("parseRequest(%q): HTTP/%d.%d, Body %T", tc.head, r.ProtoMajor, r.ProtoMinor, r.Body)
		}
		if _, ok := r.Header["Host"]; ok {
			t.Errorf("parseRequest(%q): Host left in Header", tc.head)
		}
	}

	rejected := []struct{ name, head string }{
		{"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"},
		{"invalid Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{"missing Host in 1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n"},
		{"duplicate Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"},
		{"Content-Length +5", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n"},
		{"Content-Length -1", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"},
		{"Content-Length 1 2", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n"},
		{"Content-Length empty", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n"},
		{"Content-Length hex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n"},
		{"Content-Length overflow", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n"},
		{"Transfer-Encoding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"Transfer-Encoding identity", "POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: identity\r\n\r\n"},
		{"Expect", "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"},
		{"Upgrade", "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"},
		{"Connection upgrade", "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n\r\n"},
		{"HTTP2-Settings", "GET / HTTP/1.1\r\nHost: h\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n"},
		{"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n"},
		{"no colon", "GET / HTTP/1.1\r\nHost: h\r\nGarbage\r\n\r\n"},
		{"empty name", "GET / HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n"},
		{"control char in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n"},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n"},
		{"bare LF in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\nX-B: b\r\n\r\n"},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n"},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n"},
		{"lower-case version", "GET / http/1.1\r\nHost: h\r\n\r\n"},
		{"HTTP/0.9", "GET /\r\n\r\n"},
		{"asterisk target", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"absolute target", "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"CONNECT", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"},
		{"CONNECT origin-form", "CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"bad method", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"empty method", " / HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"trailing space", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n"},
		{"control char in target", "GET /a\x7fb HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"not a whole head", "GET / HTTP/1.1\r\nHost: h\r\n"},
	}
	for _, tc := range rejected {
		if r, err := parseRequest([]byte(tc.head)); !errors.Is(err, errHandOff) {
			t.Errorf("%s: parseRequest(%q) = %v, %v; want errHandOff", tc.name, tc.head, r, err)
		}
	}
}

// TestHandOffNil checks a Server without a HandOff listener: a head it
// does not serve closes the connection.
func TestHandOffNil(t *testing.T) {
	lp := startLoop(t, http.HandlerFunc(echo), func(s *Server) { s.HandOff = nil })
	c := dial(t, lp.addr)
	c.write("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	c.expectClosed()
	if lp.served.Load() != 0 || lp.handedOff.Load() != 0 {
		t.Errorf("served %d, handed off %d, want neither", lp.served.Load(), lp.handedOff.Load())
	}
}

// TestLargeUploadIgnored checks a client that sends a large body the
// handler ignores: it gets the whole response (with Connection: close),
// as from net/http, rather than a reset.
func TestLargeUploadIgnored(t *testing.T) {
	body := strings.Repeat("u", 4<<20)
	req := "POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ignored")
	})
	run := func(addr string) (result, error) {
		c := dial(t, addr)
		go func() {
			// A client that writes its whole request before reading, as
			// most do; the server stops reading part way.
			c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
			io.WriteString(c.nc, req)
		}()
		return c.read("POST")
	}
	want, err := run(startPlain(t, h))
	if err != nil {
		t.Fatalf("net/http: %v", err)
	}
	lp := startLoop(t, h)
	got, err := run(lp.addr)
	if err != nil {
		t.Fatalf("h1: %v; net/http answered %s %q", err, want.Status, want.Body)
	}
	if got.Status != want.Status || got.Body != want.Body || got.Header.Get("Connection") != "close" {
		t.Errorf("h1: %s %q Connection=%q; net/http %s %q", got.Status, got.Body, got.Header.Get("Connection"), want.Status, want.Body)
	}
}

// TestDeadlinesReset checks that the read and write deadlines a handler
// sets through http.ResponseController do not outlive its request, as
// under net/http, which clears them after each request.
func TestDeadlinesReset(t *testing.T) {
	const d = 50 * time.Millisecond
	for _, tc := range []struct {
		name     string
		set      func(rc *http.ResponseController) error
		timeouts bool // the server has ReadHeaderTimeout and IdleTimeout
	}{
		{name: "write deadline", set: func(rc *http.ResponseController) error {
			return rc.SetWriteDeadline(time.Now().Add(d))
		}},
		{name: "write deadline, with timeouts", timeouts: true, set: func(rc *http.ResponseController) error {
			return rc.SetWriteDeadline(time.Now().Add(d))
		}},
		{name: "read deadline", set: func(rc *http.ResponseController) error {
			return rc.SetReadDeadline(time.Now().Add(d))
		}},
		{name: "read deadline, with timeouts", timeouts: true, set: func(rc *http.ResponseController) error {
			return rc.SetReadDeadline(time.Now().Add(d))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/set" {
					if err := tc.set(http.NewResponseController(w)); err != nil {
						http.Error(w, err.Error(), 500)
						return
					}
				}
				echo(w, r)
			})
			var timeouts func(*Server)
			if tc.timeouts {
				timeouts = func(s *Server) { s.ReadHeaderTimeout, s.IdleTimeout = 2*time.Second, 2*time.Second }
			}
			run := func(addr string) string {
				c := dial(t, addr)
				c.write("GET /set HTTP/1.1\r\nHost: x\r\n\r\n")
				if got := c.mustRead("GET"); got.Body != echoLine("GET", "/set", nil) {
					t.Fatalf("first: %s %q", got.Status, got.Body)
				}
				time.Sleep(3 * d)
				return c.next(getSecond)
			}
			want := run(startPlain(t, h))
			if want != "kept: 200 OK "+echoLine("GET", "/second", nil) {
				t.Fatalf("the test is wrong: net/http: %s", want)
			}
			opts := []func(*Server){}
			if timeouts != nil {
				opts = append(opts, timeouts)
			}
			if got := run(startLoop(t, h, opts...).addr); got != want {
				t.Errorf("the next request after %v: %s; net/http: %s", 3*d, got, want)
			}
		})
	}
}

// TestHandOffHijack checks a WebSocket-like upgrade: net/http gets the
// connection, the handler hijacks it, and the bytes the client sent right
// after the head reach it.
func TestHandOffHijack(t *testing.T) {
	lp := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "hijack: "+err.Error(), http.StatusInternalServerError)
			return
		}
		defer nc.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		nc.SetDeadline(time.Now().Add(ioTimeout))
		io.Copy(nc, brw) // echo until the client closes
	}))
	c := dial(t, lp.addr)
	c.write("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping ")
	c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %s, want 101", resp.Status)
	}
	c.write("pong")
	got := make([]byte, len("ping pong"))
	if _, err := io.ReadFull(c.br, got); err != nil || string(got) != "ping pong" {
		t.Errorf("echoed %q, %v; want %q", got, err, "ping pong")
	}
	if lp.served.Load() != 0 || lp.handedOff.Load() != 1 {
		t.Errorf("h1 served %d, net/http %d; want the upgrade handed off", lp.served.Load(), lp.handedOff.Load())
	}
}

// TestHalfClose compares a client that shuts its write side after its
// request (as some HTTP/1.0 clients do): the handler still answers, its
// context is canceled once the request runs long enough to be watched, as
// under net/http.
func TestHalfClose(t *testing.T) {
	canceled := make(chan bool, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(150 * time.Millisecond):
		}
		canceled <- r.Context().Err() != nil
		io.WriteString(w, "done")
	})
	run := func(addr string) string {
		c := dial(t, addr)
		c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		res, err := c.read("GET")
		if err != nil {
			return "no response: " + err.Error()
		}
		return fmt.Sprintf("%s %q canceled=%v", res.Status, res.Body, <-canceled)
	}
	want := run(startPlain(t, h))
	if got := run(startLoop(t, h).addr); got != want {
		t.Errorf("h1: %s; net/http: %s", got, want)
	}
}

// TestConcurrent runs many connections at once, mixing requests the loop
// serves, slow ones the watcher arms, and hand-offs, for the race
// detector.
func TestConcurrent(t *testing.T) {
	lp := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(2 * ArmAfter)
		}
		echo(w, r)
	}))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nc, err := net.DialTimeout("tcp", lp.addr, ioTimeout)
			if err != nil {
				errs <- err
				return
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(2 * ioTimeout))
			br := bufio.NewReader(nc)
			for j := range 12 {
				var req, want string
				body := strings.Repeat(strconv.Itoa(i), j)
				switch {
				case j == 10 && i%2 == 0: // handed off; the rest is net/http's
					req = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
						strconv.FormatInt(int64(len(body)), 16) + "\r\n" + body + "\r\n0\r\n\r\n"
					want = echoLine("POST", "/c", []byte(body))
				case j%3 == 0:
					req, want = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", echoLine("GET", "/slow", nil)
				default:
					req = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
					want = echoLine("POST", "/p", []byte(body))
				}
				if _, err := io.WriteString(nc, req); err != nil {
					errs <- err
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- fmt.Errorf("conn %d request %d: %w", i, j, err)
					return
				}
				got, err := io.ReadAll(resp.Body)
				if err != nil || string(got) != want {
					errs <- fmt.Errorf("conn %d request %d: %q, %v; want %q", i, j, got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := lp.handedOff.Load(); n != 8*2 {
		t.Errorf("net/http served %d requests, want 16", n)
	}
}
