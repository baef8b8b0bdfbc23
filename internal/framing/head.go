package framing

import (
	"bytes"
	"encoding/binary"
)

// BodyKind says how the body of a request is delimited.
type BodyKind uint8

// The body kinds of an HTTP/1.x request (RFC 9112 §6.3).
const (
	// BodyNone means the request has no body: neither Content-Length nor
	// Transfer-Encoding was present.
	BodyNone BodyKind = iota
	// BodyLength means the body is Framing.ContentLength bytes long.
	BodyLength
	// BodyChunked means the body uses the chunked transfer coding.
	BodyChunked
)

// String returns "none", "length" or "chunked".
func (k BodyKind) String() string {
	switch k {
	case BodyNone:
		return "none"
	case BodyLength:
		return "length"
	case BodyChunked:
		return "chunked"
	}
	return "BodyKind(?)"
}

// Framing is the body framing of a request head that passed [CheckHead].
type Framing struct {
	// Body says how the body is delimited.
	Body BodyKind
	// ContentLength is the declared body length in bytes when Body is
	// BodyLength (it may be 0), and 0 otherwise.
	ContentLength int64
}

// Error is the error CheckHead and Conn report for a rejected request. Every
// error returned by CheckHead is an *Error.
type Error struct {
	// Reason is a short fixed description such as "bare LF". It never
	// contains bytes of the request, so it is safe to log.
	Reason string
}

// Error returns "framing: " followed by the reason.
func (e *Error) Error() string { return "framing: " + e.Reason }

// The reject reasons. They are preallocated so that rejecting does not
// allocate; tests compare against them.
var (
	errIncomplete       = &Error{"incomplete head"}
	errTrailingBytes    = &Error{"bytes after end of head"}
	errHeadTooLarge     = &Error{"request head too large"}
	errLineTooLong      = &Error{"request line too long"}
	errBareLF           = &Error{"bare LF"}
	errBareCR           = &Error{"CR not followed by LF"}
	errNUL              = &Error{"NUL byte"}
	errLeadingEmpty     = &Error{"empty line before request line"}
	errRequestLine      = &Error{"malformed request line"}
	errMethod           = &Error{"invalid method"}
	errTarget           = &Error{"invalid request target"}
	errVersion          = &Error{"unsupported HTTP version"}
	errObsFold          = &Error{"obs-fold line"}
	errFieldName        = &Error{"invalid field name"}
	errSpaceBeforeColon = &Error{"whitespace before colon"}
	errNoColon          = &Error{"field line without colon"}
	errFieldValue       = &Error{"invalid byte in field value"}
	errMultipleHost     = &Error{"multiple Host fields"}
	errTEWithCL         = &Error{"Transfer-Encoding with Content-Length"}
	errMultipleTE       = &Error{"multiple Transfer-Encoding fields"}
	errTEValue          = &Error{"Transfer-Encoding other than chunked"}
	errTEHTTP10         = &Error{"Transfer-Encoding in HTTP/1.0 request"}
	errCLValue          = &Error{"invalid Content-Length"}
	errCLConflict       = &Error{"conflicting Content-Length values"}
	errChunkLine        = &Error{"malformed chunk size line"}
	errChunkSize        = &Error{"chunk size too large"}
	errChunkLineLong    = &Error{"chunk size line too long"}
	errChunkCRLF        = &Error{"chunk data not followed by CRLF"}
	errTrailerTooLarge  = &Error{"trailer section too large"}
)

// Byte classes, as tables so the hot loops are a load and a branch per byte.
var (
	// isTchar: RFC 9110 §5.6.2 tchar, the bytes of a token (method, field name).
	isTchar [256]bool
	// isFieldByte: field-value bytes, HTAB / SP / VCHAR / obs-text
	// (RFC 9110 §5.5). The same set net/textproto accepts.
	isFieldByte [256]bool
	// isTargetByte: request-target bytes, VCHAR / obs-text (no SP, no CTL).
	isTargetByte [256]bool
	// hexVal: value of a hex digit, 0xff for other bytes.
	hexVal [256]byte
)

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		isTchar[c] = 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
			bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), b) >= 0
		isTargetByte[c] = b > ' ' && b != 0x7f
		isFieldByte[c] = isTargetByte[c] || b == ' ' || b == '\t'
		switch {
		case '0' <= b && b <= '9':
			hexVal[c] = b - '0'
		case 'a' <= b && b <= 'f':
			hexVal[c] = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			hexVal[c] = b - 'A' + 10
		default:
			hexVal[c] = 0xff
		}
	}
}

