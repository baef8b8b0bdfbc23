package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/whiskserver/whisk/internal/whisktest"
)

// TestOffload: the app names a file with X-Sendfile or X-Accel-Redirect
// and whisk sends it, only from the configured directories.
func TestOffload(t *testing.T) {
	dir := t.TempDir()
	private := filepath.Join(dir, "private")
	if err := os.Mkdir(private, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(private, "report.txt"), []byte("the private report\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("outside\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := whisktest.Start(t, "--x-sendfile", private, "--x-accel-redirect", "/protected/="+private,
		"--processes", "1", "--threads", "1", "--python", whisktest.Python(t), whisktest.App(t, "offload.py"))
	tests := []struct {
		path   string
		status int
		body   string
	}{
		{"/sendfile?path=" + url.QueryEscape(filepath.Join(private, "report.txt")), 200, "the private report\n"},
		{"/accel?uri=" + url.QueryEscape("/protected/report.txt"), 200, "the private report\n"},
		{"/sendfile?path=" + url.QueryEscape(filepath.Join(dir, "secret.txt")), 404, ""},
		{"/accel?uri=" + url.QueryEscape("/protected/../secret.txt"), 404, ""},
	}
	for _, tt := range tests {
		resp, body := s.Get(t, tt.path)
		if resp.StatusCode != tt.status || tt.body != "" && string(body) != tt.body {
			t.Errorf("GET %s: %d %q, want %d %q", tt.path, resp.StatusCode, body, tt.status, tt.body)
		}
		if strings.Contains(string(body), "outside") || strings.Contains(string(body), "replaced by the file") {
			t.Errorf("GET %s leaked %q", tt.path, body)
		}
		if tt.status == 200 && resp.Header.Get("Content-Disposition") == "" {
			t.Errorf("GET %s lost the app's Content-Disposition", tt.path)
		}
	}
}
