package collector

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/saas-exporter/saas_exporter/store"
)

// persistEvery bounds how often an unchanged status (a newer last success)
// is written, so a large fleet does not mean a store write per scrape.
const persistEvery = 5 * time.Minute

// statusWriter writes connection status to the store in the background,
// coalescing repeated updates of the same connection, so a slow store
// never delays a scrape.
type statusWriter struct {
	st     store.Store
	log    *slog.Logger
	mu     sync.Mutex
	queue  map[string]store.Status
	saved  map[string]time.Time
	wake   chan struct{}
	done   chan struct{}
	closed bool
}

func newStatusWriter(st store.Store, log *slog.Logger) *statusWriter {
	w := &statusWriter{st: st, log: log, queue: map[string]store.Status{}, saved: map[string]time.Time{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// put queues s; changed forces a write, otherwise it is written at most
// every persistEvery.
func (w *statusWriter) put(id string, s store.Status, changed bool) {
	w.mu.Lock()
	if w.closed || (!changed && s.Updated.Sub(w.saved[id]) < persistEvery) {
		w.mu.Unlock()
		return
	}
	w.queue[id] = s
	w.saved[id] = s.Updated
	select { // under the lock: close cannot race this send
	case w.wake <- struct{}{}:
	default:
	}
	w.mu.Unlock()
}

func (w *statusWriter) run() {
	defer close(w.done)
	for range w.wake {
		w.flush()
	}
	w.flush()
}

func (w *statusWriter) flush() {
	w.mu.Lock()
	q := w.queue
	w.queue = map[string]store.Status{}
	w.mu.Unlock()
	// Several at once: a store may then write them in one transaction
	// (bolt batches concurrent writes into one sync).
	var wg sync.WaitGroup
	ids := make(chan string)
	for range min(len(q), flushWorkers) {
		wg.Go(func() {
			for id := range ids {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				// The store keeps a newer decision taken elsewhere since this
				// collection started (a deauthorize callback, a reconnect): the
				// check and the write are one step there, never a read then a write.
				err := w.st.SetStatus(ctx, id, q[id])
				cancel()
				if err != nil && err != store.ErrNotFound {
					w.log.Warn("cannot save connection status", "id", id, "err", err)
				}
			}
		})
	}
	for id := range q {
		ids <- id
	}
	close(ids)
	wg.Wait()
}

// flushWorkers bounds the status writes in flight.
const flushWorkers = 32

func (w *statusWriter) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	close(w.wake)
	<-w.done
}
