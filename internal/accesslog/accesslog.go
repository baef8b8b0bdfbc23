// Package accesslog writes one line per request: Apache's combined format
// plus the time taken.
package accesslog

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/whiskserver/whisk/internal/reqinfo"
)

// Logger writes access log lines to an io.Writer. Its methods are safe for
// concurrent use.
type Logger struct {
	mu  sync.Mutex
	out io.Writer
}

// New returns a Logger writing to out.
func New(out io.Writer) *Logger { return &Logger{out: out} }

// Log writes the line of one finished request; it fits reqinfo.Config.Done.
func (l *Logger) Log(r *http.Request, info *reqinfo.Info) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = "-"
	}
	line := fmt.Sprintf("%s - - [%s] %q %d %d %q %q %dus\n",
		host, info.Start.Format("02/Jan/2006:15:04:05 -0700"),
		r.Method+" "+r.RequestURI+" "+r.Proto, info.Status, info.Bytes,
		orDash(r.Referer()), orDash(r.UserAgent()), time.Since(info.Start).Microseconds())
	l.mu.Lock()
	io.WriteString(l.out, line)
	l.mu.Unlock()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
