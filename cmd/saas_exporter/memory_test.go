package main

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/config"
)

func TestTrimmer(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name      string
		intervals []uint64 // MiB allocated in each
		want      []bool
	}{
		{"steady small fleet", []uint64{3, 5, 2, 7, 1}, []bool{false, false, false, false, false}},
		{"a cold burst, then quiet", []uint64{1, 300, 200, 2, 1}, []bool{false, false, false, true, false}},
		{"busy but under a burst, then quiet", []uint64{20, 30, 1}, []bool{false, false, false}},
		{"two bursts", []uint64{100, 0, 100, 0}, []bool{false, true, false, true}},
		{"a quiet interval breaks the run", []uint64{40, 1, 40, 1}, []bool{false, false, false, false}},
		{"still busy: no trim amid it", []uint64{500, 500, 500}, []bool{false, false, false}},
	} {
		var tr trimmer
		for i, a := range c.intervals {
			if got := tr.tick(a * mib); got != c.want[i] {
				t.Errorf("%s: interval %d (%d MiB): trim %v, want %v", c.name, i, a, got, c.want[i])
			}
		}
	}
}

// trimMemory trims once a burst of allocation is over, and not while the
// process only idles.
func TestTrimMemoryAfterBurst(t *testing.T) {
	var trims atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go trimMemory(ctx, 100*time.Millisecond, func() { trims.Add(1) })
	time.Sleep(500 * time.Millisecond)
	if n := trims.Load(); n != 0 {
		t.Fatalf("%d trims while idle", n)
	}
	// A burst: allocation for 1 s, far above quietBelow per interval even
	// on a busy machine (1 MiB takes microseconds).
	var sink []byte
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		sink = make([]byte, 1<<20)
	}
	runtime.KeepAlive(sink)
	for deadline := time.Now().Add(30 * time.Second); trims.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no trim after the burst")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The configuration's default scrape.concurrency is the engine's.
func TestConcurrencyDefaultsAgree(t *testing.T) {
	if config.DefaultConcurrency != collector.DefaultConcurrency {
		t.Errorf("config.DefaultConcurrency %d, collector.DefaultConcurrency %d: one default", config.DefaultConcurrency, collector.DefaultConcurrency)
	}
}
