package config

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	d := Defaults()
	want := Serve{
		Processes:         runtime.NumCPU(),
		Threads:           4,
		Python:            "python3",
		Timeout:           30 * time.Second,
		GracefulTimeout:   30 * time.Second,
		StartupTimeout:    60 * time.Second,
		MaxBodySize:       10 << 20,
		BodyMemory:        1 << 20,
		ResponseWindow:    1 << 20,
		ReadHeaderTimeout: 15 * time.Second,
		KeepAlive:         60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		LogLevel:          "info",
		CPUAffinity:       "auto",
	}
	if d.App != "" || d.Binds != nil || d.Chdir != "" || d.PythonPath != nil || d.Env != nil ||
		d.MaxRequests != 0 || d.MaxRequestsJitter != 0 || d.AccessLog != "" {
		t.Errorf("Defaults sets a field that should be empty: %+v", d)
	}
	d2 := d
	d2.App, d2.Binds, d2.Chdir, d2.PythonPath, d2.Env, d2.AccessLog = "", nil, "", nil, nil, ""
	if !equalServe(d2, want) {
		t.Errorf("Defaults() =\n%+v\nwant\n%+v", d, want)
	}
	// Defaults with an app are valid, and the default bind is filled in.
	d.App = "app:app"
	if err := d.Validate(); err != nil {
		t.Fatalf("Defaults with an app: Validate = %v", err)
	}
	if len(d.Binds) != 1 || d.Binds[0] != DefaultBind || DefaultBind != "127.0.0.1:8000" {
		t.Errorf("Binds after Validate = %q, want [%q]", d.Binds, "127.0.0.1:8000")
	}
}

