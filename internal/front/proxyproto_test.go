package front

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/whiskserver/whisk/internal/forwarded"
)

// v2Header builds a v2 header: command, family byte, address block, and
// tlv extra bytes.
func v2Header(cmd, fam byte, addrs []byte, tlv int) []byte {
	b := append([]byte{}, v2Sig...)
	b = append(b, 0x20|cmd, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)+tlv))
	b = append(b, addrs...)
	return append(b, bytes.Repeat([]byte{0xee}, tlv)...)
}

func v2Inet4(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

func v2Inet6(src, dst string, sport, dport uint16) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := append(s[:], d[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	return binary.BigEndian.AppendUint16(b, dport)
}

func v2Unix(src string) []byte {
	b := make([]byte, v2UnixLen)
	copy(b, src)
	copy(b[108:], "/run/dst.sock")
	return b
}

// TestParseProxyHeader: each form of v1 and v2, and what is refused.
func TestParseProxyHeader(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		src  string // "" for none (the peer stays); "short" for errShortHeader; "error" for an error
		size int    // 0: len(in)
	}{
		{"v1 TCP4", []byte("PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"), "192.0.2.1:56324", 0},
		{"v1 TCP6", []byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n"), "[2001:db8::1]:1", 0},
		{"v1 TCP6 mapped", []byte("PROXY TCP6 ::ffff:192.0.2.1 ::1 80 80\r\n"), "192.0.2.1:80", 0},
		{"v1 UNKNOWN", []byte("PROXY UNKNOWN\r\n"), "", 0},
		{"v1 UNKNOWN with addresses", []byte("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), "", 0},
		{"v1 with data after", []byte("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nGET / HTTP/1.1\r\n"), "192.0.2.1:1", 36},
		{"v1 short", []byte("PROXY TCP4 192.0"), "short", 0},
		{"v1 prefix short", []byte("PRO"), "short", 0},
		{"v1 family mismatch", []byte("PROXY TCP4 2001:db8::1 192.0.2.2 1 2\r\n"), "error", 0},
		{"v1 bad port", []byte("PROXY TCP4 192.0.2.1 192.0.2.2 65536 2\r\n"), "error", 0},
		{"v1 leading zero port", []byte("PROXY TCP4 192.0.2.1 192.0.2.2 080 2\r\n"), "error", 0},
		{"v1 double space", []byte("PROXY TCP4  192.0.2.1 192.0.2.2 1 2\r\n"), "error", 0},
		{"v1 LF only", []byte("PROXY TCP4 192.0.2.1 192.0.2.2 1 2\n"), "error", 0},
		{"v1 zone", []byte("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), "error", 0},
		{"v1 too long", []byte("PROXY UNKNOWN " + strings.Repeat("x", 120) + "\r\n"), "error", 0},
		{"v1 unknown proto", []byte("PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n"), "error", 0},
		{"not a header", []byte("GET / HTTP/1.1\r\n"), "error", 0},
		{"POST is not PROXY", []byte("POST /"), "error", 0},
		{"v2 TCP4", v2Header(1, 0x11, v2Inet4("192.0.2.9", "192.0.2.10", 4000, 443), 0), "192.0.2.9:4000", 0},
		{"v2 TCP4 with TLVs", v2Header(1, 0x11, v2Inet4("192.0.2.9", "192.0.2.10", 4000, 443), 40), "192.0.2.9:4000", 0},
		{"v2 TCP6", v2Header(1, 0x21, v2Inet6("2001:db8::9", "2001:db8::10", 4000, 443), 3), "[2001:db8::9]:4000", 0},
		{"v2 UNIX", v2Header(1, 0x31, v2Unix("/run/src.sock"), 0), "/run/src.sock", 0},
		{"v2 LOCAL", v2Header(0, 0x11, v2Inet4("192.0.2.9", "192.0.2.10", 1, 2), 0), "", 0},
		{"v2 LOCAL no addresses", v2Header(0, 0x00, nil, 0), "", 0},
		{"v2 UNSPEC", v2Header(1, 0x00, nil, 5), "", 0},
		{"v2 UDP refused", v2Header(1, 0x12, v2Inet4("192.0.2.9", "192.0.2.10", 1, 2), 0), "error", 0},
		{"v2 short block", v2Header(1, 0x11, []byte{1, 2, 3}, 0), "error", 0},
		{"v2 bad version", append(append([]byte{}, v2Sig...), 0x31, 0x11, 0, 0), "error", 0},
		{"v2 bad command", append(append([]byte{}, v2Sig...), 0x22, 0x11, 0, 0), "error", 0},
		{"v2 short fixed", append(append([]byte{}, v2Sig...), 0x21, 0x11), "short", 0},
		{"v2 addresses not all there", v2Header(1, 0x21, v2Inet6("2001:db8::9", "2001:db8::10", 1, 2), 0)[:30], "short", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, size, err := parseProxyHeader(tt.in)
			switch tt.src {
			case "short":
				if !errors.Is(err, errShortHeader) {
					t.Fatalf("err %v, want errShortHeader", err)
				}
				return
			case "error":
				if err == nil || errors.Is(err, errShortHeader) {
					t.Fatalf("err %v, want a refusal", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.size
			if want == 0 {
				want = len(tt.in)
			}
			if size != want {
				t.Errorf("size %d, want %d", size, want)
			}
			got := ""
			if h.src != nil {
				got = h.src.String()
			}
			if got != tt.src {
				t.Errorf("src %q, want %q", got, tt.src)
			}
		})
	}
}

// FuzzParseProxyHeader: the parser never panics; a header it accepts
// parses the same with more bytes after it, its size covers at least the
// part it read, and "incomplete" only happens on short input.
func FuzzParseProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET /"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2Header(1, 0x11, v2Inet4("192.0.2.9", "192.0.2.10", 4000, 443), 7))
	f.Add(v2Header(1, 0x21, v2Inet6("2001:db8::9", "::1", 4000, 443), 0))
	f.Add(v2Header(1, 0x31, v2Unix("/a"), 0))
	f.Add(v2Header(0, 0x00, nil, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, size, err := parseProxyHeader(b)
		if errors.Is(err, errShortHeader) {
			if len(b) >= 16+v2UnixLen {
				t.Fatalf("incomplete after %d bytes", len(b))
			}
			return
		}
		if err != nil {
			return
		}
		if size < 16 && b[0] != 'P' || size < len("PROXY UNKNOWN\r\n")-1 {
			t.Fatalf("size %d too small", size)
		}
		if b[0] == 'P' && size > len(b) {
			t.Fatalf("v1 size %d beyond the input (%d)", size, len(b))
		}
		h2, size2, err2 := parseProxyHeader(append(append([]byte{}, b...), "GET / HTTP/1.1\r\n"...))
		if err2 != nil || size2 != size || (h.src == nil) != (h2.src == nil) || h.src != nil && h.src.String() != h2.src.String() {
			t.Fatalf("with bytes after: %v %d %v, before %d %v", err2, size2, h2.src, size, h.src)
		}
	})
}

// proxyPair starts a ProxyListener on loopback trusting prefixes, dials it
// and returns the client and accepted server sides.
func proxyPair(t *testing.T, prefixes []netip.Prefix, timeout time.Duration) (client net.Conn, server net.Conn) {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := ProxyListener(raw, ProxyOptions{Trust: forwarded.NewTrust(prefixes), Timeout: timeout})
	t.Cleanup(func() { l.Close() })
	client, err = net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}

var (
	loopback  = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	elsewhere = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
)

// TestProxyListener: through real connections, a trusted peer's header
// sets RemoteAddr and the bytes after it reach Read; an untrusted peer's
// header, or a trusted peer without one, closes the connection; an
// untrusted peer speaking HTTP at once is served as itself.
func TestProxyListener(t *testing.T) {
	t.Run("trusted v1", func(t *testing.T) {
		c, s := proxyPair(t, loopback, time.Second)
		io.WriteString(c, "PROXY TCP4 192.0.2.1 192.0.2.2 4242 80\r\nGET / HTTP/1.1\r\n")
		if got := s.RemoteAddr().String(); got != "192.0.2.1:4242" {
			t.Errorf("RemoteAddr %s", got)
		}
		buf := make([]byte, 64)
		n, err := s.Read(buf)
		if err != nil || string(buf[:n]) != "GET / HTTP/1.1\r\n" {
			t.Errorf("Read %q, %v", buf[:n], err)
		}
	})
	t.Run("trusted v2 with large TLVs, in pieces", func(t *testing.T) {
		c, s := proxyPair(t, loopback, time.Second)
		h := v2Header(1, 0x21, v2Inet6("2001:db8::7", "2001:db8::8", 1234, 443), 3000)
		go func() {
			c.Write(h[:5])
			time.Sleep(20 * time.Millisecond)
			c.Write(h[5:])
			io.WriteString(c, "hello")
		}()
		buf := make([]byte, 64)
		n, err := io.ReadAtLeast(s, buf, 5)
		if err != nil || string(buf[:n]) != "hello" {
			t.Errorf("Read %q, %v", buf[:n], err)
		}
		if got := s.RemoteAddr().String(); got != "[2001:db8::7]:1234" {
			t.Errorf("RemoteAddr %s", got)
		}
	})
	t.Run("trusted v2 LOCAL keeps the peer", func(t *testing.T) {
		c, s := proxyPair(t, loopback, time.Second)
		c.Write(v2Header(0, 0, nil, 0))
		if got := s.RemoteAddr().String(); got != c.LocalAddr().String() {
			t.Errorf("RemoteAddr %s, want the peer %s", got, c.LocalAddr())
		}
	})
	t.Run("trusted without header refused", func(t *testing.T) {
		c, s := proxyPair(t, loopback, time.Second)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if _, err := s.Read(make([]byte, 10)); err == nil {
			t.Fatal("Read succeeded")
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("the connection stayed open")
		}
	})
	t.Run("trusted silent peer times out", func(t *testing.T) {
		_, s := proxyPair(t, loopback, 100*time.Millisecond)
		start := time.Now()
		if _, err := s.Read(make([]byte, 10)); err == nil {
			t.Fatal("Read succeeded")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("untrusted header refused", func(t *testing.T) {
		for _, h := range [][]byte{[]byte("PROXY TCP4 192.0.2.1 192.0.2.2 4242 80\r\n"), v2Header(1, 0x11, v2Inet4("192.0.2.1", "192.0.2.2", 1, 2), 0)} {
			c, s := proxyPair(t, elsewhere, time.Second)
			c.Write(h)
			if _, err := s.Read(make([]byte, 10)); err == nil {
				t.Fatal("Read succeeded")
			}
			if got := s.RemoteAddr().String(); got != c.LocalAddr().String() {
				t.Errorf("RemoteAddr %s, want the peer %s", got, c.LocalAddr())
			}
		}
	})
	t.Run("untrusted plain client served", func(t *testing.T) {
		c, s := proxyPair(t, elsewhere, time.Second)
		io.WriteString(c, "POST / HTTP/1.1\r\n")
		buf := make([]byte, 64)
		n, err := io.ReadAtLeast(s, buf, 17)
		if err != nil || string(buf[:n]) != "POST / HTTP/1.1\r\n" {
			t.Errorf("Read %q, %v", buf[:n], err)
		}
		if got := s.RemoteAddr().String(); got != c.LocalAddr().String() {
			t.Errorf("RemoteAddr %s, want the peer %s", got, c.LocalAddr())
		}
	})
	t.Run("user deadline kept", func(t *testing.T) {
		c, s := proxyPair(t, loopback, time.Second)
		s.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		io.WriteString(c, "PROXY UNKNOWN\r\n")
		start := time.Now()
		if _, err := s.Read(make([]byte, 10)); err == nil || time.Since(start) > 900*time.Millisecond {
			t.Errorf("Read: %v after %v, want the user's deadline", err, time.Since(start))
		}
	})
}

// TestProxyListenerAcceptNotBlocked: a peer that sends nothing does not
// hold up Accept or other connections.
func TestProxyListenerAcceptNotBlocked(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := ProxyListener(raw, ProxyOptions{Trust: forwarded.NewTrust(loopback), Timeout: 5 * time.Second})
	defer l.Close()
	silent, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	s1, _ := l.Accept()
	defer s1.Close()
	go s1.Read(make([]byte, 1)) // blocks on the silent peer's header
	talker, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer talker.Close()
	io.WriteString(talker, "PROXY TCP4 192.0.2.5 192.0.2.6 1 2\r\n")
	done := make(chan string, 1)
	go func() {
		s2, err := l.Accept()
		if err != nil {
			done <- err.Error()
			return
		}
		defer s2.Close()
		done <- s2.RemoteAddr().String()
	}()
	select {
	case got := <-done:
		if got != "192.0.2.5:1" {
			t.Errorf("second connection: %s", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the second connection waited for the silent one")
	}
}
