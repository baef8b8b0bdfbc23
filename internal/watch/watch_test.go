package watch

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRun: a change to a .py file, also in a directory made after the
// watch began, is reported; other files and skipped directories are not.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"pkg", ".git", "venv", "__pycache__"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "venv", "pyvenv.cfg"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{dir}, slog.New(slog.NewTextHandler(io.Discard, nil)), func(p string) { changes <- p })
	}()
	time.Sleep(100 * time.Millisecond) // let Run add its watches

	write := func(rel string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, rel), []byte("x = 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-changes:
			if got != filepath.Join(dir, want) {
				t.Fatalf("change reported for %s, want %s", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no change reported for %s", want)
		}
	}
	expectNone := func(what string) {
		t.Helper()
		select {
		case got := <-changes:
			t.Fatalf("%s: change reported for %s", what, got)
		case <-time.After(3 * Debounce):
		}
	}

	write("pkg/models.py")
	expect("pkg/models.py")
	write("notes.txt")
	write(".git/hook.py")
	write("venv/lib.py")
	write("__pycache__/x.py")
	expectNone("files that are not the app's code")

	if err := os.Mkdir(filepath.Join(dir, "pkg", "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	write("pkg/new/views.py")
	expect("pkg/new/views.py")

	// A burst is reported once.
	write("a.py")
	write("b.py")
	write("c.py")
	expect("c.py")
	expectNone("the rest of a burst")

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
