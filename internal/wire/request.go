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
	if len(p) < 4 {
		return nil, nil, fmt.Errorf("%w: REQUEST payload of %d bytes", ErrMalformed, len(p))
	}
	n := binary.LittleEndian.Uint32(p)
	if int64(n) > int64(len(p)-4) {
		return nil, nil, fmt.Errorf("%w: REQUEST meta length %d exceeds payload", ErrMalformed, n)
	}
	r := &reader{b: p[4 : 4+n]}
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
	return env, p[4+n:], nil
}
