package accesslog

import (
	"encoding/base64"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/whiskserver/whisk/internal/reqinfo"
)

const hexDigits = "0123456789abcdef"

// clfTime is the layout of %t (Apache's [10/Oct/2000:13:55:36 -0700]).
const clfTime = "[02/Jan/2006:15:04:05 -0700]"

// isoTime is RFC 3339 with milliseconds, the layout of the json format's
// time and of %{time}W.
const isoTime = "2006-01-02T15:04:05.000Z07:00"

// appendLine appends one request's line in format f, without the newline.
// Every value is escaped the way Apache escapes log items, so the line
// holds no control byte (other than the format's own tabs).
func (f *Format) appendLine(dst []byte, r *http.Request, info *reqinfo.Info, dur time.Duration) []byte {
	for _, it := range f.items {
		switch it.op {
		case opLiteral:
			dst = append(dst, it.arg...)
		case opRemoteIP:
			dst = appendItem(dst, remoteIP(r))
		case opLocalIP, opLocalPort:
			host, port := localAddr(r)
			if it.op == opLocalIP {
				dst = appendItem(dst, host)
			} else {
				dst = appendItem(dst, port)
			}
		case opDash:
			dst = append(dst, '-')
		case opUser:
			dst = appendItem(dst, basicUser(r))
		case opTime:
			dst = info.Start.AppendFormat(dst, clfTime)
		case opTimeSec:
			dst = strconv.AppendInt(dst, info.Start.Unix(), 10)
		case opTimeMsec:
			dst = strconv.AppendInt(dst, info.Start.UnixMilli(), 10)
		case opTimeUsec:
			dst = strconv.AppendInt(dst, info.Start.UnixMicro(), 10)
		case opTimeISO:
			dst = info.Start.AppendFormat(dst, isoTime)
		case opRequest:
			dst = appendLogItem(dst, r.Method)
			dst = append(dst, ' ')
			dst = appendLogItem(dst, r.RequestURI)
			dst = append(dst, ' ')
			dst = appendLogItem(dst, r.Proto)
		case opMethod:
			dst = appendItem(dst, r.Method)
		case opPath:
			path, _, _ := strings.Cut(r.RequestURI, "?")
			dst = appendItem(dst, path)
		case opQuery:
			if _, q, ok := strings.Cut(r.RequestURI, "?"); ok {
				dst = append(dst, '?')
				dst = appendLogItem(dst, q)
			}
		case opProto:
			dst = appendItem(dst, r.Proto)
		case opHost:
			dst = appendItem(dst, r.Host)
		case opReqHeader:
			dst = appendItem(dst, headerValue(r.Header, it.arg))
		case opRespHeader:
			dst = appendItem(dst, headerValue(info.ResponseHeader, it.arg))
		case opStatus:
			dst = strconv.AppendInt(dst, int64(info.Status), 10)
		case opBytesCLF:
			if info.Bytes == 0 {
				dst = append(dst, '-')
			} else {
				dst = strconv.AppendInt(dst, info.Bytes, 10)
			}
		case opBytes:
			dst = strconv.AppendInt(dst, info.Bytes, 10)
		case opDurationUs:
			dst = strconv.AppendInt(dst, dur.Microseconds(), 10)
		case opDurationMs:
			dst = strconv.AppendInt(dst, dur.Milliseconds(), 10)
		case opDurationS:
			dst = strconv.AppendInt(dst, int64(dur/time.Second), 10)
		case opPID:
			if info.PID == 0 {
				dst = append(dst, '-')
			} else {
				dst = strconv.AppendInt(dst, int64(info.PID), 10)
			}
		case opRequestID:
			dst = appendItem(dst, info.ID)
		case opGroup:
			dst = appendItem(dst, info.Group)
		case opQueueUs, opAppUs:
			if info.Group == "" {
				dst = append(dst, '-')
			} else if it.op == opQueueUs {
				dst = strconv.AppendInt(dst, info.Queue.Microseconds(), 10)
			} else {
				dst = strconv.AppendInt(dst, info.App.Microseconds(), 10)
			}
		}
	}
	return dst
}

// JSONLine is a line of the json format, as encoding/json decodes it: the
// fields appendJSON writes, in its order, and no other.
type JSONLine struct {
	Time       string  `json:"time"` // RFC 3339 with milliseconds
	RemoteAddr string  `json:"remote_addr"`
	Method     string  `json:"method"`
	URI        string  `json:"uri"`
	Proto      string  `json:"proto"`
	Host       string  `json:"host"`
	Status     int     `json:"status"`
	Bytes      int64   `json:"bytes"`
	Referer    string  `json:"referer"`
	UserAgent  string  `json:"user_agent"`
	DurationUs int64   `json:"duration_us"`
	RequestID  string  `json:"request_id"`
	Group      *string `json:"group"`    // nil when no group served the request
	PID        *int    `json:"pid"`      // nil when no worker did
	QueueUs    *int64  `json:"queue_us"` // nil when Group is
	AppUs      *int64  `json:"app_us"`   // nil when Group is
}

