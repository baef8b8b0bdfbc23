package app

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/whiskserver/whisk/internal/framing"
	"github.com/whiskserver/whisk/internal/wire"
)

// The front terminates WebSockets for ASGI apps (docs/protocol.md, "ASGI
// WebSocket"): the handshake, framing, ping and pong and UTF-8 checks are
// coder/websocket's; the worker sees whole messages, relayed as MESSAGE
// frames under the stream's credits.

// wsChunk is the largest MESSAGE frame the front sends.
const wsChunk = 256 << 10

// isWebSocket reports whether r asks to upgrade its HTTP/1.1 connection to
// a WebSocket.
func isWebSocket(r *http.Request) bool {
	return r.Method == http.MethodGet && r.ProtoMajor == 1 &&
		hasToken(r.Header, "Connection", "upgrade") && hasToken(r.Header, "Upgrade", "websocket")
}

// hasToken reports whether a comma-separated header holds token (any case).
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// checkHandshake reports what is wrong with a WebSocket handshake request
// that the app could not fix; "" when nothing is.
func checkHandshake(r *http.Request) string {
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		return fmt.Sprintf("Sec-WebSocket-Version %q: only 13 is supported", v)
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return "want one Sec-WebSocket-Key"
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(k) != 16 {
		return "Sec-WebSocket-Key is not 16 bytes in base64"
	}
	return ""
}

// buildWebSocketScope writes an ASGI websocket scope into rb.
func (h *Handler) buildWebSocketScope(rb *wire.RequestBuilder, r *http.Request) {
	scheme := "ws"
	if requestScheme(r) == "https" {
		scheme = "wss"
	}
	h.buildScopeOf(rb, r, "websocket", scheme)
	var protos []string
	for _, v := range r.Header["Sec-Websocket-Protocol"] {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" && utf8.ValidString(p) {
				protos = append(protos, p)
			}
		}
	}
	rb.Key("subprotocols")
	rb.List(len(protos))
	for _, p := range protos {
		rb.Str(p)
	}
}

// isAccept reports whether a RESPONSE head accepts the WebSocket (status
// 101); any other is an HTTP response that refuses it.
func isAccept(head wire.Head) bool {
	return strings.HasPrefix(head.Status, "101") && (len(head.Status) == 3 || head.Status[3] == ' ')
}

