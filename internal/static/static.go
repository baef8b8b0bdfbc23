package static

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/whiskserver/whisk/internal/acceptenc"
)

// DjangoHashedPattern matches the base names Django's
// ManifestStaticFilesStorage gives files: a 12-hex-digit hash before the
// extension ("app.3f2a9c8e1b7d.js", "app.js.3f2a9c8e1b7d.map",
// "LICENSE.3f2a9c8e1b7d"). It is the default Options.ImmutablePattern.
const DjangoHashedPattern = `\.[0-9a-f]{12}(\.[^.]+)?$`

// ImmutableCacheControl is the Cache-Control value of files whose base
// name matches Options.ImmutablePattern.
const ImmutableCacheControl = "public, max-age=31536000, immutable"

// DefaultMaxRanges is the Options.MaxRanges used when it is 0.
const DefaultMaxRanges = 16

// maxListing bounds the entries of a directory listing.
const maxListing = 10000

// Options tunes a Handler. The zero value is a production default: no index
// file, no listing, hidden files refused, symlinks kept inside the root,
// precompressed br/zstd/gzip siblings, no Cache-Control except on hashed
// names, at most 16 ranges.
type Options struct {
	// Index is the file served for a request that names a directory (with
	// a trailing slash), such as "index.html"; a plain file name. Empty
	// means none.
	Index string

	// Listing serves an HTML listing of a directory that has no Index
	// file. Off by default.
	Listing bool

	// ServeDotfiles serves files and directories whose name starts with
	// "." (".env", ".git/"). Off by default: they get 404, except
	// ".well-known" (RFC 8615), which is always served.
	ServeDotfiles bool

	// AllowSymlinksOutside follows symbolic links that lead out of the
	// root. Off by default: such links, and absolute links, get 404. When
	// on, a path is resolved by the kernel from the root's path name at
	// request time, like nginx does, instead of through the directory
	// handle opened by New; ".." segments are still refused.
	AllowSymlinksOutside bool

	// Precompressed lists the precompressed siblings looked for, in order
	// of preference when Accept-Encoding gives them equal q-values: "br"
	// (file.br), "zstd" (file.zst), "gzip" (file.gz). Nil means
	// DefaultPrecompressed (all three); an empty, non-nil slice turns the
	// lookup off.
	Precompressed []string

	// MaxAge sets "Cache-Control: public, max-age=N" on files that are not
	// hashed names, in whole seconds. Zero sends no Cache-Control (nginx's
	// default), leaving freshness to the client and revalidation to
	// ETag and Last-Modified.
	MaxAge time.Duration

	// ImmutablePattern matches the base names of files that never change
	// under the same name; they get ImmutableCacheControl. Nil means
	// DjangoHashedPattern.
	ImmutablePattern *regexp.Regexp

	// NoImmutable turns ImmutablePattern off: every file gets MaxAge.
	NoImmutable bool

	// MaxRanges is the most ranges a Range header may ask for; a request
	// for more gets the whole file with 200. 0 means DefaultMaxRanges;
	// 1 refuses every multi-range request that way.
	MaxRanges int

	// FileCacheSize is the most files kept open between requests (nginx's
	// open_file_cache max). 0 means DefaultFileCacheSize; negative turns
	// the cache off.
	FileCacheSize int

	// FileCacheValid is how long a cached file is served before it is
	// checked against the file system again (nginx's
	// open_file_cache_valid): a changed, replaced or deleted file is seen
	// within it. 0 means DefaultFileCacheValid.
	FileCacheValid time.Duration

	// Log receives unexpected errors (too many open files, I/O errors),
	// which are answered with a bare 500. Nil discards them. Requests
	// themselves belong to the access log.
	Log *slog.Logger
}

// Handler serves files under a root directory for a URL prefix. It is safe
// for concurrent use. Build it with New; Close releases the root.
type Handler struct {
	root      *os.Root
	dir       string // absolute root path, for AllowSymlinksOutside
	prefix    string // "" for "/", else "/static"
	opts      Options
	codings   []coding
	tokens    []string       // the codings' tokens, for acceptenc.Order
	immutable *regexp.Regexp // nil: off
	maxAge    string         // Cache-Control for other files; "" for none
	maxRanges int
	log       *slog.Logger
	cache     *fileCache // nil: off
}

