package offload

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOffload(t *testing.T) {
	root := t.TempDir()
	private := filepath.Join(root, "private")
	protected := filepath.Join(root, "protected")
	for _, d := range []string{private, protected} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, body string) {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(private, "report.pdf"), "%PDF-1.4 the report")
	write(filepath.Join(protected, "video.mp4"), "0123456789")
	write(filepath.Join(root, "secret.txt"), "outside")

	tests := []struct {
		name       string
		appHeader  map[string]string
		reqHeader  map[string]string
		wantStatus int
		wantBody   string
		wantHeader map[string]string
	}{
		{name: "X-Sendfile", appHeader: map[string]string{"X-Sendfile": filepath.Join(private, "report.pdf"), "Content-Disposition": `attachment; filename="r.pdf"`},
			wantStatus: 200, wantBody: "%PDF-1.4 the report", wantHeader: map[string]string{"Content-Disposition": `attachment; filename="r.pdf"`, "Content-Type": "application/pdf", "X-Sendfile": ""}},
		{name: "X-Accel-Redirect with a range", appHeader: map[string]string{"X-Accel-Redirect": "/protected/video.mp4"}, reqHeader: map[string]string{"Range": "bytes=2-4"},
			wantStatus: 206, wantBody: "234", wantHeader: map[string]string{"Content-Range": "bytes 2-4/10"}},
		{name: "app's Content-Type kept", appHeader: map[string]string{"X-Sendfile": filepath.Join(private, "report.pdf"), "Content-Type": "application/x-custom"},
			wantStatus: 200, wantHeader: map[string]string{"Content-Type": "application/x-custom"}},
		{name: "X-Sendfile outside the directories", appHeader: map[string]string{"X-Sendfile": filepath.Join(root, "secret.txt")}, wantStatus: 404},
		{name: "X-Sendfile climbing out", appHeader: map[string]string{"X-Sendfile": private + "/../secret.txt"}, wantStatus: 404},
		{name: "relative X-Sendfile", appHeader: map[string]string{"X-Sendfile": "private/report.pdf"}, wantStatus: 404},
		{name: "X-Accel-Redirect climbing out", appHeader: map[string]string{"X-Accel-Redirect": "/protected/../secret.txt"}, wantStatus: 404},
		{name: "X-Accel-Redirect elsewhere", appHeader: map[string]string{"X-Accel-Redirect": "/other/x"}, wantStatus: 404},
		{name: "no header: the app's response", wantStatus: 200, wantBody: "app body"},
	}
	h, err := New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), []string{private}, []Location{{Prefix: "/protected/", Dir: protected}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.appHeader {
					w.Header().Set(k, v)
				}
				io.WriteString(w, "app body")
			})
			r := httptest.NewRequest("GET", "/download", nil)
			for k, v := range tt.reqHeader {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %q", w.Code, tt.wantStatus, w.Body.String())
			}
			if tt.wantBody != "" && w.Body.String() != tt.wantBody {
				t.Errorf("body %q, want %q", w.Body.String(), tt.wantBody)
			}
			if strings.Contains(w.Body.String(), "outside") {
				t.Errorf("served a file outside the directories: %q", w.Body.String())
			}
			for k, v := range tt.wantHeader {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}
