package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// Options says where Load finds the settings.
type Options struct {
	// File is the config file named with --config. When empty, Load looks
	// for whisk.toml, then for [tool.whisk] in pyproject.toml, in Dir.
	File string
	// Dir is the working directory: where files are looked for, and what
	// relative paths from flags and variables are relative to.
	Dir string
	// Environ is the environment; its WHISK_* variables overlay the file.
	Environ []string
	// Flags are the settings given on the command line, in order.
	Flags []FlagValue
	// App is the APP argument: the app of the group "main".
	App string
	// NumCPU is the default number of processes.
	NumCPU int
	// Root says whisk runs as root; CurrentUser is the user it runs as,
	// CurrentUID its numeric id.
	Root        bool
	CurrentUser string
	CurrentUID  string
	// NoFile ignores whisk.toml and pyproject.toml when File is empty.
	NoFile bool
}

// FlagValue is one setting given on the command line.
type FlagValue struct {
	// Name is the setting's name (Setting.Name).
	Name string
	// Value is the flag's text.
	Value string
	// Flag is the flag as typed, for error messages ("--timeout").
	Flag string
}

// Result is a loaded configuration and what Load noticed on the way.
type Result struct {
	Config
	// Warnings are problems that do not stop whisk, like an unknown
	// WHISK_* variable.
	Warnings []string

	given map[string]origin // every value given, by key path
}

// Given reports whether the setting key (a top-level key like "bind", or a
// path like "groups.blog.processes") was given by the file, a variable, a
// flag or the APP argument, rather than left to its default.
func (r *Result) Given(key string) bool {
	_, ok := r.given[key]
	return ok
}

// origin says where a value came from.
type origin struct {
	where string // "whisk.toml:12: groups.blog.processes", "--processes", "WHISK_PROCESSES"
	base  string // directory relative paths in the value are relative to
}

// loader holds the state of one Load.
type loader struct {
	opts    Options
	file    string    // the config file, "" for none
	display string    // the file as errors name it
	prefix  string    // "tool.whisk." inside pyproject.toml
	lines   lineIndex // key path → line
	errs    []error
	warns   []string

	server  Server
	top     Group             // top-level group settings: every group's defaults
	origins map[string]origin // every value given, by key path
}

// Load reads the configuration from the file, the environment and the
// flags, fills in defaults and validates it. The error lists every
// problem, each naming where the value came from and the fix.
func Load(opts Options) (*Result, error) {
	if opts.Dir == "" {
		dir, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("working directory: %w", err)
		}
		opts.Dir = dir
	}
	if opts.NumCPU < 1 {
		opts.NumCPU = 1
	}
	l := &loader{
		opts:    opts,
		server:  DefaultServer(),
		top:     DefaultGroup(opts.NumCPU),
		origins: map[string]origin{},
	}
	doc, err := l.readFile()
	if err != nil {
		return nil, err
	}
	base := l.baseDir()
	l.top.Chdir = base
	l.topLevel(doc, base)
	l.environ()
	l.flags()
	if opts.App != "" {
		l.set(reflect.ValueOf(&l.top).Elem(), "app", opts.App, true, origin{where: "APP", base: opts.Dir})
		l.origins["app"] = origin{where: "APP", base: opts.Dir}
	}
	cfg := Config{File: l.file, Server: l.server}
	cfg.Groups = l.groups(doc["groups"], base)
	cfg.Sites = l.sites(doc["sites"], cfg.Groups)
	l.staticMounts(&cfg)
	l.validate(&cfg)
	if len(l.errs) > 0 {
		return nil, errors.Join(l.errs...)
	}
	return &Result{Config: cfg, Warnings: l.warns, given: l.origins}, nil
}

// readFile finds and parses the config file.
func (l *loader) readFile() (map[string]any, error) {
	path := l.opts.File
	pyproject := false
	if path == "" && !l.opts.NoFile {
		for _, name := range []string{"whisk.toml", "pyproject.toml"} {
			p := filepath.Join(l.opts.Dir, name)
			if _, err := os.Stat(p); err == nil {
				path, pyproject = p, name == "pyproject.toml"
				break
			}
		}
	} else if path != "" {
		pyproject = filepath.Base(path) == "pyproject.toml"
		if !filepath.IsAbs(path) {
			path = filepath.Join(l.opts.Dir, path)
		}
	}
	if path == "" {
		return map[string]any{}, nil
	}
	display := path
	if rel, err := filepath.Rel(l.opts.Dir, path); err == nil && !strings.HasPrefix(rel, "..") {
		display = rel
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("%s:%d:%d: not valid TOML: %s", display, row, col, de.Error())
		}
		return nil, fmt.Errorf("%s: not valid TOML: %w", display, err)
	}
	if pyproject {
		tool, _ := doc["tool"].(map[string]any)
		w, ok := tool["whisk"].(map[string]any)
		if !ok {
			if l.opts.File != "" {
				return nil, fmt.Errorf("%s has no [tool.whisk] table: add one, or name a whisk.toml with --config", display)
			}
			return map[string]any{}, nil // a pyproject.toml without whisk settings
		}
		doc, l.prefix = w, "tool.whisk."
	}
	l.file, _ = filepath.Abs(path)
	l.display = display
	l.lines = indexLines(data)
	return doc, nil
}

