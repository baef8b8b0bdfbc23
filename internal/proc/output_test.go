package proc

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordLog collects records.
type recordLog struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordLog) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	return nil
}
func (h *recordLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordLog) WithGroup(string) slog.Handler      { return h }

// summary is a record as "LEVEL msg" plus its traceback or stack attribute.
func (h *recordLog) summary() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.records {
		s := r.Level.String() + " " + r.Message
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "traceback" || a.Key == "stack" || a.Key == "request_id" {
				s += " | " + a.Key + "=" + strings.ReplaceAll(a.Value.String(), "\n", "⏎")
			}
			return true
		})
		out = append(out, s)
	}
	return out
}

func TestFolder(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"plain lines", "hello\nworld\n", []string{"INFO hello", "INFO world"}},
		{"traceback with a header",
			"error in app handling GET /boom:\nTraceback (most recent call last):\n  File \"app.py\", line 3, in app\n    raise RuntimeError(\"x\")\nRuntimeError: x\nafter\n",
			[]string{`ERROR error in app handling GET /boom: RuntimeError: x | traceback=Traceback (most recent call last):⏎  File "app.py", line 3, in app⏎    raise RuntimeError("x")⏎RuntimeError: x`, "INFO after"}},
		{"traceback naming its request",
			"error in app handling GET /boom [request 9f2c01]:\nTraceback (most recent call last):\n  File \"app.py\", line 3, in app\nRuntimeError: x\n",
			[]string{`ERROR error in app handling GET /boom [request 9f2c01]: RuntimeError: x | request_id=9f2c01 | traceback=Traceback (most recent call last):⏎  File "app.py", line 3, in app⏎RuntimeError: x`}},
		{"timeout stack dump naming its request",
			"whisk_worker: GET /spin [request ab-1] timed out; raising RequestTimeout in its thread T-1. Its stack, most recent call last:\n  File \"app.py\", line 5, in spin\nend\n",
			[]string{`WARN whisk_worker: GET /spin [request ab-1] timed out; raising RequestTimeout in its thread T-1. Its stack, most recent call last: | request_id=ab-1 | stack=  File "app.py", line 5, in spin`, "INFO end"}},
		{"bare traceback",
			"Traceback (most recent call last):\n  File \"a\", line 1\nValueError: boom\n",
			[]string{`ERROR ValueError: boom | traceback=Traceback (most recent call last):⏎  File "a", line 1⏎ValueError: boom`}},
		{"chained traceback",
			"Traceback (most recent call last):\n  File \"a\"\nKeyError: 'k'\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"b\"\nValueError: v\nnext\n",
			[]string{`ERROR ValueError: v | traceback=Traceback (most recent call last):⏎  File "a"⏎KeyError: 'k'⏎⏎During handling of the above exception, another exception occurred:⏎⏎Traceback (most recent call last):⏎  File "b"⏎ValueError: v`, "INFO next"}},
		{"blank line after a traceback",
			"Traceback (most recent call last):\n  File \"a\"\nValueError: v\n\nnext\n",
			[]string{`ERROR ValueError: v | traceback=Traceback (most recent call last):⏎  File "a"⏎ValueError: v`, "INFO ", "INFO next"}},
		{"a header with no traceback", "config:\n  x = 1\n", []string{"INFO config:", "INFO   x = 1"}},
		{"timeout stack dump",
			"whisk_worker: GET /spin timed out; raising RequestTimeout in its thread T-1. Its stack, most recent call last:\n  File \"app.py\", line 5, in spin\n    n += 1\nwhisk_worker: GET /spin: the app's thread was interrupted and is free again\n",
			[]string{`WARN whisk_worker: GET /spin timed out; raising RequestTimeout in its thread T-1. Its stack, most recent call last: | stack=  File "app.py", line 5, in spin⏎    n += 1`,
				"INFO whisk_worker: GET /spin: the app's thread was interrupted and is free again"}},
		{"faulthandler dump",
			"Thread 0x00007f (most recent call first):\n  File \"a\", line 1 in f\nend\n",
			[]string{`WARN Thread 0x00007f (most recent call first): | stack=  File "a", line 1 in f`, "INFO end"}},
		{"exception group",
			"  + Exception Group Traceback (most recent call last):\n  |   File \"a\"\n  | ExceptionGroup: eg (1 sub-exception)\n  +-+---- 1 ----\n    | ValueError: 1\n    +------------\nafter\n",
			[]string{"ERROR ExceptionGroup: eg (1 sub-exception) | traceback=  + Exception Group Traceback (most recent call last):⏎  |   File \"a\"⏎  | ExceptionGroup: eg (1 sub-exception)⏎  +-+---- 1 ----⏎    | ValueError: 1⏎    +------------", "INFO after"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &recordLog{}
			f := newFolder(slog.New(h))
			for _, l := range strings.Split(strings.TrimSuffix(tt.in, "\n"), "\n") {
				f.line(l)
			}
			f.close()
			got := h.summary()
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("records:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestFolderIdle: a traceback with nothing after it is logged after
// foldIdle, not held until the output ends.
func TestFolderIdle(t *testing.T) {
	h := &recordLog{}
	f := newFolder(slog.New(h))
	defer f.close()
	for _, l := range []string{"Traceback (most recent call last):", "  File \"a\"", "ValueError: v"} {
		f.line(l)
	}
	deadline := time.Now().Add(20 * foldIdle)
	for len(h.summary()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a lone traceback was not logged")
		}
		time.Sleep(foldIdle / 10)
	}
	if got := h.summary(); len(got) != 1 || !strings.HasPrefix(got[0], "ERROR ValueError: v") {
		t.Errorf("records %q", got)
	}
}

// TestFolderBounded: a huge stack is logged in parts within the limits.
func TestFolderBounded(t *testing.T) {
	h := &recordLog{}
	f := newFolder(slog.New(h))
	f.line("Traceback (most recent call last):")
	for range 1000 {
		f.line(`  File "deep.py", line 1, in recurse`)
	}
	f.line("RecursionError: maximum recursion depth exceeded")
	f.close()
	got := h.summary()
	if len(got) != 3 {
		t.Fatalf("%d records, want 3 parts", len(got))
	}
	for i, r := range got {
		if n := strings.Count(r, "⏎") + 1; n > foldMaxLines {
			t.Errorf("part %d has %d lines", i, n)
		}
	}
	if !strings.HasPrefix(got[1], "ERROR (continued) ") || !strings.Contains(got[2], "RecursionError") {
		t.Errorf("parts: %.80q / %.80q", got[1], got[2])
	}
}

// FuzzFolder: whatever the output, every line shows up in a record, in
// order, and no record passes the limits.
func FuzzFolder(f *testing.F) {
	f.Add("error:\nTraceback (most recent call last):\n  File \"a\"\nKeyError: 1\n\nThe above exception was the direct cause of the following exception:\n\nTraceback (most recent call last):\n  x\nE: 2\nplain\n")
	f.Add("dump, most recent call last:\n  File\n    code\nnext\n")
	f.Add("  + Exception Group Traceback (most recent call last):\n  | E: 1\n:\n\n")
	f.Fuzz(func(t *testing.T, out string) {
		h := &recordLog{}
		fo := newFolder(slog.New(h))
		lines := strings.Split(out, "\n")
		for _, l := range lines {
			fo.line(l)
		}
		fo.close()
		var text strings.Builder
		for _, r := range h.records {
			text.WriteString(r.Message + "\n")
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "traceback" || a.Key == "stack" || a.Key == "request_id" {
					v := a.Value.String()
					if n := strings.Count(v, "\n") + 1; n > foldMaxLines || len(v) > foldMaxBytes+len(out) {
						t.Fatalf("a record of %d lines, %d bytes", n, len(v))
					}
					text.WriteString(v + "\n")
				}
				return true
			})
		}
		all := text.String()
		for _, l := range lines {
			i := strings.Index(all, l)
			if i < 0 {
				t.Fatalf("line %q lost; records:\n%s", l, all)
			}
			all = all[i+len(l):]
		}
		if len(h.records) > len(lines) {
			t.Fatalf("%d records for %d lines", len(h.records), len(lines))
		}
	})
}