// appendJSON appends one request as a JSON object (a JSONLine) and a
// newline. Strings are escaped for JSON (invalid UTF-8 becomes U+FFFD);
// group, pid, queue_us and app_us are null when no worker served the
// request.
func appendJSON(dst []byte, r *http.Request, info *reqinfo.Info, dur time.Duration) []byte {
	dst = append(dst, `{"time":"`...)
	dst = info.Start.AppendFormat(dst, isoTime)
	dst = append(dst, `","remote_addr":`...)
	dst = appendJSONString(dst, remoteIP(r))
	dst = append(dst, `,"method":`...)
	dst = appendJSONString(dst, r.Method)
	dst = append(dst, `,"uri":`...)
	dst = appendJSONString(dst, r.RequestURI)
	dst = append(dst, `,"proto":`...)
	dst = appendJSONString(dst, r.Proto)
	dst = append(dst, `,"host":`...)
	dst = appendJSONString(dst, r.Host)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(info.Status), 10)
	dst = append(dst, `,"bytes":`...)
	dst = strconv.AppendInt(dst, info.Bytes, 10)
	dst = append(dst, `,"referer":`...)
	dst = appendJSONString(dst, headerValue(r.Header, "Referer"))
	dst = append(dst, `,"user_agent":`...)
	dst = appendJSONString(dst, headerValue(r.Header, "User-Agent"))
	dst = append(dst, `,"duration_us":`...)
	dst = strconv.AppendInt(dst, dur.Microseconds(), 10)
	dst = append(dst, `,"request_id":`...)
	dst = appendJSONString(dst, info.ID)
	if info.Group == "" {
		dst = append(dst, `,"group":null`...)
	} else {
		dst = append(dst, `,"group":`...)
		dst = appendJSONString(dst, info.Group)
	}
	dst = append(dst, `,"pid":`...)
	if info.PID == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, int64(info.PID), 10)
	}
	if info.Group == "" {
		dst = append(dst, `,"queue_us":null,"app_us":null`...)
	} else {
		dst = append(dst, `,"queue_us":`...)
		dst = strconv.AppendInt(dst, info.Queue.Microseconds(), 10)
		dst = append(dst, `,"app_us":`...)
		dst = strconv.AppendInt(dst, info.App.Microseconds(), 10)
	}
	return append(dst, "}\n"...)
}

// remoteIP is the client's address without the port; "" for a unix socket
// peer.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// localAddr is the address and port the request came in on.
func localAddr(r *http.Request) (host, port string) {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return "", ""
	}
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String(), "" // a unix socket: its path
	}
	return host, port
}

// basicUser is the user name of a Basic Authorization header, as Apache's
// %u logs it.
func basicUser(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	const prefix = "Basic "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(auth[len(prefix):])
	if err != nil {
		return ""
	}
	user, _, _ := strings.Cut(string(raw), ":")
	return user
}

// headerValue is the header's first value; name is canonical.
func headerValue(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// appendItem appends s escaped as appendLogItem does, or "-" if it is
// empty, as Apache logs a missing value.
func appendItem(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, '-')
	}
	return appendLogItem(dst, s)
}

// appendLogItem appends s escaped the way Apache's ap_escape_logitem does:
// a quote and a backslash get a backslash, \b \n \r \t \v their C escapes,
// and every other byte outside printable ASCII (0x20-0x7e) is \xHH.
func appendLogItem(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = appendEscape(dst, c, false)
		start = i + 1
	}
	return append(dst, s[start:]...)
}

// appendEscape appends the escape of byte c: \" \\ \n \r \t in both forms;
// otherwise, in a log item (json false), Apache's \b \v or \xHH, and in a
// JSON string (c is ASCII there), \u00HH.
func appendEscape(dst []byte, c byte, json bool) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	if json {
		return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
	}
	switch c {
	case '\b':
		return append(dst, '\\', 'b')
	case '\v':
		return append(dst, '\\', 'v')
	}
	return append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
}

// appendJSONString appends s as a JSON string. Control characters (C0,
// DEL and C1) and U+2028/U+2029 are \u-escaped, so a terminal showing the
// log cannot be driven by them; invalid UTF-8 becomes U+FFFD, as
// encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = appendEscape(dst, c, true)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r <= 0x9f || r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
