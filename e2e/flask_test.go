package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/whiskserver/whisk/internal/whisktest"
)

func TestFlask(t *testing.T) {
	t.Parallel()
	venv := whisktest.Venv(t)
	s := whisktest.Start(t, "app:app",
		"--python", venv, "--chdir", exampleDir(t, "flask"),
		"--processes", "2", "--threads", "4",
	)

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		resp, body := get(t, s, newClient(t), "/api/hello?name=whisk")
		expectStatus(t, s, resp, body, http.StatusOK)
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q, want application/json", ct)
		}
		var got map[string]string
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("decode %s: %v", body, err)
		}
		if got["message"] != "Hello, whisk!" || got["framework"] != "flask" {
			t.Errorf("got %v, want message %q and framework flask", got, "Hello, whisk!")
		}
	})

	t.Run("form post", func(t *testing.T) {
		t.Parallel()
		form := url.Values{"name": {"Ada & <co>"}, "message": {"héllo wörld"}}
		req := newRequest(t, s, http.MethodPost, "/form", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, body := whisktest.ReadAll(t, do(t, s, newClient(t), req))
		expectStatus(t, s, resp, body, http.StatusOK)
		want := "Thanks, Ada &amp; &lt;co&gt;! You said: héllo wörld"
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("POST /form: page lacks %q:\n%s", want, truncate(body))
		}
	})

	t.Run("redirect", func(t *testing.T) {
		t.Parallel()
		resp, body := get(t, s, newClient(t), "/old")
		expectStatus(t, s, resp, body, http.StatusFound)
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("302 without a usable Location (%q): %v", resp.Header.Get("Location"), err)
		}
		if want := s.URL + "/api/hello"; loc.String() != want {
			t.Errorf("Location %q resolves to %s, want %s", resp.Header.Get("Location"), loc, want)
		}
	})

	t.Run("two cookies", func(t *testing.T) {
		t.Parallel()
		resp, body := get(t, s, newClient(t), "/cookies")
		expectStatus(t, s, resp, body, http.StatusOK)
		if n := len(resp.Header.Values("Set-Cookie")); n != 2 {
			t.Fatalf("%d Set-Cookie headers, want 2: %q", n, resp.Header.Values("Set-Cookie"))
		}
		got := map[string]*http.Cookie{}
		for _, c := range resp.Cookies() {
			got[c.Name] = c
		}
		if c := got["flavour"]; c == nil || c.Value != "oatmeal" || !c.HttpOnly {
			t.Errorf("cookie flavour = %v, want oatmeal, HttpOnly", c)
		}
		if c := got["theme"]; c == nil || c.Value != "dark" || c.MaxAge != 3600 {
			t.Errorf("cookie theme = %v, want dark, Max-Age 3600", c)
		}
	})

	t.Run("100 parallel requests", func(t *testing.T) {
		t.Parallel()
		const n = 100
		c := newClient(t)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- checkHello(c, s.URL, fmt.Sprintf("client-%d", i))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("%v", err)
			}
		}
		if t.Failed() {
			t.Log(serverOutput(s))
		}
	})
}

// checkHello fetches /api/hello?name=NAME and checks that the answer greets
// NAME, from a goroutine (so it returns an error instead of failing a test).
func checkHello(c *http.Client, base, name string) error {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/api/hello?name="+url.QueryEscape(name), nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var got map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return fmt.Errorf("%s: status %d, decode: %w", name, resp.StatusCode, err)
	}
	if want := "Hello, " + name + "!"; resp.StatusCode != http.StatusOK || got["message"] != want {
		return fmt.Errorf("%s: status %d, message %q, want 200 and %q", name, resp.StatusCode, got["message"], want)
	}
	return nil
}
