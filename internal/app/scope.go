package app

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/whiskserver/whisk/internal/reqinfo"
	"github.com/whiskserver/whisk/internal/wire"
)

// buildScope writes an ASGI HTTP scope into rb (docs/protocol.md, "REQUEST
// meta: the scope"); the worker adds asgi, extensions and state.
func (h *Handler) buildScope(rb *wire.RequestBuilder, r *http.Request) {
	h.buildScopeOf(rb, r, "http", requestScheme(r))
}

// buildScopeOf writes the items HTTP and WebSocket scopes share, with type
// typ and scheme.
func (h *Handler) buildScopeOf(rb *wire.RequestBuilder, r *http.Request, typ, scheme string) {
	rb.Key("type")
	rb.Str(typ)
	rb.Key("http_version")
	switch r.ProtoMajor {
	case 2:
		rb.Str("2")
	default:
		if r.ProtoMinor == 0 {
			rb.Str("1.0")
		} else {
			rb.Str("1.1")
		}
	}
	if typ == "http" {
		rb.Key("method")
		rb.Str(r.Method)
	}
	rb.Key("scheme")
	rb.Str(scheme)
	raw := rawPath(r)
	rb.Key("path")
	if p := unescapePath(raw); utf8.ValidString(p) {
		rb.Str(p)
	} else {
		rb.Str(strings.ToValidUTF8(p, "\uFFFD"))
	}
	rb.Key("raw_path")
	rb.Bytes(raw)
	rb.Key("query_string")
	rb.Bytes(r.URL.RawQuery)
	rb.Key("root_path")
	rb.Str(h.ScriptName)
	if info := reqinfo.From(r.Context()); info != nil && info.ID != "" {
		rb.Key("whisk.request_id")
		rb.Str(info.ID)
	}

	rb.Key("headers")
	n := 0
	if r.Host != "" {
		n++
	}
	for _, values := range r.Header {
		n += len(values)
	}
	rb.List(n)
	if r.Host != "" {
		rb.Tuple(2)
		rb.Bytes("host")
		rb.Bytes(r.Host)
	}
	for name, values := range r.Header {
		for _, v := range values {
			rb.Tuple(2)
			rb.BytesLower(name)
			rb.Bytes(v)
		}
	}

	rb.Key("client")
	addrValue(rb, r.RemoteAddr)
	rb.Key("server")
	local := ""
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = a.String()
	}
	addrValue(rb, local)
}

// addrValue writes an address as ASGI's (host, port), or None when it has
// no numeric port (a unix socket, or none).
func addrValue(rb *wire.RequestBuilder, addr string) {
	host, port, ok := splitAddr(addr)
	if !ok {
		rb.None()
		return
	}
	rb.Tuple(2)
	rb.Str(host)
	rb.Int(port)
}

// splitAddr splits "host:port" with a numeric port; unix socket addresses
// have none.
func splitAddr(addr string) (string, int32, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || !utf8.ValidString(host) {
		return "", 0, false
	}
	return host, int32(p), true
}

// requestScheme is the request's scheme: the connection's, or what a
// trusted proxy said (reqinfo).
func requestScheme(r *http.Request) string {
	if info := reqinfo.From(r.Context()); info != nil && info.Scheme != "" {
		return info.Scheme
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}
