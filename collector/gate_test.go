package collector

import (
	"context"
	"testing"
)

// TestCallGateOldestFirst: with the gate full, waiting calls go through
// oldest collection first, not in the order they queued; a caller that
// gives up leaves the queue without taking a slot.
func TestCallGateOldestFirst(t *testing.T) {
	g := newCallGate(nil, 1)
	ctx := context.Background()
	if err := g.acquire(ctx, 1); err != nil { // the slot is taken
		t.Fatal(err)
	}
	order := make(chan uint64, 3)
	queued := make(chan struct{})
	gaveUp, cancel := context.WithCancel(ctx)
	for _, seq := range []uint64{9, 5, 7} {
		go func() {
			c := ctx
			if seq == 5 {
				c = gaveUp
			}
			if g.acquire(c, seq) == nil {
				order <- seq
				g.release()
			}
		}()
	}
	go func() {
		for {
			g.mu.Lock()
			n := len(g.waiting)
			g.mu.Unlock()
			if n == 3 {
				close(queued)
				return
			}
		}
	}()
	<-queued
	cancel() // 5 gives up while waiting
	for {
		g.mu.Lock()
		n := len(g.waiting)
		g.mu.Unlock()
		if n == 2 {
			break
		}
	}
	g.release()
	if a, b := <-order, <-order; a != 7 || b != 9 {
		t.Errorf("let through %d then %d, want 7 then 9 (oldest first, 5 gave up)", a, b)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.free != 1 || len(g.waiting) != 0 {
		t.Errorf("after all: %d free, %d waiting; want 1 and 0", g.free, len(g.waiting))
	}
}
