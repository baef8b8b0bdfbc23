package h1

import (
	"bufio"
	"io"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// pendSize is the most body a response holds back before its head goes out:
// a handler that writes no more and returns gets a Content-Length, a longer
// body without one goes out chunked.
const pendSize = 4 << 10

// response is the http.ResponseWriter of one request. Its buffers come
// from a pool for the time of a request, so an idle connection holds only
// its read buffer.
type response struct {
	c   *conn
	req *http.Request
	hdr http.Header
	out *outBuf

	status      int
	wroteHeader bool  // the status is decided
	headSent    bool  // the head is in out.bw
	handlerDone bool  // the handler returned
	isHEAD      bool  //
	chunked     bool  // the body goes out in chunks
	closeAfter  bool  // the connection closes after this response
	declared    int64 // the Content-Length sent or to send; -1 for none
	written     int64 // body bytes the handler wrote
	failed      bool  // a write to the client failed
	deadlines   bool  // the handler set a deadline: cleared after the request
	keys        []string

	// What WriteHeader saw of the handler's header: later changes to the
	// map do not reach the client, as with net/http.
	hasType  bool     // Content-Type was set (even to nil: no sniffing)
	hasDate  bool     // Date was set
	encoded  bool     // Content-Encoding was set
	connVals []string // the Connection values
}

// outBuf is a response's write buffer, held-back body and header fields.
type outBuf struct {
	bw     *bufio.Writer
	pend   []byte
	fields []byte // the handler's fields but Content-Length, Transfer-Encoding and Connection
}

var outPool = sync.Pool{New: func() any {
	return &outBuf{bw: bufio.NewWriterSize(nil, 4<<10), pend: make([]byte, 0, pendSize), fields: make([]byte, 0, 512)}
}}

func (w *response) reset(req *http.Request) {
	keys, connVals := w.keys[:0], w.connVals[:0]
	*w = response{c: w.c, req: req, hdr: make(http.Header), declared: -1, isHEAD: req.Method == http.MethodHead, keys: keys, connVals: connVals}
	w.out = outPool.Get().(*outBuf)
	w.out.bw.Reset(w.c.nc)
}

// Header returns the response header map.
func (w *response) Header() http.Header { return w.hdr }

// WriteHeader sends an informational (1xx) response at once, or decides
// the final status; a second final status is ignored, as net/http does
// (without its log line).
func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if w.wroteHeader {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		if w.req.ProtoMinor >= 1 { // HTTP/1.0 clients get no 1xx (RFC 9110 §15.2)
			w.writeStatusLine(code)
			w.out.bw.Write(w.appendFields(w.out.fields[:0], false))
			w.out.bw.WriteString("\r\n")
			w.flushOut()
		}
		return
	}
	w.wroteHeader = true
	w.status = code
	h := w.hdr
	if cl := h.Get("Content-Length"); cl != "" {
		w.declared = parseContentLength(cl) // -1 when invalid: left out
	}
	_, w.hasType = h["Content-Type"]
	_, w.hasDate = h["Date"]
	w.encoded = h.Get("Content-Encoding") != ""
	w.connVals = append(w.connVals[:0], h["Connection"]...)
	w.out.fields = w.appendFields(w.out.fields[:0], true)
}

// Write writes body bytes: held back while they fit pendSize and nothing
// was flushed, then straight to the connection's buffered writer.
func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.declared >= 0 && w.written > w.declared {
		return 0, http.ErrContentLength
	}
	if !w.headSent {
		if len(w.out.pend)+len(p) <= cap(w.out.pend) {
			w.out.pend = append(w.out.pend, p...)
			return len(p), nil
		}
		w.sendHead(p)
	}
	return w.writeBody(p)
}

