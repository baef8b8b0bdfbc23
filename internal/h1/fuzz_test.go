package h1

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"testing"
)

// FuzzParseRequest checks parseRequest against net/http's own parser: a
// head the loop serves must be one http.ReadRequest accepts, read the same
// way (method, target, URL, Host, header fields, Content-Length, Close).
// Anything else must be errHandOff, never a panic.
func FuzzParseRequest(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		"GET /a%20b/c?x=1&y=%2F HTTP/1.1\r\nHost: h:8000\r\nAccept: */*\r\nX-Two: 1\r\nx-two: 2\r\n\r\n",
		"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nA:  padded value \t\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nFolded: a\r\n b\r\n\r\n",
		"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n",
		"get /lower HTTP/1.1\r\nHost: h\r\nhOsT-X: v\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		// The loop sees a head up to its first empty line.
		if i := bytes.Index(head, crlfcrlf); i >= 0 {
			head = head[:i+4]
		}
		got, err := parseRequest(head)
		if err != nil {
			if !errors.Is(err, errHandOff) {
				t.Fatalf("parseRequest(%q): error %v, want errHandOff", head, err)
			}
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("parseRequest accepted %q, which net/http refuses: %v", head, err)
		}
		if want.Method == "" || want.ProtoMajor != 1 {
			t.Fatalf("parseRequest accepted %q: net/http reads method %q, HTTP/%d", head, want.Method, want.ProtoMajor)
		}
		check := func(what string, g, w any) {
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%q: %s = %#v, net/http reads %#v", head, what, g, w)
			}
		}
		check("Method", got.Method, want.Method)
		check("RequestURI", got.RequestURI, want.RequestURI)
		check("URL", got.URL.String(), want.URL.String())
		check("URL.Path", got.URL.Path, want.URL.Path)
		check("URL.RawPath", got.URL.RawPath, want.URL.RawPath)
		check("URL.RawQuery", got.URL.RawQuery, want.URL.RawQuery)
		check("Proto", got.Proto, want.Proto)
		check("ProtoMinor", got.ProtoMinor, want.ProtoMinor)
		check("Host", got.Host, want.Host)
		check("Header", got.Header, want.Header)
		check("ContentLength", got.ContentLength, want.ContentLength)
		check("Close", got.Close, want.Close)
		check("TransferEncoding", len(want.TransferEncoding), 0)
	})
}
