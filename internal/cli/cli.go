// Package cli is whisk's command line: `whisk serve`, `check`, `reload`,
// `version` and help. It turns arguments into config.Options, hands the
// loaded config to internal/server, and handles SIGINT, SIGTERM, SIGHUP
// and SIGUSR1.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/whiskserver/whisk/internal/accesslog"
	"github.com/whiskserver/whisk/internal/config"
	"github.com/whiskserver/whisk/internal/proc"
	"github.com/whiskserver/whisk/internal/pyrt"
	"github.com/whiskserver/whisk/internal/sdnotify"
	"github.com/whiskserver/whisk/internal/server"
	"github.com/whiskserver/whisk/internal/watch"
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
  whisk serve [flags] [APP]   serve a WSGI app, or the config file's groups
  whisk check [flags] [APP]   validate the configuration and print it in full
  whisk reload                make a running whisk reload (SIGHUP through pid_file)
  whisk version               print the version
  whisk help                  show this help

APP is the app to serve, as with gunicorn or mod_wsgi:
  mysite.wsgi:application     module and callable (Django's default)
  app:app                     Flask's usual name
  mysite.wsgi                 module alone: the callable is "application"
  /srv/site/wsgi.py           a WSGI script file: the callable is "application"

Without APP, the app comes from the config file: whisk.toml, or
[tool.whisk] in pyproject.toml, in the working directory, or --config FILE.
Run "whisk serve --help" for the flags; docs/configuration.md for the file.
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
	case "check":
		return check(args[1:], stdout, stderr)
	case "reload":
		return reload(args[1:], stdout, stderr)
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

// settingFlag records a setting given on the command line; Load parses and
// checks its text, so a flag and a file value get the same errors.
type settingFlag struct {
	name  string // the setting
	typed string // the flag as typed: --timeout
	opts  *config.Options
	bool  bool
}

func (f *settingFlag) String() string   { return "" }
func (f *settingFlag) IsBoolFlag() bool { return f.bool }
func (f *settingFlag) Set(v string) error {
	f.opts.Flags = append(f.opts.Flags, config.FlagValue{Name: f.name, Value: v, Flag: f.typed})
	return nil
}

// settingsFlags registers --config and one flag per setting (plus its
// aliases) on fs.
func settingsFlags(fs *flag.FlagSet, opts *config.Options) {
	fs.StringVar(&opts.File, "config", "", "config `FILE` (default: whisk.toml, else [tool.whisk] in pyproject.toml, in the working directory)")
	for _, s := range config.Settings {
		help := s.Help
		if s.Scope == config.GroupScope {
			help += " [group]"
		}
		names := append([]string{s.Flag()}, s.Aliases...)
		for i, name := range names {
			h := help
			if i > 0 {
				h = "alias of --" + s.Flag()
			}
			if s.Arg != "" {
				h = "`" + s.Arg + "`: " + h
			}
			fs.Var(&settingFlag{name: s.Name, typed: "--" + name, opts: opts, bool: s.Switch()}, name, h)
		}
	}
}

const serveUsage = `Usage: whisk serve [--config FILE] [flags] [APP]

Serve the WSGI app APP (module:callable, or a path to a WSGI script file),
or the groups and sites of the config file.

Examples:
  whisk serve mysite.wsgi:application
  whisk serve --python .venv --bind 0.0.0.0:8000 --processes 4 mysite.wsgi:application
  whisk serve --bind unix:/run/mysite.sock --chdir /srv/mysite mysite.wsgi
  whisk serve --config /etc/whisk/whisk.toml

Settings come from the config file, then WHISK_* variables, then flags: the
key max_requests is WHISK_MAX_REQUESTS and --max-requests (see
docs/configuration.md). Flags marked [group] set every group's default.
Durations take seconds (30) or units (30s, 2m); sizes take bytes or K, M, G.

Signals: SIGTERM or SIGINT make /readyz fail, serve on for shutdown_delay,
then stop accepting, finish in-flight requests (all within graceful_timeout),
stop the workers and exit 0; a second signal stops at once. SIGHUP reloads: the config is
read again and a new generation of every group starts; traffic moves once it
is ready, and a failed reload leaves the running generation serving.
SIGUSR1 reopens the access log file (after logrotate renamed it).

Flags:
`

// parseSettings parses the arguments of serve and check: flags and an
// optional APP, before or after the flags.
func parseSettings(cmd string, args []string, stdout, stderr io.Writer) (config.Options, error) {
	opts := config.Options{Environ: os.Environ(), NumCPU: runtime.NumCPU(), Root: os.Geteuid() == 0}
	if u, err := user.Current(); err == nil {
		opts.CurrentUser = u.Username
		opts.CurrentUID = u.Uid
	}
	out := stderr
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			out = stdout // asked for: help is the output, not an error
		}
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(out)
	settingsFlags(fs, &opts)
	fs.Usage = func() {
		fmt.Fprint(out, strings.Replace(serveUsage, "whisk serve", "whisk "+cmd, 1))
		fs.PrintDefaults()
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return opts, err
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
		opts.App = positional[0]
	default:
		return opts, fmt.Errorf("one APP expected, got %q", positional)
	}
	return opts, nil
}

