package accesslog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/whiskserver/whisk/internal/reqinfo"
)

// start is a fixed request time in a fixed zone.
var start = time.Date(2024, 3, 5, 14, 7, 9, 123456789, time.FixedZone("", 3600))

func request(uri string) *http.Request {
	r := httptest.NewRequest("GET", "http://example.com/", nil)
	r.RequestURI = uri
	r.RemoteAddr = "192.0.2.7:51000"
	r.Host = "example.com"
	r.Header.Set("Referer", "http://ref/")
	r.Header.Set("User-Agent", "curl/8")
	return r
}

func served() *reqinfo.Info {
	return &reqinfo.Info{Start: start, ID: "abc123", Status: 200, Bytes: 42, Group: "main", PID: 4242,
		Queue: 1500 * time.Microsecond, App: 2 * time.Millisecond,
		ResponseHeader: http.Header{"Content-Type": {"text/plain"}}}
}

func line(t *testing.T, format string, r *http.Request, info *reqinfo.Info) string {
	t.Helper()
	f, err := ParseFormat(format)
	if err != nil {
		t.Fatalf("ParseFormat(%q): %v", format, err)
	}
	return string(New(nil, f).AppendLine(nil, r, info, 3456*time.Microsecond))
}

// TestCombinedShape: the combined line is the one whisk has always
// written, so parsers of it keep working.
func TestCombinedShape(t *testing.T) {
	got := line(t, "combined", request("/a?b=c"), served())
	want := `192.0.2.7 - - [05/Mar/2024:14:07:09 +0100] "GET /a?b=c HTTP/1.1" 200 42 "http://ref/" "curl/8" 3456us` + "\n"
	if got != want {
		t.Errorf("combined:\n got %q\nwant %q", got, want)
	}
	// The old implementation, for the same request.
	r := request("/a?b=c")
	old := fmt.Sprintf("%s - - [%s] %q %d %d %q %q %dus\n", "192.0.2.7", start.Format("02/Jan/2006:15:04:05 -0700"),
		r.Method+" "+r.RequestURI+" "+r.Proto, 200, 42, r.Referer(), r.UserAgent(), 3456)
	if got != old {
		t.Errorf("combined differs from the previous format:\n got %q\n old %q", got, old)
	}
}

func TestCustomDirectives(t *testing.T) {
	r := request("/p/a%20th?x=1&y")
	r.SetBasicAuth("alice", "secret")
	none := &reqinfo.Info{Start: start, ID: "id9", Status: 404}
	tests := []struct {
		format string
		info   *reqinfo.Info
		want   string
	}{
		{"%h %a %l %u", served(), "192.0.2.7 192.0.2.7 - alice"},
		{"%t", served(), "[05/Mar/2024:14:07:09 +0100]"},
		{"%{sec}t %{msec}t", served(), fmt.Sprintf("%d %d", start.Unix(), start.UnixMilli())},
		{"%{usec}t", served(), fmt.Sprint(start.UnixMicro())},
		{"%{time}W", served(), "2024-03-05T14:07:09.123+01:00"},
		{`"%r"`, served(), `"GET /p/a%20th?x=1&y HTTP/1.1"`},
		{"%m %U %q %H %v", served(), "GET /p/a%20th ?x=1&y HTTP/1.1 example.com"},
		{"%s %>s %<s", served(), "200 200 200"},
		{"%b %B", served(), "42 42"},
		{"%b %B", none, "- 0"},
		{"%D %T %{ms}T %{us}T %{s}T", served(), "3456 0 3 3456 0"},
		{"%P %{pid}W %L %{request_id}W", served(), "4242 4242 abc123 abc123"},
		{"%{group}W %{queue_us}W %{app_us}W %{duration_us}W", served(), "main 1500 2000 3456"},
		{"%{group}W %{pid}W %{queue_us}W %{app_us}W", none, "- - - -"},
		{"%{user-agent}i %{X-Missing}i %{content-type}o", served(), "curl/8 - text/plain"},
		{"100%% %h\t%s", served(), "100% 192.0.2.7\t200"},
		{"plain text", served(), "plain text"},
		{"common", served(), `192.0.2.7 - alice [05/Mar/2024:14:07:09 +0100] "GET /p/a%20th?x=1&y HTTP/1.1" 200 42`},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			if got := line(t, tt.format, r, tt.info); got != tt.want+"\n" {
				t.Errorf("got  %q\nwant %q", got, tt.want+"\n")
			}
		})
	}
}

func TestParseFormatErrors(t *testing.T) {
	tests := []struct{ format, want string }{
		{"%h %Z", `unknown directive "%Z"`},
		{"%{nope}W", `unknown directive "%{nope}W"`},
		{"%{foo}t", `unknown directive "%{foo}t"`},
		{"%>h", `unknown directive "%>h"`},
		{"%{Referer", "unclosed {"},
		{"%h %", "needs its letter"},
		{"%{}i", "not a header name"},
		{"%{a b}i", "not a header name"},
		{"%h\n%s", "control character"},
		{"%h\x00", "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			_, err := ParseFormat(tt.format)
			if err == nil {
				t.Fatalf("ParseFormat(%q) accepted it", tt.format)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to say %q", err, tt.want)
			}
			if strings.Contains(tt.want, "directive") && !strings.Contains(err.Error(), "%{request_id}W") {
				t.Errorf("error %q does not list the valid directives", err)
			}
		})
	}
}

