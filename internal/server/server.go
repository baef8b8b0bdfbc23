// Package server runs a configuration: it opens the listeners once, and
// serves them with a generation — the process groups of the config and the
// route table that mounts them. A reload builds and starts a new
// generation beside the old one, moves traffic to it only once every group
// is ready, and then drains the old one; if the new generation fails to
// start, the old one keeps serving.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/whiskserver/whisk/internal/accesslog"
	"github.com/whiskserver/whisk/internal/acme"
	"github.com/whiskserver/whisk/internal/app"
	"github.com/whiskserver/whisk/internal/compress"
	"github.com/whiskserver/whisk/internal/config"
	"github.com/whiskserver/whisk/internal/forwarded"
	"github.com/whiskserver/whisk/internal/front"
	"github.com/whiskserver/whisk/internal/group"
	"github.com/whiskserver/whisk/internal/metrics"
	"github.com/whiskserver/whisk/internal/offload"
	"github.com/whiskserver/whisk/internal/proc"
	"github.com/whiskserver/whisk/internal/reqinfo"
	"github.com/whiskserver/whisk/internal/route"
	"github.com/whiskserver/whisk/internal/static"
)

// Deps are what a Server needs besides the config.
type Deps struct {
	// Log is the server log.
	Log *slog.Logger
	// AccessLog receives the access log; nil for none.
	AccessLog io.Writer
	// RuntimeDir holds the extracted worker runtime.
	RuntimeDir string
	// TempDir holds spooled request bodies.
	TempDir string
	// Spawner starts worker processes.
	Spawner *proc.Spawner
	// AllowedCPUs are the CPUs workers may be pinned to.
	AllowedCPUs []int
	// Version is whisk's version, for the status page.
	Version string
	// Inherited are the sockets systemd passed (socket activation); nil
	// for none. Each serves the bind that names its address.
	Inherited *front.Inherited
	// BindGiven says bind was set (file, variable or flag). When it was
	// not, every inherited socket is served (but those admin_bind and
	// health_bind name) and the default bind is not.
	BindGiven bool
}

// responseWindow is how much of a response the front holds for a slow
// client before the worker waits, in bytes.
const responseWindow = 1 << 20

// Server is whisk's running state: listeners and the current generation.
type Server struct {
	deps    Deps
	front   *front.Server
	routes  *route.Switch
	certs   *front.Certs  // the HTTPS certificates (tls.go); nil without tls_bind
	acme    *acme.Manager // ACME certificates (tls.go); nil without acme_hosts
	acmeDir string        // the ACME cache directory; "" without acme_hosts

	bodies atomic.Int64 // request bodies in memory, all mounts and generations

	obs          *metrics.Metrics
	admins       []*adminListener           // admin_bind and health_bind (admin.go)
	live         atomic.Pointer[generation] // the generation serving, for metrics and status; kept during Shutdown
	shuttingDown atomic.Bool

	mu       sync.Mutex // serialises Start, Reload and Shutdown
	current  *generation
	serial   int
	draining sync.WaitGroup // old generations a reload is stopping
}

// generation is one config's groups and routes.
type generation struct {
	serial  int
	cfg     *config.Config
	digest  string // configDigest(cfg)
	groups  []*group.Group
	carried map[*group.Group]bool // running already: taken over from the previous generation
	static  []*static.Handler     // static mounts: their directories are held open
	offload []*offload.Handler    // X-Sendfile / X-Accel-Redirect directories, held open
	sites   []route.Site          // the config's mounts, built before the groups start
	django  []djangoApp           // app mounts of django_static groups (django.go)
	table   *route.Table          // sites and the Django mounts, once the groups are ready
}

// closeStatic releases the directories of the static mounts.
func (g *generation) closeStatic() {
	for _, h := range g.static {
		h.Close()
	}
	for _, h := range g.offload {
		h.Close()
	}
}

