package static

import (
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestServe(t *testing.T) {
	root := tree(t)
	h := newHandler(t, root, "/static", Options{})
	appFI, err := os.Stat(filepath.Join(root, "app.js"))
	if err != nil {
		t.Fatal(err)
	}
	appTag := etag(appFI, "")

	type want struct {
		code    int
		body    *string // nil: not checked
		headers map[string]string
		absent  []string
	}
	str := func(s string) *string { return &s }
	tests := []struct {
		name    string
		method  string
		target  string
		headers []string
		want    want
	}{
		{"plain", "GET", "/static/app.js", nil, want{200, str(appJS), map[string]string{
			"Content-Type": "text/javascript; charset=utf-8", "X-Content-Type-Options": "nosniff",
			"Etag": appTag, "Vary": "Accept-Encoding", "Accept-Ranges": "bytes",
			"Content-Length": strconv.Itoa(len(appJS)),
			"Last-Modified":  appFI.ModTime().UTC().Format(http.TimeFormat),
		}, []string{"Content-Encoding", "Cache-Control"}}},
		{"browser gets br", "GET", "/static/app.js", []string{"Accept-Encoding: gzip, deflate, br, zstd"}, want{200, str(appBR), map[string]string{
			"Content-Encoding": "br", "Vary": "Accept-Encoding", "Content-Type": "text/javascript; charset=utf-8",
			"Content-Length": strconv.Itoa(len(appBR)),
		}, nil}},
		{"gzip only", "GET", "/static/app.js", []string{"Accept-Encoding: gzip"}, want{200, str(appGZ), map[string]string{"Content-Encoding": "gzip"}, nil}},
		{"x-gzip", "GET", "/static/app.js", []string{"Accept-Encoding: x-gzip"}, want{200, str(appGZ), map[string]string{"Content-Encoding": "gzip"}, nil}},
		{"case", "GET", "/static/app.js", []string{"Accept-Encoding: GZIP"}, want{200, str(appGZ), map[string]string{"Content-Encoding": "gzip"}, nil}},
		{"q picks gzip", "GET", "/static/app.js", []string{"Accept-Encoding: br;q=0.5, gzip;q=0.8"}, want{200, str(appGZ), nil, nil}},
		{"zstd before gzip", "GET", "/static/app.js", []string{"Accept-Encoding: gzip, zstd"}, want{200, str(appZST), map[string]string{"Content-Encoding": "zstd"}, nil}},
		{"q=0 excludes", "GET", "/static/app.js", []string{"Accept-Encoding: br;q=0, gzip"}, want{200, str(appGZ), nil, nil}},
		{"wildcard", "GET", "/static/app.js", []string{"Accept-Encoding: br;q=0, *"}, want{200, str(appZST), nil, nil}},
		{"wildcard q=0", "GET", "/static/app.js", []string{"Accept-Encoding: *;q=0"}, want{200, str(appJS), map[string]string{"Vary": "Accept-Encoding"}, []string{"Content-Encoding"}}},
		{"identity preferred", "GET", "/static/app.js", []string{"Accept-Encoding: gzip;q=0.5, identity"}, want{200, str(appJS), nil, []string{"Content-Encoding"}}},
		{"bad q ignored", "GET", "/static/app.js", []string{"Accept-Encoding: br;q=2, gzip;q=0.1"}, want{200, str(appGZ), nil, nil}},
		{"only deflate", "GET", "/static/app.js", []string{"Accept-Encoding: deflate"}, want{200, str(appJS), map[string]string{"Vary": "Accept-Encoding"}, []string{"Content-Encoding"}}},
		{"sibling not accepted still varies", "GET", "/static/style.css", []string{"Accept-Encoding: br"}, want{200, str("body{color:red}\n"), map[string]string{"Vary": "Accept-Encoding", "Content-Type": "text/css; charset=utf-8"}, []string{"Content-Encoding"}}},
		{"css gz", "GET", "/static/style.css", []string{"Accept-Encoding: br, gzip"}, want{200, str(styleGZ), map[string]string{"Content-Encoding": "gzip"}, nil}},
		{"no siblings still varies", "GET", "/static/data.txt", []string{"Accept-Encoding: br, gzip"}, want{200, str("0123456789abcdefghij"), map[string]string{"Content-Type": "text/plain; charset=utf-8", "Vary": "Accept-Encoding"}, []string{"Content-Encoding"}}},
		{"vary without accept-encoding", "GET", "/static/data.txt", nil, want{200, nil, map[string]string{"Vary": "Accept-Encoding"}, nil}},
		{"hashed immutable", "GET", "/static/" + hashed, nil, want{200, nil, map[string]string{"Cache-Control": ImmutableCacheControl}, nil}},
		{"png", "GET", "/static/img.png", nil, want{200, nil, map[string]string{"Content-Type": "image/png"}, []string{"Vary"}}},
		{"PNG upper", "GET", "/static/up.PNG", nil, want{200, nil, map[string]string{"Content-Type": "image/png"}, nil}},
		{"woff2", "GET", "/static/font.woff2", nil, want{200, nil, map[string]string{"Content-Type": "font/woff2"}, nil}},
		{"svg", "GET", "/static/icon.svg", nil, want{200, nil, map[string]string{"Content-Type": "image/svg+xml"}, nil}},
		{"no extension", "GET", "/static/noext", nil, want{200, nil, map[string]string{"Content-Type": "application/octet-stream"}, nil}},
		{"empty file", "GET", "/static/empty.txt", nil, want{200, str(""), map[string]string{"Content-Length": "0"}, nil}},
		{"empty file range", "GET", "/static/empty.txt", []string{"Range: bytes=0-5"}, want{200, str(""), nil, nil}},
		{"merged slashes", "GET", "/static//sub//page.txt", nil, want{200, str("page"), nil, nil}},
		{"query ignored", "GET", "/static/data.txt?v=1", nil, want{200, str("0123456789abcdefghij"), nil, nil}},
		{"missing", "GET", "/static/nope.js", nil, want{404, str("404 Not Found\n"), nil, []string{"Etag", "Cache-Control", "Last-Modified"}}},
		{"file with slash", "GET", "/static/app.js/", nil, want{404, nil, nil, nil}},
		{"sibling without original", "GET", "/static/only", []string{"Accept-Encoding: gzip"}, want{404, nil, nil, nil}},
		{"outside prefix", "GET", "/staticx/app.js", nil, want{404, nil, nil, nil}},
		{"post", "POST", "/static/app.js", nil, want{405, nil, map[string]string{"Allow": "GET, HEAD"}, nil}},
		{"options", "OPTIONS", "/static/app.js", nil, want{405, nil, map[string]string{"Allow": "GET, HEAD"}, nil}},
		{"dotfile", "GET", "/static/.env", nil, want{404, nil, nil, nil}},
		{"dot dir", "GET", "/static/list/.hidden", nil, want{404, nil, nil, nil}},
		{"well-known", "GET", "/static/.well-known/acme.txt", nil, want{200, str("token"), nil, nil}},
		{"fifo", "GET", "/static/fifo", nil, want{404, nil, nil, nil}},
		{"symlink loop", "GET", "/static/link-loop", nil, want{404, nil, nil, nil}},
		{"symlink inside", "GET", "/static/link-inside", nil, want{200, str(appJS), nil, nil}},
		// os.Root resolves links relative to the link only: an absolute
		// target is refused even when it names a file inside the root.
		{"absolute symlink inside", "GET", "/static/link-abs-inside", nil, want{404, nil, nil, nil}},
		{"symlink dir inside", "GET", "/static/link-dir/page.txt", nil, want{200, str("page"), nil, nil}},
		{"dir no index", "GET", "/static/sub/", nil, want{404, nil, nil, nil}},
		{"dir no slash no index", "GET", "/static/sub", nil, want{404, nil, nil, nil}},
		{"root dir", "GET", "/static/", nil, want{404, nil, nil, nil}},
		{"prefix only", "GET", "/static", nil, want{404, nil, nil, nil}},
		{"304 etag", "GET", "/static/app.js", []string{"If-None-Match: " + appTag}, want{304, str(""), map[string]string{"Etag": appTag, "Vary": "Accept-Encoding"}, []string{"Content-Length", "Content-Type"}}},
		{"304 etag list", "GET", "/static/app.js", []string{`If-None-Match: "x", ` + appTag}, want{304, nil, nil, nil}},
		{"304 star", "GET", "/static/app.js", []string{"If-None-Match: *"}, want{304, nil, nil, nil}},
		{"200 other etag", "GET", "/static/app.js", []string{`If-None-Match: "nope"`}, want{200, str(appJS), nil, nil}},
		{"304 ims", "GET", "/static/app.js", []string{"If-Modified-Since: " + time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, want{304, nil, nil, nil}},
		{"200 ims old", "GET", "/static/app.js", []string{"If-Modified-Since: " + time.Unix(1e9, 0).UTC().Format(http.TimeFormat)}, want{200, str(appJS), nil, nil}},
		{"inm beats ims", "GET", "/static/app.js", []string{`If-None-Match: "nope"`, "If-Modified-Since: " + time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, want{200, nil, nil, nil}},
		{"304 head", "HEAD", "/static/app.js", []string{"If-None-Match: " + appTag}, want{304, str(""), nil, nil}},
		{"variant etag is not identity etag", "GET", "/static/app.js", []string{"Accept-Encoding: br", "If-None-Match: " + appTag}, want{200, str(appBR), nil, nil}},
		{"412 if-match", "GET", "/static/app.js", []string{`If-Match: "nope"`}, want{412, str(""), nil, nil}},
		{"if-match ok", "GET", "/static/app.js", []string{"If-Match: " + appTag}, want{200, str(appJS), nil, nil}},
		{"if-match star", "GET", "/static/app.js", []string{"If-Match: *"}, want{200, nil, nil, nil}},
		{"412 ius", "GET", "/static/app.js", []string{"If-Unmodified-Since: " + time.Unix(1e9, 0).UTC().Format(http.TimeFormat)}, want{412, nil, nil, nil}},
		{"ius ok", "GET", "/static/app.js", []string{"If-Unmodified-Since: " + time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, want{200, nil, nil, nil}},
		{"range", "GET", "/static/data.txt", []string{"Range: bytes=2-5"}, want{206, str("2345"), map[string]string{"Content-Range": "bytes 2-5/20", "Content-Length": "4"}, nil}},
		{"range suffix", "GET", "/static/data.txt", []string{"Range: bytes=-3"}, want{206, str("hij"), map[string]string{"Content-Range": "bytes 17-19/20"}, nil}},
		{"range open", "GET", "/static/data.txt", []string{"Range: bytes=18-"}, want{206, str("ij"), nil, nil}},
		{"range clipped", "GET", "/static/data.txt", []string{"Range: bytes=15-100"}, want{206, str("fghij"), map[string]string{"Content-Range": "bytes 15-19/20"}, nil}},
		{"416", "GET", "/static/data.txt", []string{"Range: bytes=20-"}, want{416, nil, map[string]string{"Content-Range": "bytes */20"}, []string{"Etag", "Last-Modified"}}},
		{"bad range unit", "GET", "/static/data.txt", []string{"Range: items=0-1"}, want{416, nil, nil, nil}},
		{"if-range etag match", "GET", "/static/data.txt", []string{"Range: bytes=0-1", "If-Range: " + mustEtag(t, root, "data.txt")}, want{206, str("01"), nil, nil}},
		{"if-range etag stale", "GET", "/static/data.txt", []string{"Range: bytes=0-1", `If-Range: "old"`}, want{200, str("0123456789abcdefghij"), nil, nil}},
		{"if-range date stale", "GET", "/static/data.txt", []string{"Range: bytes=0-1", "If-Range: " + time.Unix(1e9, 0).UTC().Format(http.TimeFormat)}, want{200, nil, nil, nil}},
		{"range on variant", "GET", "/static/app.js", []string{"Accept-Encoding: br", "Range: bytes=0-5"}, want{206, str(appBR[:6]), map[string]string{
			"Content-Encoding": "br", "Content-Range": "bytes 0-5/" + strconv.Itoa(len(appBR)), "Content-Length": "6",
		}, nil}},
		{"too many ranges", "GET", "/static/data.txt", []string{"Range: bytes=0-0,1-1,2-2,3-3,4-4,5-5,6-6,7-7,8-8,9-9,10-10,11-11,12-12,13-13,14-14,15-15,16-16"}, want{200, str("0123456789abcdefghij"), nil, []string{"Content-Range"}}},
		{"head", "HEAD", "/static/app.js", nil, want{200, str(""), map[string]string{"Content-Length": strconv.Itoa(len(appJS)), "Etag": appTag}, nil}},
		{"head br", "HEAD", "/static/app.js", []string{"Accept-Encoding: br"}, want{200, str(""), map[string]string{"Content-Length": strconv.Itoa(len(appBR)), "Content-Encoding": "br"}, nil}},
	}
	// A sibling with no original: 404, the original decides.
	if err := os.WriteFile(filepath.Join(root, "only.gz"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(t, h, tt.method, tt.target, tt.headers...)
			if w.Code != tt.want.code {
				t.Fatalf("status %d, want %d; body %q", w.Code, tt.want.code, w.Body.String())
			}
			if tt.want.body != nil && w.Body.String() != *tt.want.body {
				t.Errorf("body %q, want %q", w.Body.String(), *tt.want.body)
			}
			for k, v := range tt.want.headers {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			for _, k := range tt.want.absent {
				if got, ok := w.Header()[http.CanonicalHeaderKey(k)]; ok {
					t.Errorf("%s: %q, want none", k, got)
				}
			}
		})
	}
}

func mustEtag(t *testing.T, root, name string) string {
	t.Helper()
	fi, err := os.Stat(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return etag(fi, "")
}

// TestHeadMatchesGet checks that HEAD answers with GET's headers and no body.
func TestHeadMatchesGet(t *testing.T) {
	h := newHandler(t, tree(t), "/static", Options{MaxAge: time.Hour})
	for _, c := range []struct{ target, ae, rng string }{
		{"/static/app.js", "", ""},
		{"/static/app.js", "br", ""},
		{"/static/app.js", "gzip", "bytes=1-3"},
		{"/static/data.txt", "", "bytes=0-1,5-6"},
		{"/static/" + hashed, "", ""},
	} {
		var hdr []string
		if c.ae != "" {
			hdr = append(hdr, "Accept-Encoding: "+c.ae)
		}
		if c.rng != "" {
			hdr = append(hdr, "Range: "+c.rng)
		}
		get := serve(t, h, "GET", c.target, hdr...)
		head := serve(t, h, "HEAD", c.target, hdr...)
		if head.Code != get.Code || head.Body.Len() != 0 {
			t.Errorf("%v: HEAD %d with %d body bytes, GET %d", c, head.Code, head.Body.Len(), get.Code)
		}
		g, hd := get.Header().Clone(), head.Header().Clone()
		if strings.HasPrefix(g.Get("Content-Type"), "multipart/byteranges") {
			// The boundary is random per response.
			g.Del("Content-Type")
			hd.Del("Content-Type")
		}
		if len(g) != len(hd) {
			t.Errorf("%v: GET headers %v, HEAD %v", c, g, hd)
		}
		for k := range g {
			if g.Get(k) != hd.Get(k) {
				t.Errorf("%v: %s: GET %q, HEAD %q", c, k, g.Get(k), hd.Get(k))
			}
		}
	}
}

func TestMultiRange(t *testing.T) {
	root := tree(t)
	h := newHandler(t, root, "/static", Options{})
	w := serve(t, h, "GET", "/static/data.txt", "Range: bytes=0-1,5-6")
	if w.Code != 206 {
		t.Fatalf("status %d", w.Code)
	}
	mt, params, err := mime.ParseMediaType(w.Header().Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("content type %q: %v", w.Header().Get("Content-Type"), err)
	}
	if cl := w.Header().Get("Content-Length"); cl != strconv.Itoa(w.Body.Len()) {
		t.Errorf("Content-Length %s, body %d", cl, w.Body.Len())
	}
	mr := multipart.NewReader(w.Body, params["boundary"])
	var parts []string
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, p.Header.Get("Content-Range")+"="+string(b))
		if ct := p.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("part type %q", ct)
		}
	}
	if got := strings.Join(parts, " "); got != "bytes 0-1/20=01 bytes 5-6/20=56" {
		t.Errorf("parts %q", got)
	}

	// MaxRanges 1: a multi-range request gets the whole file.
	h1 := newHandler(t, root, "/static", Options{MaxRanges: 1})
	w = serve(t, h1, "GET", "/static/data.txt", "Range: bytes=0-1,5-6")
	if w.Code != 200 || w.Body.String() != "0123456789abcdefghij" {
		t.Errorf("MaxRanges 1: %d %q", w.Code, w.Body.String())
	}
	w = serve(t, h1, "GET", "/static/data.txt", "Range: bytes=0-1")
	if w.Code != 206 {
		t.Errorf("MaxRanges 1, one range: %d", w.Code)
	}
}

func TestCacheControl(t *testing.T) {
	root := tree(t)
	tests := []struct {
		name   string
		opts   Options
		target string
		want   string
	}{
		{"default none", Options{}, "/static/app.js", ""},
		{"max age", Options{MaxAge: time.Hour}, "/static/app.js", "public, max-age=3600"},
		{"max age rounds down", Options{MaxAge: 1500 * time.Millisecond}, "/static/app.js", "public, max-age=1"},
		{"hashed", Options{MaxAge: time.Hour}, "/static/" + hashed, ImmutableCacheControl},
		{"hashed no immutable", Options{MaxAge: time.Hour, NoImmutable: true}, "/static/" + hashed, "public, max-age=3600"},
		{"custom pattern", Options{ImmutablePattern: regexp.MustCompile(`^app\.js$`)}, "/static/app.js", ImmutableCacheControl},
		{"custom pattern miss", Options{ImmutablePattern: regexp.MustCompile(`^app\.js$`)}, "/static/" + hashed, ""},
		{"hashed variant", Options{}, "/static/" + hashed, ImmutableCacheControl},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHandler(t, root, "/static", tt.opts)
			w := serve(t, h, "GET", tt.target, "Accept-Encoding: br")
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			if got := w.Header().Get("Cache-Control"); got != tt.want {
				t.Errorf("Cache-Control %q, want %q", got, tt.want)
			}
			// 304 keeps Cache-Control (RFC 9111 §4.3.4).
			w = serve(t, h, "GET", tt.target, "If-None-Match: "+w.Header().Get("Etag"), "Accept-Encoding: br")
			if w.Code != 304 || w.Header().Get("Cache-Control") != tt.want {
				t.Errorf("304: %d Cache-Control %q", w.Code, w.Header().Get("Cache-Control"))
			}
		})
	}
}

