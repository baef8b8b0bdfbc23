package static

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// realDir returns dir with symbolic links resolved, as /proc/self/fd
// shows it.
func realDir(t testing.TB, dir string) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fdsUnder returns the targets of this process's open descriptors that are
// dir itself or below it; a deleted file's ends in " (deleted)". Counting
// only these keeps the test's own sockets and the runtime's descriptors
// out.
func fdsUnder(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // closed since (ReadDir's own descriptor)
		}
		if l == dir || strings.HasPrefix(l, dir+"/") {
			out = append(out, l)
		}
	}
	return out
}

// filesUnder is fdsUnder without dir itself (the os.Root's descriptor).
func filesUnder(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for _, l := range fdsUnder(t, dir) {
		if l != dir {
			out = append(out, l)
		}
	}
	return out
}

// deleted returns the targets in fds that are deleted files.
func deleted(fds []string) []string {
	var out []string
	for _, l := range fds {
		if strings.HasSuffix(l, " (deleted)") {
			out = append(out, l)
		}
	}
	return out
}

// eventually polls cond every 5 ms until it holds, failing after 2 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 2 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// entry returns the cache's entry for key, or nil.
func entry(h *Handler, key string) *cachedFile {
	h.cache.mu.RLock()
	defer h.cache.mu.RUnlock()
	return h.cache.entries[key]
}

// statTag returns the ETag the handler gives the file at path now.
func statTag(t testing.TB, path, enc string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return etag(fi, enc)
}

// TestFileCacheHit checks that a second request for a file is served from
// the cache: the same entry and the same single descriptor, no open (the
// file can even be gone from the directory within FileCacheValid), and a
// response byte-identical to the first with the same ETag, Last-Modified,
// Content-Length and Content-Type. Conditional and range requests use the
// entry too, and headers added to one response by a middleware do not
// leak into the entry's shared header values.
func TestFileCacheHit(t *testing.T) {
	root := tree(t)
	dir := realDir(t, root)
	h := newHandler(t, root, "/static", Options{FileCacheValid: time.Hour})
	fi, err := os.Stat(filepath.Join(root, "app.js"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Etag":                   etag(fi, ""),
		"Last-Modified":          fi.ModTime().UTC().Format(http.TimeFormat),
		"Content-Length":         strconv.Itoa(len(appJS)),
		"Content-Type":           "text/javascript; charset=utf-8",
		"Accept-Ranges":          "bytes",
		"Vary":                   "Accept-Encoding",
		"X-Content-Type-Options": "nosniff",
	}
	check := func(what string, w *httptest.ResponseRecorder) {
		t.Helper()
		if w.Code != 200 || w.Body.String() != appJS {
			t.Fatalf("%s: %d %q", what, w.Code, w.Body.String())
		}
		for k, v := range want {
			if got := w.Header()[k]; len(got) != 1 || got[0] != v {
				t.Errorf("%s: %s %q, want %q", what, k, got, v)
			}
		}
	}

	w1 := serve(t, h, "GET", "/static/app.js")
	check("first", w1)
	e := entry(h, "app.js")
	if e == nil || h.cache.len() != 1 {
		t.Fatalf("after the first request: entry %v, %d entries", e, h.cache.len())
	}
	fds := filesUnder(t, dir)
	if len(fds) != 1 || fds[0] != filepath.Join(dir, "app.js") {
		t.Fatalf("open under the root after the first request: %q", fds)
	}
	for _, s := range [][]string{e.etag, e.lastModified, e.contentLength, e.contentType} {
		if len(s) != cap(s) {
			t.Errorf("shared header value %q has spare capacity: an Add would write into it", s)
		}
	}

	w2 := serve(t, h, "GET", "/static/app.js")
	check("second", w2)
	if !bytes.Equal(w1.Body.Bytes(), w2.Body.Bytes()) {
		t.Error("the cached response's body differs")
	}
	if e2 := entry(h, "app.js"); e2 != e {
		t.Error("the second request replaced the entry: not a hit")
	}
	if got := filesUnder(t, dir); len(got) != 1 || got[0] != fds[0] {
		t.Errorf("open after the second request: %q, want %q", got, fds)
	}

	// A conditional and a range request hit the same entry.
	if w := serve(t, h, "GET", "/static/app.js", "If-None-Match: "+want["Etag"]); w.Code != 304 {
		t.Errorf("If-None-Match: %d", w.Code)
	}
	if w := serve(t, h, "GET", "/static/app.js", "Range: bytes=3-9"); w.Code != 206 || w.Body.String() != appJS[3:10] {
		t.Errorf("Range: %d %q", w.Code, w.Body.String())
	}
	if entry(h, "app.js") != e || h.cache.len() != 1 {
		t.Error("conditional or range request replaced the entry")
	}

	// A middleware adding to the headers after the handler touches its
	// own response only.
	spoil := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		for k := range want {
			w.Header().Add(k, "spoiled")
		}
	})
	serve(t, spoil, "GET", "/static/app.js")
	check("after a middleware's Add", serve(t, h, "GET", "/static/app.js"))

	// No open: the file is gone from the directory, the descriptor
	// still serves it until the next check.
	if err := os.Remove(filepath.Join(root, "app.js")); err != nil {
		t.Fatal(err)
	}
	check("removed within FileCacheValid", serve(t, h, "GET", "/static/app.js"))
}