// GroupError says which group failed to start.
type GroupError struct {
	// Group is the group's name.
	Group string
	// App is the group's app.
	App string
	// Python is the interpreter it ran.
	Python string
	// Err is the failure; a *proc.ImportError when the app did not import.
	Err error
}

func (e *GroupError) Error() string { return fmt.Sprintf("group %s: %v", e.Group, e.Err) }
func (e *GroupError) Unwrap() error { return e.Err }

// New opens the listeners of cfg. Requests get 503 until Start.
func New(cfg *config.Config, deps Deps) (*Server, error) {
	starting, err := route.New([]route.Site{{Name: "starting", Default: true, Mounts: []route.Mount{{Prefix: "/", Handler: http.HandlerFunc(notStarted)}}}})
	if err != nil {
		return nil, err
	}
	s := &Server{deps: deps, routes: route.NewSwitch(starting)}
	s.obs = metrics.New(s, deps.Log)
	var done []func(*http.Request, *reqinfo.Info)
	if deps.AccessLog != nil {
		format, err := accesslog.ParseFormat(cfg.Server.AccessLogFormat)
		if err != nil {
			return nil, fmt.Errorf("access_log_format: %w", err)
		}
		done = append(done, accesslog.New(deps.AccessLog, format).Log)
	}
	done = append(done, s.obs.Observe)
	if err := s.openCerts(cfg); err != nil {
		return nil, err
	}
	// The admin listeners open first: they serve /healthz while the groups start.
	if err := s.openAdmin(cfg); err != nil {
		return nil, err
	}
	limits, err := frontLimits(cfg.Server)
	if err != nil {
		s.closeAdmin()
		return nil, err
	}
	trust := forwarded.NewTrust(cfg.Server.TrustedProxies()) // one for request ids, forwarded headers and PROXY
	s.front, err = front.New(front.Config{
		Binds:   cfg.Server.Bind,
		Handler: s.acmeChallenges(front.HTTPS(s.routes, httpsOptions(cfg))),
		Outer: func(h http.Handler) http.Handler {
			// Outside the framing guard's answers: 414 and 431 are logged.
			return reqinfo.Handler(reqinfo.Config{Header: cfg.Server.RequestIDHeader, Trust: trust, Done: done}, h)
		},
		TLSBinds:          cfg.Server.TLSBind,
		Certs:             s.certs,
		H2C:               cfg.Server.H2C,
		ReadHeaderTimeout: cfg.Server.HeaderTimeout,
		IdleTimeout:       cfg.Server.KeepAlive,
		MaxHeaderBytes:    int(cfg.Server.MaxHeaderSize),
		Limits:            limits,
		Log:               deps.Log,
		Inherited:         deps.Inherited,
		ServeInherited:    !deps.BindGiven,
		Reserved:          []string{cfg.Server.AdminBind, cfg.Server.HealthBind},
		Proxy:             proxyOptions(cfg, trust),
	})
	if err != nil {
		s.closeAdmin()
		return nil, err
	}
	// Every listener is open (admin ones take their inherited sockets
	// with front.Listen before this): a socket systemd passed that none
	// took is a mistake in the units or the config.
	if err := deps.Inherited.Unused(); err != nil {
		s.closeAdmin()
		return nil, err
	}
	return s, nil
}

// proxyOptions returns the PROXY protocol settings of the app listeners:
// nil unless proxy_protocol is set; the peers that must send a header are
// forwarded_allow_ips.
func proxyOptions(cfg *config.Config, trust *forwarded.Trust) *front.ProxyOptions {
	if !cfg.Server.ProxyProtocol {
		return nil
	}
	return &front.ProxyOptions{Trust: trust}
}

// notStarted answers the requests that come before Start has made a
// generation serve.
func notStarted(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "1")
	http.Error(w, "503 Service Unavailable: the app is not started yet", http.StatusServiceUnavailable)
}

