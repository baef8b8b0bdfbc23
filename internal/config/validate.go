package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/whiskserver/whisk/internal/accesslog"
)

// where names a setting for an error: where its value came from, or the
// setting and "(default)".
func (l *loader) where(key string) origin {
	if o, ok := l.origins[key]; ok {
		return o
	}
	return origin{where: key + " (default)"}
}

// groupWhere names a group's setting: the group's own value, else the
// top-level one it inherited.
func (l *loader) groupWhere(g *Group, name string) origin {
	if o, ok := l.origins["groups."+g.Name+"."+name]; ok {
		return o
	}
	if o, ok := l.origins[name]; ok {
		return o
	}
	if g.Name == MainGroup {
		return origin{where: name + " (not set)"}
	}
	return origin{where: l.fileOrigin("groups."+g.Name, "").where} // the group's table
}

func (l *loader) validate(c *Config) {
	l.validateServer(&c.Server)
	for i := range c.Groups {
		l.validateGroup(&c.Groups[i])
	}
	l.validateSites(c)
}

func (l *loader) validateServer(s *Server) {
	for _, b := range s.Bind {
		l.checkBind("bind", b)
	}
	if len(s.Bind) == 0 {
		l.errorf(l.where("bind"), "no address to listen on: give one like \"127.0.0.1:8000\"")
	}
	if s.HeaderTimeout <= 0 {
		l.errorf(l.where("header_timeout"), "must be positive (like \"15s\"): it protects against slow clients")
	}
	if s.KeepAlive <= 0 {
		l.errorf(l.where("keep_alive"), "must be positive (like \"60s\")")
	}
	if s.BodyBufferSize <= 0 {
		l.errorf(l.where("body_buffer_size"), "must be positive (like \"1M\")")
	}
	switch s.LogFormat {
	case "text", "json":
	default:
		l.errorf(l.where("log_format"), "%q: want text or json", s.LogFormat)
	}
	if s.AccessLogFormat == "" {
		l.errorf(l.where("access_log_format"), "empty: want combined, common, json or a custom format")
	} else if _, err := accesslog.ParseFormat(s.AccessLogFormat); err != nil {
		l.errorf(l.where("access_log_format"), "%v", err)
	}
	if s.AdminBind != "" {
		l.checkBind("admin_bind", s.AdminBind)
	}
	if s.HealthBind != "" {
		l.checkBind("health_bind", s.HealthBind)
	}
	for _, b := range s.TLSBind {
		l.checkBind("tls_bind", b)
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		l.errorf(l.where("tls_cert"), "tls_cert and tls_key go together: set both (the certificate chain and its private key, PEM files)")
	} else if s.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey); err != nil {
			l.errorf(l.where("tls_cert"), "%s with %s: %v", s.TLSCert, s.TLSKey, err)
		}
	}
	if s.SocketMode != "" {
		if m, err := strconv.ParseUint(s.SocketMode, 8, 32); err != nil || m > 0o777 {
			l.errorf(l.where("socket_mode"), "%q: want octal permissions like 0660", s.SocketMode)
		}
	}
	if s.SocketOwner != "" {
		u, g, _ := strings.Cut(s.SocketOwner, ":")
		if _, err := user.Lookup(u); u != "" && err != nil {
			l.errorf(l.where("socket_owner"), "%q: no user %q", s.SocketOwner, u)
		}
		if _, err := user.LookupGroup(g); g != "" && err != nil {
			l.errorf(l.where("socket_owner"), "%q: no group %q", s.SocketOwner, g)
		}
	}
	if s.MaxRequestLine < 256 {
		l.errorf(l.where("max_request_line"), "%d: too small for a request line; want at least 256 bytes (like \"8K\")", s.MaxRequestLine)
	}
	if s.MaxHeaderSize < 1024 {
		l.errorf(l.where("max_header_size"), "%d: too small for a request head; want at least 1K (like \"64K\")", s.MaxHeaderSize)
	}
	if s.MaxConnections < 0 {
		l.errorf(l.where("max_connections"), "must not be negative (0: no limit)")
	}
	for _, v := range s.ForwardedAllowIPs {
		if _, err := parsePrefix(v); err != nil {
			l.errorf(l.where("forwarded_allow_ips"), "%q: %v", v, err)
		}
	}
	if s.ShutdownDelay < 0 {
		l.errorf(l.where("shutdown_delay"), "must not be negative")
	}
	if strings.TrimSpace(s.RequestIDHeader) == "" || strings.ContainsAny(s.RequestIDHeader, " :\r\n") {
		l.errorf(l.where("request_id_header"), "%q: want a header name like X-Request-ID", s.RequestIDHeader)
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		l.errorf(l.where("log_level"), "%q: want debug, info, warn or error", s.LogLevel)
	}
}

