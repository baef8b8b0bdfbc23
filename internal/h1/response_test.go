package h1

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	get11   = "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"
	head11  = "HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n"
	get10   = "GET /x HTTP/1.0\r\n\r\n"
	get10KA = "GET /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
	head10  = "HEAD /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
)

func post(n int, fill byte) string {
	return "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(n) + "\r\n\r\n" + strings.Repeat(string(fill), n)
}

// TestDifferential runs each handler behind the loop and behind a plain
// http.Server and compares what a client sees: the 1xx responses, the
// status, the header fields but Date (and that both send Date), the
// framing, the body, what the handler observed, and whether the
// connection serves a second request.
func TestDifferential(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 512) // 8 KiB: streamed, not held back
	html := "<!DOCTYPE html><html><body>hello</body></html>"
	probe := make(chan error, 4)

	cases := []struct {
		name  string
		req   string
		h     http.HandlerFunc
		probe bool // the handler sends one value on probe
	}{
		{name: "small body", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "hello")
		}},
		{name: "small body with Content-Length", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "5")
			w.Write([]byte("hello"))
		}},
		{name: "big body is chunked", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(big))
		}},
		{name: "big body in small writes", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			for i := 0; i < len(big); i += 100 {
				io.WriteString(w, big[i:min(i+100, len(big))])
			}
		}},
		{name: "big body with Content-Length", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			w.Write([]byte(big))
		}},
		{name: "big body HTTP/1.0", req: get10, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(big))
		}},
		{name: "big body HTTP/1.0 keep-alive", req: get10KA, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(big))
		}},
		{name: "small body HTTP/1.0", req: get10, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "hello")
		}},
		{name: "small body HTTP/1.0 keep-alive", req: get10KA, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "hello")
		}},
		{name: "nothing written HTTP/1.0 keep-alive", req: get10KA, h: func(w http.ResponseWriter, r *http.Request) {}},
		{name: "204 HTTP/1.0 keep-alive", req: get10KA, h: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}},
		{name: "HEAD HTTP/1.0 keep-alive", req: head10, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
		}},
		{name: "HTTP/1.0 keep-alive, handler closes", req: get10KA, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}},
		{name: "HTTP/1.0, handler says keep-alive", req: get10,
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "keep-alive")
				io.WriteString(w, "hello")
			}},
		{name: "HTTP/1.0 keep-alive, streamed, handler says keep-alive", req: get10KA,
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Connection", "keep-alive")
				w.Header().Set("Content-Type", "text/plain")
				w.Write([]byte(big))
			}},
		{name: "request close, handler says keep-alive", req: "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "keep-alive")
			io.WriteString(w, "bye")
		}},
		{name: "HEAD with body", req: head11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "hello")
		}},
		{name: "HEAD without body", req: head11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
		}},
		{name: "HEAD with Content-Length", req: head11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "1234")
		}},
		{name: "HEAD with big body", req: head11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(big))
		}},
		{name: "HEAD sniffed", req: head11, h: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, html)
		}},
		{name: "204", req: get11, probe: true, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-A", "1")
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusNoContent)
			_, err := io.WriteString(w, "body")
			probe <- err
		}},
		{name: "204 with Content-Length", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			w.WriteHeader(http.StatusNoContent)
		}},
		{name: "304", req: get11, probe: true, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Content-Length", "100")
			w.Header().Set("ETag", `"abc"`)
			w.WriteHeader(http.StatusNotModified)
			_, err := w.Write([]byte("body"))
			probe <- err
		}},
		{name: "sniffed html", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, html)
		}},
		{name: "sniffed over two writes", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<!DOCTYPE ")
			io.WriteString(w, "html><p>x</p>")
		}},
		{name: "sniffed binary", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))
		}},
		{name: "sniffed big body", req: get11,
			h: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, html+big)
			}},
		{name: "no sniffing with nil Content-Type", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			io.WriteString(w, html)
		}},
		{name: "no sniffing with Content-Encoding", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00"))
		}},
		{name: "handler sets Connection: close", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}},
		{name: "request Connection: close", req: "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", h: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "bye")
		}},
		{name: "nothing written", req: get11, h: func(w http.ResponseWriter, r *http.Request) {}},
		{name: "status only", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusAccepted)
		}},
		{name: "103 early hints", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload; as=style")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "ok")
		}},
		{name: "two 1xx", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</a.js>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Add("Link", "</b.js>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusCreated)
		}},
		{name: "short Content-Length", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "12345")
		}},
		{name: "short Content-Length flushed", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "12345")
			w.(http.Flusher).Flush()
		}},
		{name: "write past Content-Length", req: get11, probe: true, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "5")
			w.Write([]byte("hello"))
			_, err := w.Write([]byte("!"))
			probe <- err
		}},
		{name: "WriteString past Content-Length", req: get11, probe: true, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hel")
			_, err := io.WriteString(w, "lo!")
			probe <- err
		}},
		{name: "Flush then write", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
		}},
		{name: "Flush with nothing written", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
		}},
		{name: "Flush HTTP/1.0 keep-alive", req: get10KA, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "streamed")
			w.(http.Flusher).Flush()
		}},
		{name: "WriteHeader twice", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusCreated)
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "created")
		}},
		{name: "unknown status", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(299)
		}},
		{name: "http.Error", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", http.StatusForbidden)
		}},
		{name: "header values sanitized", req: get11, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["X-Newline"] = []string{"a\r\nb", " padded\t"}
			w.Header()["Bad Name"] = []string{"dropped"}
			w.Header()["X-Empty"] = []string{""}
		}},
		{name: "header changed after WriteHeader", req: get11,
			h: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusOK)
				w.Header().Set("X-Late", "1")
				io.WriteString(w, "late")
			}},
		{name: "POST read fully", req: post(11, 'a'), h: echo},
		{name: "POST read partly", req: post(1000, 'b'), h: func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.ReadFull(r.Body, make([]byte, 10))
			fmt.Fprintf(w, "read %d", n)
		}},
		{name: "POST body ignored", req: post(100, 'c'), h: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ignored")
		}},
		{name: "POST body closed unread", req: post(100, 'd'), probe: true, h: func(w http.ResponseWriter, r *http.Request) {
			r.Body.Close()
			_, err := r.Body.Read(make([]byte, 1))
			probe <- err
			io.WriteString(w, "closed")
		}},
		{name: "POST big body read partly", req: post(200<<10, 'e'), h: func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.ReadFull(r.Body, make([]byte, 64<<10))
			fmt.Fprintf(w, "read %d", n)
		}},
		{name: "POST over 256 KiB ignored", req: post(300<<10, 'f'), h: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ignored")
		}},
		{name: "POST read fully HTTP/1.0 keep-alive", req: "POST /x HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc", h: echo},
		{name: "request seen", req: "GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nX-A: 1\r\nx-a: 2\r\nCookie: k=v\r\n\r\n", h: func(w http.ResponseWriter, r *http.Request) {
			c, _ := r.Cookie("k")
			fmt.Fprintf(w, "%s %s %s %q %s %s %v %d %v %s", r.Method, r.RequestURI, r.Host, r.Header["X-A"], c.Value,
				r.URL.Query().Get("c"), r.Close, r.ContentLength, r.TransferEncoding, r.Proto)
		}},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/second" {
					io.WriteString(w, "second")
					return
				}
				tc.h(w, r)
			})
			method, _, _ := strings.Cut(tc.req, " ")
			run := func(addr string) result {
				c := dial(t, addr)
				wrote := make(chan struct{})
				go func() {
					defer close(wrote)
					c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
					io.WriteString(c.nc, tc.req) // fails when the server stops reading and closes
				}()
				res, err := c.read(method)
				if err != nil {
					res.Status = "no response: " + err.Error()
				}
				<-wrote
				if tc.probe {
					select {
					case err := <-probe:
						res.Probe = fmt.Sprint(err)
					case <-time.After(ioTimeout):
						res.Probe = "no probe"
					}
				}
				if err == nil {
					res.Next = c.next(getSecond)
				}
				return res
			}
			want := run(startPlain(t, h))
			lp := startLoop(t, h)
			got := run(lp.addr)
			if lp.served.Load() == 0 || lp.handedOff.Load() != 0 {
				t.Errorf("h1 served %d requests and handed %d over; want h1 to serve", lp.served.Load(), lp.handedOff.Load())
			}
			if strings.Contains(tc.req, " HTTP/1.0\r\n") {
				// h1 answers "HTTP/1.1" (RFC 9110 §6.2), net/http "HTTP/1.0";
				// TestHTTP10Response checks what that means to clients.
				got.Proto, want.Proto = "", ""
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("h1 and net/http differ:\n    h1: %s\nnet/http: %s", dump(got), dump(want))
			}
			if !want.HasDate && want.Status != "" && !strings.HasPrefix(want.Status, "no response") {
				t.Errorf("net/http sent no Date: the test is wrong")
			}
		})
	}
}

