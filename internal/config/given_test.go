package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestGiven(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "whisk.toml")
	if err := os.WriteFile(file, []byte("app = \"app:app\"\nprocesses = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Load(Options{File: file, Dir: dir, Environ: []string{"WHISK_KEEP_ALIVE=5s"}, Flags: []FlagValue{{Name: "threads", Value: "2"}}})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{"app": true, "processes": true, "keep_alive": true, "threads": true, "bind": false, "max_requests": false} {
		if got := res.Given(key); got != want {
			t.Errorf("Given(%q) = %v, want %v", key, got, want)
		}
	}
}
