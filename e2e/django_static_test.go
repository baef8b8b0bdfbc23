package e2e

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// TestDjangoStatic serves examples/django with collectstatic run into a
// temporary STATIC_ROOT and an upload in a temporary MEDIA_ROOT. With
// --django-static whisk serves STATIC_URL and MEDIA_URL from them itself
// (ETag, nosniff, a file only STATIC_ROOT has); without it Django does
// (in debug mode from the apps' static directories, no ETag, and no
// media at all).
func TestDjangoStatic(t *testing.T) {
	t.Parallel()
	venv := whisktest.Venv(t)
	python := filepath.Join(venv, "bin", "python")
	dir := exampleDir(t, "django")
	tmp := t.TempDir()
	staticRoot := filepath.Join(tmp, "static")
	mediaRoot := filepath.Join(tmp, "media")
	env := []string{
		"WHISK_DJANGO_DB=" + filepath.Join(tmp, "db.sqlite3"),
		"DJANGO_SECRET_KEY=whisk-e2e-not-secret-" + strconv.FormatUint(rand.Uint64(), 36),
		"DJANGO_STATIC_ROOT=" + staticRoot,
		"DJANGO_MEDIA_ROOT=" + mediaRoot,
		"DJANGO_DEBUG=1", // Django serves /static/ itself when whisk does not
	}
	runPython(t, dir, env, python, "manage.py", "collectstatic", "--noinput")
	const css = "/static/admin/css/base.css"
	wantCSS, err := os.ReadFile(filepath.Join(staticRoot, "admin", "css", "base.css"))
	if err != nil {
		t.Fatalf("collectstatic did not copy the admin's CSS: %v", err)
	}
	// A file that only STATIC_ROOT has, and an upload.
	if err := os.WriteFile(filepath.Join(staticRoot, "only-collected.txt"), []byte("collected"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(mediaRoot, "uploads"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mediaRoot, "uploads", "a.txt"), []byte("uploaded"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func(t *testing.T, flags ...string) *whisktest.Server {
		args := append([]string{"mysite.wsgi:application", "--python", venv, "--chdir", dir,
			"--processes", "1", "--threads", "2"}, flags...)
		return whisktest.Start(t, append(args, envFlags(env)...)...)
	}

	t.Run("with django_static", func(t *testing.T) {
		t.Parallel()
		s := start(t, "--django-static")
		c := newClient(t)
		for _, f := range []struct {
			path string
			want []byte
		}{
			{css, wantCSS},
			{"/static/only-collected.txt", []byte("collected")},
			{"/media/uploads/a.txt", []byte("uploaded")},
		} {
			resp, body := get(t, s, c, f.path)
			expectStatus(t, s, resp, body, http.StatusOK)
			if !bytes.Equal(body, f.want) {
				t.Errorf("GET %s: body %q, want %q", f.path, truncate(body), truncate(f.want))
			}
			// Both headers come from whisk's static handler; Django's
			// static view sends no ETag.
			if resp.Header.Get("ETag") == "" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("GET %s: ETag %q, X-Content-Type-Options %q: not served by whisk's static handler%s",
					f.path, resp.Header.Get("ETag"), resp.Header.Get("X-Content-Type-Options"), serverOutput(s))
			}
		}
		// The app still serves the rest.
		resp, body := get(t, s, c, "/api/hello?name=static")
		expectStatus(t, s, resp, body, http.StatusOK)
	})

	t.Run("without", func(t *testing.T) {
		t.Parallel()
		s := start(t)
		c := newClient(t)
		resp, body := get(t, s, c, css)
		expectStatus(t, s, resp, body, http.StatusOK)
		if !bytes.Equal(body, wantCSS) || resp.Header.Get("ETag") != "" {
			t.Errorf("GET %s: ETag %q, %d bytes; want Django's static view: no ETag, the file", css, resp.Header.Get("ETag"), len(body))
		}
		for _, path := range []string{"/static/only-collected.txt", "/media/uploads/a.txt"} {
			resp, body := get(t, s, c, path)
			expectStatus(t, s, resp, body, http.StatusNotFound)
		}
	})
}
