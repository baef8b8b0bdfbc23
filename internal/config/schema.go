package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Scope says where a setting lives.
type Scope int

const (
	// ServerScope settings are top-level only.
	ServerScope Scope = iota
	// GroupScope settings belong to a group; at the top level they are the
	// default of every group.
	GroupScope
)

// Setting describes one setting: its TOML key, flag and variable names and
// its help. Settings lists them all; flags, the file decoder, `whisk
// check` and docs/configuration.md are all driven by it.
type Setting struct {
	// Name is the TOML key; the flag is --name-with-dashes and the
	// environment variable WHISK_NAME_IN_CAPITALS.
	Name string
	// Scope is where the setting may appear.
	Scope Scope
	// Aliases are further flag names (gunicorn's, for habit).
	Aliases []string
	// Help says what the setting does, in one sentence.
	Help string
	// Arg names the value in help: DURATION, SIZE, N, ...
	Arg string
}

// Flag returns the setting's command line flag name, without dashes.
func (s Setting) Flag() string { return strings.ReplaceAll(s.Name, "_", "-") }

// Switch reports whether the setting is on or off (a flag without a
// value: --preload).
func (s Setting) Switch() bool {
	v := reflect.ValueOf(Server{})
	if s.Scope == GroupScope {
		v = reflect.ValueOf(Group{})
	}
	f := field(v, s.Name)
	return f.IsValid() && f.Kind() == reflect.Bool
}

// EnvVar returns the setting's environment variable.
func (s Setting) EnvVar() string { return "WHISK_" + strings.ToUpper(s.Name) }

