package static

import (
	"context"
	"net/http"
)

// Corker is a client connection that can hold back partial frames while a
// response is written (TCP_CORK on Linux), so that the response head, which
// net/http writes on its own just before handing the file to sendfile,
// leaves together with the file's first bytes in full-sized segments
// instead of as a lone small packet. This is nginx's tcp_nopush. The front
// puts one in the context of each HTTP/1.x request on a plain TCP
// connection (WithCorker).
type Corker interface {
	// SetCork holds back (true) or sends at once (false) partial frames.
	SetCork(on bool) error
}

type corkerKey struct{}

// WithCorker returns ctx carrying c for the handlers of the requests that
// come on c's connection.
func WithCorker(ctx context.Context, c Corker) context.Context {
	return context.WithValue(ctx, corkerKey{}, c)
}

// corkMinSize is the smallest file worth corking for: net/http sends
// smaller bodies in one write with the head after the handler returns.
const corkMinSize = 512

// cork holds back partial frames for a file response sent with sendfile
// and returns the Corker, for the handler to defer SetCork(false) before
// net/http's final flush (after ServeHTTP returns), so that nothing written
// later waits for the kernel's 200 ms cork timer. It returns nil when there
// is nothing to gain or no Corker. Only HTTP/1.x: on an HTTP/2 connection
// other streams share the socket.
func cork(r *http.Request, size int64) Corker {
	if r.ProtoMajor != 1 || r.Method != http.MethodGet || size <= corkMinSize {
		return nil
	}
	c, ok := r.Context().Value(corkerKey{}).(Corker)
	if !ok || c.SetCork(true) != nil {
		return nil
	}
	return c
}
