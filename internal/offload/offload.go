// Package offload serves the files an app hands back instead of a body:
// X-Sendfile (an absolute file path, as with Apache's mod_xsendfile) and
// X-Accel-Redirect (a URI under an internal location, as with nginx). It is
// opt-in per group and limited to configured directories; the file is
// served the way a static mount serves it (internal/static: traversal-safe,
// ETag and 304, Range, sendfile), while the worker thread is already free.
// The app's Content-Type, Content-Disposition, Cache-Control, Expires and
// Set-Cookie headers are kept; its body is discarded.
package offload

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/whiskserver/whisk/internal/route"
	"github.com/whiskserver/whisk/internal/static"
)

// Location maps a URI prefix of X-Accel-Redirect to a directory.
type Location struct {
	// Prefix is the URI prefix ("/protected").
	Prefix string
	// Dir is the directory files under Prefix come from.
	Dir string
}

// kept are the app's headers that describe the file it hands over.
var kept = []string{"Content-Type", "Content-Disposition", "Cache-Control", "Expires", "Set-Cookie", "Content-Language"}

type dir struct {
	root  string // absolute, clean
	files *static.Handler
}

type accel struct {
	prefix string
	files  *static.Handler
}

// Handler wraps an app's handler.
type Handler struct {
	next     http.Handler
	sendfile []dir
	accel    []accel
	log      *slog.Logger
}

// New returns a Handler that serves next's X-Sendfile files from the
// directories dirs and its X-Accel-Redirect URIs from locations. Close
// releases the directories.
func New(next http.Handler, dirs []string, locations []Location, log *slog.Logger) (*Handler, error) {
	h := &Handler{next: next, log: log}
	opts := static.Options{Log: log}
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("x_sendfile %s: %w", d, err)
		}
		files, err := static.New(abs, "/", opts)
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("x_sendfile: %w", err)
		}
		h.sendfile = append(h.sendfile, dir{root: filepath.Clean(abs), files: files})
	}
	for _, l := range locations {
		files, err := static.New(l.Dir, l.Prefix, opts)
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("x_accel_redirect: %w", err)
		}
		h.accel = append(h.accel, accel{prefix: strings.TrimRight(l.Prefix, "/"), files: files})
	}
	return h, nil
}

// Close releases the directories.
func (h *Handler) Close() {
	for _, d := range h.sendfile {
		d.files.Close()
	}
	for _, a := range h.accel {
		a.files.Close()
	}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cw := &catcher{ResponseWriter: w, h: h}
	h.next.ServeHTTP(cw, r)
	if cw.target == nil {
		return
	}
	// The app answered with a file to send: serve it with the app's
	// describing headers.
	hdr := w.Header()
	keep := http.Header{}
	for _, k := range kept {
		if v, ok := cw.appHeader[k]; ok {
			keep[k] = v
		}
	}
	clear(hdr)
	sub := r.Clone(r.Context())
	sub.URL.Path, sub.URL.RawPath = cw.path, ""
	cw.target.ServeHTTP(&keeper{ResponseWriter: w, keep: keep}, sub)
}

// resolve returns the static handler and request path for an app's
// offload header, or nil when it names nothing whisk may serve.
func (h *Handler) resolve(hdr http.Header) (*static.Handler, string, string) {
	if p := hdr.Get("X-Sendfile"); p != "" {
		p = filepath.Clean(p)
		for _, d := range h.sendfile {
			if rel, ok := strings.CutPrefix(p, d.root+string(filepath.Separator)); ok && filepath.IsAbs(p) {
				return d.files, "/" + filepath.ToSlash(rel), p
			}
		}
		return nil, "", p
	}
	if v := hdr.Get("X-Accel-Redirect"); v != "" {
		u, err := url.Parse(v)
		if err != nil {
			return nil, "", v
		}
		for _, a := range h.accel {
			if route.Under(u.Path, a.prefix) {
				return a.files, u.Path, v
			}
		}
		return nil, "", v
	}
	return nil, "", ""
}

// catcher watches the app's head for an offload header; when there is one
// it keeps the head from the client and discards the app's body.
type catcher struct {
	http.ResponseWriter
	h         *Handler
	decided   bool
	offload   bool
	target    *static.Handler
	path      string
	appHeader http.Header
}

func (c *catcher) WriteHeader(code int) {
	if c.decided {
		if !c.offload {
			c.ResponseWriter.WriteHeader(code)
		}
		return
	}
	if code < 200 {
		c.ResponseWriter.WriteHeader(code)
		return
	}
	c.decided = true
	hdr := c.Header()
	if hdr.Get("X-Sendfile") == "" && hdr.Get("X-Accel-Redirect") == "" {
		c.ResponseWriter.WriteHeader(code)
		return
	}
	c.offload = true
	c.appHeader = hdr.Clone()
	target, path, named := c.h.resolve(hdr)
	hdr.Del("X-Sendfile")
	hdr.Del("X-Accel-Redirect")
	if target == nil {
		c.h.log.Warn("the app's X-Sendfile or X-Accel-Redirect names a file outside the configured directories; answering 404", "file", named)
		clear(hdr)
		// Written past the catcher, which discards the app's body (offload
		// stays true).
		http.Error(c.ResponseWriter, "404 page not found", http.StatusNotFound)
		return
	}
	c.target, c.path = target, path
}

func (c *catcher) Write(p []byte) (int, error) {
	if !c.decided {
		c.WriteHeader(http.StatusOK)
	}
	if c.offload {
		return len(p), nil // the app's body is replaced by the file
	}
	return c.ResponseWriter.Write(p)
}

// ReadFrom keeps sendfile for the app's own file responses
// (wsgi.file_wrapper).
func (c *catcher) ReadFrom(src io.Reader) (int64, error) {
	if !c.decided {
		c.WriteHeader(http.StatusOK)
	}
	if c.offload {
		return io.Copy(io.Discard, src)
	}
	return io.Copy(c.ResponseWriter, src)
}

func (c *catcher) Flush() {
	if c.decided && !c.offload {
		http.NewResponseController(c.ResponseWriter).Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (c *catcher) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// keeper puts the app's describing headers over the file's when the
// file's head is written.
type keeper struct {
	http.ResponseWriter
	keep http.Header
}

func (k *keeper) WriteHeader(code int) {
	if code == http.StatusOK || code == http.StatusPartialContent || code == http.StatusNotModified {
		for name, v := range k.keep {
			k.Header()[name] = v
		}
	}
	k.ResponseWriter.WriteHeader(code)
}

// ReadFrom hands the file to the real writer, which sends it with sendfile.
func (k *keeper) ReadFrom(src io.Reader) (int64, error) { return io.Copy(k.ResponseWriter, src) }

// Unwrap lets http.ResponseController reach the real writer.
func (k *keeper) Unwrap() http.ResponseWriter { return k.ResponseWriter }