// acceptWebSocket completes the handshake with the app's accept head and
// relays messages until both sides are done. It returns once the slot is
// released or handed to drain.
func (ex *exchange) acceptWebSocket(head wire.Head) {
	var protos []string
	hdr := ex.w.Header()
	for _, f := range head.Fields {
		if !validName(f.Name) || !validValue(f.Value) {
			ex.h.Log.Error("app accepted a WebSocket with an invalid header; closing it", "header", f.Name, "request_id", requestID(ex.r), "pid", ex.slot.PID())
			ex.closeWorker(websocket.StatusInternalError, "invalid accept header")
			http.Error(ex.w, "500 Internal Server Error", http.StatusInternalServerError)
			return
		}
		switch strings.ToLower(f.Name) {
		case "sec-websocket-protocol":
			protos = append(protos, f.Value)
		case "upgrade", "connection", "sec-websocket-accept", "sec-websocket-extensions",
			"content-length", "transfer-encoding":
			// The handshake's own: coder/websocket writes them.
		default:
			hdr.Add(f.Name, f.Value)
		}
	}
	c, err := websocket.Accept(hijackWriter{ex.w, ex.r.Context()}, ex.r, &websocket.AcceptOptions{
		Subprotocols: protos,
		// The app checks Origin, as with every ASGI server: it sees the
		// header in the scope (Django Channels' AllowedHostsOriginValidator,
		// Starlette middleware).
		InsecureSkipVerify: true,
	})
	if err != nil {
		// Accept answered the client already.
		ex.h.Log.Debug("WebSocket handshake failed", "error", err, "request_id", requestID(ex.r))
		ex.closeWorker(websocket.StatusAbnormalClosure, "")
		return
	}
	c.SetReadLimit(ex.h.MaxBodySize)
	ex.h.Group.Hold(ex.slot) // a reload or stop does not wait for it: the worker closes it with 1001
	relay := &wsRelay{ex: ex, c: c, credit: newSendCredit(wire.RequestWindow), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(relay.fromClient)
	relay.fromWorker()
	wg.Wait()
}

// hijackWriter hands coder/websocket the connection switched to the
// WebSocket. The front's request framing checks (internal/framing) stop at
// the 101, before it goes out: the client may send its first frame at once,
// and net/http's background read must not check it as a request head. The
// read deadline is cleared, as the server's header and body deadlines must
// not end a long-lived WebSocket; write deadlines stay the front's (each
// write is bounded by write_timeout).
type hijackWriter struct {
	http.ResponseWriter
	ctx context.Context // the request's: it knows the connection
}

func (w hijackWriter) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols {
		framing.PassthroughContext(w.ctx)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	c.SetReadDeadline(time.Time{})
	return c, brw, nil
}

// closeWorker ends the front's half of a WebSocket stream with CLOSE and
// waits, in the background, for the worker to end its own.
func (ex *exchange) closeWorker(code websocket.StatusCode, reason string) {
	ex.mu.Lock()
	if !ex.released {
		_ = ex.conn.Write(appendClose(nil, ex.stream, code, reason))
	}
	ex.mu.Unlock()
	go ex.drain(false)
}

// appendClose appends a CLOSE frame with END_STREAM.
func appendClose(dst []byte, stream uint32, code websocket.StatusCode, reason string) []byte {
	p := binary.LittleEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	p = append(p, reason...)
	return wire.AppendFrame(dst, wire.TypeClose, wire.FlagEnd, stream, p)
}

// wsRelay moves one WebSocket's messages between the client and the worker.
type wsRelay struct {
	ex *exchange
	c  *websocket.Conn

	credit *sendCredit   // message bytes the front may still send the worker
	done   chan struct{} // closed when the worker's half ended

	mu         sync.Mutex
	frontEnded bool // CLOSE sent to the worker
}

// fromClient relays the client's messages to the worker until the client
// closes or leaves, then sends CLOSE.
func (wr *wsRelay) fromClient() {
	ctx := context.Background()
	var buf []byte
	for {
		typ, rd, err := wr.c.Reader(ctx)
		if err == nil {
			buf, err = readMessage(rd, buf[:0])
		}
		if err != nil {
			code := websocket.CloseStatus(err)
			reason := ""
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				reason = ce.Reason
			}
			if code == -1 {
				code = websocket.StatusAbnormalClosure // left without a close frame
			}
			wr.sendClose(code, reason)
			return
		}
		flags := wire.Flags(0)
		if typ == websocket.MessageText {
			flags = wire.FlagText
		}
		if !wr.sendMessage(flags, buf) {
			return
		}
		if cap(buf) > 1<<20 {
			buf = nil // a large message's buffer is not kept for the next
		}
	}
}

