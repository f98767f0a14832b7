package collector

import (
	"container/heap"
	"context"
	"net/http"
	"sync"
)

// callGate bounds the vendor calls in flight across all connections.
// Waiting calls are let through oldest collection first: when the CPU or
// the bound cannot serve every collection at once, the ones started first
// finish (and are exported) instead of all of them crawling past the
// deadline together.
type callGate struct {
	base http.RoundTripper

	mu      sync.Mutex
	free    int
	waiting waiters
}

func newCallGate(base http.RoundTripper, n int) *callGate {
	return &callGate{base: base, free: n}
}

// seqKey carries a collection's start order in its context; calls outside
// a collection (verifying a new credential) have none and go first.
type seqKey struct{}

func withSeq(ctx context.Context, seq uint64) context.Context {
	return context.WithValue(ctx, seqKey{}, seq)
}

// RoundTrip holds a slot until the answer's headers arrive: the wait is
// what the bound is for, and a body a caller never closes cannot keep a
// slot.
func (g *callGate) RoundTrip(r *http.Request) (*http.Response, error) {
	seq, _ := r.Context().Value(seqKey{}).(uint64)
	if err := g.acquire(r.Context(), seq); err != nil {
		return nil, err
	}
	defer g.release()
	return g.base.RoundTrip(r)
}

func (g *callGate) acquire(ctx context.Context, seq uint64) error {
	g.mu.Lock()
	if g.free > 0 && len(g.waiting) == 0 {
		g.free--
		g.mu.Unlock()
		return nil
	}
	w := &waiter{seq: seq, ready: make(chan struct{})}
	heap.Push(&g.waiting, w)
	g.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		granted := w.index < 0
		if !granted {
			heap.Remove(&g.waiting, w.index)
		}
		g.mu.Unlock()
		if granted { // let through just as the caller gave up: pass it on
			g.release()
		}
		return ctx.Err()
	}
}

func (g *callGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.waiting) > 0 {
		w := heap.Pop(&g.waiting).(*waiter)
		close(w.ready)
		return
	}
	g.free++
}

type waiter struct {
	seq   uint64
	index int // in waiters; -1 once let through
	ready chan struct{}
}

// waiters is a min-heap by seq.
type waiters []*waiter

func (h waiters) Len() int           { return len(h) }
func (h waiters) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h waiters) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *waiters) Push(x any) {
	w := x.(*waiter)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *waiters) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.index = -1
	return w
}
