// Package compress compresses app responses on the fly with gzip, Brotli
// or Zstandard, whichever the client accepts and whisk prefers (br, then
// zstd, then gzip, among equal q-values). It is opt-in per mount and leaves
// alone what should not be compressed: HEAD requests, range requests and
// responses, responses that already carry a Content-Encoding, bodies of
// media types that are compressed already (images, video, audio, archives,
// fonts), bodies known to be smaller than MinSize, 1xx/204/304 responses,
// and responses marked Cache-Control: no-transform. A compressed response
// gets Vary: Accept-Encoding, loses its Content-Length, and its strong
// ETag becomes weak (the bytes differ from the uncompressed ones).
package compress

import (
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/whiskserver/whisk/internal/acceptenc"
)

// MinSize is the smallest body worth compressing: below it, the encoding's
// framing costs about as much as it saves.
const MinSize = 1024

// encoder is one content coding with a pool of writers.
type encoder struct {
	name string
	pool sync.Pool // of resetWriter
}

// resetWriter is a compressing writer that can be reused.
type resetWriter interface {
	io.WriteCloser
	Flush() error
	Reset(io.Writer)
}

type zstdWriter struct{ *zstd.Encoder }

func (z zstdWriter) Reset(w io.Writer) { z.Encoder.Reset(w) }

// Handler compresses the responses of next.
type Handler struct {
	next      http.Handler
	encoders  []*encoder // in order of preference
	names     []string   // their Content-Encoding tokens, in the same order
	skipTypes map[string]bool
}

// New returns a Handler compressing next's responses. Levels favour speed:
// gzip 5, Brotli 4, Zstandard's default; these compress text responses
// close to their best ratio at a fraction of the top levels' CPU.
func New(next http.Handler) *Handler {
	h := &Handler{next: next, skipTypes: map[string]bool{}}
	add := func(name string, make func() resetWriter) {
		e := &encoder{name: name}
		e.pool.New = func() any { return make() }
		h.encoders = append(h.encoders, e)
		h.names = append(h.names, name)
	}
	add("br", func() resetWriter { return brotli.NewWriterLevel(nil, 4) })
	add("zstd", func() resetWriter {
		z, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
		return zstdWriter{z}
	})
	add("gzip", func() resetWriter {
		g, _ := gzip.NewWriterLevel(nil, 5)
		return g
	})
	for _, t := range alreadyCompressed {
		h.skipTypes[t] = true
	}
	return h
}

// alreadyCompressed are media types whose bodies do not shrink.
var alreadyCompressed = []string{
	"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/heic",
	"video/mp4", "video/webm", "video/ogg", "audio/mpeg", "audio/ogg", "audio/aac", "audio/webm",
	"application/zip", "application/gzip", "application/x-gzip", "application/zstd", "application/x-bzip2",
	"application/x-xz", "application/x-7z-compressed", "application/x-rar-compressed", "application/pdf",
	"font/woff", "font/woff2", "application/octet-stream",
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead || r.Header.Get("Range") != "" {
		h.next.ServeHTTP(w, r)
		return
	}
	// With no acceptable coding (enc nil) the writer still adds Vary to
	// responses another client would get compressed.
	cw := &writer{ResponseWriter: w, h: h, enc: h.choose(r.Header.Values("Accept-Encoding"))}
	defer cw.finish()
	h.next.ServeHTTP(cw, r)
}

// choose picks the encoding for the Accept-Encoding header lines: the
// highest q-value, then whisk's preference (acceptenc.Order); nil for none.
func (h *Handler) choose(values []string) *encoder {
	order, n := acceptenc.Order(values, h.names)
	if n == 0 {
		return nil
	}
	return h.encoders[order[0]]
}

// writer compresses the body once the head shows it is worth it. Until the
// head is written it does not know; then it either passes through
// (pass) or compresses into zw.
type writer struct {
	http.ResponseWriter
	h       *Handler
	enc     *encoder
	decided bool
	pass    bool
	status  int
	buf     []byte // body bytes held until MinSize is reached or the body ends
	zw      resetWriter
}

