package framing

import (
	"context"
	"fmt"
	"net"
	"net/http"
)

// Status returns the HTTP status that answers the rejection: 414 URI Too
// Long for a request line over Options.MaxRequestLine, 431 Request Header
// Fields Too Large for a head over Options.MaxHeadBytes, and 400 Bad
// Request for everything else.
func (e *Error) Status() int {
	switch e {
	case errLineTooLong:
		return http.StatusRequestURITooLong
	case errHeadTooLarge:
		return http.StatusRequestHeaderFieldsTooLarge
	}
	return http.StatusBadRequest
}

// statusTarget is the request target of statusRequest.
const statusTarget = "/.well-known/whisk-framing-rejected"

// statusRequest is what Read returns instead of a message rejected with a
// status of its own when Options.StatusResponses is set: a well-formed
// request that Handler answers with that status, closing the connection.
// It is delivered only at a message boundary (a head is rejected), so
// net/http reads it as a new request; io.EOF follows it.
const statusRequest = "GET " + statusTarget + " HTTP/1.1\r\nHost: whisk\r\nConnection: close\r\n\r\n"

// rejectBytes is what Read delivers in place of the rejected message.
func (c *Conn) rejectBytes() string {
	if c.status && c.rejErr != nil && c.rejErr.Status() != http.StatusBadRequest {
		return statusRequest
	}
	return rejectRequest
}

// connKey is the context key of the *Conn a request came on.
type connKey struct{}

// framingConn returns c. Types that embed a *Conn (a TLS connection's
// wrapper that adds ConnectionState) get it too, so ConnContext finds them.
func (c *Conn) framingConn() *Conn { return c }

// ConnContext is an http.Server.ConnContext that records the *Conn a
// request comes on (or the *Conn embedded in the connection, or under it:
// wrappers that have a NetConn method are looked through), for [Handler].
// Other connections leave ctx as it is.
func ConnContext(ctx context.Context, nc net.Conn) context.Context {
	for nc != nil {
		if c, ok := nc.(interface{ framingConn() *Conn }); ok {
			return context.WithValue(ctx, connKey{}, c.framingConn())
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		nc = u.NetConn() // a wrapper over the guard's connection
	}
	return ctx
}

// PassthroughContext calls [Conn.Passthrough] on the connection of the
// request whose context is ctx (recorded by [ConnContext]), and reports
// whether there was one. A handler switching protocols calls it before the
// 101 response goes out: the client's first frames may follow at once, and
// net/http's background read would otherwise check them as a request head.
func PassthroughContext(ctx context.Context) bool {
	c, ok := ctx.Value(connKey{}).(*Conn)
	if ok {
		c.Passthrough()
	}
	return ok
}

// Handler answers the request Options.StatusResponses substitutes for a
// rejected head with the rejection's status (414 or 431) and closes the
// connection; every other request goes to next. The substitute is known by
// its target and by its connection having delivered it, so a client cannot
// forge it to get anything but its own connection closed.
func Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.RequestURI == statusTarget {
			if c, ok := r.Context().Value(connKey{}).(*Conn); ok {
				if status := int(c.statusOut.Load()); status != 0 {
					c.answer(w, status)
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// answer writes the response to a status request.
func (c *Conn) answer(w http.ResponseWriter, status int) {
	msg := "the request head is over the limit of %d bytes"
	limit := c.max
	if status == http.StatusRequestURITooLong {
		msg, limit = "the request line is over the limit of %d bytes", c.maxLine
	}
	w.Header().Set("Connection", "close")
	http.Error(w, fmt.Sprintf("%d %s: "+msg, status, http.StatusText(status), limit), status)
}