// Addrs returns the addresses the server listens on.
func (s *Server) Addrs() []string {
	var out []string
	for _, a := range s.front.Addrs() {
		out = append(out, a.Network()+":"+a.String())
	}
	return out
}

// Start starts the first generation: every group ready, or the first
// failure (a *GroupError) with nothing left running.
func (s *Server) Start(ctx context.Context, cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.build(cfg, nil)
	if err != nil {
		return err
	}
	if err := s.launch(ctx, g); err != nil {
		return err
	}
	s.current = g
	s.live.Store(g)
	s.routes.Swap(g.table)
	return nil
}

// Serve serves the listeners until Shutdown.
func (s *Server) Serve() error { return s.front.Serve() }

// Reload starts a new generation from cfg, moves traffic to it once every
// group is ready and drains the old one in the background. On failure the
// old generation keeps serving and the error says why.
func (s *Server) Reload(ctx context.Context, cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return errors.New("reload before start")
	}
	s.warnRestartOnly(cfg)
	certs, err := s.loadCerts(cfg)
	if err != nil {
		return fmt.Errorf("%w (the old certificates and generation keep serving)", err)
	}
	if err := s.replaceLocked(ctx, cfg, nil); err != nil {
		return err
	}
	s.swapCerts(certs)
	s.swapACMEHosts(cfg)
	return nil
}

// Restart starts new workers for the named groups of the current config
// (for `reload = true`: the code under their directories changed), in a
// new generation that carries the other groups over as they are.
func (s *Server) Restart(ctx context.Context, names []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return errors.New("restart before start")
	}
	keep := map[string]*group.Group{}
	for i, gc := range s.current.cfg.Groups {
		if !slices.Contains(names, gc.Name) {
			keep[gc.Name] = s.current.groups[i]
		}
	}
	return s.replaceLocked(ctx, s.current.cfg, keep)
}

// GroupsUnder returns the groups of the current config whose chdir or
// python_path holds path.
func (s *Server) GroupsUnder(path string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return nil
	}
	var names []string
	for _, gc := range s.current.cfg.Groups {
		for _, dir := range gc.CodeDirs() {
			if dir != "" && route.Under(path, strings.TrimSuffix(dir, "/")) {
				names = append(names, gc.Name)
				break
			}
		}
	}
	return names
}

// replaceLocked builds and starts a generation from cfg, reusing the groups
// in keep, swaps it in once ready and drains the old one in the background.
func (s *Server) replaceLocked(ctx context.Context, cfg *config.Config, keep map[string]*group.Group) error {
	next, err := s.build(cfg, keep)
	if err != nil {
		return err
	}
	if err := s.launch(ctx, next); err != nil {
		return err
	}
	old := s.current
	s.current = next
	s.live.Store(next)
	s.routes.Swap(next.table)
	s.countReloadRestarts(old, next)
	s.deps.Log.Info("reload: new generation serving; draining the old one", "generation", next.serial, "old", old.serial, "groups_kept", len(keep))
	s.draining.Go(func() { old.stop(s.deps.Log, next) })
	return nil
}

