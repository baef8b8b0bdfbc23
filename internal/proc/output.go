package proc

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Limits of one folded record: a longer block is logged in parts.
const (
	foldMaxLines = 400
	foldMaxBytes = 64 << 10
	// foldIdle is how long a block is held for more lines before it is
	// logged as it is: a traceback printed line by line by the app
	// arrives in several reads, but a lone one is not held back.
	foldIdle = 100 * time.Millisecond
)

const tracebackHead = "Traceback (most recent call last):"

// blockKind is what a folder is collecting.
type blockKind uint8

const (
	kindNone      blockKind = iota
	kindHeader              // one line ending in ':', maybe the header of a traceback
	kindTraceback           // a Python traceback, with its chained ones
	kindStack               // a stack dump: "... most recent call last:" and indented frames
)

// tbState is where a traceback block is.
type tbState uint8

const (
	tbFrames tbState = iota // in the frames, after "Traceback (most recent call last):"
	tbExc                   // after the exception line: the block may end
	tbGap                   // a blank line after the exception line: a chain may follow
	tbChain                 // after "During handling of the above exception..."
)

// folder turns a worker's output lines into log records: one record per
// line, except that a Python traceback (from "Traceback (most recent call
// last):", with the line before it when that line ends in ':', through the
// final exception line, chained tracebacks included) and a stack dump (a
// line ending in "most recent call last:" or "most recent call first:",
// then indented frames: the worker's dump of a timed-out thread,
// faulthandler's) are one record each. A block is bounded (foldMaxLines,
// foldMaxBytes; beyond, it is logged in parts) and held at most foldIdle
// after its last line. Its methods are safe for concurrent use.
type folder struct {
	log *slog.Logger

	mu     sync.Mutex
	kind   blockKind
	state  tbState
	header string   // the line before the traceback, or the stack dump's first line
	lines  []string // the block after the header
	size   int
	began  time.Time // when the block's first line came: the record's time
	part   int       // parts of this block already logged
	group  bool      // the traceback is an exception group's
	timer  *time.Timer
}

func newFolder(log *slog.Logger) *folder {
	f := &folder{log: log}
	f.timer = time.AfterFunc(time.Hour, f.idle)
	f.timer.Stop()
	return f
}

// line takes one line of output, without its newline.
func (f *folder) line(text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.add(text)
	if f.kind != kindNone {
		f.timer.Reset(foldIdle)
	} else {
		f.timer.Stop()
	}
}

// close logs what is pending: the output has ended.
func (f *folder) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timer.Stop()
	f.emit()
}

// idle logs a block no line has followed for foldIdle.
func (f *folder) idle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.emit()
}

func indented(s string) bool { return s != "" && (s[0] == ' ' || s[0] == '\t') }

func chainLine(s string) bool {
	return s == "During handling of the above exception, another exception occurred:" ||
		s == "The above exception was the direct cause of the following exception:"
}

func (f *folder) add(text string) {
	switch f.kind {
	case kindHeader:
		if text == tracebackHead {
			f.kind, f.state = kindTraceback, tbFrames
			f.append(text)
			return
		}
		f.emit()
	case kindStack:
		if indented(text) {
			f.append(text)
			return
		}
		f.emit()
	case kindTraceback:
		switch f.state {
		case tbFrames:
			if indented(text) {
				f.append(text)
				return
			}
			if text != "" && !f.group {
				f.append(text) // the exception line
				f.state = tbExc
				return
			}
		case tbExc:
			if text == "" {
				f.state = tbGap // held back: logged only if a chain follows
				return
			}
			if chainLine(text) {
				f.append("", text)
				f.state = tbChain
				return
			}
		case tbGap:
			if chainLine(text) {
				f.append("", text)
				f.state = tbChain
				return
			}
			f.emit()
			f.plain("") // the blank line held back
			f.add(text)
			return
		case tbChain:
			if text == "" {
				f.append(text)
				return
			}
			if text == tracebackHead {
				f.append(text)
				f.state = tbFrames
				return
			}
		}
		f.emit()
	}
	f.start(text)
}

