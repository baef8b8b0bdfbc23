package app

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/whiskserver/whisk/internal/wire"
)

func TestSetHeadersStatus(t *testing.T) {
	tests := []struct {
		status  string
		want    int
		wantErr string // a substring of the error; "" for success
	}{
		{"200 OK", 200, ""},
		{"200", 200, ""},
		{"404 Not Found", 404, ""},
		{"201 Created: with colon", 201, ""},
		{"299 ", 299, ""},
		{"999 Custom", 999, ""},
		{"200 Ok\x80", 200, ""}, // the reason is never sent: net/http writes its own
		{"99 X", 0, "is not like \"200 OK\""},
		{"099 X", 0, "does not start with a final status code"},
		{"100 Continue", 0, "does not start with a final status code"},
		{"199 X", 0, "does not start with a final status code"},
		{"abc", 0, "does not start with a final status code"},
		{"+20 X", 0, "does not start with a final status code"},
		{"-20 X", 0, "does not start with a final status code"},
		{" 20 X", 0, "does not start with a final status code"},
		{"1000 X", 0, "is not like \"200 OK\""},
		{"200OK", 0, "is not like \"200 OK\""},
		{"200\tOK", 0, "is not like \"200 OK\""},
		{"20", 0, "is not like \"200 OK\""},
		{"", 0, "is not like \"200 OK\""},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			rec := httptest.NewRecorder()
			ex := &exchange{w: rec}
			code, err := ex.setHeaders(wire.Head{Status: tt.status, Fields: []wire.Field{{Name: "Content-Type", Value: "text/plain"}}})
			if tt.wantErr == "" {
				if err != nil || code != tt.want {
					t.Fatalf("setHeaders(%q) = %d, %v; want %d, nil", tt.status, code, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("setHeaders(%q) = %d, nil; want an error", tt.status, code)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "status") {
				t.Errorf("setHeaders(%q) error %q, want it to contain %q", tt.status, err, tt.wantErr)
			}
		})
	}
}