func equalServe(a, b Serve) bool {
	return a.App == b.App && a.Processes == b.Processes && a.Threads == b.Threads && a.Python == b.Python &&
		a.Chdir == b.Chdir && a.Timeout == b.Timeout && a.GracefulTimeout == b.GracefulTimeout &&
		a.StartupTimeout == b.StartupTimeout && a.MaxRequests == b.MaxRequests &&
		a.MaxRequestsJitter == b.MaxRequestsJitter && a.MaxBodySize == b.MaxBodySize &&
		a.BodyMemory == b.BodyMemory && a.ResponseWindow == b.ResponseWindow &&
		a.ReadHeaderTimeout == b.ReadHeaderTimeout && a.KeepAlive == b.KeepAlive &&
		a.MaxHeaderBytes == b.MaxHeaderBytes && a.AccessLog == b.AccessLog && a.LogLevel == b.LogLevel && a.CPUAffinity == b.CPUAffinity
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		modify func(*Serve)
		// want holds substrings of the error, one group per problem: the
		// flag (or what is missing) and the fix. Empty: valid.
		want [][]string
	}{
		{name: "defaults with an app", modify: func(*Serve) {}},
		{name: "chdir is a directory", modify: func(s *Serve) { s.Chdir = dir }},
		{name: "env pairs", modify: func(s *Serve) { s.Env = []string{"A=1", "B=", "C=x=y"} }},
		{name: "zero graceful timeout", modify: func(s *Serve) { s.GracefulTimeout = 0 }},
		{name: "zero max body size", modify: func(s *Serve) { s.MaxBodySize = 0 }},
		{name: "every log level", modify: func(s *Serve) { s.LogLevel = "debug" }},
		{
			name:   "no app",
			modify: func(s *Serve) { s.App = "" },
			want:   [][]string{{"no app given", "whisk serve module:callable", "path/to/wsgi.py"}},
		},
		{
			name:   "zero processes",
			modify: func(s *Serve) { s.Processes = 0 },
			want:   [][]string{{"--processes 0", "at least 1"}},
		},
		{
			name:   "negative threads",
			modify: func(s *Serve) { s.Threads = -2 },
			want:   [][]string{{"--threads -2", "at least 1"}},
		},
		{
			name:   "zero timeout",
			modify: func(s *Serve) { s.Timeout = 0 },
			want:   [][]string{{"--timeout 0s", "positive", "like 30s"}},
		},
		{
			name:   "negative graceful timeout",
			modify: func(s *Serve) { s.GracefulTimeout = -time.Second },
			want:   [][]string{{"--graceful-timeout", "not be negative"}},
		},
		{
			name:   "zero startup timeout",
			modify: func(s *Serve) { s.StartupTimeout = 0 },
			want:   [][]string{{"--startup-timeout", "positive", "like 60s"}},
		},
		{
			name:   "zero header timeout",
			modify: func(s *Serve) { s.ReadHeaderTimeout = 0 },
			want:   [][]string{{"--header-timeout", "positive", "slow clients"}},
		},
		{
			name:   "negative keep-alive",
			modify: func(s *Serve) { s.KeepAlive = -time.Second },
			want:   [][]string{{"--keep-alive", "positive", "like 60s"}},
		},
		{
			name:   "negative max requests",
			modify: func(s *Serve) { s.MaxRequests = -1 },
			want:   [][]string{{"--max-requests", "not be negative"}},
		},
		{
			name:   "negative jitter",
			modify: func(s *Serve) { s.MaxRequestsJitter = -1 },
			want:   [][]string{{"--max-requests-jitter", "not be negative"}},
		},
		{
			name:   "negative max body size",
			modify: func(s *Serve) { s.MaxBodySize = -1 },
			want:   [][]string{{"--max-body-size -1", "not be negative"}},
		},
		{
			name:   "env without =",
			modify: func(s *Serve) { s.Env = []string{"A=1", "NOEQUALS"} },
			want:   [][]string{{`--env "NOEQUALS"`, "KEY=VALUE"}},
		},
		{
			name:   "env with empty key",
			modify: func(s *Serve) { s.Env = []string{"=value"} },
			want:   [][]string{{`--env "=value"`, "KEY=VALUE"}},
		},
		{
			name:   "log level",
			modify: func(s *Serve) { s.LogLevel = "verbose" },
			want:   [][]string{{`--log-level "verbose"`, "debug, info, warn or error"}},
		},
		{
			name:   "log level is case-sensitive",
			modify: func(s *Serve) { s.LogLevel = "INFO" },
			want:   [][]string{{`--log-level "INFO"`}},
		},
		{
			name:   "chdir missing",
			modify: func(s *Serve) { s.Chdir = filepath.Join(dir, "missing") },
			want:   [][]string{{"--chdir", "missing", "not a directory"}},
		},
		{
			name:   "chdir is a file",
			modify: func(s *Serve) { s.Chdir = file },
			want:   [][]string{{"--chdir", "not a directory"}},
		},
		{
			name: "every problem reported at once",
			modify: func(s *Serve) {
				s.App, s.Processes, s.Threads, s.LogLevel = "", 0, 0, "loud"
			},
			want: [][]string{{"no app given"}, {"--processes 0"}, {"--threads 0"}, {`--log-level "loud"`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Defaults()
			s.App = "app:app"
			tt.modify(&s)
			err := s.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("Validate reported %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for i, subs := range tt.want {
				if i >= len(lines) {
					break
				}
				for _, sub := range subs {
					if !strings.Contains(lines[i], sub) {
						t.Errorf("problem %d %q does not contain %q", i, lines[i], sub)
					}
				}
			}
		})
	}
}

func TestValidateKeepsBinds(t *testing.T) {
	s := Defaults()
	s.App = "app:app"
	s.Binds = []string{"0.0.0.0:80", "unix:/run/x.sock"}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(s.Binds) != 2 || s.Binds[0] != "0.0.0.0:80" || s.Binds[1] != "unix:/run/x.sock" {
		t.Errorf("Binds = %q, changed by Validate", s.Binds)
	}
}