// start begins a block with text, or logs it as a line of its own.
func (f *folder) start(text string) {
	f.began = time.Now()
	trimmed := strings.TrimLeft(text, " \t|+")
	switch {
	case text == tracebackHead:
		f.kind, f.state = kindTraceback, tbFrames
		f.append(text)
	case indented(text) && strings.HasSuffix(trimmed, tracebackHead):
		// An exception group's: every line is indented, and the first
		// line that is not ends it.
		f.kind, f.state, f.group = kindTraceback, tbFrames, true
		f.append(text)
	case strings.HasSuffix(text, "most recent call last:") || strings.HasSuffix(text, "(most recent call first):"):
		f.kind, f.header = kindStack, text
		f.size = len(text)
	case strings.HasSuffix(text, ":"):
		f.kind, f.header = kindHeader, text
		f.size = len(text)
	default:
		f.plain(text)
	}
}

// append adds lines to the block, logging a part first if the block
// would pass its limits.
func (f *folder) append(lines ...string) {
	for _, l := range lines {
		if len(f.lines) > 0 && (len(f.lines) >= foldMaxLines || f.size+len(l) > foldMaxBytes) {
			f.emitPart()
		}
		f.lines = append(f.lines, l)
		f.size += len(l) + 1
	}
}

// emitPart logs the block so far and keeps collecting its rest.
func (f *folder) emitPart() {
	kind, state, header, part, group := f.kind, f.state, f.header, f.part, f.group
	f.emit()
	f.kind, f.state, f.header, f.part, f.group, f.began = kind, state, header, part+1, group, time.Now()
}

// emit logs the pending block, if any, and resets the folder.
func (f *folder) emit() {
	kind, header, lines, part, group, began := f.kind, f.header, f.lines, f.part, f.group, f.began
	f.kind, f.state, f.header, f.lines, f.size, f.part, f.group = kindNone, tbFrames, "", nil, 0, 0, false
	if part > 0 {
		header = "(continued) " + header
	}
	switch kind {
	case kindNone:
	case kindHeader:
		f.record(began, slog.LevelInfo, header)
	case kindStack:
		f.record(began, slog.LevelWarn, header, slog.String("stack", strings.Join(lines, "\n")))
	case kindTraceback:
		exc := ""
		for i := len(lines) - 1; i >= 0 && !group; i-- {
			if l := lines[i]; l != "" && !indented(l) && l != tracebackHead && !chainLine(l) {
				exc = l
				break
			}
		}
		for _, l := range lines {
			// An exception group's own line: "  | ExceptionGroup: ...".
			if rest, ok := strings.CutPrefix(l, "  | "); ok && group && rest != "" && !indented(rest) {
				exc = rest
				break
			}
		}
		msg := header
		switch {
		case header == "" && exc == "":
			msg = tracebackHead
		case header == "":
			msg = exc
		case exc != "":
			msg = header + " " + exc
		}
		f.record(began, slog.LevelError, msg, slog.String("traceback", strings.Join(lines, "\n")))
	}
}

// record logs a block as one record with the time of its first line, and
// the request id the worker named in it ("... [request ID]:"), for
// finding the request's access log line.
func (f *folder) record(t time.Time, level slog.Level, msg string, block ...slog.Attr) {
	ctx := context.Background()
	h := f.log.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(t, level, msg, 0)
	r.AddAttrs(slog.String("source", "worker"))
	if id := requestID(msg); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	r.AddAttrs(block...)
	_ = h.Handle(ctx, r)
}

// requestID returns the id in a worker's "[request ID]" mark, or "".
func requestID(msg string) string {
	_, rest, ok := strings.Cut(msg, " [request ")
	if !ok {
		return ""
	}
	id, _, ok := strings.Cut(rest, "]")
	if !ok || id == "" || strings.ContainsAny(id, " \t") {
		return ""
	}
	return id
}

// plain logs one line of output as a record.
func (f *folder) plain(text string) {
	f.log.LogAttrs(context.Background(), slog.LevelInfo, text, slog.String("source", "worker"))
}