// checkBind checks one listen address of the setting name.
func (l *loader) checkBind(name, b string) {
	o := l.where(name)
	if p, ok := strings.CutPrefix(b, "unix:"); ok {
		if p == "" || strings.HasSuffix(p, "/") {
			l.errorf(o, "%q: want unix:/path/to/socket", b)
		}
		return
	}
	if _, _, err := net.SplitHostPort(b); err != nil {
		l.errorf(o, "%q: want HOST:PORT (like 127.0.0.1:8000 or [::]:8000) or unix:PATH", b)
	}
}

func (l *loader) validateGroup(g *Group) {
	at := func(name string) origin { return l.groupWhere(g, name) }
	if g.App == "" {
		l.errorf(origin{where: l.fileOrigin("groups."+g.Name, "").where}, "group %q has no app: add app = \"mysite.wsgi:application\" (module:callable or a WSGI script path)", g.Name)
	}
	positive := []struct {
		name string
		n    int64
		eg   string
	}{
		{"processes", int64(g.Processes), "2"},
		{"threads", int64(g.Threads), "4"},
		{"max_concurrency", int64(g.MaxConcurrency), "1000"},
		{"startup_timeout", int64(g.StartupTimeout), "\"60s\""},
		{"request_timeout", int64(g.RequestTimeout), "\"30s\""},
		{"queue_timeout", int64(g.QueueTimeout), "\"30s\""},
	}
	for _, p := range positive {
		if p.n <= 0 {
			l.errorf(at(p.name), "must be positive (like %s)", p.eg)
		}
	}
	nonNegative := []struct {
		name string
		n    int
	}{{"max_queue", g.MaxQueue}, {"max_requests", g.MaxRequests}, {"max_requests_jitter", g.MaxRequestsJitter}}
	for _, p := range nonNegative {
		if p.n < 0 {
			l.errorf(at(p.name), "%d: must not be negative (0 turns it off)", p.n)
		}
	}
	for k, v := range g.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(v, "\x00") {
			l.errorf(at("env"), "%q: want a variable name without '=' or NUL", k)
		}
	}
	switch g.Interface {
	case "auto", "wsgi", "asgi":
	default:
		l.errorf(at("interface"), "%q: want auto, wsgi or asgi", g.Interface)
	}
	switch g.CPUAffinity {
	case "auto", "on", "off":
	default:
		l.errorf(at("cpu_affinity"), "%q: want auto, on or off", g.CPUAffinity)
	}
	if g.Chdir != "" {
		if fi, err := os.Stat(g.Chdir); err != nil || !fi.IsDir() {
			l.errorf(at("chdir"), "%q is not a directory", g.Chdir)
		}
	}
	if _, _, err := Interpreter(g.Python); err != nil {
		l.errorf(at("python"), "%v", err)
	}
	if g.PostFork != "" {
		if mod, fn, ok := strings.Cut(g.PostFork, ":"); !ok || mod == "" || fn == "" {
			l.errorf(at("post_fork"), "%q: want module:function", g.PostFork)
		}
	}
	for _, d := range g.XSendfile {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			l.errorf(at("x_sendfile"), "%q is not a directory", d)
		}
	}
	for _, e := range g.XAccelRedirect {
		prefix, dir, ok := strings.Cut(e, "=")
		if !ok || !strings.HasPrefix(prefix, "/") || dir == "" {
			l.errorf(at("x_accel_redirect"), "%q: want PREFIX=DIR, like /protected/=/srv/private", e)
		} else if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			l.errorf(at("x_accel_redirect"), "%q: %q is not a directory", e, dir)
		}
	}
	l.validateUser(g)
}

