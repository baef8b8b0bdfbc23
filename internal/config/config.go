// Package config holds whisk's settings with their defaults and checks.
// Today they come from `whisk serve` flags; the config file (whisk.toml,
// [tool.whisk]) and WHISK_* variables will overlay the same fields.
package config

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Serve is the configuration of `whisk serve`.
type Serve struct {
	// App is the WSGI app: "module:callable", "module" (callable
	// "application") or the path of a WSGI script file.
	App string
	// Binds are the listen addresses: HOST:PORT or unix:PATH.
	Binds []string
	// Processes is the number of worker processes. Default: the number of CPUs.
	Processes int
	// Threads is the number of threads per worker process. Default 4.
	Threads int
	// Python is an interpreter or a virtualenv directory. Default "python3".
	Python string
	// Chdir is the workers' working directory. Default: whisk's own.
	Chdir string
	// PythonPath entries are put first on the workers' sys.path.
	PythonPath []string
	// Env holds KEY=VALUE pairs added to the workers' environment.
	Env []string
	// Timeout bounds the wait for a worker, for the response to start,
	// and each pause in a streamed response. Default 30s.
	Timeout time.Duration
	// GracefulTimeout bounds a graceful stop (SIGTERM). Default 30s.
	GracefulTimeout time.Duration
	// StartupTimeout bounds the app's import in a new worker. Default 60s.
	StartupTimeout time.Duration
	// MaxRequests recycles a worker after that many requests; 0 never.
	MaxRequests int
	// MaxRequestsJitter adds 0..N requests to each worker's MaxRequests.
	MaxRequestsJitter int
	// MaxBodySize is the largest request body accepted, in bytes. Default 10 MiB.
	MaxBodySize int64
	// BodyMemory is the largest request body kept in memory, in bytes;
	// larger ones are spooled to a temp file. Default 1 MiB. All bodies
	// in memory together are bounded by 64 times this.
	BodyMemory int64
	// ResponseWindow is how much of a response the front holds for a slow
	// client before the worker waits, in bytes. Default 1 MiB.
	ResponseWindow int
	// ReadHeaderTimeout bounds the time to receive a request head. Default 15s.
	ReadHeaderTimeout time.Duration
	// KeepAlive closes idle keep-alive connections after that long. Default 60s.
	KeepAlive time.Duration
	// MaxHeaderBytes bounds a request head, in bytes. Default 64 KiB.
	MaxHeaderBytes int
	// AccessLog is "-" for stdout, a file path, or "" for none.
	AccessLog string
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string
	// CPUAffinity is "auto" (pin each worker process to a CPU when there
	// are at least as many processes as usable CPUs), "on" or "off".
	CPUAffinity string
}

// Defaults returns a Serve with every default set.
func Defaults() Serve {
	return Serve{
		Binds:             nil, // 127.0.0.1:8000 when none is given
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
}

// DefaultBind is the address used when no --bind is given.
const DefaultBind = "127.0.0.1:8000"

// Validate checks the settings and returns every problem found, each
// naming the setting and the fix.
func (s *Serve) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.App == "" {
		bad("no app given: run `whisk serve module:callable` (like mysite.wsgi:application) or `whisk serve path/to/wsgi.py`")
	}
	if len(s.Binds) == 0 {
		s.Binds = []string{DefaultBind}
	}
	if s.Processes < 1 {
		bad("--processes %d: must be at least 1", s.Processes)
	}
	if s.Threads < 1 {
		bad("--threads %d: must be at least 1", s.Threads)
	}
	if s.Timeout <= 0 {
		bad("--timeout %v: must be positive (like 30s)", s.Timeout)
	}
	if s.GracefulTimeout < 0 {
		bad("--graceful-timeout %v: must not be negative (0 stops without waiting)", s.GracefulTimeout)
	}
	if s.StartupTimeout <= 0 {
		bad("--startup-timeout %v: must be positive (like 60s)", s.StartupTimeout)
	}
	if s.ReadHeaderTimeout <= 0 {
		bad("--header-timeout %v: must be positive (like 15s); it protects against slow clients", s.ReadHeaderTimeout)
	}
	if s.KeepAlive <= 0 {
		bad("--keep-alive %v: must be positive (like 60s)", s.KeepAlive)
	}
	if s.MaxRequests < 0 || s.MaxRequestsJitter < 0 {
		bad("--max-requests and --max-requests-jitter must not be negative")
	}
	if s.MaxBodySize < 0 {
		bad("--max-body-size %d: must not be negative", s.MaxBodySize)
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			bad("--env %q: want KEY=VALUE", kv)
		}
	}
	switch s.CPUAffinity {
	case "auto", "on", "off":
	default:
		bad("--cpu-affinity %q: want auto, on or off", s.CPUAffinity)
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("--log-level %q: want debug, info, warn or error", s.LogLevel)
	}
	if s.Chdir != "" {
		if fi, err := os.Stat(s.Chdir); err != nil || !fi.IsDir() {
			bad("--chdir %q: not a directory", s.Chdir)
		}
	}
	return errors.Join(errs...)
}

// Interpreter resolves Python (an interpreter path or name, or a
// virtualenv directory) to an executable, and returns the virtualenv
// directory when it is one.
func Interpreter(python string) (exe, venv string, err error) {
	if fi, err := os.Stat(python); err == nil && fi.IsDir() {
		abs, _ := filepath.Abs(python)
		for _, name := range []string{"bin/python", "bin/python3"} {
			p := filepath.Join(abs, name)
			if _, err := os.Stat(p); err == nil {
				return p, abs, nil
			}
		}
		return "", "", fmt.Errorf("--python %q is a directory without bin/python: give a virtualenv (python3 -m venv DIR) or an interpreter", python)
	}
	p, err := exec.LookPath(python)
	if err != nil {
		return "", "", fmt.Errorf("--python %q: no such interpreter (give a path like /usr/bin/python3 or a virtualenv directory)", python)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", "", fmt.Errorf("--python %q: %w", python, err)
	}
	return abs, "", nil
}

// PinCPUs returns the CPUs to pin worker processes to under the
// CPUAffinity setting, given the CPUs whisk may use; nil means no pinning.
// "auto" pins only when every CPU gets a worker (processes >= CPUs): a
// process's threads then hand the GIL to each other on one core, which
// costs far less than across cores, and no CPU is left idle.
func (s *Serve) PinCPUs(allowed []int) []int {
	switch {
	case s.CPUAffinity == "on" && len(allowed) > 0:
		return allowed
	case s.CPUAffinity == "auto" && len(allowed) > 1 && s.Processes >= len(allowed):
		return allowed
	}
	return nil
}
