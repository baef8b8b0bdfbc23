package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/config"
	"github.com/whiskserver/whisk/internal/whisktest"
)

// TestParseSettings: flags become FlagValues in order (aliases named as
// typed), and APP may come before, between or after them.
func TestParseSettings(t *testing.T) {
	fv := func(name, value, flag string) config.FlagValue {
		return config.FlagValue{Name: name, Value: value, Flag: flag}
	}
	tests := []struct {
		name      string
		args      []string
		wantApp   string
		wantFile  string
		wantFlags []config.FlagValue
		wantErr   string
	}{
		{name: "app alone", args: []string{"app:app"}, wantApp: "app:app"},
		{
			name:      "app after flags",
			args:      []string{"--threads", "8", "--processes=3", "mysite.wsgi:application"},
			wantApp:   "mysite.wsgi:application",
			wantFlags: []config.FlagValue{fv("threads", "8", "--threads"), fv("processes", "3", "--processes")},
		},
		{
			name:      "app between flags, gunicorn's names",
			args:      []string{"--pythonpath", "/a", "/srv/wsgi.py", "--timeout", "1.5"},
			wantApp:   "/srv/wsgi.py",
			wantFlags: []config.FlagValue{fv("python_path", "/a", "--pythonpath"), fv("request_timeout", "1.5", "--timeout")},
		},
		{
			name:      "switches take no value",
			args:      []string{"--preload", "--allow-root", "app:app"},
			wantApp:   "app:app",
			wantFlags: []config.FlagValue{fv("preload", "true", "--preload"), fv("allow_root", "true", "--allow-root")},
		},
		{name: "config file", args: []string{"--config", "site.toml"}, wantFile: "site.toml"},
		{name: "double dash ends the flags", args: []string{"--", "-weird-app"}, wantApp: "-weird-app"},
		{name: "two apps", args: []string{"a:app", "--threads", "2", "b:app"}, wantErr: `one APP expected, got ["a:app" "b:app"]`},
		{name: "unknown flag", args: []string{"--nope", "app:app"}, wantErr: "flag provided but not defined: -nope"},
		{name: "missing flag value", args: []string{"app:app", "--threads"}, wantErr: "flag needs an argument: -threads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			opts, err := parseSettings("serve", tt.args, &stdout, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseSettings(%q) error = %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSettings(%q): %v", tt.args, err)
			}
			if opts.App != tt.wantApp || opts.File != tt.wantFile || !reflect.DeepEqual(opts.Flags, tt.wantFlags) {
				t.Errorf("parseSettings(%q) = app %q file %q flags %v; want %q %q %v", tt.args, opts.App, opts.File, opts.Flags, tt.wantApp, tt.wantFile, tt.wantFlags)
			}
			if opts.NumCPU < 1 || opts.Root != (os.Geteuid() == 0) {
				t.Errorf("NumCPU %d, Root %v: not taken from the machine", opts.NumCPU, opts.Root)
			}
		})
	}
}

