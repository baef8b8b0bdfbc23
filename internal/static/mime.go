package static

import (
	"mime"
	"path"
	"strings"
)

// builtinTypes are the types of the common web files, looked up before
// mime.TypeByExtension so that they do not depend on the host's
// /etc/mime.types. Keys are lower case.
var builtinTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".htm":         "text/html; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".webmanifest": "application/manifest+json",
	".xml":         "text/xml; charset=utf-8",
	".txt":         "text/plain; charset=utf-8",
	".csv":         "text/csv; charset=utf-8",
	".md":          "text/markdown; charset=utf-8",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".jpeg":        "image/jpeg",
	".gif":         "image/gif",
	".webp":        "image/webp",
	".avif":        "image/avif",
	".ico":         "image/x-icon",
	".bmp":         "image/bmp",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".ttf":         "font/ttf",
	".otf":         "font/otf",
	".eot":         "application/vnd.ms-fontobject",
	".wasm":        "application/wasm",
	".pdf":         "application/pdf",
	".zip":         "application/zip",
	".gz":          "application/gzip",
	".zst":         "application/zstd",
	".br":          "application/octet-stream",
	".mp4":         "video/mp4",
	".webm":        "video/webm",
	".mp3":         "audio/mpeg",
	".ogg":         "audio/ogg",
	".wav":         "audio/wav",
}

// incompressible are extensions of formats that are compressed already:
// their precompressed siblings are never looked for, which saves the
// lookups on every image or font request.
var incompressible = map[string]bool{
	".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".webp": true,
	".avif": true, ".woff": true, ".woff2": true, ".zip": true, ".gz": true,
	".br": true, ".zst": true, ".mp4": true, ".webm": true, ".mp3": true,
	".ogg": true,
}

// contentType returns the Content-Type for a file name: the built-in table,
// then mime.TypeByExtension, then application/octet-stream (never sniffed).
// text/* types get charset=utf-8 when they carry no charset.
func contentType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if t, ok := builtinTypes[ext]; ok {
		return t
	}
	t := mime.TypeByExtension(ext)
	if t == "" {
		return "application/octet-stream"
	}
	if strings.HasPrefix(t, "text/") && !strings.Contains(t, "charset=") {
		t += "; charset=utf-8"
	}
	return t
}