func TestImmutablePattern(t *testing.T) {
	re := regexp.MustCompile(DjangoHashedPattern)
	for name, want := range map[string]bool{
		"app.3f2a9c8e1b7d.js":     true,
		"app.js.3f2a9c8e1b7d.map": true,
		"LICENSE.3f2a9c8e1b7d":    true,
		"app.js":                  false,
		"app.3f2a9c8e1b7.js":      false, // 11 digits
		"app.3F2A9C8E1B7D.js":     false, // Django writes lower case
		"app.3f2a9c8e1b7dd.js":    false,
		"3f2a9c8e1b7d.js":         false,
	} {
		if got := re.MatchString(name); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

func TestDirectories(t *testing.T) {
	root := tree(t)
	idx := newHandler(t, root, "/static", Options{Index: "index.html"})
	lst := newHandler(t, root, "/static", Options{Listing: true})
	both := newHandler(t, root, "/static", Options{Index: "index.html", Listing: true})
	dots := newHandler(t, root, "/static", Options{Listing: true, ServeDotfiles: true})

	w := serve(t, idx, "GET", "/static/sub/")
	if w.Code != 200 || w.Body.String() != "<h1>sub</h1>" || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("index: %d %q %q", w.Code, w.Body.String(), w.Header().Get("Content-Type"))
	}
	w = serve(t, idx, "GET", "/static/sub?x=1")
	if w.Code != 301 || w.Header().Get("Location") != "/static/sub/?x=1" {
		t.Errorf("redirect: %d %q", w.Code, w.Header().Get("Location"))
	}
	w = serve(t, idx, "GET", "/static")
	if w.Code != 301 || w.Header().Get("Location") != "/static/" {
		t.Errorf("redirect root: %d %q", w.Code, w.Header().Get("Location"))
	}
	w = serve(t, idx, "GET", "/static/list/")
	if w.Code != 404 {
		t.Errorf("no index, no listing: %d", w.Code)
	}

	w = serve(t, lst, "GET", "/static/list/")
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, `<a href="./a.txt">a.txt</a>`) ||
		!strings.Contains(body, `<a href="./%3Cb%3E&amp;.txt">&lt;b&gt;&amp;.txt</a>`) ||
		!strings.Contains(body, `<a href="./d/">d/</a>`) || strings.Contains(body, "hidden") || strings.Contains(body, "<b>") {
		t.Errorf("listing: %d\n%s", w.Code, body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("listing type %q", ct)
	}
	w = serve(t, lst, "HEAD", "/static/list/")
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") == "" {
		t.Errorf("listing HEAD: %d %d", w.Code, w.Body.Len())
	}
	w = serve(t, dots, "GET", "/static/list/")
	if !strings.Contains(w.Body.String(), ".hidden") {
		t.Errorf("dotfiles listing lacks .hidden:\n%s", w.Body.String())
	}
	w = serve(t, lst, "GET", "/static/<script>/")
	if w.Code != 404 || strings.Contains(w.Body.String(), "<script>") {
		t.Errorf("missing dir: %d %q", w.Code, w.Body.String())
	}

	w = serve(t, both, "GET", "/static/sub/")
	if w.Body.String() != "<h1>sub</h1>" {
		t.Errorf("index before listing: %q", w.Body.String())
	}
	w = serve(t, both, "GET", "/static/")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "app.js") {
		t.Errorf("root listing: %d", w.Code)
	}
}

