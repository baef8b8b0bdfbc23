package framing

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose Read returns the given chunks in order
// (each possibly over several Reads if p is short), then err (io.EOF if
// nil). Everything else is a no-op.
type scriptConn struct {
	chunks [][]byte
	err    error
}

func (s *scriptConn) Read(p []byte) (int, error) {
	for len(s.chunks) > 0 && len(s.chunks[0]) == 0 {
		s.chunks = s.chunks[1:]
	}
	if len(s.chunks) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		return 0, io.EOF
	}
	n := copy(p, s.chunks[0])
	s.chunks[0] = s.chunks[0][n:]
	return n, nil
}

func (s *scriptConn) Write(p []byte) (int, error) { return len(p), nil }
func (s *scriptConn) Close() error                { return nil }
func (s *scriptConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80} }
func (s *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 12345}
}
func (s *scriptConn) SetDeadline(time.Time) error      { return nil }
func (s *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (s *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// split cuts in into pieces whose sizes cycle through sizes (all of it at
// once when sizes is empty).
func split(in []byte, sizes []int) [][]byte {
	if len(sizes) == 0 {
		return [][]byte{bytes.Clone(in)}
	}
	var out [][]byte
	for i := 0; len(in) > 0; i++ {
		n := min(max(sizes[i%len(sizes)], 1), len(in))
		out = append(out, bytes.Clone(in[:n]))
		in = in[n:]
	}
	return out
}

// drain reads c until an error with reads of the sizes in readSizes
// (cycling), and returns what it read, the error and the reject reasons.
func drain(t testing.TB, c *Conn, readSizes []int) ([]byte, error) {
	t.Helper()
	var out []byte
	buf := make([]byte, 1<<16)
	for i := 0; ; i++ {
		n := len(buf)
		if len(readSizes) > 0 {
			n = min(max(readSizes[i%len(readSizes)], 1), len(buf))
		}
		m, err := c.Read(buf[:n])
		if m < 0 || m > n {
			t.Fatalf("Read returned %d for a %d-byte buffer", m, n)
		}
		out = append(out, buf[:m]...)
		if err != nil {
			return out, err
		}
		if i > 1<<22 {
			t.Fatal("Read does not make progress")
		}
	}
}

// run feeds in through a Conn with the given write and read sizes.
func run(t testing.TB, in []byte, opts Options, writeSizes, readSizes []int) (out []byte, err error, reasons []string) {
	t.Helper()
	opts.OnReject = func(_ net.Addr, reason string) { reasons = append(reasons, reason) }
	c := NewConn(&scriptConn{chunks: split(in, writeSizes)}, opts)
	out, err = drain(t, c, readSizes)
	return out, err, reasons
}

const (
	getA    = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	getB    = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
	postCL  = "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
	postChk = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
		"5;name=value\r\nhello\r\n1;a;b=\"c d\"\r\n \r\n5\r\nworld\r\n0;last\r\nX-Sum: 42\r\nX-Other: y\r\n\r\n"
	chkHead          = "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	postChkNoTrailer = chkHead + "3\r\nabc\r\n0\r\n\r\n"
)

// fillBuf is a request exactly as long as the Conn's buffer.
var fillBuf = func() string {
	const h = "POST / HTTP/1.1\r\nContent-Length: 0000\r\n\r\n"
	n := bufSize - len(h)
	return fmt.Sprintf("POST / HTTP/1.1\r\nContent-Length: %04d\r\n\r\n", n) + strings.Repeat("b", n)
}()

// connTests are streams and what Read must deliver: all of in, or its
// first accept bytes followed by rejectRequest (reason set). partial marks
// streams that end inside a head: then only accept bytes come out, no
// reject, and Read ends with io.EOF.
var connTests = []struct {
	name    string
	in      string
	opts    Options
	accept  int // bytes of in delivered before the reject request; -1: all of in
	reason  *Error
	partial bool
}{
	{name: "one GET", in: getA, accept: -1},
	{name: "pipelined GETs", in: getA + getB + getA, accept: -1},
	{name: "content-length body", in: postCL + getA, accept: -1},
	{name: "zero content-length", in: "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n" + getA, accept: -1},
	{name: "chunked with extensions and trailers", in: postChk + getB, accept: -1},
	{name: "chunked without trailers", in: postChkNoTrailer + postChkNoTrailer, accept: -1},
	{name: "chunked body looks like head", in: "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n\n\n\r\n3\r\n\r\n\r\r\n0\r\n\r\n", accept: -1},
	{name: "content-length body with bare LF", in: "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\n\n\x00\r\n" + getA, accept: -1},
	{name: "CRLF after POST", in: postCL + "\r\n" + getA, accept: -1},
	{name: "two CRLF after POST", in: postCL + "\r\n\r\n" + getA, accept: -1},
	{name: "HTTP/1.0", in: "GET / HTTP/1.0\r\n\r\n", accept: -1},
	{name: "message ends at buffer end", in: fillBuf + getA, accept: -1},

	{name: "CL.TE after valid", in: getA + "POST / HTTP/1.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + getB,
		accept: len(getA), reason: errTEWithCL},
	{name: "bare LF head", in: getA + "GET / HTTP/1.1\nHost: x\n\n", accept: len(getA), reason: errBareLF},
	{name: "three CRLF after POST", in: postCL + "\r\n\r\n\r\n" + getA, accept: len(postCL) + 4, reason: errLeadingEmpty},
	{name: "bare LF after POST", in: postCL + "\n" + getA, accept: len(postCL), reason: errBareLF},
	{name: "CRLF after GET", in: getA + "\r\n" + getB, accept: len(getA), reason: errLeadingEmpty},
	{name: "CRLF first", in: "\r\n" + getA, accept: 0, reason: errLeadingEmpty},
	{name: "bad chunk line", in: chkHead + "3\nabc\r\n0\r\n\r\n", accept: len(chkHead), reason: errBareLF},
	{name: "chunk data without CRLF", in: chkHead + "3\r\nabcX\r\n0\r\n\r\n", accept: len(chkHead) + 3 + 3, reason: errChunkCRLF},
	{name: "chunk data with LF only", in: chkHead + "3\r\nabc\n0\r\n\r\n", accept: len(chkHead) + 3 + 3, reason: errChunkCRLF},
	{name: "chunk size overflow", in: chkHead + "4000000000000000\r\n", accept: len(chkHead), reason: errChunkSize},
	{name: "bad trailer", in: chkHead + "0\r\nX : y\r\n\r\n", accept: len(chkHead) + 3, reason: errSpaceBeforeColon},
	{name: "bare LF trailer", in: chkHead + "0\r\nX: y\n\r\n", accept: len(chkHead) + 3, reason: errBareLF},
	{name: "chunk line too long", in: chkHead + "1;" + strings.Repeat("x", maxChunkLine-3) + "\r\nx\r\n0\r\n\r\n", accept: len(chkHead), reason: errChunkLineLong},
	{name: "chunk line at limit", in: chkHead + "1;" + strings.Repeat("x", maxChunkLine-4) + "\r\nx\r\n0\r\n\r\n", accept: -1},
	{name: "head too large", in: getA + "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 200) + "\r\n\r\n", opts: Options{MaxHeadBytes: 100},
		accept: len(getA), reason: errHeadTooLarge},
	{name: "head too large without LF", in: getA + "GET /" + strings.Repeat("a", 200), opts: Options{MaxHeadBytes: 100},
		accept: len(getA), reason: errHeadTooLarge},
	{name: "head at limit", in: getA, opts: Options{MaxHeadBytes: len(getA)}, accept: -1},
	{name: "head one over limit", in: getA, opts: Options{MaxHeadBytes: len(getA) - 1}, accept: 0, reason: errHeadTooLarge},
	{name: "trailer too large", in: chkHead + "0\r\nX: " + strings.Repeat("a", 200) + "\r\n\r\n", opts: Options{MaxHeadBytes: 100},
		accept: len(chkHead) + 3, reason: errTrailerTooLarge},

	{name: "request line too long", in: getA + "GET /" + strings.Repeat("a", 100) + " HTTP/1.1\r\nHost: x\r\n\r\n", opts: Options{MaxRequestLine: 64},
		accept: len(getA), reason: errLineTooLong},
	{name: "request line too long without LF", in: getA + "GET /" + strings.Repeat("a", 100), opts: Options{MaxRequestLine: 64},
		accept: len(getA), reason: errLineTooLong},
	{name: "request line at limit", in: getA, opts: Options{MaxRequestLine: len(getA) - len("\r\nHost: x\r\n\r\n")}, accept: -1},
	{name: "request line one over limit", in: getA, opts: Options{MaxRequestLine: len(getA) - len("\r\nHost: x\r\n\r\n") - 1},
		accept: 0, reason: errLineTooLong},
	{name: "request line limit spares fields", in: "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 100) + "\r\n\r\n", opts: Options{MaxRequestLine: 20}, accept: -1},
	{name: "request line limit spares trailers", in: chkHead + "0\r\nX: " + strings.Repeat("a", 100) + "\r\n\r\n", opts: Options{MaxRequestLine: 50}, accept: -1},
	{name: "request line too long, status request", in: getA + "GET /" + strings.Repeat("a", 100), opts: Options{MaxRequestLine: 64, StatusResponses: true},
		accept: len(getA), reason: errLineTooLong},
	{name: "head too large, status request", in: getA + "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", 200) + "\r\n\r\n", opts: Options{MaxHeadBytes: 100, StatusResponses: true},
		accept: len(getA), reason: errHeadTooLarge},
	{name: "bare LF, no status request", in: getA + "GET / HTTP/1.1\nHost: x\n\n", opts: Options{StatusResponses: true}, accept: len(getA), reason: errBareLF},
	{name: "trailer too large, no status request", in: chkHead + "0\r\nX: " + strings.Repeat("a", 200) + "\r\n\r\n", opts: Options{MaxHeadBytes: 100, StatusResponses: true},
		accept: len(chkHead) + 3, reason: errTrailerTooLarge},

	{name: "partial head", in: getA + "GET / HTTP/1.1\r\nHost: x\r\n", accept: len(getA), partial: true},
	{name: "partial chunk line", in: chkHead + "3;ab", accept: len(chkHead), partial: true},
	{name: "partial CRLF after chunk", in: chkHead + "3\r\nabc\r", accept: len(chkHead) + 6, partial: true},
	{name: "partial body", in: postCL[:len(postCL)-3], accept: -1},
}

func TestConnStreams(t *testing.T) {
	schedules := []struct {
		name          string
		writes, reads []int
	}{
		{"whole", nil, nil},
		{"byte writes", []int{1}, nil},
		{"byte reads", nil, []int{1}},
		{"bytes", []int{1}, []int{1}},
		{"odd", []int{3, 7, 1, 64, 2}, []int{5, 1, 4096, 2}},
	}
	for _, tt := range connTests {
		for _, s := range schedules {
			t.Run(tt.name+"/"+s.name, func(t *testing.T) {
				in := []byte(tt.in)
				out, err, reasons := run(t, in, tt.opts, s.writes, s.reads)
				if err != io.EOF {
					t.Errorf("final error %v, want io.EOF", err)
				}
				var want []byte
				switch {
				case tt.accept < 0:
					want = in
				case tt.reason == nil:
					want = in[:tt.accept]
				default:
					rej := rejectRequest
					if tt.opts.StatusResponses && tt.reason.Status() != 400 {
						rej = statusRequest
					}
					want = append(bytes.Clone(in[:tt.accept]), rej...)
				}
				if !bytes.Equal(out, want) {
					t.Errorf("delivered\n%q\nwant\n%q", out, want)
				}
				var wantReasons []string
				if tt.reason != nil {
					wantReasons = []string{tt.reason.Reason}
				}
				if fmt.Sprint(reasons) != fmt.Sprint(wantReasons) {
					t.Errorf("OnReject reasons %q, want %q", reasons, wantReasons)
				}
			})
		}
	}
}

// TestConnRandomSplits runs every stream with random write and read sizes.
func TestConnRandomSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range connTests {
		want, _, _ := run(t, []byte(tt.in), tt.opts, nil, nil)
		for range 50 {
			var ws, rs []int
			for range 5 {
				ws = append(ws, 1+rng.IntN(20))
				rs = append(rs, 1+rng.IntN(20))
			}
			got, _, _ := run(t, []byte(tt.in), tt.opts, ws, rs)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: writes %v reads %v delivered\n%q\nwant\n%q", tt.name, ws, rs, got, want)
			}
		}
	}
}

