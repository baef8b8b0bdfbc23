// Package accesslog writes one line per request, in Apache's combined
// format (plus the time taken), as JSON lines, or in a custom format of
// Apache-style directives (ParseFormat), and buffers the lines for a file
// that SIGUSR1 can reopen (Writer). Hostile bytes in a request (quotes,
// newlines, control bytes, invalid UTF-8) are escaped, so one request is
// always exactly one line.
package accesslog

import (
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/whiskserver/whisk/internal/reqinfo"
)

// Logger writes access log lines to an io.Writer. Its methods are safe for
// concurrent use.
type Logger struct {
	format *Format
	lines  sync.Pool // *[]byte line buffers, so a line costs no allocation
	mu     sync.Mutex
	out    io.Writer
}

// New returns a Logger writing lines of format f to out; a nil f is the
// combined format. Each line reaches out in one Write.
func New(out io.Writer, f *Format) *Logger {
	if f == nil {
		f, _ = ParseFormat("combined")
	}
	return &Logger{format: f, out: out}
}

// Log writes the line of one finished request; it fits reqinfo.Config.Done.
// The time taken is measured from info.Start to the call.
func (l *Logger) Log(r *http.Request, info *reqinfo.Info) {
	dur := time.Since(info.Start)
	bp, _ := l.lines.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	b := l.AppendLine((*bp)[:0], r, info, dur)
	l.mu.Lock()
	_, _ = l.out.Write(b)
	l.mu.Unlock()
	if cap(b) <= 64<<10 {
		*bp = b
		l.lines.Put(bp)
	}
}

// AppendLine appends the line of one request, newline included, that took
// dur.
func (l *Logger) AppendLine(dst []byte, r *http.Request, info *reqinfo.Info, dur time.Duration) []byte {
	if l.format.json {
		return appendJSON(dst, r, info, dur)
	}
	return append(l.format.appendLine(dst, r, info, dur), '\n')
}