// readMessage reads one message into buf; the read limit bounds it.
func readMessage(rd io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// sendMessage sends one message to the worker in MESSAGE frames within the
// credit; false when the worker's half ended first.
func (wr *wsRelay) sendMessage(flags wire.Flags, msg []byte) bool {
	for first := true; first || len(msg) > 0; first = false {
		n, ok := wr.credit.take(min(len(msg), wsChunk), wr.done)
		if !ok {
			return false
		}
		f := flags
		if n < len(msg) {
			f |= wire.FlagMore
		}
		if err := wr.ex.conn.WriteFrame(wire.TypeMessage, f, wr.ex.stream, msg[:n]); err != nil {
			return false
		}
		msg = msg[n:]
	}
	return true
}

// sendClose ends the front's half: the client closed with code, or left.
func (wr *wsRelay) sendClose(code websocket.StatusCode, reason string) {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	if wr.frontEnded {
		return
	}
	wr.frontEnded = true
	ex := wr.ex
	ex.mu.Lock()
	if !ex.released {
		_ = ex.conn.Write(appendClose(nil, ex.stream, code, reason))
		// The worker now has a request timeout to end its half.
		ex.conn.SetReadDeadline(time.Now().Add(ex.h.requestTimeout()))
	}
	ex.mu.Unlock()
}

// fromWorker relays the worker's frames to the client until the worker's
// half ends, then closes the client connection.
func (wr *wsRelay) fromWorker() {
	ex := wr.ex
	defer close(wr.done)
	ex.conn.SetReadDeadline(time.Time{}) // the app may stay silent as long as it likes
	ctx := context.Background()
	var w io.WriteCloser // the message in progress
	for {
		f, err := ex.conn.ReadFrame()
		if err != nil {
			if w != nil {
				w.Close()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// The client is gone and the app did not end its half
				// within the timeout: interrupt it, as for a request.
				ex.h.Log.Warn("the app did not end a closed WebSocket within the timeout; interrupting it", "timeout", ex.h.requestTimeout().String(), "path", ex.r.URL.Path, "request_id", requestID(ex.r), "pid", ex.slot.PID())
				ex.interrupt()
				go ex.drain(true)
			} else {
				ex.release(false)
				ex.h.Log.Warn("worker lost during a WebSocket", "pid", ex.slot.PID(), "error", err, "path", ex.r.URL.Path, "request_id", requestID(ex.r))
			}
			wr.c.Close(websocket.StatusInternalError, "")
			return
		}
		switch f.Type {
		case wire.TypeMessage:
			if w == nil {
				typ := websocket.MessageBinary
				if f.Flags&wire.FlagText != 0 {
					typ = websocket.MessageText
				}
				w, err = wr.c.Writer(ctx, typ)
			}
			if err == nil {
				_, err = w.Write(f.Payload)
			}
			if err == nil && f.Flags&wire.FlagMore == 0 {
				err = w.Close()
				w = nil
			}
			n := len(f.Payload)
			f.Release()
			if err != nil {
				// The client is gone; its reader reports how.
				wr.c.CloseNow()
				w = nil
				continue
			}
			ex.mu.Lock()
			if !ex.released && n > 0 {
				_ = ex.conn.Write(wire.AppendCredit(nil, ex.stream, uint32(n)))
			}
			ex.mu.Unlock()
		case wire.TypeCredit:
			if n, err := wire.ParseCredit(f.Payload); err == nil {
				wr.credit.add(int(n))
			}
		case wire.TypeClose:
			code, reason := parseClose(f.Payload)
			ex.release(true)
			wr.sendClose(code, reason) // nothing more goes to the worker
			if err := wr.c.Close(code, reason); err != nil {
				wr.c.CloseNow()
			}
			return
		case wire.TypeAbort:
			ex.release(true)
			if !ex.isAborted() {
				ex.h.Log.Error("app failed during a WebSocket", "error", string(f.Payload), "path", ex.r.URL.Path, "request_id", requestID(ex.r), "pid", ex.slot.PID())
			}
			wr.sendClose(websocket.StatusInternalError, "")
			wr.c.Close(websocket.StatusInternalError, "")
			return
		default:
			if f.File != nil {
				f.File.Close()
			}
			ex.release(false)
			ex.h.Log.Warn("worker broke the protocol during a WebSocket", "pid", ex.slot.PID(), "error", fmt.Errorf("unexpected %s frame", f.Type))
			wr.c.Close(websocket.StatusInternalError, "")
			return
		}
	}
}

// parseClose reads a CLOSE payload; a short one is 1005 (no status).
func parseClose(p []byte) (websocket.StatusCode, string) {
	if len(p) < 2 {
		return websocket.StatusNoStatusRcvd, ""
	}
	return websocket.StatusCode(binary.LittleEndian.Uint16(p)), string(p[2:])
}