// New returns a Handler serving the directory root for requests under
// prefix ("/static", "/static/" or "/"). It opens the directory once, as an
// os.Root that every request resolves through; the directory must exist.
// Replacing the directory (a deploy switching a symlink) is seen by a new
// Handler, built on reload.
func New(root, prefix string, opts Options) (*Handler, error) {
	if !strings.HasPrefix(prefix, "/") {
		return nil, fmt.Errorf("static mount %q: prefix must start with /", prefix)
	}
	if p := strings.TrimRight(prefix, "/"); p != "" {
		prefix = p
	} else {
		prefix = ""
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("static mount %s: root %s: %w", prefix+"/", root, err)
	}
	if opts.Index != "" && (strings.ContainsAny(opts.Index, "/\\\x00") || opts.Index == "." || opts.Index == "..") {
		return nil, fmt.Errorf("static mount %s: index %q: want a plain file name such as index.html", prefix+"/", opts.Index)
	}
	codings, err := parseCodings(opts.Precompressed)
	if err != nil {
		return nil, fmt.Errorf("static mount %s: %w", prefix+"/", err)
	}
	if opts.MaxAge < 0 {
		return nil, fmt.Errorf("static mount %s: max age %v is negative", prefix+"/", opts.MaxAge)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("static mount %s: root directory: %w", prefix+"/", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("static mount %s: root %s is not a directory", prefix+"/", abs)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("static mount %s: root directory: %w", prefix+"/", err)
	}
	tokens := make([]string, len(codings))
	for i, c := range codings {
		tokens[i] = c.token
	}
	h := &Handler{
		tokens:    tokens,
		root:      r,
		dir:       abs,
		prefix:    prefix,
		opts:      opts,
		codings:   codings,
		maxRanges: opts.MaxRanges,
		log:       opts.Log,
	}
	if h.maxRanges <= 0 {
		h.maxRanges = DefaultMaxRanges
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if !opts.NoImmutable {
		h.immutable = opts.ImmutablePattern
		if h.immutable == nil {
			h.immutable = regexp.MustCompile(DjangoHashedPattern)
		}
	}
	if s := int64(opts.MaxAge / time.Second); s > 0 {
		h.maxAge = "public, max-age=" + strconv.FormatInt(s, 10)
	}
	size, valid := opts.FileCacheSize, opts.FileCacheValid
	if size == 0 {
		size = DefaultFileCacheSize
	}
	if valid <= 0 {
		valid = DefaultFileCacheValid
	}
	h.cache = newFileCache(size, valid, fileCacheInactive/4)
	return h, nil
}

// Close releases the root directory. Requests still in progress may fail;
// call it once the handler no longer receives requests.
func (h *Handler) Close() error {
	h.cache.close()
	if err := h.root.Close(); err != nil {
		return fmt.Errorf("static root %s: %w", h.dir, err)
	}
	return nil
}

// Root returns the absolute path of the directory served.
func (h *Handler) Root() string { return h.dir }

// ServeHTTP serves the file r.URL.Path names below the prefix; see the
// package documentation for the rules.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpError(w, http.StatusMethodNotAllowed)
		return
	}
	name, dirSlash, ok := h.resolve(r)
	if !ok {
		httpError(w, http.StatusNotFound)
		return
	}
	if !dirSlash {
		if e := h.cache.get(name, func() (fs.FileInfo, error) { return h.stat(name) }); e != nil {
			h.serveFile(w, r, name, e)
			e.release()
			return
		}
	}
	f, err := h.open(name)
	if err != nil {
		h.openError(w, err)
		return
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		h.openError(w, err)
		return
	}
	switch {
	case fi.Mode().IsRegular():
		if dirSlash {
			// "file.txt/": not a directory.
			f.Close()
			httpError(w, http.StatusNotFound)
			return
		}
		h.cacheAndServe(w, r, name, f, fi)
	case fi.IsDir():
		h.serveDir(w, r, name, dirSlash, f)
	default:
		// FIFOs, sockets, devices: opened non-blocking, never read.
		f.Close()
		httpError(w, http.StatusNotFound)
	}
}

