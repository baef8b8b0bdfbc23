// Package config holds whisk's settings: the server, its process groups and
// the sites that mount them. Settings come from a config file (whisk.toml, or
// [tool.whisk] in pyproject.toml), WHISK_* environment variables and command
// line flags, all under one naming scheme: the TOML key max_requests is the
// flag --max-requests and the variable WHISK_MAX_REQUESTS. Load layers them,
// fills in defaults and returns every problem found, each naming where the
// value came from (file and line, flag or variable) and the fix.
package config

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Size is a number of bytes. In the file it is an integer (bytes) or a
// string with a unit: "10M", "512KiB".
type Size int64

// Config is whisk's effective configuration.
type Config struct {
	// File is the config file read, or "" when there is none.
	File string
	// Server holds the settings of the front: listeners, limits, logs.
	Server Server
	// Groups are the process groups, sorted by name.
	Groups []Group
	// Sites map hosts and URL prefixes to groups, sorted by name.
	Sites []Site
}

// Server holds the settings that belong to whisk as a whole.
type Server struct {
	// Bind lists the listen addresses: HOST:PORT or unix:PATH.
	Bind []string `whisk:"bind"`
	// HeaderTimeout bounds the time a client may take to send a request head.
	HeaderTimeout time.Duration `whisk:"header_timeout"`
	// KeepAlive closes keep-alive connections idle for that long.
	KeepAlive time.Duration `whisk:"keep_alive"`
	// MaxBodySize is the largest request body accepted (413 beyond).
	MaxBodySize Size `whisk:"max_body_size"`
	// BodyBufferSize is the largest request body kept in memory; larger
	// ones go to a temp file. All bodies in memory are bounded by 64 times it.
	BodyBufferSize Size `whisk:"body_buffer_size"`
	// AccessLog is "-" for stdout, a file path, or "" for none.
	AccessLog string `whisk:"access_log"`
	// AccessLogFormat is "combined", "json", or a custom format.
	AccessLogFormat string `whisk:"access_log_format"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `whisk:"log_level"`
	// LogFormat is the server log's format: text or json.
	LogFormat string `whisk:"log_format"`
	// AdminBind is the admin listener (/metrics, /status, /healthz,
	// /readyz): HOST:PORT or unix:PATH; "" for none.
	AdminBind string `whisk:"admin_bind"`
	// HealthBind is a listener for /healthz and /readyz alone (a pod
	// address the kubelet reaches); "" for none.
	HealthBind string `whisk:"health_bind"`
	// ShutdownDelay is how long /readyz fails before the listeners close on
	// SIGTERM, so load balancers stop sending first.
	ShutdownDelay time.Duration `whisk:"shutdown_delay"`
	// TLSBind lists the HTTPS listen addresses (HTTP/1.1 and HTTP/2 by
	// ALPN): HOST:PORT or unix:PATH.
	TLSBind []string `whisk:"tls_bind"`
	// TLSCert and TLSKey are the default certificate chain and key (PEM
	// files); a site's own pair is chosen by SNI.
	TLSCert string `whisk:"tls_cert"`
	TLSKey  string `whisk:"tls_key"`
	// H2C serves HTTP/2 without TLS (prior knowledge or Upgrade) on bind.
	H2C bool `whisk:"h2c"`
	// RedirectHTTPS answers plain-HTTP requests on bind with a redirect to
	// the same URL over HTTPS.
	RedirectHTTPS bool `whisk:"redirect_https"`
	// HSTSMaxAge, when positive, adds Strict-Transport-Security to HTTPS
	// responses.
	HSTSMaxAge time.Duration `whisk:"hsts_max_age"`
	// ACMEHosts are the host names whose certificates come from the ACME
	// CA at ACMEDirectory (internal/acme).
	ACMEHosts []string `whisk:"acme_hosts"`
	// ACMEEmail is the ACME account's contact address; optional.
	ACMEEmail string `whisk:"acme_email"`
	// ACMEDirectory is the CA's directory URL; "" means Let's Encrypt.
	ACMEDirectory string `whisk:"acme_directory"`
	// ACMECache is where the ACME account key and certificates are kept;
	// "" means the default: /var/lib/whisk/acme as root, else the user's
	// cache directory.
	ACMECache string `whisk:"acme_cache"`
	// ACMECACert is a PEM file of CAs trusted for HTTPS to ACMEDirectory.
	ACMECACert string `whisk:"acme_ca_cert"`
	// ProxyProtocol accepts a PROXY protocol (v1 or v2) header on bind and
	// tls_bind connections from forwarded_allow_ips peers.
	ProxyProtocol bool `whisk:"proxy_protocol"`
	// MaxRequestLine bounds the request line (414 beyond).
	MaxRequestLine Size `whisk:"max_request_line"`
	// MaxHeaderSize bounds the request head (431 beyond).
	MaxHeaderSize Size `whisk:"max_header_size"`
	// MinBodyRate is the slowest a client may send a request body, in
	// bytes per second, averaged after a 10 s grace (408 below); 0 off.
	MinBodyRate Size `whisk:"min_body_rate"`
	// WriteTimeout bounds each write of a response to a client that stops
	// reading; 0 off.
	WriteTimeout time.Duration `whisk:"write_timeout"`
	// MaxConnections bounds the client connections open at once; 0 means
	// no limit.
	MaxConnections int `whisk:"max_connections"`
	// SocketMode and SocketOwner set the permissions ("0660") and owner
	// ("user:group") of unix socket listeners.
	SocketMode  string `whisk:"socket_mode"`
	SocketOwner string `whisk:"socket_owner"`
	// Static lists static mounts "PREFIX=DIR" added to every site.
	Static []string `whisk:"static"`
	// ForwardedAllowIPs are the proxies (IPs or CIDRs, "*" for any) whose
	// X-Request-ID (and forwarded headers) are trusted.
	ForwardedAllowIPs []string `whisk:"forwarded_allow_ips"`
	// RequestIDHeader is the request id header.
	RequestIDHeader string `whisk:"request_id_header"`
	// PIDFile, when set, is where whisk writes its process id; `whisk
	// reload` reads it.
	PIDFile string `whisk:"pid_file"`
	// Reload restarts a group's workers when a .py file under its chdir or
	// python_path changes. For development.
	Reload bool `whisk:"reload"`
}

