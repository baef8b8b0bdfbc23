package filerange

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pattern returns n bytes (n a multiple of 4) in which the 4-byte word at
// offset i holds i: any byte sent from the wrong offset shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := 0; i+4 <= n; i += 4 {
		binary.BigEndian.PutUint32(b[i:], uint32(i))
	}
	return b
}

// openFile writes content to a new file and returns it open for reading
// with its descriptor; the file is closed when the test ends.
func openFile(t *testing.T, content []byte) (*os.File, int) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fd, err := FD(f)
	if err != nil {
		t.Fatal(err)
	}
	return f, fd
}

// connPair returns the two ends of a loopback connection: dst, the end
// accepted by the listener, which Send writes to, and recv, which reads.
// network is "tcp" or "unix".
func connPair(t *testing.T, network string) (dst, recv net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		dir, err := os.MkdirTemp("", "fr") // short: a socket path has ~100 bytes
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		addr = filepath.Join(dir, "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	recv, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	dst = <-accepted
	if dst == nil {
		recv.Close()
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { dst.Close(); recv.Close() })
	return dst, recv
}

// smallBuffers shrinks the socket buffers so that sendfile fills them
// quickly and has to wait for the reader (EAGAIN): the sender's, and a
// unix receiver's. A TCP receive buffer is left to the kernel: set small,
// the receiver reopens its window late and the sender crawls on
// persist-timer probes.
func smallBuffers(t *testing.T, dst, recv net.Conn) {
	t.Helper()
	type buffers interface {
		SetWriteBuffer(int) error
		SetReadBuffer(int) error
	}
	if err := dst.(buffers).SetWriteBuffer(16 << 10); err != nil {
		t.Fatal(err)
	}
	if _, ok := recv.(*net.TCPConn); ok {
		return
	}
	if err := recv.(buffers).SetReadBuffer(8 << 10); err != nil {
		t.Fatal(err)
	}
}

// received is what a reader got before EOF.
type received struct {
	b   []byte
	err error
}

// readAll reads c until EOF (dst closed) in the background, within 5 s.
func readAll(c net.Conn) <-chan received {
	ch := make(chan received, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		ch <- received{b, err}
	}()
	return ch
}

// checkReceived closes dst and compares what recv got with want.
func checkReceived(t *testing.T, dst net.Conn, got <-chan received, want []byte) {
	t.Helper()
	dst.Close()
	r := <-got
	if r.err != nil {
		t.Fatalf("receiving: %v", r.err)
	}
	if !bytes.Equal(r.b, want) {
		t.Fatalf("received %d bytes, want %d; first difference at %d", len(r.b), len(want), firstDiff(r.b, want))
	}
}

// firstDiff returns the first offset where a and b differ.
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// pos returns the Range's position.
func pos(t *testing.T, r *Range) int64 {
	t.Helper()
	p, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fileOffset returns f's own offset, which no Range may move.
func fileOffset(t *testing.T, f *os.File) int64 {
	t.Helper()
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		t.Fatal(err)
	}
	return off
}

// TestRangeReadSeek checks Read, Seek and Len on a Range of the first 8
// bytes of a 10-byte file: reads stop at the Range's end, every whence
// works, a position past the end reads EOF, and a negative position or an
// unknown whence is an error that leaves the position alone.
func TestRangeReadSeek(t *testing.T) {
	f, fd := openFile(t, []byte("0123456789"))
	r := New(f, fd, 8)
	steps := []struct {
		op      string // "read" (n bytes) or "seek" (n, whence)
		n       int64
		whence  int
		want    string // read: the bytes
		wantPos int64
		wantErr error
		wantLen int64
	}{
		{"read", 3, 0, "012", 3, nil, 5},
		{"seek", 2, io.SeekCurrent, "", 5, nil, 3},
		{"read", 10, 0, "567", 8, nil, 0}, // clipped at the end, not the file's
		{"read", 10, 0, "", 8, io.EOF, 0},
		{"seek", -2, io.SeekEnd, "", 6, nil, 2},
		{"read", 1, 0, "6", 7, nil, 1},
		{"seek", 0, io.SeekStart, "", 0, nil, 8},
		{"read", 0, 0, "", 0, nil, 8},
		{"seek", 100, io.SeekStart, "", 100, nil, 0},
		{"read", 1, 0, "", 100, io.EOF, 0},
		{"seek", -1, io.SeekCurrent, "", 99, nil, 0},
		{"seek", -1, io.SeekStart, "", 99, errOffset, 0},
		{"seek", -9, io.SeekEnd, "", 99, errOffset, 0},
		{"seek", -100, io.SeekCurrent, "", 99, errOffset, 0},
		{"seek", 0, 3, "", 99, errWhence, 0},
		{"seek", 8, io.SeekStart, "", 8, nil, 0},
		{"read", 1, 0, "", 8, io.EOF, 0},
	}
	for i, s := range steps {
		var err error
		switch s.op {
		case "read":
			buf := make([]byte, s.n)
			var n int
			n, err = r.Read(buf)
			if got := string(buf[:n]); got != s.want {
				t.Errorf("step %d: read %q, want %q", i, got, s.want)
			}
		case "seek":
			var p int64
			p, err = r.Seek(s.n, s.whence)
			if err == nil && p != s.wantPos {
				t.Errorf("step %d: Seek returned %d, want %d", i, p, s.wantPos)
			}
		}
		if !errors.Is(err, s.wantErr) {
			t.Errorf("step %d (%s %d): error %v, want %v", i, s.op, s.n, err, s.wantErr)
		}
		if p := pos(t, r); p != s.wantPos {
			t.Errorf("step %d: position %d, want %d", i, p, s.wantPos)
		}
		if l := r.Len(); l != s.wantLen {
			t.Errorf("step %d: Len %d, want %d", i, l, s.wantLen)
		}
	}
	if off := fileOffset(t, f); off != 0 {
		t.Errorf("the file's own offset moved to %d", off)
	}
}

// TestRangeIndependent checks that Ranges over one file keep their own
// positions, that a Range longer than the file reads what there is and
// then EOF, and that io.ReadAll of a Range gives exactly its bytes.
func TestRangeIndependent(t *testing.T) {
	content := pattern(64 << 10)
	f, fd := openFile(t, content)
	a, b := New(f, fd, int64(len(content))), New(f, fd, int64(len(content)))
	if _, err := b.Seek(1000, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	bufA, bufB := make([]byte, 7), make([]byte, 7)
	for i := range 100 {
		na, errA := a.Read(bufA)
		nb, errB := b.Read(bufB)
		if errA != nil || errB != nil || na != 7 || nb != 7 {
			t.Fatalf("read %d: %d %v, %d %v", i, na, errA, nb, errB)
		}
		if !bytes.Equal(bufA, content[i*7:i*7+7]) || !bytes.Equal(bufB, content[1000+i*7:1000+i*7+7]) {
			t.Fatalf("read %d: the Ranges' positions are mixed up", i)
		}
	}
	all, err := io.ReadAll(New(f, fd, 5000))
	if err != nil || !bytes.Equal(all, content[:5000]) {
		t.Errorf("ReadAll of the first 5000 bytes: %d bytes, %v", len(all), err)
	}
	long := New(f, fd, int64(len(content))+100) // the file is shorter than the Range
	all, err = io.ReadAll(long)
	if err != nil || !bytes.Equal(all, content) {
		t.Errorf("ReadAll past the file's end: %d bytes, %v", len(all), err)
	}
	if n, err := long.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("read at the file's end inside the Range: %d %v, want 0 EOF", n, err)
	}
	if off := fileOffset(t, f); off != 0 {
		t.Errorf("the file's own offset moved to %d", off)
	}
}

// TestFD checks that FD returns the file's descriptor without making a
// non-blocking descriptor blocking, and fails on a closed file.
func TestFD(t *testing.T) {
	pr, pw, err := os.Pipe() // non-blocking in Go
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	fd, err := FD(pr)
	if err != nil {
		t.Fatal(err)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_NONBLOCK == 0 {
		t.Errorf("descriptor %d is blocking after FD", fd)
	}
	if got := int(pr.Fd()); got != fd {
		t.Errorf("FD %d, os.File.Fd %d", fd, got)
	}
	pr.Close()
	if fd, err := FD(pr); err == nil || fd != -1 {
		t.Errorf("FD of a closed file: %d %v, want -1 and an error", fd, err)
	}
}

// TestSend checks Send over real TCP and unix connections: the bytes
// received are the Range's, an *io.LimitedReader sends only N bytes and
// has N decremented, the Range's position advances by what was sent so
// that a following Send continues from there, and the shared descriptor's
// own offset never moves.
func TestSend(t *testing.T) {
	content := pattern(256 << 10)
	size := int64(len(content))
	// send writes to dst with Range r (at 0, the whole file) and returns
	// the bytes the receiver must get.
	cases := []struct {
		name string
		send func(t *testing.T, dst net.Conn, r *Range) []byte
	}{
		{"whole", func(t *testing.T, dst net.Conn, r *Range) []byte {
			n, err, handled := Send(dst, r, nil)
			if n != size || err != nil || !handled {
				t.Fatalf("Send: %d %v %v, want %d nil true", n, err, handled, size)
			}
			if r.Len() != 0 || pos(t, r) != size {
				t.Errorf("after Send: Len %d, position %d", r.Len(), pos(t, r))
			}
			return content
		}},
		{"limited, then the rest", func(t *testing.T, dst net.Conn, r *Range) []byte {
			r.Seek(100, io.SeekStart)
			lr := &io.LimitedReader{R: r, N: 1000}
			n, err, handled := Send(dst, lr, nil)
			if n != 1000 || err != nil || !handled {
				t.Fatalf("limited Send: %d %v %v, want 1000 nil true", n, err, handled)
			}
			if lr.N != 0 || pos(t, r) != 1100 {
				t.Fatalf("after limited Send: N %d, position %d; want 0, 1100", lr.N, pos(t, r))
			}
			lr = &io.LimitedReader{R: r, N: 30000}
			if n, err, _ := Send(dst, lr, nil); n != 30000 || err != nil || lr.N != 0 || pos(t, r) != 31100 {
				t.Fatalf("second limited Send: %d %v, N %d, position %d", n, err, lr.N, pos(t, r))
			}
			n, err, handled = Send(dst, r, nil)
			if n != size-31100 || err != nil || !handled {
				t.Fatalf("Send of the rest: %d %v %v, want %d", n, err, handled, size-31100)
			}
			return content[100:]
		}},
		{"limit past the end", func(t *testing.T, dst net.Conn, r *Range) []byte {
			r.Seek(-10, io.SeekEnd)
			lr := &io.LimitedReader{R: r, N: 1000}
			n, err, handled := Send(dst, lr, nil)
			if n != 10 || err != nil || !handled || lr.N != 990 || r.Len() != 0 {
				t.Fatalf("Send: %d %v %v, N %d, Len %d; want 10 nil true, 990, 0", n, err, handled, lr.N, r.Len())
			}
			return content[size-10:]
		}},
		{"at the end", func(t *testing.T, dst net.Conn, r *Range) []byte {
			r.Seek(0, io.SeekEnd)
			if n, err, handled := Send(dst, r, nil); n != 0 || err != nil || !handled {
				t.Fatalf("Send: %d %v %v, want 0 nil true", n, err, handled)
			}
			r.Seek(size+50, io.SeekStart)
			if n, err, handled := Send(dst, r, nil); n != 0 || err != nil || !handled {
				t.Fatalf("Send past the end: %d %v %v, want 0 nil true", n, err, handled)
			}
			return nil
		}},
		{"first bytes of the file", func(t *testing.T, dst net.Conn, r *Range) []byte {
			short := New(r.f, r.fd, 5000)
			if n, err, _ := Send(dst, short, nil); n != 5000 || err != nil {
				t.Fatalf("Send: %d %v, want 5000", n, err)
			}
			return content[:5000]
		}},
		{"zero limit", func(t *testing.T, dst net.Conn, r *Range) []byte {
			lr := &io.LimitedReader{R: r, N: 0}
			if n, err, handled := Send(dst, lr, nil); n != 0 || err != nil || !handled || lr.N != 0 || pos(t, r) != 0 {
				t.Fatalf("Send: %d %v %v, N %d, position %d", n, err, handled, lr.N, pos(t, r))
			}
			return nil
		}},
	}
	for _, network := range []string{"tcp", "unix"} {
		for _, c := range cases {
			t.Run(network+"/"+c.name, func(t *testing.T) {
				f, fd := openFile(t, content)
				dst, recv := connPair(t, network)
				got := readAll(recv)
				want := c.send(t, dst, New(f, fd, size))
				checkReceived(t, dst, got, want)
				if off := fileOffset(t, f); off != 0 {
					t.Errorf("the file's own offset moved to %d", off)
				}
			})
		}
	}
}

// TestSendConcurrentSharedFD checks the point of the package: 16
// goroutines send their own Ranges (each from its own offset, in two
// limited parts) of the same *os.File and descriptor to 16 TCP and unix
// connections at once, with small socket buffers so that the sends
// interleave, and every receiver gets exactly its part of the file.
func TestSendConcurrentSharedFD(t *testing.T) {
	content := pattern(384 << 10)
	size := int64(len(content))
	f, fd := openFile(t, content)
	const senders = 16
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range senders {
		network := "tcp"
		if i%2 == 1 {
			network = "unix"
		}
		dst, recv := connPair(t, network)
		smallBuffers(t, dst, recv)
		from := int64(i) * 4099 // unaligned on purpose
		to := size
		if i%3 == 0 {
			to = size - int64(i)*1001
		}
		got := readAll(recv)
		wg.Go(func() {
			defer dst.Close()
			r := New(f, fd, size)
			r.Seek(from, io.SeekStart)
			<-start
			// Two sends: a limited part, then the rest up to to.
			half := (to - from) / 2
			lr := &io.LimitedReader{R: r, N: half}
			n1, err, handled := Send(dst, lr, nil)
			if err != nil || !handled || n1 != half || lr.N != 0 {
				t.Errorf("sender %d (%s): first Send %d %v %v, N %d", i, network, n1, err, handled, lr.N)
				return
			}
			lr = &io.LimitedReader{R: r, N: to - from - half}
			n2, err, _ := Send(dst, lr, nil)
			if err != nil || n2 != to-from-half {
				t.Errorf("sender %d (%s): second Send %d %v", i, network, n2, err)
				return
			}
			if p, _ := r.Seek(0, io.SeekCurrent); p != to {
				t.Errorf("sender %d: position %d, want %d", i, p, to)
			}
			dst.Close()
			res := <-got
			if res.err != nil || !bytes.Equal(res.b, content[from:to]) {
				t.Errorf("sender %d (%s): received %d bytes (%v), want bytes %d-%d; first difference at %d",
					i, network, len(res.b), res.err, from, to, firstDiff(res.b, content[from:to]))
			}
		})
	}
	close(start)
	wg.Wait()
	if off := fileOffset(t, f); off != 0 {
		t.Errorf("the shared file's own offset moved to %d", off)
	}
}

// TestSendSlowReader checks that Send waits for a reader slower than the
// disk (sendfile gets EAGAIN once the small socket buffers are full) and
// still delivers the whole file.
func TestSendSlowReader(t *testing.T) {
	content := pattern(512 << 10)
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			f, fd := openFile(t, content)
			dst, recv := connPair(t, network)
			smallBuffers(t, dst, recv)
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, err, _ := Send(dst, New(f, fd, int64(len(content))), nil)
				dst.Close()
				done <- result{n, err}
			}()
			// Nobody reads yet: 512 KiB cannot fit in the buffers.
			select {
			case r := <-done:
				t.Fatalf("Send returned before anything was read: %d %v", r.n, r.err)
			case <-time.After(30 * time.Millisecond):
			}
			recv.SetReadDeadline(time.Now().Add(5 * time.Second))
			var got []byte
			buf := make([]byte, 32<<10)
			for {
				n, err := recv.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("after %d bytes: %v", len(got), err)
				}
				time.Sleep(500 * time.Microsecond)
			}
			r := <-done
			if r.err != nil || r.n != int64(len(content)) {
				t.Errorf("Send: %d %v, want %d nil", r.n, r.err, len(content))
			}
			if !bytes.Equal(got, content) {
				t.Errorf("received %d bytes, first difference at %d", len(got), firstDiff(got, content))
			}
		})
	}
}

