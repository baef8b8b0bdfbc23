package e2e

import (
	"bytes"
	"html"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// systemPython is Debian's interpreter, outside any virtualenv.
const systemPython = "/usr/bin/python3"

// TestHelloSystemPython serves examples/hello (the README's first command)
// with --python naming Debian's interpreter rather than a virtualenv, and
// checks from the page that the worker really ran that interpreter.
func TestHelloSystemPython(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(systemPython); err != nil {
		t.Fatalf("this test serves examples/hello with Debian's %s: %v (apt-get install python3)", systemPython, err)
	}
	// What the interpreter says about itself when run directly.
	info := strings.Fields(runPython(t, t.TempDir(), nil, systemPython, "-c",
		"import os, sys; print(os.path.realpath(sys.executable), sys.prefix)"))
	if len(info) != 2 {
		t.Fatalf("%s reported %q, want its executable and prefix", systemPython, info)
	}
	wantExe, wantPrefix := info[0], info[1]

	app := filepath.Join(exampleDir(t, "hello"), "app.py")
	s := whisktest.Start(t, app, "--python", systemPython)
	resp, body := get(t, s, newClient(t), "/some/path?q=<b>")
	expectStatus(t, s, resp, body, http.StatusOK)
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q, want text/html; charset=utf-8", ct)
	}
	for _, want := range []string{
		"whisk is serving this page",
		"<td>/some/path</td>",  // PATH_INFO
		"<td>q=&lt;b&gt;</td>", // QUERY_STRING, escaped
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("page lacks %q:\n%s", want, truncate(body))
		}
	}

	exe := pageField(t, body, "python-executable")
	if real, err := filepath.EvalSymlinks(exe); err != nil || real != wantExe {
		t.Errorf("worker ran sys.executable %q (resolves to %q, %v), want %s", exe, real, err, wantExe)
	}
	if prefix := pageField(t, body, "python-prefix"); prefix != wantPrefix {
		t.Errorf("worker's sys.prefix is %q, want %q (%s's own, no virtualenv)", prefix, wantPrefix, systemPython)
	}
}

// pageField returns the unescaped text of <td id="ID"> on the hello page.
func pageField(t *testing.T, body []byte, id string) string {
	t.Helper()
	m := regexp.MustCompile(`<td id="` + regexp.QuoteMeta(id) + `">([^<]*)</td>`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no %s on the page:\n%s", id, truncate(body))
	}
	return html.UnescapeString(string(m[1]))
}