func (w *response) writeBody(p []byte) (int, error) {
	if w.failed {
		return 0, io.ErrClosedPipe
	}
	if w.isHEAD {
		return len(p), nil
	}
	bw := w.out.bw
	if w.chunked {
		var size [16]byte
		bw.Write(strconv.AppendInt(size[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if err == nil && w.chunked {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.failed = true
	}
	return n, err
}

// sendHead decides the framing of the body and puts the head, then the
// held-back body, into the writer. first is the body's first bytes when
// none are held back, for Content-Type sniffing.
func (w *response) sendHead(first []byte) {
	w.headSent = true
	bodyOK := bodyAllowed(w.status)
	pend := w.out.pend
	if w.declared < 0 && w.handlerDone && bodyOK && (!w.isHEAD || len(pend) > 0) {
		w.declared = int64(len(pend))
	}
	if !bodyOK {
		w.declared = -1
	} else if w.declared < 0 && !w.isHEAD {
		if w.req.ProtoMinor >= 1 {
			w.chunked = true
		} else {
			w.closeAfter = true // HTTP/1.0: the body ends with the connection
		}
	}
	sniffed := ""
	if !w.hasType && bodyOK && !w.encoded {
		if len(pend) > 0 {
			first = pend
		}
		if len(first) > 0 {
			sniffed = http.DetectContentType(first)
		}
	}

	reqBodyLeft := int64(0)
	if b, ok := w.req.Body.(*body); ok {
		reqBodyLeft = b.left()
	}
	connClose := httpguts.HeaderValuesContainsToken(w.connVals, "close")
	if w.req.Close || w.c.srv.closing.Load() || reqBodyLeft >= maxDiscard || connClose {
		w.closeAfter = true
	}
	http10 := w.req.ProtoMinor == 0
	if http10 && !(w.isHEAD || w.declared >= 0 || !bodyOK) {
		w.closeAfter = true // HTTP/1.0 keeps the connection only when the body's end is known
	}

	w.writeStatusLine(w.status)
	bw := w.out.bw
	bw.Write(w.out.fields)
	if sniffed != "" {
		bw.WriteString("Content-Type: ")
		bw.WriteString(sniffed)
		bw.WriteString("\r\n")
	}
	if !w.hasDate {
		bw.Write(w.c.srv.dateLine())
	}
	switch {
	case w.closeAfter && connClose: // the handler's own, below
	case w.closeAfter && http10:
		// The close ends the exchange; a Connection field would only
		// contradict it.
		w.connVals = w.connVals[:0]
	case w.closeAfter:
		w.connVals = append(w.connVals[:0], "close")
	case http10 && len(w.connVals) == 0:
		w.connVals = append(w.connVals, "keep-alive")
	}
	for _, v := range w.connVals {
		bw.WriteString("Connection: ")
		bw.WriteString(fieldValue(v))
		bw.WriteString("\r\n")
	}
	if w.declared >= 0 {
		var n [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(n[:0], w.declared, 10))
		bw.WriteString("\r\n")
	} else if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
	if len(pend) > 0 {
		w.out.pend = pend[:0]
		w.writeBody(pend)
	}
}

// writeStatusLine puts the status line into the writer, in the request's
// HTTP version.
func (w *response) writeStatusLine(code int) {
	bw := w.out.bw
	var n [3]byte
	if w.req.ProtoMinor == 0 {
		bw.WriteString("HTTP/1.0 ")
	} else {
		bw.WriteString("HTTP/1.1 ")
	}
	bw.Write(strconv.AppendInt(n[:0], int64(code), 10))
	bw.WriteByte(' ')
	if text := http.StatusText(code); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code ")
		bw.Write(strconv.AppendInt(n[:0], int64(code), 10))
	}
	bw.WriteString("\r\n")
}

// appendFields appends the handler's header fields to dst, sorted by name,
// as net/http writes them: invalid names are left out, values trimmed and
// their line breaks turned into spaces. final leaves out what sendHead
// writes itself (Content-Length, Transfer-Encoding, Connection) and what a
// status without a body must not carry.
func (w *response) appendFields(dst []byte, final bool) []byte {
	keys := w.keys[:0]
	for k := range w.hdr {
		if final {
			switch k {
			case "Content-Length", "Transfer-Encoding", "Connection":
				continue
			case "Content-Type":
				if w.status == http.StatusNotModified {
					continue
				}
			}
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range w.hdr[k] {
			dst = append(dst, k...)
			dst = append(dst, ": "...)
			dst = append(dst, fieldValue(v)...)
			dst = append(dst, "\r\n"...)
		}
	}
	clear(keys)
	w.keys = keys[:0]
	return dst
}

// fieldValue returns v trimmed, its line breaks turned into spaces.
func fieldValue(v string) string {
	v = textproto.TrimString(v)
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	return v
}

// flushOut writes what the writer holds to the connection.
func (w *response) flushOut() error {
	if w.failed {
		return io.ErrClosedPipe
	}
	if err := w.out.bw.Flush(); err != nil {
		w.failed = true
		return err
	}
	return nil
}

// Flush sends the head and what the handler wrote so far.
func (w *response) Flush() { w.FlushError() }

// FlushError is Flush with its error, for http.ResponseController.
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead(nil)
	}
	return w.flushOut()
}

// ReadFrom copies src to the client. With the length known and the
// Content-Type set it flushes the head and hands src to the connection's
// own ReadFrom (sendfile for files); otherwise it copies through Write.
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if left := w.declared - w.written; !w.headSent && left >= 0 && bodyAllowed(w.status) &&
		left <= int64(cap(w.out.pend)-len(w.out.pend)) {
		// A small body joins the head in one write, as net/http does
		// for up to 512 bytes.
		pend := w.out.pend
		n, err := io.ReadFull(src, pend[len(pend):len(pend)+int(left)])
		w.out.pend = pend[:len(pend)+n]
		w.written += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = nil // short: finish closes the connection
		}
		return int64(n), err
	}
	rf, direct := w.c.nc.(io.ReaderFrom)
	if w.headSent {
		direct = direct && !w.chunked && !w.isHEAD
	} else {
		direct = direct && w.declared >= 0 && w.hasType && !w.isHEAD && bodyAllowed(w.status)
	}
	if !direct {
		return io.Copy(writerOnly{w}, src)
	}
	if !w.headSent {
		w.sendHead(nil)
	}
	if err := w.flushOut(); err != nil {
		return 0, err
	}
	if w.declared >= 0 {
		src = io.LimitReader(src, w.declared-w.written) // the connection unwraps it for sendfile
	}
	n, err := rf.ReadFrom(src)
	w.written += n
	if err != nil {
		w.failed = true
	}
	return n, err
}