// TestSendDeadline checks that a write deadline on dst ends Send with a
// deadline error (handled, not passed on to another copy): at once when
// it has passed already, with nothing sent, and when it passes while
// Send waits for a reader that never reads, with the Range and the
// LimitedReader advanced by exactly what the receiver got. progress is
// called only once bytes have gone out.
func TestSendDeadline(t *testing.T) {
	content := pattern(1 << 20)
	size := int64(len(content))
	for _, network := range []string{"tcp", "unix"} {
		for _, c := range []struct {
			name     string
			deadline time.Duration
		}{
			{"passed", -time.Second},
			{"while waiting", 50 * time.Millisecond},
		} {
			t.Run(network+"/"+c.name, func(t *testing.T) {
				f, fd := openFile(t, content)
				dst, recv := connPair(t, network)
				smallBuffers(t, dst, recv)
				r := New(f, fd, size)
				r.Seek(4, io.SeekStart)
				lr := &io.LimitedReader{R: r, N: size - 4}
				dst.SetWriteDeadline(time.Now().Add(c.deadline))
				type result struct {
					n       int64
					err     error
					handled bool
				}
				calls := 0
				done := make(chan result, 1)
				go func() {
					n, err, handled := Send(dst, lr, func() { calls++ })
					done <- result{n, err, handled}
				}()
				var res result
				select {
				case res = <-done:
				case <-time.After(5 * time.Second):
					t.Fatal("Send ignores the write deadline")
				}
				if (calls > 0) != (res.n > 0) {
					t.Errorf("progress called %d times after sending %d bytes", calls, res.n)
				}
				if !errors.Is(res.err, os.ErrDeadlineExceeded) || !res.handled {
					t.Fatalf("Send: %d %v %v, want a deadline error, handled", res.n, res.err, res.handled)
				}
				if c.deadline < 0 && res.n != 0 {
					t.Errorf("sent %d bytes past the deadline", res.n)
				}
				if c.deadline > 0 && (res.n <= 0 || res.n >= size-4) {
					t.Errorf("sent %d bytes, want part of the file", res.n)
				}
				if pos(t, r) != 4+res.n || lr.N != size-4-res.n {
					t.Errorf("position %d, N %d after sending %d", pos(t, r), lr.N, res.n)
				}
				checkReceived(t, dst, readAll(recv), content[4:4+res.n])
			})
		}
	}
}

