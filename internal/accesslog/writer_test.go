package accesslog

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWriterFlushes: a line is buffered, then on disk within
// FlushInterval without another write.
func TestWriterFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	w, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	w.Write([]byte("one\n"))
	if got := read(t, path); got != "" {
		t.Errorf("written at once (%q): want it buffered", got)
	}
	deadline := time.Now().Add(10 * FlushInterval)
	for read(t, path) != "one\n" {
		if time.Now().After(deadline) {
			t.Fatalf("not flushed after %v: %q", 10*FlushInterval, read(t, path))
		}
		time.Sleep(FlushInterval / 10)
	}
}

// TestWriterReopen: after a rename and Reopen, old lines are in the
// renamed file and new ones in a new file at the path; nothing is lost
// while writers keep writing.
func TestWriterReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const writers, lines = 4, 2000
	for i := range writers {
		wg.Go(func() {
			for j := range lines {
				w.Write([]byte(strings.Repeat("x", i+j%50) + "\n"))
			}
		})
	}
	time.Sleep(time.Millisecond)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	w.Write([]byte("last\n"))
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	old, now := read(t, path+".1"), read(t, path)
	if n := strings.Count(old, "\n") + strings.Count(now, "\n"); n != writers*lines+1 {
		t.Errorf("%d lines in both files, want %d", n, writers*lines+1)
	}
	if !strings.HasSuffix(now, "last\n") {
		t.Errorf("the new file does not end with the last line")
	}
	// After Stop, writes go straight to the file.
	w.Write([]byte("late\n"))
	if !strings.HasSuffix(read(t, path), "late\n") {
		t.Errorf("a line after Stop is not written at once")
	}
}

// TestWriterReopenFails: the old file keeps the lines.
func TestWriterReopenFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "access.log")
	os.Mkdir(filepath.Dir(path), 0o755)
	w, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.Rename(filepath.Dir(path), filepath.Join(dir, "moved"))
	if err := w.Reopen(); err == nil {
		t.Fatal("Reopen succeeded with its directory gone")
	}
	w.Write([]byte("kept\n"))
	w.Stop()
	if got := read(t, filepath.Join(dir, "moved", "access.log")); got != "kept\n" {
		t.Errorf("old file has %q", got)
	}
}

// TestWriterKeepsLinesWhole: a line that does not fit the buffer's rest
// is not split between two writes.
func TestWriterKeepsLinesWhole(t *testing.T) {
	var writes []string
	w := NewStream(writerFunc(func(p []byte) (int, error) { writes = append(writes, string(p)); return len(p), nil }), nil)
	a := strings.Repeat("a", bufferSize-10) + "\n"
	b := strings.Repeat("b", 100) + "\n"
	w.Write([]byte(a))
	w.Write([]byte(b))
	w.Stop()
	if len(writes) != 2 || writes[0] != a || writes[1] != b {
		t.Errorf("writes of %d lines: %d writes", 2, len(writes))
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
