package app

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"time"
)

// DefaultBodyRateGrace is the Handler.BodyRateGrace used when it is zero:
// a body may arrive slower than MinBodyRate for that long.
const DefaultBodyRateGrace = 10 * time.Second

// errBodyTimeout reports a request body that came too slowly: under
// MinBodyRate on average past the grace, or nothing for BodyTimeout.
var errBodyTimeout = errors.New("request body too slow")

// deadlineBody bounds the reads of a request body with read deadlines on
// the connection (http.ResponseController), so a slow or stalled client
// fails the read instead of holding the request forever. Before each read
// it sets the deadline to the sooner of BodyTimeout from now and the moment
// the average rate since start falls under MinBodyRate (never before the
// grace). A read that fails at that deadline returns errBodyTimeout.
type deadlineBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	n     int64 // bytes read so far
	rate  int64 // MinBodyRate; 0 for none
	grace time.Duration
	idle  time.Duration // BodyTimeout; 0 for none
	armed bool          // a read deadline is set
	late  bool          // the body came too slowly: the deadline stays passed
	now   func() time.Time
}

// newDeadlineBody wraps r.Body when h bounds body reads; it returns nil
// when it does not.
func (h *Handler) newDeadlineBody(w http.ResponseWriter, r *http.Request) *deadlineBody {
	if (h.MinBodyRate <= 0 && h.BodyTimeout <= 0) || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	grace := h.BodyRateGrace
	if grace <= 0 {
		grace = DefaultBodyRateGrace
	}
	return &deadlineBody{
		ReadCloser: r.Body,
		rc:         http.NewResponseController(w),
		start:      time.Now(),
		rate:       h.MinBodyRate,
		grace:      grace,
		idle:       h.BodyTimeout,
		now:        time.Now,
	}
}

// deadline returns when the next read must have returned; zero for never.
func (b *deadlineBody) deadline(now time.Time) time.Time {
	var d time.Time
	if b.idle > 0 {
		d = now.Add(b.idle)
	}
	if b.rate > 0 {
		// The average b.n/elapsed stays at or over rate until elapsed
		// reaches b.n/rate; it is not checked before the grace ends.
		behind := time.Duration(math.MaxInt64)
		if secs := float64(b.n) / float64(b.rate); secs < behind.Seconds() {
			behind = time.Duration(secs * float64(time.Second))
		}
		r := b.start.Add(max(b.grace, behind))
		if d.IsZero() || r.Before(d) {
			d = r
		}
	}
	return d
}

// Read reads body bytes under the deadline.
func (b *deadlineBody) Read(p []byte) (int, error) {
	now := b.now()
	if d := b.deadline(now); !d.IsZero() {
		if !now.Before(d) {
			return 0, b.tooSlow(now)
		}
		if err := b.rc.SetReadDeadline(d); err == nil {
			b.armed = true
		}
	}
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = b.tooSlow(b.now())
	case errors.Is(err, io.EOF):
		// Clear it at once: net/http's background read, which starts at
		// the end of the body, must not time out while the app runs.
		b.disarm()
	}
	return n, err
}

// tooSlow gives the body up: the read deadline stays in the past, so
// net/http does not wait for the rest of the body after the 408 (it would
// try to skip it to keep the connection) and closes the connection.
func (b *deadlineBody) tooSlow(now time.Time) error {
	b.late, b.armed = true, false
	b.rc.SetReadDeadline(time.Unix(1, 0))
	return fmt.Errorf("%w: %d bytes in %v", errBodyTimeout, b.n, now.Sub(b.start).Round(time.Millisecond))
}

// disarm clears the read deadline Read set once the body is read or given
// up for another reason; after a 408 it leaves it passed.
func (b *deadlineBody) disarm() {
	if b == nil || !b.armed || b.late {
		return
	}
	b.armed = false
	b.rc.SetReadDeadline(time.Time{})
}

// bodyTimeout answers a request whose body came too slowly and closes the
// connection: its unread rest cannot be skipped in time.
func (h *Handler) bodyTimeout(w http.ResponseWriter, r *http.Request, err error) {
	h.Log.Debug("request body too slow", "error", err, "remote", r.RemoteAddr, "min_body_rate", h.MinBodyRate)
	w.Header().Set("Connection", "close")
	http.Error(w, "408 Request Timeout: the request body came too slowly", http.StatusRequestTimeout)
}
