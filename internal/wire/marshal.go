package wire

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// The subset of Python's marshal format the protocol uses (docs/protocol.md).
const (
	mDict  = '{'
	mNull  = '0' // ends a dict
	mStr   = 'u' // TYPE_UNICODE: u32 length, UTF-8
	mBytes = 's' // TYPE_STRING: u32 length, bytes (ASGI scopes and heads)
	mInt   = 'i' // TYPE_INT: i32
	mNone  = 'N'
	mTuple = '('
	mList  = '['
)

// appendLatin1 appends s, whose bytes are latin-1 code points (a PEP 3333
// native string), as a marshal str: bytes 0x80–0xFF become two UTF-8 bytes.
func appendLatin1(dst []byte, s string) []byte {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			n++
		}
	}
	dst = append(dst, mStr)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	if n == len(s) {
		return append(dst, s...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 {
			dst = append(dst, c)
		} else {
			dst = append(dst, 0xC0|c>>6, 0x80|c&0x3F)
		}
	}
	return dst
}

// reader decodes the marshal subset with bounds checks; it never panics.
type reader struct {
	b   []byte
	off int
}

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, fmt.Errorf("%w: marshal data ends early", ErrMalformed)
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

func (r *reader) u32() (int, error) {
	if len(r.b)-r.off < 4 {
		return 0, fmt.Errorf("%w: marshal data ends early", ErrMalformed)
	}
	n := binary.LittleEndian.Uint32(r.b[r.off:])
	r.off += 4
	if int64(n) > int64(len(r.b)-r.off) && n > 0 {
		// A length or count can never exceed the bytes left (each item is at
		// least one byte), so this bounds every allocation by the input size.
		return 0, fmt.Errorf("%w: marshal length %d exceeds the %d bytes left", ErrMalformed, n, len(r.b)-r.off)
	}
	return int(n), nil
}

// str reads a marshal str and returns its code points as latin-1 bytes. A
// code point above U+00FF cannot be a PEP 3333 native string. It also
// takes marshal bytes, as an ASGI app's response headers are, and returns
// them as they are.
func (r *reader) str() (string, error) {
	t, err := r.byte()
	if err != nil {
		return "", err
	}
	if t != mStr && t != mBytes {
		return "", fmt.Errorf("%w: want str or bytes (marshal 'u' or 's'), got 0x%02x", ErrMalformed, t)
	}
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	raw := r.b[r.off : r.off+n]
	r.off += n
	if s, ok := common[string(raw)]; ok { // no allocation for the lookup
		return s, nil
	}
	if t == mBytes {
		return string(raw), nil
	}
	return latin1FromUTF8(raw)
}

// common holds strings that recur in nearly every response head, so
// decoding them allocates nothing.
var common = func() map[string]string {
	m := map[string]string{}
	for _, s := range []string{
		"200 OK", "201 Created", "204 No Content", "301 Moved Permanently", "302 Found",
		"304 Not Modified", "400 Bad Request", "403 Forbidden", "404 Not Found", "500 Internal Server Error",
		"Content-Type", "Content-Length", "Cache-Control", "Location", "Set-Cookie", "Vary",
		"X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy",
		"Content-Disposition", "ETag", "Last-Modified", "Expires", "Content-Language",
		"text/plain", "text/plain; charset=utf-8", "text/html", "text/html; charset=utf-8",
		"application/json", "DENY", "nosniff", "same-origin", "Cookie", "Accept-Encoding",
		// ASGI apps: bare status codes, lower-case names.
		"200", "201", "204", "301", "302", "304", "400", "403", "404", "500",
		"content-type", "content-length", "cache-control", "location", "set-cookie", "vary",
		"etag", "last-modified", "x-frame-options", "x-content-type-options", "referrer-policy",
		"cross-origin-opener-policy", "content-disposition", "server", "date",
	} {
		m[s] = s
	}
	return m
}()

// latin1FromUTF8 maps UTF-8 text whose code points are all below 0x100 to
// one byte per code point.
func latin1FromUTF8(raw []byte) (string, error) {
	ascii := true
	for _, c := range raw {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return string(raw), nil
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && size <= 1 {
			return "", fmt.Errorf("%w: invalid UTF-8 in str", ErrMalformed)
		}
		if r > 0xFF {
			return "", fmt.Errorf("%w: character %U is not latin-1 (PEP 3333 native strings hold code points below U+0100)", ErrMalformed, r)
		}
		out = append(out, byte(r))
		i += size
	}
	return string(out), nil
}

// seq reads a tuple or list header and returns its item count.
func (r *reader) seq() (int, error) {
	t, err := r.byte()
	if err != nil {
		return 0, err
	}
	if t != mTuple && t != mList {
		return 0, fmt.Errorf("%w: want tuple or list, got marshal type 0x%02x", ErrMalformed, t)
	}
	return r.u32()
}

// maxDepth bounds the nesting value decodes, so hostile input cannot
// exhaust the stack.
const maxDepth = 32

// value reads any value of the protocol's marshal subset (DecodeScope).
func (r *reader) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("%w: marshal data nested deeper than %d", ErrMalformed, maxDepth)
	}
	t, err := r.byte()
	if err != nil {
		return nil, err
	}
	switch t {
	case mStr, mBytes:
		n, err := r.u32()
		if err != nil {
			return nil, err
		}
		raw := r.b[r.off : r.off+n]
		r.off += n
		if t == mBytes {
			return append([]byte{}, raw...), nil
		}
		if !utf8.Valid(raw) {
			return nil, fmt.Errorf("%w: invalid UTF-8 in str", ErrMalformed)
		}
		return string(raw), nil
	case mInt:
		if len(r.b)-r.off < 4 {
			return nil, fmt.Errorf("%w: marshal data ends early", ErrMalformed)
		}
		v := int32(binary.LittleEndian.Uint32(r.b[r.off:]))
		r.off += 4
		return int64(v), nil
	case mNone:
		return nil, nil
	case mTuple, mList:
		n, err := r.u32()
		if err != nil {
			return nil, err
		}
		items := make([]any, 0, n)
		for range n {
			v, err := r.value(depth + 1)
			if err != nil {
				return nil, err
			}
			items = append(items, v)
		}
		return items, nil
	case mDict:
		m := map[string]any{}
		for {
			if r.off < len(r.b) && r.b[r.off] == mNull {
				r.off++
				return m, nil
			}
			k, err := r.value(depth + 1)
			if err != nil {
				return nil, err
			}
			key, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%w: dict key is not a str", ErrMalformed)
			}
			v, err := r.value(depth + 1)
			if err != nil {
				return nil, err
			}
			m[key] = v
		}
	}
	return nil, fmt.Errorf("%w: marshal type 0x%02x is not in the protocol's subset", ErrMalformed, t)
}