// Group is a process group: the workers of one app.
type Group struct {
	// Name identifies the group in mounts, logs and metrics.
	Name string
	// App is "module:callable", "module" (callable "application") or the
	// path of a WSGI script file.
	App string `whisk:"app"`
	// Python is an interpreter (path or name on PATH) or a virtualenv.
	Python string `whisk:"python"`
	// PythonPath entries go first on the workers' sys.path.
	PythonPath []string `whisk:"python_path"`
	// Chdir is the workers' working directory.
	Chdir string `whisk:"chdir"`
	// Env holds variables added to the workers' environment.
	Env map[string]string `whisk:"env"`
	// User runs the workers as this Unix user (whisk must run as root).
	User string `whisk:"user"`
	// UnixGroup runs the workers with this primary group; default: the
	// user's own.
	UnixGroup string `whisk:"group"`
	// AllowRoot lets workers run as root when whisk does and no user is set.
	AllowRoot bool `whisk:"allow_root"`
	// Processes is the number of worker processes.
	Processes int `whisk:"processes"`
	// Threads is the number of threads per process (WSGI); for an ASGI app,
	// the threads of each process's executor for sync code.
	Threads int `whisk:"threads"`
	// Interface is auto, wsgi or asgi: how the app is called. auto takes
	// ASGI for a coroutine function or an object with an async __call__.
	Interface string `whisk:"interface"`
	// MaxConcurrency bounds the requests an ASGI process runs at once
	// (then the queue applies).
	MaxConcurrency int `whisk:"max_concurrency"`
	// StartupTimeout bounds the app's import in a new worker.
	StartupTimeout time.Duration `whisk:"startup_timeout"`
	// RequestTimeout bounds the wait for a response to start and each pause
	// in a streamed one: 504, then the stuck thread is interrupted.
	RequestTimeout time.Duration `whisk:"request_timeout"`
	// QueueTimeout bounds the wait for a free worker thread (503 after).
	QueueTimeout time.Duration `whisk:"queue_timeout"`
	// MaxQueue bounds the requests waiting for a worker thread (503 beyond).
	MaxQueue int `whisk:"max_queue"`
	// MaxRequests recycles a worker after that many requests; 0 never.
	MaxRequests int `whisk:"max_requests"`
	// MaxRequestsJitter adds 0..N to each worker's MaxRequests.
	MaxRequestsJitter int `whisk:"max_requests_jitter"`
	// MaxRSS recycles a worker whose own memory exceeds it; 0 never.
	MaxRSS Size `whisk:"max_rss"`
	// IdleTimeout stops the group's processes after that long without a
	// request; the next request starts them. 0 never.
	IdleTimeout time.Duration `whisk:"idle_timeout"`
	// GracefulTimeout bounds how long stopping workers may finish requests.
	GracefulTimeout time.Duration `whisk:"graceful_timeout"`
	// Preload imports the app once in a parent process and forks the
	// workers from it, sharing memory copy-on-write.
	Preload bool `whisk:"preload"`
	// PostFork is a "module:function" called in each forked worker.
	PostFork string `whisk:"post_fork"`
	// CPUAffinity is auto, on or off: pin each worker process to a CPU.
	CPUAffinity string `whisk:"cpu_affinity"`
	// Compress compresses the app's responses (gzip, br, zstd) on the
	// group's mounts; a mount may say otherwise.
	Compress bool `whisk:"compress"`
	// DjangoStatic mounts a Django app's STATIC_URL on STATIC_ROOT and
	// MEDIA_URL on MEDIA_ROOT as static files, on the sites that mount the
	// group, from what its workers report of the settings.
	DjangoStatic bool `whisk:"django_static"`
	// XSendfile lists the directories the app may name files of in an
	// X-Sendfile response header.
	XSendfile []string `whisk:"x_sendfile"`
	// XAccelRedirect maps X-Accel-Redirect URI prefixes to directories:
	// "PREFIX=DIR".
	XAccelRedirect []string `whisk:"x_accel_redirect"`
}

