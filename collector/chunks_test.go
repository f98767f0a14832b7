package collector

import "testing"

// Slices cut from one chunk are zeroed, hold exactly what was asked, and
// an append to one never writes into the next.
func TestChunksDoNotOverlap(t *testing.T) {
	c := newChunks[uint32]()
	a := c.make(3)
	b := c.make(2)
	if len(a) != 3 || cap(a) != 3 || len(b) != 2 || cap(b) != 2 {
		t.Fatalf("len/cap %d/%d and %d/%d, want 3/3 and 2/2", len(a), cap(a), len(b), cap(b))
	}
	for i := range a {
		a[i] = 7
	}
	for _, v := range b {
		if v != 0 {
			t.Fatalf("b = %v: not zeroed, or a wrote into it", b)
		}
	}
	a = append(a, 9) // must reallocate, not write into b
	b[0] = 5
	if a[3] != 9 || b[0] != 5 || b[1] != 0 {
		t.Errorf("after append: a %v, b %v", a, b)
	}
	if c.make(0) != nil {
		t.Error("an empty slice took room")
	}
	// A request larger than a quarter chunk is allocated alone.
	big := c.make(c.size)
	next := c.make(1)
	for i := range big {
		big[i] = 3
	}
	if len(big) != c.size || next[0] != 0 || b[0] != 5 || b[1] != 0 {
		t.Errorf("a big slice shares memory with the chunk's slices")
	}
	// A chunk with too little room left is replaced.
	for range c.size {
		c.make(1)
	}
	if s := c.make(c.size / 4); len(s) != c.size/4 || cap(s) != c.size/4 {
		t.Errorf("len/cap %d/%d, want %d", len(s), cap(s), c.size/4)
	}
}

// Texts joined into one chunk keep their bytes when the next is joined.
func TestJoinTextKeepsItsBytes(t *testing.T) {
	c := newChunks[byte]()
	a := joinText(c, []string{"ab", "", "c"})
	b := joinText(c, []string{"xyz"})
	if a != "abc" || b != "xyz" || joinText(c, nil) != "" {
		t.Errorf("joined %q and %q, want \"abc\" and \"xyz\"", a, b)
	}
}
