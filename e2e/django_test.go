package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/whiskserver/whisk/internal/whisktest"
)

const (
	djangoAdminUser     = "whiskadmin"
	djangoAdminPassword = "correct-horse-battery-staple-42"
)

var (
	csrfFieldRE = regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`)
	visitsRE    = regexp.MustCompile(`<strong id="visits">(\d+)</strong>`)
)

// djangoServer is examples/django served by whisk from the test virtualenv,
// with a fresh database holding a superuser.
type djangoServer struct {
	*whisktest.Server
	// gateDir is where the /stream view looks for its gate files.
	gateDir string
}

// startDjango migrates a temporary database for examples/django, creates the
// superuser djangoAdminUser and serves the project with whisk, configured the
// way its README says.
func startDjango(t *testing.T) *djangoServer {
	t.Helper()
	venv := whisktest.Venv(t)
	python := filepath.Join(venv, "bin", "python")
	dir := exampleDir(t, "django")
	tmp := t.TempDir()
	gateDir := filepath.Join(tmp, "gates")
	if err := os.Mkdir(gateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"WHISK_DJANGO_DB=" + filepath.Join(tmp, "db.sqlite3"),
		"DJANGO_SECRET_KEY=whisk-e2e-not-secret-" + strconv.FormatUint(rand.Uint64(), 36),
		"WHISK_DJANGO_STREAM_GATE_DIR=" + gateDir,
	}
	runPython(t, dir, env, python, "manage.py", "migrate", "--noinput")
	runPython(t, dir, append(env,
		"DJANGO_SUPERUSER_USERNAME="+djangoAdminUser,
		"DJANGO_SUPERUSER_PASSWORD="+djangoAdminPassword,
		"DJANGO_SUPERUSER_EMAIL=admin@example.com",
	), python, "manage.py", "createsuperuser", "--noinput")

	args := []string{"mysite.wsgi:application",
		"--python", venv, "--chdir", dir,
		"--processes", "2", "--threads", "4",
	}
	args = append(args, envFlags(env)...)
	return &djangoServer{Server: whisktest.Start(t, args...), gateDir: gateDir}
}

func TestDjango(t *testing.T) {
	t.Parallel()
	s := startDjango(t)

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		resp, body := get(t, s.Server, newClient(t), "/api/hello?name=whisk")
		expectStatus(t, s.Server, resp, body, http.StatusOK)
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		var got struct {
			Message, Django, Method, Path string
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if got.Message != "Hello, whisk!" || got.Method != "GET" || got.Path != "/api/hello" || got.Django == "" {
			t.Errorf("got %+v, want message %q, method GET, path /api/hello and a Django version", got, "Hello, whisk!")
		}
	})

	t.Run("session counter", func(t *testing.T) {
		t.Parallel()
		c := newClient(t)
		for want := 1; want <= 3; want++ {
			resp, body := get(t, s.Server, c, "/")
			expectStatus(t, s.Server, resp, body, http.StatusOK)
			if got := visits(t, body); got != want {
				t.Fatalf("request %d with the session cookie: page shows %d visits, want %d%s", want, got, want, serverOutput(s.Server))
			}
		}
		// Without the cookie, a new session starts at 1.
		resp, body := get(t, s.Server, newClient(t), "/")
		expectStatus(t, s.Server, resp, body, http.StatusOK)
		if got := visits(t, body); got != 1 {
			t.Errorf("a client without the session cookie sees %d visits, want 1", got)
		}
	})

	t.Run("admin login", func(t *testing.T) {
		t.Parallel()
		c := newClient(t)
		resp, body := get(t, s.Server, c, "/admin/login/?next=/admin/")
		expectStatus(t, s.Server, resp, body, http.StatusOK)
		token := csrfToken(t, s.Server, c, body)

		form := url.Values{
			"csrfmiddlewaretoken": {token},
			"username":            {djangoAdminUser},
			"password":            {djangoAdminPassword},
			"next":                {"/admin/"},
		}
		req := newRequest(t, s.Server, http.MethodPost, "/admin/login/?next=/admin/", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, body = whisktest.ReadAll(t, do(t, s.Server, c, req))
		expectStatus(t, s.Server, resp, body, http.StatusFound)
		if loc := resp.Header.Get("Location"); loc != "/admin/" {
			t.Fatalf("login redirects to %q, want /admin/", loc)
		}

		resp, body = get(t, s.Server, c, "/admin/")
		expectStatus(t, s.Server, resp, body, http.StatusOK)
		for _, want := range []string{"Site administration", djangoAdminUser} {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("GET /admin/ after login: page lacks %q:\n%s", want, truncate(body))
			}
		}
	})

	t.Run("upload 5MB", func(t *testing.T) {
		t.Parallel()
		c := newClient(t)
		resp, body := get(t, s.Server, c, "/upload")
		expectStatus(t, s.Server, resp, body, http.StatusOK)
		token := csrfToken(t, s.Server, c, body)

		data := make([]byte, 5<<20)
		rng := rand.NewChaCha8([32]byte{'w', 'h', 'i', 's', 'k'})
		_, _ = rng.Read(data)
		sum := sha256.Sum256(data)

		// As a browser sends the form: the hidden CSRF field, then the file.
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		if err := mw.WriteField("csrfmiddlewaretoken", token); err != nil {
			t.Fatal(err)
		}
		fw, err := mw.CreateFormFile("file", "random.bin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := mw.Close(); err != nil {
			t.Fatal(err)
		}
		req := newRequest(t, s.Server, http.MethodPost, "/upload", &buf)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, body = whisktest.ReadAll(t, do(t, s.Server, c, req))
		expectStatus(t, s.Server, resp, body, http.StatusOK)
		var got struct {
			Name, SHA256 string
			Size         int
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		want := hex.EncodeToString(sum[:])
		if got.SHA256 != want || got.Size != len(data) || got.Name != "random.bin" {
			t.Errorf("Django received %q: %d bytes, sha256 %s; sent %q: %d bytes, sha256 %s",
				got.Name, got.Size, got.SHA256, "random.bin", len(data), want)
		}
	})

	t.Run("streaming response", func(t *testing.T) {
		t.Parallel()
		gate := "stream-" + strconv.FormatUint(rand.Uint64(), 36)
		resp := do(t, s.Server, newClient(t), newRequest(t, s.Server, http.MethodGet, "/stream?gate="+gate, nil))
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			_, body := whisktest.ReadAll(t, resp)
			expectStatus(t, s.Server, resp, body, http.StatusOK)
		}
		if te := resp.TransferEncoding; len(te) != 1 || te[0] != "chunked" || resp.ContentLength != -1 {
			t.Errorf("Transfer-Encoding %q, Content-Length %d; want chunked and no length", te, resp.ContentLength)
		}

		// The view sends "chunk 1 of 5" and then, before its last chunk,
		// waits for the gate file. Reading the first line before creating
		// the gate shows whisk forwards chunks while the view still runs.
		br := bufio.NewReader(resp.Body)
		first, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read first chunk: %v (got %q)%s", err, first, serverOutput(s.Server))
		}
		if err := os.WriteFile(filepath.Join(s.gateDir, gate), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("read rest of stream: %v (got %q)%s", err, rest, serverOutput(s.Server))
		}
		var want strings.Builder
		for i := 2; i <= 5; i++ {
			fmt.Fprintf(&want, "chunk %d of 5\n", i)
		}
		switch got := first + string(rest); {
		case strings.Contains(got, "gave up waiting"):
			t.Fatalf("the first chunk reached the client only after the view had finished: whisk buffered the streaming response\ngot:\n%s%s", got, serverOutput(s.Server))
		case first != "chunk 1 of 5\n" || string(rest) != want.String():
			t.Fatalf("streamed body:\n%s\nwant:\nchunk 1 of 5\n%s", got, want.String())
		}
	})
}

// csrfToken returns the csrfmiddlewaretoken of the form in body, after
// checking that the csrftoken cookie came with it, as a browser would have it.
func csrfToken(t *testing.T, s *whisktest.Server, c *http.Client, body []byte) string {
	t.Helper()
	m := csrfFieldRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no csrfmiddlewaretoken field in the form:\n%s%s", truncate(body), serverOutput(s))
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ck := range c.Jar.Cookies(u) {
		found = found || ck.Name == "csrftoken"
	}
	if !found {
		t.Fatalf("no csrftoken cookie after GET of the form; cookies: %v", c.Jar.Cookies(u))
	}
	return html.UnescapeString(string(m[1]))
}

// visits returns the visit count on the home page.
func visits(t *testing.T, body []byte) int {
	t.Helper()
	m := visitsRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no visit count on the home page:\n%s", truncate(body))
	}
	n, err := strconv.Atoi(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
