package static

import (
	"bytes"
	"html"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
)

// serveListing writes a plain HTML listing of the directory d: names
// sorted, escaped for HTML and for the URL, directories with a trailing
// slash, hidden entries left out unless ServeDotfiles, at most maxListing
// entries. The listing is not cached (Cache-Control: no-cache).
func (h *Handler) serveListing(w http.ResponseWriter, r *http.Request, d *os.File) {
	entries, err := d.ReadDir(maxListing + 1)
	if err != nil && len(entries) == 0 {
		// An empty directory reads as io.EOF.
		entries = nil
	}
	truncated := len(entries) > maxListing
	if truncated {
		entries = entries[:maxListing]
	}
	type item struct {
		name string
		dir  bool
	}
	items := make([]item, 0, len(entries))
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") && !h.opts.ServeDotfiles && n != ".well-known" {
			continue
		}
		items = append(items, item{name: n, dir: e.IsDir()})
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.name, b.name) })

	title := html.EscapeString(r.URL.Path)
	var b bytes.Buffer
	b.WriteString("<!doctype html>\n<meta charset=\"utf-8\">\n<title>Index of ")
	b.WriteString(title)
	b.WriteString("</title>\n<h1>Index of ")
	b.WriteString(title)
	b.WriteString("</h1>\n<ul>\n")
	for _, it := range items {
		name := it.name
		if it.dir {
			name += "/"
		}
		// "./" keeps a name with a colon from reading as a URL scheme.
		href := "./" + (&url.URL{Path: name}).EscapedPath()
		b.WriteString(`<li><a href="`)
		b.WriteString(html.EscapeString(href))
		b.WriteString(`">`)
		b.WriteString(html.EscapeString(name))
		b.WriteString("</a></li>\n")
	}
	b.WriteString("</ul>\n")
	if truncated {
		b.WriteString("<p>Only " + strconv.Itoa(maxListing) + " entries are listed.</p>\n")
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(b.Bytes()) //nolint:errcheck // the client went away; nothing to do
	}
}