// TestFileCacheSeesChanges checks that with a small FileCacheValid a
// change to a cached file is served once the validity has passed: new
// content with a new ETag after an in-place rewrite (new size, time or
// both), a new ETag after a touch, new content after a replacement by
// rename with the same size and modification time (only the inode
// differs, so the ETag stays), and 404 once the name is deleted or is no
// longer a regular file inside the root. The stale descriptor is closed
// then.
func TestFileCacheSeesChanges(t *testing.T) {
	const old = "0123456789abcdefghij"
	type want struct {
		code   int
		body   string
		newTag bool // a 200 with an ETag other than the old one
	}
	cases := []struct {
		name   string
		change func(t *testing.T, p string) // p: root/data.txt
		want   want
	}{
		{"rewritten in place", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("rewritten, and longer than before"), 0o644); err != nil {
				t.Fatal(err)
			}
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(p, later, later); err != nil {
				t.Fatal(err)
			}
		}, want{200, "rewritten, and longer than before", true}},
		{"rewritten in place, same mtime", func(t *testing.T, p string) {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("short"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		}, want{200, "short", true}},
		{"touched", func(t *testing.T, p string) {
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(p, later, later); err != nil {
				t.Fatal(err)
			}
		}, want{200, old, true}},
		{"replaced by rename, same size and mtime", func(t *testing.T, p string) {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			tmp := filepath.Join(filepath.Dir(p), ".data.tmp")
			if err := os.WriteFile(tmp, []byte("ABCDEFGHIJKLMNOPQRST"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(tmp, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		}, want{200, "ABCDEFGHIJKLMNOPQRST", false}},
		{"deleted", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}, want{404, "", false}},
		{"replaced by a directory", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}, want{404, "", false}},
		{"replaced by a FIFO", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, want{404, "", false}},
		{"replaced by a link out of the root", func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("../outside/secret.txt", p); err != nil {
				t.Fatal(err)
			}
		}, want{404, "", false}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := tree(t)
			dir := realDir(t, root)
			p := filepath.Join(root, "data.txt")
			h := newHandler(t, root, "/static", Options{FileCacheValid: 20 * time.Millisecond})
			w := serve(t, h, "GET", "/static/data.txt")
			oldTag := w.Header().Get("Etag")
			if w.Code != 200 || w.Body.String() != old || entry(h, "data.txt") == nil {
				t.Fatalf("before the change: %d %q, cached %v", w.Code, w.Body.String(), entry(h, "data.txt") != nil)
			}
			c.change(t, p)
			eventually(t, "the change served", func() bool {
				w = serve(t, h, "GET", "/static/data.txt")
				if w.Code != c.want.code {
					return false
				}
				return c.want.code != 200 || w.Body.String() == c.want.body && (w.Header().Get("Etag") != oldTag) == c.want.newTag
			})
			if strings.Contains(w.Body.String(), secret) {
				t.Fatal("served the file outside the root")
			}
			if c.want.code == 200 {
				tag := statTag(t, p, "")
				if got := w.Header().Get("Etag"); got != tag {
					t.Errorf("ETag %s, want the new file's %s", got, tag)
				}
				if got := w.Header().Get("Content-Length"); got != strconv.Itoa(len(c.want.body)) {
					t.Errorf("Content-Length %s, want %d", got, len(c.want.body))
				}
			}
			fds := filesUnder(t, dir)
			if d := deleted(fds); len(d) != 0 {
				t.Errorf("the replaced file is still open: %q", d)
			}
			if len(fds) > 1 {
				t.Errorf("open under the root: %q, want at most data.txt", fds)
			}
		})
	}
}

