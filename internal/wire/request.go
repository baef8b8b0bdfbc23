package wire

import (
	"encoding/binary"
	"fmt"
)

// RequestBuilder builds one REQUEST frame in a reusable buffer: Begin, then
// Env for each environ item, then Finish. The zero value is ready to use; a
// builder is not safe for concurrent use.
type RequestBuilder struct {
	b []byte
}

// Begin starts a REQUEST frame for stream, dropping any previous frame.
func (rb *RequestBuilder) Begin(stream uint32) {
	rb.b = AppendHeader(rb.b[:0], Header{Type: TypeRequest, Stream: stream})
	rb.b = append(rb.b, 0, 0, 0, 0, mDict) // meta length, patched by Finish
}

// Env adds one environ item. key must be ASCII; value's bytes are latin-1
// code points (any byte value, NUL included).
func (rb *RequestBuilder) Env(key, value string) {
	rb.b = appendLatin1(rb.b, key)
	rb.b = appendLatin1(rb.b, value)
}

// EnvBytes is Env for a value held as bytes.
func (rb *RequestBuilder) EnvBytes(key string, value []byte) {
	rb.b = appendLatin1(rb.b, key)
	rb.b = appendLatin1(rb.b, string(value)) // no copy: the conversion does not escape
}

// The methods below write an ASGI scope (docs/protocol.md, "REQUEST meta:
// the scope"): Key, then one value, for each item; a List or Tuple of n is
// followed by its n values.

// Key adds a dict key (ASCII).
func (rb *RequestBuilder) Key(k string) { rb.Str(k) }

// Str adds a str value; s must be valid UTF-8.
func (rb *RequestBuilder) Str(s string) {
	rb.b = append(rb.b, mStr)
	rb.b = binary.LittleEndian.AppendUint32(rb.b, uint32(len(s)))
	rb.b = append(rb.b, s...)
}

// Bytes adds a bytes value.
func (rb *RequestBuilder) Bytes(s string) {
	rb.b = append(rb.b, mBytes)
	rb.b = binary.LittleEndian.AppendUint32(rb.b, uint32(len(s)))
	rb.b = append(rb.b, s...)
}

// BytesLower adds a bytes value with ASCII letters lower-cased (an ASGI
// header name), without allocating.
func (rb *RequestBuilder) BytesLower(s string) {
	rb.b = append(rb.b, mBytes)
	rb.b = binary.LittleEndian.AppendUint32(rb.b, uint32(len(s)))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		rb.b = append(rb.b, c)
	}
}

// Int adds an int value.
func (rb *RequestBuilder) Int(n int32) {
	rb.b = append(rb.b, mInt)
	rb.b = binary.LittleEndian.AppendUint32(rb.b, uint32(n))
}

// None adds None.
func (rb *RequestBuilder) None() { rb.b = append(rb.b, mNone) }

// Tuple starts a tuple of n values.
func (rb *RequestBuilder) Tuple(n int) {
	rb.b = append(rb.b, mTuple)
	rb.b = binary.LittleEndian.AppendUint32(rb.b, uint32(n))
}

// List starts a list of n values.
func (rb *RequestBuilder) List(n int) {
	rb.b = append(rb.b, mList)
	rb.b = binary.LittleEndian.AppendUint32(rb.b, uint32(n))
}

// Finish ends the environ, appends body (the first body bytes; at most
// RequestWindow) and returns the whole frame. end says whether body is all of
// it. The returned slice is valid until the next Begin.
func (rb *RequestBuilder) Finish(body []byte, end bool) ([]byte, error) {
	rb.b = append(rb.b, mNull)
	meta := len(rb.b) - HeaderSize - 4
	payload := len(rb.b) - HeaderSize + len(body)
	if payload > MaxPayload {
		return nil, fmt.Errorf("%w: request head of %d bytes", ErrFrameTooLarge, payload)
	}
	binary.LittleEndian.PutUint32(rb.b[HeaderSize:], uint32(meta))
	binary.LittleEndian.PutUint32(rb.b[8:], uint32(payload))
	if end {
		binary.LittleEndian.PutUint16(rb.b[2:], uint16(FlagEnd))
	}
	rb.b = append(rb.b, body...)
	return rb.b, nil
}

// DecodeRequest splits a REQUEST payload into its environ (values as latin-1
// byte strings) and first body bytes. The front never needs it; tests and
// fuzz targets use it to check what a worker will see.
func DecodeRequest(p []byte) (env map[string]string, body []byte, err error) {
	meta, body, err := splitRequest(p)
	if err != nil {
		return nil, nil, err
	}
	r := &reader{b: meta}
	t, err := r.byte()
	if err != nil {
		return nil, nil, err
	}
	if t != mDict {
		return nil, nil, fmt.Errorf("%w: REQUEST meta is not a dict", ErrMalformed)
	}
	env = make(map[string]string)
	for {
		if r.off < len(r.b) && r.b[r.off] == mNull {
			r.off++
			break
		}
		k, err := r.str()
		if err != nil {
			return nil, nil, err
		}
		v, err := r.str()
		if err != nil {
			return nil, nil, err
		}
		env[k] = v
	}
	if r.off != len(r.b) {
		return nil, nil, fmt.Errorf("%w: %d bytes after the environ", ErrMalformed, len(r.b)-r.off)
	}
	return env, body, nil
}

// splitRequest splits a REQUEST payload into its meta and first body bytes.
func splitRequest(p []byte) (meta, body []byte, err error) {
	if len(p) < 4 {
		return nil, nil, fmt.Errorf("%w: REQUEST payload of %d bytes", ErrMalformed, len(p))
	}
	n := binary.LittleEndian.Uint32(p)
	if int64(n) > int64(len(p)-4) {
		return nil, nil, fmt.Errorf("%w: REQUEST meta length %d exceeds payload", ErrMalformed, n)
	}
	return p[4 : 4+n], p[4+n:], nil
}

// DecodeScope splits a REQUEST payload of an ASGI channel into its scope
// and first body bytes: str values as string, bytes as []byte, ints as
// int64, None as nil, tuples and lists as []any. The front never needs it;
// tests and fuzz targets use it to check what a worker will see.
func DecodeScope(p []byte) (scope map[string]any, body []byte, err error) {
	meta, body, err := splitRequest(p)
	if err != nil {
		return nil, nil, err
	}
	r := &reader{b: meta}
	v, err := r.value(0)
	if err != nil {
		return nil, nil, err
	}
	scope, ok := v.(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("%w: REQUEST meta is not a dict", ErrMalformed)
	}
	if r.off != len(r.b) {
		return nil, nil, fmt.Errorf("%w: %d bytes after the scope", ErrMalformed, len(r.b)-r.off)
	}
	return scope, body, nil
}