// writeExe writes an executable file at path.
func writeExe(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestInterpreter(t *testing.T) {
	root := t.TempDir()
	venv := filepath.Join(root, "venv")
	writeExe(t, filepath.Join(venv, "bin", "python"))
	writeExe(t, filepath.Join(venv, "bin", "python3"))
	venv3 := filepath.Join(root, "venv3") // only bin/python3
	writeExe(t, filepath.Join(venv3, "bin", "python3"))
	notVenv := filepath.Join(root, "plain")
	if err := os.Mkdir(notVenv, 0o755); err != nil {
		t.Fatal(err)
	}
	pathDir := filepath.Join(root, "path")
	writeExe(t, filepath.Join(pathDir, "fakepython"))
	if err := os.WriteFile(filepath.Join(pathDir, "notexec"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", pathDir)
	t.Chdir(root)

	tests := []struct {
		name     string
		python   string
		wantExe  string
		wantVenv string
		wantErr  []string
	}{
		{name: "virtualenv directory", python: venv, wantExe: filepath.Join(venv, "bin", "python"), wantVenv: venv},
		{name: "relative virtualenv directory", python: "venv", wantExe: filepath.Join(venv, "bin", "python"), wantVenv: venv},
		{name: "virtualenv with a trailing slash", python: venv + "/", wantExe: filepath.Join(venv, "bin", "python"), wantVenv: venv},
		{name: "virtualenv with only bin/python3", python: venv3, wantExe: filepath.Join(venv3, "bin", "python3"), wantVenv: venv3},
		{name: "interpreter path", python: filepath.Join(venv, "bin", "python3"), wantExe: filepath.Join(venv, "bin", "python3")},
		{name: "name on PATH", python: "fakepython", wantExe: filepath.Join(pathDir, "fakepython")},
		{
			name:    "directory that is not a virtualenv",
			python:  notVenv,
			wantErr: []string{"--python", notVenv, "without bin/python", "python3 -m venv"},
		},
		{
			name:    "name not on PATH",
			python:  "nosuchpython",
			wantErr: []string{`--python "nosuchpython"`, "no such interpreter", "/usr/bin/python3", "virtualenv directory"},
		},
		{
			name:    "missing path",
			python:  filepath.Join(root, "missing", "python"),
			wantErr: []string{"--python", "no such interpreter"},
		},
		{
			name:    "file on PATH that is not executable",
			python:  "notexec",
			wantErr: []string{`--python "notexec"`, "no such interpreter"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exe, venv, err := Interpreter(tt.python)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("Interpreter(%q) = %q, %q, nil; want an error", tt.python, exe, venv)
				}
				for _, sub := range tt.wantErr {
					if !strings.Contains(err.Error(), sub) {
						t.Errorf("error %q does not contain %q", err, sub)
					}
				}
				if exe != "" || venv != "" {
					t.Errorf("Interpreter(%q) returned %q, %q with the error", tt.python, exe, venv)
				}
				return
			}
			if err != nil {
				t.Fatalf("Interpreter(%q): %v", tt.python, err)
			}
			if exe != tt.wantExe || venv != tt.wantVenv {
				t.Errorf("Interpreter(%q) = %q, %q; want %q, %q", tt.python, exe, venv, tt.wantExe, tt.wantVenv)
			}
			if !filepath.IsAbs(exe) {
				t.Errorf("exe %q is not absolute", exe)
			}
		})
	}
}

func TestPinCPUs(t *testing.T) {
	tests := []struct {
		mode      string
		processes int
		allowed   []int
		want      []int
	}{
		{"auto", 2, []int{0, 1}, []int{0, 1}},
		{"auto", 4, []int{0, 1}, []int{0, 1}},
		{"auto", 1, []int{0, 1}, nil}, // a CPU would sit idle: leave it to the kernel
		{"auto", 1, []int{3}, nil},    // one CPU: nothing to choose
		{"on", 1, []int{0, 1}, []int{0, 1}},
		{"on", 1, nil, nil},
		{"off", 8, []int{0, 1}, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d/%v", tt.mode, tt.processes, tt.allowed), func(t *testing.T) {
			s := Defaults()
			s.CPUAffinity, s.Processes = tt.mode, tt.processes
			if got := s.PinCPUs(tt.allowed); !slices.Equal(got, tt.want) {
				t.Fatalf("PinCPUs = %v, want %v", got, tt.want)
			}
		})
	}
}
