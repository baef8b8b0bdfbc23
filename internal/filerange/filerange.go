// Package filerange lets many responses send the same open file at once.
//
// Go's sendfile path (an *os.File handed to a TCP connection's ReadFrom)
// sends from the descriptor's current offset and moves it, so two
// responses cannot share one descriptor. A [Range] keeps its own offset
// instead: it reads with pread(2), and [Send] hands it to the kernel with
// sendfile(2) at that offset. That lets a cache keep one descriptor per file
// for every client, as nginx's open_file_cache does, and saves each request
// its open, fstat and close.
package filerange

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
)

// Range is the first end bytes of an open file, read from its own
// position: an io.ReadSeeker, so that http.ServeContent can serve
// conditionals and ranges from it. The file
// must stay open while the Range is used; a Range is not safe for
// concurrent use, but any number of Ranges may share one file.
type Range struct {
	f   *os.File
	fd  int   // f's descriptor, read once: os.File.Fd would make it blocking
	end int64 // size
	pos int64 // offset of the next byte
}

// New returns the whole of f, size bytes long, as a Range; fd is f's
// descriptor (see FD).
func New(f *os.File, fd int, size int64) *Range {
	return &Range{f: f, fd: fd, end: size}
}

// FD returns the descriptor of f without changing its blocking mode (which
// os.File.Fd does, with an extra system call).
func FD(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("descriptor of %s: %w", f.Name(), err)
	}
	fd := -1
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return -1, fmt.Errorf("descriptor of %s: %w", f.Name(), err)
	}
	return fd, nil
}

// Len returns the bytes left from the current position.
func (r *Range) Len() int64 { return max(r.end-r.pos, 0) }

// Read reads from the current position with pread.
func (r *Range) Read(p []byte) (int, error) {
	if r.pos >= r.end {
		return 0, io.EOF
	}
	if int64(len(p)) > r.end-r.pos {
		p = p[:r.end-r.pos]
	}
	n, err := r.f.ReadAt(p, r.pos)
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// errWhence and errOffset are Seek's errors.
var (
	errWhence = errors.New("filerange: invalid whence")
	errOffset = errors.New("filerange: negative position")
)

// Seek sets the position; it may go past the end, where Read gives EOF.
func (r *Range) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.end + offset
	default:
		return 0, errWhence
	}
	if abs < 0 {
		return 0, errOffset
	}
	r.pos = abs
	return abs, nil
}

// Send copies src to dst with sendfile(2) when src is a *Range, or an
// *io.LimitedReader around one, and dst is a TCP or unix connection; it
// advances the Range (and the LimitedReader's N) by what was sent. handled
// is false, with nothing written, when it does not apply, and the caller
// copies some other way. A write deadline on dst applies while it waits
// for the client; progress, when not nil, is called each time the client
// has taken bytes and Send is about to wait for it again, so that it can
// move the deadline (a timeout between two writes, like nginx's
// send_timeout).
func Send(dst net.Conn, src io.Reader, progress func()) (written int64, err error, handled bool) {
	lr, limited := src.(*io.LimitedReader)
	if limited {
		src = lr.R
	}
	r, ok := src.(*Range)
	if !ok {
		return 0, nil, false
	}
	var rc syscall.RawConn
	switch c := dst.(type) {
	case *net.TCPConn:
		rc, err = c.SyscallConn()
	case *net.UnixConn:
		rc, err = c.SyscallConn()
	default:
		return 0, nil, false
	}
	if err != nil {
		return 0, nil, false
	}
	remain := r.Len()
	if limited {
		remain = min(remain, lr.N)
	}
	var serr error
	moved := false // bytes sent since the last wait
	werr := rc.Write(func(fd uintptr) bool {
		for remain > 0 {
			off := r.pos
			n, e := syscall.Sendfile(int(fd), r.fd, &off, int(min(remain, maxChunk)))
			if n > 0 {
				r.pos += int64(n)
				written += int64(n)
				remain -= int64(n)
				moved = true
			}
			switch {
			case e == syscall.EAGAIN:
				if moved && progress != nil {
					progress()
				}
				moved = false
				return false // wait until the socket takes more
			case e == syscall.EINTR:
				continue
			case e != nil:
				serr = e
				return true
			case n == 0:
				serr = io.ErrUnexpectedEOF // the file shrank under us
				return true
			}
		}
		return true
	})
	if limited {
		lr.N -= written
	}
	if serr == nil {
		serr = werr
	}
	if serr != nil {
		return written, fmt.Errorf("sendfile: %w", serr), true
	}
	return written, nil, true
}

// maxChunk bounds one sendfile call, as Go's own sendfile loop does.
const maxChunk = 1<<30 - 1
