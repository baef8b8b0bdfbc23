// Command wsload is the WebSocket load generator of the ws-echo benchmark
// (bench/run.py builds it into a temp dir and runs it like wrk): it opens
// -c connections to -url, then on each one sends a small text message and
// waits for the echo, again and again, for -d. It prints one JSON object:
// round trips completed in the measured time, round trips per second, the
// p99 round-trip latency, and the errors by kind.
//
// All connections are opened first (handshakes are not timed); the clock
// starts when the last one is up. A connection that fails is counted and
// redialled. Every echo is compared with what was sent (a difference is a
// "mismatch" error). At the end the connections are closed with 1000.
//
// -check does one connection and three round trips (a text and a binary
// message, then text again) and exits non-zero unless all were echoed
// exactly: the harness's smoke test.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
)

type result struct {
	RoundTrips int64   `json:"round_trips"`
	Seconds    float64 `json:"seconds"`
	RPS        float64 `json:"rps"`
	P99ms      float64 `json:"p99_ms"`
	Conns      int     `json:"conns"`
	Connect    int64   `json:"connect"`
	Read       int64   `json:"read"`
	Write      int64   `json:"write"`
	Timeout    int64   `json:"timeout"`
	Mismatch   int64   `json:"mismatch"`
}

// worker is one connection's loop; its counters are merged at the end.
type worker struct {
	conn                                    *websocket.Conn
	lat                                     []time.Duration
	connect, read, write, timeout, mismatch int64
}

var dialOpts = &websocket.DialOptions{
	// No proxy from the environment, no permessage-deflate: the same plain
	// frames for every server.
	HTTPClient:      &http.Client{Transport: &http.Transport{Proxy: nil}},
	CompressionMode: websocket.CompressionDisabled,
}

func dial(ctx context.Context, url string) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, url, dialOpts)
	return c, err
}

// roundTrip sends msg as typ and reads the echo; the error's kind is
// returned as one of "read", "write", "timeout", "mismatch".
func roundTrip(ctx context.Context, c *websocket.Conn, typ websocket.MessageType, msg []byte) (string, error) {
	if err := c.Write(ctx, typ, msg); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "timeout", err
		}
		return "write", err
	}
	rtyp, data, err := c.Read(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "timeout", err
		}
		return "read", err
	}
	if rtyp != typ || !bytes.Equal(data, msg) {
		return "mismatch", fmt.Errorf("sent %v %q, got %v %q", typ, msg, rtyp, data)
	}
	return "", nil
}

func (w *worker) count(kind string) {
	switch kind {
	case "read":
		w.read++
	case "write":
		w.write++
	case "timeout":
		w.timeout++
	case "mismatch":
		w.mismatch++
	}
}

func check(url string, msg []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := dial(ctx, url)
	if err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	defer c.CloseNow()
	for _, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary, websocket.MessageText} {
		if kind, err := roundTrip(ctx, c, typ, msg); err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
	}
	return c.Close(websocket.StatusNormalClosure, "")
}

func main() {
	url := flag.String("url", "", "ws://HOST:PORT/PATH to connect to")
	conns := flag.Int("c", 64, "connections")
	dur := flag.Duration("d", 10*time.Second, "measured duration")
	text := flag.String("msg", "Hello, World!", "the message sent (as text)")
	smoke := flag.Bool("check", false, "one connection, three round trips (text, binary, text); exit 1 unless all echo exactly")
	flag.Parse()
	if *url == "" || *conns < 1 {
		flag.Usage()
		os.Exit(2)
	}
	msg := []byte(*text)
	if *smoke {
		if err := check(*url, msg); err != nil {
			fmt.Fprintln(os.Stderr, "wsload:", err)
			os.Exit(1)
		}
		return
	}

	// Connect everything first, without timing it.
	base := context.Background()
	workers := make([]*worker, *conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{}
		workers[i] = w
		wg.Go(func() {
			for tries := 0; tries < 3 && w.conn == nil; tries++ {
				c, err := dial(base, *url)
				if err != nil {
					w.connect++
					continue
				}
				w.conn = c
			}
		})
	}
	wg.Wait()

	start := time.Now()
	end := start.Add(*dur)
	// A server that stops answering must not hang the run: every operation
	// runs under a deadline a little past the end.
	ctx, cancel := context.WithDeadline(base, end.Add(10*time.Second))
	defer cancel()
	var stop sync.Once
	stopped := make(chan struct{})
	time.AfterFunc(*dur, func() { stop.Do(func() { close(stopped) }) })
	for _, w := range workers {
		wg.Go(func() {
			for time.Now().Before(end) {
				if w.conn == nil {
					c, err := dial(ctx, *url)
					if err != nil {
						w.connect++
						select {
						case <-stopped:
						case <-time.After(50 * time.Millisecond):
						}
						continue
					}
					w.conn = c
				}
				t0 := time.Now()
				kind, err := roundTrip(ctx, w.conn, websocket.MessageText, msg)
				if err != nil {
					w.count(kind)
					w.conn.CloseNow()
					w.conn = nil
					continue
				}
				if t1 := time.Now(); t1.Before(end) || t1.Equal(end) {
					w.lat = append(w.lat, t1.Sub(t0))
				}
			}
		})
	}
	wg.Wait()
	// Close politely (1000), all at once; not part of the measured time.
	for _, w := range workers {
		if w.conn != nil {
			wg.Go(func() { w.conn.Close(websocket.StatusNormalClosure, "") })
		}
	}
	wg.Wait()

	res := result{Conns: *conns}
	var lat []time.Duration
	for _, w := range workers {
		lat = append(lat, w.lat...)
		res.Connect += w.connect
		res.Read += w.read
		res.Write += w.write
		res.Timeout += w.timeout
		res.Mismatch += w.mismatch
	}
	res.RoundTrips = int64(len(lat))
	res.Seconds = dur.Seconds()
	res.RPS = float64(res.RoundTrips) / dur.Seconds()
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P99ms = float64(lat[(len(lat)*99)/100]) / float64(time.Millisecond)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}