// cacheAndServe serves the regular file f just opened for name, keeping it
// in the file cache for the next requests. It takes f over.
func (h *Handler) cacheAndServe(w http.ResponseWriter, r *http.Request, name string, f *os.File, fi fs.FileInfo) {
	e, err := newCachedFile(f, fi, h.meta(name, ""))
	if err != nil {
		h.openError(w, err)
		return
	}
	e = h.cache.put(name, e)
	h.serveFile(w, r, name, e)
	e.release()
}

// meta returns the per-name part of a response for name, served as the
// sibling with coding enc ("" for the file itself).
func (h *Handler) meta(name, enc string) fileMeta {
	m := fileMeta{
		contentType: []string{contentType(name)},
		siblings:    len(h.codings) > 0 && !incompressible[strings.ToLower(path.Ext(name))],
	}
	switch {
	case h.immutable != nil && h.immutable.MatchString(path.Base(name)):
		m.cacheControl = []string{ImmutableCacheControl}
	case h.maxAge != "":
		m.cacheControl = []string{h.maxAge}
	}
	if enc != "" {
		m.contentEncoding = []string{enc}
	}
	return m
}

// resolve turns the request path into a name relative to the root ("." for
// the root itself) and reports whether the path ended in a slash. It
// refuses (ok false) paths outside the prefix, encoded slashes and
// backslashes, NUL, "." and ".." segments, and hidden segments unless
// allowed. Empty segments ("a//b") are merged, as nginx does.
func (h *Handler) resolve(r *http.Request) (name string, dirSlash, ok bool) {
	p := r.URL.Path
	if !strings.HasPrefix(p, h.prefix) || (len(p) > len(h.prefix) && p[len(h.prefix)] != '/') {
		return "", false, false
	}
	if raw := r.URL.RawPath; raw != "" && hasEncodedSeparator(raw) {
		return "", false, false
	}
	rel := p[len(h.prefix):]
	if strings.ContainsAny(rel, "\\\x00") {
		return "", false, false
	}
	dirSlash = strings.HasSuffix(rel, "/")
	var b strings.Builder
	for seg := range strings.SplitSeq(rel, "/") {
		switch {
		case seg == "":
			continue
		case seg == "." || seg == "..":
			return "", false, false
		case seg[0] == '.' && !h.opts.ServeDotfiles && seg != ".well-known":
			return "", false, false
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(seg)
	}
	if b.Len() == 0 {
		return ".", dirSlash, true
	}
	return b.String(), dirSlash, true
}

// hasEncodedSeparator reports whether an escaped path has %2F, %5C or %00.
func hasEncodedSeparator(raw string) bool {
	for i := 0; i+2 < len(raw); i++ {
		if raw[i] != '%' {
			continue
		}
		switch raw[i+1] {
		case '2':
			if raw[i+2] == 'f' || raw[i+2] == 'F' {
				return true
			}
		case '5':
			if raw[i+2] == 'c' || raw[i+2] == 'C' {
				return true
			}
		case '0':
			if raw[i+2] == '0' {
				return true
			}
		}
	}
	return false
}

// openFlags opens without blocking, so that a FIFO in the tree cannot hang
// the request; regular files ignore O_NONBLOCK.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK

// open opens a name relative to the root: through the os.Root, which
// refuses escapes, or by path when symlinks may leave the root.
func (h *Handler) open(name string) (*os.File, error) {
	if h.opts.AllowSymlinksOutside {
		return os.OpenFile(filepath.Join(h.dir, filepath.FromSlash(name)), openFlags, 0)
	}
	return h.root.OpenFile(name, openFlags, 0)
}

// stat describes a name relative to the root the way open resolves it.
func (h *Handler) stat(name string) (fs.FileInfo, error) {
	if h.opts.AllowSymlinksOutside {
		return os.Stat(filepath.Join(h.dir, filepath.FromSlash(name)))
	}
	return h.root.Stat(name)
}

// openError answers a failed open or stat: 403 for a permission error (as
// nginx does), 500 for a server-side shortage or I/O error (logged), and
// 404 for everything else, which includes missing files, escapes from the
// root, symlink loops and names too long.
func (h *Handler) openError(w http.ResponseWriter, err error) {
	if errors.Is(err, fs.ErrPermission) {
		httpError(w, http.StatusForbidden)
		return
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.EIO, syscall.ENOBUFS:
			h.log.Error("static file", "root", h.dir, "error", err)
			httpError(w, http.StatusInternalServerError)
			return
		}
	}
	httpError(w, http.StatusNotFound)
}