// TestEveryFlagLoads: each setting's flag, as parsed, is accepted by Load,
// so flags and settings cannot drift apart.
func TestEveryFlagLoads(t *testing.T) {
	dir := t.TempDir()
	cert, key := whisktest.Cert(t, dir, "localhost")
	values := map[string]string{
		"max_request_line": "8K", "max_header_size": "64K", "socket_owner": "root:root", "socket_mode": "0660",
		"tls_bind": "127.0.0.1:0", "tls_cert": cert, "tls_key": key,
		"bind": "127.0.0.1:0", "app": "app:app", "python": "python3", "python_path": dir, "chdir": dir,
		"env": "A=1", "user": "", "group": "", "access_log": filepath.Join(dir, "access.log"),
		"pid_file": filepath.Join(dir, "pid"), "log_level": "debug", "cpu_affinity": "off", "post_fork": "",
		"reload": "true", "allow_root": "true", "preload": "true", "max_rss": "100M", "max_body_size": "1M",
		"body_buffer_size": "64K", "log_format": "json", "access_log_format": "json", "admin_bind": "127.0.0.1:0",
		"health_bind": "unix:" + filepath.Join(dir, "health.sock"), "forwarded_allow_ips": "10.0.0.0/8", "request_id_header": "X-Trace",
		"static": "/static/=" + dir, "x_sendfile": dir, "x_accel_redirect": "/protected/=" + dir,
		"acme_hosts": "example.com", "acme_email": "ops@example.com", "acme_directory": "https://acme.example.net/dir",
		"acme_cache": dir, "acme_ca_cert": cert, "interface": "asgi",
	}
	for _, s := range config.Settings {
		v, ok := values[s.Name]
		if !ok {
			v = "7" // numbers and durations (seconds)
		}
		args := []string{"--allow-root", "app:app"}
		switch s.Name {
		case "tls_bind", "tls_cert", "tls_key": // they go together
			args = append(args, "--tls-cert", cert, "--tls-key", key)
		case "acme_hosts": // for HTTPS listeners
			args = append(args, "--tls-bind", "127.0.0.1:0")
		}
		if s.Switch() {
			args = append(args, "--"+s.Flag())
		} else {
			args = append(args, "--"+s.Flag(), v)
		}
		var stdout, stderr bytes.Buffer
		opts, err := parseSettings("check", args, &stdout, &stderr)
		if err != nil {
			t.Errorf("--%s: %v", s.Flag(), err)
			continue
		}
		opts.Dir = dir
		opts.NoFile = true
		if _, err := config.Load(opts); err != nil {
			t.Errorf("--%s %s: Load: %v", s.Flag(), v, err)
		}
	}
}

