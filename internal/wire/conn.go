package wire

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Frame is one frame read from a Conn.
type Frame struct {
	Header
	// Payload is valid until the next ReadFrame on the same Conn, unless
	// Owned is set.
	Payload []byte
	// Owned reports that Payload does not alias the Conn's buffer (a
	// payload larger than the buffer gets its own slice): the caller may
	// keep it.
	Owned bool
	// File is the descriptor attached to a FILE or CHANNEL frame; the
	// caller owns and closes it. Nil for other types.
	File *os.File

	pooled *[]byte // the buffer behind an Owned payload, for Release
}

// Conn reads and writes frames on a unix stream socket. One goroutine may
// read while others write: writes are serialised by a mutex so frames never
// interleave. Close makes blocked reads and writes return.
type Conn struct {
	uc *net.UnixConn

	// read side, owned by the single reader
	buf  []byte
	r, w int
	oob  []byte
	pend *pending // a large frame interrupted by a deadline

	fdmu      sync.Mutex // guards fds and closed: Close may race the reader
	fds       []int
	closed    bool
	closeOnce sync.Once
	closeErr  error

	wmu  sync.Mutex
	wbuf []byte
}

const readBufSize = 64 << 10

// NewConn wraps a unix stream socket.
func NewConn(uc *net.UnixConn) *Conn {
	return &Conn{uc: uc, buf: make([]byte, readBufSize), oob: make([]byte, syscall.CmsgSpace(4*4))}
}

// fill reads more bytes from the socket into c.buf[c.w:], collecting any
// descriptors that arrive with them.
func (c *Conn) fill() error {
	n, oobn, _, _, err := c.uc.ReadMsgUnix(c.buf[c.w:], c.oob)
	n, oobn = max(n, 0), max(oobn, 0) // -1 on errors such as a passed deadline
	if oobn > 0 {
		if perr := c.takeRights(c.oob[:oobn]); perr != nil && err == nil {
			err = perr
		}
	}
	c.w += n
	if n == 0 && (err == nil || errors.Is(err, io.EOF)) {
		err = io.EOF
	}
	if n > 0 {
		return nil
	}
	return err
}

func (c *Conn) takeRights(oob []byte) error {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("wire: parse control message: %w", err)
	}
	for i := range msgs {
		fds, err := syscall.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		c.fdmu.Lock()
		for _, fd := range fds {
			if c.closed {
				syscall.Close(fd)
				continue
			}
			syscall.CloseOnExec(fd)
			c.fds = append(c.fds, fd)
		}
		c.fdmu.Unlock()
	}
	return nil
}

// ReadFrame reads the next frame. It returns io.EOF when the peer closed the
// socket between frames and io.ErrUnexpectedEOF when it closed mid-frame.
//
// An error from a passed read deadline loses nothing: the bytes of a frame
// read so far are kept, and the next ReadFrame carries on with that frame.
func (c *Conn) ReadFrame() (Frame, error) {
	if c.pend == nil {
		for c.w-c.r < HeaderSize {
			if err := c.compactAndFill(HeaderSize); err != nil {
				if errors.Is(err, io.EOF) && c.w > c.r {
					err = io.ErrUnexpectedEOF
				}
				return Frame{}, err
			}
		}
		h, err := ParseHeader(c.buf[c.r:c.w])
		if err != nil {
			return Frame{}, err
		}
		need := int(h.Length)
		if need+HeaderSize <= len(c.buf) {
			for c.w-c.r < HeaderSize+need {
				if err := c.compactAndFill(HeaderSize + need); err != nil {
					return Frame{}, eofMidFrame(err)
				}
			}
			payload := c.buf[c.r+HeaderSize : c.r+HeaderSize+need]
			c.r += HeaderSize + need
			return c.finish(Frame{Header: h, Payload: payload})
		}
		// A payload larger than the buffer gets its own slice, filled
		// across calls if a deadline interrupts it.
		c.r += HeaderSize
		buf := GetBuffer(need)
		p := &pending{h: h, payload: *buf, pooled: buf}
		p.n = copy(p.payload, c.buf[c.r:c.w])
		c.r += p.n
		c.pend = p
	}
	p := c.pend
	for p.n < len(p.payload) {
		m, oobn, _, _, err := c.uc.ReadMsgUnix(p.payload[p.n:], c.oob)
		m, oobn = max(m, 0), max(oobn, 0) // -1 on errors such as a passed deadline
		if oobn > 0 {
			if perr := c.takeRights(c.oob[:oobn]); perr != nil {
				return Frame{}, perr
			}
		}
		p.n += m
		if m == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.EOF
			}
			return Frame{}, eofMidFrame(err)
		}
	}
	c.pend = nil
	return c.finish(Frame{Header: p.h, Payload: p.payload, Owned: true, pooled: p.pooled})
}

