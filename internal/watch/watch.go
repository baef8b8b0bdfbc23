// Package watch reports changes to Python source files under a set of
// directories: what `reload = true` (development) restarts workers on.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Debounce is how long a burst of changes (an editor's save, a git
// checkout) may go on before it is reported once.
const Debounce = 250 * time.Millisecond

// Run watches every directory under dirs and calls changed with a changed
// .py file's path after each burst of changes, until ctx ends. It skips
// hidden directories, __pycache__, node_modules and virtualenvs.
func Run(ctx context.Context, dirs []string, log *slog.Logger, changed func(path string)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.Close()
	for _, d := range dirs {
		if err := addTree(w, d); err != nil {
			return err
		}
	}
	var timer <-chan time.Time
	last := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn("watching for code changes", "error", err)
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() && !skipDir(ev.Name) {
					if err := addTree(w, ev.Name); err != nil {
						log.Warn("watching a new directory", "dir", ev.Name, "error", err)
					}
				}
			}
			if strings.HasSuffix(ev.Name, ".py") && !ev.Has(fsnotify.Chmod) {
				last = ev.Name
				timer = time.After(Debounce)
			}
		case <-timer:
			timer = nil
			changed(last)
		}
	}
}

// addTree watches dir and the directories below it.
func addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != dir && skipDir(path) {
			return filepath.SkipDir
		}
		if err := w.Add(path); err != nil {
			return fmt.Errorf("watch %s: %w", path, err)
		}
		return nil
	})
}

// skipDir says whether a directory holds no code of the app's own.
func skipDir(path string) bool {
	name := filepath.Base(path)
	if strings.HasPrefix(name, ".") || name == "__pycache__" || name == "node_modules" || name == "site-packages" {
		return true
	}
	_, err := os.Stat(filepath.Join(path, "pyvenv.cfg")) // a virtualenv
	return err == nil
}
