package framing

import (
	"io"
	"strings"
	"testing"
)

// benchHead is a typical browser GET head of about 400 bytes.
var benchHead = typicalHead[:len(typicalHead)-2] + "Sec-Fetch-Mode: no-cors\r\n\r\n"

func BenchmarkCheckHead(b *testing.B) {
	head := []byte(benchHead)
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CheckHead(head); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRead reads stream, served again and again by the wrapped conn in
// one piece per underlying Read, in p-sized reads as net/http's bufio does.
func benchRead(b *testing.B, stream string, wrap bool) {
	var r io.Reader = &loopConn{data: []byte(stream)}
	if wrap {
		r = NewConn(&loopConn{data: []byte(stream)}, Options{})
	}
	p := make([]byte, 4096)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		for got := 0; got < len(stream); {
			n, err := r.Read(p[:min(len(p), len(stream)-got)])
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
}

func BenchmarkConnRead(b *testing.B) {
	pipelined := strings.Repeat(benchHead, 8) + postCL + postChk
	for _, bm := range []struct{ name, stream string }{
		{"GET", benchHead},
		{"pipelined10", pipelined},
		{"body64K", "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n" + strings.Repeat("x", 65536)},
	} {
		b.Run(bm.name, func(b *testing.B) { benchRead(b, bm.stream, true) })
		b.Run(bm.name+"/unwrapped", func(b *testing.B) { benchRead(b, bm.stream, false) })
	}
}