// Release returns an Owned payload to the buffer pool it came from. The
// caller must not use f.Payload afterwards. It does nothing for other frames.
func (f *Frame) Release() {
	if f.pooled == nil {
		return
	}
	PutBuffer(f.pooled)
	f.Payload, f.Owned, f.pooled = nil, false, nil
}

// pending is a large frame partly read.
type pending struct {
	h       Header
	payload []byte
	pooled  *[]byte
	n       int
}

// finish attaches the descriptor a FILE or CHANNEL frame carries.
func (c *Conn) finish(f Frame) (Frame, error) {
	if f.Type == TypeFile || f.Type == TypeChannel {
		c.fdmu.Lock()
		defer c.fdmu.Unlock()
		if len(c.fds) == 0 {
			return Frame{}, fmt.Errorf("%w: %s frame arrived without a file descriptor", ErrMalformed, f.Type)
		}
		f.File = os.NewFile(uintptr(c.fds[0]), "wire-fd")
		c.fds = c.fds[1:]
	}
	return f, nil
}

func eofMidFrame(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// compactAndFill makes room for at least need unread bytes and reads once.
func (c *Conn) compactAndFill(need int) error {
	if c.r > 0 && len(c.buf)-c.r < need {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	return c.fill()
}

// Write writes bufs as one frame sequence with a single writev; the caller
// builds them with the Append* functions. Safe for concurrent use.
func (c *Conn) Write(bufs ...[]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(bufs) == 1 {
		_, err := c.uc.Write(bufs[0])
		return err
	}
	nb := net.Buffers(bufs)
	_, err := nb.WriteTo(c.uc)
	return err
}

// WriteFrame writes one frame. Safe for concurrent use.
func (c *Conn) WriteFrame(t Type, flags Flags, stream uint32, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = AppendHeader(c.wbuf[:0], Header{Type: t, Flags: flags, Stream: stream, Length: uint32(len(payload))})
	if len(payload) <= 16<<10 {
		c.wbuf = append(c.wbuf, payload...)
		_, err := c.uc.Write(c.wbuf)
		return err
	}
	nb := net.Buffers{c.wbuf, payload}
	_, err := nb.WriteTo(c.uc)
	return err
}

// WriteWithFD writes frame (a whole FILE or CHANNEL frame) with f's
// descriptor attached. The caller keeps ownership of f.
func (c *Conn) WriteWithFD(frame []byte, f *os.File) error {
	return c.WriteWithFDs(frame, f)
}

// WriteWithFDs writes frame with the descriptors of files attached, in
// order (a FORK frame carries two). The caller keeps ownership of files.
func (c *Conn) WriteWithFDs(frame []byte, files ...*os.File) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	rights := syscall.UnixRights(fds...)
	n, _, err := c.uc.WriteMsgUnix(frame, rights, nil)
	if err != nil {
		return err
	}
	if n < len(frame) {
		_, err = c.uc.Write(frame[n:])
	}
	return err
}

// Close closes the socket and any descriptors received but not yet
// claimed. It is safe to call more than once and concurrently with a read.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.fdmu.Lock()
		for _, fd := range c.fds {
			syscall.Close(fd)
		}
		c.fds = nil
		c.closed = true
		c.fdmu.Unlock()
		c.closeErr = c.uc.Close()
	})
	return c.closeErr
}

// CloseWrite shuts down the writing side, so the peer reads EOF.
func (c *Conn) CloseWrite() error { return c.uc.CloseWrite() }

// Pair returns two connected Conns over a new socketpair, for tests and for
// handing one end to a worker: the second result's File is the worker's end.
func Pair() (*Conn, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	ours := os.NewFile(uintptr(fds[0]), "whisk-channel")
	theirs := os.NewFile(uintptr(fds[1]), "whisk-channel-peer")
	fc, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		theirs.Close()
		return nil, nil, fmt.Errorf("socketpair conn: %w", err)
	}
	return NewConn(fc.(*net.UnixConn)), theirs, nil
}

// FileConn turns a socket descriptor received in a CHANNEL frame (or a
// worker's end from Pair) into a Conn. It closes f.
func FileConn(f *os.File) (*Conn, error) {
	fc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("channel conn: %w", err)
	}
	uc, ok := fc.(*net.UnixConn)
	if !ok {
		fc.Close()
		return nil, fmt.Errorf("channel conn: %T is not a unix socket", fc)
	}
	return NewConn(uc), nil
}

// SetReadDeadline sets the deadline for ReadFrame; a zero time means none.
// A deadline in the past makes a blocked ReadFrame return at once with an
// error that wraps os.ErrDeadlineExceeded.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.uc.SetReadDeadline(t) }
