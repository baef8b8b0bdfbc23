package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestNewLogger: log_format picks slog's text or JSON handler, and
// log_level filters.
func TestNewLogger(t *testing.T) {
	tests := []struct {
		format, level string
		json          bool
	}{
		{"text", "info", false},
		{"json", "info", true},
		{"json", "warn", true},
	}
	for _, tt := range tests {
		t.Run(tt.format+"/"+tt.level, func(t *testing.T) {
			var b bytes.Buffer
			log := newLogger(&b, tt.level, tt.format)
			log.Info("hello", "group", "main", "traceback", "line 1\nline \"2\"")
			log.Warn("careful")
			lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			want := 2
			if tt.level == "warn" {
				want = 1
			}
			if len(lines) != want {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), want, b.String())
			}
			for _, l := range lines {
				var m map[string]any
				err := json.Unmarshal([]byte(l), &m)
				if tt.json && err != nil {
					t.Errorf("not JSON: %q: %v", l, err)
				}
				if !tt.json && err == nil {
					t.Errorf("JSON for log_format text: %q", l)
				}
			}
		})
	}
}
