package main

import (
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"
)

func TestHeapScratch(t *testing.T) {
	if os.Getenv("HEAP_SCRATCH") == "" {
		t.Skip()
	}
	f := newFleet(t, 2000, time.Hour)
	start := time.Now()
	n := f.scrape(t, true)
	t.Logf("cold %s, %d bytes", time.Since(start), n)
	f.waitStatuses(t, 2000)
	start = time.Now()
	n = f.scrape(t, true)
	t.Logf("warm %s, %d bytes", time.Since(start), n)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("heap inuse %d MiB, sys %d MiB", ms.HeapInuse>>20, ms.Sys>>20)
	fh, _ := os.Create("/tmp/heap.out")
	pprof.WriteHeapProfile(fh)
	fh.Close()
}