func TestDotfiles(t *testing.T) {
	h := newHandler(t, tree(t), "/static", Options{ServeDotfiles: true})
	if w := serve(t, h, "GET", "/static/.env"); w.Code != 200 || w.Body.String() != "DOTENV" {
		t.Errorf(".env with ServeDotfiles: %d", w.Code)
	}
	if w := serve(t, h, "GET", "/static/../outside/secret.txt"); w.Code != 404 {
		t.Errorf(".. with ServeDotfiles: %d", w.Code)
	}
}

func TestRootMount(t *testing.T) {
	h := newHandler(t, tree(t), "/", Options{Index: "index.html"})
	if w := serve(t, h, "GET", "/app.js"); w.Code != 200 || w.Body.String() != appJS {
		t.Errorf("/app.js: %d", w.Code)
	}
	if w := serve(t, h, "GET", "/sub"); w.Code != 301 || w.Header().Get("Location") != "/sub/" {
		t.Errorf("/sub: %d %q", w.Code, w.Header().Get("Location"))
	}
	if w := serve(t, h, "GET", "//sub"); w.Code != 301 || w.Header().Get("Location") != "/sub/" {
		t.Errorf("//sub must not redirect off-site: %d %q", w.Code, w.Header().Get("Location"))
	}
	h2 := newHandler(t, tree(t), "/assets/", Options{})
	if w := serve(t, h2, "GET", "/assets/app.js"); w.Code != 200 {
		t.Errorf("trailing-slash prefix: %d", w.Code)
	}
}