// load parses the arguments and loads the configuration; it reports
// problems on stderr and returns the exit code to use when it fails.
func load(cmd string, args []string, stdout, stderr io.Writer) (*config.Result, config.Options, int) {
	opts, err := parseSettings(cmd, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil, opts, exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "whisk %s: %v\nRun \"whisk %s --help\" for usage.\n", cmd, err, cmd)
		return nil, opts, exitUsage
	}
	res, err := config.Load(opts)
	if err != nil {
		fmt.Fprintf(stderr, "whisk %s: invalid configuration:\n%v\n", cmd, err)
		return nil, opts, exitUsage
	}
	return res, opts, exitOK
}

// newLogger returns the server log: slog's text or JSON handler (format,
// log_format) on w, at level (log_level).
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	res, opts, code := load("serve", args, stdout, stderr)
	if res == nil {
		return code
	}
	cfg := &res.Config
	log := newLogger(stderr, cfg.Server.LogLevel, cfg.Server.LogFormat)
	for _, w := range res.Warnings {
		log.Warn(w)
	}
	if path := os.Getenv("WHISK_CPUPROFILE"); path != "" {
		// A developer's aid: profile the front from start to stop.
		if f, err := os.Create(path); err == nil {
			if err := pprof.StartCPUProfile(f); err == nil {
				defer pprof.StopCPUProfile()
			}
		}
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

	access, err := openAccessLog(cfg.Server.AccessLog, stdout, log)
	if err != nil {
		fmt.Fprintf(stderr, "whisk serve: access_log: %v\n", err)
		return exitUsage
	}
	if access != nil {
		// Runs after the graceful stop: the lines of the last requests
		// are written.
		defer access.Stop()
	}
	// SIGUSR1 reopens the access log (logrotate). Registered before the
	// app starts, so an early SIGUSR1 does not kill whisk.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	reopenCtx, stopReopen := context.WithCancel(ctx)
	defer stopReopen()
	go reopenLoop(reopenCtx, access, log, usr1)
	allowed, err := proc.AllowedCPUs()
	if err != nil {
		log.Warn("workers run unpinned", "error", err)
	}

	inherited, notifier, err := systemd(log)
	if err != nil {
		fmt.Fprintf(stderr, "whisk serve: %v\n", err)
		return exitError
	}
	// Open the listeners first: a port in use is reported before the app
	// is imported.
	deps := server.Deps{
		Log:         log,
		RuntimeDir:  runtimeDir,
		TempDir:     tmp,
		Spawner:     proc.NewSpawner(),
		AllowedCPUs: allowed,
		Version:     Version,
		Inherited:   inherited,
		BindGiven:   res.Given("bind"),
	}
	if access != nil {
		deps.AccessLog = access
	}
	srv, err := server.New(cfg, deps)
	if err != nil {
		fmt.Fprintf(stderr, "whisk serve: %v\n", err)
		return exitError
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)

	// The pid file is written before the app starts (a SIGHUP meanwhile
	// waits in hups) and before root is given up, while /run is writable.
	if cfg.Server.PIDFile != "" {
		if pf, err := writePIDFile(cfg.Server.PIDFile); err != nil {
			log.Error("pid file not written: `whisk reload` cannot find this server", "pid_file", cfg.Server.PIDFile, "error", err)
		} else {
			defer pf.remove(log)
		}
	}
	if err := dropRoot(cfg, []string{tmp, srv.ACMECache()}, log); err != nil {
		fmt.Fprintf(stderr, "whisk serve: %v\n", err)
		srv.Shutdown(context.Background())
		return exitError
	}

	startCtx, cancelStart := context.WithCancel(ctx)
	go func() {
		select {
		case <-sigs:
			cancelStart()
		case <-startCtx.Done():
		}
	}()
	if err := srv.Start(startCtx, cfg); err != nil {
		cancelStart()
		srv.Shutdown(context.Background())
		return startFailed(stderr, err)
	}
	cancelStart()
	for _, g := range cfg.Groups {
		log.Info("group ready", "group", g.Name, "app", g.App, "processes", g.Processes, "threads", g.Threads, "python", g.Python)
	}
	log.Info("whisk serving", "listen", strings.Join(srv.Addrs(), ","), "groups", len(cfg.Groups), "config", cfg.File, "version", Version)
	notify(log, "READY=1", notifier.Ready("serving on "+strings.Join(srv.Addrs(), ",")))

	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	changes := make(chan string, 1)
	if cfg.Server.Reload {
		watchCode(runCtx, cfg, log, changes)
	}
	go reloadLoop(runCtx, srv, opts, log, notifier, hups, changes)

	select {
	case sig := <-sigs:
		log.Info("stopping: finishing in-flight requests", "signal", sig.String(), "shutdown_delay", cfg.Server.ShutdownDelay.String(), "graceful_timeout", cfg.GracefulTimeout().String())
	case err := <-served:
		if err != nil {
			log.Error("server failed", "error", err)
		}
	case <-ctx.Done():
	}
	notify(log, "STOPPING=1", notifier.Stopping("stopping: finishing in-flight requests"))
	stopRun()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.GracefulTimeout())
	defer cancel()
	go func() {
		// A second signal stops at once.
		if sig, ok := <-sigs; ok {
			log.Warn("second signal: stopping now", "signal", sig.String())
			cancel()
		}
	}()
	// /readyz fails at once; the listeners close after shutdown_delay.
	if err := srv.ShutdownAfter(sctx, cfg.Server.ShutdownDelay); err != nil {
		log.Warn("graceful timeout passed with requests in progress; closing them", "error", err)
	}
	log.Info("stopped")
	return exitOK
}