// validateUser checks user, group and allow_root against who whisk runs as.
func (l *loader) validateUser(g *Group) {
	switch {
	case g.User == "" && g.UnixGroup != "":
		l.errorf(l.groupWhere(g, "group"), "group %q without user: set user too", g.UnixGroup)
	case g.User == "" && l.opts.Root && !g.AllowRoot:
		l.errorf(l.groupWhere(g, "user"), "whisk runs as root and group %q sets no user: set user = \"www-data\" (--user www-data) for its workers, or allow_root = true (--allow-root) to run them as root on purpose", g.Name)
	case (g.User == "root" || g.User == "0") && !g.AllowRoot:
		l.errorf(l.groupWhere(g, "user"), "user = %q runs the workers as root: set allow_root = true (--allow-root) if you mean it, or name an unprivileged user", g.User)
	case g.User != "" && !l.opts.Root && g.User != l.opts.CurrentUser && (l.opts.CurrentUID == "" || g.User != l.opts.CurrentUID):
		l.errorf(l.groupWhere(g, "user"), "%q: switching to another user needs whisk to run as root; run whisk as root or as %s, or remove user", g.User, g.User)
	}
	if g.User != "" && !isID(g.User) {
		// A numeric id needs no passwd entry (containers run with
		// arbitrary uids); then group is required (proc.LookupAccount).
		if _, err := user.Lookup(g.User); err != nil {
			l.errorf(l.groupWhere(g, "user"), "%q: no such user: create it (useradd --system %s) or fix the name", g.User, g.User)
		}
	}
	if isID(g.User) && g.UnixGroup == "" {
		if _, err := user.LookupId(g.User); err != nil {
			l.errorf(l.groupWhere(g, "user"), "%q: no passwd entry for this uid, so no primary group: set group too (a name, or a numeric gid)", g.User)
		}
	}
	if g.UnixGroup != "" && !isID(g.UnixGroup) {
		if _, err := user.LookupGroup(g.UnixGroup); err != nil {
			l.errorf(l.groupWhere(g, "group"), "%q: no such group: create it (groupadd --system %s) or fix the name", g.UnixGroup, g.UnixGroup)
		}
	}
}

