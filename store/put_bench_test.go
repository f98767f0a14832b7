package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkBoltPut is one new connection stored beside n others: with
// the names index its cost does not grow with n (BENCHMARKS.md).
//
//	go test ./store -run '^$' -bench BoltPut
func BenchmarkBoltPut(b *testing.B) {
	for _, n := range []int{100, 2000} {
		b.Run(fmt.Sprintf("stored=%d", n), func(b *testing.B) {
			ctx := context.Background()
			s, err := OpenBolt(filepath.Join(b.TempDir(), DefaultBoltFile), mustRing(b, mustKey(b)))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			s.db.NoSync = true // the fsync is the same at every n; measure the rest
			for i := range n {
				if err := s.Put(ctx, testConn(fmt.Sprintf("c%06d", i), fmt.Sprintf("prod-%06d", i))); err != nil {
					b.Fatal(err)
				}
			}
			i := 0
			for b.Loop() {
				// Each loop stores one more; b.N is small next to n.
				if err := s.Put(ctx, testConn(fmt.Sprintf("new%06d", i), fmt.Sprintf("new-%06d", i))); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkBoltSetStatus writes the status of 2,000 stored connections,
// 32 at once as the collector's status writer does after a cold scrape:
// the writes share transactions and syncs, and no secret is opened or
// sealed again (BENCHMARKS.md).
//
//	go test ./store -run '^$' -bench BoltSetStatus
func BenchmarkBoltSetStatus(b *testing.B) {
	ctx := context.Background()
	s, err := OpenBolt(filepath.Join(b.TempDir(), DefaultBoltFile), mustRing(b, mustKey(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 2000
	for i := range n {
		if err := s.Put(ctx, testConn(fmt.Sprintf("c%06d", i), fmt.Sprintf("prod-%06d", i))); err != nil {
			b.Fatal(err)
		}
	}
	at := time.Now()
	cpu0 := cpuTime(b)
	for b.Loop() {
		at = at.Add(time.Second)
		ids := make(chan int)
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for i := range ids {
					if err := s.SetStatus(ctx, fmt.Sprintf("c%06d", i), Status{State: StateActive, LastSuccess: at, Updated: at}); err != nil {
						b.Error(err)
					}
				}
			})
		}
		for i := range n {
			ids <- i
		}
		close(ids)
		wg.Wait()
	}
	// Wall time is mostly bolt's batch delay (10 ms) while the writes
	// wait for each other; the CPU is what a cold scrape competes with.
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/n, "µs/status")
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N)/n, "cpu-µs/status")
}

// cpuTime is the CPU this process has used (user and system).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