// fileOrigin names a key of the file: "whisk.toml:12: groups.blog.processes".
func (l *loader) fileOrigin(key, base string) origin {
	line := l.lines.lookup(l.prefix + key)
	if line == 0 {
		return origin{where: fmt.Sprintf("%s: %s%s", l.display, l.prefix, key), base: base}
	}
	return origin{where: fmt.Sprintf("%s:%d: %s%s", l.display, line, l.prefix, key), base: base}
}

func (l *loader) errorf(o origin, format string, args ...any) {
	l.errs = append(l.errs, fmt.Errorf("%s: %s", o.where, fmt.Sprintf(format, args...)))
}

// topLevel applies the file's top-level settings.
func (l *loader) topLevel(doc map[string]any, base string) {
	for _, k := range sortedKeys(doc) {
		if k == "groups" || k == "sites" {
			continue
		}
		o := l.fileOrigin(k, base)
		s, ok := lookupSetting(k)
		if !ok {
			l.errorf(o, "unknown setting%s", suggest(k, settingNames(), " (settings: see docs/configuration.md)"))
			continue
		}
		l.apply(s, k, doc[k], o)
	}
}

// apply sets a top-level setting from a file value.
func (l *loader) apply(s Setting, key string, v any, o origin) {
	target := reflect.ValueOf(&l.server).Elem()
	if s.Scope == GroupScope {
		target = reflect.ValueOf(&l.top).Elem()
	}
	f := field(target, s.Name)
	if err := setValue(f, v); err != nil {
		l.errorf(o, "%v", err)
		return
	}
	l.origins[key] = o
	l.resolvePaths(s.Name, f, o.base)
}

// environ applies WHISK_* variables.
func (l *loader) environ() {
	known := map[string]Setting{}
	for _, s := range Settings {
		known[s.EnvVar()] = s
	}
	for _, kv := range l.opts.Environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "WHISK_") {
			continue
		}
		s, ok := known[k]
		if !ok {
			if !slices.Contains(nonSettingVars, k) && !strings.HasPrefix(k, "WHISK_TEST_") {
				l.warns = append(l.warns, fmt.Sprintf("%s is not a whisk setting and is ignored%s", k, suggest(k, envNames(), "")))
			}
			continue
		}
		o := origin{where: k, base: l.opts.Dir}
		target := l.targetOf(s, o)
		f := field(target, s.Name)
		f.Set(reflect.Zero(f.Type())) // a variable replaces the file's value
		values := []string{v}
		if f.Kind() == reflect.Slice || f.Kind() == reflect.Map {
			values = splitList(v)
		}
		for _, v := range values {
			l.set(target, s.Name, v, false, o)
		}
	}
}

// nonSettingVars are WHISK_ variables that are not settings (besides the
// test suite's WHISK_TEST_*).
var nonSettingVars = []string{"WHISK_CPUPROFILE"}

// flags applies the command line's settings: a flag replaces the value
// from the file or environment; a repeated list flag adds to it.
func (l *loader) flags() {
	seen := map[string]bool{}
	for _, fv := range l.opts.Flags {
		s, ok := lookupSetting(fv.Name)
		if !ok {
			l.errs = append(l.errs, fmt.Errorf("--%s: unknown setting", fv.Name))
			continue
		}
		name := fv.Flag
		if name == "" {
			name = "--" + s.Flag()
		}
		o := origin{where: name, base: l.opts.Dir}
		target := l.targetOf(s, o)
		if !seen[s.Name] {
			f := field(target, s.Name)
			f.Set(reflect.Zero(f.Type()))
			seen[s.Name] = true
		}
		l.set(target, s.Name, fv.Value, false, o)
	}
}

// targetOf returns the struct a top-level setting is stored in and records
// its origin.
func (l *loader) targetOf(s Setting, o origin) reflect.Value {
	l.origins[s.Name] = o
	if s.Scope == GroupScope {
		return reflect.ValueOf(&l.top).Elem()
	}
	return reflect.ValueOf(&l.server).Elem()
}

