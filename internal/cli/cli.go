// Package cli is whisk's command line: `whisk serve`, `whisk version` and
// help. It turns flags into a config.Serve, wires the packages together,
// and handles SIGINT and SIGTERM.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/whiskserver/whisk/internal/app"
	"github.com/whiskserver/whisk/internal/config"
	"github.com/whiskserver/whisk/internal/front"
	"github.com/whiskserver/whisk/internal/group"
	"github.com/whiskserver/whisk/internal/proc"
	"github.com/whiskserver/whisk/internal/pyrt"
)

// Version is whisk's version; the build may override it with
// -ldflags "-X github.com/whiskserver/whisk/internal/cli.Version=...".
var Version = "0.1.0-dev"

// Exit codes.
const (
	exitOK     = 0
	exitError  = 1
	exitUsage  = 2
	exitImport = 3 // the app could not be imported (gunicorn uses 3 too)
)

const usage = `whisk runs Python web applications (WSGI: Django, Flask, ...) in production:
one program that is both the web server and the application server.

Usage:
  whisk serve [flags] APP     serve a WSGI app
  whisk version               print the version
  whisk help                  show this help

APP is the app to serve, as with gunicorn or mod_wsgi:
  mysite.wsgi:application     module and callable (Django's default)
  app:app                     Flask's usual name
  mysite.wsgi                 module alone: the callable is "application"
  /srv/site/wsgi.py           a WSGI script file: the callable is "application"

Run "whisk serve --help" for the flags of serve.
`

// Run runs whisk with args (without the program name) and returns the exit
// code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "whisk %s (%s)\n", Version, buildInfo())
		return exitOK
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "whisk: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
}

func buildInfo() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown build"
	}
	rev := ""
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			rev = ", commit " + s.Value[:12]
		}
	}
	return bi.GoVersion + rev
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// durationFlag accepts Go durations ("30s", "2m") or plain seconds ("30"),
// as gunicorn's --timeout does.
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return f.d.String()
}

func (f durationFlag) Set(v string) error {
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(n) || n < 0 || n > float64(math.MaxInt64/int64(time.Second)) {
			return fmt.Errorf("want seconds or a duration like 30s or 2m, from 0 to %d seconds", math.MaxInt64/int64(time.Second))
		}
		*f.d = time.Duration(n * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("want seconds or a duration like 30s or 2m")
	}
	*f.d = d
	return nil
}

// sizeFlag accepts bytes with an optional unit: 512, 64KiB, 10MB, 1G.
type sizeFlag struct{ n *int64 }

func (f sizeFlag) String() string {
	if f.n == nil {
		return ""
	}
	return strconv.FormatInt(*f.n, 10)
}

func (f sizeFlag) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*f.n = n
	return nil
}

// ParseSize parses a byte count with an optional unit (K, KB, KiB, M, MB,
// MiB, G, GB, GiB; all powers of 1024, case-insensitive).
func ParseSize(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want bytes, optionally with K, M or G (like 10M)", v)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: too large", v)
	}
	return n * mult, nil
}

