package collector

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// sleepyProvider's collection takes d (fake time in a synctest bubble).
type sleepyProvider struct{ d time.Duration }

func (p *sleepyProvider) Vendor() string             { return "fake" }
func (p *sleepyProvider) Title() string              { return "Fake" }
func (p *sleepyProvider) Methods() []provider.Method { return nil }
func (p *sleepyProvider) Collect(ctx context.Context, s *provider.Scrape) error {
	select {
	case <-time.After(p.d):
		s.Gauge(descUsed, 1)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("collection cut short: %w", ctx.Err())
	}
}

// A collection waiting for a scrape.concurrency slot has not started: the
// wait does not count against its own scrape.timeout. (It did: with more
// connections than the CPU could collect at once, the ones queued longest
// started with a deadline nearly spent, and every call of theirs failed.)
func TestQueuedCollectionGetsItsWholeTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := store.NewMemory()
		for i := range 2 {
			if err := st.Put(context.Background(), store.Connection{ID: fmt.Sprintf("id%d", i), Vendor: "fake", Name: fmt.Sprintf("c%d", i),
				AuthMethod: "api_key", Secret: map[string]string{"key": "k"}, Status: store.Status{State: store.StateActive}}); err != nil {
				t.Fatal(err)
			}
		}
		// One at a time, each taking 70% of scrape.timeout: the second
		// waits 0.7 s for the slot, then needs 0.7 s of its own.
		e := New(Options{Store: st, Providers: []provider.Provider{&sleepyProvider{d: 700 * time.Millisecond}},
			Timeout: time.Second, MinInterval: time.Minute, Concurrency: 1})
		defer e.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		snaps, _ := e.collectAll(ctx, nil)
		for _, s := range snaps {
			if !s.success {
				d, _ := e.Detail(s.conn.ID)
				t.Errorf("%s: not collected after waiting for its slot: %+v", s.conn.Name, d.History)
			}
		}
	})
}

// A scrape of many connections holds goroutines for the ones being
// collected, not one or two parked for each connection still waiting for
// a scrape.concurrency slot: 10,000 goroutines at the start of a cold
// scrape of 5,000, each scanned by every GC.
func TestWaitingConnectionsHoldNoGoroutines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const conns, concurrency = 40, 4
		st := store.NewMemory()
		for i := range conns {
			if err := st.Put(context.Background(), store.Connection{ID: fmt.Sprintf("id%d", i), Vendor: "fake", Name: fmt.Sprintf("c%d", i),
				AuthMethod: "api_key", Secret: map[string]string{"key": "k"}, Status: store.Status{State: store.StateActive}}); err != nil {
				t.Fatal(err)
			}
		}
		e := New(Options{Store: st, Providers: []provider.Provider{&sleepyProvider{d: time.Second}},
			Timeout: 20 * time.Second, MinInterval: time.Minute, Concurrency: concurrency})
		defer e.Close()
		synctest.Wait()
		before := runtime.NumGoroutine()
		done := make(chan []*snapshot)
		go func() {
			snaps, _ := e.collectAll(context.Background(), nil)
			done <- snaps
		}()
		synctest.Wait() // every goroutine of the scrape is parked
		// The scrape itself, a worker and a flight per slot.
		if n := runtime.NumGoroutine() - before; n > 1+2*concurrency {
			t.Errorf("%d goroutines while collecting %d connections %d at a time; want at most %d", n, conns, concurrency, 1+2*concurrency)
		}
		for _, s := range <-done {
			if !s.success {
				t.Errorf("%s not collected", s.conn.Name)
			}
		}
	})
}
