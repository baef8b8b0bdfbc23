package h1

import (
	"errors"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// errHandOff says the head is not one the loop serves: net/http gets the
// connection (see the package doc).
var errHandOff = errors.New("h1: head left to net/http")

// parseRequest parses a request head (the request line and header lines,
// each ending with CRLF, then the empty line) into a request with net/http's
// conventions: canonical header keys, Host moved out of Header into Host,
// ContentLength 0 when the head has none. It returns errHandOff for every
// head the loop does not serve, including every head net/http would refuse,
// so that net/http answers those as it always has.
//
// One string holds the whole head; every key and value is a slice of it,
// and one slice backs every header's value list.
func parseRequest(b []byte) (*http.Request, error) {
	if len(b) < 4 || string(b[len(b)-4:]) != "\r\n\r\n" {
		return nil, errHandOff
	}
	s := string(b[:len(b)-2]) // every line, each with its CRLF
	eol := strings.Index(s, "\r\n")
	method, rest, ok := strings.Cut(s[:eol], " ")
	if !ok || method == "CONNECT" || !httpguts.ValidHeaderFieldName(method) {
		return nil, errHandOff // a method is a token, as a field name is
	}
	target, proto, ok := strings.Cut(rest, " ")
	if !ok || target == "" || target[0] != '/' {
		return nil, errHandOff // asterisk, absolute and authority forms, HTTP/0.9
	}
	var minor int
	switch proto {
	case "HTTP/1.1":
		minor = 1
	case "HTTP/1.0":
	default:
		return nil, errHandOff
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, errHandOff
	}

	lines := s[eol+2:]
	n := strings.Count(lines, "\r\n")
	hdr := make(http.Header, n)
	vals := make([]string, n)
	var host string
	var hasHost, keepAlive, closeConn bool
	contentLength := int64(-1)
	for k := 0; lines != ""; k++ {
		eol := strings.Index(lines, "\r\n")
		line := lines[:eol]
		lines = lines[eol+2:]
		name, value, ok := strings.Cut(line, ":")
		if !ok || !httpguts.ValidHeaderFieldName(name) {
			return nil, errHandOff // no colon, a bad name, an obs-fold line
		}
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, errHandOff // a control character, a bare CR or LF
		}
		value = textproto.TrimString(value)
		key := textproto.CanonicalMIMEHeaderKey(name)
		switch key {
		case "Host":
			if hasHost || !httpguts.ValidHostHeader(value) {
				return nil, errHandOff
			}
			host, hasHost = value, true
			continue
		case "Content-Length":
			if contentLength >= 0 {
				return nil, errHandOff
			}
			if contentLength = parseContentLength(value); contentLength < 0 {
				return nil, errHandOff
			}
		case "Transfer-Encoding", "Expect", "Upgrade", "Http2-Settings":
			return nil, errHandOff
		case "Connection":
			if httpguts.HeaderValuesContainsToken([]string{value}, "upgrade") {
				return nil, errHandOff
			}
			closeConn = closeConn || httpguts.HeaderValuesContainsToken([]string{value}, "close")
			keepAlive = keepAlive || httpguts.HeaderValuesContainsToken([]string{value}, "keep-alive")
		}
		vals[k] = value
		if old, ok := hdr[key]; ok {
			hdr[key] = append(old, value)
		} else {
			hdr[key] = vals[k : k+1 : k+1]
		}
	}
	if minor == 1 && !hasHost {
		return nil, errHandOff // net/http answers 400: missing Host
	}
	r := &http.Request{
		Method:        method,
		URL:           u,
		Proto:         proto,
		ProtoMajor:    1,
		ProtoMinor:    minor,
		Header:        hdr,
		Body:          http.NoBody,
		ContentLength: max(contentLength, 0),
		Host:          host,
		RequestURI:    target,
		Close:         closeConn || minor == 0 && !keepAlive,
	}
	return r, nil
}

// parseContentLength returns the value of a Content-Length field, or -1
// when it is not a plain decimal number that fits an int64.
func parseContentLength(v string) int64 {
	if v == "" || v[0] < '0' || v[0] > '9' {
		return -1 // ParseInt would take a sign
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return -1
	}
	return n
}
