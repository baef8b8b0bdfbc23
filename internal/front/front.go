// Package front is whisk's HTTP side: it opens the listeners (TCP and unix
// sockets, or those systemd passed by socket activation), runs net/http behind the framing guard, applies the
// connection-level limits and timeouts, writes the access log, and shuts
// down gracefully. Routing to app mounts comes in with the config file;
// today one handler serves every request.
package front

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/whiskserver/whisk/internal/framing"
	"github.com/whiskserver/whisk/internal/h1"
)

// Config configures a Server.
type Config struct {
	// Binds are the addresses to listen on: HOST:PORT or unix:PATH. A bind
	// whose address an inherited socket has takes that socket.
	Binds []string
	// Inherited are the sockets systemd passed (socket activation); nil
	// for none.
	Inherited *Inherited
	// ServeInherited serves every inherited socket instead of Binds (bind
	// was not set: systemd's sockets say where to listen), except those
	// whose address Reserved names: they belong to other listeners
	// (admin_bind, health_bind), which take them with Listen.
	ServeInherited bool
	// Reserved are the binds of other listeners; see ServeInherited.
	Reserved []string
	// Handler serves every request.
	Handler http.Handler
	// Outer, when set, wraps the handler that answers every request,
	// Handler's and the framing guard's 414 and 431 answers alike, so
	// that the access log and metrics see those too.
	Outer func(http.Handler) http.Handler
	// ReadHeaderTimeout bounds the time a client may take to send a
	// request head.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle that long.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request head (431 beyond).
	MaxHeaderBytes int
	// Limits are the request line, write, connection and unix socket
	// limits (limits.go).
	Limits Limits
	// Log is the server log.
	Log *slog.Logger
	// TLSBinds are the HTTPS addresses (tls.go), served with Certs.
	TLSBinds []string
	// Certs are the HTTPS listeners' certificates; needed with TLSBinds.
	Certs *Certs
	// H2C serves HTTP/2 with prior knowledge on the plain listeners.
	H2C bool
	// Proxy, when not nil, reads a PROXY protocol header on the
	// connections of every app listener, plain and TLS (proxyproto.go).
	Proxy *ProxyOptions
}

// Server is the HTTP front.
type Server struct {
	cfg          Config
	srv          *http.Server
	fast         *h1.Server // the plain HTTP/1.x listeners' loop; nil with H2C
	listeners    []net.Listener
	tlsListeners []net.Listener // raw; Serve puts TLS on them (tls.go)
}

// New opens every listener. On error, those already opened are closed.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg}
	// HTTPS first: its binds take their inherited sockets before the rest go to bind.
	if err := s.openTLS(); err != nil {
		return nil, err
	}
	if cfg.ServeInherited && cfg.Inherited.Len() > 0 {
		for _, sock := range cfg.Inherited.takeAll(cfg.Reserved) {
			s.listeners = append(s.listeners, sock.l)
		}
		if len(s.listeners) == 0 && len(s.tlsListeners) == 0 {
			s.closeListeners()
			return nil, errors.New("socket activation: every socket systemd passed belongs to admin_bind or health_bind; add one for the app, or set bind")
		}
	} else {
		for _, b := range cfg.Binds {
			l, err := Listen(b, cfg.Inherited)
			if err != nil {
				s.closeListeners()
				return nil, err
			}
			s.listeners = append(s.listeners, l)
		}
	}
	for _, l := range s.allListeners() {
		if sock, ok := cfg.Inherited.find(l); ok {
			cfg.Log.Info("listening on a socket systemd passed", "fd", sock.fd, "name", sock.name, "address", addrString(l.Addr()))
		} else if err := applySocketPerms(l, cfg.Limits); err != nil {
			s.closeListeners()
			return nil, err
		}
	}
	s.wrapProxy()                           // under TLS: the PROXY header comes first
	handler := framing.Handler(cfg.Handler) // answers 414 and 431 (framing.Options.StatusResponses)
	if cfg.Outer != nil {
		handler = cfg.Outer(handler)
	}
	s.srv = &http.Server{
		Handler:           handler,
		ConnContext:       connContext, // framing.ConnContext plus the static.Corker (cork.go)
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(cfg.Log.Handler(), slog.LevelDebug),
		Protocols:         protocols(cfg.H2C),
	}
	if !cfg.H2C && len(s.listeners) > 0 {
		// Plain HTTP/1.x goes through the lean loop; the connections it
		// hands over (uploads in chunks, WebSockets, anything unusual)
		// and every TLS connection are net/http's.
		s.fast = &h1.Server{
			Handler:           handler,
			ConnContext:       connContext,
			ReadHeaderTimeout: cfg.ReadHeaderTimeout,
			IdleTimeout:       cfg.IdleTimeout,
			HandOff:           h1.NewListener(s.listeners[0].Addr()),
			Log:               cfg.Log,
		}
	}
	return s, nil
}

