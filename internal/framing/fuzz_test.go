package framing

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
)

func FuzzCheckHead(f *testing.F) {
	for _, tt := range validHeads {
		f.Add([]byte(tt.head))
	}
	for _, tt := range invalidHeads {
		f.Add([]byte(tt.head))
	}
	for _, tt := range smuggleTests {
		if i := bytes.Index([]byte(tt.payload), []byte("\r\n\r\n")); i >= 0 {
			f.Add([]byte(tt.payload[:i+4]))
		}
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		fr, err := CheckHead(head)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || fr != (Framing{}) {
				t.Fatalf("CheckHead(%q) = %+v, %v (%T)", head, fr, err, err)
			}
			return
		}
		if fr.Body > BodyChunked || fr.ContentLength < 0 || (fr.Body != BodyLength && fr.ContentLength != 0) {
			t.Fatalf("CheckHead(%q) = %+v", head, fr)
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			// CheckHead leaves the request target's syntax to net/http.
			// That must be the reason, and with a plain target net/http
			// must accept the head.
			var ue *url.Error
			if !errors.As(err, &ue) {
				t.Fatalf("CheckHead accepted %q, http.ReadRequest: %v", head, err)
			}
			sp1 := bytes.IndexByte(head, ' ')
			sp2 := sp1 + 1 + bytes.IndexByte(head[sp1+1:], ' ')
			plain := append(append(bytes.Clone(head[:sp1+1]), '/'), head[sp2:]...)
			if req, err = http.ReadRequest(bufio.NewReader(bytes.NewReader(plain))); err != nil {
				t.Fatalf("CheckHead accepted %q, http.ReadRequest(%q): %v", head, plain, err)
			}
		}
		if req.ProtoMajor != 1 {
			t.Fatalf("CheckHead accepted %q with protocol %s", head, req.Proto)
		}
		chunked := len(req.TransferEncoding) == 1 && req.TransferEncoding[0] == "chunked"
		var ok bool
		switch fr.Body {
		case BodyNone:
			ok = !chunked && len(req.TransferEncoding) == 0 && req.ContentLength == 0
		case BodyLength:
			ok = !chunked && len(req.TransferEncoding) == 0 && req.ContentLength == fr.ContentLength
		case BodyChunked:
			ok = chunked && req.ContentLength == -1
		}
		if !ok {
			t.Fatalf("CheckHead(%q) = %+v; net/http: TransferEncoding %q, ContentLength %d",
				head, fr, req.TransferEncoding, req.ContentLength)
		}
	})
}

// sizes turns fuzz bytes into read/write sizes of 1 to 256.
func sizes(b []byte) []int {
	s := make([]int, len(b))
	for i, c := range b {
		s[i] = int(c) + 1
	}
	return s
}

func FuzzConn(f *testing.F) {
	for _, tt := range connTests {
		f.Add([]byte(tt.in), []byte{}, []byte{})
		f.Add([]byte(tt.in), []byte{0}, []byte{2, 0, 200})
		f.Add([]byte(tt.in), []byte{12}, []byte{})  // request line bound, status request
		f.Add([]byte(tt.in), []byte{13}, []byte{1}) // both bounds, status request
	}
	for _, tt := range smuggleTests {
		f.Add([]byte(tt.payload), []byte{5, 0}, []byte{})
	}
	raw, _ := batch()
	f.Add([]byte(raw), []byte{}, []byte{})
	f.Add([]byte(raw), []byte{0, 1, 2, 3}, []byte{9, 0})
	f.Fuzz(checkConnStream)
}

// checkConnStream feeds in through a Conn, with write and read sizes taken
// from writes and reads, and checks what comes out: all of in, or a prefix
// of it (the stream ended inside a head, chunk line or trailers), or a
// prefix followed by the reject request (with exactly one OnReject call);
// and that net/http, reading the accepted bytes, finds the same message
// boundaries as the Conn.
func checkConnStream(t *testing.T, in, writes, reads []byte) { checkConnStreamN(t, in, writes, reads) }

// checkConnStreamN is checkConnStream returning how many message
// boundaries were compared with net/http's, and whether it rejected.
func checkConnStreamN(t *testing.T, in, writes, reads []byte) (compared int, rejected bool) {
	var opts Options
	if len(writes) > 0 && writes[0]%4 == 1 {
		opts.MaxHeadBytes = 64 // exercise the bound
	}
	if len(writes) > 0 && writes[0]%8 >= 4 {
		opts.MaxRequestLine = 24 // exercise the request line bound
	}
	if len(writes) > 0 && writes[0]%16 >= 8 {
		opts.StatusResponses = true // 414 and 431 as the status request
	}
	var reasons []string
	opts.OnReject = func(_ net.Addr, reason string) { reasons = append(reasons, reason) }
	c := NewConn(&scriptConn{chunks: split(in, sizes(writes))}, opts)
	var ends []int64
	c.testHookEnd = func(off int64) { ends = append(ends, off) }
	out, err := drain(t, c, sizes(reads))
	if err != io.EOF {
		t.Fatalf("final error %v, want io.EOF", err)
	}

	accepted := out
	switch {
	case len(reasons) > 1:
		t.Fatalf("OnReject called %d times", len(reasons))
	case len(reasons) == 1:
		rej := rejectRequest
		if opts.StatusResponses && (reasons[0] == errLineTooLong.Reason || reasons[0] == errHeadTooLarge.Reason) {
			rej = statusRequest
		}
		if !bytes.HasSuffix(out, []byte(rej)) {
			t.Fatalf("rejected (%s) but delivered %q", reasons[0], out)
		}
		accepted = out[:len(out)-len(rej)]
	case len(out) < len(in):
		// Input ended inside a head, chunk line, chunk CRLF or
		// trailers: never inside body bytes.
		switch c.st {
		case stHead, stChunkLine, stChunkCRLF, stTrailer:
		default:
			t.Fatalf("withheld %q in state %d", in[len(out):], c.st)
		}
	}
	if !bytes.HasPrefix(in, accepted) {
		t.Fatalf("delivered %q, not a prefix of the input %q", accepted, in)
	}
	for i, e := range ends {
		if e > int64(len(accepted)) || (i > 0 && e <= ends[i-1]) {
			t.Fatalf("message ends %v for %d accepted bytes", ends, len(accepted))
		}
	}
	return replayNetHTTP(t, accepted, ends), len(reasons) > 0
}

// replayNetHTTP parses stream with net/http the way its server does
// (including the skip of leading CR/LF after a POST) and checks that every
// message net/http reads completely ends where the Conn said one ends. Where
// net/http fails it would close the connection, so it stops there.
func replayNetHTTP(t *testing.T, stream []byte, ends []int64) (compared int) {
	cr := &countingReader{r: bytes.NewReader(stream)}
	br := bufio.NewReader(cr)
	lastPost := false
	for i := 0; ; i++ {
		if lastPost {
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			br.Discard(n)
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return i
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return i
		}
		off := cr.n - int64(br.Buffered())
		if i >= len(ends) || ends[i] != off {
			t.Fatalf("net/http ends message %d at %d, the Conn at %v (stream %q)", i, off, ends, stream)
		}
		lastPost = req.Method == "POST"
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