// openAccessLog opens the access log: none for "", stdout for "-", else
// the file at path.
func openAccessLog(path string, stdout io.Writer, log *slog.Logger) (*accesslog.Writer, error) {
	switch path {
	case "":
		return nil, nil
	case "-":
		return accesslog.NewStream(stdout, log), nil
	}
	return accesslog.OpenFile(path, log)
}

// reopenLoop reopens the access log file on each SIGUSR1, so that after
// logrotate renamed it new lines go to a new file at its path.
func reopenLoop(ctx context.Context, access *accesslog.Writer, log *slog.Logger, usr1 <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-usr1:
			if access == nil {
				log.Info("SIGUSR1: no access log file to reopen")
				continue
			}
			if err := access.Reopen(); err != nil {
				log.Error("SIGUSR1: access log not reopened; still writing to the previous file", "error", err)
				continue
			}
			log.Info("SIGUSR1: access log reopened")
		}
	}
}

// reloadLoop reloads on each SIGHUP: the config is read again and a new
// generation started. A failure is logged loudly and the running
// generation keeps serving.
func reloadLoop(ctx context.Context, srv *server.Server, opts config.Options, log *slog.Logger, notifier *sdnotify.Notifier, hups <-chan os.Signal, changes <-chan string) {
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-hups:
			log.Info("reload: reading the configuration and starting a new generation", "signal", "SIGHUP")
			notify(log, "RELOADING=1", notifier.Reloading("reloading"))
			err = reloadConfig(ctx, srv, opts, log)
			status := "serving; reloaded"
			if err != nil {
				status = "serving the previous generation: RELOAD FAILED"
			}
			notify(log, "READY=1", notifier.Ready(status))
		case path := <-changes:
			names := srv.GroupsUnder(path)
			log.Info("reload: code changed; starting new workers", "file", path, "groups", strings.Join(names, ","))
			err = srv.Restart(ctx, names)
		}
		if err == nil {
			continue
		}
		var ge *server.GroupError
		var ie *proc.ImportError
		if errors.As(err, &ge) && errors.As(err, &ie) {
			log.Error("RELOAD FAILED: the new code does not import; the running generation keeps serving",
				"group", ge.Group, "app", ge.App, "error", ie.Message, "traceback", ie.Traceback, "hint", ie.Hint)
			continue
		}
		log.Error("RELOAD FAILED: the running generation keeps serving", "error", err.Error())
	}
}

