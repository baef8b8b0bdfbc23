package accesslog

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Format is a parsed access_log_format: "combined", "json", or a custom
// format string of Apache-style directives. Parse it once with ParseFormat;
// a Format is read-only and safe for concurrent use.
type Format struct {
	text  string
	json  bool
	items []item
}

// String returns the format as it was given.
func (f *Format) String() string { return f.text }

// JSON reports whether the format is "json".
func (f *Format) JSON() bool { return f.json }

// Combined is Apache's combined format as whisk writes it: the time taken
// in microseconds is appended ("1234us"). %B (not %b) keeps the byte count
// a number, as whisk has always written it.
const Combined = `%h %l %u %t "%r" %>s %B "%{Referer}i" "%{User-Agent}i" %Dus`

// Common is Apache's common log format.
const Common = `%h %l %u %t "%r" %>s %b`

// op is what a directive writes.
type op uint8

const (
	opLiteral    op = iota
	opRemoteIP      // %h %a
	opLocalIP       // %A
	opLocalPort     // %p
	opDash          // %l
	opUser          // %u
	opTime          // %t
	opTimeSec       // %{sec}t
	opTimeMsec      // %{msec}t
	opTimeUsec      // %{usec}t
	opRequest       // %r
	opMethod        // %m
	opPath          // %U
	opQuery         // %q
	opProto         // %H
	opHost          // %v
	opReqHeader     // %{Name}i
	opRespHeader    // %{Name}o
	opStatus        // %s %>s %<s
	opBytesCLF      // %b
	opBytes         // %B
	opDurationUs    // %D %{us}T %{duration_us}W
	opDurationMs    // %{ms}T
	opDurationS     // %T %{s}T
	opPID           // %P %{pid}W
	opRequestID     // %L %{request_id}W
	opGroup         // %{group}W
	opQueueUs       // %{queue_us}W
	opAppUs         // %{app_us}W
	opTimeISO       // %{time}W
)

// item is one piece of a custom format: literal text, or a directive with
// its argument (a header name).
type item struct {
	op  op
	arg string
}

// simple are the directives without an argument, by letter.
var simple = map[byte]op{
	'h': opRemoteIP, 'a': opRemoteIP, 'A': opLocalIP, 'p': opLocalPort,
	'l': opDash, 'u': opUser, 't': opTime, 'r': opRequest, 'm': opMethod,
	'U': opPath, 'q': opQuery, 'H': opProto, 'v': opHost, 's': opStatus,
	'b': opBytesCLF, 'B': opBytes, 'D': opDurationUs, 'T': opDurationS,
	'P': opPID, 'L': opRequestID,
}

// braced are the directives with a fixed {argument}, by letter then
// argument; %{Name}i and %{Name}o take any header name.
var braced = map[byte]map[string]op{
	't': {"sec": opTimeSec, "msec": opTimeMsec, "usec": opTimeUsec},
	'T': {"s": opDurationS, "ms": opDurationMs, "us": opDurationUs},
	'W': {
		"request_id": opRequestID, "group": opGroup, "pid": opPID,
		"queue_us": opQueueUs, "app_us": opAppUs, "duration_us": opDurationUs,
		"time": opTimeISO,
	},
}

// Directives is the list of directives a custom format may use, for help
// and error messages.
const Directives = "%% %h %a %A %p %l %u %t %{sec}t %{msec}t %{usec}t %r %m %U %q %H %v " +
	"%s %>s %b %B %D %T %{s}T %{ms}T %{us}T %P %L %{Name}i %{Name}o " +
	"%{request_id}W %{group}W %{pid}W %{queue_us}W %{app_us}W %{duration_us}W %{time}W"

// ParseFormat parses an access_log_format: "combined" (the default),
// "common", "json", or a custom format string (see Directives). An unknown
// directive is an error that names it and lists the valid ones; so is a
// control character (other than tab) in the format's literal text, which
// would split a request's line.
func ParseFormat(s string) (*Format, error) {
	switch s {
	case "json":
		return &Format{text: s, json: true}, nil
	case "combined", "":
		f, err := parseCustom(Combined)
		if err != nil {
			return nil, err
		}
		f.text = "combined"
		return f, nil
	case "common":
		f, err := parseCustom(Common)
		if err != nil {
			return nil, err
		}
		f.text = "common"
		return f, nil
	}
	return parseCustom(s)
}

func parseCustom(s string) (*Format, error) {
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("%q is not valid UTF-8", s)
	}
	f := &Format{text: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			f.items = append(f.items, item{op: opLiteral, arg: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return nil, fmt.Errorf("control character %q at offset %d: a line must stay one line (use a tab or spaces to separate fields)", c, i)
			}
			lit.WriteByte(c)
			i++
			continue
		}
		start := i
		i++
		if i < len(s) && s[i] == '%' {
			lit.WriteByte('%')
			i++
			continue
		}
		// Apache's status modifiers: %>s is the final status, %<s the
		// original; whisk has one status, so both are the same.
		if i < len(s) && (s[i] == '>' || s[i] == '<') {
			i++
		}
		arg, hasArg := "", false
		if i < len(s) && s[i] == '{' {
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%q at offset %d: unclosed {; valid directives: %s", s[start:], start, Directives)
			}
			arg, hasArg = s[i+1:i+end], true
			i += end + 1
		}
		if i >= len(s) {
			return nil, fmt.Errorf("%q at the end of the format: a directive needs its letter; valid directives: %s", s[start:], Directives)
		}
		letter := s[i]
		i++
		spec := s[start:i]
		if mod := s[start+1]; (mod == '>' || mod == '<') && letter != 's' {
			return nil, fmt.Errorf("unknown directive %q: the %c modifier goes with %%s only; valid directives: %s", spec, mod, Directives)
		}
		var it item
		switch {
		case hasArg && (letter == 'i' || letter == 'o'):
			if arg == "" || strings.ContainsAny(arg, " \t:\r\n") {
				return nil, fmt.Errorf("directive %q: %q is not a header name", spec, arg)
			}
			it = item{op: opReqHeader, arg: http.CanonicalHeaderKey(arg)}
			if letter == 'o' {
				it.op = opRespHeader
			}
		case hasArg:
			o, ok := braced[letter][arg]
			if !ok {
				return nil, fmt.Errorf("unknown directive %q; valid directives: %s", spec, Directives)
			}
			it = item{op: o}
		default:
			o, ok := simple[letter]
			if !ok {
				return nil, fmt.Errorf("unknown directive %q; valid directives: %s", spec, Directives)
			}
			it = item{op: o}
		}
		flush()
		f.items = append(f.items, it)
	}
	flush()
	return f, nil
}
