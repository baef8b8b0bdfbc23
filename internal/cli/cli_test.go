package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"512", 512, false},
		{"512b", 512, false},
		{"512B", 512, false},
		{"1k", 1 << 10, false},
		{"1K", 1 << 10, false},
		{"64KB", 64 << 10, false},
		{"64KiB", 64 << 10, false},
		{"64kib", 64 << 10, false},
		{"10M", 10 << 20, false},
		{"10MB", 10 << 20, false},
		{"10MiB", 10 << 20, false},
		{"1G", 1 << 30, false},
		{"2GB", 2 << 30, false},
		{"2GiB", 2 << 30, false},
		{" 10M ", 10 << 20, false},
		{"10 M", 10 << 20, false},
		{"9223372036854775807", math.MaxInt64, false},
		{"8589934591G", 8589934591 << 30, false}, // the largest G that fits
		{"", 0, true},
		{"M", 0, true},
		{"KiB", 0, true},
		{"-1", 0, true},
		{"-1K", 0, true},
		{"1.5M", 0, true},
		{"10X", 0, true},
		{"10T", 0, true},
		{"ten", 0, true},
		{"10MM", 0, true},
		{"0x10", 0, true},
		{"9223372036854775808", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseSize(%q) = %d, nil; want an error", tt.in, got)
				}
				if !strings.Contains(err.Error(), "size") || !strings.Contains(err.Error(), "like 10M") {
					t.Errorf("error %q does not say what a size looks like", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

// A count times its unit can overflow int64; ParseSize must report that
// rather than wrap to a negative size or to 0.
func TestParseSizeOverflow(t *testing.T) {
	for _, in := range []string{
		"8589934592G",          // 2^33 GiB = 2^63: wraps to math.MinInt64
		"17179869184G",         // 2^34 GiB = 2^64: wraps to 0
		"9007199254740992K",    // 2^53 KiB = 2^63
		"9223372036854775807K", // wraps to -1024
	} {
		t.Run(in, func(t *testing.T) {
			if got, err := ParseSize(in); err == nil {
				t.Errorf("ParseSize(%q) = %d, nil; want an error (the size overflows int64)", in, got)
			}
		})
	}
}

func TestDurationFlag(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"30", 30 * time.Second, false},
		{"0", 0, false},
		{"1.5", 1500 * time.Millisecond, false},
		{"0.25", 250 * time.Millisecond, false},
		{"30s", 30 * time.Second, false},
		{"2m", 2 * time.Minute, false},
		{"1m30s", 90 * time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"-1", 0, true}, // a negative timeout would turn the limit off
		{"-5s", 0, true},
		{"", 0, true},
		{"bad", 0, true},
		{"30 s", 0, true},
		{"1d", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d := time.Duration(-42)
			err := durationFlag{&d}.Set(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Set(%q) = nil (value %v), want an error", tt.in, d)
				}
				if !strings.Contains(err.Error(), "seconds or a duration like 30s") {
					t.Errorf("error %q does not give the forms", err)
				}
				if d != -42 {
					t.Errorf("a failed Set changed the value to %v", d)
				}
				return
			}
			if err != nil || d != tt.want {
				t.Fatalf("Set(%q) = %v, value %v; want %v", tt.in, err, d, tt.want)
			}
			if s := (durationFlag{&d}).String(); s != tt.want.String() {
				t.Errorf("String() = %q, want %q", s, tt.want.String())
			}
		})
	}
	if s := (durationFlag{}).String(); s != "" {
		t.Errorf("zero durationFlag String() = %q, want \"\"", s)
	}
}

// strconv.ParseFloat accepts "NaN", "Inf" and huge exponents; converting
// those to a time.Duration gives an arbitrary value (math.MinInt64 on
// amd64), which disables --header-timeout and --keep-alive (not checked by
// Validate) instead of being rejected.
func TestDurationFlagNotFinite(t *testing.T) {
	for _, in := range []string{"NaN", "inf", "+Inf", "-Inf", "1e300"} {
		t.Run(in, func(t *testing.T) {
			var d time.Duration
			if err := (durationFlag{&d}).Set(in); err == nil {
				t.Errorf("Set(%q) = nil with value %v (%d ns), want an error", in, d, int64(d))
			}
		})
	}
}

