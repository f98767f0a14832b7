package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
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
