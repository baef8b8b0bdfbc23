package framing

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// seenReq is a request as the handler saw it.
type seenReq struct {
	Method, URI, Body string
	Trailer           string // "k=v" pairs of the trailer, sorted
	BodyErr           bool   // reading the body failed
}

// recorder is an http.Handler that records every request and answers
// "METHOD URI len(body)", or 400 when reading the body fails (as whisk's app
// handler does). It also records OnReject calls.
type recorder struct {
	mu      sync.Mutex
	reqs    []seenReq
	rejects []string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/hijack" {
		rec.hijack(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	s := seenReq{Method: r.Method, URI: r.RequestURI, Body: string(body), BodyErr: err != nil}
	var tr []string
	for k, v := range r.Trailer {
		tr = append(tr, k+"="+strings.Join(v, ","))
	}
	slices.Sort(tr)
	s.Trailer = strings.Join(tr, " ")
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, s)
	rec.mu.Unlock()
	if err != nil {
		http.Error(w, "bad request body", http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "%s %s %d", r.Method, r.RequestURI, len(body))
}

// hijack switches to a raw echo protocol, as a WebSocket handler would.
func (rec *recorder) hijack(w http.ResponseWriter, _ *http.Request) {
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	nc.(*Conn).Passthrough()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	brw.Flush()
	io.Copy(nc, brw)
}

func (rec *recorder) seen() []seenReq {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.reqs)
}

func (rec *recorder) rejected() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.rejects)
}

// startServer runs a real http.Server over NewListener on loopback.
func startServer(t *testing.T, opts Options) (*recorder, string) {
	t.Helper()
	rec := &recorder{}
	return rec, serve(t, rec, opts, &http.Server{Handler: rec})
}

