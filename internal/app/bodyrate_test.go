package app

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestDeadlineBodyDeadline(t *testing.T) {
	start := time.Unix(1000, 0)
	tests := []struct {
		name    string
		rate    int64
		grace   time.Duration
		idle    time.Duration
		n       int64
		elapsed time.Duration
		want    time.Duration // from start; -1 for none
	}{
		{"no limits", 0, 10 * time.Second, 0, 0, 0, -1},
		{"idle only", 0, 10 * time.Second, time.Minute, 5, 3 * time.Second, 63 * time.Second},
		{"rate: nothing yet, grace holds", 100, 10 * time.Second, 0, 0, 0, 10 * time.Second},
		{"rate: ahead within the grace", 100, 10 * time.Second, 0, 500, 2 * time.Second, 10 * time.Second},
		{"rate: ahead past the grace", 100, 10 * time.Second, 0, 5000, 20 * time.Second, 50 * time.Second},
		{"rate: behind past the grace", 100, 10 * time.Second, 0, 1100, 20 * time.Second, 11 * time.Second},
		{"rate sooner than idle", 100, 10 * time.Second, time.Minute, 0, time.Second, 10 * time.Second},
		{"idle sooner than rate", 1, 10 * time.Second, 5 * time.Second, 1 << 20, 30 * time.Second, 35 * time.Second},
		{"huge body does not overflow", 1, time.Second, 0, 1 << 62, time.Second, time.Duration(1<<63 - 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &deadlineBody{start: start, rate: tt.rate, grace: tt.grace, idle: tt.idle, n: tt.n}
			got := b.deadline(start.Add(tt.elapsed))
			switch {
			case tt.want < 0:
				if !got.IsZero() {
					t.Errorf("deadline %v after start, want none", got.Sub(start))
				}
			case tt.want == time.Duration(1<<63-1):
				if got.Before(start.Add(100 * 365 * 24 * time.Hour)) {
					t.Errorf("deadline %v, want far away", got)
				}
			case !got.Equal(start.Add(tt.want)):
				t.Errorf("deadline %v after start, want %v", got.Sub(start), tt.want)
			}
		})
	}
}

// startBodyServer serves h on a loopback listener.
func startBodyServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = nil
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// slowUpload sends a head announcing size bytes, then send bytes one per
// interval (or nothing after them), and returns the response and when it
// came after the head.
func slowUpload(t *testing.T, addr string, size int, send int, interval time.Duration) (*http.Response, string, time.Duration, net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	start := time.Now()
	fmt.Fprintf(c, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
	go func() {
		for range send {
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(interval)
		}
	}()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body), time.Since(start), c
}

func TestBodyTooSlow(t *testing.T) {
	tests := []struct {
		name        string
		rate        int64
		grace, idle time.Duration
		send        int
		interval    time.Duration
		earliest    time.Duration
	}{
		{"under the rate after the grace", 1000, 300 * time.Millisecond, 0, 100, 20 * time.Millisecond, 300 * time.Millisecond},
		{"stalled, rate", 10, 200 * time.Millisecond, 0, 1, 0, 200 * time.Millisecond},
		{"stalled, no rate", 0, 0, 200 * time.Millisecond, 3, 50 * time.Millisecond, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &Handler{MaxBodySize: 1 << 20, BodyMemory: 4096, BodyMemoryTotal: 1 << 20, TempDir: t.TempDir(),
				MinBodyRate: tt.rate, BodyRateGrace: tt.grace, BodyTimeout: tt.idle, Log: slog.New(slog.DiscardHandler)}
			addr := startBodyServer(t, h) // never reaches the group: the body fails first
			resp, body, took, c := slowUpload(t, addr, 10000, tt.send, tt.interval)
			if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, "too slowly") {
				t.Fatalf("status %d %q, want 408", resp.StatusCode, body)
			}
			if took < tt.earliest || took > tt.earliest+3*time.Second {
				t.Errorf("408 after %v, want soon after %v", took, tt.earliest)
			}
			if !resp.Close {
				t.Error("the 408 does not close the connection")
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := c.Read(make([]byte, 1)); err != io.EOF && !strings.Contains(fmt.Sprint(err), "reset") {
				t.Errorf("connection not closed after the 408: read %d bytes, %v", n, err)
			}
		})
	}
}

// A body read in time leaves no deadline behind: the request stays alive
// while the app takes longer than the grace (net/http's background read
// would otherwise time out and cancel the request's context).
func TestBodyDeadlineCleared(t *testing.T) {
	h := &Handler{MaxBodySize: 1 << 20, BodyMemory: 4096, BodyMemoryTotal: 1 << 20, TempDir: t.TempDir(),
		MinBodyRate: 1, BodyRateGrace: 100 * time.Millisecond, BodyTimeout: 150 * time.Millisecond}
	addr := startBodyServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		db := h.newDeadlineBody(w, r)
		r.Body = db
		b, err := h.readBody(r)
		db.disarm()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer b.close()
		select {
		case <-time.After(500 * time.Millisecond): // "the app", past every deadline
		case <-r.Context().Done():
			http.Error(w, "context cancelled", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "got %d", b.size)
	}))
	for _, size := range []int{10, 100000} {
		resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader(strings.Repeat("y", size)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != fmt.Sprintf("got %d", size) {
			t.Errorf("size %d: %d %q", size, resp.StatusCode, body)
		}
	}
}