// TestConnMessageBoundaries checks the message ends the Conn finds.
func TestConnMessageBoundaries(t *testing.T) {
	in := getA + postCL + "\r\n" + postChk + getB + postChkNoTrailer
	var ends []int64
	c := NewConn(&scriptConn{chunks: split([]byte(in), []int{3, 1, 17})}, Options{})
	c.testHookEnd = func(off int64) { ends = append(ends, off) }
	if _, err := drain(t, c, []int{7, 1, 100}); err != io.EOF {
		t.Fatal(err)
	}
	var want []int64
	off := 0
	for _, m := range []string{getA, postCL, "\r\n" + postChk, getB, postChkNoTrailer} {
		off += len(m)
		want = append(want, int64(off))
	}
	if fmt.Sprint(ends) != fmt.Sprint(want) {
		t.Errorf("message ends %v, want %v", ends, want)
	}
}

func TestConnReadErrors(t *testing.T) {
	t.Run("error with data is returned after the data", func(t *testing.T) {
		boom := errors.New("boom")
		c := NewConn(&errAfterConn{data: []byte(getA + "GET /"), err: boom}, Options{})
		out, err := drain(t, c, nil)
		if string(out) != getA || err != boom {
			t.Errorf("got %q, %v; want %q, boom", out, err, getA)
		}
	})
	t.Run("zero-length read", func(t *testing.T) {
		c := NewConn(&scriptConn{chunks: [][]byte{[]byte(getA)}}, Options{})
		if n, err := c.Read(nil); n != 0 || err != nil {
			t.Errorf("Read(nil) = %d, %v", n, err)
		}
	})
	t.Run("read after close", func(t *testing.T) {
		c := NewConn(&scriptConn{chunks: [][]byte{[]byte(getA[:5])}}, Options{})
		if _, err := c.Read(make([]byte, 10)); err != io.EOF {
			t.Fatalf("Read = %v, want io.EOF", err)
		}
		c.Close()
		if _, err := c.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read after Close = %v, want net.ErrClosed", err)
		}
	})
}