func serveFlags(cfg *config.Serve, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var((*stringList)(&cfg.Binds), "bind", "`ADDRESS` to listen on: HOST:PORT or unix:PATH; repeat for several (default "+config.DefaultBind+")")
	fs.IntVar(&cfg.Processes, "processes", cfg.Processes, "number of worker `processes`; the default is the number of CPUs")
	fs.IntVar(&cfg.Threads, "threads", cfg.Threads, "`threads` per worker process; processes × threads requests run at once")
	fs.StringVar(&cfg.Python, "python", cfg.Python, "Python `interpreter` or virtualenv directory to run the app with")
	fs.StringVar(&cfg.Chdir, "chdir", cfg.Chdir, "`directory` the workers run in (and import the app from)")
	fs.Var((*stringList)(&cfg.PythonPath), "pythonpath", "`directory` to put first on sys.path; repeatable")
	fs.Var((*stringList)(&cfg.Env), "env", "`KEY=VALUE` to set in the workers' environment; repeatable")
	fs.Var(durationFlag{&cfg.Timeout}, "timeout", "`DURATION` a request may wait for a worker, for its response to start, or between two parts of a streamed response (504 or a cut connection after)")
	fs.Var(durationFlag{&cfg.GracefulTimeout}, "graceful-timeout", "on SIGTERM or SIGINT, the `DURATION` in-flight requests get to finish")
	fs.Var(durationFlag{&cfg.StartupTimeout}, "startup-timeout", "`DURATION` a new worker may take to import the app")
	fs.IntVar(&cfg.MaxRequests, "max-requests", cfg.MaxRequests, "restart a worker after this many `requests` (0: never); the replacement is ready first")
	fs.IntVar(&cfg.MaxRequestsJitter, "max-requests-jitter", cfg.MaxRequestsJitter, "add a random 0..`N` to each worker's --max-requests")
	fs.Var(sizeFlag{&cfg.MaxBodySize}, "max-body-size", "largest request body accepted, a `SIZE` like 10M (413 beyond)")
	fs.Var(sizeFlag{&cfg.BodyMemory}, "body-buffer-size", "largest request body kept in memory (`SIZE`); larger ones are spooled to a temp file; all bodies in memory together are bounded by 64 times this")
	fs.Var(durationFlag{&cfg.ReadHeaderTimeout}, "header-timeout", "`DURATION` a client may take to send a request head")
	fs.Var(durationFlag{&cfg.KeepAlive}, "keep-alive", "close keep-alive connections idle for this `DURATION`")
	fs.StringVar(&cfg.AccessLog, "access-log", cfg.AccessLog, "write an access log (Apache combined format) to `FILE`; - for stdout (default: none)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "server log `level`: debug, info, warn or error")
	fs.StringVar(&cfg.CPUAffinity, "cpu-affinity", cfg.CPUAffinity, "pin each worker process to one CPU: `auto` (when processes >= CPUs), on or off")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: whisk serve [flags] APP

Serve the WSGI app APP (module:callable, or a path to a WSGI script file).

Examples:
  whisk serve mysite.wsgi:application
  whisk serve --python .venv --bind 0.0.0.0:8000 --processes 4 mysite.wsgi:application
  whisk serve --bind unix:/run/mysite.sock --chdir /srv/mysite mysite.wsgi

Durations take seconds (30) or units (30s, 2m); sizes take bytes or K, M, G.
SIGTERM or SIGINT: stop accepting, finish in-flight requests within
--graceful-timeout, stop the workers, exit 0.

Flags:
`)
		fs.PrintDefaults()
	}
	return fs
}

// parseServe parses serve's arguments; the APP may come before or after
// the flags.
func parseServe(args []string, stdout, stderr io.Writer) (config.Serve, error) {
	cfg := config.Defaults()
	out := stderr
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			out = stdout // asked for: help is the output, not an error
		}
	}
	fs := serveFlags(&cfg, out)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return cfg, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch len(positional) {
	case 0:
	case 1:
		cfg.App = positional[0]
	default:
		return cfg, fmt.Errorf("one APP expected, got %q", positional)
	}
	return cfg, cfg.Validate()
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseServe(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "whisk serve: %v\nRun \"whisk serve --help\" for usage.\n", err)
		return exitUsage
	}
	log := newLogger(stderr, cfg.LogLevel)
	if path := os.Getenv("WHISK_CPUPROFILE"); path != "" {
		// A developer's aid: profile the front from start to stop.
		if f, err := os.Create(path); err == nil {
			if err := pprof.StartCPUProfile(f); err == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}

	python, venv, err := config.Interpreter(cfg.Python)
	if err != nil {
		fmt.Fprintf(stderr, "whisk serve: %v\n", err)
		return exitUsage
	}
	if cfg.Chdir != "" {
		cfg.Chdir, _ = filepath.Abs(cfg.Chdir)
	}
	runtimeDir, err := pyrt.Extract("")
	if err != nil {
		fmt.Fprintf(stderr, "whisk serve: %v\n", err)
		return exitError
	}
	tmp, err := os.MkdirTemp("", "whisk-bodies-")
	if err != nil {
		fmt.Fprintf(stderr, "whisk serve: temp directory for request bodies: %v\n", err)
		return exitError
	}
	defer os.RemoveAll(tmp)

	var access io.Writer
	switch cfg.AccessLog {
	case "":
	case "-":
		access = stdout
	default:
		f, err := os.OpenFile(cfg.AccessLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "whisk serve: --access-log: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		access = f
	}

	// Open the listeners first: a port in use is reported before the app
	// is imported.
	h := &app.Handler{
		ScriptName:  "",
		Timeout:     cfg.Timeout,
		MaxBodySize: cfg.MaxBodySize,
		BodyMemory:  cfg.BodyMemory,
		// Slow uploads hold their buffers: 64 of them at the threshold,
		// then bodies go to disk.
		BodyMemoryTotal: 64 * cfg.BodyMemory,
		TempDir:         tmp,
		Window:          cfg.ResponseWindow,
		Log:             log,
	}
	srv, err := front.New(front.Config{
		Binds:             cfg.Binds,
		Handler:           h,
		AccessLog:         access,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.KeepAlive,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		Log:               log,
	})
	if err != nil {
		fmt.Fprintf(stderr, "whisk serve: %v\n", err)
		return exitError
	}

	g := group.New(group.Config{
		Name: "default",
		Spec: proc.Spec{
			Python:         python,
			VirtualEnv:     venv,
			RuntimeDir:     runtimeDir,
			App:            cfg.App,
			Chdir:          cfg.Chdir,
			PythonPath:     cfg.PythonPath,
			Env:            cfg.Env,
			Window:         cfg.ResponseWindow,
			StartupTimeout: cfg.StartupTimeout,
		},
		Processes:         cfg.Processes,
		Threads:           cfg.Threads,
		PinCPUs:           pinCPUs(&cfg, log),
		MaxRequests:       cfg.MaxRequests,
		MaxRequestsJitter: cfg.MaxRequestsJitter,
		GracefulTimeout:   cfg.GracefulTimeout,
		Log:               log,
	}, proc.NewSpawner())
	h.Group = g

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	startCtx, cancelStart := context.WithCancel(ctx)
	go func() {
		select {
		case <-sigs:
			cancelStart()
		case <-startCtx.Done():
		}
	}()
	if err := g.Start(startCtx); err != nil {
		cancelStart()
		var ie *proc.ImportError
		if errors.As(err, &ie) {
			fmt.Fprintf(stderr, "whisk serve: cannot import the app %q with %s\n\n%s\n%s\n\nhint: %s\n", cfg.App, python, strings.TrimRight(ie.Traceback, "\n"), ie.Message, ie.Hint)
			return exitImport
		}
		fmt.Fprintf(stderr, "whisk serve: %v\n", err)
		return exitError
	}
	cancelStart()

	addrs := make([]string, 0, len(cfg.Binds))
	for _, a := range srv.Addrs() {
		addrs = append(addrs, a.Network()+":"+a.String())
	}
	log.Info("whisk serving", "app", cfg.App, "listen", strings.Join(addrs, ","), "processes", cfg.Processes, "threads", cfg.Threads, "python", python, "version", Version)

	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()

	select {
	case sig := <-sigs:
		log.Info("stopping: finishing in-flight requests", "signal", sig.String(), "graceful_timeout", cfg.GracefulTimeout.String())
	case err := <-served:
		if err != nil {
			log.Error("server failed", "error", err)
		}
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.GracefulTimeout)
	defer cancel()
	go func() {
		// A second signal stops at once.
		if sig, ok := <-sigs; ok {
			log.Warn("second signal: stopping now", "signal", sig.String())
			cancel()
		}
	}()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("graceful timeout passed with requests in progress; closing them", "error", err)
	}
	g.Stop(sctx)
	log.Info("stopped")
	return exitOK
}

// pinCPUs applies --cpu-affinity to the CPUs whisk may run on.
func pinCPUs(cfg *config.Serve, log *slog.Logger) []int {
	allowed, err := proc.AllowedCPUs()
	if err != nil {
		log.Warn("workers run unpinned", "error", err)
		return nil
	}
	return cfg.PinCPUs(allowed)
}