// httpError writes a bare status; error bodies never name a path.
func httpError(w http.ResponseWriter, code int) {
	http.Error(w, strconv.Itoa(code)+" "+http.StatusText(code), code)
}

// serveDir answers a directory: a redirect to the slashed URL, the index
// file, a listing, or 404. It closes d.
func (h *Handler) serveDir(w http.ResponseWriter, r *http.Request, name string, dirSlash bool, d *os.File) {
	defer d.Close()
	if h.opts.Index == "" && !h.opts.Listing {
		httpError(w, http.StatusNotFound)
		return
	}
	if !dirSlash {
		loc := h.prefix + "/" + name + "/"
		if name == "." {
			loc = h.prefix + "/"
		}
		loc = (&url.URL{Path: loc}).EscapedPath()
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, loc, http.StatusMovedPermanently)
		return
	}
	if h.opts.Index != "" {
		index := path.Join(name, h.opts.Index)
		f, err := h.open(index)
		if err == nil {
			fi, err := f.Stat()
			if err == nil && fi.Mode().IsRegular() {
				h.cacheAndServe(w, r, index, f, fi)
				return
			}
			f.Close()
		}
	}
	if !h.opts.Listing {
		httpError(w, http.StatusNotFound)
		return
	}
	h.serveListing(w, r, d)
}

// Shared header values (see cachedFile).
var (
	varyAcceptEncoding = []string{"Accept-Encoding"}
	nosniff            = []string{"nosniff"}
	acceptRanges       = []string{"bytes"}
)