// errAfterConn returns all its data and err from the same Read.
type errAfterConn struct {
	scriptConn
	data []byte
	err  error
}

func (e *errAfterConn) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	if len(e.data) == 0 {
		return n, e.err
	}
	return n, nil
}

// TestConnDeadlineKeepsPartialHead checks that a Read timing out in the
// middle of a head (as net/http's abortPendingRead causes) keeps the partial
// head and a later Read completes it.
func TestConnDeadlineKeepsPartialHead(t *testing.T) {
	srv, cli := net.Pipe()
	defer cli.Close()
	c := NewConn(srv, Options{})
	defer c.Close()
	go func() { cli.Write([]byte(getA[:10])) }()

	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %d, %v; want 0, deadline exceeded", n, err)
	}
	c.SetReadDeadline(time.Time{})
	go func() { cli.Write([]byte(getA[10:])) }()
	var got []byte
	for len(got) < len(getA) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != getA {
		t.Errorf("got %q, want %q", got, getA)
	}
}

func TestConnPassthrough(t *testing.T) {
	raw := "\x81\x05hello\n\n\x00"
	sc := &scriptConn{chunks: [][]byte{[]byte(getA + raw[:4]), []byte(raw[4:])}}
	c := NewConn(sc, Options{})
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != getA {
		t.Fatalf("Read = %q, %v; want the head", buf[:n], err)
	}
	c.Passthrough()
	out, err := drain(t, c, nil)
	if err != io.EOF || string(out) != raw {
		t.Errorf("after Passthrough got %q, %v; want %q", out, err, raw)
	}
}

