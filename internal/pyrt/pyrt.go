// Package pyrt holds whisk's Python worker runtime (the whisk_worker
// package, stdlib-only Python) embedded in the binary, and extracts it to a
// directory a worker interpreter can import it from. It is named pyrt, not
// worker, so that "worker" can mean the Go side's view of a process.
package pyrt

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

//go:embed whisk_worker/*.py
var files embed.FS

// Digest returns a short hash of the embedded runtime's files, which names
// the directory it is extracted to: a new build never reuses an old copy.
func Digest() string {
	h := sha256.New()
	names, _ := fs.Glob(files, "whisk_worker/*.py")
	sort.Strings(names)
	for _, n := range names {
		b, _ := files.ReadFile(n)
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Extract writes the runtime under base unless a complete copy of this
// build is already there, and returns the directory to put on the worker's
// sys.path (it contains the whisk_worker package). The files are readable
// by all (0644, directories 0755), so that workers running as another user
// can import them.
//
// An empty base picks one. Run as root, whisk may start workers as other
// users, so the base is /run/whisk (or DIR/whisk-root under the temp
// directory when there is no /run): created 0755, and refused when it is a
// symlink, owned by another user or writable by others. Otherwise it is the
// user's cache directory (or the temp directory), created 0700.
func Extract(base string) (string, error) {
	shared := false
	if base == "" {
		base, shared = defaultBase()
	}
	return extract(base, shared)
}

func extract(base string, shared bool) (string, error) {
	if err := makeBase(base, shared); err != nil {
		return "", fmt.Errorf("extract python runtime: %w", err)
	}
	dir := filepath.Join(base, "runtime-"+Digest())
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(base, "runtime-tmp-")
	if err != nil {
		return "", fmt.Errorf("extract python runtime: %w", err)
	}
	defer os.RemoveAll(tmp)
	err = fs.WalkDir(files, "whisk_worker", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(tmp, path)
		if d.IsDir() {
			return mkdir(target)
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		return writeFile(target, b)
	})
	if err == nil {
		err = writeFile(filepath.Join(tmp, ".complete"), nil)
	}
	if err == nil {
		err = os.Chmod(tmp, 0o755)
	}
	if err != nil {
		return "", fmt.Errorf("extract python runtime: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another whisk extracted the same build first: use its copy.
		if _, serr := os.Stat(filepath.Join(dir, ".complete")); serr == nil {
			return dir, nil
		}
		return "", fmt.Errorf("extract python runtime: %w", err)
	}
	return dir, nil
}

// defaultBase returns the directory to extract under, and whether other
// users must be able to read it (whisk runs as root).
func defaultBase() (string, bool) {
	if os.Geteuid() == 0 {
		if fi, err := os.Stat("/run"); err == nil && fi.IsDir() {
			return "/run/whisk", true
		}
		return filepath.Join(os.TempDir(), "whisk-root"), true
	}
	if c, err := os.UserCacheDir(); err == nil {
		return filepath.Join(c, "whisk"), false
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("whisk-%d", os.Getuid())), false
}

// makeBase creates base. A shared base must be a real directory of this
// user that nobody else may write, since workers import code from it.
func makeBase(base string, shared bool) error {
	if !shared {
		return os.MkdirAll(base, 0o700)
	}
	if err := os.Mkdir(base, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(base)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory (a symlink?): remove it", base)
	case !ok || st.Uid != uint32(os.Geteuid()):
		return fmt.Errorf("%s is owned by another user: remove it", base)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by other users (mode %v): remove it", base, fi.Mode().Perm())
	}
	return os.Chmod(base, 0o755) // readable by workers whatever the umask
}

// mkdir and writeFile set the mode whatever the umask.
func mkdir(path string) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	return os.Chmod(path, 0o755)
}

func writeFile(path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	return os.Chmod(path, 0o644)
}
