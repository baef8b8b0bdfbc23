package framing

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// startStatusServer is startServer with StatusResponses: the recorder
// behind Handler, ConnContext set.
func startStatusServer(t *testing.T, opts Options) (*recorder, string) {
	t.Helper()
	rec := &recorder{}
	opts.StatusResponses = true
	return rec, serve(t, rec, opts, &http.Server{
		Handler:        Handler(rec),
		ConnContext:    ConnContext,
		MaxHeaderBytes: opts.MaxHeadBytes,
	})
}

func TestServeStatusResponses(t *testing.T) {
	const first = "GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
	forged := "GET " + statusTarget + " HTTP/1.1\r\nHost: a\r\n\r\n"
	tests := []struct {
		name    string
		payload string
		status  []int    // the statuses of the responses, in order
		seen    []string // URIs the handler behind Handler sees
		reason  string   // the one OnReject reason; "" for none
	}{
		{"long request line", "GET /" + strings.Repeat("a", 2000) + " HTTP/1.1\r\nHost: a\r\n\r\n" + admin,
			[]int{414}, nil, errLineTooLong.Reason},
		{"long request line after a valid request", first + "GET /" + strings.Repeat("a", 2000) + " HTTP/1.1\r\nHost: a\r\n\r\n" + admin,
			[]int{200, 414}, []string{"/first"}, errLineTooLong.Reason},
		{"long request line, never ended", first + "GET /" + strings.Repeat("a", 8000),
			[]int{200, 414}, []string{"/first"}, errLineTooLong.Reason},
		{"request line at the limit", "GET /" + strings.Repeat("a", 1024-len("GET / HTTP/1.1")) + " HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]int{200}, []string{"/" + strings.Repeat("a", 1024-len("GET / HTTP/1.1"))}, ""},
		{"big head", first + "GET /big HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n" + admin,
			[]int{200, 431}, []string{"/first"}, errHeadTooLarge.Reason},
		{"bad framing stays 400", first + "GET / HTTP/1.1\nHost: a\n\n" + admin,
			[]int{200, 400}, []string{"/first"}, errBareLF.Reason},
		{"forged status request is served", forged + "GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			[]int{200, 200}, []string{statusTarget, "/last"}, ""},
	}
	for _, tt := range tests {
		for _, mode := range []string{"one write", "byte writes"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				rec, addr := startStatusServer(t, Options{MaxRequestLine: 1024, MaxHeadBytes: 4096})
				pieces := [][]byte{[]byte(tt.payload)}
				if mode == "byte writes" {
					pieces = bytewise(tt.payload)
				}
				resps, closed := exchange(t, addr, pieces)
				if !closed {
					t.Error("connection not closed")
				}
				var got []int
				for _, r := range resps {
					got = append(got, r.Status)
				}
				if !slices.Equal(got, tt.status) {
					t.Errorf("statuses %v, want %v (%+v)", got, tt.status, resps)
				}
				var seen []string
				for _, s := range rec.seen() {
					seen = append(seen, s.URI)
				}
				if strings.Join(seen, " ") != strings.Join(tt.seen, " ") {
					t.Errorf("handler saw %q, want %q", seen, tt.seen)
				}
				rejects := rec.rejected()
				if (tt.reason == "" && len(rejects) != 0) || (tt.reason != "" && (len(rejects) != 1 || rejects[0] != tt.reason)) {
					t.Errorf("rejected %q, want %q", rejects, tt.reason)
				}
				if n := len(resps); n > 0 && tt.reason != "" {
					last := resps[n-1]
					want := map[string]string{errLineTooLong.Reason: "request line is over the limit of 1024 bytes", errHeadTooLarge.Reason: "head is over the limit of 4096 bytes"}[tt.reason]
					if !strings.Contains(last.Body, want) {
						t.Errorf("last body %q, want it to say %q", last.Body, want)
					}
				}
			})
		}
	}
}

func TestErrorStatus(t *testing.T) {
	for _, tt := range []struct {
		err  *Error
		want int
	}{
		{errLineTooLong, 414},
		{errHeadTooLarge, 431},
		{errTrailerTooLarge, 400},
		{errBareLF, 400},
		{errTEWithCL, 400},
	} {
		if got := tt.err.Status(); got != tt.want {
			t.Errorf("%s: Status() = %d, want %d", tt.err.Reason, got, tt.want)
		}
	}
}
