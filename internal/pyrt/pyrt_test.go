package pyrt

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A shared extraction (whisk runs as root, workers as other users) is
// readable by everyone whatever the umask, and a base directory that
// someone else could write is refused.
func TestExtractShared(t *testing.T) {
	// Not parallel: it changes the process's umask.
	defer syscall.Umask(syscall.Umask(0o077))
	base := filepath.Join(t.TempDir(), "shared")
	dir, err := extract(base, true)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := extract(base, true); err != nil || again != dir {
		t.Errorf("second extract = %q, %v; want the same directory %q", again, err, dir)
	}
	seen := 0
	err = filepath.WalkDir(base, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o644)
		if d.IsDir() {
			want = 0o755
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		if strings.HasSuffix(path, ".py") {
			seen++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "whisk_worker", "main.py")); err != nil || seen < 5 {
		t.Errorf("runtime not extracted (%d .py files): %v", seen, err)
	}
}

func TestExtractSharedRefusesUnsafeBase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, base string)
		want  string
	}{
		{"symlink", func(t *testing.T, base string) {
			if err := os.Symlink(t.TempDir(), base); err != nil {
				t.Fatal(err)
			}
		}, "is not a directory (a symlink?): remove it"},
		{"writable by others", func(t *testing.T, base string) {
			if err := os.Mkdir(base, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(base, 0o777); err != nil {
				t.Fatal(err)
			}
		}, "is writable by other users (mode -rwxrwxrwx): remove it"},
		{"owned by another user", func(t *testing.T, base string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a directory away")
			}
			if err := os.Mkdir(base, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(base, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}, "is owned by another user: remove it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := filepath.Join(t.TempDir(), "base")
			tt.setup(t, base)
			_, err := extract(base, true)
			if err == nil || !strings.Contains(err.Error(), base+" "+tt.want) {
				t.Errorf("extract = %v, want an error with %q", err, base+" "+tt.want)
			}
		})
	}
}

// A private extraction (whisk is not root) keeps its base to the user.
func TestExtractPrivate(t *testing.T) {
	t.Parallel()
	base := filepath.Join(t.TempDir(), "cache", "whisk")
	dir, err := extract(base, false)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(base)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("base %s: %v, %v; want mode 0700", base, fi.Mode(), err)
	}
	if filepath.Dir(dir) != base {
		t.Errorf("runtime in %s, want under %s", dir, base)
	}
}