// dump shows a result on one line, with a long body shortened.
func dump(r result) string {
	if len(r.Body) > 80 {
		r.Body = fmt.Sprintf("%s...(%d bytes)", r.Body[:40], len(r.Body))
	}
	return fmt.Sprintf("%+v", r)
}

// TestHTTP10Response checks what a client that sent an HTTP/1.0 request
// without keep-alive reads from the response: that the connection closes
// after it (as net/http's "HTTP/1.0" status line says).
func TestHTTP10Response(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	for _, addr := range []string{startPlain(t, h), startLoop(t, h).addr} {
		c := dial(t, addr)
		c.write(get10)
		c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Close {
			t.Errorf("%s %s, Connection %q: the client reads a persistent connection, which the server closes", resp.Proto, resp.Status, resp.Header.Get("Connection"))
		}
	}
}

// tempFile writes n bytes starting with prefix to a new file and returns
// it, open, and its contents.
func tempFile(t *testing.T, prefix string, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	copy(data, prefix)
	for i := len(prefix); i < n; i++ {
		data[i] = 'a' + byte(i%26)
		if i%64 == 63 {
			data[i] = '\n'
		}
	}
	name := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return name, data
}

// TestReadFrom checks responses copied from an *os.File through the
// ResponseWriter's ReadFrom: held back with the head when small, handed to
// the connection's ReadFrom (sendfile) when the length and type are known,
// copied through Write otherwise.
func TestReadFrom(t *testing.T) {
	name, data := tempFile(t, "<!DOCTYPE html><html>", 100<<10)
	cases := []struct {
		name     string
		req      string
		ctype    string // the handler's Content-Type, if any
		length   int    // the handler's Content-Length, if not zero
		limit    int64  // the bytes of the file io.Copy offers, if not zero
		wantType string
		wantBody []byte
		wantErr  bool // the body ends before its Content-Length
	}{
		{name: "typed with length", req: get11, ctype: "application/x-test", length: len(data),
			wantType: "application/x-test", wantBody: data},
		{name: "typed, chunked", req: get11, ctype: "application/x-test",
			wantType: "application/x-test", wantBody: data},
		{name: "sniffed with length", req: get11, length: len(data),
			wantType: "text/html; charset=utf-8", wantBody: data},
		{name: "sniffed, chunked", req: get11,
			wantType: "text/html; charset=utf-8", wantBody: data},
		{name: "sniffed, small with length", req: get11, length: 1000,
			wantType: "text/html; charset=utf-8", wantBody: data[:1000]},
		{name: "HEAD typed with length", req: head11, ctype: "application/x-test", length: len(data),
			wantType: "application/x-test"},
		{name: "HEAD typed, small with length", req: head11, ctype: "application/x-test", length: 1000,
			wantType: "application/x-test"},
		{name: "HEAD typed", req: head11, ctype: "application/x-test",
			wantType: "application/x-test"},
		{name: "HTTP/1.0 typed with length", req: get10KA, ctype: "application/x-test", length: len(data),
			wantType: "application/x-test", wantBody: data},
		{name: "file longer than Content-Length", req: get11, ctype: "application/x-test", length: 10000,
			wantType: "application/x-test", wantBody: data[:10000]},
		{name: "file longer than a small Content-Length", req: get11, ctype: "application/x-test", length: 1000,
			wantType: "application/x-test", wantBody: data[:1000]},
		{name: "file shorter than Content-Length", req: get11, ctype: "application/x-test", length: len(data), limit: 10000,
			wantType: "application/x-test", wantBody: data[:10000], wantErr: true},
		{name: "file shorter than a small Content-Length", req: get11, ctype: "application/x-test", length: 2000, limit: 1000,
			wantType: "application/x-test", wantBody: data[:1000], wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			copied := make(chan string, 1)
			lp := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/second" {
					io.WriteString(w, "second")
					return
				}
				f, err := os.Open(name)
				if err != nil {
					http.Error(w, err.Error(), 500)
					return
				}
				defer f.Close()
				if tc.ctype != "" {
					w.Header().Set("Content-Type", tc.ctype)
				}
				if tc.length != 0 {
					w.Header().Set("Content-Length", strconv.Itoa(tc.length))
				}
				if _, ok := w.(io.ReaderFrom); !ok {
					http.Error(w, "no ReaderFrom", 500)
					return
				}
				var src io.Reader = f
				if tc.limit > 0 {
					src = io.LimitReader(f, tc.limit)
				}
				n, err := io.Copy(w, src)
				copied <- fmt.Sprint(n, err)
			}))
			c := dial(t, lp.addr)
			c.write(tc.req)
			method, _, _ := strings.Cut(tc.req, " ")
			got := c.mustRead(method)
			if got.Status != "200 OK" || got.Header.Get("Content-Type") != tc.wantType {
				t.Errorf("%s, Content-Type %q; want 200, %q", got.Status, got.Header.Get("Content-Type"), tc.wantType)
			}
			wantCL := ""
			if tc.length != 0 {
				wantCL = strconv.Itoa(tc.length)
			}
			chunked := reflect.DeepEqual(got.TE, []string{"chunked"})
			if got.Header.Get("Content-Length") != wantCL || chunked != (wantCL == "" && method == http.MethodGet) {
				t.Errorf("Content-Length %q, Transfer-Encoding %q; want Content-Length %q", got.Header.Get("Content-Length"), got.TE, wantCL)
			}
			if !bytes.Equal([]byte(got.Body), tc.wantBody) {
				t.Errorf("body: %d bytes, want %d (a prefix of it: %v)", len(got.Body), len(tc.wantBody), strings.HasPrefix(string(tc.wantBody), got.Body))
			}
			if got.BodyErr != tc.wantErr {
				t.Errorf("body error: %v, want %v", got.BodyErr, tc.wantErr)
			}
			if cp, want := <-copied, fmt.Sprint(len(tc.wantBody), nil); method != http.MethodHead && cp != want {
				t.Errorf("io.Copy returned %s, want %s", cp, want)
			}
			if next := c.next(getSecond); (next == "kept: 200 OK second") == tc.wantErr {
				t.Errorf("the next request: %s; want the connection kept: %v", next, !tc.wantErr)
			}
		})
	}
}