// Site is a virtual host: the hosts it answers and its mounts.
type Site struct {
	// Name identifies the site in errors and logs.
	Name string
	// Hosts are exact names ("example.com") or wildcards ("*.example.com").
	Hosts []string
	// Default makes the site answer hosts no site names.
	Default bool
	// Mounts map URL prefixes to groups.
	Mounts []Mount
	// TLSCert and TLSKey are the site's certificate chain and key (PEM
	// files), sent to clients that ask for one of its hosts (SNI).
	TLSCert string
	TLSKey  string
}

// Mount serves a URL prefix of a site with a group's app, or with the
// files of a directory.
type Mount struct {
	// Path is the prefix: "/" or "/blog" (whole path segments).
	Path string
	// Group names the process group that serves it; empty for a static
	// mount.
	Group string
	// Static is the directory a static mount serves files from.
	Static string
	// Compress compresses the app's responses on this mount; default: the
	// group's compress setting.
	Compress bool
	// MaxBodySize is the largest request body this mount accepts; default:
	// the server's max_body_size.
	MaxBodySize Size
}

// MainGroup is the name of the group that a top-level app setting (or the
// APP argument) defines.
const MainGroup = "main"

// DefaultSite is the name of the site made when the config names none.
const DefaultSite = "default"

// DefaultBind is the address used when no bind is given.
const DefaultBind = "127.0.0.1:8000"

// DefaultServer returns the server settings' defaults.
func DefaultServer() Server {
	return Server{
		Bind:              []string{DefaultBind},
		HeaderTimeout:     15 * time.Second,
		KeepAlive:         60 * time.Second,
		MaxBodySize:       10 << 20,
		BodyBufferSize:    1 << 20,
		AccessLogFormat:   "combined",
		MaxRequestLine:    8 << 10,
		MaxHeaderSize:     64 << 10,
		WriteTimeout:      60 * time.Second,
		LogLevel:          "info",
		LogFormat:         "text",
		ForwardedAllowIPs: []string{"127.0.0.1", "::1"},
		RequestIDHeader:   "X-Request-ID",
	}
}

// DefaultGroup returns a group's defaults on a machine with numCPU CPUs.
func DefaultGroup(numCPU int) Group {
	return Group{
		Python:          "python3",
		Processes:       numCPU,
		Threads:         4,
		Interface:       "auto",
		MaxConcurrency:  1000,
		StartupTimeout:  60 * time.Second,
		RequestTimeout:  30 * time.Second,
		QueueTimeout:    30 * time.Second,
		MaxQueue:        2048,
		GracefulTimeout: 30 * time.Second,
		CPUAffinity:     "auto",
	}
}

// TrustedProxies returns ForwardedAllowIPs as prefixes ("*" is every
// address); Load has checked them.
func (s *Server) TrustedProxies() []netip.Prefix {
	var out []netip.Prefix
	for _, v := range s.ForwardedAllowIPs {
		if p, err := parsePrefix(v); err == nil {
			out = append(out, p...)
		}
	}
	return out
}

// parsePrefix parses an IP, a CIDR, or "*" (every IPv4 and IPv6 address).
func parsePrefix(v string) ([]netip.Prefix, error) {
	if v == "*" {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, nil
	}
	if p, err := netip.ParsePrefix(v); err == nil {
		return []netip.Prefix{p.Masked()}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return nil, fmt.Errorf("want an IP address or a CIDR like 10.0.0.0/8, or *")
	}
	return []netip.Prefix{netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())}, nil
}

// GracefulTimeout is the longest graceful_timeout of any group: how long a
// stop may take.
func (c *Config) GracefulTimeout() time.Duration {
	var d time.Duration
	for _, g := range c.Groups {
		d = max(d, g.GracefulTimeout)
	}
	return d
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
		return "", "", fmt.Errorf("%q is a directory without bin/python: give a virtualenv (python3 -m venv DIR) or an interpreter", python)
	}
	p, err := exec.LookPath(python)
	if err != nil {
		return "", "", fmt.Errorf("no interpreter %q: give a path like /usr/bin/python3 or a virtualenv directory", python)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", "", fmt.Errorf("python %q: %w", python, err)
	}
	return abs, "", nil
}

// PinCPUs returns the CPUs to pin the group's worker processes to, given
// the CPUs whisk may use; nil means no pinning. "auto" pins only when every
// CPU gets a worker (processes >= CPUs): a process's threads then hand the
// GIL to each other on one core, which costs far less than across cores,
// and no CPU is left idle.
func (g *Group) PinCPUs(allowed []int) []int {
	switch {
	case g.CPUAffinity == "on" && len(allowed) > 0:
		return allowed
	case g.CPUAffinity == "auto" && len(allowed) > 1 && g.Processes >= len(allowed):
		return allowed
	}
	return nil
}

// CodeDirs returns the directories the group's code is imported from:
// chdir, then python_path. `reload = true` watches them.
func (g *Group) CodeDirs() []string {
	return append([]string{g.Chdir}, g.PythonPath...)
}