// set sets one setting of target from text (a flag, a variable or the
// APP argument); whole replaces a list instead of adding to it.
func (l *loader) set(target reflect.Value, name, text string, whole bool, o origin) {
	f := field(target, name)
	if whole {
		f.Set(reflect.Zero(f.Type()))
	}
	if err := setText(f, text); err != nil {
		l.errorf(o, "%v", err)
		return
	}
	if f.Kind() == reflect.Slice && pathSettings[name] {
		// Resolve only the entry just added.
		last := f.Index(f.Len() - 1)
		last.SetString(resolvePath(name, last.String(), o.base))
		return
	}
	if f.Kind() == reflect.Slice {
		return
	}
	l.resolvePaths(name, f, o.base)
}

// pathSettings hold file system paths, relative to the config file's
// directory in the file and to the working directory on the command line.
var pathSettings = map[string]bool{
	"python": true, "python_path": true, "chdir": true, "app": true,
	"access_log": true, "pid_file": true, "static": true, "tls_cert": true, "tls_key": true, "acme_cache": true, "acme_ca_cert": true, "tls_bind": true, "x_sendfile": true, "x_accel_redirect": true, "bind": true, "admin_bind": true, "health_bind": true,
}

func (l *loader) resolvePaths(name string, f reflect.Value, base string) {
	if !pathSettings[name] {
		return
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(resolvePath(name, f.String(), base))
	case reflect.Slice:
		for i := range f.Len() {
			f.Index(i).SetString(resolvePath(name, f.Index(i).String(), base))
		}
	}
}

// absPath makes a relative path absolute against base; "" stays "".
func absPath(p, base string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(base, p)
}

// resolvePath makes a relative path setting absolute against base.
func resolvePath(name, v, base string) string {
	abs := func(p string) string { return absPath(p, base) }
	switch name {
	case "static", "x_accel_redirect": // PREFIX=DIR
		if prefix, dir, ok := strings.Cut(v, "="); ok {
			return prefix + "=" + abs(dir)
		}
		return v // validation reports it
	case "bind", "admin_bind", "health_bind", "tls_bind":
		if p, ok := strings.CutPrefix(v, "unix:"); ok {
			return "unix:" + abs(p)
		}
		return v
	case "app":
		if strings.HasSuffix(v, ".py") || strings.Contains(v, "/") {
			return abs(v) // a script path, not module:callable
		}
		return v
	case "access_log":
		if v == "-" {
			return v
		}
	case "python":
		// A name like "python3.12" is looked up on PATH; a path or an
		// existing directory (a virtualenv) is relative to base.
		if !strings.Contains(v, "/") {
			if fi, err := os.Stat(filepath.Join(base, v)); err != nil || !fi.IsDir() {
				return v
			}
		}
	}
	return abs(v)
}

// staticMounts adds the top-level static entries ("PREFIX=DIR") to every
// site as static mounts.
func (l *loader) staticMounts(c *Config) {
	for _, entry := range c.Server.Static {
		prefix, dir, ok := strings.Cut(entry, "=")
		if !ok || !strings.HasPrefix(prefix, "/") || dir == "" {
			l.errorf(l.where("static"), "%q: want PREFIX=DIR, like /static/=staticfiles", entry)
			continue
		}
		for i := range c.Sites {
			c.Sites[i].Mounts = append(c.Sites[i].Mounts, Mount{Path: prefix, Static: dir})
		}
	}
	c.Server.Static = nil // now mounts: the effective config shows them there
}

// baseDir is the directory relative paths in the file are relative to.
func (l *loader) baseDir() string {
	if l.file != "" {
		return filepath.Dir(l.file)
	}
	return l.opts.Dir
}