// reloadConfig reads the configuration again and starts a new generation
// of every group.
func reloadConfig(ctx context.Context, srv *server.Server, opts config.Options, log *slog.Logger) error {
	res, err := config.Load(opts)
	if err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	for _, w := range res.Warnings {
		log.Warn(w)
	}
	return srv.Reload(ctx, &res.Config)
}

// watchCode reports changed .py files under the groups' chdir and
// python_path on changes (reload = true, for development).
func watchCode(ctx context.Context, cfg *config.Config, log *slog.Logger, changes chan<- string) {
	seen := map[string]bool{}
	var dirs []string
	for _, g := range cfg.Groups {
		for _, d := range g.CodeDirs() {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() && !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
	}
	log.Info("reload on code changes: watching .py files", "dirs", strings.Join(dirs, ","))
	go func() {
		err := watch.Run(ctx, dirs, log, func(path string) {
			select {
			case changes <- path:
			default: // a reload is already due
			}
		})
		if err != nil {
			log.Error("reload on code changes is off", "error", err)
		}
	}()
}

// startFailed reports a failed start and returns the exit code.
func startFailed(stderr io.Writer, err error) int {
	var ge *server.GroupError
	var ie *proc.ImportError
	if errors.As(err, &ge) && errors.As(err, &ie) {
		fmt.Fprintf(stderr, "whisk serve: group %s cannot import the app %q with %s\n\n%s\n%s\n\nhint: %s\n", ge.Group, ge.App, ge.Python, strings.TrimRight(ie.Traceback, "\n"), ie.Message, ie.Hint)
		return exitImport
	}
	fmt.Fprintf(stderr, "whisk serve: %v\n", err)
	return exitError
}

// check validates the configuration and prints it, every setting explicit.
func check(args []string, stdout, stderr io.Writer) int {
	res, _, code := load("check", args, stdout, stderr)
	if res == nil {
		return code
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stderr, "whisk check: warning: %s\n", w)
	}
	if err := res.Write(stdout); err != nil {
		fmt.Fprintf(stderr, "whisk check: %v\n", err)
		return exitError
	}
	return exitOK
}