// TestSendProgress checks that progress can move the write deadline while
// a slow reader takes the file: with a deadline moved forward at each
// progress, a transfer lasting several deadlines completes; without
// progress the same transfer ends at the first deadline.
func TestSendProgress(t *testing.T) {
	content := pattern(256 << 10)
	const timeout = 60 * time.Millisecond
	for _, c := range []struct {
		name string
		move bool
	}{
		{"moved", true},
		{"not moved", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, fd := openFile(t, content)
			dst, recv := connPair(t, "unix")
			smallBuffers(t, dst, recv)
			var progress func()
			calls := 0
			if c.move {
				progress = func() {
					calls++
					dst.SetWriteDeadline(time.Now().Add(timeout))
				}
			}
			type result struct {
				n   int64
				err error
			}
			start := time.Now()
			dst.SetWriteDeadline(start.Add(timeout))
			done := make(chan result, 1)
			go func() {
				n, err, _ := Send(dst, New(f, fd, int64(len(content))), progress)
				dst.Close()
				done <- result{n, err}
			}()
			// 16 KiB every 10 ms: about 160 ms for the file.
			recv.SetReadDeadline(time.Now().Add(5 * time.Second))
			var got []byte
			buf := make([]byte, 16<<10)
			for {
				time.Sleep(10 * time.Millisecond)
				n, err := io.ReadFull(recv, buf)
				got = append(got, buf[:n]...)
				if err == io.EOF || err == io.ErrUnexpectedEOF {
					break
				}
				if err != nil {
					t.Fatalf("after %d bytes: %v", len(got), err)
				}
			}
			r := <-done
			elapsed := time.Since(start)
			if !c.move {
				if !errors.Is(r.err, os.ErrDeadlineExceeded) || r.n >= int64(len(content)) {
					t.Fatalf("Send: %d %v, want part of the file and a deadline error", r.n, r.err)
				}
				if !bytes.Equal(got, content[:r.n]) {
					t.Errorf("received %d bytes, sent %d", len(got), r.n)
				}
				return
			}
			if r.err != nil || r.n != int64(len(content)) || !bytes.Equal(got, content) {
				t.Fatalf("Send: %d %v, received %d bytes; want all %d", r.n, r.err, len(got), len(content))
			}
			if elapsed < 2*timeout {
				t.Fatalf("the transfer took %v, not long enough to outlast the first deadline", elapsed)
			}
			if calls == 0 {
				t.Error("progress never called")
			}
		})
	}
}