// serve runs srv over NewListener(opts) on loopback until the test ends,
// with opts.OnReject recording into rec, and returns the address.
func serve(t *testing.T, rec *recorder, opts Options, srv *http.Server) string {
	t.Helper()
	opts.OnReject = func(_ net.Addr, reason string) {
		rec.mu.Lock()
		rec.rejects = append(rec.rejects, reason)
		rec.mu.Unlock()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.ReadHeaderTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(NewListener(ln, opts))
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// dial connects to addr with a 5-second deadline; the connection closes
// when the test ends.
func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c, bufio.NewReader(c)
}

// response is one parsed response.
type response struct {
	Status int
	Body   string
}

// exchange sends pieces (each a separate Write) on a new connection while
// reading until the server closes it, and parses the responses. closed is
// false if the server kept the connection open past the deadline. A reset
// or any read error other than EOF fails the test.
func exchange(t *testing.T, addr string, pieces [][]byte) (resps []response, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for _, p := range pieces {
			if _, err := c.Write(p); err != nil {
				return // the server may close before it has read everything
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	all, err := io.ReadAll(c)
	closed = err == nil
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("reading responses: %v (after %q)", err, all)
	}
	c.Close()
	<-wrote
	return parseResponses(t, all), closed
}

func parseResponses(t *testing.T, all []byte) []response {
	t.Helper()
	var resps []response
	br := bufio.NewReader(bytes.NewReader(all))
	for {
		if _, err := br.Peek(1); err == io.EOF {
			return resps
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("parsing response %d: %v in %q", len(resps)+1, err, all)
		}
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("reading response body %d: %v in %q", len(resps)+1, err, all)
		}
		resps = append(resps, response{res.StatusCode, string(body)})
	}
}

// bytewise cuts s into one-byte pieces.
func bytewise(s string) [][]byte {
	out := make([][]byte, len(s))
	for i := range len(s) {
		out[i] = []byte{s[i]}
	}
	return out
}

// The hidden request every smuggling vector tries to get to the app.
const admin = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"

var smuggleTests = []struct {
	name    string
	payload string
	reason  *Error
	// seen lists the requests the handler may see, as "METHOD URI": valid
	// earlier requests, or the outer request of a reject inside a body
	// (whose body read then fails).
	seen []string
}{
	{"CL.TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + admin, errTEWithCL, nil},
	{"TE.CL", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" +
		fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(admin), admin), errTEWithCL, nil},
	{"TE.TE xchunked with CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 35\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + admin, errTEValue, nil},
	{"TE xchunked alone (net/http: 501)", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + admin, errTEValue, nil},
	{"TE.TE leading space with CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 35\r\nTransfer-Encoding:  chunked\r\n\r\n0\r\n\r\n" + admin, errTEWithCL, nil},
	{"TE.TE trailing tab with CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 35\r\nTransfer-Encoding: chunked\t\r\n\r\n0\r\n\r\n" + admin, errTEWithCL, nil},
	{"TE.TE space before colon (net/http: frames by CL)", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + admin, errSpaceBeforeColon, nil},
	{"TE.TE two fields", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + admin, errMultipleTE, nil},
	{"TE.TE chunked, identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + admin, errTEValue, nil},
	{"TE.TE chunked, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + admin, errTEValue, nil},
	{"TE.TE obs-fold", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + admin, errObsFold, nil},
	{"TE in HTTP/1.0 (net/http: ignored)", "POST / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + admin, errTEHTTP10, nil},
	{"CL 5 and 6", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n" + admin, errCLConflict, nil},
	{"CL +5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n12345" + admin, errCLValue, nil},
	{"CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n12345" + admin, errCLValue, nil},
	{"CL space before colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n12345" + admin, errSpaceBeforeColon, nil},
	{"bare LF head", "POST / HTTP/1.1\nHost: a\nContent-Length: 0\n\n" + admin, errBareLF, nil},
	{"bare LF in one line", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n" + admin, errBareLF, nil},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n" + admin, errObsFold, nil},
	{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n" + admin, errNUL, nil},
	{"CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n" + admin, errBareCR, nil},
	{"double space request line", "GET  /admin HTTP/1.1\r\nHost: a\r\n\r\n", errRequestLine, nil},
	{"multiple Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" + admin, errMultipleHost, nil},
	{"leading CRLF", "\r\n" + admin, errLeadingEmpty, nil},
	{"CRLF after GET", "GET /first HTTP/1.1\r\nHost: a\r\n\r\n\r\n" + admin, errLeadingEmpty, []string{"GET /first"}},
	{"valid then CL.TE", "GET /first HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + admin, errTEWithCL, []string{"GET /first"}},
	{"valid POST then bare LF", "POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" +
		"GET / HTTP/1.1\nHost: a\n\n" + admin, errBareLF, []string{"POST /first"}},

	// Rejected inside a body: the outer request reaches the handler, whose
	// body read fails.
	{"bare LF in chunk line", "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n" + admin, errBareLF, []string{"POST /up"}},
	{"bare LF after chunk data", "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n" + admin, errChunkCRLF, []string{"POST /up"}},
	{"chunk size overflow", "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n" + admin, errChunkSize, []string{"POST /up"}},
	{"chunk size not hex", "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n" + admin, errChunkLine, []string{"POST /up"}},
	{"bare LF in trailer", "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\n\r\n" + admin, errBareLF, []string{"POST /up"}},
	{"obs-fold in trailer", "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n z\r\n\r\n" + admin, errObsFold, []string{"POST /up"}},
}

func TestServeRejectsSmuggling(t *testing.T) {
	for _, tt := range smuggleTests {
		for _, mode := range []string{"one write", "byte writes"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				rec, addr := startServer(t, Options{})
				pieces := [][]byte{[]byte(tt.payload)}
				if mode == "byte writes" {
					pieces = bytewise(tt.payload)
				}
				resps, closed := exchange(t, addr, pieces)
				if !closed {
					t.Error("server kept the connection open")
				}
				if got := rec.rejected(); len(got) != 1 || got[0] != tt.reason.Reason {
					t.Errorf("rejected with %q, want [%q]", got, tt.reason.Reason)
				}
				var seen []string
				bodyErrs := 0
				for _, r := range rec.seen() {
					if strings.Contains(r.URI, "admin") {
						t.Fatalf("handler saw the hidden request %+v", r)
					}
					seen = append(seen, r.Method+" "+r.URI)
					if r.BodyErr {
						bodyErrs++
					}
				}
				if !slices.Equal(seen, tt.seen) {
					t.Errorf("handler saw %q, want %q", seen, tt.seen)
				}
				if len(resps) == 0 {
					t.Fatal("no response")
				}
				// Earlier valid requests are answered normally, then 400s.
				valid := len(tt.seen) - bodyErrs
				for i, r := range resps {
					want := http.StatusBadRequest
					if i < valid {
						want = http.StatusOK
					}
					if r.Status != want {
						t.Errorf("response %d: %d %q, want %d", i+1, r.Status, r.Body, want)
					}
				}
				if bodyErrs == 0 && resps[len(resps)-1].Body != "400 Bad Request" {
					t.Errorf("last response body %q, want net/http's %q", resps[len(resps)-1].Body, "400 Bad Request")
				}
			})
		}
	}
}

// validBatch is a mix of requests that must all be served, in order.
var validBatch = []struct {
	raw  string
	want seenReq
}{
	{"GET /one?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", seenReq{Method: "GET", URI: "/one?x=1"}},
	{"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", seenReq{Method: "POST", URI: "/two", Body: "hello"}},
	{"\r\n", seenReq{}}, // tolerated after a POST, like net/http does
	{"PUT /three HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
		"4;ext=1\r\nwiki\r\n5;a;b=\"c\"\r\npedia\r\n0\r\nX-Sum: 9\r\n\r\n",
		seenReq{Method: "PUT", URI: "/three", Body: "wikipedia", Trailer: "X-Sum=9"}},
	{"GET /four HTTP/1.1\r\nhost: a\r\nContent-Length: 0\r\nX-Obs: caf\xc3\xa9\r\n\r\n", seenReq{Method: "GET", URI: "/four"}},
	{"POST /five HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n1\r\n\n\r\n0\r\n\r\n", seenReq{Method: "POST", URI: "/five", Body: "\n"}},
	{"POST /six HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n\r\n\r\n\x00\r\n", seenReq{Method: "POST", URI: "/six", Body: "\r\n\r\n\x00\r\n"}},
	{"DELETE /seven HTTP/1.1\r\nHost: a\r\n\r\n", seenReq{Method: "DELETE", URI: "/seven"}},
}

func batch() (raw string, want []seenReq) {
	for _, r := range validBatch {
		raw += r.raw
		if r.want.Method != "" {
			want = append(want, r.want)
		}
	}
	return raw, want
}

func checkServed(t *testing.T, rec *recorder, resps []response, want []seenReq) {
	t.Helper()
	if got := rec.seen(); !slices.Equal(got, want) {
		t.Errorf("handler saw\n%+v\nwant\n%+v", got, want)
	}
	if len(resps) != len(want) {
		t.Fatalf("%d responses, want %d: %+v", len(resps), len(want), resps)
	}
	for i, r := range resps {
		wantBody := fmt.Sprintf("%s %s %d", want[i].Method, want[i].URI, len(want[i].Body))
		if r.Status != http.StatusOK || r.Body != wantBody {
			t.Errorf("response %d: %d %q, want 200 %q", i+1, r.Status, r.Body, wantBody)
		}
	}
	if got := rec.rejected(); len(got) != 0 {
		t.Errorf("rejected: %q", got)
	}
}

func TestServePipelined(t *testing.T) {
	for _, mode := range []string{"one write", "byte writes"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			rec, addr := startServer(t, Options{})
			raw, want := batch()
			raw += "GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
			want = append(want, seenReq{Method: "GET", URI: "/last"})
			pieces := [][]byte{[]byte(raw)}
			if mode == "byte writes" {
				pieces = bytewise(raw)
			}
			resps, closed := exchange(t, addr, pieces)
			if !closed {
				t.Error("connection not closed after Connection: close")
			}
			checkServed(t, rec, resps, want)
		})
	}
}

func TestServeKeepAlive(t *testing.T) {
	rec, addr := startServer(t, Options{})
	c, br := dial(t, addr)
	var resps []response
	var want []seenReq
	for _, r := range validBatch {
		if _, err := io.WriteString(c, r.raw); err != nil {
			t.Fatal(err)
		}
		if r.want.Method == "" {
			continue
		}
		want = append(want, r.want)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %s: %v", r.want.URI, err)
		}
		body, _ := io.ReadAll(res.Body)
		resps = append(resps, response{res.StatusCode, string(body)})
	}
	checkServed(t, rec, resps, want)
	// Still open and still checking.
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusBadRequest {
		t.Fatalf("after keep-alive: %v %v, want 400", res, err)
	}
}

func TestServeHTTP10(t *testing.T) {
	rec, addr := startServer(t, Options{})
	resps, closed := exchange(t, addr, [][]byte{[]byte("POST /ten HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi")})
	if !closed {
		t.Error("HTTP/1.0 connection not closed")
	}
	checkServed(t, rec, resps, []seenReq{{Method: "POST", URI: "/ten", Body: "hi"}})
}

func TestServeExpectContinue(t *testing.T) {
	rec, addr := startServer(t, Options{})
	c, br := dial(t, addr)
	io.WriteString(c, "POST /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("got %q, %v; want 100 Continue", line, err)
	}
	br.ReadString('\n') // empty line
	io.WriteString(c, "3\r\nabc\r\n0\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(body) != "POST /e 3" {
		t.Errorf("got %d %q", res.StatusCode, body)
	}
	if got := rec.seen(); len(got) != 1 || got[0].Body != "abc" {
		t.Errorf("handler saw %+v", got)
	}
}

func TestServeLargeBodies(t *testing.T) {
	rec, addr := startServer(t, Options{})
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	var chunked strings.Builder
	for i := 0; i < len(big); i += 100_000 {
		part := big[i:min(i+100_000, len(big))]
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", len(part), part)
	}
	chunked.WriteString("0\r\n\r\n")
	raw := fmt.Sprintf("POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", len(big), big) +
		"POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked.String() +
		"GET /end HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	resps, _ := exchange(t, addr, split([]byte(raw), []int{65536, 1, 7000}))
	checkServed(t, rec, resps, []seenReq{
		{Method: "POST", URI: "/cl", Body: big},
		{Method: "POST", URI: "/chunked", Body: big},
		{Method: "GET", URI: "/end"},
	})
}

func TestServeHeadTooLarge(t *testing.T) {
	rec, addr := startServer(t, Options{})
	ok := "GET /ok HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 60<<10) + "\r\n\r\n"
	tooBig := "GET /big HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 80<<10) + "\r\n\r\n"
	resps, closed := exchange(t, addr, [][]byte{[]byte(ok + tooBig + admin)})
	if !closed {
		t.Error("connection not closed")
	}
	if len(resps) != 2 || resps[0].Status != 200 || resps[1].Status != 400 {
		t.Errorf("responses %+v, want 200 then 400", resps)
	}
	if got := rec.rejected(); len(got) != 1 || got[0] != errHeadTooLarge.Reason {
		t.Errorf("rejected %q", got)
	}
	if got := rec.seen(); len(got) != 1 || got[0].URI != "/ok" {
		t.Errorf("handler saw %+v", got)
	}
}

func TestServeHijackPassthrough(t *testing.T) {
	_, addr := startServer(t, Options{})
	c, br := dial(t, addr)
	io.WriteString(c, "GET /hijack HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("got %v, %v; want 101", res, err)
	}
	// Bytes that would be rejected as a head pass through untouched.
	raw := "\x00\n\nGET / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n"
	io.WriteString(c, raw)
	got := make([]byte, len(raw))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != raw {
		t.Errorf("echo %q, %v; want %q", got, err, raw)
	}
}

// TestServeParallel runs many connections at once, valid and smuggling,
// under -race.
func TestServeParallel(t *testing.T) {
	rec, addr := startServer(t, Options{})
	raw, want := batch()
	raw += "GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
	want = append(want, seenReq{Method: "GET", URI: "/last"})
	const n = 100
	var wg sync.WaitGroup
	results := make([][]response, n)
	for i := range n {
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			payload := raw
			if i%2 == 1 {
				payload = smuggleTests[i/2%len(smuggleTests)].payload
			}
			go func() {
				for _, p := range split([]byte(payload), []int{1 + i%13}) {
					if _, err := c.Write(p); err != nil {
						return
					}
				}
			}()
			all, err := io.ReadAll(c)
			if err != nil {
				t.Errorf("conn %d: %v", i, err)
			}
			results[i] = parseResponses(t, all)
		})
	}
	wg.Wait()
	valid := 0
	for i, resps := range results {
		if i%2 == 0 {
			if len(resps) != len(want) {
				t.Errorf("conn %d: %d responses, want %d", i, len(resps), len(want))
			}
			valid += len(want)
			continue
		}
		if len(resps) == 0 || resps[len(resps)-1].Status != http.StatusBadRequest {
			t.Errorf("conn %d (%s): responses %+v, want a final 400", i, smuggleTests[i/2%len(smuggleTests)].name, resps)
		}
	}
	for _, r := range rec.seen() {
		if strings.Contains(r.URI, "admin") {
			t.Fatalf("handler saw the hidden request %+v", r)
		}
	}
	if got := len(rec.rejected()); got != n/2 {
		t.Errorf("%d rejects, want %d", got, n/2)
	}
}

// TestServeRejectLinger sends a rejected head followed by much more data
// than the server reads: thanks to the lingering close the client reads the
// 400 and a clean EOF instead of a connection reset.
func TestServeRejectLinger(t *testing.T) {
	_, addr := startServer(t, Options{})
	payload := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" +
		strings.Repeat("x", 200<<10)
	for range 5 {
		resps, closed := exchange(t, addr, split([]byte(payload), []int{16 << 10}))
		if !closed || len(resps) != 1 || resps[0].Status != http.StatusBadRequest {
			t.Fatalf("got %+v (closed %v), want one 400 and EOF", resps, closed)
		}
	}
}

// TestCloseEndsLinger checks that a second Close, as http.Server.Close
// makes, does not wait for the first Close's linger.
func TestCloseEndsLinger(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(nc, Options{RejectLinger: time.Minute})
	io.WriteString(cli, "GET / HTTP/1.1\nHost: a\n\n")
	if b, err := io.ReadAll(c); err != nil || string(b) != rejectRequest {
		t.Fatalf("read %q, %v; want the reject request", b, err)
	}
	first := make(chan error)
	go func() { first <- c.Close() }() // lingers: the client neither reads nor closes
	for deadline := time.Now().Add(10 * time.Second); !c.closing.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("first Close did not start")
		}
	}
	c.Close()
	select {
	case err := <-first:
		if err != nil {
			t.Errorf("first Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second Close did not end the linger")
	}
}