func TestServeHelp(t *testing.T) {
	for _, args := range [][]string{{"serve", "--help"}, {"serve", "-h"}, {"check", "--help"}, {"serve", "app:app", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := Run(context.Background(), args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d", code)
			}
			out := stdout.String()
			for _, want := range []string{"Usage: whisk " + args[0], "-bind", "-max-requests", "-graceful-timeout", "-config", "SIGHUP", "docs/configuration.md"} {
				if !strings.Contains(out, want) {
					t.Errorf("help on stdout lacks %q:\n%s", want, out)
				}
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr %q, want help on stdout only", stderr.String())
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if _, err := parseSettings("serve", []string{"--nope"}, &stdout, &stderr); err == nil || errors.Is(err, flag.ErrHelp) {
		t.Fatalf("unknown flag: err = %v", err)
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), "Usage: whisk serve") {
		t.Errorf("an error's usage goes to stderr: stdout %q stderr %q", stdout.String(), stderr.String())
	}
}

// TestReloadSignals: whisk reload reads the pid file and sends SIGHUP.
func TestReloadSignals(t *testing.T) {
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	pidFile := filepath.Join(t.TempDir(), "whisk.pid")
	pf, err := writePIDFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Run(context.Background(), []string{"reload", "--pid-file", pidFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	select {
	case <-hups:
	case <-time.After(10 * time.Second):
		t.Fatal("no SIGHUP arrived")
	}
	if !strings.Contains(stdout.String(), "sent SIGHUP") {
		t.Errorf("stdout %q", stdout.String())
	}
	pf.remove(slog.New(slog.DiscardHandler))
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file not removed: %v", err)
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout []string
		wantStderr []string
	}{
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: []string{"whisk " + Version + " (go"}},
		{name: "--version", args: []string{"--version"}, wantCode: 0, wantStdout: []string{"whisk " + Version}},
		{name: "help", args: []string{"help"}, wantCode: 0, wantStdout: []string{"Usage:", "whisk serve [flags] [APP]", "whisk check", "whisk reload"}},
		{name: "-h", args: []string{"-h"}, wantCode: 0, wantStdout: []string{"Usage:"}},
		{name: "no command", args: nil, wantCode: 2, wantStderr: []string{"Usage:"}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: []string{`whisk: unknown command "frobnicate"`, "Usage:"}},
		{name: "serve help", args: []string{"serve", "--help"}, wantCode: 0, wantStdout: []string{"Usage: whisk serve"}},
		{name: "serve without app", args: []string{"serve", "--config", "/nonexistent/none.toml"}, wantCode: 2, wantStderr: []string{"whisk serve:", "none.toml"}},
		{name: "serve bad flag", args: []string{"serve", "--threads", "x", "--allow-root", "app:app"}, wantCode: 2, wantStderr: []string{"whisk serve: invalid configuration", "--threads: want a whole number"}},
		{name: "serve unknown flag", args: []string{"serve", "--nope", "app:app"}, wantCode: 2, wantStderr: []string{"flag provided but not defined: -nope", `Run "whisk serve --help"`}},
		{
			name:       "serve with a missing interpreter",
			args:       []string{"serve", "--allow-root", "--python", "/nonexistent/python3", "app:app"},
			wantCode:   2,
			wantStderr: []string{`--python: no interpreter "/nonexistent/python3"`},
		},
		{name: "check prints the config", args: []string{"check", "--allow-root", "--threads", "3", "app:app"}, wantCode: 0, wantStdout: []string{"[groups.main]", `app = "app:app"`, "threads = 3", "[sites.default]"}},
		{name: "check reports every problem", args: []string{"check", "--threads", "0", "--processes", "0", "--allow-root", "app:app"}, wantCode: 2, wantStderr: []string{"--threads: must be positive", "--processes: must be positive"}},
		{name: "reload without a pid file", args: []string{"reload", "--pid-file", "/nonexistent/whisk.pid"}, wantCode: 1, wantStderr: []string{"whisk reload:", "/nonexistent/whisk.pid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("Run(%q) = %d, want %d\nstdout: %s\nstderr: %s", tt.args, code, tt.wantCode, stdout.String(), stderr.String())
			}
			for _, want := range tt.wantStdout {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
				}
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			if tt.wantStdout == nil && stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			if tt.wantStderr == nil && stderr.Len() != 0 {
				t.Errorf("stderr %q, want nothing", stderr.String())
			}
		})
	}
}

func TestVersionOneLine(t *testing.T) {
	var stdout bytes.Buffer
	Run(context.Background(), []string{"version"}, &stdout, &stdout)
	if out := stdout.String(); strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, ")\n") {
		t.Errorf("version output %q, want one line \"whisk VERSION (BUILD)\"", out)
	}
}

// TestCommonAccount: as root, the front gives up root only when every
// group runs as one and the same unprivileged identity.
func TestCommonAccount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: unprivileged, there is no root to give up")
	}
	g := func(user, group string) config.Group {
		return config.Group{Name: "g-" + user + group, User: user, UnixGroup: group}
	}
	tests := []struct {
		name    string
		groups  []config.Group
		want    string // user name, "" for nil
		wantErr string
	}{
		{"no groups", nil, "", ""},
		{"one group", []config.Group{g("nobody", "")}, "nobody", ""},
		{"two groups, one user", []config.Group{g("nobody", ""), g("nobody", "nogroup")}, "nobody", ""},
		{"root workers", []config.Group{g("nobody", ""), g("", "")}, "", ""},
		{"user root", []config.Group{g("root", "")}, "", ""},
		{"another group", []config.Group{g("nobody", ""), g("nobody", "daemon")}, "", ""},
		{"another user", []config.Group{g("nobody", ""), g("daemon", "")}, "", ""},
		{"unknown user", []config.Group{g("no-such-user-whisk", "")}, "", "no such user"},
	}
	for _, tt := range tests {
		acct, err := commonAccount(&config.Config{Groups: tt.groups})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		got := ""
		if acct != nil {
			got = acct.Name
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
