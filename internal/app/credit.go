package app

import "sync"

// sendCredit counts the bytes the front may still send a worker on one
// stream — a streamed request body (upload.go) or WebSocket messages
// (websocket.go) — as the worker's CREDIT frames grant them. One sender
// waits in take; the stream's frame reader adds.
type sendCredit struct {
	mu   sync.Mutex
	n    int
	more chan struct{} // room for one: credit arrived
}

func newSendCredit(n int) *sendCredit {
	return &sendCredit{n: n, more: make(chan struct{}, 1)}
}

// take waits for credit and takes up to want bytes of it (want 0 takes
// none, at once); false once stop is closed.
func (c *sendCredit) take(want int, stop <-chan struct{}) (int, bool) {
	for {
		select {
		case <-stop:
			return 0, false
		default:
		}
		c.mu.Lock()
		if want == 0 || c.n > 0 {
			n := min(want, c.n)
			c.n -= n
			c.mu.Unlock()
			return n, true
		}
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-stop:
			return 0, false
		}
	}
}

// add gives n bytes: a CREDIT frame's, or bytes taken and not sent.
func (c *sendCredit) add(n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}
