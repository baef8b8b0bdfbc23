// Package reqinfo carries what whisk learns about one request — its id,
// status and size, the group and worker that served it, how long it waited
// for a worker thread and how long the app took — from the layers that
// learn it (the front, internal/app) to those that report it (the access
// log, metrics). Handler wraps the whole server; internal/app fills in its
// part through From.
package reqinfo

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/whiskserver/whisk/internal/forwarded"
)

// Info is what is known of one request.
type Info struct {
	// Start is when the request head was read.
	Start time.Time
	// ID is the request id: the trusted X-Request-ID, or a generated one.
	ID string
	// Peer is the address the request came from (the connection's peer,
	// or the client a PROXY protocol header named): a trusted proxy's
	// when forwarded headers rewrote the request's RemoteAddr to the
	// client's.
	Peer string
	// Scheme is the scheme the client used, "http" or "https": the
	// connection's, or what a trusted proxy's forwarded headers say.
	Scheme string
	// Status is the response status (200 when the handler wrote none).
	Status int
	// Bytes is the response body size sent.
	Bytes int64
	// Group is the process group that served the request; "" when none
	// did (404, 421, 413, ...).
	Group string
	// PID is the worker process that served the request; 0 when none.
	PID int
	// Queue is how long the request waited for a worker thread.
	Queue time.Duration
	// App is the time from handing the request to the worker to the end
	// of its response.
	App time.Duration
	// ResponseHeader is the response's header map, as the handler left
	// it (the access log's %{Name}o).
	ResponseHeader http.Header
}

type key struct{}

// From returns the request's Info, or nil outside Handler.
func From(ctx context.Context) *Info {
	info, _ := ctx.Value(key{}).(*Info)
	return info
}

// NewContext returns ctx carrying info, as Handler makes each request's
// context (for handlers tested without it).
func NewContext(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, key{}, info)
}

// Config configures Handler.
type Config struct {
	// Header is the request id header; default "X-Request-ID".
	Header string
	// Trust says which peers are proxies (forwarded_allow_ips) whose
	// request id header is taken as is and whose forwarded headers name
	// the client (internal/forwarded); from other peers the id is replaced
	// by a generated one and the forwarded headers are removed. Nil trusts
	// no peer.
	Trust *forwarded.Trust
	// Done are called after each response, in order, with the request
	// and its completed Info: the access log, metrics.
	Done []func(*http.Request, *Info)
}

// Handler wraps next: it gives each request an Info with its id (set on
// the request, so the app sees it as HTTP_X_REQUEST_ID, and on the
// response), applies forwarded headers (forwarded.Request: a trusted
// proxy's name the client, so routing, the app, the access log and
// metrics all see the client's address, scheme and host; an untrusted
// peer's are removed), records status and size, and calls cfg.Done at
// the end.
func Handler(cfg Config, next http.Handler) http.Handler {
	if cfg.Header == "" {
		cfg.Header = "X-Request-ID"
	}
	cfg.Header = http.CanonicalHeaderKey(cfg.Header)
	trust := cfg.Trust
	if trust == nil {
		trust = forwarded.NewTrust(nil)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// One allocation for the Info and the writer that fills it in.
		rec := &recorder{info: Info{Start: time.Now(), Peer: r.RemoteAddr}}
		rec.ResponseWriter = w
		info := &rec.info
		// A shallow copy: RemoteAddr and Host are rewritten on it only.
		r = r.WithContext(NewContext(r.Context(), info))
		var trusted bool
		info.Scheme, trusted = forwarded.Request(r, trust)
		// cfg.Header is canonical: the map is indexed directly.
		ids := r.Header[cfg.Header]
		if len(ids) > 0 {
			info.ID = ids[0]
		}
		if info.ID == "" || len(info.ID) > 200 || !trusted {
			info.ID = newID()
			// len == cap: an Add by someone else copies the slice.
			ids = []string{info.ID}
			r.Header[cfg.Header] = ids
		}
		info.ResponseHeader = w.Header()
		info.ResponseHeader[cfg.Header] = ids[:1:1]
		defer func() {
			if info.Status == 0 {
				info.Status = http.StatusOK
			}
			for _, done := range cfg.Done {
				done(r, info)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// newID returns 16 random bytes in hex. The bytes come from the runtime's
// per-thread ChaCha8 generator, seeded from the kernel: unique like
// crypto/rand's, without its getrandom(2) call per request. A request ID
// is not a secret.
func newID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

// recorder notes the status and body size while keeping the Flusher and
// ReaderFrom (sendfile) paths of the real writer.
type recorder struct {
	http.ResponseWriter
	info Info
}

func (r *recorder) WriteHeader(code int) {
	if r.info.Status == 0 && code >= 200 {
		r.info.Status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.info.Status == 0 {
		r.info.Status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.info.Bytes += int64(n)
	return n, err
}

func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.info.Status == 0 {
		r.info.Status = http.StatusOK
	}
	n, err := io.Copy(r.ResponseWriter, src)
	r.info.Bytes += n
	return n, err
}

// Flush sends what is buffered, when the real writer can.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