// TestFileCacheNegativeSibling checks that the absence of a precompressed
// sibling is remembered (an entry with no file, no descriptor) within
// FileCacheValid, and that a sibling created later is served with its
// Content-Encoding once the validity has passed, and dropped again once
// removed.
func TestFileCacheNegativeSibling(t *testing.T) {
	const css, cssBR = "body{color:red}\n", "BR-BYTES-style.css"
	for _, c := range []struct {
		name  string
		valid time.Duration
	}{
		{"remembered", time.Hour},
		{"noticed", 20 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := tree(t)
			dir := realDir(t, root)
			h := newHandler(t, root, "/static", Options{FileCacheValid: c.valid})
			w := serve(t, h, "GET", "/static/style.css", "Accept-Encoding: br")
			if w.Code != 200 || w.Body.String() != css || w.Header().Get("Content-Encoding") != "" {
				t.Fatalf("no br sibling: %d %q %q", w.Code, w.Body.String(), w.Header().Get("Content-Encoding"))
			}
			neg := entry(h, "style.css.br\x00")
			if neg == nil || neg.f != nil {
				t.Fatalf("style.css.br: entry %+v, want a negative entry", neg)
			}
			if fds := filesUnder(t, dir); len(fds) != 1 || !strings.HasSuffix(fds[0], "/style.css") {
				t.Errorf("open under the root: %q, want style.css only", fds)
			}
			if err := os.WriteFile(filepath.Join(root, "style.css.br"), []byte(cssBR), 0o644); err != nil {
				t.Fatal(err)
			}
			if c.valid == time.Hour {
				w := serve(t, h, "GET", "/static/style.css", "Accept-Encoding: br")
				if w.Body.String() != css || entry(h, "style.css.br\x00") != neg {
					t.Errorf("within FileCacheValid: %q; the negative entry was not used", w.Body.String())
				}
				return
			}
			eventually(t, "the new sibling served", func() bool {
				w = serve(t, h, "GET", "/static/style.css", "Accept-Encoding: br")
				return w.Body.String() == cssBR
			})
			tag := statTag(t, filepath.Join(root, "style.css.br"), "br")
			if w.Code != 200 || w.Header().Get("Content-Encoding") != "br" || w.Header().Get("Etag") != tag ||
				w.Header().Get("Content-Length") != strconv.Itoa(len(cssBR)) || w.Header().Get("Content-Type") != "text/css; charset=utf-8" {
				t.Errorf("sibling: %d %v", w.Code, w.Header())
			}
			if err := os.Remove(filepath.Join(root, "style.css.br")); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the removed sibling dropped", func() bool {
				w = serve(t, h, "GET", "/static/style.css", "Accept-Encoding: br")
				return w.Body.String() == css && w.Header().Get("Content-Encoding") == ""
			})
			if d := deleted(filesUnder(t, dir)); len(d) != 0 {
				t.Errorf("the removed sibling is still open: %q", d)
			}
		})
	}
}

// TestFileCacheIndex checks the index file of a directory request, which
// is opened again each time and put in the cache over the previous entry:
// the replaced entry's descriptor is closed, so one stays open, and a
// request naming the index file is served from that entry.
func TestFileCacheIndex(t *testing.T) {
	root := tree(t)
	dir := realDir(t, root)
	h := newHandler(t, root, "/static", Options{Index: "index.html", FileCacheValid: time.Hour})
	index := filepath.Join(dir, "sub", "index.html")
	for i := range 3 {
		if w := serve(t, h, "GET", "/static/sub/"); w.Code != 200 || w.Body.String() != "<h1>sub</h1>" {
			t.Fatalf("request %d: %d %q", i, w.Code, w.Body.String())
		}
		if fds := filesUnder(t, dir); len(fds) != 1 || fds[0] != index {
			t.Errorf("request %d: open under the root: %q, want sub/index.html once", i, fds)
		}
	}
	e := entry(h, "sub/index.html")
	if e == nil {
		t.Fatal("the index file is not cached")
	}
	w := serve(t, h, "GET", "/static/sub/index.html")
	if w.Code != 200 || w.Body.String() != "<h1>sub</h1>" || entry(h, "sub/index.html") != e {
		t.Errorf("by name: %d %q, entry reused %v", w.Code, w.Body.String(), entry(h, "sub/index.html") == e)
	}
}