// badByte names the problem with an unexpected byte c, falling back to def
// for bytes that are merely out of place.
func badByte(c byte, def *Error) *Error {
	switch c {
	case 0:
		return errNUL
	case '\r':
		return errBareCR
	case '\n':
		return errBareLF
	}
	return def
}

// CheckHead checks one complete HTTP/1.x request head and returns its body
// framing. head must be exactly the request line, the field lines and the
// empty line that ends the head, each terminated by CRLF; anything before or
// after is an error. CheckHead does not retain head and does not allocate.
//
// CheckHead rejects, with an *Error:
//   - a bare LF, a CR not followed by LF, a NUL or other control byte;
//   - a request line that is not METHOD SP request-target SP HTTP/1.d, with
//     a token method and single spaces;
//   - an obs-fold line (starting with SP or HTAB), a field name that is not a
//     token, whitespace between field name and colon, a line without colon;
//   - more than one Host field;
//   - more than one Transfer-Encoding field, or one whose value (without
//     surrounding OWS) is not "chunked" in any case, or any
//     Transfer-Encoding in an HTTP/1.0 request;
//   - a Content-Length that is not 1*DIGIT or exceeds 2^63-1, several
//     Content-Length fields whose values differ, and Content-Length together
//     with Transfer-Encoding.
//
// A head CheckHead accepts is also accepted by [net/http.ReadRequest], which
// derives the same framing, unless net/http finds fault with the request
// target, which CheckHead only checks for control bytes and spaces.
func CheckHead(head []byte) (Framing, error) {
	f, err := checkHead(head)
	if err != nil {
		return Framing{}, err
	}
	return f, nil
}

// checkHead is CheckHead returning the concrete error type, so the Conn can
// reach the reason without an interface conversion.
func checkHead(head []byte) (Framing, *Error) {
	lf := bytes.IndexByte(head, '\n')
	if lf < 0 {
		return Framing{}, errIncomplete
	}
	if lf == 0 || head[lf-1] != '\r' {
		return Framing{}, errBareLF
	}
	if lf == 1 {
		return Framing{}, errLeadingEmpty
	}
	http10, err := checkRequestLine(head[:lf-1])
	if err != nil {
		return Framing{}, err
	}

	var (
		hosts, tes int
		cl         []byte // first Content-Length value, OWS trimmed
		f          Framing
	)
	pos := lf + 1
	for {
		i := bytes.IndexByte(head[pos:], '\n')
		if i < 0 {
			return Framing{}, errIncomplete
		}
		lf = pos + i
		if i == 0 || head[lf-1] != '\r' {
			return Framing{}, errBareLF
		}
		line := head[pos : lf-1]
		pos = lf + 1
		if len(line) == 0 {
			break
		}
		name, value, err := splitField(line)
		if err != nil {
			return Framing{}, err
		}
		switch len(name) {
		case len("host"):
			if equalFold(name, "host") {
				if hosts++; hosts > 1 {
					return Framing{}, errMultipleHost
				}
			}
		case len("content-length"):
			if !equalFold(name, "content-length") {
				break
			}
			v := trimOWS(value)
			if cl != nil {
				if !bytes.Equal(v, cl) {
					return Framing{}, errCLConflict
				}
				break
			}
			n, ok := parseLength(v)
			if !ok {
				return Framing{}, errCLValue
			}
			cl = v
			f = Framing{Body: BodyLength, ContentLength: n}
		case len("transfer-encoding"):
			if !equalFold(name, "transfer-encoding") {
				break
			}
			if tes++; tes > 1 {
				return Framing{}, errMultipleTE
			}
			if !equalFold(trimOWS(value), "chunked") {
				return Framing{}, errTEValue
			}
		}
	}
	if pos != len(head) {
		return Framing{}, errTrailingBytes
	}
	if tes > 0 {
		if cl != nil {
			return Framing{}, errTEWithCL
		}
		if http10 {
			return Framing{}, errTEHTTP10
		}
		f = Framing{Body: BodyChunked}
	}
	return f, nil
}

// checkRequestLine checks "METHOD SP request-target SP HTTP/1.d" (without
// CRLF) and reports whether the version is HTTP/1.0.
func checkRequestLine(line []byte) (http10 bool, err *Error) {
	i := 0
	for i < len(line) && isTchar[line[i]] {
		i++
	}
	if i == len(line) {
		return false, errRequestLine
	}
	if line[i] != ' ' {
		return false, badByte(line[i], errMethod)
	}
	if i == 0 {
		return false, errRequestLine
	}
	rest := line[i+1:]
	i = 0
	for i < len(rest) && isTargetByte[rest[i]] {
		i++
	}
	if i == len(rest) {
		return false, errRequestLine
	}
	if rest[i] != ' ' {
		return false, badByte(rest[i], errTarget)
	}
	if i == 0 {
		return false, errRequestLine
	}
	v := rest[i+1:]
	if len(v) != len("HTTP/1.1") || string(v[:len("HTTP/1.")]) != "HTTP/1." || v[7] < '0' || v[7] > '9' {
		for _, c := range v {
			if !isTargetByte[c] {
				return false, badByte(c, errRequestLine)
			}
		}
		return false, errVersion
	}
	return v[7] == '0', nil
}