// Listen returns a listener for bind (HOST:PORT or unix:PATH): the
// inherited socket with its address if in holds one (its mode and owner
// are systemd's, and whisk never unlinks it), else a new socket. A stale
// unix socket file left by a server that is gone is replaced.
func Listen(bind string, in *Inherited) (net.Listener, error) {
	if l, ok := in.Take(bind); ok {
		return l, nil
	}
	return listen(bind)
}

func listen(bind string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(bind, "unix:"); ok {
		if path == "" {
			return nil, fmt.Errorf("listen %q: empty socket path (use unix:/run/app.sock)", bind)
		}
		removeStaleSocket(path)
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", bind, err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(true)
		return l, nil
	}
	if _, _, err := net.SplitHostPort(bind); err != nil {
		return nil, fmt.Errorf("--bind %q: want HOST:PORT (like 127.0.0.1:8000 or [::]:8000) or unix:PATH", bind)
	}
	l, err := net.Listen("tcp", bind)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen on %s: the address is already in use (another server? pick another --bind)", bind)
		}
		return nil, fmt.Errorf("listen on %s: %w", bind, err)
	}
	return l, nil
}

// removeStaleSocket removes a socket file left by a server that is gone
// (nothing accepts on it), so a restart does not fail with "address in use".
func removeStaleSocket(path string) {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return
	}
	os.Remove(path)
}

// Addrs returns the listeners' addresses.
func (s *Server) Addrs() []net.Addr {
	var out []net.Addr
	for _, l := range s.allListeners() {
		out = append(out, l.Addr())
	}
	return out
}

// Serve serves every listener until Shutdown, then returns nil; any other
// serving error is returned.
func (s *Server) Serve() error {
	errc := make(chan error, len(s.listeners)+len(s.tlsListeners))
	opts := framing.Options{
		MaxHeadBytes:    s.cfg.MaxHeaderBytes, // the guard answers 431 before net/http would
		MaxRequestLine:  s.cfg.Limits.MaxRequestLine,
		StatusResponses: true,
		OnReject: func(remote net.Addr, reason string) {
			s.cfg.Log.Debug("rejected a request head", "remote", remote.String(), "reason", reason)
		},
	}
	lm := newLimiter(s.cfg.Limits) // max_connections and write_timeout, shared by all listeners
	serving := len(s.listeners) + len(s.tlsListeners)
	for _, l := range s.listeners {
		go func() {
			if s.fast != nil {
				errc <- s.fast.Serve(s.guardPlain(lm.wrap(l), opts))
			} else {
				errc <- s.srv.Serve(s.guardPlain(lm.wrap(l), opts))
			}
		}()
	}
	if s.fast != nil {
		serving++
		go func() { errc <- s.srv.Serve(s.fast.HandOff) }()
	}
	for _, l := range s.tlsListeners {
		go func() {
			errc <- s.srv.Serve(s.guardTLS(lm.wrap(l), opts))
		}()
	}
	var first error
	for range serving {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) && first == nil {
			first = err
		}
	}
	return first
}

// Shutdown stops accepting, waits for in-flight requests until ctx ends,
// then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	var fastErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.fast != nil {
			if fastErr = s.fast.Shutdown(ctx); fastErr != nil {
				s.fast.Close()
			}
		}
	}()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	<-done
	return errors.Join(err, fastErr)
}

func (s *Server) closeListeners() {
	for _, l := range s.allListeners() {
		l.Close()
	}
}
