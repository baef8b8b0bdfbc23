package accesslog

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// FlushInterval is the longest a line waits in a Writer's buffer.
const FlushInterval = 100 * time.Millisecond

// bufferSize is a Writer's buffer: a busy server writes it in one system
// call instead of one per line.
const bufferSize = 64 << 10

// errorEvery is how often a Writer logs that its writes fail.
const errorEvery = time.Minute

// Writer is an access log destination — a file, which Reopen opens again
// (for logrotate: SIGUSR1), or a stream such as stdout — that buffers
// lines: they are written when the buffer fills and at most FlushInterval
// after they came. A line (one Write) is never split between two writes
// unless it is larger than the buffer. Its methods are safe for
// concurrent use.
type Writer struct {
	path string // "" for a stream
	log  *slog.Logger

	mu      sync.Mutex
	out     io.Writer // the file or stream
	file    *os.File  // the file; nil for a stream
	bw      *bufio.Writer
	timer   *time.Timer
	armed   bool // the timer will flush
	stopped bool
	lastErr time.Time // when a write error was last logged
}

// OpenFile opens (creating, appending) the access log file at path. Write
// errors are reported on log, at most once a minute.
func OpenFile(path string, log *slog.Logger) (*Writer, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	w := newWriter(f, log)
	w.path, w.file = path, f
	return w, nil
}

// NewStream returns a Writer buffering lines for out (stdout); Reopen does
// nothing for it.
func NewStream(out io.Writer, log *slog.Logger) *Writer { return newWriter(out, log) }

func newWriter(out io.Writer, log *slog.Logger) *Writer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Writer{out: out, log: log, bw: bufio.NewWriterSize(out, bufferSize)}
	w.timer = time.AfterFunc(time.Hour, w.tick)
	w.timer.Stop()
	return w
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return f, nil
}

// Write buffers p, which should be one or more whole lines.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return w.out.Write(p)
	}
	if len(p) > w.bw.Available() && w.bw.Buffered() > 0 {
		w.flushLocked() // keep p whole in the next write
	}
	n, err := w.bw.Write(p)
	if err != nil {
		w.failed(err)
	}
	if w.bw.Buffered() > 0 && !w.armed {
		w.armed = true
		w.timer.Reset(FlushInterval)
	}
	return n, err
}

// tick flushes the lines the timer was armed for.
func (w *Writer) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	if !w.stopped {
		w.flushLocked()
	}
}

// Flush writes the buffered lines.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	if err := w.bw.Flush(); err != nil {
		w.failed(err)
		return fmt.Errorf("access log: %w", err)
	}
	return nil
}

// failed reports a write error and drops the buffer, so that the next
// lines are tried again (a full disk may have room later).
func (w *Writer) failed(err error) {
	if time.Since(w.lastErr) >= errorEvery {
		w.lastErr = time.Now()
		w.log.Error("access log: write failed; lines are lost", "file", w.path, "error", err)
	}
	w.bw.Reset(w.out)
}

// Reopen flushes the buffered lines to the current file, then opens the
// file at the path again, so that after a rename (logrotate) new lines go
// to a new file at the original path. If the file cannot be opened, the
// Writer keeps writing to the old one and Reopen returns the error. For a
// stream, Reopen only flushes.
func (w *Writer) Reopen() error {
	if w.path == "" {
		return w.Flush()
	}
	f, err := openFile(w.path)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	flushErr := w.flushLocked()
	old := w.file
	w.file, w.out = f, f
	w.bw.Reset(f)
	if err := old.Close(); err != nil && flushErr == nil {
		flushErr = fmt.Errorf("access log: close the previous file: %w", err)
	}
	return flushErr
}

// Stop flushes the buffered lines and turns buffering off: for a graceful
// stop, once the last requests are done. A line logged later (a request
// cut at the graceful timeout) is written at once; the file stays open
// until the process exits.
func (w *Writer) Stop() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer.Stop()
	w.stopped = true
	return w.flushLocked()
}
