package app

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/whiskserver/whisk/internal/group"
)

// queueTimeout bounds the wait for a worker slot: the group's
// QueueTimeout, or h.Timeout for a group without one.
func (h *Handler) queueTimeout() time.Duration {
	if t := h.Group.QueueTimeout(); t > 0 {
		return t
	}
	return h.Timeout
}

// acquire waits for a worker slot, at most queueTimeout (the group
// enforces its own QueueTimeout).
func (h *Handler) acquire(ctx context.Context) (*group.Slot, error) {
	if h.Group.QueueTimeout() > 0 {
		return h.Group.Acquire(ctx)
	}
	actx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	return h.Group.Acquire(actx)
}

// unavailable answers 503 with Retry-After for a request that got no slot:
// the queue is full, the wait timed out, the group is failed (Retry-After
// is then the time until it retries) or stopping.
func (h *Handler) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	retry := 1
	msg := "503 Service Unavailable: no worker was free to take the request"
	var failed *group.FailedError
	switch {
	case errors.As(err, &failed):
		retry = max(1, int(math.Ceil(time.Until(failed.Retry).Seconds())))
		msg = "503 Service Unavailable: the app is failing to start; try again later"
		h.Log.Debug("request refused: group failed", "error", err, "path", r.URL.Path, "request_id", requestID(r))
	case errors.Is(err, group.ErrQueueFull):
		msg = "503 Service Unavailable: too many requests are waiting for a worker"
		h.Log.Warn("request refused: queue full", "error", err, "path", r.URL.Path, "request_id", requestID(r))
	case errors.Is(err, group.ErrStopped):
		msg = "503 Service Unavailable: the server is stopping"
		h.Log.Debug("request refused: group stopping", "path", r.URL.Path, "request_id", requestID(r))
	default:
		h.Log.Warn("no worker free within the timeout", "timeout", h.queueTimeout().String(), "error", err, "path", r.URL.Path, "request_id", requestID(r))
	}
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	http.Error(w, msg, http.StatusServiceUnavailable)
}
