package framing

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// streamGen builds request streams from near-valid pieces: mostly correct
// syntax, with the variations smuggling relies on mixed in unless clean.
type streamGen struct {
	r     *rand.Rand
	clean bool // only valid choices
}

// v picks one of valid, or, rarely and unless g.clean, one of invalid
// (which are invalid, or valid in an unusual way).
func (g *streamGen) v(valid []string, invalid ...string) string {
	if !g.clean && len(invalid) > 0 && g.r.IntN(12) == 0 {
		return invalid[g.r.IntN(len(invalid))]
	}
	return valid[g.r.IntN(len(valid))]
}

func l(s ...string) []string { return s }

func (g *streamGen) eol() string { return g.v(l("\r\n"), "\n", "\r", "\r\r\n", "\n\r") }

func (g *streamGen) message(b *strings.Builder, prevPost bool) (post bool) {
	if prevPost && g.r.IntN(6) == 0 {
		b.WriteString(g.v(l("\r\n", "\r\n\r\n"), "\n", "\r\n\r\n\r\n", "\r"))
	} else {
		b.WriteString(g.v(l(""), "\r\n", "\n"))
	}
	line := g.v(l("GET / HTTP/1.1", "POST /p HTTP/1.1", "PUT /q?x HTTP/1.1", "POST / HTTP/1.0", "get / HTTP/1.1", "OPTIONS * HTTP/1.1"),
		"GET  / HTTP/1.1", "GET / HTTP/1.1 ", "GET / HTTP/2.0", "GET /a\x00 HTTP/1.1", "GET %zz HTTP/1.1", "GET / HTTP/1.9", "G(T / HTTP/1.1")
	post = strings.HasPrefix(line, "POST ")
	b.WriteString(line)
	b.WriteString(g.eol())
	http10 := strings.HasSuffix(line, "1.0")
	chunked, length := false, -1
	// At most one of CL and TE unless not clean.
	kinds := []int{0, 1, 2, 3, 4}
	if g.clean || g.r.IntN(3) > 0 {
		if g.r.IntN(2) == 0 || http10 {
			kinds = []int{0, 2, 3, 4}
		} else {
			kinds = []int{1, 2, 3, 4}
		}
	}
	nCL, nTE, nHost := 0, 0, 0
	for range g.r.IntN(6) {
		switch kinds[g.r.IntN(len(kinds))] {
		case 0:
			if nCL > 0 && g.clean {
				continue
			}
			nCL++
			n := g.r.IntN(12)
			length = n
			b.WriteString(g.v(l("Content-Length: ", "Content-Length:", "content-length:  ", "Content-Length:\t"), "Content-Length : "))
			v := strconv.Itoa(n)
			b.WriteString(g.v(l(v, "0"+v, v+" ", " "+v), "+"+v, v+", "+v, strconv.Itoa(n+1), "-"+v, ""))
		case 1:
			if nTE > 0 && g.clean {
				continue
			}
			nTE++
			chunked = true
			b.WriteString(g.v(l("Transfer-Encoding: ", "Transfer-Encoding:", "transfer-encoding: ", "Transfer-Encoding:\t"), "Transfer-Encoding : "))
			b.WriteString(g.v(l("chunked", "CHUNKED", "chunked ", "chunked\t"), "xchunked", "chunked, chunked", "chunked, identity", "identity", "chunked;x", ""))
		case 2:
			if nHost > 0 && g.clean {
				continue
			}
			nHost++
			b.WriteString(g.v(l("Host: a", "host:a"), "Host: a\r\nHost: b"))
		case 3:
			b.WriteString(g.v(l("X-Y: z", "X: \xc3\xa9", "Accept: */*", "X-Empty:"), " folded", "\tfolded", "X: y\x00", "X: a\rb", "X: \x7f", ": v", "NoColon", "X@: y"))
		default:
			b.WriteString(g.v(l("Connection: keep-alive", "Expect: 100-continue", "X-Long: "+strings.Repeat("v", g.r.IntN(100)))))
		}
		b.WriteString(g.eol())
	}
	b.WriteString(g.eol())
	switch {
	case chunked:
		for range g.r.IntN(4) {
			n := 1 + g.r.IntN(20)
			x := strconv.FormatInt(int64(n), 16)
			b.WriteString(g.v(l(x, strings.ToUpper(x), "0"+x, x+";ext", x+";a=\"b c\""), x+" ", "g", strconv.FormatInt(int64(n+1), 16), "-"+x, "0x"+x))
			b.WriteString(g.eol())
			b.WriteString(g.body(n))
			b.WriteString(g.v(l("\r\n"), "\n", "", "\r", "x\r\n"))
		}
		b.WriteString(g.v(l("0", "00", "0;x"), "0 ", ""))
		b.WriteString(g.eol())
		for range g.r.IntN(3) {
			b.WriteString(g.v(l("X-Trailer: v", "Content-Length: 5", "Transfer-Encoding: x"), " fold", "X : y", "X\x00: y"))
			b.WriteString(g.eol())
		}
		b.WriteString(g.eol())
	case length >= 0:
		n := length
		if !g.clean && g.r.IntN(4) == 0 {
			n += g.r.IntN(3) - 1
		}
		b.WriteString(g.body(n))
	}
	return post
}

// body returns n bytes (none if n < 0) that often look like framing.
func (g *streamGen) body(n int) string {
	const alphabet = "a\r\n0;: G\x00"
	var b strings.Builder
	for range n {
		b.WriteByte(alphabet[g.r.IntN(len(alphabet))])
	}
	return b.String()
}

// TestGeneratedStreams checks many generated streams the way FuzzConn
// checks fuzzed ones (delivered bytes; message boundaries equal to
// net/http's).
func TestGeneratedStreams(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	g := &streamGen{r: rand.New(rand.NewPCG(7, 8))}
	compared, rejected := 0, 0
	for i := range n {
		g.clean = i%2 == 0
		var in strings.Builder
		post := false
		for range 1 + g.r.IntN(5) {
			post = g.message(&in, post)
		}
		writes := []byte{byte(g.r.IntN(256)), byte(g.r.IntN(8))}
		reads := []byte{byte(g.r.IntN(256)), byte(g.r.IntN(4))}
		if writes[0]%4 == 1 {
			writes[0]++ // keep the default head bound
		}
		c, r := checkConnStreamN(t, []byte(in.String()), writes, reads)
		if t.Failed() {
			t.Fatalf("stream %d: %q", i, in.String())
		}
		compared += c
		if r {
			rejected++
			if g.clean {
				t.Fatalf("clean stream %d rejected: %q", i, in.String())
			}
		}
	}
	t.Logf("%d streams, %d rejected, %d message boundaries compared with net/http", n, rejected, compared)
	// The generator must produce both kinds of stream in quantity, or the
	// comparison proves little.
	if compared < n || rejected < n/8 {
		t.Errorf("generator too skewed: %d compared, %d rejected of %d", compared, rejected, n)
	}
}
