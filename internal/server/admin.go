package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/whiskserver/whisk/internal/admin"
	"github.com/whiskserver/whisk/internal/config"
	"github.com/whiskserver/whisk/internal/front"
	"github.com/whiskserver/whisk/internal/group"
)

// adminListener is the admin_bind or health_bind listener.
type adminListener struct {
	setting string // admin_bind or health_bind
	l       net.Listener
	srv     *http.Server
}

// openAdmin opens the admin_bind and health_bind listeners (taking a
// socket systemd passed for their address) and starts serving them, so
// /healthz answers while the groups start. On error those already opened
// are closed.
func (s *Server) openAdmin(cfg *config.Config) error {
	binds := []struct {
		setting, bind string
		handler       http.Handler
	}{
		{"admin_bind", cfg.Server.AdminBind, admin.Handler(admin.Config{Source: s, Metrics: s.obs.Handler(), Version: s.deps.Version, Log: s.deps.Log})},
		{"health_bind", cfg.Server.HealthBind, admin.Health(s)},
	}
	for _, b := range binds {
		if b.bind == "" {
			continue
		}
		l, err := front.Listen(b.bind, s.deps.Inherited)
		if err != nil {
			s.closeAdmin()
			return fmt.Errorf("%s: %w", b.setting, err)
		}
		a := &adminListener{setting: b.setting, l: l, srv: &http.Server{
			Handler:           b.handler,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(s.deps.Log.Handler(), slog.LevelDebug),
		}}
		s.admins = append(s.admins, a)
		paths := "/metrics /status /status.json /healthz /readyz"
		if b.setting == "health_bind" {
			paths = "/healthz /readyz"
		}
		s.deps.Log.Info("admin listener", "setting", b.setting, "listen", l.Addr().Network()+":"+l.Addr().String(), "paths", paths)
		go func() {
			if err := a.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.deps.Log.Error("admin listener failed", "setting", a.setting, "error", err)
			}
		}()
	}
	return nil
}

// closeAdmin closes the admin listeners, letting their requests in
// progress finish for a moment.
func (s *Server) closeAdmin() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, a := range s.admins {
		if err := a.srv.Shutdown(ctx); err != nil {
			a.srv.Close()
		}
		a.l.Close() // when Serve has not started yet
	}
	s.admins = nil
}

// AdminAddrs returns the addresses of the admin_bind and health_bind
// listeners, in that order (those configured).
func (s *Server) AdminAddrs() []string {
	var out []string
	for _, a := range s.admins {
		out = append(out, a.l.Addr().Network()+":"+a.l.Addr().String())
	}
	return out
}

// Generation returns the number of the generation serving (1 for the
// first, one more per reload or code restart), 0 before Start.
func (s *Server) Generation() int {
	if g := s.live.Load(); g != nil {
		return g.serial
	}
	return 0
}

// ConfigDigest returns the SHA-256 (hex) of the serving generation's
// configuration as `whisk check` prints it, "" before Start.
func (s *Server) ConfigDigest() string {
	if g := s.live.Load(); g != nil {
		return g.digest
	}
	return ""
}

// ShuttingDown reports whether BeginShutdown (or Shutdown) was called.
func (s *Server) ShuttingDown() bool { return s.shuttingDown.Load() }

// BeginShutdown starts the shutdown: /readyz answers 503 from now on,
// while every listener keeps serving.
func (s *Server) BeginShutdown() {
	if !s.shuttingDown.Swap(true) {
		s.deps.Log.Info("shutting down: /readyz now fails")
	}
}

// ShutdownAfter is BeginShutdown, then a pause of delay while requests are
// still served (so that load balancers probing /readyz stop sending new
// ones), then Shutdown(ctx). The pause ends early when ctx ends; ctx
// bounds the whole of it.
func (s *Server) ShutdownAfter(ctx context.Context, delay time.Duration) error {
	s.BeginShutdown()
	if dl, ok := ctx.Deadline(); ok && delay > 0 && time.Until(dl) <= delay {
		s.deps.Log.Warn("shutdown_delay is as long as graceful_timeout: requests in progress when the listeners close get no time to finish", "shutdown_delay", delay.String(), "left", time.Until(dl).Round(time.Millisecond).String())
	}
	if delay > 0 {
		s.deps.Log.Info("shutdown: serving on for shutdown_delay before the listeners close", "shutdown_delay", delay.String())
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	return s.Shutdown(ctx)
}

// configDigest is the SHA-256 of cfg as `whisk check` prints it: every
// setting explicit, groups and sites sorted.
func configDigest(cfg *config.Config) string {
	var b strings.Builder
	if err := cfg.Write(&b); err != nil {
		return ""
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

// countReloadRestarts counts, as restarts for reload, the workers of the
// old generation's groups that next does not carry over.
func (s *Server) countReloadRestarts(old, next *generation) {
	for _, grp := range old.groups {
		if next.carried[grp] {
			continue
		}
		n := 0
		for _, w := range grp.Workers() {
			if w.State == group.StateReady && !w.Recycling {
				n++ // the others were counted when their recycle began
			}
		}
		s.obs.Restarts(grp.Name(), group.RestartReload, n)
	}
}
