package config

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden loads each testdata/golden/*.toml (and pyproject/) and compares
// the normalised configuration, or the exact error, with its .golden file.
// A case's first comment lines may set the environment ("# env: K=V ..."),
// flags ("# flag: name=value ..." or "flagname@setting=value") and
// "# root: true".
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/golden/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases, "testdata/golden/pyproject/pyproject.toml")
	for _, path := range cases {
		name := strings.TrimSuffix(filepath.Base(path), ".toml")
		if strings.HasSuffix(path, "pyproject/pyproject.toml") {
			name = "pyproject"
		}
		t.Run(name, func(t *testing.T) {
			dir, err := filepath.Abs(filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			opts := Options{Dir: dir, NumCPU: 2, CurrentUser: "tester"}
			if name != "pyproject" {
				opts.File = filepath.Base(path) // found by name, relative to Dir
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(string(data), "\n") {
				switch {
				case strings.HasPrefix(l, "# env: "):
					opts.Environ = strings.Fields(strings.TrimPrefix(l, "# env: "))
				case strings.HasPrefix(l, "# flag: "):
					for _, f := range strings.Fields(strings.TrimPrefix(l, "# flag: ")) {
						k, v, _ := strings.Cut(f, "=")
						typed, setting, ok := strings.Cut(k, "@")
						if !ok {
							setting = typed
						}
						opts.Flags = append(opts.Flags, FlagValue{Name: setting, Value: v, Flag: "--" + typed})
					}
				case l == "# root: true":
					opts.Root = true
				}
			}
			var out bytes.Buffer
			res, err := Load(opts)
			if err != nil {
				fmt.Fprintf(&out, "error:\n%v\n", err)
			} else {
				if err := res.Write(&out); err != nil {
					t.Fatal(err)
				}
				for _, w := range res.Warnings {
					fmt.Fprintf(&out, "# warning: %s\n", w)
				}
			}
			got := strings.ReplaceAll(out.String(), dir, "$DIR")
			golden := strings.TrimSuffix(path, ".toml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/config -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("Load(%s) differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, golden, got, want)
			}
		})
	}
}

// TestRoundTrip reads back what Write printed and gets the same config.
func TestRoundTrip(t *testing.T) {
	for _, name := range []string{"minimal.toml", "multi.toml"} {
		t.Run(name, func(t *testing.T) {
			dir, _ := filepath.Abs("testdata/golden")
			first, err := Load(Options{Dir: dir, File: name, NumCPU: 2})
			if err != nil {
				t.Fatal(err)
			}
			var printed bytes.Buffer
			if err := first.Write(&printed); err != nil {
				t.Fatal(err)
			}
			again := filepath.Join(t.TempDir(), "whisk.toml")
			if err := os.WriteFile(again, printed.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			second, err := Load(Options{Dir: dir, File: again, NumCPU: 2})
			if err != nil {
				t.Fatalf("reading back:\n%s\n%v", printed.String(), err)
			}
			var reprinted bytes.Buffer
			if err := second.Write(&reprinted); err != nil {
				t.Fatal(err)
			}
			strip := func(s string) string { _, rest, _ := strings.Cut(s, "\n"); return rest } // the "# from FILE" line
			if strip(printed.String()) != strip(reprinted.String()) {
				t.Errorf("round trip changed the config:\n--- first\n%s\n--- second\n%s", printed.String(), reprinted.String())
			}
		})
	}
}

// TestFileLookup: --config wins, then whisk.toml, then [tool.whisk] in
// pyproject.toml; a pyproject.toml without [tool.whisk] is no config file.
func TestFileLookup(t *testing.T) {
	write := func(dir, name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	both := t.TempDir()
	write(both, "whisk.toml", "app = \"from_whisk_toml:app\"\n")
	write(both, "pyproject.toml", "[tool.whisk]\napp = \"from_pyproject:app\"\n")
	write(both, "other.toml", "app = \"from_other:app\"\n")
	pyOnly := t.TempDir()
	write(pyOnly, "pyproject.toml", "[tool.whisk]\napp = \"from_pyproject:app\"\n")
	noTool := t.TempDir()
	write(noTool, "pyproject.toml", "[project]\nname = \"x\"\n")

	tests := []struct {
		name, dir, file, app, wantApp, wantFile string
	}{
		{"explicit --config wins", both, "other.toml", "", "from_other:app", "other.toml"},
		{"whisk.toml before pyproject.toml", both, "", "", "from_whisk_toml:app", "whisk.toml"},
		{"pyproject.toml [tool.whisk]", pyOnly, "", "", "from_pyproject:app", "pyproject.toml"},
		{"pyproject.toml without [tool.whisk]", noTool, "", "cli:app", "cli:app", ""},
		{"APP argument overrides the file's app", both, "", "cli:app", "cli:app", "whisk.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Load(Options{Dir: tt.dir, File: tt.file, App: tt.app, NumCPU: 1})
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Groups[0].App; got != tt.wantApp {
				t.Errorf("app = %q, want %q", got, tt.wantApp)
			}
			if tt.wantFile == "" && res.File != "" || tt.wantFile != "" && filepath.Base(res.File) != tt.wantFile {
				t.Errorf("file = %q, want %q", res.File, tt.wantFile)
			}
		})
	}
	if _, err := Load(Options{Dir: noTool, File: "pyproject.toml"}); err == nil || !strings.Contains(err.Error(), "no [tool.whisk]") {
		t.Errorf("--config pyproject.toml without [tool.whisk]: err = %v", err)
	}
	if _, err := Load(Options{Dir: noTool, File: "missing.toml"}); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("--config missing.toml: err = %v", err)
	}
}

// TestRelativePaths: paths in the file are relative to its directory;
// paths from flags are relative to the working directory.
func TestRelativePaths(t *testing.T) {
	confDir, workDir := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(confDir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(confDir, "whisk.toml")
	body := "app = \"site/wsgi.py\"\npython_path = [\"src\"]\naccess_log = \"access.log\"\nbind = [\"unix:whisk.sock\"]\n"
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Load(Options{Dir: workDir, File: conf, NumCPU: 1, Flags: []FlagValue{{Name: "pid_file", Value: "whisk.pid"}}})
	if err != nil {
		t.Fatal(err)
	}
	g := res.Groups[0]
	checks := []struct{ name, got, want string }{
		{"app", g.App, filepath.Join(confDir, "site/wsgi.py")},
		{"python_path", g.PythonPath[0], filepath.Join(confDir, "src")},
		{"chdir", g.Chdir, confDir},
		{"access_log", res.Server.AccessLog, filepath.Join(confDir, "access.log")},
		{"bind", res.Server.Bind[0], "unix:" + filepath.Join(confDir, "whisk.sock")},
		{"pid_file (flag)", res.Server.PIDFile, filepath.Join(workDir, "whisk.pid")},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

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
				if !strings.Contains(err.Error(), "size") || !strings.Contains(err.Error(), `like "10M"`) {
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

func TestToDuration(t *testing.T) {
	tests := []struct {
		in   any
		want time.Duration
		err  bool
	}{
		{int64(30), 30 * time.Second, false}, {"30", 30 * time.Second, false}, {"2m", 2 * time.Minute, false},
		{0.5, 500 * time.Millisecond, false}, {"1h30m", 90 * time.Minute, false}, {int64(0), 0, false},
		{"soon", 0, true}, {int64(-1), 0, true}, {"-5s", 0, true}, {true, 0, true}, {"1e300", 0, true},
	}
	for _, tt := range tests {
		got, err := toDuration(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("toDuration(%v) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 30 * time.Second: "30s", 2 * time.Minute: "2m", time.Hour: "1h",
		90 * time.Second: "90s", 1500 * time.Millisecond: "1.5s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := toDuration(FormatDuration(d)); err != nil || back != d {
			t.Errorf("toDuration(FormatDuration(%v)) = %v, %v", d, back, err)
		}
	}
}

// TestSettingsComplete: every tagged field has a Setting and every
// Setting a field, so flags, variables and the file cover the same names.
func TestSettingsComplete(t *testing.T) {
	tagged := map[string]bool{}
	for _, v := range []any{Server{}, Group{}} {
		rt := reflectType(v)
		for i := range rt.NumField() {
			if tag := rt.Field(i).Tag.Get("whisk"); tag != "" {
				tagged[tag] = true
			}
		}
	}
	for _, s := range Settings {
		if !tagged[s.Name] {
			t.Errorf("setting %q has no struct field tagged whisk:%q", s.Name, s.Name)
		}
		if s.Help == "" {
			t.Errorf("setting %q has no help", s.Name)
		}
		delete(tagged, s.Name)
	}
	for name := range tagged {
		t.Errorf("field tagged whisk:%q has no Setting", name)
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
		{name: "directory that is not a virtualenv", python: notVenv, wantErr: []string{notVenv, "without bin/python", "python3 -m venv"}},
		{name: "name not on PATH", python: "nosuchpython", wantErr: []string{`"nosuchpython"`, "no interpreter", "/usr/bin/python3", "virtualenv directory"}},
		{name: "missing path", python: filepath.Join(root, "missing", "python"), wantErr: []string{"no interpreter"}},
		{name: "file on PATH that is not executable", python: "notexec", wantErr: []string{`"notexec"`, "no interpreter"}},
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
		})
	}
}

func writeExe(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
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
			g := DefaultGroup(1)
			g.CPUAffinity, g.Processes = tt.mode, tt.processes
			if got := g.PinCPUs(tt.allowed); !slices.Equal(got, tt.want) {
				t.Fatalf("PinCPUs = %v, want %v", got, tt.want)
			}
		})
	}
}

func reflectType(v any) reflect.Type { return reflect.TypeOf(v) }

// TestReferenceDoc: the settings table in docs/configuration.md is
// generated from Settings and the defaults (go test -update rewrites it).
func TestReferenceDoc(t *testing.T) {
	const begin, end = "<!-- settings:begin (generated by go test ./internal/config -update) -->\n", "<!-- settings:end -->"
	path := filepath.Join("..", "..", "docs", "configuration.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the %q ... %q markers", path, begin, end)
	}
	var b strings.Builder
	server, group := reflect.ValueOf(DefaultServer()), reflect.ValueOf(DefaultGroup(1))
	for _, scope := range []Scope{ServerScope, GroupScope} {
		if scope == ServerScope {
			b.WriteString("### Server settings (top level only)\n\n")
		} else {
			b.WriteString("\n### Group settings (in `[groups.NAME]`; at the top level, the default of every group)\n\n")
		}
		b.WriteString("| key | flag | variable | default | meaning |\n|---|---|---|---|---|\n")
		for _, s := range Settings {
			if s.Scope != scope {
				continue
			}
			v := server
			if scope == GroupScope {
				v = group
			}
			def := "`" + encode(field(v, s.Name)) + "`"
			switch s.Name {
			case "processes":
				def = "number of CPUs"
			case "chdir":
				def = "the config file's directory (else the working directory)"
			}
			flags := "`--" + s.Flag() + "`"
			for _, a := range s.Aliases {
				flags += ", `--" + a + "`"
			}
			kind := ""
			switch f := field(v, s.Name); {
			case f.Type() == durationType:
				kind = " (duration: `\"30s\"`, `\"2m\"`, or seconds)"
			case f.Type() == sizeType:
				kind = " (size: bytes, or `\"10M\"`, `\"512K\"`, `\"1G\"`)"
			case f.Kind() == reflect.Slice:
				kind = " (list; the variable takes commas, the flag repeats)"
			}
			fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s | %s%s |\n", s.Name, flags, s.EnvVar(), def, strings.ReplaceAll(s.Help, "|", "\\|"), kind)
		}
	}
	want := doc[:i+len(begin)] + b.String() + doc[j:]
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != doc {
		t.Errorf("%s's settings table is out of date: run go test ./internal/config -update", path)
	}
}

// FuzzLoad: any file content gives a config or an error, never a panic; and a config that loads prints as TOML that loads again.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"minimal", "multi", "unknown_keys", "sites_errors", "bad_values", "overlay"} {
		if data, err := os.ReadFile(filepath.Join("testdata", "golden", name+".toml")); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("[tool.whisk]\napp = 'a:b'\n"))
	dir := f.TempDir() // one directory, files rewritten each run: cheaper than a TempDir per input
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "whisk.toml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Load(Options{Dir: dir, File: path, NumCPU: 2, CurrentUser: "tester"})
		if err != nil {
			if res != nil || err.Error() == "" {
				t.Fatalf("Load = %v, %q: want no config and an error that says something", res, err)
			}
			return
		}
		var out bytes.Buffer
		if err := res.Write(&out); err != nil {
			t.Fatal(err)
		}
		again := filepath.Join(dir, "again.toml")
		if err := os.WriteFile(again, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(Options{Dir: dir, File: again, NumCPU: 2, CurrentUser: "tester"}); err != nil {
			t.Fatalf("printed config does not load:\n%s\n%v", out.String(), err)
		}
	})
}