// Settings lists every setting, in the order `whisk check` prints them.
var Settings = []Setting{
	{Name: "bind", Scope: ServerScope, Arg: "ADDRESS", Help: "address to listen on: HOST:PORT or unix:PATH"},
	{Name: "header_timeout", Scope: ServerScope, Arg: "DURATION", Help: "time a client may take to send a request head"},
	{Name: "keep_alive", Scope: ServerScope, Arg: "DURATION", Help: "close keep-alive connections idle for this long"},
	{Name: "max_body_size", Scope: ServerScope, Arg: "SIZE", Help: "largest request body accepted (413 beyond)"},
	{Name: "body_buffer_size", Scope: ServerScope, Arg: "SIZE", Help: "largest request body kept in memory; larger ones go to a temp file, and all bodies in memory together are bounded by 64 times this"},
	{Name: "tls_bind", Scope: ServerScope, Arg: "ADDRESS", Help: "HTTPS listen address (HTTP/1.1 and HTTP/2 by ALPN): HOST:PORT or unix:PATH"},
	{Name: "tls_cert", Scope: ServerScope, Arg: "FILE", Help: "default TLS certificate chain (PEM); a site's tls_cert is chosen by SNI; files are read again on reload"},
	{Name: "tls_key", Scope: ServerScope, Arg: "FILE", Help: "private key (PEM) of tls_cert"},
	{Name: "h2c", Scope: ServerScope, Help: "serve HTTP/2 without TLS on bind (h2c, with prior knowledge), for a proxy in front that speaks it"},
	{Name: "redirect_https", Scope: ServerScope, Help: "answer plain-HTTP requests on bind with a redirect to HTTPS on the first tls_bind's port (301 for GET and HEAD, 308 for other methods)"},
	{Name: "hsts_max_age", Scope: ServerScope, Arg: "DURATION", Help: "add Strict-Transport-Security with this max-age to HTTPS responses (0: none)"},
	{Name: "acme_hosts", Scope: ServerScope, Arg: "HOST", Help: "host names to obtain TLS certificates for from an ACME CA (Let's Encrypt by default) on the first HTTPS handshake naming them, renewed automatically; needs tls_bind (the CA checks port 443, or port 80 on bind); turning it on accepts the CA's terms of service"},
	{Name: "acme_email", Scope: ServerScope, Arg: "EMAIL", Help: "contact address the ACME CA may write to about the account (expiry notices)"},
	{Name: "acme_directory", Scope: ServerScope, Arg: "URL", Help: "ACME directory URL (default: Let's Encrypt's production CA)"},
	{Name: "acme_cache", Scope: ServerScope, Arg: "DIR", Help: "directory the ACME account key and certificates are kept in (default: /var/lib/whisk/acme as root, else the user's cache directory)"},
	{Name: "acme_ca_cert", Scope: ServerScope, Arg: "FILE", Help: "PEM CA certificates to trust for HTTPS to acme_directory, besides the system's (a private CA, or a test server such as pebble)"},
	{Name: "proxy_protocol", Scope: ServerScope, Help: "read a PROXY protocol v1 or v2 header on bind and tls_bind connections (a TCP load balancer in front): required from forwarded_allow_ips peers, refused from others"},
	{Name: "max_request_line", Scope: ServerScope, Arg: "SIZE", Help: "longest request line (414 beyond)"},
	{Name: "max_header_size", Scope: ServerScope, Arg: "SIZE", Help: "largest request head (431 beyond)"},
	{Name: "min_body_rate", Scope: ServerScope, Arg: "SIZE", Help: "slowest request body upload in bytes per second, averaged after the first 10 s (408 below; 0: no limit)"},
	{Name: "write_timeout", Scope: ServerScope, Arg: "DURATION", Help: "longest a response write may wait for a client that does not read (0: no limit)"},
	{Name: "max_connections", Scope: ServerScope, Arg: "N", Help: "client connections open at once; more wait in the kernel's backlog (0: no limit)"},
	{Name: "socket_mode", Scope: ServerScope, Arg: "MODE", Help: "permissions of unix socket listeners, like 0660 (default: from the umask)"},
	{Name: "socket_owner", Scope: ServerScope, Arg: "USER:GROUP", Help: "owner of unix socket listeners, like www-data:www-data (whisk as root)"},
	{Name: "static", Scope: ServerScope, Arg: "PREFIX=DIR", Help: "serve the files of DIR under the URL PREFIX (like /static/=staticfiles) on every site: ETag, Range, precompressed .br/.zst/.gz siblings, immutable caching for hashed names, sendfile"},
	{Name: "access_log", Scope: ServerScope, Arg: "FILE", Help: "access log: a file (SIGUSR1 reopens it, for logrotate), - for stdout, empty for none"},
	{Name: "access_log_format", Scope: ServerScope, Arg: "FORMAT", Help: "access log format: combined (Apache's, plus the time taken), common, json (one object per line), or a custom format of %-directives (docs/operations.md)"},
	{Name: "log_level", Scope: ServerScope, Arg: "LEVEL", Help: "server log level: debug, info, warn or error"},
	{Name: "log_format", Scope: ServerScope, Arg: "FORMAT", Help: "server log format: text or json"},
	{Name: "admin_bind", Scope: ServerScope, Arg: "ADDRESS", Help: "admin listener for /metrics, /status, /healthz and /readyz: HOST:PORT (keep it on loopback or a private network) or unix:PATH; empty for none"},
	{Name: "health_bind", Scope: ServerScope, Arg: "ADDRESS", Help: "a listener for /healthz and /readyz alone (the pod address the kubelet probes); empty for none"},
	{Name: "shutdown_delay", Scope: ServerScope, Arg: "DURATION", Help: "on SIGTERM, how long /readyz fails while requests are still served before the listeners close, so load balancers stop sending first; part of graceful_timeout"},
	{Name: "forwarded_allow_ips", Scope: ServerScope, Arg: "IP", Help: "trusted proxies (IPs, CIDRs, or * for any; a unix socket peer counts as loopback): their Forwarded, X-Forwarded-For, -Proto and -Host name the client and their X-Request-ID is kept; from other peers those headers are removed"},
	{Name: "request_id_header", Scope: ServerScope, Arg: "HEADER", Help: "the request id header: taken from trusted proxies or generated, passed to the app and logged"},
	{Name: "pid_file", Scope: ServerScope, Arg: "FILE", Help: "file to write whisk's process id to; `whisk reload` reads it"},
	{Name: "reload", Scope: ServerScope, Help: "restart a group's workers when a .py file under its chdir or python_path changes (development)"},

	{Name: "app", Scope: GroupScope, Arg: "APP", Help: "the WSGI or ASGI app: module:callable, a module (callable \"application\") or a WSGI script path; at the top level it defines the group \"main\""},
	{Name: "python", Scope: GroupScope, Arg: "PYTHON", Help: "Python interpreter or virtualenv directory to run the app with"},
	{Name: "python_path", Scope: GroupScope, Aliases: []string{"pythonpath"}, Arg: "DIR", Help: "directories put first on sys.path"},
	{Name: "chdir", Scope: GroupScope, Arg: "DIR", Help: "directory the workers run in (and import the app from)"},
	{Name: "env", Scope: GroupScope, Arg: "KEY=VALUE", Help: "variables added to the workers' environment; a table (repeat the flag)"},
	{Name: "user", Scope: GroupScope, Arg: "USER", Help: "Unix user the workers run as (whisk must run as root)"},
	{Name: "group", Scope: GroupScope, Arg: "GROUP", Help: "Unix group the workers run as; default: the user's primary group"},
	{Name: "allow_root", Scope: GroupScope, Help: "let workers run as root when whisk runs as root and no user is set"},
	{Name: "processes", Scope: GroupScope, Arg: "N", Help: "number of worker processes (default: the number of CPUs)"},
	{Name: "threads", Scope: GroupScope, Arg: "N", Help: "threads per worker process; processes × threads requests run at once (ASGI: the threads that run sync code)"},
	{Name: "interface", Scope: GroupScope, Arg: "KIND", Help: "how the app is called: wsgi, asgi, or auto (asgi for a coroutine function or an object with an async __call__, like Django's ASGIHandler, Starlette and FastAPI)"},
	{Name: "max_concurrency", Scope: GroupScope, Arg: "N", Help: "ASGI: requests and WebSockets one worker process runs at once on its event loop; more wait in the queue"},
	{Name: "startup_timeout", Scope: GroupScope, Arg: "DURATION", Help: "time a new worker may take to import the app"},
	{Name: "request_timeout", Scope: GroupScope, Aliases: []string{"timeout"}, Arg: "DURATION", Help: "time the app has to start its response, and each pause in a streamed one; then 504, and the stuck thread is interrupted"},
	{Name: "queue_timeout", Scope: GroupScope, Arg: "DURATION", Help: "time a request may wait for a free worker thread (503 after)"},
	{Name: "max_queue", Scope: GroupScope, Arg: "N", Help: "requests that may wait for a worker thread at once (503 beyond; 0: none waits)"},
	{Name: "max_requests", Scope: GroupScope, Arg: "N", Help: "recycle a worker after this many requests (0: never); its replacement is ready first"},
	{Name: "max_requests_jitter", Scope: GroupScope, Arg: "N", Help: "add a random 0..N to each worker's max_requests"},
	{Name: "max_rss", Scope: GroupScope, Arg: "SIZE", Help: "recycle a worker whose own memory (unique, not shared copy-on-write) exceeds this (0: never)"},
	{Name: "idle_timeout", Scope: GroupScope, Arg: "DURATION", Help: "stop the group's processes after this long without a request; the next request starts them (0: never)"},
	{Name: "graceful_timeout", Scope: GroupScope, Arg: "DURATION", Help: "time stopping workers get to finish their requests (shutdown, reload, recycle)"},
	{Name: "preload", Scope: GroupScope, Help: "import the app once in a parent process and fork the workers from it (memory shared copy-on-write)"},
	{Name: "post_fork", Scope: GroupScope, Arg: "FUNC", Help: "module:function each worker calls before it serves: after the fork with preload (reopen connections there), else after importing the app"},
	{Name: "compress", Scope: GroupScope, Help: "compress the app's responses with gzip, br or zstd as the client accepts (not images, archives, ranges or bodies under 1 KiB); a mount's compress overrides it"},
	{Name: "django_static", Scope: GroupScope, Help: "for a Django app: serve STATIC_URL from STATIC_ROOT and MEDIA_URL from MEDIA_ROOT as static files on the sites that mount the group, as the workers' settings say (local URLs only; a mount the config names at the same path wins)"},
	{Name: "x_sendfile", Scope: GroupScope, Arg: "DIR", Help: "directories whose files the app may hand over with an X-Sendfile header (whisk sends the file; the worker is free); empty: off"},
	{Name: "x_accel_redirect", Scope: GroupScope, Arg: "PREFIX=DIR", Help: "X-Accel-Redirect locations, like /protected/=/srv/private: the app answers X-Accel-Redirect: /protected/f and whisk sends the file; empty: off"},
	{Name: "cpu_affinity", Scope: GroupScope, Arg: "MODE", Help: "pin each worker process to one CPU: auto (when processes >= CPUs), on or off"},
}