// warnRestartOnly logs the server settings a reload cannot change.
func (s *Server) warnRestartOnly(cfg *config.Config) {
	was, now := s.current.cfg.Server, cfg.Server
	changed := func(name string, differ bool) {
		if differ {
			s.deps.Log.Warn("reload: "+name+" changed; it takes effect when whisk restarts", "setting", name)
		}
	}
	changed("bind", !slices.Equal(was.Bind, now.Bind))
	changed("header_timeout", was.HeaderTimeout != now.HeaderTimeout)
	changed("keep_alive", was.KeepAlive != now.KeepAlive)
	changed("access_log", was.AccessLog != now.AccessLog)
	changed("access_log_format", was.AccessLogFormat != now.AccessLogFormat)
	changed("log_format", was.LogFormat != now.LogFormat)
	changed("log_level", was.LogLevel != now.LogLevel)
	changed("pid_file", was.PIDFile != now.PIDFile)
	changed("admin_bind", was.AdminBind != now.AdminBind)
	changed("health_bind", was.HealthBind != now.HealthBind)
	changed("shutdown_delay", was.ShutdownDelay != now.ShutdownDelay)
	changed("forwarded_allow_ips", !slices.Equal(was.ForwardedAllowIPs, now.ForwardedAllowIPs))
	changed("proxy_protocol", was.ProxyProtocol != now.ProxyProtocol)
	// The front's limits; min_body_rate is per mount and follows a reload.
	changed("max_request_line", was.MaxRequestLine != now.MaxRequestLine)
	changed("max_header_size", was.MaxHeaderSize != now.MaxHeaderSize)
	changed("write_timeout", was.WriteTimeout != now.WriteTimeout)
	changed("max_connections", was.MaxConnections != now.MaxConnections)
	changed("socket_mode", was.SocketMode != now.SocketMode)
	changed("socket_owner", was.SocketOwner != now.SocketOwner)
	changed("tls_bind", !slices.Equal(was.TLSBind, now.TLSBind))
	changed("h2c", was.H2C != now.H2C)
	changed("redirect_https", was.RedirectHTTPS != now.RedirectHTTPS)
	changed("hsts_max_age", was.HSTSMaxAge != now.HSTSMaxAge)
	changed("acme_email", was.ACMEEmail != now.ACMEEmail)
	changed("acme_directory", was.ACMEDirectory != now.ACMEDirectory)
	changed("acme_cache", was.ACMECache != now.ACMECache)
	changed("acme_ca_cert", was.ACMECACert != now.ACMECACert)
	changed("acme_hosts (turned on or off)", (len(was.ACMEHosts) == 0) != (len(now.ACMEHosts) == 0))
}

// Shutdown stops accepting, lets in-flight requests finish until ctx ends,
// and stops the workers: the current generation's and those of an old
// generation a reload is still draining. The admin listeners close last.
// ShutdownAfter pauses first, with /readyz failing.
func (s *Server) Shutdown(ctx context.Context) error {
	s.BeginShutdown()
	defer s.closeAdmin()
	err := s.front.Shutdown(ctx)
	s.mu.Lock()
	g := s.current
	s.current = nil // no Reload from now on, so no new draining generation
	s.mu.Unlock()
	if g != nil {
		g.stopAll(ctx)
	}
	// The front's requests are over, so the old generations' drains end
	// and they stop their workers.
	drained := make(chan struct{})
	go func() {
		s.draining.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		s.deps.Log.Warn("shutdown: an old generation is still stopping", "error", ctx.Err())
	}
	s.live.Store(nil)
	return err
}

// Groups returns the serving generation's groups (still during
// Shutdown). It does not wait for a reload in progress.
func (s *Server) Groups() []*group.Group {
	g := s.live.Load()
	if g == nil {
		return nil
	}
	return slices.Clone(g.groups)
}