// isID reports whether s is a numeric user or group id.
func isID(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// validateSites checks hosts and mounts, normalises mount paths, and checks
// every group is mounted.
func (l *loader) validateSites(c *Config) {
	groups := map[string]bool{}
	for _, g := range c.Groups {
		groups[g.Name] = false
	}
	hosts := map[string]string{}
	defaultSite := ""
	for si := range c.Sites {
		s := &c.Sites[si]
		key := "sites." + s.Name
		if s.Default {
			if defaultSite != "" {
				l.errorf(l.where(key+".default"), "sites %q and %q are both the default: keep one", defaultSite, s.Name)
			}
			defaultSite = s.Name
		}
		if len(s.Hosts) == 0 && !s.Default {
			l.errorf(l.fileOrigin(key, ""), "site %q has no hosts: add hosts = [\"example.com\"], or default = true", s.Name)
		}
		for i, h := range s.Hosts {
			h = strings.ToLower(h)
			s.Hosts[i] = h
			if err := checkHost(h); err != nil {
				l.errorf(l.where(key+".hosts"), "%q: %v", h, err)
				continue
			}
			if other, ok := hosts[h]; ok {
				l.errorf(l.where(key+".hosts"), "%q is also a host of site %q: a host belongs to one site", h, other)
			}
			hosts[h] = s.Name
		}
		if len(s.Mounts) == 0 {
			l.errorf(l.fileOrigin(key, ""), "site %q mounts nothing: add mounts = [{ path = \"/\", group = \"NAME\" }]", s.Name)
		}
		paths := map[string]bool{}
		for i := range s.Mounts {
			m := &s.Mounts[i]
			mk := fmt.Sprintf("%s.mounts[%d]", key, i)
			if m.Path == "" {
				// reported by the decoder: mount without a path
			} else if !strings.HasPrefix(m.Path, "/") || strings.Contains(m.Path, "//") || strings.ContainsAny(m.Path, "?#%") {
				l.errorf(l.where(mk+".path"), "%q: want a URL path like \"/\" or \"/blog\"", m.Path)
			} else if m.Path != "/" {
				m.Path = strings.TrimRight(m.Path, "/")
			}
			if paths[m.Path] {
				l.errorf(l.where(mk+".path"), "%q is mounted twice in site %q", m.Path, s.Name)
			}
			paths[m.Path] = true
			if m.Static != "" {
				if fi, err := os.Stat(m.Static); err != nil || !fi.IsDir() {
					l.errorf(l.where(mk+".static"), "%q is not a directory", m.Static)
				}
				continue
			}
			if _, ok := groups[m.Group]; !ok && m.Group != "" {
				l.errorf(l.where(mk+".group"), "no group %q: define [groups.%s] or fix the name", m.Group, m.Group)
			}
			groups[m.Group] = true
			if m.MaxBodySize == 0 {
				m.MaxBodySize = c.Server.MaxBodySize // the server's, unless the mount says
			}
			if _, set := l.origins[mk+".compress"]; !set {
				for _, g := range c.Groups {
					if g.Name == m.Group {
						m.Compress = g.Compress // the group's setting, unless the mount says
					}
				}
			}
		}
	}
	certs := c.Server.TLSCert != ""
	for _, st := range c.Sites {
		key := "sites." + st.Name
		if (st.TLSCert == "") != (st.TLSKey == "") {
			l.errorf(l.fileOrigin(key, ""), "site %q: tls_cert and tls_key go together: set both", st.Name)
			continue
		}
		if st.TLSCert != "" {
			certs = true
			if _, err := tls.LoadX509KeyPair(st.TLSCert, st.TLSKey); err != nil {
				l.errorf(l.where(key+".tls_cert"), "%s with %s: %v", st.TLSCert, st.TLSKey, err)
			}
		}
	}
	if len(c.Server.TLSBind) > 0 && !certs && len(c.Server.ACMEHosts) == 0 {
		l.errorf(l.where("tls_bind"), "HTTPS listeners need a certificate: set tls_cert and tls_key (or a site's), or acme_hosts")
	}
	l.checkACME(&c.Server)
	for _, g := range c.Groups {
		if c.Sites != nil && !groups[g.Name] {
			l.errorf(l.fileOrigin("groups."+g.Name, ""), "group %q is not mounted by any site: add { path = \"/...\", group = %q } to a site's mounts, or remove the group", g.Name, g.Name)
		}
	}
}

// checkACME checks the acme_* settings.
func (l *loader) checkACME(s *Server) {
	for _, h := range s.ACMEHosts {
		switch {
		case strings.Contains(h, "*"):
			l.errorf(l.where("acme_hosts"), "%q: an ACME CA issues no wildcard certificate through the TLS-ALPN-01 and HTTP-01 checks whisk answers: list each name, or use tls_cert for the wildcard", h)
		case net.ParseIP(strings.Trim(h, "[]")) != nil:
			l.errorf(l.where("acme_hosts"), "%q: an ACME CA issues certificates for host names, not IP addresses", h)
		case checkHost(h) != nil || strings.Contains(h, ":"):
			l.errorf(l.where("acme_hosts"), "%q: want a host name like \"example.com\" (no port)", h)
		}
	}
	if len(s.ACMEHosts) > 0 && len(s.TLSBind) == 0 {
		l.errorf(l.where("acme_hosts"), "ACME certificates are for HTTPS listeners: set tls_bind (like \"[::]:443\", the port the CA checks)")
	}
	if d := s.ACMEDirectory; d != "" {
		if u, err := url.Parse(d); err != nil || u.Scheme != "https" || u.Host == "" {
			l.errorf(l.where("acme_directory"), "%q: want the CA's https:// directory URL, like https://acme-v02.api.letsencrypt.org/directory", d)
		}
	}
	if e := s.ACMEEmail; e != "" && !strings.Contains(e, "@") {
		l.errorf(l.where("acme_email"), "%q: want an email address", e)
	}
	if f := s.ACMECACert; f != "" {
		if data, err := os.ReadFile(f); err != nil {
			l.errorf(l.where("acme_ca_cert"), "%v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(data) {
			l.errorf(l.where("acme_ca_cert"), "%s: no PEM certificate in it", f)
		}
	}
}

// checkHost accepts a host name or a leading-wildcard pattern.
func checkHost(h string) error {
	name := strings.TrimPrefix(h, "*.")
	if name == "" || strings.Contains(name, "*") {
		return fmt.Errorf("want a host name like \"example.com\" or a wildcard like \"*.example.com\"")
	}
	if strings.Contains(name, ":") && !strings.HasPrefix(name, "[") {
		return fmt.Errorf("no port in a host: the site answers on every listener")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '[' || r == ']' || r == ':') {
			return fmt.Errorf("%q is not allowed in a host name", r)
		}
	}
	return nil
}
