package framing

import (
	"errors"
	"strings"
	"testing"
)

// h builds a head from a request line and field lines, adding CRLFs.
func h(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n\r\n" }

var validHeads = []struct {
	name string
	head string
	want Framing
}{
	{"minimal GET", h("GET / HTTP/1.1", "Host: a"), Framing{}},
	{"no fields", "GET / HTTP/1.1\r\n\r\n", Framing{}},
	{"HTTP/1.0 no host", h("GET /x HTTP/1.0"), Framing{}},
	{"HTTP/1.2 treated as 1.x", h("GET / HTTP/1.2", "Host: a"), Framing{}},
	{"extension method", h("PROPFIND /dav HTTP/1.1", "Host: a"), Framing{}},
	{"lowercase method token", h("get / HTTP/1.1", "Host: a"), Framing{}},
	{"asterisk form", h("OPTIONS * HTTP/1.1", "Host: a"), Framing{}},
	{"authority form", h("CONNECT example.com:443 HTTP/1.1", "Host: example.com:443"), Framing{}},
	{"absolute form", h("GET http://a/b?c=d HTTP/1.1", "Host: a"), Framing{}},
	{"utf-8 in target", h("GET /caf\xc3\xa9 HTTP/1.1", "Host: a"), Framing{}},
	{"content-length", h("POST / HTTP/1.1", "Host: a", "Content-Length: 5"), Framing{BodyLength, 5}},
	{"content-length zero", h("POST / HTTP/1.1", "Host: a", "Content-Length: 0"), Framing{BodyLength, 0}},
	{"content-length leading zeros", h("POST / HTTP/1.1", "Content-Length: 007"), Framing{BodyLength, 7}},
	{"content-length OWS", h("POST / HTTP/1.1", "Content-Length: \t12 \t"), Framing{BodyLength, 12}},
	{"content-length no space", h("POST / HTTP/1.1", "Content-Length:12"), Framing{BodyLength, 12}},
	{"content-length max", h("POST / HTTP/1.1", "Content-Length: 9223372036854775807"), Framing{BodyLength, 1<<63 - 1}},
	{"content-length lower case name", h("POST / HTTP/1.1", "content-length: 3"), Framing{BodyLength, 3}},
	{"content-length mixed case name", h("POST / HTTP/1.1", "CoNtEnT-LeNgTh: 3"), Framing{BodyLength, 3}},
	{"content-length duplicate same", h("POST / HTTP/1.1", "Content-Length: 3", "Content-Length: 3"), Framing{BodyLength, 3}},
	{"content-length duplicate same OWS", h("POST / HTTP/1.1", "Content-Length: 3", "Content-Length:3 "), Framing{BodyLength, 3}},
	{"content-length HTTP/1.0", h("POST / HTTP/1.0", "Content-Length: 3"), Framing{BodyLength, 3}},
	{"content-length on GET", h("GET / HTTP/1.1", "Content-Length: 2"), Framing{BodyLength, 2}},
	{"chunked", h("POST / HTTP/1.1", "Host: a", "Transfer-Encoding: chunked"), Framing{Body: BodyChunked}},
	{"chunked upper case", h("POST / HTTP/1.1", "transfer-encoding: CHUNKED"), Framing{Body: BodyChunked}},
	{"chunked OWS", h("POST / HTTP/1.1", "Transfer-Encoding:\t chunked \t"), Framing{Body: BodyChunked}},
	{"chunked no space", h("POST / HTTP/1.1", "Transfer-Encoding:chunked"), Framing{Body: BodyChunked}},
	{"empty value", h("GET / HTTP/1.1", "Host: a", "X-Empty:"), Framing{}},
	{"obs-text in value", h("GET / HTTP/1.1", "Host: a", "X-Name: caf\xc3\xa9\xff"), Framing{}},
	{"tab in value", h("GET / HTTP/1.1", "Host: a", "X: a\tb"), Framing{}},
	{"all tchar name", h("GET / HTTP/1.1", "!#$%&'*+-.^_`|~09azAZ: v"), Framing{}},
	{"similar names ignored", h("POST / HTTP/1.1", "Content-Lengths: x", "Transfer-Encodings: y", "Hosts: z", "Content-Type: text/plain"), Framing{}},
	{"typical browser", typicalHead, Framing{}},
}

const typicalHead = "GET /static/app.js?v=1234 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-US,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br\r\n" +
	"Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n" +
	"Connection: keep-alive\r\n" +
	"\r\n"

func TestCheckHeadValid(t *testing.T) {
	for _, tt := range validHeads {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckHead([]byte(tt.head))
			if err != nil {
				t.Fatalf("CheckHead(%q) = %v, want ok", tt.head, err)
			}
			if got != tt.want {
				t.Errorf("CheckHead(%q) = %+v, want %+v", tt.head, got, tt.want)
			}
		})
	}
}