// splitField checks a field line (without CRLF, not empty) and splits it
// into name and value (value still has its surrounding OWS).
func splitField(line []byte) (name, value []byte, err *Error) {
	if line[0] == ' ' || line[0] == '\t' {
		return nil, nil, errObsFold
	}
	i := 0
	for i < len(line) && isTchar[line[i]] {
		i++
	}
	if i == len(line) {
		return nil, nil, errNoColon
	}
	switch c := line[i]; {
	case c == ':':
		if i == 0 {
			return nil, nil, errFieldName
		}
	case c == ' ' || c == '\t':
		return nil, nil, errSpaceBeforeColon
	default:
		return nil, nil, badByte(c, errFieldName)
	}
	value = line[i+1:]
	if j := invalidFieldByte(value); j >= 0 {
		return nil, nil, badByte(value[j], errFieldValue)
	}
	return line[:i], value, nil
}

// invalidFieldByte returns the index of the first byte of v that is not a
// field-value byte, or -1. It tests eight bytes at a time for a control
// byte or DEL, and only a word with one (or a HTAB) byte by byte.
func invalidFieldByte(v []byte) int {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	i := 0
	for ; len(v)-i >= 8; i += 8 {
		x := binary.LittleEndian.Uint64(v[i:])
		del := x ^ (0x7f * ones)
		// Exact presence tests: a byte below 0x20, a byte equal to 0x7f.
		if ((x-0x20*ones)&^x|(del-ones)&^del)&high == 0 {
			continue
		}
		for j := i; j < i+8; j++ {
			if !isFieldByte[v[j]] {
				return j
			}
		}
	}
	for ; i < len(v); i++ {
		if !isFieldByte[v[i]] {
			return i
		}
	}
	return -1
}

// checkFields checks a trailer section: field lines each ending in CRLF,
// then the empty line. The section is complete and ends in CRLF (the caller
// found its end); only field syntax is checked, trailers carry no framing.
func checkFields(sec []byte) *Error {
	pos := 0
	for {
		i := bytes.IndexByte(sec[pos:], '\n')
		if i < 0 {
			return errIncomplete
		}
		lf := pos + i
		if i == 0 || sec[lf-1] != '\r' {
			return errBareLF
		}
		line := sec[pos : lf-1]
		pos = lf + 1
		if len(line) == 0 {
			return nil
		}
		if _, _, err := splitField(line); err != nil {
			return err
		}
	}
}

// parseChunkLine parses a chunk-size line including its final LF:
// 1*16HEXDIG [ ";" chunk-ext ] CRLF. The size must stay below 2^62. The
// extension is not parsed, only checked for control bytes. No whitespace is
// allowed before ";" or CRLF (net/http rejects "5 ;x" too).
func parseChunkLine(line []byte) (int64, *Error) {
	n := len(line)
	if n < 2 || line[n-2] != '\r' {
		return 0, errBareLF
	}
	body := line[:n-2]
	var size int64
	i := 0
	for ; i < len(body); i++ {
		d := hexVal[body[i]]
		if d == 0xff {
			break
		}
		// net/http refuses a 17th digit even if it is a leading zero.
		if i == 16 || size >= 1<<58 {
			return 0, errChunkSize
		}
		size = size<<4 | int64(d)
	}
	if i == 0 {
		return 0, badByte(firstOr(body, 0xff), errChunkLine)
	}
	if i == len(body) {
		return size, nil
	}
	if body[i] != ';' {
		return 0, badByte(body[i], errChunkLine)
	}
	for _, c := range body[i+1:] {
		if !isFieldByte[c] {
			return 0, badByte(c, errChunkLine)
		}
	}
	return size, nil
}

func firstOr(b []byte, def byte) byte {
	if len(b) == 0 {
		return def
	}
	return b[0]
}

// parseLength parses 1*DIGIT as a non-negative int64 (as net/http does, up
// to 2^63-1; leading zeros allowed).
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// trimOWS removes leading and trailing SP and HTAB.
func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// equalFold reports whether the ASCII bytes b equal lower, which must be
// lower case, ignoring the case of letters in b.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