// lookupSetting returns the setting called name.
func lookupSetting(name string) (Setting, bool) {
	for _, s := range Settings {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}

// field returns the struct field tagged `whisk:"name"` in v (a struct).
func field(v reflect.Value, name string) reflect.Value {
	t := v.Type()
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("whisk") == name {
			return v.Field(i)
		}
	}
	return reflect.Value{}
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// setValue sets f from a decoded TOML value (string, int64, float64, bool,
// []any or map[string]any).
func setValue(f reflect.Value, v any) error {
	switch f.Type() {
	case durationType:
		d, err := toDuration(v)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
		return nil
	case sizeType:
		n, err := toSize(v)
		if err != nil {
			return err
		}
		f.SetInt(n)
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a string in quotes, got %s", describe(v))
		}
		f.SetString(s)
	case reflect.Int:
		n, ok := v.(int64)
		if !ok {
			if s, isStr := v.(string); isStr {
				if i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
					n, ok = i, true
				}
			}
		}
		if !ok {
			return fmt.Errorf("want a whole number, got %s", describe(v))
		}
		if n > math.MaxInt32 || n < math.MinInt32 {
			return fmt.Errorf("%d is out of range", n)
		}
		f.SetInt(n)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("want true or false, got %s", describe(v))
		}
		f.SetBool(b)
	case reflect.Slice:
		list, ok := v.([]any)
		if s, isStr := v.(string); isStr {
			list, ok = []any{s}, true // one value for a list of one
		}
		if !ok {
			return fmt.Errorf("want a list of strings like [\"a\", \"b\"], got %s", describe(v))
		}
		out := make([]string, 0, len(list))
		for _, e := range list {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("want a list of strings, got an element %s", describe(e))
			}
			out = append(out, s)
		}
		f.Set(reflect.ValueOf(out))
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("want a table like { KEY = \"value\" }, got %s", describe(v))
		}
		out := make(map[string]string, len(m))
		for k, e := range m {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("%s: want a string value, got %s", k, describe(e))
			}
			out[k] = s
		}
		f.Set(reflect.ValueOf(out))
	default:
		return fmt.Errorf("unsupported setting type %s", f.Type())
	}
	return nil
}