func TestConnPassthroughAfterReject(t *testing.T) {
	c := NewConn(&scriptConn{chunks: [][]byte{[]byte("GET / HTTP/1.1\nX: y\n\n")}}, Options{})
	buf := make([]byte, 5)
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	c.Passthrough()
	rest, err := drain(t, c, nil)
	if got := string(buf) + string(rest); got != rejectRequest || err != io.EOF {
		t.Errorf("got %q, %v; want the reject request and io.EOF", got, err)
	}
}

func TestNewListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := NewListener(ln, Options{})
	defer fl.Close()
	if fl.Addr().String() != ln.Addr().String() {
		t.Errorf("Addr = %v, want %v", fl.Addr(), ln.Addr())
	}
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
	}()
	c, err := fl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fc, ok := c.(*Conn)
	if !ok {
		t.Fatalf("Accept returned %T, want *Conn", c)
	}
	if _, ok := fc.NetConn().(*net.TCPConn); !ok {
		t.Errorf("NetConn() is %T, want *net.TCPConn", fc.NetConn())
	}
	if fc.LocalAddr().String() != ln.Addr().String() || fc.RemoteAddr() == nil {
		t.Errorf("addresses %v %v", fc.LocalAddr(), fc.RemoteAddr())
	}
	fl.Close()
	if _, err := fl.Accept(); err == nil {
		t.Error("Accept after Close succeeded")
	}
}

// loopConn serves the same bytes forever, without allocating.
type loopConn struct {
	scriptConn
	data []byte
	off  int
}

func (l *loopConn) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func TestConnReadAllocs(t *testing.T) {
	for _, tt := range []struct{ name, req string }{
		{"GET", typicalHead},
		{"POST", postCL},
		{"chunked", postChk},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConn(&loopConn{data: []byte(tt.req)}, Options{})
			buf := make([]byte, 4096)
			readOne := func() {
				for got := 0; got < len(tt.req); {
					n, err := c.Read(buf[:min(len(buf), len(tt.req)-got)])
					if err != nil {
						t.Fatal(err)
					}
					got += n
				}
			}
			readOne()
			if n := testing.AllocsPerRun(200, readOne); n != 0 {
				t.Errorf("reading one request allocates %v times, want 0", n)
			}
		})
	}
}
