package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/wire")

func TestHeaderRoundTrip(t *testing.T) {
	tests := []Header{
		{Type: TypeRequest, Flags: FlagEnd, Stream: 1, Length: 0},
		{Type: TypeData, Stream: 0xFFFFFFFF, Length: MaxPayload},
		{Type: TypeAbort, Flags: 0xFFFF, Stream: 7, Length: 3},
	}
	for _, h := range tests {
		t.Run(h.Type.String(), func(t *testing.T) {
			b := AppendHeader(nil, h)
			if len(b) != HeaderSize {
				t.Fatalf("header is %d bytes, want %d", len(b), HeaderSize)
			}
			got, err := ParseHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			h.Version = Version
			if got != h {
				t.Fatalf("got %+v, want %+v", got, h)
			}
		})
	}
}

func TestParseHeaderErrors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"short", []byte{1, 0x10, 0}, ErrShort},
		{"version", []byte{2, 0x10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, ErrVersion},
		{"type", []byte{1, 0x7f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, ErrUnknownType},
		{"too large", []byte{1, 0x11, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1}, ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseHeader(tt.b); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRequestRoundTrip(t *testing.T) {
	env := map[string]string{
		"REQUEST_METHOD": "GET",
		"PATH_INFO":      "/a\x00b/\xff\x80caf\xe9",
		"QUERY_STRING":   "x=%00&y=1",
		"HTTP_X_EMPTY":   "",
	}
	var rb RequestBuilder
	rb.Begin(9)
	for _, k := range sortedKeys(env) {
		rb.Env(k, env[k])
	}
	frame, err := rb.Finish([]byte("body\x00"), true)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(frame)
	if err != nil {
		t.Fatal(err)
	}
	if h.Type != TypeRequest || !h.End() || h.Stream != 9 || int(h.Length) != len(frame)-HeaderSize {
		t.Fatalf("header %+v for a %d-byte frame", h, len(frame))
	}
	gotEnv, body, err := DecodeRequest(frame[HeaderSize:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotEnv, env) {
		t.Fatalf("environ %q, want %q", gotEnv, env)
	}
	if string(body) != "body\x00" {
		t.Fatalf("body %q", body)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	head := Head{Status: "200 OK", Fields: []Field{{"Content-Type", "text/plain"}, {"X-Caf\xe9", "\xe9t\xe9"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}}}
	frame := AppendResponse(nil, FlagEnd, 3, head, []byte("hi"))
	h, err := ParseHeader(frame)
	if err != nil {
		t.Fatal(err)
	}
	got, body, err := DecodeResponse(frame[HeaderSize : HeaderSize+int(h.Length)])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, head) || string(body) != "hi" {
		t.Fatalf("got %+v %q", got, body)
	}
}

func TestDecodeResponseRejects(t *testing.T) {
	good := AppendResponse(nil, 0, 1, Head{Status: "200 OK", Fields: []Field{{"A", "b"}}}, nil)[HeaderSize:]
	tests := []struct {
		name string
		p    []byte
	}{
		{"empty", nil},
		{"head longer than payload", []byte{0xff, 0, 0, 0, '('}},
		{"not a tuple", append([]byte{1, 0, 0, 0}, 'N')},
		{"three items", []byte{5, 0, 0, 0, '(', 3, 0, 0, 0}},
		{"bytes status", []byte{10, 0, 0, 0, '(', 2, 0, 0, 0, 's', 0, 0, 0, 0}},
		{"truncated", good[:len(good)-1]},
		{"huge count", []byte{9, 0, 0, 0, '(', 2, 0, 0, 0, 'u', 0xff, 0xff, 0xff}},
		{"not latin-1", func() []byte {
			b := []byte{0, 0, 0, 0, '(', 2, 0, 0, 0, 'u', 3, 0, 0, 0}
			b = append(b, "\u20ac"...) // EURO SIGN, above U+00FF
			b = append(b, '[', 0, 0, 0, 0)
			b[0] = byte(len(b) - 4)
			return b
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := DecodeResponse(tt.p); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func TestConnFramesAndFD(t *testing.T) {
	a, bFile, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := FileConn(bFile)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	tmp, err := os.CreateTemp(t.TempDir(), "fd")
	if err != nil {
		t.Fatal(err)
	}
	tmp.WriteString("file contents")
	big := bytes.Repeat([]byte("x"), 3*readBufSize+5)
	go func() {
		_ = a.WriteFrame(TypeData, 0, 1, []byte("small"))
		_ = a.WriteFrame(TypeData, FlagEnd, 1, big)
		_ = a.WriteWithFD(AppendFile(nil, FlagEnd, 2, FileRange{Offset: 5, Count: -1}), tmp)
		_ = a.Write(AppendCredit(nil, 2, 100))
		a.CloseWrite()
	}()
	f1, err := b.ReadFrame()
	if err != nil || string(f1.Payload) != "small" {
		t.Fatalf("frame 1: %v %q", err, f1.Payload)
	}
	f2, err := b.ReadFrame()
	if err != nil || !bytes.Equal(f2.Payload, big) || !f2.End() {
		t.Fatalf("frame 2: %v, %d bytes", err, len(f2.Payload))
	}
	f3, err := b.ReadFrame()
	if err != nil || f3.File == nil {
		t.Fatalf("frame 3: %v file %v", err, f3.File)
	}
	r, err := ParseFile(f3.Payload)
	if err != nil || r.Offset != 5 || r.Count != -1 {
		t.Fatalf("file range %+v %v", r, err)
	}
	got := make([]byte, 8)
	if _, err := f3.File.ReadAt(got, int64(r.Offset)); err != nil || string(got) != "contents" {
		t.Fatalf("read passed fd: %q %v", got, err)
	}
	f3.File.Close()
	f4, err := b.ReadFrame()
	if n, _ := ParseCredit(f4.Payload); err != nil || n != 100 {
		t.Fatalf("credit frame: %v %d", err, n)
	}
	if _, err := b.ReadFrame(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
}

func TestConnEOFMidFrame(t *testing.T) {
	a, bFile, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := FileConn(bFile)
	defer b.Close()
	frame := AppendFrame(nil, TypeData, 0, 1, []byte("0123456789"))
	a.Write(frame[:15])
	a.Close()
	if _, err := b.ReadFrame(); err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v, want ErrUnexpectedEOF", err)
	}
}

// golden describes one golden file: frames a Go or Python decoder must read
// back exactly as listed in the .json beside the .bin.
type golden struct {
	Frames []goldenFrame `json:"frames"`
}

type goldenFrame struct {
	Version    uint8             `json:"version"`
	Type       uint8             `json:"type"`
	TypeName   string            `json:"type_name"`
	Flags      uint16            `json:"flags"`
	Stream     uint32            `json:"stream"`
	PayloadHex string            `json:"payload_hex"`
	Environ    map[string]string `json:"environ,omitempty"`
	Status     string            `json:"status,omitempty"`
	Headers    [][2]string       `json:"headers,omitempty"`
	BodyHex    *string           `json:"body_hex,omitempty"`
}

// latin1ToUTF8 turns a latin-1 byte string into the Go (UTF-8) string with
// the same code points, which is how JSON carries a PEP 3333 native string.
func latin1ToUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(rune(s[i]))
	}
	return b.String()
}

func describe(t *testing.T, stream []byte) golden {
	t.Helper()
	var g golden
	for len(stream) > 0 {
		h, err := ParseHeader(stream)
		if err != nil {
			t.Fatal(err)
		}
		p := stream[HeaderSize : HeaderSize+int(h.Length)]
		stream = stream[HeaderSize+int(h.Length):]
		gf := goldenFrame{Version: h.Version, Type: uint8(h.Type), TypeName: h.Type.String(), Flags: uint16(h.Flags), Stream: h.Stream, PayloadHex: hex.EncodeToString(p)}
		switch h.Type {
		case TypeRequest:
			env, body, err := DecodeRequest(p)
			if err != nil {
				t.Fatal(err)
			}
			gf.Environ = map[string]string{}
			for k, v := range env {
				gf.Environ[k] = latin1ToUTF8(v)
			}
			bh := hex.EncodeToString(body)
			gf.BodyHex = &bh
		case TypeResponse:
			head, body, err := DecodeResponse(p)
			if err != nil {
				t.Fatal(err)
			}
			gf.Status = latin1ToUTF8(head.Status)
			gf.Headers = [][2]string{}
			for _, f := range head.Fields {
				gf.Headers = append(gf.Headers, [2]string{latin1ToUTF8(f.Name), latin1ToUTF8(f.Value)})
			}
			bh := hex.EncodeToString(body)
			gf.BodyHex = &bh
		}
		g.Frames = append(g.Frames, gf)
	}
	return g
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func buildRequest(t *testing.T, stream uint32, env map[string]string, body string, end bool) []byte {
	t.Helper()
	var rb RequestBuilder
	rb.Begin(stream)
	for _, k := range sortedKeys(env) {
		rb.Env(k, env[k])
	}
	f, err := rb.Finish([]byte(body), end)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), f...)
}

// goldenStreams are the frame sequences written to testdata/wire.
func goldenStreams(t *testing.T) map[string][]byte {
	getEnv := map[string]string{
		"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/hello", "QUERY_STRING": "a=1&b=%20",
		"SERVER_NAME": "example.com", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
		"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "54321", "wsgi.url_scheme": "http",
		"HTTP_HOST": "example.com:8000", "HTTP_ACCEPT": "*/*", "HTTP_COOKIE": "a=1; b=2",
	}
	binEnv := map[string]string{
		"REQUEST_METHOD": "POST", "SCRIPT_NAME": "/app", "PATH_INFO": "/nul\x00/high\xff\x80/caf\xc3\xa9",
		"QUERY_STRING": "q=%00", "CONTENT_LENGTH": "6", "CONTENT_TYPE": "application/octet-stream",
		"SERVER_NAME": "h", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.0", "wsgi.url_scheme": "http",
		"HTTP_X_LATIN": "\xe9t\xe9",
	}
	streamEnv := map[string]string{"REQUEST_METHOD": "PUT", "PATH_INFO": "/upload", "CONTENT_LENGTH": "10", "wsgi.url_scheme": "http"}
	var partial []byte
	partial = append(partial, buildRequest(t, 3, streamEnv, "0123", false)...)
	partial = AppendFrame(partial, TypeData, 0, 3, []byte("456"))
	partial = AppendFrame(partial, TypeData, FlagEnd, 3, []byte("789"))

	var streamed []byte
	streamed = AppendResponse(streamed, 0, 4, Head{Status: "200 OK", Fields: []Field{{"Content-Type", "text/event-stream"}, {"X-Caf\xe9", "cr\xe8me"}}}, []byte("first"))
	streamed = AppendFrame(streamed, TypeData, 0, 4, []byte("second\x00"))
	streamed = AppendFrame(streamed, TypeData, FlagEnd, 4, nil)

	var control []byte
	control = AppendFrame(control, TypeHello, 0, 0, []byte(`{"pid": 1234, "python": "3.11.7", "runtime": "whisk_worker/1", "wire": 1}`))
	control = AppendFrame(control, TypeChannel, 0, 0, []byte(`{"id": 0}`))
	control = AppendCredit(control, 5, 65536)
	control = AppendFrame(control, TypeCancel, 0, 5, nil)
	control = AppendCancel(control, 5, CancelTimeout)
	control = AppendFrame(control, TypeAbort, 0, 5, []byte("ZeroDivisionError: division by zero"))
	control = AppendFile(control, FlagEnd, 6, FileRange{Offset: 10, Count: -1})
	control = AppendFrame(control, TypePing, 0, 0, []byte("p1"))
	control = AppendFrame(control, TypeStop, 0, 0, nil)

	return map[string][]byte{
		"request_get":      buildRequest(t, 1, getEnv, "", true),
		"request_bytes":    buildRequest(t, 2, binEnv, "\x00\x01\xfe\xff\r\n", true),
		"request_streamed": partial,
		"response_hello": AppendResponse(nil, FlagEnd, 1, Head{Status: "200 OK", Fields: []Field{
			{"Content-Type", "text/plain"}, {"Content-Length", "13"}}}, []byte("Hello, World!")),
		"response_streamed": streamed,
		"response_cookies": AppendResponse(nil, FlagEnd, 7, Head{Status: "302 Found", Fields: []Field{
			{"Location", "/next"}, {"Set-Cookie", "a=1; Path=/"}, {"Set-Cookie", "b=2; HttpOnly"}}}, nil),
		"control": control,
	}
}

// TestGolden writes (with -update) or checks testdata/wire/*.bin and *.json.
// The Python runtime's tests read the same files.
func TestGolden(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "wire")
	for name, stream := range goldenStreams(t) {
		t.Run(name, func(t *testing.T) {
			desc, err := json.MarshalIndent(describe(t, stream), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			desc = append(desc, '\n')
			binPath, jsonPath := filepath.Join(dir, name+".bin"), filepath.Join(dir, name+".json")
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(binPath, stream, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(jsonPath, desc, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantBin, err := os.ReadFile(binPath)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/wire -run TestGolden -update)", err)
			}
			if !bytes.Equal(wantBin, stream) {
				t.Errorf("%s differs from what the encoder writes now", binPath)
			}
			wantJSON, err := os.ReadFile(jsonPath)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(wantJSON, desc) {
				t.Errorf("%s differs from the decoded frames:\n%s", jsonPath, desc)
			}
		})
	}
}

// A read deadline that fires in the middle of a frame loses no bytes: the
// next ReadFrame returns the whole frame, then the next one in order.
func TestConnDeadlineMidFrame(t *testing.T) {
	for _, size := range []int{10, readBufSize - HeaderSize, 3*readBufSize + 7} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			a, bFile, err := Pair()
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := FileConn(bFile)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			payload := bytes.Repeat([]byte("x"), size)
			frame := AppendFrame(nil, TypeData, FlagEnd, 1, payload)
			frame = AppendFrame(frame, TypeData, 0, 2, []byte("next"))
			for _, cut := range []int{5, HeaderSize + size/2} { // inside the header, inside the payload
				if err := a.Write(frame[:cut]); err != nil {
					t.Fatal(err)
				}
				b.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if _, err := b.ReadFrame(); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("cut at %d: got %v, want a deadline error", cut, err)
				}
				b.SetReadDeadline(time.Time{})
				if err := a.Write(frame[cut:]); err != nil {
					t.Fatal(err)
				}
				f, err := b.ReadFrame()
				if err != nil || f.Stream != 1 || !bytes.Equal(f.Payload, payload) {
					t.Fatalf("cut at %d: after the deadline got stream %d, %d bytes, %v", cut, f.Stream, len(f.Payload), err)
				}
				f, err = b.ReadFrame()
				if err != nil || f.Stream != 2 || string(f.Payload) != "next" {
					t.Fatalf("cut at %d: the following frame: stream %d %q %v", cut, f.Stream, f.Payload, err)
				}
			}
		})
	}
}

func TestGetBuffer(t *testing.T) {
	for _, tt := range []struct{ n, wantCap int }{
		{1, 4 << 10}, {4 << 10, 4 << 10}, {4<<10 + 1, 8 << 10}, {1 << 20, 1 << 20},
		{1<<20 + 1, 2 << 20}, {MaxPayload, MaxPayload},
	} {
		b := GetBuffer(tt.n)
		if len(*b) != tt.n || cap(*b) < tt.wantCap || cap(*b) >= 2*tt.wantCap {
			t.Errorf("GetBuffer(%d): len %d cap %d, want len %d cap %d", tt.n, len(*b), cap(*b), tt.n, tt.wantCap)
		}
		PutBuffer(b)
	}
}