// TestFileCacheSize checks the FileCacheSize bound: with room for 3
// entries and 10 files requested in turn (some with a br sibling lookup,
// some ranges), the cache never holds more than 3 entries nor keeps more
// than 3 files open, and every response is right.
func TestFileCacheSize(t *testing.T) {
	root := t.TempDir()
	dir := realDir(t, root)
	content := func(i int) string { return strings.Repeat(fmt.Sprintf("file %d;", i), 10+i) }
	for i := range 10 {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("f%d.txt", i)), []byte(content(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := newHandler(t, root, "/", Options{FileCacheSize: 3, FileCacheValid: time.Hour})
	for round := range 3 {
		for i := range 10 {
			target := fmt.Sprintf("/f%d.txt", i)
			var w *httptest.ResponseRecorder
			want, code := content(i), 200
			switch (round + i) % 3 {
			case 0:
				w = serve(t, h, "GET", target)
			case 1:
				w = serve(t, h, "GET", target, "Accept-Encoding: br")
			case 2:
				w = serve(t, h, "GET", target, "Range: bytes=4-20")
				want, code = want[4:21], 206
			}
			if w.Code != code || w.Body.String() != want {
				t.Errorf("round %d %s: %d %q", round, target, w.Code, w.Body.String())
			}
			if n := h.cache.len(); n > 3 {
				t.Errorf("round %d %s: %d entries", round, target, n)
			}
			if fds := filesUnder(t, dir); len(fds) > 3 {
				t.Errorf("round %d %s: %d files open: %q", round, target, len(fds), fds)
			}
		}
	}
	if n := h.cache.len(); n != 3 {
		t.Errorf("%d entries at the end, want a full cache of 3", n)
	}
}

// TestFileCacheOptions checks how FileCacheSize and FileCacheValid map
// to the cache: 0 means the defaults, negative size turns it off.
func TestFileCacheOptions(t *testing.T) {
	root := t.TempDir()
	for _, c := range []struct {
		size      int
		valid     time.Duration
		off       bool
		wantMax   int
		wantValid time.Duration
	}{
		{0, 0, false, DefaultFileCacheSize, DefaultFileCacheValid},
		{5, 20 * time.Millisecond, false, 5, 20 * time.Millisecond},
		{1, -time.Second, false, 1, DefaultFileCacheValid},
		{-1, 0, true, 0, 0},
	} {
		h := newHandler(t, root, "/", Options{FileCacheSize: c.size, FileCacheValid: c.valid})
		if c.off {
			if h.cache != nil {
				t.Errorf("size %d: cache on", c.size)
			}
			continue
		}
		if h.cache == nil || h.cache.max != c.wantMax || time.Duration(h.cache.valid) != c.wantValid {
			t.Errorf("size %d valid %v: cache %+v, want max %d valid %v", c.size, c.valid, h.cache, c.wantMax, c.wantValid)
		}
	}
}

// TestFileCacheOff checks that with a negative FileCacheSize nothing is
// cached or kept open, responses are still right (plain, precompressed,
// range, conditional, HEAD, missing) and a rewrite shows at once.
func TestFileCacheOff(t *testing.T) {
	root := tree(t)
	dir := realDir(t, root)
	h := newHandler(t, root, "/static", Options{FileCacheSize: -1})
	if h.cache != nil {
		t.Fatal("cache on with a negative FileCacheSize")
	}
	appTag := statTag(t, filepath.Join(root, "app.js"), "")
	for _, c := range []struct {
		method, target string
		headers        []string
		code           int
		body, enc      string
	}{
		{"GET", "/static/app.js", nil, 200, appJS, ""},
		{"GET", "/static/app.js", []string{"Accept-Encoding: br"}, 200, appBR, "br"},
		{"GET", "/static/app.js", []string{"Accept-Encoding: br", "Range: bytes=0-5"}, 206, appBR[:6], "br"},
		{"GET", "/static/app.js", []string{"If-None-Match: " + appTag}, 304, "", ""},
		{"HEAD", "/static/app.js", nil, 200, "", ""},
		{"GET", "/static/style.css", []string{"Accept-Encoding: br"}, 200, "body{color:red}\n", ""},
		{"GET", "/static/nope.txt", nil, 404, "404 Not Found\n", ""},
	} {
		for range 2 {
			w := serve(t, h, c.method, c.target, c.headers...)
			if w.Code != c.code || w.Body.String() != c.body || w.Header().Get("Content-Encoding") != c.enc {
				t.Errorf("%s %s %q: %d %q %q", c.method, c.target, c.headers, w.Code, w.Body.String(), w.Header().Get("Content-Encoding"))
			}
			if fds := filesUnder(t, dir); len(fds) != 0 {
				t.Errorf("%s %s: files left open: %q", c.method, c.target, fds)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(root, "data.txt"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if w := serve(t, h, "GET", "/static/data.txt"); w.Body.String() != "changed" {
		t.Errorf("after a rewrite: %q", w.Body.String())
	}
}

// TestFileCacheClose checks that Close releases every descriptor under the
// root (the cached files and the root itself), except a file a request
// still uses, which closes when that request releases it.
func TestFileCacheClose(t *testing.T) {
	root := tree(t)
	dir := realDir(t, root)
	h, err := New(root, "/static", Options{FileCacheValid: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ target, ae string }{
		{"/static/app.js", "br"}, {"/static/app.js", "gzip"}, {"/static/data.txt", ""},
		{"/static/style.css", "br, gzip"}, {"/static/sub/page.txt", ""},
	} {
		if w := serve(t, h, "GET", r.target, "Accept-Encoding: "+r.ae); w.Code != 200 {
			t.Fatalf("%s: %d", r.target, w.Code)
		}
	}
	before := fdsUnder(t, dir)
	if len(before) < 6 { // the root, app.js and two siblings, data.txt, style.css...
		t.Fatalf("open under the root before Close: %q", before)
	}
	inUse := h.cache.get("data.txt", func() (fs.FileInfo, error) { return h.stat("data.txt") })
	if inUse == nil {
		t.Fatal("data.txt not cached")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if n := h.cache.len(); n != 0 {
		t.Errorf("%d entries after Close", n)
	}
	after := fdsUnder(t, dir)
	if len(after) != 1 || after[0] != filepath.Join(dir, "data.txt") {
		t.Errorf("open after Close: %q, want only data.txt, still in use", after)
	}
	if b, err := io.ReadAll(inUse.content()); err != nil || string(b) != "0123456789abcdefghij" {
		t.Errorf("the file in use after Close: %q %v", b, err)
	}
	inUse.release()
	if fds := fdsUnder(t, dir); len(fds) != 0 {
		t.Errorf("open after the last release: %q", fds)
	}
}

// TestFileCacheSweep checks sweep directly: entries checked before the
// cutoff are dropped and the others kept; a dropped file a request still
// holds stays open and readable until that request releases it, and the
// next request opens it again.
func TestFileCacheSweep(t *testing.T) {
	root := tree(t)
	dir := realDir(t, root)
	h := newHandler(t, root, "/static", Options{FileCacheValid: time.Hour})
	for _, name := range []string{"data.txt", "noext", "sub/page.txt"} {
		if w := serve(t, h, "GET", "/static/"+name); w.Code != 200 {
			t.Fatalf("%s: %d", name, w.Code)
		}
	}
	c := h.cache
	c.sweep(c.now() - int64(time.Hour))
	if c.len() != 3 {
		t.Fatalf("a sweep with an old cutoff dropped entries: %d left", c.len())
	}
	entry(h, "noext").checked.Store(-int64(time.Hour)) // inactive for an hour
	c.sweep(c.now() - int64(fileCacheInactive))
	if c.len() != 2 || entry(h, "noext") != nil {
		t.Fatalf("the inactive entry was not swept: %d entries", c.len())
	}
	if fds := filesUnder(t, dir); len(fds) != 2 {
		t.Errorf("open after sweeping one: %q", fds)
	}

	held := c.get("data.txt", func() (fs.FileInfo, error) { return h.stat("data.txt") })
	if held == nil {
		t.Fatal("data.txt not cached")
	}
	c.sweep(c.now() + 1) // everything
	if c.len() != 0 {
		t.Fatalf("%d entries after sweeping all", c.len())
	}
	fds := filesUnder(t, dir)
	if len(fds) != 1 || fds[0] != filepath.Join(dir, "data.txt") {
		t.Fatalf("open after sweeping all: %q, want data.txt, still held", fds)
	}
	if b, err := io.ReadAll(held.content()); err != nil || string(b) != "0123456789abcdefghij" {
		t.Errorf("the held file after the sweep: %q %v", b, err)
	}
	held.release()
	if fds := filesUnder(t, dir); len(fds) != 0 {
		t.Errorf("open after the release: %q", fds)
	}
	if w := serve(t, h, "GET", "/static/data.txt"); w.Code != 200 || w.Body.String() != "0123456789abcdefghij" || c.len() != 1 {
		t.Errorf("after the sweep: %d %q, %d entries", w.Code, w.Body.String(), c.len())
	}
}

// TestFileCacheSweepLoop checks that the sweep goroutine runs every
// period and closes the entries not used for fileCacheInactive, keeping
// the others, and that close stops it and releases the rest.
func TestFileCacheSweepLoop(t *testing.T) {
	root := t.TempDir()
	dir := realDir(t, root)
	c := newFileCache(10, time.Second, 2*time.Millisecond)
	for _, name := range []string{"old", "new"} {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		e, err := newCachedFile(f, fi, fileMeta{})
		if err != nil {
			t.Fatal(err)
		}
		c.put(name, e).release()
		if name == "old" {
			e.checked.Store(c.now() - int64(2*fileCacheInactive))
		}
	}
	eventually(t, "the inactive entry swept", func() bool { return c.len() == 1 })
	c.mu.RLock()
	kept := c.entries["new"] != nil
	c.mu.RUnlock()
	if !kept {
		t.Error("the active entry was swept")
	}
	if fds := filesUnder(t, dir); len(fds) != 1 || fds[0] != filepath.Join(dir, "new") {
		t.Errorf("open after the sweep: %q", fds)
	}
	c.close()
	if fds := filesUnder(t, dir); len(fds) != 0 || c.len() != 0 {
		t.Errorf("after close: open %q, %d entries", fds, c.len())
	}
}

// TestFileCacheGet checks get's decision when an entry is due for a check
// (FileCacheValid 0: every time), for a file entry and a negative entry,
// against what stat reports: the same file keeps the entry; another
// inode, size or time, a directory or an error drops it (nil, and its
// descriptor closed); a negative entry stays while the name is missing
// and goes once it exists. Within FileCacheValid stat is not called.
func TestFileCacheGet(t *testing.T) {
	root := t.TempDir()
	dir := realDir(t, root)
	write := func(name, body string, mtime time.Time) fs.FileInfo {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	t0 := time.Unix(1.7e9, 0)
	orig := write("file", "twenty bytes of text", t0)
	other := write("other", "twenty bytes of text", t0) // another inode
	sub := filepath.Join(root, "dir")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	dirFI, err := os.Stat(sub)
	if err != nil {
		t.Fatal(err)
	}
	// changed returns the FileInfo of "file" after change, then puts the
	// file back: the same inode with another size or time.
	changed := func(change func(p string) error) fs.FileInfo {
		p := filepath.Join(root, "file")
		if err := change(p); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		write("file", "twenty bytes of text", t0)
		return fi
	}
	touched := changed(func(p string) error { return os.Chtimes(p, t0.Add(time.Second), t0.Add(time.Second)) })
	shorter := changed(func(p string) error {
		if err := os.Truncate(p, 10); err != nil {
			return err
		}
		return os.Chtimes(p, t0, t0)
	})
	missing := fmt.Errorf("stat: %w", fs.ErrNotExist)

	for _, c := range []struct {
		name     string
		negative bool
		fi       fs.FileInfo
		err      error
		keep     bool
	}{
		{"same file", false, orig, nil, true},
		{"another inode", false, other, nil, false},
		{"another size", false, shorter, nil, false},
		{"another time", false, touched, nil, false},
		{"a directory", false, dirFI, nil, false},
		{"missing", false, nil, missing, false},
		{"negative, still missing", true, nil, missing, true},
		{"negative, now a directory", true, dirFI, nil, true},
		{"negative, now a file", true, orig, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cache := newFileCache(10, 0, time.Hour)
			defer cache.close()
			e := &cachedFile{}
			if !c.negative {
				f, err := os.Open(filepath.Join(root, "file"))
				if err != nil {
					t.Fatal(err)
				}
				if e, err = newCachedFile(f, orig, fileMeta{}); err != nil {
					t.Fatal(err)
				}
			}
			cache.put("key", e).release()
			got := cache.get("key", func() (fs.FileInfo, error) { return c.fi, c.err })
			if (got == e) != c.keep || (got != nil && got != e) {
				t.Fatalf("get returned %p, entry %p; want kept %v", got, e, c.keep)
			}
			if got != nil {
				got.release()
			}
			if (cache.len() == 1) != c.keep {
				t.Errorf("%d entries, want kept %v", cache.len(), c.keep)
			}
			wantOpen := 0
			if !c.negative && c.keep {
				wantOpen = 1
			}
			if open := filesUnder(t, dir); len(open) != wantOpen {
				t.Errorf("files open: %q, want %d", open, wantOpen)
			}
		})
	}

	// Within FileCacheValid, no stat.
	cache := newFileCache(10, time.Hour, time.Hour)
	defer cache.close()
	e := cache.put("key", &cachedFile{})
	e.release()
	calls := 0
	for range 3 {
		got := cache.get("key", func() (fs.FileInfo, error) { calls++; return nil, missing })
		if got != e {
			t.Fatal("the entry was not returned")
		}
		got.release()
	}
	if calls != 0 {
		t.Errorf("stat called %d times within FileCacheValid", calls)
	}
	// Due for a check: one stat, which starts the validity again.
	e.checked.Store(cache.now() - int64(2*time.Hour))
	for range 3 {
		got := cache.get("key", func() (fs.FileInfo, error) { calls++; return nil, missing })
		if got != e {
			t.Fatal("the negative entry was dropped")
		}
		got.release()
	}
	if calls != 1 {
		t.Errorf("stat called %d times for a due entry, want once", calls)
	}
}

// TestFileCacheConcurrent sends 32 goroutines x 50 requests through a
// real server (bodies going out with filerange.Send) for a mix of files,
// precompressed siblings, ranges and If-None-Match, while another
// goroutine replaces one of the files by rename, again and again, with a
// small FileCacheValid; once with the default size and once with room for
// 4 entries, so that entries are evicted while in use. Under -race there
// must be no data race; every response for the changing file must be
// exactly one version of it, matching its ETag (not a mix); afterwards
// the last version is served and, after Close, no descriptor is left open
// under the root (no reference leaked).
func TestFileCacheConcurrent(t *testing.T) {
	for _, size := range []int{0, 4} {
		t.Run(fmt.Sprintf("size %d", size), func(t *testing.T) {
			testFileCacheConcurrent(t, size)
		})
	}
}

func testFileCacheConcurrent(t *testing.T, size int) {
	root := tree(t)
	dir := realDir(t, root)
	big := make([]byte, 64<<10)
	for i := 0; i < len(big); i += 4 {
		binary.BigEndian.PutUint32(big[i:], uint32(i))
	}
	if err := os.WriteFile(filepath.Join(root, "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	bigTag := statTag(t, filepath.Join(root, "big.bin"), "")

	// Versions of hot.txt: each with its own size and time, so its own
	// ETag; written aside and renamed over, as a deploy does (an in-place
	// rewrite can be read half-written with or without a cache).
	var mu sync.Mutex
	versions := map[string]string{} // ETag -> content
	served := map[string]bool{}     // ETags of the hot.txt bodies served
	hot := filepath.Join(root, "hot.txt")
	base := time.Unix(1.6e9, 0)
	writeVersion := func(k int) string {
		body := strings.Repeat(fmt.Sprintf("hot version %05d\n", k), 3+k%5)
		tmp := filepath.Join(root, ".hot.tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Error(err)
			return ""
		}
		mt := base.Add(time.Duration(k) * time.Second)
		if err := os.Chtimes(tmp, mt, mt); err != nil {
			t.Error(err)
			return ""
		}
		fi, err := os.Stat(tmp)
		if err != nil {
			t.Error(err)
			return ""
		}
		tag := etag(fi, "")
		mu.Lock()
		versions[tag] = body
		mu.Unlock()
		if err := os.Rename(tmp, hot); err != nil {
			t.Error(err)
		}
		return body
	}
	firstTag := ""
	writeVersion(0)
	for tag := range versions {
		firstTag = tag
	}

	h, err := New(root, "/static", Options{FileCacheSize: size, FileCacheValid: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			h.Close()
		}
	})
	srv := httptest.NewUnstartedServer(h)
	rl := &recordListener{Listener: srv.Listener}
	srv.Listener = rl
	srv.Start()
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 32, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	// hotBody checks a hot.txt body against the version its ETag names.
	hotBody := func(what string, resp *http.Response, body []byte, from, to int) {
		tag := resp.Header.Get("Etag")
		mu.Lock()
		v, ok := versions[tag]
		mu.Unlock()
		if !ok {
			t.Errorf("%s: unknown ETag %s", what, tag)
			return
		}
		if to < 0 {
			to = len(v)
		}
		if string(body) != v[from:to] {
			t.Errorf("%s: body %q is not bytes %d-%d of the version %s %q", what, body, from, to, tag, v)
		}
		mu.Lock()
		served[tag] = true
		mu.Unlock()
		if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
			t.Errorf("%s: Content-Length %s for %d bytes", what, cl, len(body))
		}
	}
	type request struct {
		method, path string
		headers      []string
		check        func(what string, resp *http.Response, body []byte)
	}
	exact := func(code int, want, enc string) func(string, *http.Response, []byte) {
		return func(what string, resp *http.Response, body []byte) {
			if resp.StatusCode != code || string(body) != want || resp.Header.Get("Content-Encoding") != enc {
				t.Errorf("%s: %d %q %q, want %d %q %q", what, resp.StatusCode, body, resp.Header.Get("Content-Encoding"), code, want, enc)
			}
		}
	}
	requests := []request{
		{"GET", "/static/hot.txt", nil, func(what string, resp *http.Response, body []byte) {
			if resp.StatusCode != 200 {
				t.Errorf("%s: %d", what, resp.StatusCode)
				return
			}
			hotBody(what, resp, body, 0, -1)
		}},
		{"GET", "/static/hot.txt", []string{"Range: bytes=5-50"}, func(what string, resp *http.Response, body []byte) {
			if resp.StatusCode != 206 {
				t.Errorf("%s: %d", what, resp.StatusCode)
				return
			}
			hotBody(what, resp, body, 5, 51)
		}},
		{"GET", "/static/hot.txt", []string{"If-None-Match: " + firstTag}, func(what string, resp *http.Response, body []byte) {
			switch {
			case resp.StatusCode == 304:
				if tag := resp.Header.Get("Etag"); tag != firstTag || len(body) != 0 {
					t.Errorf("%s: 304 with ETag %s, %d bytes", what, tag, len(body))
				}
			case resp.StatusCode == 200 && resp.Header.Get("Etag") != firstTag:
				hotBody(what, resp, body, 0, -1)
			default:
				t.Errorf("%s: %d ETag %s", what, resp.StatusCode, resp.Header.Get("Etag"))
			}
		}},
		{"GET", "/static/hot.txt", []string{"Accept-Encoding: br, gzip"}, func(what string, resp *http.Response, body []byte) {
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" {
				t.Errorf("%s: %d %q", what, resp.StatusCode, resp.Header.Get("Content-Encoding"))
				return
			}
			hotBody(what, resp, body, 0, -1)
		}},
		{"GET", "/static/app.js", []string{"Accept-Encoding: br"}, exact(200, appBR, "br")},
		{"GET", "/static/app.js", []string{"Accept-Encoding: gzip", "Range: bytes=2-6"}, exact(206, appGZ[2:7], "gzip")},
		{"GET", "/static/app.js", nil, exact(200, appJS, "")},
		{"GET", "/static/big.bin", nil, exact(200, string(big), "")},
		{"GET", "/static/big.bin", []string{"Range: bytes=1000-40999"}, exact(206, string(big[1000:41000]), "")},
		{"GET", "/static/big.bin", []string{"If-None-Match: " + bigTag}, exact(304, "", "")},
		{"HEAD", "/static/data.txt", nil, func(what string, resp *http.Response, body []byte) {
			if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != "20" || len(body) != 0 {
				t.Errorf("%s: %d %q %d bytes", what, resp.StatusCode, resp.Header.Get("Content-Length"), len(body))
			}
		}},
		{"GET", "/static/sub/page.txt", nil, exact(200, "page", "")},
		{"GET", "/static/nope.txt", nil, exact(404, "404 Not Found\n", "")},
	}

	stop := make(chan struct{})
	rewriterDone := make(chan string)
	go func() {
		last := ""
		for k := 1; ; k++ {
			select {
			case <-stop:
				rewriterDone <- last
				return
			default:
			}
			last = writeVersion(k)
			time.Sleep(time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 50 {
				rq := requests[(g*7+i)%len(requests)]
				req, err := http.NewRequest(rq.method, srv.URL+rq.path, nil)
				if err != nil {
					t.Error(err)
					return
				}
				for _, hl := range rq.headers {
					k, v, _ := strings.Cut(hl, ": ")
					req.Header.Set(k, v)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("%s %s: %v", rq.method, rq.path, err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Errorf("%s %s: reading the body: %v", rq.method, rq.path, err)
					return
				}
				rq.check(fmt.Sprintf("%s %s %q", rq.method, rq.path, rq.headers), resp, body)
			}
		})
	}
	wg.Wait()
	close(stop)
	last := <-rewriterDone
	mu.Lock()
	written, seen := len(versions), len(served)
	mu.Unlock()
	t.Logf("hot.txt: %d versions written, %d served", written, seen)
	if seen < 2 {
		t.Errorf("only %d version of hot.txt served while %d were written: changes not seen", seen, written)
	}

	eventually(t, "the last version served", func() bool {
		resp, err := client.Get(srv.URL + "/static/hot.txt")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b) == last
	})
	rl.mu.Lock()
	sent := strings.Join(rl.seen, " ")
	rl.mu.Unlock()
	if !strings.Contains(sent, "filerange.Range") || strings.Contains(sent, "not sent") {
		t.Errorf("bodies did not all go out with filerange.Send: %.200s", sent)
	}

	srv.Close()
	closed = true
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if fds := fdsUnder(t, dir); len(fds) != 0 {
		t.Errorf("open under the root after Close: %q", fds)
	}
}

// TestFileCacheSiblingKey checks that a precompressed sibling looked up
// for app.js and the file app.js.br requested by name are two cache
// entries: in either order, app.js with br gets Content-Encoding and the
// script's type, app.js.br by name gets neither, and a sibling remembered
// as missing never turns a request for it by name into a 200.
func TestFileCacheSiblingKey(t *testing.T) {
	root := tree(t)
	for _, order := range [][]string{{"by name", "sibling"}, {"sibling", "by name"}} {
		h := newHandler(t, root, "/static", Options{})
		for _, step := range order {
			if step == "by name" {
				w := serve(t, h, "GET", "/static/app.js.br")
				if w.Code != 200 || w.Body.String() != appBR || w.Header().Get("Content-Encoding") != "" ||
					w.Header().Get("Content-Type") == "text/javascript; charset=utf-8" {
					t.Errorf("%v: app.js.br by name: %d, %v", order, w.Code, w.Header())
				}
				continue
			}
			w := serve(t, h, "GET", "/static/app.js", "Accept-Encoding: br")
			if w.Code != 200 || w.Body.String() != appBR || w.Header().Get("Content-Encoding") != "br" ||
				w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" {
				t.Errorf("%v: app.js with br: %d, %v", order, w.Code, w.Header())
			}
		}
	}
	h := newHandler(t, root, "/static", Options{})
	if w := serve(t, h, "GET", "/static/data.txt", "Accept-Encoding: br"); w.Code != 200 || w.Header().Get("Content-Encoding") != "" {
		t.Fatalf("data.txt with br: %d, %v", w.Code, w.Header())
	}
	if w := serve(t, h, "GET", "/static/data.txt.br"); w.Code != 404 {
		t.Errorf("data.txt.br after its absence was cached: %d %q, want 404", w.Code, w.Body.String())
	}
}

// TestFileCacheCloseTwice checks that Close may be called again and that
// files opened by requests after Close are not kept open.
func TestFileCacheCloseTwice(t *testing.T) {
	root := tree(t)
	dir := realDir(t, root)
	h, err := New(root, "/static", Options{AllowSymlinksOutside: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	h.Close() // a second Close must not panic
	if w := serve(t, h, "GET", "/static/app.js", "Accept-Encoding: br"); w.Code != 200 {
		t.Fatalf("after Close: %d", w.Code)
	}
	if fds := filesUnder(t, dir); len(fds) != 0 {
		t.Errorf("open after Close and one request: %q", fds)
	}
}

// len returns the number of entries (for the tests).
func (c *fileCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