// tcpOnly is a connection that embeds a *net.TCPConn, so it has its
// SyscallConn, but is not one.
type tcpOnly struct{ *net.TCPConn }

// TestSendNotHandled checks that Send leaves alone (handled false, nothing
// written, the reader not advanced) a source that is not a Range and a
// destination that is not a TCP or unix connection.
func TestSendNotHandled(t *testing.T) {
	content := pattern(4096)
	cases := []struct {
		name string
		dst  func(t *testing.T, tcp net.Conn) net.Conn
		src  func(f *os.File, r *Range) io.Reader
	}{
		{"bytes.Reader", nil, func(*os.File, *Range) io.Reader { return bytes.NewReader(content) }},
		{"*os.File", nil, func(f *os.File, _ *Range) io.Reader { return f }},
		{"LimitedReader of bytes.Reader", nil, func(*os.File, *Range) io.Reader {
			return &io.LimitedReader{R: bytes.NewReader(content), N: 10}
		}},
		{"LimitedReader of LimitedReader of Range", nil, func(_ *os.File, r *Range) io.Reader {
			return &io.LimitedReader{R: &io.LimitedReader{R: r, N: 10}, N: 10}
		}},
		{"net.Pipe", func(t *testing.T, _ net.Conn) net.Conn {
			a, b := net.Pipe()
			t.Cleanup(func() { a.Close(); b.Close() })
			return a
		}, func(_ *os.File, r *Range) io.Reader { return r }},
		{"net.Pipe, limited", func(t *testing.T, _ net.Conn) net.Conn {
			a, b := net.Pipe()
			t.Cleanup(func() { a.Close(); b.Close() })
			return a
		}, func(_ *os.File, r *Range) io.Reader { return &io.LimitedReader{R: r, N: 10} }},
		{"wrapped TCPConn", func(t *testing.T, tcp net.Conn) net.Conn {
			return tcpOnly{tcp.(*net.TCPConn)}
		}, func(_ *os.File, r *Range) io.Reader { return r }},
		{"UDPConn", func(t *testing.T, _ net.Conn) net.Conn {
			ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			c, err := net.DialUDP("udp", nil, ln.LocalAddr().(*net.UDPAddr))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close(); c.Close() })
			return c
		}, func(_ *os.File, r *Range) io.Reader { return r }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, fd := openFile(t, content)
			tcp, recv := connPair(t, "tcp")
			got := readAll(recv)
			dst := tcp
			if c.dst != nil {
				dst = c.dst(t, tcp)
			}
			r := New(f, fd, int64(len(content)))
			r.Seek(7, io.SeekStart)
			src := c.src(f, r)
			var before int64 = -1
			if lr, ok := src.(*io.LimitedReader); ok {
				before = lr.N
			}
			n, err, handled := Send(dst, src, nil)
			if n != 0 || err != nil || handled {
				t.Fatalf("Send: %d %v %v, want 0 nil false", n, err, handled)
			}
			if pos(t, r) != 7 {
				t.Errorf("Range moved to %d", pos(t, r))
			}
			if lr, ok := src.(*io.LimitedReader); ok && lr.N != before {
				t.Errorf("LimitedReader's N changed from %d to %d", before, lr.N)
			}
			if fileOffset(t, f) != 0 {
				t.Errorf("the file's offset moved")
			}
			checkReceived(t, tcp, got, nil)
		})
	}
}