// serveFile serves the file of entry e (name relative to the root), or a
// precompressed sibling of it. A plain GET or HEAD is answered here; one
// with a Range or a condition goes through http.ServeContent.
func (h *Handler) serveFile(w http.ResponseWriter, r *http.Request, name string, e *cachedFile) {
	hdr := w.Header()
	if e.siblings {
		// Vary is a property of the resource, the same for every request,
		// so it is sent whenever a sibling could be chosen, not only when
		// one exists: that costs no lookup for clients that accept no
		// coding.
		if _, ok := hdr["Vary"]; ok {
			hdr.Add("Vary", "Accept-Encoding")
		} else {
			hdr["Vary"] = varyAcceptEncoding
		}
		if v := h.variant(r, name); v != nil {
			defer v.release()
			e = v
		}
	}
	hdr["Content-Type"] = e.contentType
	hdr["X-Content-Type-Options"] = nosniff
	hdr["Etag"] = e.etag
	if e.cacheControl != nil {
		hdr["Cache-Control"] = e.cacheControl
	}
	if plainRequest(r) {
		hdr["Last-Modified"] = e.lastModified
		hdr["Accept-Ranges"] = acceptRanges
		hdr["Content-Length"] = e.contentLength
		if e.contentEncoding != nil {
			hdr["Content-Encoding"] = e.contentEncoding
		}
		if r.Method == http.MethodHead || e.size == 0 {
			w.WriteHeader(http.StatusOK)
			return
		}
		corked := cork(r, e.size)
		w.WriteHeader(http.StatusOK)
		if corked != nil {
			defer corked.SetCork(false)
			// The head waits in the corked socket for the file's first
			// bytes; without this flush net/http would copy those
			// bytes itself before handing the rest to sendfile.
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		// The ResponseWriter's ReadFrom reaches the connection, which
		// sends the Range with sendfile at its own offset.
		io.Copy(w, e.content())
		return
	}
	if rng := r.Header.Get("Range"); rng != "" && strings.Count(rng, ",") >= h.maxRanges {
		r = r.Clone(r.Context())
		r.Header.Del("Range")
	}
	if e.contentEncoding != nil {
		w = &encodingWriter{ResponseWriter: w, enc: e.contentEncoding[0]}
	}
	if corked := cork(r, e.size); corked != nil {
		defer corked.SetCork(false)
	}
	// ServeContent does conditionals, Range and HEAD.
	http.ServeContent(w, r, "", e.modTime, e.content())
}

// plainRequest reports whether r asks for the whole file unconditionally.
func plainRequest(r *http.Request) bool {
	hdr := r.Header
	return hdr["Range"] == nil && hdr["If-None-Match"] == nil && hdr["If-Modified-Since"] == nil &&
		hdr["If-Match"] == nil && hdr["If-Unmodified-Since"] == nil
}

// variant returns the cache entry of the precompressed sibling of name to
// serve for r's Accept-Encoding, if any, with a reference to release: the
// acceptable codings are tried best first, and the first that is a regular
// file wins. Missing siblings are remembered in the cache too.
func (h *Handler) variant(r *http.Request, name string) *cachedFile {
	values := r.Header["Accept-Encoding"]
	if len(values) == 0 {
		return nil
	}
	order, n := acceptenc.Order(values, h.tokens)
	for _, i := range order[:n] {
		c := h.codings[i]
		// The sibling's cache key is its name plus a NUL, which no name
		// has: a request for app.js.br itself is another response (its
		// own type, no Content-Encoding).
		key := name + c.suffix + "\x00"
		file := key[:len(key)-1]
		e := h.cache.get(key, func() (fs.FileInfo, error) { return h.stat(file) })
		if e == nil {
			e = h.openVariant(name, file, key, c)
		}
		if e == nil {
			continue
		}
		if e.f == nil {
			e.release()
			continue
		}
		return e
	}
	return nil
}

// openVariant opens file, the sibling of name for coding c, and caches it
// under key, or caches its absence; nil when it could not be looked up
// (not cached).
func (h *Handler) openVariant(name, file, key string, c coding) *cachedFile {
	f, err := h.open(file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return h.cache.put(key, &cachedFile{})
		}
		return nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil
		}
		return h.cache.put(key, &cachedFile{})
	}
	e, err := newCachedFile(f, fi, h.meta(name, c.token))
	if err != nil {
		return nil
	}
	return h.cache.put(key, e)
}

// etag is a strong validator from the file's modification time and size
// (nanoseconds and bytes, in hex), plus the coding of a precompressed
// sibling, whose own time and size are used: `"18c0a1b2c3d4e5f6-19000"`,
// `"18c0a1b2c3d4e5f6-4d2-br"`.
func etag(fi fs.FileInfo, enc string) string {
	b := make([]byte, 0, 48)
	b = append(b, '"')
	b = strconv.AppendInt(b, fi.ModTime().UnixNano(), 16)
	b = append(b, '-')
	b = strconv.AppendInt(b, fi.Size(), 16)
	if enc != "" {
		b = append(b, '-')
		b = append(b, enc...)
	}
	b = append(b, '"')
	return string(b)
}

// encodingWriter adds Content-Encoding when the status is 200 or 206, after
// http.ServeContent has set Content-Length (it leaves Content-Length out
// when Content-Encoding is already set, which would make the response
// chunked and lose sendfile). ReadFrom passes through, so the sendfile path
// stays open.
type encodingWriter struct {
	http.ResponseWriter
	enc   string
	wrote bool
}

// WriteHeader sets Content-Encoding on a 200 or 206 and writes the head.
func (w *encodingWriter) WriteHeader(code int) {
	if !w.wrote && (code == http.StatusOK || code == http.StatusPartialContent) {
		w.Header().Set("Content-Encoding", w.enc)
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

// Write writes body bytes, with a 200 head first if none was written.
func (w *encodingWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom copies src with the underlying writer's ReadFrom (sendfile).
func (w *encodingWriter) ReadFrom(src io.Reader) (int64, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(w.ResponseWriter, src)
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (w *encodingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
