// Package static serves the files of a directory for a URL prefix: the
// static mounts of whisk's web-server role (--static /static/=DIR), built
// to stand where nginx's "location /static/ { alias DIR/; }" stood.
//
// A [Handler] is an [http.Handler] for a route mount: it receives the full
// request (r.URL.Path still carries the prefix) and answers every request
// itself. Build it with [New], release it with [Handler.Close].
//
// # Paths
//
// The file is the part of the decoded r.URL.Path after the prefix. Empty
// segments are merged ("a//b" is "a/b", as nginx's merge_slashes). The
// handler answers 404, without touching the file system, when the path
//
//   - is not under the prefix;
//   - has a "." or ".." segment, raw or percent-encoded (%2e%2e): the
//     handler never cleans a path, since a cleaned path may belong to
//     another mount;
//   - had an encoded slash, backslash or NUL in the request (%2F, %5C,
//     %00: Apache's AllowEncodedSlashes Off), or holds a backslash or NUL;
//   - has a segment starting with "." (".env", ".git/"), unless
//     Options.ServeDotfiles; ".well-known" is always allowed (RFC 8615).
//
// Files are opened through an [os.Root] for the directory, opened once by
// New, which refuses any resolution that leaves it: a symbolic link inside
// the root is followed while it stays inside, and a link that points out,
// an absolute link (even to a file inside) or a loop gets 404, never 500.
// Options.AllowSymlinksOutside lets links leave the root (nginx's default,
// disable_symlinks off): names are then resolved by the kernel from the
// root's path at request time. Only regular files and directories are
// served; a FIFO, socket or device gets 404 (files are opened with
// O_NONBLOCK, so a FIFO cannot hang the request). A permission error gets
// 403, as in nginx; running out of descriptors or an I/O error gets a bare
// 500 and a line in Options.Log. Error bodies are the status line only and
// never name a path.
//
// Because the root is a directory handle, a deploy that switches a symlink
// above it ("current -> releases/42") is seen by the Handler built on the
// next reload, not by the running one.
//
// # Methods and directories
//
// GET and HEAD are served (HEAD: the same headers, no body); any other
// method gets 405 with "Allow: GET, HEAD". A directory gets 404 unless
// Options.Index or Options.Listing is set; then a path without the
// trailing slash is redirected (301) to the one with it, the Index file is
// served if it is a regular file, and otherwise Listing gives a plain HTML
// list (names sorted and escaped, hidden entries left out unless
// ServeDotfiles, at most 10 000 entries, Cache-Control: no-cache). A file
// named with a trailing slash ("app.js/") gets 404.
//
// # Headers
//
//   - Content-Type from the extension, case-insensitively: a built-in table
//     of the common web types first (so results do not depend on
//     /etc/mime.types), then mime.TypeByExtension, then
//     application/octet-stream; content is never sniffed. text/* types carry
//     "charset=utf-8". Every file response has
//     "X-Content-Type-Options: nosniff".
//   - ETag, strong: the served file's modification time in nanoseconds and
//     its size, in hex, plus "-br", "-zstd" or "-gzip" for a precompressed
//     sibling, whose own time and size are used, so each representation
//     has its own tag. Like nginx's, it cannot see a rewrite that keeps
//     both size and time.
//   - Last-Modified: the served file's modification time.
//   - Cache-Control: ImmutableCacheControl ("public, max-age=31536000,
//     immutable") when the requested base name matches
//     Options.ImmutablePattern (default [DjangoHashedPattern]: Django's
//     ManifestStaticFilesStorage names such as app.3f2a9c8e1b7d.js);
//     otherwise "public, max-age=N" for Options.MaxAge, or none when it is
//     zero. Cache-Control, ETag and Vary are kept on 304 responses.
//   - Accept-Ranges: bytes.
//
// # Conditional and range requests
//
// These are [http.ServeContent]'s, given the headers above: If-Match and
// If-Unmodified-Since → 412; If-None-Match (weak comparison, "*") and,
// without it, If-Modified-Since → 304; Range → 206 with Content-Range, a
// single range as is and several as multipart/byteranges; an unsatisfiable
// range → 416 with "Content-Range: bytes */SIZE" (a Range on an empty file
// gets 200); If-Range with an ETag (strong match) or a date. A Range header
// with more than Options.MaxRanges ranges (default 16) gets the whole file
// with 200, and so do ranges that add up to more than the file.
//
// # Precompressed siblings
//
// For a file whose extension is not a compressed format already (images
// other than SVG, fonts, archives, audio and video are skipped), the
// handler looks for NAME.br, NAME.zst and NAME.gz (Options.Precompressed)
// among the codings the request's Accept-Encoding accepts: q-values are
// honoured, q=0 excludes, "*" covers the codings not named, "x-gzip" is
// gzip, an explicit identity with a higher q-value wins over them, and
// equal q-values go by the order of Options.Precompressed (br, zstd,
// gzip). The best acceptable sibling that is a regular file is served with
// Content-Encoding; as with nginx's gzip_static, its age is not compared
// with the original's, but the original must exist: it decides 404 and
// directories. "Vary: Accept-Encoding" is sent on every response for such
// a file, whether or not a sibling exists or was chosen, because Vary must
// be the same for every request of a resource, and checking for siblings
// on every request would cost up to three lookups. Ranges of a
// precompressed response count bytes of the compressed file, and its ETag
// is its own, so If-Range cannot mix representations.
//
// # Open files and sendfile
//
// Like nginx's open_file_cache, the handler keeps the regular files it
// serves open between requests (Options.FileCacheSize, default 1000), with
// their ETag, Last-Modified and Content-Length already formatted, so a
// request for a known file costs no open, fstat or close. A cached file is
// checked again (one stat by name, comparing device, inode, size and
// modification time) when it is requested more than Options.FileCacheValid
// (default 1 s) after its last check: a file changed in place, replaced by
// a rename or deleted is seen within that time. Files not requested for a
// minute are closed, so a deleted file's disk space is not held. The
// absence of a precompressed sibling is remembered the same way, so a
// client that accepts br costs no failed open per request.
//
// All the requests for a file share its descriptor: the body goes out as a
// [filerange.Range], which reads at its own offset with pread and which
// the front's connections (framing.Conn and the front's wrappers, through
// [filerange.Send]) hand to sendfile(2) at that offset. A plain GET or
// HEAD, without Range or conditional headers, is answered by the handler
// itself: the response head is flushed into the corked socket (see
// [Corker]) and the whole file follows with one sendfile. Conditional and
// range requests go through http.ServeContent, whose io.CopyN of the Range
// reaches the same sendfile path; only multipart ranges are copied through
// a pipe. A precompressed response served by ServeContent needs a small
// ResponseWriter wrapper that adds Content-Encoding after ServeContent has
// set Content-Length (it leaves Content-Length out when Content-Encoding
// is set first, which would make the response chunked); the wrapper
// forwards ReadFrom. Over HTTP/2 and TLS the body is copied instead.
package static
