package front

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/whiskserver/whisk/internal/reqinfo"
)

// HTTPSOptions configures HTTPS.
type HTTPSOptions struct {
	// Redirect answers every request that did not come over TLS with a
	// redirect to the same URL over HTTPS: 301 for GET and HEAD (which
	// browsers cache), 308 for other methods (which keeps the method and
	// body).
	Redirect bool
	// Port is the HTTPS port the redirect names; 0 or 443 leaves it out.
	Port int
	// HSTSMaxAge, when positive, adds "Strict-Transport-Security:
	// max-age=N" (whole seconds) to every response sent over TLS.
	HSTSMaxAge time.Duration
}

// HTTPS returns next with the redirect to HTTPS and the HSTS header of
// opts; next itself when opts asks for neither. Requests over TLS are
// those net/http gives a Request.TLS.
func HTTPS(next http.Handler, opts HTTPSOptions) http.Handler {
	if !opts.Redirect && opts.HSTSMaxAge <= 0 {
		return next
	}
	h := &httpsHandler{next: next, redirect: opts.Redirect}
	if opts.Port != 0 && opts.Port != 443 {
		h.port = ":" + strconv.Itoa(opts.Port)
	}
	if opts.HSTSMaxAge > 0 {
		h.hsts = []string{"max-age=" + strconv.FormatInt(int64(opts.HSTSMaxAge/time.Second), 10)}
	}
	return h
}

type httpsHandler struct {
	next     http.Handler
	redirect bool
	port     string   // ":8443", or "" for 443
	hsts     []string // the header's value, or nil
}

// ServeHTTP redirects a plain request or adds HSTS to a TLS one.
func (h *httpsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secure := r.TLS != nil
	if info := reqinfo.From(r.Context()); info != nil && info.Scheme == "https" {
		secure = true // a trusted proxy in front terminated TLS
	}
	if !secure {
		if h.redirect {
			h.redirectHTTPS(w, r)
			return
		}
	} else if h.hsts != nil {
		// Set before the app's headers, which are added after it: a
		// browser heeds the first Strict-Transport-Security (RFC 6797
		// §8.1), so this one wins over an app's own.
		w.Header()["Strict-Transport-Security"] = h.hsts
	}
	h.next.ServeHTTP(w, r)
}

// redirectHTTPS answers with the request's URL on https, the Host's name
// with the HTTPS port.
func (h *httpsHandler) redirectHTTPS(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if name, _, err := net.SplitHostPort(host); err == nil {
		host = name
		if strings.Contains(host, ":") {
			host = "[" + host + "]" // IPv6 literal
		}
	}
	if host == "" {
		http.Error(w, "400 Bad Request: this server redirects to HTTPS, which needs a Host header", http.StatusBadRequest)
		return
	}
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") { // absolute-form, "*", or HTTP/2
		uri = r.URL.RequestURI()
	}
	code := http.StatusPermanentRedirect
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		code = http.StatusMovedPermanently
	}
	w.Header().Set("Location", "https://"+host+h.port+uri)
	w.WriteHeader(code)
}
