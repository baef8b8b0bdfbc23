package e2e

// The layered request timeout: 504 at the timeout, the stuck thread
// interrupted (RequestTimeout raised in it, its stack in the log), and a
// thread that stays stuck in C past the grace gets its process recycled
// gracefully, the other requests on that process finishing first.

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// appFrame is the stack line of the app's function in the log (the front
// may quote the worker's line).
var appFrame = regexp.MustCompile(`File \\?"[^"\n]*/stuck\.py\\?", line \d+, in spin_forever`)

// streamBody is what stuck.py's /stream?n=N sends.
func streamBody(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "block %d\n", i)
	}
	return b.String()
}

// startStream starts GET /stream?n=N&d=D in the background; the channel
// gets the status and body, or an error.
func startStream(s *whisktest.Server, n int, d string) <-chan string {
	out := make(chan string, 1)
	go func() {
		code, body, err := tryGet(s, fmt.Sprintf("/stream?n=%d&d=%s", n, d))
		if err != nil {
			out <- "error: " + err.Error()
			return
		}
		out <- fmt.Sprintf("%d %s", code, body)
	}()
	return out
}

// waitResult waits (bounded) for a result of startStream.
func waitResult(t *testing.T, s *whisktest.Server, c <-chan string) string {
	t.Helper()
	select {
	case r := <-c:
		return r
	case <-time.After(30 * time.Second):
		t.Fatalf("the concurrent request did not finish within 30s%s", serverOutput(s))
		return ""
	}
}

func TestTimeoutInterruptsBusyLoop(t *testing.T) {
	t.Parallel()
	s := startApp(t, "stuck.py", "--processes", "1", "--threads", "2", "--timeout", "1s")
	pid := workerPID(t, s)

	// A healthy streamed response on the other thread: a block every 0.2 s
	// for 2 s, past the 504 and the interrupt.
	other := startStream(s, 10, "0.2")
	time.Sleep(100 * time.Millisecond)

	resp, body := fetch(t, s, http.MethodGet, "/spin", nil)
	mustStatus(t, s, resp, body, http.StatusGatewayTimeout)

	// The stuck thread's stack, with the app's function and file, and the
	// interrupt freeing it.
	waitOutput(t, s, "timed out; raising RequestTimeout")
	waitOutput(t, s, "in spin_forever")
	waitOutput(t, s, "]: the app's thread was interrupted and is free again")
	if !appFrame.MatchString(s.Output.String()) {
		t.Errorf("the log has no stack line naming stuck.py and spin_forever%s", serverOutput(s))
	}

	if got, want := waitResult(t, s, other), "200 "+streamBody(10); got != want {
		t.Errorf("the request on the other thread got %q, want %q%s", got, want, serverOutput(s))
	}

	// Both threads of the same process serve again: the interrupted one
	// was not retired.
	done := make(chan string, 2)
	for range 2 {
		go func() {
			code, body, err := tryGet(s, "/stream?n=3&d=0.2")
			done <- fmt.Sprint(code, " ", body, err)
		}()
	}
	for range 2 {
		if got, want := waitResult(t, s, done), "200 "+streamBody(3)+"<nil>"; got != want {
			t.Errorf("a request after the interrupt got %q, want %q%s", got, want, serverOutput(s))
		}
	}
	if after := workerPID(t, s); after != pid {
		t.Errorf("worker %d was replaced by %d; an interrupted thread should not recycle its process%s", pid, after, serverOutput(s))
	}
}

func TestTimeoutRecyclesProcessOfThreadStuckInC(t *testing.T) {
	t.Parallel()
	// The grace defaults to the request timeout: the recycle starts about
	// 2 s after the stuck request.
	s := startApp(t, "stuck.py", "--processes", "1", "--threads", "2", "--timeout", "1s")
	pid := workerPID(t, s)

	// On the other thread, a response that lasts past the recycle: a
	// block every 0.25 s for 4 s.
	other := startStream(s, 16, "0.25")
	time.Sleep(100 * time.Millisecond)

	resp, body := fetch(t, s, http.MethodGet, "/sleep-forever", nil)
	mustStatus(t, s, resp, body, http.StatusGatewayTimeout)
	waitOutput(t, s, "in sleep_forever")
	waitOutput(t, s, "recycling worker")

	// The other request on the recycled process finishes whole.
	if got, want := waitResult(t, s, other), "200 "+streamBody(16); got != want {
		t.Errorf("the request on the other thread got %q, want %q%s", got, want, serverOutput(s))
	}

	// A new worker takes over; requests keep succeeding.
	var after int
	if !poll(30*time.Second, func() bool {
		code, body, err := tryGet(s, "/pid")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /pid during the recycle: %d %q %v%s", code, body, err, serverOutput(s))
		}
		fmt.Sscan(body, &after)
		return after != pid
	}) {
		t.Fatalf("worker %d still answers 30s after its thread got stuck%s", pid, serverOutput(s))
	}
	for range 5 {
		if got := workerPID(t, s); got != after {
			t.Errorf("GET /pid = %d, want the new worker %d", got, after)
		}
	}
	// The old process exits once its other requests are done: the stuck
	// thread does not hold it until the graceful timeout (30 s).
	if !poll(15*time.Second, func() bool { return !procAlive(pid) }) {
		t.Errorf("the recycled worker %d is still alive 15s after its last request%s", pid, serverOutput(s))
	}
}

func TestTimeoutAfterClientLeft(t *testing.T) {
	t.Parallel()
	s := startApp(t, "stuck.py", "--processes", "1", "--threads", "1", "--timeout", "1s")
	pid := workerPID(t, s)

	// The client leaves before the timeout: the app is not interrupted at
	// once (its work may be legitimate), but one request timeout later it
	// is, like a request that timed out.
	c := dial(t, s)
	send(t, c, "GET /spin HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	c.Close()
	waitOutput(t, s, "the app did not end a cancelled request within the timeout; interrupting its thread")
	waitOutput(t, s, "]: the app's thread was interrupted and is free again")
	if !appFrame.MatchString(s.Output.String()) {
		t.Errorf("the log has no stack line naming stuck.py and spin_forever%s", serverOutput(s))
	}
	if after := workerPID(t, s); after != pid {
		t.Errorf("worker %d was replaced by %d; an interrupted thread should not recycle its process%s", pid, after, serverOutput(s))
	}
}
