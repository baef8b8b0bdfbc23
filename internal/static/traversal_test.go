package static

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/filerange"
)

// traversals are request targets that try to leave the root. None may
// return the secret; all get 404 from the handler (the real server may
// answer 400 first).
var traversals = []string{
	"/static/../outside/secret.txt",
	"/static/../../outside/secret.txt",
	"/static/sub/../../outside/secret.txt",
	"/static/./../outside/secret.txt",
	"/static//../outside/secret.txt",
	"/static/%2e%2e/outside/secret.txt",
	"/static/%2E%2E/outside/secret.txt",
	"/static/.%2e/outside/secret.txt",
	"/static/%2e%2e%2foutside%2fsecret.txt",
	"/static/..%2foutside%2fsecret.txt",
	"/static/..%2Foutside/secret.txt",
	"/static/sub%2f..%2f..%2foutside%2fsecret.txt",
	"/static/..%5coutside%5csecret.txt",
	"/static/..%5Coutside/secret.txt",
	"/static/%252e%252e/outside/secret.txt",
	"/static/..%c0%af../outside/secret.txt",
	"/static/%00../outside/secret.txt",
	"/static/app.js%00.txt",
	"/static/link-outside",
	"/static/link-outside-dir/secret.txt",
	"/static/link-outside-dir/",
	"/static/link-prefix",
	"/static/link-abs-outside",
	"/static/link-outside/",
	"/static/sub/../link-outside",
	"/outside/secret.txt",
	"/static/..",
	"/static/../",
	"/staticx/../outside/secret.txt",
	"/static/....//outside/secret.txt",
	"/static/..;/outside/secret.txt",
	"/static/.../outside/secret.txt",
}

func TestTraversal(t *testing.T) {
	root := tree(t)
	for _, opts := range []Options{{}, {Index: "index.html", Listing: true}, {ServeDotfiles: true}} {
		h := newHandler(t, root, "/static", opts)
		for _, target := range traversals {
			w := serve(t, h, "GET", target)
			if w.Code != http.StatusNotFound || strings.Contains(w.Body.String(), secret) {
				t.Errorf("%+v %s: %d %q", opts, target, w.Code, w.Body.String())
			}
			if strings.Contains(w.Body.String(), root) || strings.Contains(w.Body.String(), "outside") {
				t.Errorf("%s: body reveals a path: %q", target, w.Body.String())
			}
		}
	}
}

// TestTraversalCraftedURL hands the handler decoded paths and raw paths no
// parser would produce: backslashes and NUL in Path, RawPath with encoded
// separators.
func TestTraversalCraftedURL(t *testing.T) {
	h := newHandler(t, tree(t), "/static", Options{ServeDotfiles: true})
	for _, u := range []url.URL{
		{Path: "/static/../outside/secret.txt"},
		{Path: `/static/..\outside\secret.txt`},
		{Path: `/static\..\outside\secret.txt`},
		{Path: "/static/\x00/../outside/secret.txt"},
		{Path: "/static/app.js\x00"},
		{Path: "/static/../outside/secret.txt", RawPath: "/static/..%2Foutside%2Fsecret.txt"},
		{Path: "/static/link-outside"},
		{Path: "/static/link-abs-outside"},
		{Path: "/static/sub/../../outside/secret.txt", RawPath: "/static/sub/%2e%2e/%2e%2e/outside/secret.txt"},
		{Path: "/static/app.js", RawPath: "/static/app%2fjs"},
		{Path: ""},
		{Path: "*"},
		{Path: "static/../outside/secret.txt"},
	} {
		r := &http.Request{Method: "GET", URL: &u, Header: http.Header{}, RequestURI: u.String()}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNotFound || strings.Contains(w.Body.String(), secret) {
			t.Errorf("%q (raw %q): %d %q", u.Path, u.RawPath, w.Code, w.Body.String())
		}
	}
}