// TestSendShrunkFile checks that a file shorter than its Range (truncated
// before or during a Send) ends the Send with io.ErrUnexpectedEOF once
// the file's bytes are sent, instead of hanging or sending garbage.
func TestSendShrunkFile(t *testing.T) {
	content := pattern(1 << 20)
	size := int64(len(content))
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network+"/before", func(t *testing.T) {
			f, fd := openFile(t, content)
			dst, recv := connPair(t, network)
			got := readAll(recv)
			r := New(f, fd, size)
			if err := os.Truncate(f.Name(), 100000); err != nil {
				t.Fatal(err)
			}
			n, err, handled := sendWithin(t, dst, r)
			if !errors.Is(err, io.ErrUnexpectedEOF) || !handled || n != 100000 {
				t.Fatalf("Send: %d %v %v, want 100000 and io.ErrUnexpectedEOF", n, err, handled)
			}
			if pos(t, r) != 100000 {
				t.Errorf("position %d, want 100000", pos(t, r))
			}
			checkReceived(t, dst, got, content[:100000])
			// Read gives what there is, then EOF.
			b, err := io.ReadAll(New(f, fd, size))
			if err != nil || !bytes.Equal(b, content[:100000]) {
				t.Errorf("ReadAll: %d bytes, %v", len(b), err)
			}
		})
		t.Run(network+"/during", func(t *testing.T) {
			f, fd := openFile(t, content)
			dst, recv := connPair(t, network)
			smallBuffers(t, dst, recv)
			r := New(f, fd, size)
			type result struct {
				n   int64
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, err, _ := Send(dst, r, nil)
				done <- result{n, err}
			}()
			time.Sleep(20 * time.Millisecond) // the buffers fill; Send waits
			if err := os.Truncate(f.Name(), 0); err != nil {
				t.Fatal(err)
			}
			got := readAll(recv)
			var res result
			select {
			case res = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Send hangs on a truncated file")
			}
			if !errors.Is(res.err, io.ErrUnexpectedEOF) || res.n >= size {
				t.Fatalf("Send: %d %v, want part of the file and io.ErrUnexpectedEOF", res.n, res.err)
			}
			checkReceived(t, dst, got, content[:res.n])
		})
	}
}

// sendWithin runs Send and fails the test if it takes more than 5 s.
func sendWithin(t *testing.T, dst net.Conn, src io.Reader) (int64, error, bool) {
	t.Helper()
	type result struct {
		n       int64
		err     error
		handled bool
	}
	done := make(chan result, 1)
	go func() {
		n, err, handled := Send(dst, src, nil)
		done <- result{n, err, handled}
	}()
	select {
	case r := <-done:
		return r.n, r.err, r.handled
	case <-time.After(5 * time.Second):
		t.Fatal("Send hangs")
		return 0, nil, false
	}
}