// hostile is request data an attacker controls.
var hostile = []string{
	`/"quoted"`,
	"/new\nline",
	"/cr\rlf",
	"/ctl\x00\x01\x1b[31m\x7f",
	"/bad\xff\xfeutf8",
	"/c1\u0085\u009b",
	"/sep\u2028\u2029",
	`/back\slash`,
	"/ünïcødé",
}

func hostileRequest(s string) *http.Request {
	r := request(s)
	r.Header.Set("User-Agent", s)
	r.Header.Set("Referer", s)
	r.Host = s
	r.Header.Set("X-Custom", s)
	return r
}

// TestHostileCombined: Apache's escapes, one line.
func TestHostileCombined(t *testing.T) {
	tests := map[string]string{
		`/"quoted"`:                 `/\"quoted\"`,
		"/new\nline":                `/new\nline`,
		"/cr\rlf":                   `/cr\rlf`,
		"/ctl\x00\x01\x1b[31m\x7f":  `/ctl\x00\x01\x1b[31m\x7f`,
		"/bad\xff\xfeutf8":          `/bad\xff\xfeutf8`,
		`/back\slash`:               `/back\\slash`,
		"/ünï":                      `/\xc3\xbcn\xc3\xaf`,
		"/tab\there\bbs\vvt\x0cend": `/tab\there\bbs\vvt\x0cend`,
	}
	for in, want := range tests {
		got := line(t, `"%r" "%{User-Agent}i" %{X-Custom}i`, hostileRequest(in), served())
		if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
			t.Errorf("%q: not one line: %q", in, got)
		}
		wantLine := `"GET ` + want + ` HTTP/1.1" "` + want + `" ` + want + "\n"
		if got != wantLine {
			t.Errorf("%q:\n got %q\nwant %q", in, got, wantLine)
		}
	}
}

func decodeJSON(t testing.TB, l string) (JSONLine, map[string]any) {
	t.Helper()
	var v JSONLine
	dec := json.NewDecoder(strings.NewReader(l))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("line does not decode: %v\n%q", err, l)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(l), &m); err != nil {
		t.Fatalf("line does not decode: %v\n%q", err, l)
	}
	return v, m
}

func TestJSON(t *testing.T) {
	got := line(t, "json", request("/a?b=c"), served())
	want := `{"time":"2024-03-05T14:07:09.123+01:00","remote_addr":"192.0.2.7","method":"GET","uri":"/a?b=c",` +
		`"proto":"HTTP/1.1","host":"example.com","status":200,"bytes":42,"referer":"http://ref/","user_agent":"curl/8",` +
		`"duration_us":3456,"request_id":"abc123","group":"main","pid":4242,"queue_us":1500,"app_us":2000}` + "\n"
	if got != want {
		t.Errorf("json:\n got %s\nwant %s", got, want)
	}
	_, m := decodeJSON(t, got)
	if len(m) != 16 {
		t.Errorf("%d fields, want 16", len(m))
	}
	// No worker: null group, pid and times.
	got = line(t, "json", request("/"), &reqinfo.Info{Start: start, ID: "x", Status: 404})
	v, _ := decodeJSON(t, got)
	if v.Group != nil || v.PID != nil || v.QueueUs != nil || v.AppUs != nil {
		t.Errorf("no worker, want nulls: %s", got)
	}
}

func TestHostileJSON(t *testing.T) {
	for _, in := range hostile {
		got := line(t, "json", hostileRequest(in), served())
		if strings.Count(got, "\n") != 1 || !strings.HasSuffix(got, "\n") {
			t.Errorf("%q: not one line: %q", in, got)
		}
		for _, c := range []byte(got[:len(got)-1]) {
			if c < 0x20 || c == 0x7f {
				t.Errorf("%q: raw control byte %#x in %q", in, c, got)
			}
		}
		v, _ := decodeJSON(t, got)
		want := string([]rune(in))
		for name, f := range map[string]string{"uri": v.URI, "user_agent": v.UserAgent, "referer": v.Referer, "host": v.Host} {
			if f != want {
				t.Errorf("%q: %s decodes to %q, want %q", in, name, f, want)
			}
		}
	}
}

// TestJSONStringMatchesEncodingJSON: for any string, the appender's output
// decodes to what encoding/json's does.
func TestJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range append(hostile, "", "plain", "\xed\xa0\x80", "\U0001F600", "a\xc3") {
		checkJSONString(t, s)
	}
}

func checkJSONString(t testing.TB, s string) {
	t.Helper()
	got := appendJSONString(nil, s)
	if !json.Valid(got) {
		t.Fatalf("%q: invalid JSON %s", s, got)
	}
	var dec string
	if err := json.Unmarshal(got, &dec); err != nil {
		t.Fatal(err)
	}
	ref, _ := json.Marshal(s)
	var want string
	_ = json.Unmarshal(ref, &want)
	if dec != want {
		t.Fatalf("%q: decodes to %q, encoding/json's to %q", s, dec, want)
	}
	if bytes.ContainsAny(got, "\n\r") {
		t.Fatalf("%q: newline in %q", s, got)
	}
}