// TestTraversalRealServer sends raw request lines over TCP to a real
// net/http server, so the server's own parsing is in play.
func TestTraversalRealServer(t *testing.T) {
	h := newHandler(t, tree(t), "/static", Options{Index: "index.html", Listing: true})
	srv := httptest.NewServer(h)
	defer srv.Close()
	targets := append([]string{
		`/static/..\outside\secret.txt`,
		`/static/..\..\outside\secret.txt`,
		"/static/%2e%2e\\outside/secret.txt",
		"http://example.com/static/../outside/secret.txt",
		"/static/link-outside?x=../../outside/secret.txt",
		"//static/../outside/secret.txt",
	}, traversals...)
	for _, target := range targets {
		code, body := rawGet(t, srv.Listener.Addr().String(), target)
		if code == 0 {
			continue // the server closed without answering: nothing served
		}
		if (code != 404 && code != 400) || strings.Contains(body, secret) {
			t.Errorf("%s: %d %q", target, code, body)
		}
	}
	// The same server does serve files.
	if code, body := rawGet(t, srv.Listener.Addr().String(), "/static/sub/page.txt"); code != 200 || body != "page" {
		t.Errorf("control: %d %q", code, body)
	}
}

func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// recordConn records the reader net/http hands to the connection's
// ReadFrom, and whether filerange.Send took it (sendfile), as the front's
// connections do.
type recordConn struct {
	*net.TCPConn
	mu   *sync.Mutex
	seen *[]string
}

func (c recordConn) ReadFrom(r io.Reader) (int64, error) {
	desc := reflect.TypeOf(r).String()
	if lr, ok := r.(*io.LimitedReader); ok {
		desc += "(" + reflect.TypeOf(lr.R).String() + ")"
	}
	// Recorded before sending: the client may read the whole body and
	// look at seen as soon as the last byte is out.
	_, ok := r.(*filerange.Range)
	if lr, limited := r.(*io.LimitedReader); limited {
		_, ok = lr.R.(*filerange.Range)
	}
	if !ok {
		desc += " not sendfile"
	}
	c.mu.Lock()
	*c.seen = append(*c.seen, desc)
	c.mu.Unlock()
	n, err, handled := filerange.Send(c.TCPConn, r, nil)
	if !handled {
		return c.TCPConn.ReadFrom(r)
	}
	return n, err
}

type recordListener struct {
	net.Listener
	mu   sync.Mutex
	seen []string
}

func (l *recordListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return recordConn{TCPConn: c.(*net.TCPConn), mu: &l.mu, seen: &l.seen}, nil
}

// TestSendfilePath checks that file bodies (whole, ranged, precompressed)
// reach the connection's ReadFrom as a *filerange.Range, alone or under
// the *io.LimitedReader of a range, which filerange.Send turns into
// sendfile(2).
func TestSendfilePath(t *testing.T) {
	root := tree(t)
	big := strings.Repeat("x", 64<<10)
	for _, n := range []string{"big.txt", "big.txt.br"} {
		if err := os.WriteFile(root+"/"+n, []byte(big), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := newHandler(t, root, "/static", Options{})
	srv := httptest.NewUnstartedServer(h)
	rl := &recordListener{Listener: srv.Listener}
	srv.Listener = rl
	srv.Start()
	defer srv.Close()

	for _, c := range []struct{ ae, rng, want string }{
		{"", "", "*filerange.Range"},
		{"br", "", "*filerange.Range"},
		{"", "bytes=1000-40000", "*io.LimitedReader(*filerange.Range)"},
		{"br", "bytes=1000-", "*io.LimitedReader(*filerange.Range)"},
	} {
		rl.mu.Lock()
		rl.seen = nil
		rl.mu.Unlock()
		req, _ := http.NewRequest("GET", srv.URL+"/static/big.txt", nil)
		if c.ae != "" {
			req.Header.Set("Accept-Encoding", c.ae)
		}
		if c.rng != "" {
			req.Header.Set("Range", c.rng)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 || len(b) < 30000 || resp.Header.Get("Content-Encoding") != c.ae {
			t.Fatalf("%+v: %d, %d bytes, encoding %q", c, resp.StatusCode, len(b), resp.Header.Get("Content-Encoding"))
		}
		rl.mu.Lock()
		seen := strings.Join(rl.seen, " ")
		rl.mu.Unlock()
		if seen != c.want {
			t.Errorf("%+v: connection ReadFrom got %q, want %q", c, seen, c.want)
		}
	}
}