var invalidHeads = []struct {
	name string
	head string
	want *Error
}{
	// Line endings and bytes.
	{"empty", "", errIncomplete},
	{"no end", "GET / HTTP/1.1\r\nHost: a\r\n", errIncomplete},
	{"request line only", "GET / HTTP/1.1\r\n", errIncomplete},
	{"trailing bytes", h("GET / HTTP/1.1", "Host: a") + "GET", errTrailingBytes},
	{"bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n", errBareLF},
	{"bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", errBareLF},
	{"bare LF field line", "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", errBareLF},
	{"bare LF final line", "GET / HTTP/1.1\r\nHost: a\r\n\n", errBareLF},
	{"LF first", "\nGET / HTTP/1.1\r\n\r\n", errBareLF},
	{"CR in value", h("GET / HTTP/1.1", "X: a\rb"), errBareCR},
	{"CR at end of value", "GET / HTTP/1.1\r\nX: a\r\r\n\r\n", errBareCR},
	{"CR in target", h("GET /a\rb HTTP/1.1"), errBareCR},
	{"CR in method", h("GE\rT / HTTP/1.1"), errBareCR},
	{"CR in name", h("GET / HTTP/1.1", "X\r: a"), errBareCR},
	{"CR CR LF empty line", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", errBareCR},
	{"NUL in value", h("GET / HTTP/1.1", "Host: a", "X: a\x00b"), errNUL},
	{"NUL in name", h("GET / HTTP/1.1", "X\x00: a"), errNUL},
	{"NUL in target", h("GET /\x00 HTTP/1.1"), errNUL},
	{"NUL in version", h("GET / HTTP/1.\x00"), errNUL},
	{"control byte in value", h("GET / HTTP/1.1", "X: a\x01b"), errFieldValue},
	{"DEL in value", h("GET / HTTP/1.1", "X: a\x7fb"), errFieldValue},
	{"vertical tab in value", h("GET / HTTP/1.1", "X: a\vb"), errFieldValue},
	{"leading empty line", "\r\nGET / HTTP/1.1\r\n\r\n", errLeadingEmpty},

	// Request line.
	{"no spaces", h("GET"), errRequestLine},
	{"one space", h("GET /"), errRequestLine},
	{"double space after method", h("GET  / HTTP/1.1"), errRequestLine},
	{"double space before version", h("GET /  HTTP/1.1"), errRequestLine},
	{"leading space", h(" GET / HTTP/1.1"), errRequestLine},
	{"trailing space", h("GET / HTTP/1.1 "), errRequestLine},
	{"extra token", h("GET / HTTP/1.1 x"), errRequestLine},
	{"tab separator", h("GET\t/ HTTP/1.1"), errMethod},
	{"tab in target", h("GET /\t HTTP/1.1"), errTarget},
	{"empty method", h(" / HTTP/1.1"), errRequestLine},
	{"separator in method", h("GE(T / HTTP/1.1"), errMethod},
	{"slash method", h("/ / HTTP/1.1"), errMethod},
	{"DEL in target", h("GET /\x7f HTTP/1.1"), errTarget},
	{"HTTP/2.0", h("PRI * HTTP/2.0"), errVersion},
	{"HTTP/0.9", h("GET / HTTP/0.9"), errVersion},
	{"lower case http", h("GET / http/1.1"), errVersion},
	{"HTTP/1.10", h("GET / HTTP/1.10"), errVersion},
	{"HTTP/1.x", h("GET / HTTP/1.x"), errVersion},
	{"HTTP/1", h("GET / HTTP/1"), errVersion},

	// Field lines.
	{"obs-fold SP", h("GET / HTTP/1.1", "Host: a", "X: a", " b"), errObsFold},
	{"obs-fold HTAB", h("GET / HTTP/1.1", "Host: a", "X: a", "\tb"), errObsFold},
	{"obs-fold first line", h("GET / HTTP/1.1", " Host: a"), errObsFold},
	{"obs-fold TE", h("POST / HTTP/1.1", "Transfer-Encoding: chunked", " , identity"), errObsFold},
	{"obs-fold TE empty first line", h("POST / HTTP/1.1", "Transfer-Encoding:", " chunked"), errTEValue},
	{"space before colon", h("GET / HTTP/1.1", "Host : a"), errSpaceBeforeColon},
	{"TE space before colon", h("POST / HTTP/1.1", "Transfer-Encoding : chunked", "Content-Length: 3"), errSpaceBeforeColon},
	{"tab before colon", h("POST / HTTP/1.1", "Content-Length\t: 3"), errSpaceBeforeColon},
	{"space inside name", h("GET / HTTP/1.1", "X Y: a"), errSpaceBeforeColon},
	{"empty name", h("GET / HTTP/1.1", ": a"), errFieldName},
	{"separator in name", h("GET / HTTP/1.1", "X@Y: a"), errFieldName},
	{"non-ASCII name", h("GET / HTTP/1.1", "X\xc3\xa9: a"), errFieldName},
	{"no colon", h("GET / HTTP/1.1", "Host"), errNoColon},
	{"multiple host", h("GET / HTTP/1.1", "Host: a", "host: b"), errMultipleHost},

	// Transfer-Encoding.
	{"TE and CL", h("POST / HTTP/1.1", "Content-Length: 6", "Transfer-Encoding: chunked"), errTEWithCL},
	{"CL after TE", h("POST / HTTP/1.1", "Transfer-Encoding: chunked", "Content-Length: 6"), errTEWithCL},
	{"TE and CL zero", h("POST / HTTP/1.1", "Transfer-Encoding: chunked", "Content-Length: 0"), errTEWithCL},
	{"TE OWS and CL", h("POST / HTTP/1.1", "Transfer-Encoding:  chunked", "Content-Length: 6"), errTEWithCL},
	{"TE trailing tab and CL", h("POST / HTTP/1.1", "Transfer-Encoding: chunked\t", "Content-Length: 6"), errTEWithCL},
	{"two TE fields", h("POST / HTTP/1.1", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"), errMultipleTE},
	{"two TE fields identity", h("POST / HTTP/1.1", "Transfer-Encoding: chunked", "Transfer-Encoding: identity"), errMultipleTE},
	{"xchunked", h("POST / HTTP/1.1", "Transfer-Encoding: xchunked"), errTEValue},
	{"chunkedx", h("POST / HTTP/1.1", "Transfer-Encoding: chunkedx"), errTEValue},
	{"chunked list", h("POST / HTTP/1.1", "Transfer-Encoding: chunked, chunked"), errTEValue},
	{"chunked identity", h("POST / HTTP/1.1", "Transfer-Encoding: chunked, identity"), errTEValue},
	{"gzip chunked", h("POST / HTTP/1.1", "Transfer-Encoding: gzip, chunked"), errTEValue},
	{"chunked param", h("POST / HTTP/1.1", "Transfer-Encoding: chunked;x"), errTEValue},
	{"quoted chunked", h("POST / HTTP/1.1", "Transfer-Encoding: \"chunked\""), errTEValue},
	{"identity", h("POST / HTTP/1.1", "Transfer-Encoding: identity"), errTEValue},
	{"empty TE", h("POST / HTTP/1.1", "Transfer-Encoding:"), errTEValue},
	{"chunked with non-ASCII", h("POST / HTTP/1.1", "Transfer-Encoding: chunke\xc4\x91"), errTEValue},
	{"TE HTTP/1.0", h("POST / HTTP/1.0", "Transfer-Encoding: chunked"), errTEHTTP10},
	{"TE xchunked HTTP/1.0", h("POST / HTTP/1.0", "Transfer-Encoding: xchunked"), errTEValue},

	// Content-Length.
	{"CL plus", h("POST / HTTP/1.1", "Content-Length: +5"), errCLValue},
	{"CL minus", h("POST / HTTP/1.1", "Content-Length: -1"), errCLValue},
	{"CL hex", h("POST / HTTP/1.1", "Content-Length: 0x5"), errCLValue},
	{"CL underscore", h("POST / HTTP/1.1", "Content-Length: 1_0"), errCLValue},
	{"CL empty", h("POST / HTTP/1.1", "Content-Length: "), errCLValue},
	{"CL inner space", h("POST / HTTP/1.1", "Content-Length: 1 0"), errCLValue},
	{"CL list same", h("POST / HTTP/1.1", "Content-Length: 5, 5"), errCLValue},
	{"CL list differ", h("POST / HTTP/1.1", "Content-Length: 5, 6"), errCLValue},
	{"CL overflow", h("POST / HTTP/1.1", "Content-Length: 9223372036854775808"), errCLValue},
	{"CL huge", h("POST / HTTP/1.1", "Content-Length: 99999999999999999999999"), errCLValue},
	{"CL two fields differ", h("POST / HTTP/1.1", "Content-Length: 5", "Content-Length: 6"), errCLConflict},
	{"CL two fields leading zero", h("POST / HTTP/1.1", "Content-Length: 5", "Content-Length: 05"), errCLConflict},
	{"CL second invalid", h("POST / HTTP/1.1", "Content-Length: 5", "Content-Length: +5"), errCLConflict},
}

func TestCheckHeadInvalid(t *testing.T) {
	for _, tt := range invalidHeads {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CheckHead([]byte(tt.head))
			if err == nil {
				t.Fatalf("CheckHead(%q) = %+v, nil; want %q", tt.head, f, tt.want.Reason)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("CheckHead(%q) error %T is not *Error", tt.head, err)
			}
			if e != tt.want {
				t.Errorf("CheckHead(%q) = %q, want %q", tt.head, e.Reason, tt.want.Reason)
			}
			if f != (Framing{}) {
				t.Errorf("CheckHead(%q) returned framing %+v with an error", tt.head, f)
			}
		})
	}
}

func TestParseChunkLine(t *testing.T) {
	tests := []struct {
		line string
		size int64
		err  *Error
	}{
		{"0\r\n", 0, nil},
		{"5\r\n", 5, nil},
		{"a\r\n", 10, nil},
		{"Ff\r\n", 255, nil},
		{"000000000000000f\r\n", 15, nil},
		{"3fffffffffffffff\r\n", 1<<62 - 1, nil},
		{"5;ext\r\n", 5, nil},
		{"5;a=b;c=\"d e\"\r\n", 5, nil},
		{"5;\r\n", 5, nil},
		{"5;a\tb\r\n", 5, nil},
		{"4000000000000000\r\n", 0, errChunkSize},
		{"ffffffffffffffff\r\n", 0, errChunkSize},
		{"00000000000000005\r\n", 0, errChunkSize},
		{"5\n", 0, errBareLF},
		{"\n", 0, errBareLF},
		{"\r\n", 0, errChunkLine},
		{"g\r\n", 0, errChunkLine},
		{"-5\r\n", 0, errChunkLine},
		{"+5\r\n", 0, errChunkLine},
		{"0x5\r\n", 0, errChunkLine},
		{" 5\r\n", 0, errChunkLine},
		{"5 \r\n", 0, errChunkLine},
		{"5 ;x\r\n", 0, errChunkLine},
		{"5\t\r\n", 0, errChunkLine},
		{"5\r\r\n", 0, errBareCR},
		{"5;a\rb\r\n", 0, errBareCR},
		{"5;a\x00\r\n", 0, errNUL},
		{"5\x00\r\n", 0, errNUL},
		{"5;a\x01\r\n", 0, errChunkLine},
	}
	for _, tt := range tests {
		size, err := parseChunkLine([]byte(tt.line))
		if err != tt.err || (err == nil && size != tt.size) {
			t.Errorf("parseChunkLine(%q) = %d, %v; want %d, %v", tt.line, size, err, tt.size, tt.err)
		}
	}
}

func TestCheckFields(t *testing.T) {
	tests := []struct {
		sec string
		err *Error
	}{
		{"\r\n", nil},
		{"X: a\r\n\r\n", nil},
		{"X: a\r\nY-Z: b c\r\n\r\n", nil},
		{"X: a\n\r\n", errBareLF},
		{" X: a\r\n\r\n", errObsFold},
		{"X: a\r\n b\r\n\r\n", errObsFold},
		{"X : a\r\n\r\n", errSpaceBeforeColon},
		{"X: a\x00\r\n\r\n", errNUL},
		{"X\r\n\r\n", errNoColon},
	}
	for _, tt := range tests {
		if err := checkFields([]byte(tt.sec)); err != tt.err {
			t.Errorf("checkFields(%q) = %v, want %v", tt.sec, err, tt.err)
		}
	}
}

func TestCheckHeadAllocs(t *testing.T) {
	head := []byte(typicalHead)
	if n := testing.AllocsPerRun(100, func() { _, _ = CheckHead(head) }); n != 0 {
		t.Errorf("CheckHead allocates %v times per call, want 0", n)
	}
	bad := []byte(h("POST / HTTP/1.1", "Content-Length: 5", "Transfer-Encoding: chunked"))
	if n := testing.AllocsPerRun(100, func() { _, _ = CheckHead(bad) }); n != 0 {
		t.Errorf("CheckHead of a rejected head allocates %v times per call, want 0", n)
	}
}

func TestBodyKindString(t *testing.T) {
	for k, want := range map[BodyKind]string{BodyNone: "none", BodyLength: "length", BodyChunked: "chunked", 9: "BodyKind(?)"} {
		if got := k.String(); got != want {
			t.Errorf("BodyKind(%d).String() = %q, want %q", k, got, want)
		}
	}
}

// TestInvalidFieldByte checks the word-at-a-time test against the table
// for every byte value at every position of a word and the tail.
func TestInvalidFieldByte(t *testing.T) {
	for n := 0; n <= 19; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				v := []byte(strings.Repeat("a", n))
				v[pos] = byte(c)
				want := -1
				if !isFieldByte[c] {
					want = pos
				}
				if got := invalidFieldByte(v); got != want {
					t.Fatalf("invalidFieldByte(%q) = %d, want %d", v, got, want)
				}
			}
		}
	}
	// Bytes around the thresholds next to each other (borrows between lanes).
	for _, s := range []string{"\x20\x1f\x20\x20\x20\x20\x20\x20", "\x00\x80\xff\x7e\x7f\x20\x09\x21", "\xff\xff\xff\xff\xff\xff\xff\x1f", "\x80\x80\x80\x80\x80\x80\x80\x80\x80"} {
		want := -1
		for i := range len(s) {
			if !isFieldByte[s[i]] {
				want = i
				break
			}
		}
		if got := invalidFieldByte([]byte(s)); got != want {
			t.Errorf("invalidFieldByte(%q) = %d, want %d", s, got, want)
		}
	}
}