// build makes a generation's groups and the mounts of its config without
// starting the groups. The route table comes once they are ready (launch).
func (s *Server) build(cfg *config.Config, keep map[string]*group.Group) (*generation, error) {
	s.serial++
	gen := &generation{serial: s.serial, cfg: cfg, digest: configDigest(cfg), carried: map[*group.Group]bool{}}
	byName := map[string]*group.Group{}
	for _, gc := range cfg.Groups {
		if g, ok := keep[gc.Name]; ok {
			gen.groups = append(gen.groups, g)
			gen.carried[g] = true
			byName[gc.Name] = g
			continue
		}
		g, err := s.newGroup(gen.serial, gc)
		if err != nil {
			return nil, &GroupError{Group: gc.Name, App: gc.App, Python: gc.Python, Err: err}
		}
		gen.groups = append(gen.groups, g)
		byName[gc.Name] = g
	}
	var sites []route.Site
	for _, sc := range cfg.Sites {
		site := route.Site{Name: sc.Name, Hosts: sc.Hosts, Default: sc.Default}
		for _, m := range sc.Mounts {
			if m.Static != "" {
				files, err := static.New(m.Static, m.Path, static.Options{Log: s.deps.Log})
				if err != nil {
					gen.closeStatic()
					return nil, fmt.Errorf("static mount %s: %w", m.Path, err)
				}
				gen.static = append(gen.static, files)
				var handler http.Handler = files
				if m.Compress {
					handler = compress.New(files)
				}
				site.Mounts = append(site.Mounts, route.Mount{Prefix: m.Path, Handler: handler})
				continue
			}
			gc := groupConfig(cfg, m.Group)
			scriptName := m.Path
			if scriptName == "/" {
				scriptName = ""
			}
			h := &app.Handler{
				Group:            byName[m.Group],
				ScriptName:       scriptName,
				Timeout:          gc.QueueTimeout,
				RequestTimeout:   gc.RequestTimeout,
				MaxBodySize:      int64(m.MaxBodySize),
				BodyMemory:       int64(cfg.Server.BodyBufferSize),
				BodyMemoryTotal:  64 * int64(cfg.Server.BodyBufferSize),
				SharedBodyMemory: &s.bodies,
				MinBodyRate:      int64(cfg.Server.MinBodyRate),
				BodyTimeout:      bodyStallTimeout,
				TempDir:          s.deps.TempDir,
				Window:           responseWindow,
				Log:              s.deps.Log.With("group", m.Group),
			}
			var handler http.Handler = h
			if len(gc.XSendfile)+len(gc.XAccelRedirect) > 0 {
				var locations []offload.Location
				for _, e := range gc.XAccelRedirect {
					prefix, dir, _ := strings.Cut(e, "=")
					locations = append(locations, offload.Location{Prefix: prefix, Dir: dir})
				}
				off, err := offload.New(h, gc.XSendfile, locations, s.deps.Log.With("group", m.Group))
				if err != nil {
					gen.closeStatic()
					return nil, fmt.Errorf("group %s: %w", m.Group, err)
				}
				gen.offload = append(gen.offload, off)
				handler = off
			}
			if m.Compress {
				handler = compress.New(handler)
			}
			site.Mounts = append(site.Mounts, route.Mount{Prefix: m.Path, Handler: handler})
			if gc.DjangoStatic {
				gen.django = append(gen.django, djangoApp{site: len(sites), path: m.Path, group: byName[m.Group], name: m.Group, compress: m.Compress})
			}
		}
		sites = append(sites, site)
	}
	// The table is built again once the groups are ready; this one finds
	// a mistake in the sites before any worker starts.
	if _, err := route.New(sites); err != nil {
		gen.closeStatic()
		return nil, fmt.Errorf("routes: %w", err)
	}
	gen.sites = sites
	return gen, nil
}

// launch starts gen's groups and, once every one is ready, builds its route
// table: the config's mounts and those of django_static groups, which
// depend on what their workers report. On failure nothing gen started is
// left running.
func (s *Server) launch(ctx context.Context, gen *generation) error {
	if err := gen.start(ctx, s.deps.Log); err != nil {
		return err
	}
	table, err := route.New(s.djangoSites(gen))
	if err != nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gen.stopGroups(stopCtx, func(grp *group.Group) bool { return !gen.carried[grp] })
		gen.closeStatic()
		return fmt.Errorf("routes: %w", err)
	}
	gen.table = table
	return nil
}

func groupConfig(cfg *config.Config, name string) config.Group {
	for _, g := range cfg.Groups {
		if g.Name == name {
			return g
		}
	}
	return config.Group{}
}

