package wire

import (
	"encoding/binary"
	"fmt"
)

// Field is one response header as the app gave it: name and value hold
// latin-1 bytes, one per code point.
type Field struct {
	Name, Value string
}

// Head is the status and headers of a response.
type Head struct {
	// Status is the WSGI status line, such as "200 OK".
	Status string
	// Fields are the headers in the app's order, repeats included.
	Fields []Field
}

// DecodeResponse splits a RESPONSE payload into the head and the first body
// bytes. The body aliases p.
func DecodeResponse(p []byte) (Head, []byte, error) {
	if len(p) < 4 {
		return Head{}, nil, fmt.Errorf("%w: RESPONSE payload of %d bytes", ErrMalformed, len(p))
	}
	n := binary.LittleEndian.Uint32(p)
	if int64(n) > int64(len(p)-4) {
		return Head{}, nil, fmt.Errorf("%w: RESPONSE head length %d exceeds payload", ErrMalformed, n)
	}
	h, err := decodeHead(p[4 : 4+n])
	if err != nil {
		return Head{}, nil, err
	}
	return h, p[4+n:], nil
}

func decodeHead(b []byte) (Head, error) {
	r := &reader{b: b}
	n, err := r.seq()
	if err != nil {
		return Head{}, err
	}
	if n != 2 {
		return Head{}, fmt.Errorf("%w: response head has %d items, want (status, headers)", ErrMalformed, n)
	}
	var h Head
	if h.Status, err = r.str(); err != nil {
		return Head{}, fmt.Errorf("status: %w", err)
	}
	count, err := r.seq()
	if err != nil {
		return Head{}, fmt.Errorf("headers: %w", err)
	}
	h.Fields = make([]Field, 0, count)
	for i := 0; i < count; i++ {
		pair, err := r.seq()
		if err != nil {
			return Head{}, fmt.Errorf("header %d: %w", i, err)
		}
		if pair != 2 {
			return Head{}, fmt.Errorf("%w: header %d has %d items, want (name, value)", ErrMalformed, i, pair)
		}
		var f Field
		if f.Name, err = r.str(); err != nil {
			return Head{}, fmt.Errorf("header %d name: %w", i, err)
		}
		if f.Value, err = r.str(); err != nil {
			return Head{}, fmt.Errorf("header %q value: %w", f.Name, err)
		}
		h.Fields = append(h.Fields, f)
	}
	if r.off != len(b) {
		return Head{}, fmt.Errorf("%w: %d bytes after the response head", ErrMalformed, len(b)-r.off)
	}
	return h, nil
}

// AppendResponse appends a RESPONSE frame: head encoded as the worker's
// marshal.dumps((status, headers), 2) would, then body. The front never sends
// one; tests, fuzz targets and fake workers do.
func AppendResponse(dst []byte, flags Flags, stream uint32, h Head, body []byte) []byte {
	start := len(dst)
	dst = AppendHeader(dst, Header{Type: TypeResponse, Flags: flags, Stream: stream})
	dst = append(dst, 0, 0, 0, 0)
	headStart := len(dst)
	dst = append(dst, mTuple, 2, 0, 0, 0)
	dst = appendLatin1(dst, h.Status)
	dst = append(dst, mList)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(h.Fields)))
	for _, f := range h.Fields {
		dst = append(dst, mTuple, 2, 0, 0, 0)
		dst = appendLatin1(dst, f.Name)
		dst = appendLatin1(dst, f.Value)
	}
	binary.LittleEndian.PutUint32(dst[headStart-4:], uint32(len(dst)-headStart))
	dst = append(dst, body...)
	binary.LittleEndian.PutUint32(dst[start+8:], uint32(len(dst)-start-HeaderSize))
	return dst
}