func TestAllowSymlinksOutside(t *testing.T) {
	h := newHandler(t, tree(t), "/static", Options{AllowSymlinksOutside: true})
	for _, target := range []string{"/static/link-outside", "/static/link-outside-dir/secret.txt", "/static/link-abs-outside"} {
		if w := serve(t, h, "GET", target); w.Code != 200 || w.Body.String() != secret {
			t.Errorf("%s: %d", target, w.Code)
		}
	}
	// The option allows links, not paths: .. stays refused.
	for _, target := range []string{"/static/../outside/secret.txt", "/static/%2e%2e/outside/secret.txt", "/static/..%2foutside%2fsecret.txt"} {
		if w := serve(t, h, "GET", target); w.Code != 404 || strings.Contains(w.Body.String(), secret) {
			t.Errorf("%s: %d", target, w.Code)
		}
	}
}

func TestNew(t *testing.T) {
	root := tree(t)
	missing := filepath.Join(root, "does-not-exist")
	tests := []struct {
		name, root, prefix string
		opts               Options
		want               string
	}{
		{"missing", missing, "/static", Options{}, missing},
		{"file", filepath.Join(root, "app.js"), "/static", Options{}, "not a directory"},
		{"prefix", root, "static", Options{}, "must start with /"},
		{"index", root, "/static", Options{Index: "a/index.html"}, "plain file name"},
		{"coding", root, "/static", Options{Precompressed: []string{"deflate"}}, "deflate"},
		{"coding twice", root, "/static", Options{Precompressed: []string{"br", "br"}}, "twice"},
		{"max age", root, "/static", Options{MaxAge: -time.Second}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(tt.root, tt.prefix, tt.opts)
			if err == nil {
				h.Close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
	if _, err := New(missing, "/static", Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing root: %v is not ErrNotExist", err)
	}
}

func TestPrecompressedOff(t *testing.T) {
	h := newHandler(t, tree(t), "/static", Options{Precompressed: []string{}})
	w := serve(t, h, "GET", "/static/app.js", "Accept-Encoding: br, gzip")
	if w.Body.String() != appJS || w.Header().Get("Vary") != "" || w.Header().Get("Content-Encoding") != "" {
		t.Errorf("precompressed off: %q vary %q", w.Body.String(), w.Header().Get("Vary"))
	}
	h = newHandler(t, tree(t), "/static", Options{Precompressed: []string{"gzip", "br"}})
	if w := serve(t, h, "GET", "/static/app.js", "Accept-Encoding: br, gzip"); w.Body.String() != appGZ {
		t.Errorf("gzip preferred: %q", w.Body.String())
	}
}

func TestContentType(t *testing.T) {
	for name, want := range map[string]string{
		"a.js": "text/javascript; charset=utf-8", "a.MJS": "text/javascript; charset=utf-8",
		"a.css": "text/css; charset=utf-8", "a.html": "text/html; charset=utf-8",
		"a.json": "application/json", "a.map": "application/json", "a.wasm": "application/wasm",
		"a.woff": "font/woff", "a.webp": "image/webp", "a.avif": "image/avif",
		"a.ico": "image/x-icon", "a": "application/octet-stream", "a.unknownext": "application/octet-stream",
		"a.webmanifest": "application/manifest+json",
	} {
		if got := contentType(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
}

// TestAcceptEncodingLines: several Accept-Encoding lines read as one list
// (acceptenc.Order), as RFC 9110 says a recipient combines them.
func TestAcceptEncodingLines(t *testing.T) {
	h := newHandler(t, tree(t), "/static", Options{})
	w := serve(t, h, "GET", "/static/app.js", "Accept-Encoding: deflate", "Accept-Encoding: br;q=0.5, gzip;q=0.4")
	if w.Body.String() != appBR || w.Header().Get("Content-Encoding") != "br" {
		t.Errorf("two lines: %q, encoding %q; want br", w.Body.String(), w.Header().Get("Content-Encoding"))
	}
	if w := serve(t, h, "GET", "/static/app.js", "Accept-Encoding: x-gzip"); w.Body.String() != appGZ {
		t.Errorf("x-gzip: encoding %q; want gzip", w.Header().Get("Content-Encoding"))
	}
}