// FuzzParseFormat: any format either fails to parse or yields exactly one
// line per request, even for hostile requests.
func FuzzParseFormat(f *testing.F) {
	for _, s := range []string{Combined, Common, "json", "%{X}i %{Y}o %{request_id}W", "%>s %{ms}T", "%{", "%", "%%%", "a\tb"} {
		f.Add(s, "/x\n\"y")
	}
	f.Fuzz(func(t *testing.T, format, uri string) {
		fm, err := ParseFormat(format)
		if err != nil {
			if fm != nil {
				t.Fatal("a Format with an error")
			}
			return
		}
		r := hostileRequest(uri)
		r.Header.Set("X", uri)
		info := served()
		info.ResponseHeader.Set("Y", uri)
		out := New(nil, fm).AppendLine(nil, r, info, time.Millisecond)
		checkOneLine(t, out, fm.JSON())
	})
}

func checkOneLine(t *testing.T, out []byte, isJSON bool) {
	t.Helper()
	if len(out) == 0 || out[len(out)-1] != '\n' || bytes.Count(out, []byte("\n")) != 1 {
		t.Fatalf("not exactly one line: %q", out)
	}
	if bytes.ContainsAny(out[:len(out)-1], "\r\x00\x1b\x7f") {
		t.Fatalf("control byte in %q", out)
	}
	if isJSON && !json.Valid(out) {
		t.Fatalf("invalid JSON: %q", out)
	}
	if !isJSON && !utf8.Valid(out) {
		t.Fatalf("invalid UTF-8 in an escaped line: %q", out)
	}
}

// FuzzLine: hostile request data in every field, through combined, json
// and a custom format: one line each, the JSON valid and decoding to the
// input (invalid UTF-8 replaced).
func FuzzLine(f *testing.F) {
	for _, s := range hostile {
		f.Add(s, s, "id")
	}
	f.Fuzz(func(t *testing.T, uri, header, id string) {
		r := request(uri)
		r.Method = header
		r.Proto = header
		r.Host = header
		r.RemoteAddr = header + ":1"
		r.Header.Set("User-Agent", header)
		r.Header.Set("Referer", uri)
		info := served()
		info.ID, info.Group = id, header
		for _, format := range []string{"combined", "json", `%{group}W "%{Referer}i" %U%q %m %H %v %L`} {
			fm, err := ParseFormat(format)
			if err != nil {
				t.Fatal(err)
			}
			out := New(nil, fm).AppendLine(nil, r, info, time.Millisecond)
			checkOneLine(t, out, fm.JSON())
			if fm.JSON() {
				v, _ := decodeJSON(t, string(out))
				if want := string([]rune(uri)); v.URI != want {
					t.Fatalf("uri %q decodes to %q, want %q", uri, v.URI, want)
				}
			}
		}
		checkJSONString(t, uri)
	})
}

// The per-request cost of each format, and of encoding/json for the same
// fields (reflection), for comparison.
func BenchmarkLine(b *testing.B) {
	r := request("/some/path?with=query")
	info := served()
	for _, format := range []string{"combined", "json", `%h %{request_id}W %{group}W %{pid}W %{queue_us}W %{app_us}W "%r" %>s %b %D`} {
		fm, err := ParseFormat(format)
		if err != nil {
			b.Fatal(err)
		}
		l := New(nil, fm)
		b.Run(strings.Fields(format)[0], func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				buf = l.AppendLine(buf[:0], r, info, time.Millisecond)
			}
		})
	}
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g, p, q, a := info.Group, info.PID, info.Queue.Microseconds(), info.App.Microseconds()
			v := JSONLine{Time: info.Start.Format(isoTime), RemoteAddr: remoteIP(r), Method: r.Method, URI: r.RequestURI,
				Proto: r.Proto, Host: r.Host, Status: info.Status, Bytes: info.Bytes, Referer: r.Referer(),
				UserAgent: r.UserAgent(), DurationUs: 1000, RequestID: info.ID, Group: &g, PID: &p, QueueUs: &q, AppUs: &a}
			if _, err := json.Marshal(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Log through a Logger into a buffered Writer and into an unbuffered file,
// from parallel goroutines.
func BenchmarkLog(b *testing.B) {
	r := request("/some/path?with=query")
	info := served()
	fm, _ := ParseFormat("json")
	b.Run("buffered", func(b *testing.B) {
		w, err := OpenFile(b.TempDir()+"/access.log", nil)
		if err != nil {
			b.Fatal(err)
		}
		defer w.Stop()
		l := New(w, fm)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Log(r, info)
			}
		})
	})
	b.Run("unbuffered", func(b *testing.B) {
		f, err := openFile(b.TempDir() + "/access.log")
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		l := New(f, fm)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.Log(r, info)
			}
		})
	})
}
