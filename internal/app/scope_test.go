package app

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"testing"

	"github.com/whiskserver/whisk/internal/reqinfo"
	"github.com/whiskserver/whisk/internal/wire"
)

// scopeOf builds r's scope (websocket when ws) through a real
// RequestBuilder and decodes the frame as a worker's marshal.loads would.
func scopeOf(t testing.TB, h *Handler, r *http.Request, ws bool) map[string]any {
	t.Helper()
	var rb wire.RequestBuilder
	rb.Begin(3)
	if ws {
		h.buildWebSocketScope(&rb, r)
	} else {
		h.buildScope(&rb, r)
	}
	frame, err := rb.Finish([]byte("body"), true)
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	scope, body, err := wire.DecodeScope(frame[wire.HeaderSize:])
	if err != nil {
		t.Fatalf("DecodeScope: %v", err)
	}
	if string(body) != "body" {
		t.Fatalf("body %q, want %q", body, "body")
	}
	return scope
}

func TestBuildScope(t *testing.T) {
	local := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 8443}
	tests := []struct {
		name   string
		raw    string
		mount  string
		local  net.Addr
		remote string
		info   *reqinfo.Info
		ws     bool
		want   map[string]any
	}{
		{
			name:   "get at the root",
			raw:    "GET /caf%C3%A9/x?q=%20a&b HTTP/1.1\r\nHost: example.com\r\nX-Multi: 1\r\nX-Multi: 2\r\n\r\n",
			local:  local,
			remote: "192.0.2.1:50000",
			want: map[string]any{
				"type": "http", "http_version": "1.1", "method": "GET", "scheme": "http",
				"path": "/café/x", "raw_path": []byte("/caf%C3%A9/x"), "query_string": []byte("q=%20a&b"),
				"root_path": "",
				"headers": []any{
					[]any{[]byte("host"), []byte("example.com")},
					[]any{[]byte("x-multi"), []byte("1")},
					[]any{[]byte("x-multi"), []byte("2")},
				},
				"client": []any{"192.0.2.1", int64(50000)},
				"server": []any{"10.0.0.5", int64(8443)},
			},
		},
		{
			name:   "mounted, invalid UTF-8, HTTP/1.0, unix peer, proxied https and an id",
			raw:    "POST /app/%FF HTTP/1.0\r\n\r\n",
			mount:  "/app",
			local:  &net.UnixAddr{Name: "/run/whisk.sock", Net: "unix"},
			remote: "@",
			info:   &reqinfo.Info{Scheme: "https", ID: "abc123"},
			want: map[string]any{
				"type": "http", "http_version": "1.0", "method": "POST", "scheme": "https",
				"path": "/app/\uFFFD", "raw_path": []byte("/app/%FF"), "query_string": []byte{},
				"root_path": "/app", "whisk.request_id": "abc123",
				"headers": []any{}, "client": nil, "server": nil,
			},
		},
		{
			name:   "websocket",
			raw:    "GET /ws HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol: v2\r\n\r\n",
			local:  local,
			remote: "[::1]:40000",
			info:   &reqinfo.Info{Scheme: "https"},
			ws:     true,
			want: map[string]any{
				"type": "websocket", "http_version": "1.1", "scheme": "wss",
				"path": "/ws", "raw_path": []byte("/ws"), "query_string": []byte{}, "root_path": "",
				"headers": []any{
					[]any{[]byte("host"), []byte("h")},
					[]any{[]byte("sec-websocket-protocol"), []byte("chat, superchat")},
					[]any{[]byte("sec-websocket-protocol"), []byte("v2")},
				},
				"client":       []any{"::1", int64(40000)},
				"server":       []any{"10.0.0.5", int64(8443)},
				"subprotocols": []any{"chat", "superchat", "v2"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := readRequest(t, tt.raw)
			r.RemoteAddr = tt.remote
			ctx := context.WithValue(r.Context(), http.LocalAddrContextKey, tt.local)
			if tt.info != nil {
				ctx = reqinfo.NewContext(ctx, tt.info)
			}
			r = r.WithContext(ctx)
			got := scopeOf(t, &Handler{ScriptName: tt.mount}, r, tt.ws)
			for k, v := range tt.want {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			for k := range got {
				if _, ok := tt.want[k]; !ok {
					t.Errorf("unexpected key %s = %#v", k, got[k])
				}
			}
		})
	}
}

// FuzzScope checks that any request the front accepts encodes to a scope
// a worker can decode, with its path and headers intact.
func FuzzScope(f *testing.F) {
	f.Add("/a%00b%ff", "q=1", "X-A", "v\xe9")
	f.Add("/", "", "Cookie", "")
	f.Fuzz(func(t *testing.T, path, query, name, value string) {
		r := &http.Request{Method: "GET", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			RequestURI: "/" + path + "?" + query, Header: http.Header{name: {value}}, Host: "h", RemoteAddr: "1.2.3.4:5"}
		r.URL = &url.URL{Path: "/" + path, RawQuery: query}
		scope := scopeOf(t, &Handler{}, r, false)
		if got := scope["raw_path"].([]byte); string(got) != rawPath(r) {
			t.Fatalf("raw_path %q, want %q", got, rawPath(r))
		}
		if got := scope["query_string"].([]byte); string(got) != query {
			t.Fatalf("query_string %q, want %q", got, query)
		}
		headers := scope["headers"].([]any)
		if len(headers) != 2 {
			t.Fatalf("headers %q, want host and %q", headers, name)
		}
		pair := headers[1].([]any)
		if string(pair[1].([]byte)) != value || len(pair[0].([]byte)) != len(name) {
			t.Fatalf("header %q, want %q: %q", pair, name, value)
		}
	})
}