// reload tells a running whisk to reload, through its pid file.
func reload(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "config `FILE` naming pid_file (default: whisk.toml or pyproject.toml here)")
	pidFile := fs.String("pid-file", "", "the running whisk's pid `FILE` (default: pid_file of the config)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: whisk reload [--config FILE | --pid-file FILE]\n\nSend SIGHUP to the whisk whose pid file the config names: it reads its\nconfig again and starts a new generation of every group.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	path := *pidFile
	if path == "" {
		var err error
		path, err = config.PIDFile(config.Options{File: *file, Environ: os.Environ()})
		if err != nil {
			fmt.Fprintf(stderr, "whisk reload: %v\n", err)
			return exitUsage
		}
	}
	if path == "" {
		fmt.Fprintln(stderr, "whisk reload: no pid file: set pid_file in the config (and restart whisk), or give --pid-file; or send SIGHUP to whisk's process id yourself")
		return exitUsage
	}
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "whisk reload: %v: is whisk running with pid_file = %q?\n", err, path)
		return exitError
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		fmt.Fprintf(stderr, "whisk reload: %s does not hold a process id\n", path)
		return exitError
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		fmt.Fprintf(stderr, "whisk reload: signal whisk (pid %d from %s): %v\n", pid, path, err)
		return exitError
	}
	fmt.Fprintf(stdout, "whisk reload: sent SIGHUP to whisk (pid %d); its log says whether the new generation started\n", pid)
	return exitOK
}

// pidFile is the pid file this process wrote, kept open so that it can be
// emptied at exit even after root was given up and its directory may no
// longer be written.
type pidFile struct {
	path string
	f    *os.File
}

// writePIDFile writes this process's pid to path (through a rename, so a
// reader never sees half of it) and keeps the file open.
func writePIDFile(path string) (*pidFile, error) {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &pidFile{path: path, f: f}, nil
}

// remove removes the pid file if it still names this process; when that
// is not allowed (the front gave up root), it empties it, so that no later
// `whisk reload` signals a process that reused the pid.
func (p *pidFile) remove(log *slog.Logger) {
	defer p.f.Close()
	buf := make([]byte, 32)
	n, _ := p.f.ReadAt(buf, 0)
	if strings.TrimSpace(string(buf[:n])) != strconv.Itoa(os.Getpid()) {
		return // another whisk wrote its own since
	}
	if cur, err := os.Stat(p.path); err == nil {
		if mine, err := p.f.Stat(); err == nil && os.SameFile(cur, mine) && os.Remove(p.path) == nil {
			return
		}
	}
	if err := p.f.Truncate(0); err != nil {
		log.Warn("pid file left behind", "pid_file", p.path, "error", err)
	}
}

// dropRoot gives up root once the listeners are bound, the TLS keys read
// and the log files open, when every group's workers run as one and the
// same unprivileged user: the front then runs as that user too, as
// gunicorn --user does, and spawns its workers without switching. The
// directories it keeps writing to (the body spool, the ACME cache; ""
// entries are skipped) are given to the user first, with what they hold;
// the pid file stays open instead (see pidFile).
// With groups of different users (or root workers), the front keeps root
// to start each group as its user (docs/security.md).
func dropRoot(cfg *config.Config, dirs []string, log *slog.Logger) error {
	acct, err := commonAccount(cfg)
	if err != nil || acct == nil {
		return err
	}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, int(acct.UID), int(acct.GID))
		})
		if err != nil {
			return fmt.Errorf("give %s to %s before dropping root: %w", dir, acct.Name, err)
		}
	}
	if err := acct.Become(); err != nil {
		return fmt.Errorf("drop root: %w", err)
	}
	log.Info("front runs as the workers' user from now on", "user", acct.Name, "uid", acct.UID, "gid", acct.GID)
	return nil
}

// commonAccount returns the account every group's workers run as, when
// whisk runs as root and that is one unprivileged identity for all of
// them; nil otherwise.
func commonAccount(cfg *config.Config) (*proc.Account, error) {
	if os.Geteuid() != 0 || len(cfg.Groups) == 0 {
		return nil, nil
	}
	var common *proc.Account
	for _, g := range cfg.Groups {
		if g.User == "" {
			return nil, nil // root workers (allow_root)
		}
		acct, err := proc.LookupAccount(g.User, g.UnixGroup)
		if err != nil {
			return nil, fmt.Errorf("group %q: %w", g.Name, err)
		}
		if acct.UID == 0 || (common != nil && !common.Same(acct)) {
			return nil, nil
		}
		common = acct
	}
	return common, nil
}
