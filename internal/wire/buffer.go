package wire

import "sync"

// Buffers come from size-classed pools, powers of two from 4 KiB to
// MaxPayload. A buffer the size of a large frame or request body, taken
// fresh each time, would be paged in and zeroed by the kernel on every
// request; pooled, its pages stay resident.
const minBuffer = 4 << 10

var buffers [14]sync.Pool // 4 KiB << 0..13 reaches 32 MiB > MaxPayload

func bufferClass(n int) int {
	c := 0
	for size := minBuffer; size < n && c < len(buffers)-1; size <<= 1 {
		c++
	}
	return c
}

// GetBuffer returns a buffer of length n from the pools; give it back with
// PutBuffer when done. Its capacity is n rounded up to a power of two.
func GetBuffer(n int) *[]byte {
	c := bufferClass(n)
	if b, ok := buffers[c].Get().(*[]byte); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, max(n, minBuffer<<c))
	return &b
}

// PutBuffer returns a buffer from GetBuffer to its pool. The caller must
// not use it afterwards.
func PutBuffer(b *[]byte) {
	buffers[bufferClass(cap(*b))].Put(b)
}
