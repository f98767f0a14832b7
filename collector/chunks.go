package collector

import (
	"sync"
	"unsafe"
)

// A collection's packed samples live until the next collection of that
// connection, minutes later; everything else it allocated is garbage at
// once. Allocated one by one, those small long-lived slices sat in spans
// full of a cold scrape's garbage, and held the spans (and the RSS) long
// after the burst: at 5,000 connections half the heap in use was such
// holes (BENCHMARKS.md). They are cut from shared chunks instead, so
// collections made at the same time share a few large allocations that
// are freed together when those collections have all been replaced.

// chunkBytes is a chunk's size: a large object (> 32 KiB) has a span of
// its own, and is given back whole.
const chunkBytes = 64 << 10

// chunks hands out slices of T cut from shared chunks.
type chunks[T any] struct {
	mu   sync.Mutex
	free []T // the current chunk's unused part
	size int // elements per chunk
}

func newChunks[T any]() *chunks[T] {
	var zero T
	return &chunks[T]{size: chunkBytes / int(unsafe.Sizeof(zero))}
}

// make returns a zeroed slice of n elements whose capacity is n: an
// append to it never writes into a neighbour.
func (c *chunks[T]) make(n int) []T {
	if n == 0 {
		return nil
	}
	if n > c.size/4 {
		return make([]T, n) // large enough to be allocated alone
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.free) < n {
		c.free = make([]T, c.size)
	}
	s := c.free[:n:n]
	c.free = c.free[n:]
	return s
}

// joinText writes vals one after another into bytes cut from c and
// returns them as one string. Those bytes are never written again.
func joinText(c *chunks[byte], vals []string) string {
	n := 0
	for _, v := range vals {
		n += len(v)
	}
	if n == 0 {
		return ""
	}
	b := c.make(n)
	o := 0
	for _, v := range vals {
		o += copy(b[o:], v)
	}
	return unsafe.String(&b[0], n)
}

var (
	textChunks       = newChunks[byte]()
	sectionChunks    = newChunks[packedSection]()
	slabChunks       = newChunks[packedMetric]()
	indexChunks      = newChunks[uint32]()
	shortIndexChunks = newChunks[uint16]()
	valueChunks      = newChunks[string]()
	familyChunks     = newChunks[usageFamily]()
	refChunks        = newChunks[int32]()
)