// groups builds every group: the file's [groups.NAME] tables and, when a
// top-level app is set, the group "main".
func (l *loader) groups(raw any, base string) []Group {
	var out []Group
	if _, ok := l.origins["app"]; ok { // a top-level app: the group "main"
		g := l.inherit()
		g.App = l.top.App
		g.Name = MainGroup
		out = append(out, g)
	}
	if raw == nil {
		return out
	}
	tables, ok := raw.(map[string]any)
	if !ok {
		l.errorf(l.fileOrigin("groups", base), "want tables [groups.NAME], got %s", describe(raw))
		return out
	}
	for _, name := range sortedKeys(tables) {
		key := "groups." + name
		t, ok := tables[name].(map[string]any)
		if !ok {
			l.errorf(l.fileOrigin(key, base), "want a table [groups.%s], got %s", name, describe(tables[name]))
			continue
		}
		if !validName(name) {
			l.errorf(l.fileOrigin(key, base), "group name %q: use letters, digits, '-', '_' and '.'", name)
			continue
		}
		if name == MainGroup && len(out) > 0 && out[0].Name == MainGroup {
			l.errorf(l.fileOrigin(key, base), "the top-level app already defines the group %q: move that app into [groups.%s], or rename this group", MainGroup, MainGroup)
			continue
		}
		g := l.inherit()
		g.Name = name
		gv := reflect.ValueOf(&g).Elem()
		var env map[string]string
		for _, k := range sortedKeys(t) {
			o := l.fileOrigin(key+"."+k, base)
			s, ok := lookupSetting(k)
			switch {
			case !ok:
				l.errorf(o, "unknown group setting%s", suggest(k, groupSettingNames(), ""))
				continue
			case s.Scope != GroupScope:
				l.errorf(o, "%s is a server setting: move it to the top level of the file", k)
				continue
			}
			f := field(gv, k)
			if k == "env" {
				env = g.Env
			}
			if err := setValue(f, t[k]); err != nil {
				l.errorf(o, "%v", err)
				continue
			}
			l.origins[key+"."+k] = o
			l.resolvePaths(k, f, base)
		}
		if env != nil { // a group's env adds to the top-level one
			g.Env = mergeEnv(env, g.Env)
		}
		out = append(out, g)
	}
	return out
}

// inherit returns a group with the top-level group settings, lists and
// tables copied, and no app.
func (l *loader) inherit() Group {
	g := l.top
	g.App = ""
	g.PythonPath = slices.Clone(l.top.PythonPath)
	g.Env = mergeEnv(l.top.Env, nil)
	return g
}