func (c *writer) WriteHeader(code int) {
	if code < 200 { // informational: passes through, the real head follows
		c.ResponseWriter.WriteHeader(code)
		return
	}
	if c.decided || c.status != 0 {
		return
	}
	c.status = code
	if !c.eligible(code, c.Header()) {
		c.decide(false, false)
	}
}

// eligible reports whether a response with this head may be compressed.
func (c *writer) eligible(code int, hdr http.Header) bool {
	if code == http.StatusNoContent || code == http.StatusNotModified || code == http.StatusPartialContent {
		return false
	}
	if hdr.Get("Content-Encoding") != "" || hdr.Get("Content-Range") != "" {
		return false
	}
	if strings.Contains(strings.ToLower(hdr.Get("Cache-Control")), "no-transform") {
		return false
	}
	if n, err := strconv.ParseInt(hdr.Get("Content-Length"), 10, 64); err == nil && n < MinSize {
		return false
	}
	if ct := hdr.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err == nil && (c.h.skipTypes[mt] || strings.HasPrefix(mt, "image/") && mt != "image/svg+xml" || strings.HasPrefix(mt, "video/") || strings.HasPrefix(mt, "audio/")) {
			return false
		}
	}
	return true
}

// decide commits to compressing or not and writes the head; vary says the
// response would have been compressed for another Accept-Encoding.
func (c *writer) decide(compress, vary bool) {
	c.decided = true
	c.pass = !compress
	hdr := c.Header()
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if compress {
		hdr.Set("Content-Encoding", c.enc.name)
		hdr.Del("Content-Length")
		if et := hdr.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
			hdr.Set("ETag", "W/"+et)
		}
		hdr.Add("Vary", "Accept-Encoding")
		c.ResponseWriter.WriteHeader(c.status)
		c.zw = c.enc.pool.Get().(resetWriter)
		c.zw.Reset(c.ResponseWriter)
		return
	}
	if vary {
		hdr.Add("Vary", "Accept-Encoding")
	}
	c.ResponseWriter.WriteHeader(c.status)
}

// begin takes a body with no head written as a 200 and, when the client
// accepts no coding, commits to passing the body through.
func (c *writer) begin() {
	if !c.decided && c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if !c.decided && c.enc == nil {
		c.decide(false, true)
	}
}

func (c *writer) Write(p []byte) (int, error) {
	c.begin()
	if c.decided {
		if c.pass {
			return c.ResponseWriter.Write(p)
		}
		return c.zw.Write(p)
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) >= MinSize {
		c.decide(true, true)
		buf := c.buf
		c.buf = nil
		if _, err := c.zw.Write(buf); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// ReadFrom keeps sendfile for responses that are not compressed.
func (c *writer) ReadFrom(src io.Reader) (int64, error) {
	c.begin()
	if c.decided && c.pass {
		return io.Copy(c.ResponseWriter, src)
	}
	return io.Copy(struct{ io.Writer }{c}, src) // hide ReadFrom: no recursion
}

// Flush sends what is compressed so far: a streamed response keeps
// streaming.
func (c *writer) Flush() {
	c.begin()
	if !c.decided {
		c.decide(true, true) // a streamed body: compress what comes
		if buf := c.buf; len(buf) > 0 {
			c.buf = nil
			c.zw.Write(buf)
		}
	}
	if c.zw != nil {
		c.zw.Flush()
	}
	http.NewResponseController(c.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the real writer.
func (c *writer) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// finish ends the body: a short body is sent as it is, a compressed one is
// closed and its writer returned to the pool.
func (c *writer) finish() {
	if !c.decided {
		if c.status == 0 && len(c.buf) == 0 {
			return // the handler wrote nothing: net/http sends its 200
		}
		if len(c.buf) > 0 {
			c.Header().Set("Content-Length", strconv.Itoa(len(c.buf)))
		}
		c.decide(false, true) // too small this time
		c.ResponseWriter.Write(c.buf)
		return
	}
	if c.zw != nil {
		c.zw.Close()
		c.zw.Reset(nil)
		c.enc.pool.Put(c.zw)
		c.zw = nil
	}
}