// newGroup makes the process group for gc.
func (s *Server) newGroup(serial int, gc config.Group) (*group.Group, error) {
	python, venv, err := config.Interpreter(gc.Python)
	if err != nil {
		return nil, err
	}
	env := make([]string, 0, len(gc.Env))
	for k, v := range gc.Env {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	var account *proc.Account
	if gc.User != "" {
		account, err = proc.LookupAccount(gc.User, gc.UnixGroup)
		if err != nil {
			return nil, err
		}
	}
	if err := proc.CheckAccount(gc.Name, account, gc.AllowRoot); err != nil {
		return nil, err
	}
	s.obs.AddGroup(gc.Name)
	maxQueue := gc.MaxQueue
	if maxQueue == 0 {
		maxQueue = -1 // max_queue = 0: no request waits (group's 0 means its default)
	}
	return group.New(group.Config{
		Name: gc.Name,
		Spec: proc.Spec{
			Python:         python,
			VirtualEnv:     venv,
			RuntimeDir:     s.deps.RuntimeDir,
			App:            gc.App,
			Chdir:          gc.Chdir,
			PythonPath:     gc.PythonPath,
			Env:            env,
			Window:         responseWindow,
			StartupTimeout: gc.StartupTimeout,
			User:           account,
			Preload:        gc.Preload,
			PostFork:       gc.PostFork,
			Interface:      gc.Interface,
		},
		Processes:         gc.Processes,
		Threads:           gc.Threads,
		MaxConcurrency:    gc.MaxConcurrency,
		MaxRequests:       gc.MaxRequests,
		MaxRequestsJitter: gc.MaxRequestsJitter,
		MaxQueue:          maxQueue,
		QueueTimeout:      gc.QueueTimeout,
		MaxRSS:            int64(gc.MaxRSS),
		IdleTimeout:       gc.IdleTimeout,
		GracefulTimeout:   gc.GracefulTimeout,
		PinCPUs:           gc.PinCPUs(s.deps.AllowedCPUs),
		Log:               s.deps.Log, // group.New adds group=NAME
		OnRestart:         func(reason string) { s.obs.Restart(gc.Name, reason) },
	}, s.deps.Spawner), nil
}

// start starts every group at once and waits for all; on a failure it
// stops the others and returns the first error.
func (g *generation) start(ctx context.Context, log *slog.Logger) error {
	errs := make([]error, len(g.groups))
	var wg sync.WaitGroup
	for i, grp := range g.groups {
		if !g.carried[grp] {
			wg.Go(func() { errs[i] = grp.Start(ctx) })
		}
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			gc := g.cfg.Groups[i]
			stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			g.stopGroups(stopCtx, func(grp *group.Group) bool { return !g.carried[grp] })
			cancel()
			g.closeStatic()
			return &GroupError{Group: gc.Name, App: gc.App, Python: gc.Python, Err: err}
		}
	}
	return nil
}

// stop drains an old generation: its groups finish their requests within
// their graceful timeout. Groups that next carried over keep running.
func (g *generation) stop(log *slog.Logger, next *generation) {
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.GracefulTimeout())
	defer cancel()
	if err := g.table.Drain(ctx); err != nil {
		log.Warn("reload: old generation's requests did not finish within graceful_timeout", "generation", g.serial, "error", err)
	}
	g.stopGroups(ctx, func(grp *group.Group) bool { return !next.carried[grp] })
	g.closeStatic()
	log.Info("reload: old generation stopped", "generation", g.serial)
}

func (g *generation) stopAll(ctx context.Context) {
	g.stopGroups(ctx, func(*group.Group) bool { return true })
	g.closeStatic()
}

// stopGroups stops the groups for which which returns true, all at once.
func (g *generation) stopGroups(ctx context.Context, which func(*group.Group) bool) {
	var wg sync.WaitGroup
	for _, grp := range g.groups {
		if which(grp) {
			wg.Go(func() { grp.Stop(ctx) })
		}
	}
	wg.Wait()
}
