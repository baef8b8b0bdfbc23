package app

import (
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/whiskserver/whisk/internal/reqinfo"
	"github.com/whiskserver/whisk/internal/wire"
)

// commonKeys maps canonical header names to their environ keys, so the
// common headers cost no allocation.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, h := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Cookie", "Dnt", "Forwarded", "If-Match", "If-Modified-Since",
		"If-None-Match", "If-Range", "If-Unmodified-Since", "Origin", "Pragma", "Range", "Referer",
		"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Te",
		"Upgrade", "Upgrade-Insecure-Requests", "User-Agent", "Via", "X-Csrftoken",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
		"X-Requested-With", "Keep-Alive", "Expect", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform",
		"Priority",
	} {
		m[h] = environKey(h)
	}
	return m
}()

// environKey returns the CGI name of a request header: HTTP_ and the name
// upper-cased with '-' as '_'.
func environKey(name string) string {
	b := make([]byte, 0, 5+len(name))
	b = append(b, "HTTP_"...)
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-':
			c = '_'
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

// unescapePath percent-decodes a raw request path into bytes. Malformed
// escapes stay as they are (as in gunicorn and mod_wsgi), so nothing is
// rejected or lost; %00 becomes a NUL byte, which the wire carries safely.
func unescapePath(raw string) string {
	i := strings.IndexByte(raw, '%')
	if i < 0 {
		return raw
	}
	b := make([]byte, 0, len(raw))
	b = append(b, raw[:i]...)
	for ; i < len(raw); i++ {
		c := raw[i]
		if c == '%' && i+2 < len(raw) && ishex(raw[i+1]) && ishex(raw[i+2]) {
			b = append(b, unhex(raw[i+1])<<4|unhex(raw[i+2]))
			i += 2
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// rawPath returns the request target's path, undecoded.
func rawPath(r *http.Request) string {
	uri := r.RequestURI
	if strings.HasPrefix(uri, "/") {
		if i := strings.IndexByte(uri, '?'); i >= 0 {
			return uri[:i]
		}
		return uri
	}
	return r.URL.EscapedPath() // absolute-form or HTTP/2
}

// buildEnviron writes the CGI part of the environ into rb (the worker adds
// the wsgi.* objects). bodyLen < 0 means no body and no Content-Length.
func (h *Handler) buildEnviron(rb *wire.RequestBuilder, r *http.Request, pathInfo string, bodyLen int64) {
	rb.Env("REQUEST_METHOD", r.Method)
	rb.Env("SCRIPT_NAME", h.ScriptName)
	rb.Env("PATH_INFO", pathInfo)
	rb.Env("QUERY_STRING", r.URL.RawQuery)
	rb.Env("SERVER_PROTOCOL", r.Proto)
	scheme := requestScheme(r) // the connection's, or a trusted proxy's X-Forwarded-Proto
	rb.Env("wsgi.url_scheme", scheme)
	if info := reqinfo.From(r.Context()); info != nil && info.ID != "" {
		// The request id, for the app (as mod_wsgi's mod_wsgi.request_id)
		// and for the worker's own log lines about the request.
		rb.Env("whisk.request_id", info.ID)
	}
	if scheme == "https" {
		rb.Env("HTTPS", "on") // as mod_wsgi and CGI servers set it
	}

	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	if port == "" { // "Host: example.com:"
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	if host == "" {
		// No Host (HTTP/1.0): PEP 3333 says SERVER_NAME and SERVER_PORT
		// are never empty, so name the address the request arrived on.
		host, port = localName(r)
	}
	rb.Env("SERVER_NAME", host)
	rb.Env("SERVER_PORT", port)
	if r.Host != "" {
		rb.Env("HTTP_HOST", r.Host)
	}
	raddr, rport, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil { // unix socket peers have no address
		raddr, rport = "", ""
	}
	rb.Env("REMOTE_ADDR", raddr)
	rb.Env("REMOTE_PORT", rport)
	if bodyLen >= 0 {
		rb.Env("CONTENT_LENGTH", strconv.FormatInt(bodyLen, 10))
	}
	for name, values := range r.Header {
		switch name {
		case "Content-Type":
			rb.Env("CONTENT_TYPE", values[0])
			continue
		case "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		key, ok := commonKeys[name]
		if !ok {
			if strings.IndexByte(name, '_') >= 0 {
				// HTTP_X_FORWARDED_FOR must not be forgeable with
				// "X_Forwarded_For": drop names that hold '_'.
				continue
			}
			key = environKey(name)
		}
		if len(values) == 1 {
			rb.Env(key, values[0])
			continue
		}
		sep := ", "
		if name == "Cookie" {
			sep = "; "
		}
		rb.Env(key, strings.Join(values, sep))
	}
}

// localName returns the host and port of the listener a request arrived
// on; for a unix socket, "localhost" and "80".
func localName(r *http.Request) (string, string) {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if h, p, err := net.SplitHostPort(a.String()); err == nil {
			return h, p
		}
	}
	return "localhost", "80"
}