// SetReadDeadline sets the connection's read deadline, for
// http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error {
	w.deadlines = true
	return w.c.nc.SetReadDeadline(t)
}

// SetWriteDeadline sets the connection's write deadline, for
// http.ResponseController.
func (w *response) SetWriteDeadline(t time.Time) error {
	w.deadlines = true
	return w.c.nc.SetWriteDeadline(t)
}

// EnableFullDuplex is a no-op: the body stays readable while the response
// is written.
func (w *response) EnableFullDuplex() error { return nil }

// finish completes the response after the handler returned and reports
// whether it reached the connection whole.
func (w *response) finish() bool {
	defer func() {
		w.out.pend = w.out.pend[:0]
		w.out.bw.Reset(nil)
		outPool.Put(w.out)
		w.out = nil
	}()
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.handlerDone = true
	if !w.headSent {
		w.sendHead(nil)
	}
	if w.chunked {
		w.out.bw.WriteString("0\r\n\r\n")
	}
	if w.declared >= 0 && !w.isHEAD && w.written != w.declared {
		w.closeAfter = true // the client cannot find the next response
	}
	return w.flushOut() == nil
}

// writerOnly hides ReadFrom, so io.Copy does not call it again.
type writerOnly struct{ io.Writer }

// bodyAllowed reports whether a response with status may have a body.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// dateLine returns "Date: ...\r\n" for the current second.
func (s *Server) dateLine() []byte {
	now := time.Now()
	sec := now.Unix()
	if d := s.date.Load(); d != nil && d.sec == sec {
		return d.line
	}
	line := append([]byte("Date: "), now.UTC().AppendFormat(nil, http.TimeFormat)...)
	d := &dateLine{sec: sec, line: append(line, "\r\n"...)}
	s.date.Store(d)
	return d.line
}

// dateLine is the Date field of one second.
type dateLine struct {
	sec  int64
	line []byte
}
