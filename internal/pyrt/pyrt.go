// Package pyrt holds whisk's Python worker runtime (the whisk_worker
// package, stdlib-only Python) embedded in the binary, and extracts it to a
// directory a worker interpreter can import it from. It is named pyrt, not
// worker, so that "worker" can mean the Go side's view of a process.
package pyrt

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
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

// Extract writes the runtime under base (created 0700 if missing) unless a
// complete copy of this build is already there, and returns the directory to
// put on the worker's sys.path (it contains the whisk_worker package). An
// empty base means the user's cache directory, or the temp directory when
// there is none.
func Extract(base string) (string, error) {
	if base == "" {
		if c, err := os.UserCacheDir(); err == nil {
			base = filepath.Join(c, "whisk")
		} else {
			base = filepath.Join(os.TempDir(), fmt.Sprintf("whisk-%d", os.Getuid()))
		}
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
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
			return os.MkdirAll(target, 0o755)
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err == nil {
		err = os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644)
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