func TestParseServe(t *testing.T) {
	defaults := func(mod func(c *wantServe)) wantServe {
		w := wantServe{
			Processes: runtime.NumCPU(), Threads: 4, Python: "python3",
			Timeout: 30 * time.Second, Binds: []string{"127.0.0.1:8000"},
		}
		mod(&w)
		return w
	}
	tests := []struct {
		name    string
		args    []string
		want    wantServe
		wantErr string
	}{
		{
			name: "app alone",
			args: []string{"app:app"},
			want: defaults(func(w *wantServe) { w.App = "app:app" }),
		},
		{
			name: "app after flags",
			args: []string{"--threads", "8", "--processes=3", "mysite.wsgi:application"},
			want: defaults(func(w *wantServe) { w.App, w.Threads, w.Processes = "mysite.wsgi:application", 8, 3 }),
		},
		{
			name: "app before flags",
			args: []string{"mysite.wsgi", "--threads", "2", "-processes", "1"},
			want: defaults(func(w *wantServe) { w.App, w.Threads, w.Processes = "mysite.wsgi", 2, 1 }),
		},
		{
			name: "app between flags",
			args: []string{"--threads", "2", "/srv/wsgi.py", "--timeout", "1.5"},
			want: defaults(func(w *wantServe) { w.App, w.Threads, w.Timeout = "/srv/wsgi.py", 2, 1500*time.Millisecond }),
		},
		{
			name: "repeatable flags keep order",
			args: []string{
				"--bind", "0.0.0.0:80", "--env", "A=1", "--pythonpath", "/a", "app:app",
				"--bind", "unix:/run/w.sock", "--env", "B=2", "--pythonpath", "/b",
			},
			want: defaults(func(w *wantServe) {
				w.App = "app:app"
				w.Binds = []string{"0.0.0.0:80", "unix:/run/w.sock"}
				w.Env = []string{"A=1", "B=2"}
				w.PythonPath = []string{"/a", "/b"}
			}),
		},
		{
			name: "durations and sizes",
			args: []string{"--timeout", "2m", "--max-body-size", "1G", "app:app"},
			want: defaults(func(w *wantServe) { w.App, w.Timeout, w.MaxBodySize = "app:app", 2*time.Minute, 1<<30 }),
		},
		{
			name: "double dash ends the flags",
			args: []string{"--threads", "2", "--", "-weird-app"},
			want: defaults(func(w *wantServe) { w.App, w.Threads = "-weird-app", 2 }),
		},
		{name: "two apps", args: []string{"a:app", "--threads", "2", "b:app"}, wantErr: `one APP expected, got ["a:app" "b:app"]`},
		{name: "no app", args: []string{"--threads", "2"}, wantErr: "no app given"},
		{name: "unknown flag", args: []string{"--nope", "app:app"}, wantErr: "flag provided but not defined: -nope"},
		{name: "bad int", args: []string{"--threads", "many", "app:app"}, wantErr: `invalid value "many" for flag -threads`},
		{name: "bad duration", args: []string{"--timeout", "soon", "app:app"}, wantErr: "want seconds or a duration like 30s"},
		{name: "bad size", args: []string{"--max-body-size", "big", "app:app"}, wantErr: "like 10M"},
		{name: "invalid value caught by Validate", args: []string{"--threads", "0", "app:app"}, wantErr: "--threads 0: must be at least 1"},
		{name: "missing flag value", args: []string{"app:app", "--threads"}, wantErr: "flag needs an argument: -threads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cfg, err := parseServe(tt.args, &stdout, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseServe(%q) error = %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				if stdout.Len() != 0 {
					t.Errorf("stdout %q, want nothing on an error", stdout.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("parseServe(%q): %v\nstderr: %s", tt.args, err, stderr.String())
			}
			got := wantServe{
				App: cfg.App, Processes: cfg.Processes, Threads: cfg.Threads, Python: cfg.Python,
				Timeout: cfg.Timeout, Binds: cfg.Binds, Env: cfg.Env, PythonPath: cfg.PythonPath,
			}
			if tt.want.MaxBodySize != 0 {
				got.MaxBodySize = cfg.MaxBodySize
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseServe(%q) =\n%+v\nwant\n%+v", tt.args, got, tt.want)
			}
			if stdout.Len() != 0 || stderr.Len() != 0 {
				t.Errorf("output on success: stdout %q stderr %q", stdout.String(), stderr.String())
			}
		})
	}
}

type wantServe struct {
	App         string
	Processes   int
	Threads     int
	Python      string
	Timeout     time.Duration
	MaxBodySize int64
	Binds       []string
	Env         []string
	PythonPath  []string
}

func TestParseServeHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"app:app", "--help"}, {"--threads", "2", "-h"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			_, err := parseServe(args, &stdout, &stderr)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("parseServe(%q) = %v, want flag.ErrHelp", args, err)
			}
			out := stdout.String()
			for _, want := range []string{"Usage: whisk serve [flags] APP", "-bind", "-max-requests", "-graceful-timeout"} {
				if !strings.Contains(out, want) {
					t.Errorf("help on stdout lacks %q:\n%s", want, out)
				}
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr %q, want help on stdout only", stderr.String())
			}
		})
	}
}

func TestParseServeErrorUsageOnStderr(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if _, err := parseServe([]string{"--nope"}, &stdout, &stderr); err == nil {
		t.Fatal("no error for an unknown flag")
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q, want nothing", stdout.String())
	}
	if !strings.Contains(stderr.String(), "flag provided but not defined") || !strings.Contains(stderr.String(), "Usage: whisk serve") {
		t.Errorf("stderr lacks the error and the usage:\n%s", stderr.String())
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
		{name: "help", args: []string{"help"}, wantCode: 0, wantStdout: []string{"Usage:", "whisk serve [flags] APP"}},
		{name: "-h", args: []string{"-h"}, wantCode: 0, wantStdout: []string{"Usage:"}},
		{name: "no command", args: nil, wantCode: 2, wantStderr: []string{"Usage:"}},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: []string{`whisk: unknown command "frobnicate"`, "Usage:"}},
		{name: "serve help", args: []string{"serve", "--help"}, wantCode: 0, wantStdout: []string{"Usage: whisk serve"}},
		{name: "serve without app", args: []string{"serve"}, wantCode: 2, wantStderr: []string{"whisk serve: no app given", `Run "whisk serve --help"`}},
		{name: "serve bad flag", args: []string{"serve", "--threads", "x", "app:app"}, wantCode: 2, wantStderr: []string{"whisk serve:", "invalid value"}},
		{
			name:       "serve with a missing interpreter",
			args:       []string{"serve", "--python", "/nonexistent/python3", "app:app"},
			wantCode:   2,
			wantStderr: []string{`whisk serve: --python "/nonexistent/python3": no such interpreter`},
		},
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
