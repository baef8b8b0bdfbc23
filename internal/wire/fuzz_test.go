package wire

import (
	"bytes"
	"reflect"
	"testing"
)

func FuzzParseHeader(f *testing.F) {
	f.Add(AppendHeader(nil, Header{Type: TypeRequest, Flags: FlagEnd, Stream: 1, Length: 10}))
	f.Add([]byte{1, 0x16, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		if h.Length > MaxPayload || !h.Type.Known() || h.Version != Version {
			t.Fatalf("accepted invalid header %+v", h)
		}
		if got := AppendHeader(nil, h); !bytes.Equal(got, b[:HeaderSize]) {
			t.Fatalf("re-encoded %x, want %x", got, b[:HeaderSize])
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	var rb RequestBuilder
	rb.Begin(1)
	rb.Env("PATH_INFO", "/\x00\xff")
	p, _ := rb.Finish([]byte("x"), true)
	f.Add(append([]byte(nil), p[HeaderSize:]...))
	f.Add([]byte{1, 0, 0, 0, '{'})
	f.Fuzz(func(t *testing.T, p []byte) {
		env, body, err := DecodeRequest(p)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to a frame that decodes the same.
		var rb RequestBuilder
		rb.Begin(1)
		for _, k := range sortedKeys(env) {
			rb.Env(k, env[k])
		}
		frame, err := rb.Finish(body, true)
		if err != nil {
			return
		}
		env2, body2, err := DecodeRequest(frame[HeaderSize:])
		if err != nil || !reflect.DeepEqual(env, env2) || !bytes.Equal(body, body2) {
			t.Fatalf("round trip changed the request: %v", err)
		}
	})
}

// FuzzEnviron checks that any key/value bytes survive the environ encoding.
func FuzzEnviron(f *testing.F) {
	f.Add("PATH_INFO", "/a\x00b\xff", []byte("body"))
	f.Add("HTTP_X", "", []byte{})
	f.Fuzz(func(t *testing.T, key, value string, body []byte) {
		var rb RequestBuilder
		rb.Begin(5)
		rb.Env(key, value)
		frame, err := rb.Finish(body, false)
		if err != nil {
			return
		}
		env, got, err := DecodeRequest(frame[HeaderSize:])
		if err != nil {
			t.Fatal(err)
		}
		if len(env) != 1 || env[key] != value || !bytes.Equal(got, body) {
			t.Fatalf("got %q %q, want %q=%q %q", env, got, key, value, body)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add(AppendResponse(nil, 0, 1, Head{Status: "200 OK", Fields: []Field{{"A", "b\xe9"}}}, []byte("x"))[HeaderSize:])
	f.Add([]byte{5, 0, 0, 0, '(', 2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		head, body, err := DecodeResponse(p)
		if err != nil {
			return
		}
		frame := AppendResponse(nil, 0, 1, head, body)
		head2, body2, err := DecodeResponse(frame[HeaderSize:])
		if err != nil || !reflect.DeepEqual(head, head2) || !bytes.Equal(body, body2) {
			t.Fatalf("round trip changed the response: %v", err)
		}
	})
}

func FuzzParseFileAndCredit(f *testing.F) {
	f.Add(AppendFile(nil, 0, 1, FileRange{Offset: 3, Count: 9})[HeaderSize:])
	f.Add([]byte{1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, p []byte) {
		if r, err := ParseFile(p); err == nil {
			if got := AppendFile(nil, 0, 1, r)[HeaderSize:]; !bytes.Equal(got, p) {
				t.Fatalf("FILE round trip %x != %x", got, p)
			}
		}
		if n, err := ParseCredit(p); err == nil {
			if got := AppendCredit(nil, 1, n)[HeaderSize:]; !bytes.Equal(got, p) {
				t.Fatalf("CREDIT round trip %x != %x", got, p)
			}
		}
	})
}

func FuzzParseCancel(f *testing.F) {
	f.Add([]byte{})
	f.Add(AppendCancel(nil, 1, CancelTimeout)[HeaderSize:])
	f.Add([]byte{0, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := ParseCancel(p)
		if err != nil {
			return
		}
		// A reason re-encodes to a payload that decodes the same; the
		// empty payload is the only form of CancelClientGone.
		got := AppendCancel(nil, 1, r)[HeaderSize:]
		if r2, err := ParseCancel(got); err != nil || r2 != r || (r != CancelClientGone && !bytes.Equal(got, p)) {
			t.Fatalf("CANCEL round trip of %x: %x (%v, %v)", p, got, r2, err)
		}
	})
}

// FuzzDecodeScope checks that the scope decoder never panics and that
// what it accepts re-encodes to a scope it decodes the same.
func FuzzDecodeScope(f *testing.F) {
	var rb RequestBuilder
	rb.Begin(1)
	rb.Key("type")
	rb.Str("http")
	rb.Key("headers")
	rb.List(1)
	rb.Tuple(2)
	rb.BytesLower("Host")
	rb.Bytes("h")
	rb.Key("client")
	rb.None()
	rb.Key("port")
	rb.Int(-5)
	frame, _ := rb.Finish([]byte("b"), true)
	f.Add(frame[HeaderSize:])
	f.Add([]byte{3, 0, 0, 0, '{', '[', 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		scope, _, err := DecodeScope(p)
		if err != nil {
			return
		}
		var rb RequestBuilder
		rb.Begin(1)
		for k, v := range scope {
			rb.Key(k)
			appendValue(&rb, v)
		}
		frame, err := rb.Finish(nil, true)
		if err != nil {
			return
		}
		again, _, err := DecodeScope(frame[HeaderSize:])
		if err != nil {
			t.Fatalf("re-encoded scope does not decode: %v", err)
		}
		if !reflect.DeepEqual(normal(scope), normal(again)) {
			t.Fatalf("round trip changed the scope: %#v → %#v", scope, again)
		}
	})
}

// appendValue writes a decoded value back with the builder's methods.
func appendValue(rb *RequestBuilder, v any) {
	switch v := v.(type) {
	case string:
		rb.Str(v)
	case []byte:
		rb.Bytes(string(v))
	case int64:
		rb.Int(int32(v))
	case nil:
		rb.None()
	case []any:
		rb.List(len(v))
		for _, item := range v {
			appendValue(rb, item)
		}
	case map[string]any:
		rb.b = append(rb.b, mDict)
		for k, item := range v {
			rb.Key(k)
			appendValue(rb, item)
		}
		rb.b = append(rb.b, mNull)
	}
}

// normal makes empty byte slices comparable with DeepEqual.
func normal(v any) any {
	switch v := v.(type) {
	case []byte:
		return string(v)
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = normal(item)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, item := range v {
			out[k] = normal(item)
		}
		return out
	}
	return v
}
