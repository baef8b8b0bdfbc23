package e2e

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzRequest pushes fuzzed path bytes and a fuzzed header value through the
// real binary and a real worker: the app (testdata/apps/environ.py, under
// wsgiref.validate) must see PATH_INFO and HTTP_X_FUZZ byte for byte, or the
// front must answer 400 for a value HTTP does not allow. One server serves
// every input.
func FuzzRequest(f *testing.F) {
	s := startApp(f, "environ.py", "--processes", "1", "--threads", "2")
	f.Add([]byte("plain/path"), "value")
	f.Add([]byte("nul\x00byte/%/?/#/ space"), "  padded\t")
	f.Add([]byte{0xff, 0x80, 0xc3, 0xa9, '/', 0x7f}, "caf\xe9 \x80\xff")
	f.Add([]byte("../../etc/passwd"), "a\x00b")
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, path []byte, value string) {
		if strings.ContainsAny(value, "\r\n") || len(path) > 2000 || len(value) > 2000 {
			t.Skip("CR and LF end the header line; sizes are bounded to stay under the head limit")
		}
		var target strings.Builder
		target.WriteByte('/')
		for _, b := range path {
			// Bytes that would end or split the request target travel
			// percent-encoded; every other byte goes raw (raw UTF-8 paths).
			if b <= ' ' || b == 0x7f || b == '%' || b == '?' || b == '#' {
				fmt.Fprintf(&target, "%%%02X", b)
			} else {
				target.WriteByte(b)
			}
		}
		c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: fuzz\r\nX-Fuzz: %s\r\nConnection: close\r\n\r\n", target.String(), value)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no response: %v\nserver output:\n%s", err, s.Output.String())
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()

		allowed := true // RFC 9110 field-value: no CTL but HTAB, no DEL
		for i := 0; i < len(value); i++ {
			if b := value[i]; (b < ' ' && b != '\t') || b == 0x7f {
				allowed = false
			}
		}
		if !allowed {
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("header value %q: status %d, want 400", value, resp.StatusCode)
			}
			return
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("path %q value %q: status %d: %s\nserver output:\n%s", path, value, resp.StatusCode, body, s.Output.String())
		}
		var env struct {
			Str map[string]string `json:"str"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatalf("bad JSON from the app: %v: %s", err, body)
		}
		if want := hex.EncodeToString(append([]byte{'/'}, path...)); env.Str["PATH_INFO"] != want {
			t.Errorf("PATH_INFO = %s, want %s", env.Str["PATH_INFO"], want)
		}
		if want := hex.EncodeToString([]byte(strings.Trim(value, " \t"))); env.Str["HTTP_X_FUZZ"] != want {
			t.Errorf("HTTP_X_FUZZ = %q, want %q", env.Str["HTTP_X_FUZZ"], want)
		}
	})
}