// setText sets f from a flag's or variable's text. Lists and tables
// accumulate: each call adds one entry (a comma-separated list from a
// variable is split by the caller).
func setText(f reflect.Value, text string) error {
	switch {
	case f.Type() == durationType || f.Type() == sizeType:
		return setValue(f, text)
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(text)
	case reflect.Int:
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 32)
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", text)
		}
		f.SetInt(n)
	case reflect.Bool:
		b, err := parseBool(text)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case reflect.Slice:
		f.Set(reflect.Append(f, reflect.ValueOf(text)))
	case reflect.Map:
		k, v, ok := strings.Cut(text, "=")
		if !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", text)
		}
		if f.IsNil() {
			f.Set(reflect.MakeMap(f.Type()))
		}
		f.SetMapIndex(reflect.ValueOf(k), reflect.ValueOf(v))
	default:
		return fmt.Errorf("unsupported setting type %s", f.Type())
	}
	return nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off", "":
		return false, nil
	}
	return false, fmt.Errorf("want true or false, got %q", s)
}

// toDuration accepts "30s", "2m", "1h30m", and plain seconds (30, "30",
// 0.5) as gunicorn's --timeout does.
func toDuration(v any) (time.Duration, error) {
	const maxSeconds = math.MaxInt64 / int64(time.Second)
	seconds := func(n float64) (time.Duration, error) {
		if math.IsNaN(n) || n < 0 || n > float64(maxSeconds) {
			return 0, fmt.Errorf("want a duration like \"30s\" or \"2m\" (or seconds) from 0 to %d seconds, got %v", maxSeconds, n)
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	switch v := v.(type) {
	case int64:
		return seconds(float64(v))
	case float64:
		return seconds(v)
	case string:
		if n, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			return seconds(n)
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < 0 {
			return 0, fmt.Errorf("want a duration like \"30s\", \"2m\" or \"1h30m\" (or seconds), got %q", v)
		}
		return d, nil
	}
	return 0, fmt.Errorf("want a duration like \"30s\" or \"2m\" (or seconds), got %s", describe(v))
}

// toSize accepts bytes (an integer) or a string with a unit.
func toSize(v any) (int64, error) {
	switch v := v.(type) {
	case int64:
		if v < 0 {
			return 0, fmt.Errorf("want a size in bytes, not negative: %d", v)
		}
		return v, nil
	case string:
		return ParseSize(v)
	}
	return 0, fmt.Errorf("want a size like \"10M\" or a number of bytes, got %s", describe(v))
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
		return 0, fmt.Errorf("want a size in bytes, optionally with K, M or G (like \"10M\"), got %q", v)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", v)
	}
	return n * mult, nil
}

// describe names a decoded TOML value's kind for an error message.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case int64:
		return fmt.Sprintf("the number %d", v)
	case float64:
		return fmt.Sprintf("the number %v", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}
