package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saas-exporter/saas_exporter/collector"
)

// BenchmarkColdMixed collects 300 synthetic connections (100 per vendor)
// on every scrape, against the simulator in process (no sockets, no added
// latency): the CPU a cold collection costs the exporter and the
// simulator. A CPU profile splits the two (vendorsim frames are the
// simulator's):
//
//	go test ./bench -run '^$' -bench ColdMixed -cpuprofile cpu.out
//	go tool pprof -top -focus 'saas_exporter/(collector|provider)' bench.test cpu.out
func BenchmarkColdMixed(b *testing.B) {
	r := mixedRig(b, 100, time.Nanosecond)
	h := r.engine.MetricsHandler(prometheus.NewRegistry())
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("/metrics answered %d", rec.Code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/300, "µs/collection")
}

// BenchmarkRetainedHeap collects 3,000 synthetic connections (1,000 per
// vendor) once and reports the heap that stays allocated after a GC, per
// series exported: what the engine keeps of a collection until the next.
//
//	go test ./bench -run '^$' -bench RetainedHeap -benchtime 1x
func BenchmarkRetainedHeap(b *testing.B) {
	for b.Loop() {
		r := mixedRig(b, 1000, time.Hour)
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		rec := httptest.NewRecorder()
		r.engine.MetricsHandler(prometheus.NewRegistry()).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		series := bytes.Count(rec.Body.Bytes(), []byte("\n")) - bytes.Count(rec.Body.Bytes(), []byte("\n#"))
		rec = nil
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(series), "B/series")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB")
		b.ReportMetric(float64(after.HeapInuse)/(1<<20), "MiB-inuse")
		b.ReportMetric(float64(series), "series")
		runtime.KeepAlive(r)
	}
}

// mixedRig connects perVendor synthetic accounts of each vendor and
// collects them with a minute's timeout and minInterval.
func mixedRig(b *testing.B, perVendor int, minInterval time.Duration) *depthRig {
	r := newDepthRig(b, 0)
	for _, v := range []string{"sendgrid", "twilio", "segment"} {
		for n := 1; n <= perVendor; n++ {
			r.connect(b, v, n)
		}
	}
	r.engine.Close()
	r.engine = collector.New(collector.Options{Store: r.store, Providers: r.providers, Timeout: time.Minute,
		MinInterval: minInterval, Transport: newInProcess(r.sim.Handler())})
	b.Cleanup(r.engine.Close)
	return r
}
