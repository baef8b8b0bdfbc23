package app

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/whiskserver/whisk/internal/wire"
)

// upload streams a request body to an ASGI worker as it arrives, under the
// stream's credits, instead of reading it whole before a slot is taken: an
// ASGI app gets http.request chunks while the client still sends, and a
// slot of an ASGI worker is a coroutine, not a thread, so a slow upload
// holds little. Bodies that fit the request window are still read first
// (they travel in the REQUEST frame); this is for larger and chunked ones.
type upload struct {
	ex    *exchange
	body  io.Reader // r.Body, with the body rate bounds
	rc    *http.ResponseController
	limit int64 // MaxBodySize

	credit   *sendCredit
	halt     chan struct{} // closed by stop
	haltOnce sync.Once
	done     chan struct{} // closed when run returns

	mu      sync.Mutex
	started bool
	err     error // why the body ended early
}

// streamsBody reports whether r's body goes to an ASGI worker as it
// arrives: larger than the request window, or of unknown length.
func streamsBody(r *http.Request) bool {
	return r.ContentLength > wire.RequestWindow || (r.ContentLength < 0 && len(r.TransferEncoding) > 0)
}

func newUpload(ex *exchange, body io.Reader, rc *http.ResponseController) *upload {
	return &upload{ex: ex, body: body, rc: rc, limit: ex.h.MaxBodySize, credit: newSendCredit(wire.RequestWindow),
		halt: make(chan struct{}), done: make(chan struct{})}
}

// start starts run in its own goroutine.
func (u *upload) start() {
	u.mu.Lock()
	u.started = true
	u.mu.Unlock()
	go u.run()
}

// run sends the body in DATA frames as credit allows, the last with
// END_STREAM. A body over the limit, too slow or cut short cancels the
// stream (the app's receive() sees http.disconnect) and records why.
func (u *upload) run() {
	defer close(u.done)
	buf := wire.GetBuffer(chunkSize)
	defer wire.PutBuffer(buf)
	var total int64
	for {
		n, ok := u.credit.take(chunkSize, u.halt)
		if !ok {
			return
		}
		m, err := u.body.Read((*buf)[:n])
		u.credit.add(n - m)
		total += int64(m)
		if total > u.limit {
			u.fail(errTooLarge)
			return
		}
		end := errors.Is(err, io.EOF)
		if m > 0 || end {
			var flags wire.Flags
			if end {
				flags = wire.FlagEnd
			}
			if !u.send(flags, (*buf)[:m]) {
				return
			}
		}
		if end {
			return
		}
		if err != nil {
			u.fail(err)
			return
		}
	}
}

// send writes one DATA frame unless the stream is over; false when it is.
func (u *upload) send(flags wire.Flags, p []byte) bool {
	ex := u.ex
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if ex.released || ex.aborted {
		return false
	}
	return ex.conn.WriteFrame(wire.TypeData, flags, ex.stream, p) == nil
}

// grant adds the credit of a CREDIT frame.
func (u *upload) grant(n uint32) { u.credit.add(int(n)) }

func (u *upload) fail(err error) {
	u.mu.Lock()
	u.err = err
	u.mu.Unlock()
	u.ex.cancel()
}

// failure is why the body ended early, or nil.
func (u *upload) failure() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// stop ends the upload and waits until it no longer reads the body, which
// must be so before ServeHTTP returns: a read blocked on the client is cut
// with a read deadline in the past (set again until it takes, as the body
// rate bound re-arms its own before each read).
func (u *upload) stop() {
	u.haltOnce.Do(func() { close(u.halt) })
	u.mu.Lock()
	started := u.started
	u.mu.Unlock()
	if !started {
		return
	}
	for {
		select {
		case <-u.done:
			return
		case <-time.After(10 * time.Millisecond):
			u.rc.SetReadDeadline(time.Unix(1, 0))
		}
	}
}

// answerFailure answers a request whose body ended early, before the
// response started; false when the body did not fail.
func (u *upload) answerFailure(w http.ResponseWriter, r *http.Request) bool {
	err := u.failure()
	switch {
	case err == nil:
		return false
	case errors.Is(err, errTooLarge):
		u.ex.h.tooLarge(w)
	case errors.Is(err, errBodyTimeout):
		u.ex.h.bodyTimeout(w, r, err)
	default:
		u.ex.h.Log.Debug("request body not read", "error", err, "remote", r.RemoteAddr)
		w.Header().Set("Connection", "close")
		http.Error(w, "400 Bad Request: the request body could not be read", http.StatusBadRequest)
	}
	return true
}