func TestSetHeadersFields(t *testing.T) {
	type F struct{ name, value string } // a wire.Field, short
	tests := []struct {
		name    string
		fields  []F
		want    http.Header // exactly, Content-Type: nil included
		wantErr string      // substring naming the header
	}{
		{
			name:   "content type kept",
			fields: []F{{"Content-Type", "text/html; charset=utf-8"}, {"X-Custom", "1"}},
			want:   http.Header{"Content-Type": {"text/html; charset=utf-8"}, "X-Custom": {"1"}},
		},
		{
			name:   "no content type: nil so net/http does not sniff",
			fields: []F{{"X-Custom", "1"}},
			want:   http.Header{"Content-Type": nil, "X-Custom": {"1"}},
		},
		{
			name:   "no headers at all",
			fields: nil,
			want:   http.Header{"Content-Type": nil},
		},
		{
			name:   "names canonicalised",
			fields: []F{{"content-type", "text/plain"}, {"x-FOO-bar", "v"}, {"ETAG", `"x"`}},
			want:   http.Header{"Content-Type": {"text/plain"}, "X-Foo-Bar": {"v"}, "Etag": {`"x"`}},
		},
		{
			name: "repeated Set-Cookie kept in order",
			fields: []F{
				{"Set-Cookie", "a=1; Path=/"}, {"Content-Type", "text/plain"},
				{"Set-Cookie", "b=2; HttpOnly"}, {"set-cookie", "c=3"},
			},
			want: http.Header{"Content-Type": {"text/plain"}, "Set-Cookie": {"a=1; Path=/", "b=2; HttpOnly", "c=3"}},
		},
		{
			name: "hop-by-hop headers dropped",
			fields: []F{
				{"Transfer-Encoding", "chunked"}, {"Keep-Alive", "timeout=5"}, {"Proxy-Connection", "keep-alive"},
				{"Upgrade", "websocket"}, {"transfer-encoding", "gzip"}, {"Content-Type", "text/plain"},
			},
			want: http.Header{"Content-Type": {"text/plain"}},
		},
		{
			name:   "tab and latin-1 bytes in values are fine",
			fields: []F{{"X-Tab", "a\tb"}, {"X-Latin", "caf\xe9"}, {"X-Empty", ""}},
			want:   http.Header{"Content-Type": nil, "X-Tab": {"a\tb"}, "X-Latin": {"caf\xe9"}, "X-Empty": {""}},
		},
		{
			name:   "token characters in names",
			fields: []F{{"X-A!#$%&'*+.^_`|~09", "v"}},
			want:   http.Header{"Content-Type": nil, "X-A!#$%&'*+.^_`|~09": {"v"}},
		},
		{name: "empty name", fields: []F{{"", "v"}}, wantErr: `header name ""`},
		{name: "space in name", fields: []F{{"Bad Name", "v"}}, wantErr: `header name "Bad Name"`},
		{name: "colon in name", fields: []F{{"X:Y", "v"}}, wantErr: `header name "X:Y"`},
		{name: "separator in name", fields: []F{{"X(Y)", "v"}}, wantErr: `header name "X(Y)"`},
		{name: "slash in name", fields: []F{{"X/Y", "v"}}, wantErr: `header name "X/Y"`},
		{name: "NUL in name", fields: []F{{"X\x00", "v"}}, wantErr: "header name"},
		{name: "DEL in name", fields: []F{{"X\x7f", "v"}}, wantErr: "header name"},
		{name: "latin-1 in name", fields: []F{{"X-\xe9", "v"}}, wantErr: "header name"},
		{name: "CR in value", fields: []F{{"X-Bad", "a\rb"}}, wantErr: "header X-Bad has a control character"},
		{name: "LF in value", fields: []F{{"X-Bad", "a\nSet-Cookie: evil=1"}}, wantErr: "header X-Bad has a control character"},
		{name: "CRLF at end", fields: []F{{"Location", "/x\r\n"}}, wantErr: "header Location has a control character"},
		{name: "NUL in value", fields: []F{{"X-Bad", "a\x00b"}}, wantErr: "header X-Bad has a control character"},
		{name: "DEL in value", fields: []F{{"X-Bad", "a\x7fb"}}, wantErr: "header X-Bad has a control character"},
		{name: "other control in value", fields: []F{{"X-Bad", "a\x01b"}}, wantErr: "header X-Bad has a control character"},
		{
			name:    "a bad header after good ones",
			fields:  []F{{"Content-Type", "text/plain"}, {"Set-Cookie", "a=1"}, {"X-Bad", "\n"}},
			wantErr: "header X-Bad",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			ex := &exchange{w: rec}
			var fields []wire.Field
			for _, f := range tt.fields {
				fields = append(fields, wire.Field{Name: f.name, Value: f.value})
			}
			code, err := ex.setHeaders(wire.Head{Status: "200 OK", Fields: fields})
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("setHeaders = %d, nil; want an error containing %q", code, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || code != 200 {
				t.Fatalf("setHeaders = %d, %v; want 200, nil", code, err)
			}
			if got := rec.Header(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("headers\n got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

// net/http sniffs a Content-Type when the key is absent; setHeaders leaves
// the key with a nil value so the app's choice (none) goes out as is.
func TestSetHeadersNoSniffing(t *testing.T) {
	rec := httptest.NewRecorder()
	ex := &exchange{w: rec}
	if _, err := ex.setHeaders(wire.Head{Status: "200 OK"}); err != nil {
		t.Fatal(err)
	}
	rec.WriteHeader(200)
	rec.Write([]byte("<html><body>hi</body></html>"))
	if ct, ok := rec.Result().Header["Content-Type"]; ok && len(ct) > 0 {
		t.Errorf("Content-Type %q was sniffed", ct)
	}
}