// mergeEnv merges b over a into a new map (nil when both are empty).
func mergeEnv(a, b map[string]string) map[string]string {
	if len(a)+len(b) == 0 {
		return nil
	}
	m := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

// sites builds the sites: the file's [sites.NAME] tables, or a default site
// mounting the only group at "/".
func (l *loader) sites(raw any, groups []Group) []Site {
	if m, ok := raw.(map[string]any); ok && len(m) == 0 {
		raw = nil // an empty [sites] table names no site
	}
	if raw == nil || len(groups) == 0 {
		switch len(groups) {
		case 0:
			l.errs = append(l.errs, errors.New("no app to serve: give one (whisk serve mysite.wsgi:application), set app in the config file, or define [groups.NAME] with mounts in [sites.NAME]"))
			return nil
		case 1:
			return []Site{{Name: DefaultSite, Default: true, Mounts: []Mount{{Path: "/", Group: groups[0].Name, Compress: groups[0].Compress}}}}
		default:
			names := make([]string, len(groups))
			for i, g := range groups {
				names[i] = g.Name
			}
			l.errs = append(l.errs, fmt.Errorf("%s: %d groups (%s) but no [sites.NAME] mounting them: add a site with mounts = [{ path = \"/\", group = %q }, ...]", l.display, len(groups), strings.Join(names, ", "), names[0]))
			return nil
		}
	}
	tables, ok := raw.(map[string]any)
	if !ok {
		l.errorf(l.fileOrigin("sites", ""), "want tables [sites.NAME], got %s", describe(raw))
		return nil
	}
	var out []Site
	for _, name := range sortedKeys(tables) {
		key := "sites." + name
		t, ok := tables[name].(map[string]any)
		if !ok {
			l.errorf(l.fileOrigin(key, ""), "want a table [sites.%s], got %s", name, describe(tables[name]))
			continue
		}
		site := Site{Name: name}
		for _, k := range sortedKeys(t) {
			o := l.fileOrigin(key+"."+k, "")
			var err error
			switch k {
			case "hosts":
				err = setValue(reflect.ValueOf(&site.Hosts).Elem(), t[k])
			case "default":
				err = setValue(reflect.ValueOf(&site.Default).Elem(), t[k])
			case "mounts":
				site.Mounts = l.mounts(key+".mounts", t[k])
			case "tls_cert", "tls_key":
				dst := &site.TLSCert
				if k == "tls_key" {
					dst = &site.TLSKey
				}
				if err = setValue(reflect.ValueOf(dst).Elem(), t[k]); err == nil {
					*dst = absPath(*dst, l.baseDir())
				}
			default:
				err = fmt.Errorf("unknown site setting%s", suggest(k, []string{"hosts", "default", "mounts", "tls_cert", "tls_key"}, " (a site has hosts, default, mounts, tls_cert and tls_key)"))
			}
			if err != nil {
				l.errorf(o, "%v", err)
			}
			l.origins[key+"."+k] = o
		}
		out = append(out, site)
	}
	return out
}

// mounts decodes a site's mounts: a list of { path = "/", group = "main" }.
func (l *loader) mounts(key string, raw any) []Mount {
	list, ok := raw.([]any)
	if !ok {
		if m, isMap := raw.([]map[string]any); isMap {
			for _, e := range m {
				list = append(list, e)
			}
		} else {
			l.errorf(l.fileOrigin(key, ""), "want a list like [{ path = \"/\", group = \"main\" }], got %s", describe(raw))
			return nil
		}
	}
	var out []Mount
	for i, e := range list {
		ek := fmt.Sprintf("%s[%d]", key, i)
		t, ok := e.(map[string]any)
		if !ok {
			l.errorf(l.fileOrigin(ek, ""), "want a table like { path = \"/\", group = \"main\" }, got %s", describe(e))
			continue
		}
		var m Mount
		for _, k := range sortedKeys(t) {
			o := l.fileOrigin(ek+"."+k, "")
			var dst *string
			switch k {
			case "path":
				dst = &m.Path
			case "group":
				dst = &m.Group
			case "static":
				dst = &m.Static
			case "max_body_size":
				n, err := toSize(t[k])
				if err != nil {
					l.errorf(o, "%v", err)
				}
				m.MaxBodySize = Size(n)
				l.origins[ek+"."+k] = o
				continue
			case "compress":
				b, ok := t[k].(bool)
				if !ok {
					l.errorf(o, "want true or false, got %s", describe(t[k]))
				}
				m.Compress = b
				l.origins[ek+"."+k] = o
				continue
			default:
				l.errorf(o, "unknown mount setting%s", suggest(k, []string{"path", "group", "static", "compress", "max_body_size"}, " (a mount has path, group or static, compress and max_body_size)"))
				continue
			}
			s, ok := t[k].(string)
			if !ok {
				l.errorf(o, "want a string in quotes, got %s", describe(t[k]))
				continue
			}
			*dst = s
			if k == "static" {
				*dst = absPath(s, l.baseDir())
			}
			l.origins[ek+"."+k] = o
		}
		if _, ok := t["path"]; !ok {
			l.errorf(l.fileOrigin(ek, ""), "mount without a path: add path = \"/\" (or a prefix like \"/blog\")")
		}
		_, hasGroup := t["group"]
		_, hasStatic := t["static"]
		switch {
		case !hasGroup && !hasStatic:
			l.errorf(l.fileOrigin(ek, ""), "mount without a group or a directory: add group = \"NAME\" naming a [groups.NAME], or static = \"DIR\"")
		case hasGroup && hasStatic:
			l.errorf(l.fileOrigin(ek, ""), "mount with both group and static: a prefix is served by an app or by files; make two mounts")
		}
		out = append(out, m)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func settingNames() []string {
	names := make([]string, 0, len(Settings)+2)
	for _, s := range Settings {
		names = append(names, s.Name)
	}
	return append(names, "groups", "sites")
}

func groupSettingNames() []string {
	var names []string
	for _, s := range Settings {
		if s.Scope == GroupScope {
			names = append(names, s.Name)
		}
	}
	return names
}

func envNames() []string {
	names := make([]string, 0, len(Settings))
	for _, s := range Settings {
		names = append(names, s.EnvVar())
	}
	return names
}

// suggest returns ": did you mean X?" for the name closest to k, or
// fallback when none is close.
func suggest(k string, names []string, fallback string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := distance(strings.ToLower(k), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" {
		return fallback
	}
	return fmt.Sprintf(": did you mean %s?", best)
}

// distance is the Levenshtein edit distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// PIDFile returns the pid_file setting of the config opts names (the file,
// then WHISK_PID_FILE), without checking the rest: `whisk reload` needs
// only it, and the running server checks the config itself.
func PIDFile(opts Options) (string, error) {
	if opts.Dir == "" {
		dir, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("working directory: %w", err)
		}
		opts.Dir = dir
	}
	l := &loader{opts: opts}
	doc, err := l.readFile()
	if err != nil {
		return "", err
	}
	path, base := "", opts.Dir
	if v, ok := doc["pid_file"].(string); ok {
		path, base = v, filepath.Dir(l.file)
	}
	for _, kv := range opts.Environ {
		if v, ok := strings.CutPrefix(kv, "WHISK_PID_FILE="); ok {
			path, base = v, opts.Dir
		}
	}
	return resolvePath("pid_file", path, base), nil
}
