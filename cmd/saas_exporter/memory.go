package main

import (
	"context"
	"runtime/metrics"
	"time"
)

// A cold scrape of thousands of connections allocates far more than the
// exporter keeps (answers in flight, decoded JSON). Go's scavenger gives
// the rest back slowly, keeping about the heap goal the burst set, so the
// RSS stayed near the burst's peak for minutes (BENCHMARKS.md). trimMemory
// returns it once the burst is over.

// trimEvery is how often allocation is looked at.
const trimEvery = 5 * time.Second

const (
	// trimAtLeast: a run of busy intervals that allocated this much is a
	// burst worth a trim (a trim costs one GC cycle).
	trimAtLeast = 64 << 20
	// quietBelow: an interval that allocated less is quiet.
	quietBelow = 8 << 20
)

// trimMemory looks at the bytes allocated every so often until ctx ends,
// and calls free (debug.FreeOSMemory: a GC, then every free page given
// back) at the first quiet interval after a burst.
func trimMemory(ctx context.Context, every time.Duration, free func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	last := s[0].Value.Uint64()
	var tr trimmer
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(s)
		now := s[0].Value.Uint64()
		if tr.tick(now - last) {
			free()
		}
		last = now
	}
}

// trimmer decides from each interval's allocations.
type trimmer struct {
	run uint64 // allocated since the last quiet interval
}

// tick takes one interval's allocations and says whether to trim now: a
// quiet interval after a burst. Steady scrapes of a small fleet never
// make a burst; a cold scrape does, and a trim amid it would be undone.
func (t *trimmer) tick(allocated uint64) bool {
	if allocated >= quietBelow {
		t.run += allocated
		return false
	}
	trim := t.run >= trimAtLeast
	t.run = 0
	return trim
}