// TestResponseController checks the http.ResponseController methods a
// handler may call on the loop's ResponseWriter.
func TestResponseController(t *testing.T) {
	errs := make(chan error, 1)
	lp := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		err := errors.Join(
			rc.SetReadDeadline(time.Now().Add(time.Second)),
			rc.SetWriteDeadline(time.Now().Add(time.Second)),
			rc.EnableFullDuplex(),
		)
		body, rerr := io.ReadAll(r.Body)
		io.WriteString(w, "head and "+string(body))
		err = errors.Join(err, rerr, rc.Flush())
		errs <- err
		rc.SetWriteDeadline(time.Time{})
		rc.SetReadDeadline(time.Time{})
	}))
	c := dial(t, lp.addr)
	c.write(post(4, 'z'))
	got := c.mustRead("POST")
	if err := <-errs; err != nil {
		t.Errorf("ResponseController: %v", err)
	}
	if got.Body != "head and zzzz" || !reflect.DeepEqual(got.TE, []string{"chunked"}) {
		t.Errorf("flushed response: %q, Transfer-Encoding %q", got.Body, got.TE)
	}
	if next := c.next(getSecond); !strings.HasPrefix(next, "kept: 200 OK") {
		t.Errorf("the next request: %s", next)
	}
}

// TestWriteAfterClientLeft checks that a handler writing to a client
// that left gets an error rather than hanging, and the server goes on.
func TestWriteAfterClientLeft(t *testing.T) {
	errs := make(chan error, 1)
	left := make(chan struct{})
	lp := startLoop(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			echo(w, r)
			return
		}
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		<-left
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		var err error
		for i := 0; i < 200 && err == nil; i++ {
			if _, err = w.Write(chunk); err == nil {
				err = http.NewResponseController(w).Flush()
			}
		}
		errs <- err
	}))
	c := dial(t, lp.addr)
	c.write("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := http.ReadResponse(c.br, nil); err != nil {
		t.Fatal(err)
	}
	c.nc.Close()
	close(left)
	select {
	case err := <-errs:
		if err == nil {
			t.Error("12 MiB written to a closed connection without an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's writes hang")
	}
	c2 := dial(t, lp.addr)
	c2.write("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := c2.mustRead("GET"); got.Body != echoLine("GET", "/after", nil) {
		t.Errorf("after: %s %q", got.Status, got.Body)
	}
}
