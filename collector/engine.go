// Package collector is the generic collection engine: it runs each
// vendor's provider over every stored connection on a scrape, concurrently
// and within the scrape's deadline, reuses fresh results, shares one vendor
// round trip between concurrent scrapes, honours rate limits, and exports
// the connection-health metrics.
package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// Options configures an Engine.
type Options struct {
	Store     store.Store
	Providers []provider.Provider
	// Timeout bounds one connection's collection (scrape.timeout); the
	// scrape's own timeout header lowers it.
	Timeout time.Duration
	// MinInterval: a connection's result younger than this is reused.
	MinInterval time.Duration
	// Concurrency bounds connections collected at once.
	Concurrency int
	// VendorConcurrency bounds concurrent calls to one vendor account;
	// 0: each provider's documented bound (provider.CallBound).
	VendorConcurrency int
	// Transport is the base transport to every vendor (keep-alive pool).
	Transport http.RoundTripper
	Logger    *slog.Logger
	Now       func() time.Time
}

// Engine collects connections. It is safe for concurrent scrapes.
type Engine struct {
	o         Options
	providers map[string]provider.Provider
	counts    requestCounter
	flight    singleflight.Group
	pool      chan struct{}
	status    *statusWriter
	// gen changes whenever what /metrics shows of the connections may
	// have changed (see bodyCache).
	gen   atomic.Uint64
	cache bodyCache
	seq   atomic.Uint64 // collections started, for callGate
	creds *credentials

	mu        sync.Mutex
	entries   map[string]*entry
	last      []store.Connection // last list read from the store, used while it fails
	listedAt  time.Time
	listDirty bool
	storeOK   bool
	// storeFaults counts collections that failed because of the store, so
	// a scrape that saw one reports saas_exporter_store_up 0.
	storeFaults atomic.Int64
}

// entry is what the engine remembers of one connection between scrapes.
type entry struct {
	mu          sync.Mutex
	attemptAt   time.Time // start of the last collection
	attempted   bool
	state       string
	up          bool
	success     bool
	duration    time.Duration
	lastSuccess time.Time
	collectedAt time.Time
	until       time.Time // rate limited: no vendor call before this
	missing     []string
	remaining   float64
	usage       []usageFamily // the last usage, grouped once
	sections    *collected    // the collection holding each section's last good metrics
	lastErr     string
	expiry      time.Time // the credential's expiry after the last attempt renewed it
	renewed     bool
	detail      detail // history and latest metrics, for the connection page (detail.go)

	// The month-to-date figure among usage, for the API (MonthToDate).
	monthToDate    float64
	hasMonthToDate bool
}

// New builds an engine. Call Close to flush state on shutdown.
func New(o Options) *Engine {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Timeout <= 0 {
		o.Timeout = 8 * time.Second
	}
	if o.Transport == nil {
		o.Transport = NewTransport()
	}
	o.Transport = newCallGate(o.Transport, callsPerCollection*o.Concurrency)
	e := &Engine{
		o:         o,
		providers: map[string]provider.Provider{},
		pool:      make(chan struct{}, o.Concurrency),
		entries:   map[string]*entry{},
		storeOK:   true,
	}
	for _, p := range o.Providers {
		e.providers[p.Vendor()] = p
	}
	e.status = newStatusWriter(o.Store, o.Logger)
	e.counts.changed = func() { e.gen.Add(1) }
	e.creds = newCredentials(o.Store, o.Logger)
	return e
}

// DefaultConcurrency is scrape.concurrency's default (see BENCHMARKS.md,
// rounds 4 and 5). 5,000 cold connections are about 62,000 calls of
// about 100 ms each, CPU-bound on 2 CPUs. What bounds the wall time is the
// vendor calls in flight (callsPerCollection × this), not the
// collections: 1,024 collections with 2,048 calls left 7,800 calls parked
// for a slot (60 MiB of stacks, scanned by every GC) and peaked above
// 500 MiB; with the same 1,536 calls, 256 collections were as fast as 384
// and peaked about 45 MiB lower. Fewer connections never use the slots
// they do not need.
const DefaultConcurrency = 256

// callsPerCollection bounds the vendor calls in flight across all
// connections to this many times scrape.concurrency. One connection may
// use its whole per-account bound (a lone cold collection in two round
// trips), but thousands at once would hold thousands of sockets and
// starve the CPU: past this, calls queue, oldest collection first
// (callGate). A cold collection has 5 to 14 calls it could make at once;
// 6 on average keeps 1,536 in flight at the default concurrency (at 5,000
// cold connections, 1,024 left the CPU waiting: 8.1–8.6 s instead of
// 6.7–7.6 s; BENCHMARKS.md, round 5).
const callsPerCollection = 6

// callBound is how many calls one account of vendor may have in flight.
func (e *Engine) callBound(vendor string) int {
	if e.o.VendorConcurrency > 0 {
		return e.o.VendorConcurrency
	}
	if b, ok := e.providers[vendor].(provider.CallBound); ok && b.MaxConcurrentCalls() > 0 {
		return b.MaxConcurrentCalls()
	}
	return provider.DefaultCallBound
}

// NewTransport is the shared transport to vendors: bounded dial and TLS
// times, and enough idle connections per host for keep-alive under load:
// every collection in flight may hold a few calls to the same vendor host,
// and a connection closed for want of an idle slot costs a new TLS
// handshake on the next call.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 2048
	t.MaxIdleConnsPerHost = 1024
	t.IdleConnTimeout = 90 * time.Second
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	// Every socket has these two buffers, and a cold scrape of thousands
	// of connections holds about 1,800 sockets (4 KiB each by default).
	// A request is a GET or a small form: 1 KiB holds it. An answer's
	// headers fit 2 KiB, and a longer line is still read whole; a JSON
	// body is read in the decoder's own, larger reads.
	t.WriteBufferSize = 1 << 10
	t.ReadBufferSize = 2 << 10
	return t
}

// Close writes renewed credentials the store has not taken yet (waiting a
// bounded time) and pending connection status to the store. Call it before
// closing the store.
func (e *Engine) Close() {
	e.creds.close()
	e.status.close()
}

// Client returns an HTTP client for calls outside a scrape (verifying a
// new credential); its calls are counted in saas_vendor_requests_total.
func (e *Engine) Client(vendor string) *http.Client {
	return &http.Client{
		Transport: newCallRecorder(e.o.Transport, vendor, &e.counts, e.callBound(vendor), e.o.Now),
		Timeout:   30 * time.Second,
	}
}

// Forget makes the next scrape collect a connection afresh (it was
// reconnected, revoked or changed elsewhere), ignoring min_interval and any
// rate-limit wait. The last known usage stays exported until then.
func (e *Engine) Forget(id string) {
	e.mu.Lock()
	ent := e.entries[id]
	e.listDirty = true
	e.mu.Unlock()
	e.gen.Add(1)
	if ent != nil {
		ent.mu.Lock()
		ent.attempted = false
		ent.until = time.Time{}
		ent.mu.Unlock()
	}
}

// prune drops what the engine remembers of deleted connections.
func (e *Engine) prune(conns []store.Connection) {
	live := make(map[string]bool, len(conns))
	for _, c := range conns {
		live[c.ID] = true
	}
	e.mu.Lock()
	for id := range e.entries {
		if !live[id] {
			delete(e.entries, id)
			e.gen.Add(1)
		}
	}
	e.mu.Unlock()
}

// connections lists the store, falling back to the last good list so health
// series stay while the store is unreachable. A list younger than
// listTTL is reused: listing opens every sealed secret, and a change made
// through this replica (Forget) lists afresh.
func (e *Engine) connections(ctx context.Context) ([]store.Connection, bool) {
	e.mu.Lock()
	if e.storeOK && !e.listDirty && e.last != nil && e.o.Now().Sub(e.listedAt) < e.listTTL() {
		conns := e.last
		e.mu.Unlock()
		return conns, true
	}
	e.mu.Unlock()
	// Half the scrape's time at most: the rest is for the collections,
	// which then work from the last known list.
	lctx, cancel := ctx, context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok {
		lctx, cancel = context.WithTimeout(ctx, time.Until(dl)/2)
	}
	conns, err := e.o.Store.List(lctx)
	cancel()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		if e.storeOK {
			e.o.Logger.Error("cannot list connections from the store; exporting the last known list", "err", err)
			e.gen.Add(1)
		}
		e.storeOK = false
		return e.last, false
	}
	if !e.storeOK {
		e.o.Logger.Info("store reachable again")
	}
	if !e.storeOK || !sameList(e.last, conns) {
		e.gen.Add(1)
	}
	e.storeOK = true
	e.last, e.listedAt, e.listDirty = conns, e.o.Now(), false
	return conns, true
}

// sameList reports whether two lists show the same on /metrics: a list
// read again that did not change keeps the body cache.
func sameList(a, b []store.Connection) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.ID != y.ID || x.Name != y.Name || x.Vendor != y.Vendor || x.Account != y.Account || x.AuthMethod != y.AuthMethod ||
			x.State != y.State || x.LastError != y.LastError || !x.Expiry.Equal(y.Expiry) || !x.Created.Equal(y.Created) ||
			!x.LastSuccess.Equal(y.LastSuccess) || !slices.Equal(x.MissingScopes, y.MissingScopes) {
			return false
		}
	}
	return true
}

// listTTL bounds how stale the list may be: a change made on another
// replica shows within it (at most 5s, never more than min_interval).
func (e *Engine) listTTL() time.Duration { return min(e.o.MinInterval, 5*time.Second) }

// collectAll collects every connection accepted by keep (nil: all) and
// returns their snapshots in store order. It returns when every connection
// has answered or ctx is done; late connections report their last result.
func (e *Engine) collectAll(ctx context.Context, keep func(store.Connection) bool) (snaps []*snapshot, storeOK bool) {
	faults := e.storeFaults.Load()
	conns, storeOK := e.connections(ctx)
	if storeOK && keep == nil {
		e.prune(conns)
	}
	if keep != nil {
		var kept []store.Connection
		for _, c := range conns {
			if keep(c) {
				kept = append(kept, c)
			}
		}
		conns = kept
	}
	// Sized before the goroutines start: each writes only its own slot.
	snaps = make([]*snapshot, len(conns))
	// scrape.concurrency workers take the connections in store order: no
	// more can be collected at once, and a goroutine parked per waiting
	// connection (two, with its flight) was 10,000 goroutines at the start
	// of a cold scrape of 5,000, each scanned by every GC. After ctx ends the
	// workers still start every remaining connection's flight, which runs
	// on for the scrapes after this one, as before.
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range min(len(conns), e.o.Concurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				snaps[i] = e.collectOne(ctx, conns[i])
			}
		}()
	}
	wg.Wait()
	return snaps, storeOK && e.storeFaults.Load() == faults
}

func (e *Engine) entry(c store.Connection) *entry {
	ent := e.entryLocked(c)
	ent.named(c.Name)
	return ent
}

func (e *Engine) entryLocked(c store.Connection) *entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	ent, ok := e.entries[c.ID]
	if !ok {
		ent = &entry{state: c.State, lastSuccess: c.LastSuccess, remaining: math.NaN(), lastErr: c.LastError, missing: c.MissingScopes}
		if ent.state == "" {
			ent.state = store.StateActive
		}
		ent.up = ent.state == store.StateActive
		e.entries[c.ID] = ent
	}
	return ent
}

// collectOne returns a connection's snapshot, calling the vendor only when
// the last result is too old, no rate limit forbids it, and the credential
// is not known to be dead.
func (e *Engine) collectOne(ctx context.Context, c store.Connection) *snapshot {
	ent := e.entry(c)
	now := e.o.Now()

	// Revoked and expired credentials need a person (reconnect), not a
	// call; so does a record the store cannot read (its state is error).
	if c.State == store.StateRevoked || c.State == store.StateExpired || c.Damaged != "" {
		snap := ent.snapshot(c)
		snap.state, snap.up = c.State, false
		if c.Damaged != "" {
			snap.success = false
		}
		return snap
	}

	ent.mu.Lock()
	fresh := ent.attempted && now.Sub(ent.attemptAt) < e.o.MinInterval
	limited := now.Before(ent.until)
	ent.mu.Unlock()
	if fresh || limited {
		return ent.snapshot(c)
	}

	// Concurrent scrapes share one round trip per connection.
	done := e.flight.DoChan(c.ID, func() (any, error) {
		defer e.recoverFlight(c, ent, now)
		// The collection runs to its own deadline (scrape.timeout), not the
		// caller's: a short X-Prometheus-Scrape-Timeout-Seconds or a caller
		// that went away must never turn into the connection's failure,
		// and other scrapes may wait on this result.
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), e.o.Timeout)
		defer wcancel()
		// A flight that just ended may have refreshed it meanwhile.
		ent.mu.Lock()
		fresh := ent.attempted && e.o.Now().Sub(ent.attemptAt) < e.o.MinInterval
		ent.mu.Unlock()
		if fresh {
			return nil, nil
		}
		select {
		case e.pool <- struct{}{}:
			defer func() { <-e.pool }()
		case <-wctx.Done():
			// Not started: nothing was learnt about the connection, so
			// nothing is cached, stored or counted; the next scrape tries.
			e.o.Logger.Warn("collection not started: scrape.concurrency connections were being collected for all of scrape.timeout (raise scrape.concurrency)",
				"vendor", c.Vendor, "connection", c.Name, "concurrency", e.o.Concurrency)
			return nil, nil
		}
		// Its scrape.timeout starts now: waiting for the slot was not
		// part of the collection.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.o.Timeout)
		defer cancel()
		e.attempt(actx, c, ent)
		return nil, nil
	})
	select {
	case <-done:
		return ent.snapshot(c)
	case <-ctx.Done():
		// This scrape cannot wait longer; the collection goes on for
		// the scrapes after it. Only this answer shows it unfinished, and
		// its health series describe this attempt alone: not the previous
		// attempt's up or duration.
		snap := ent.snapshot(c)
		snap.success, snap.up, snap.attempted = false, false, true
		snap.duration = e.o.Now().Sub(now)
		if snap.state == store.StateActive {
			snap.state = store.StateError // this collection did not finish in time
		}
		return snap
	}
}

// recoverFlight turns a panic in a collection outside the provider (engine
// or store code; the provider's own are caught by safeCollect) into that
// connection's error: singleflight would re-panic it and end the process.
// It must be deferred directly.
func (e *Engine) recoverFlight(c store.Connection, ent *entry, start time.Time) {
	r := recover()
	if r == nil {
		return
	}
	pe := &provider.PanicError{Where: c.Vendor + " collection", Value: r, Stack: debug.Stack()}
	e.o.Logger.Error("collection panicked", "vendor", c.Vendor, "id", c.ID, "panic", redact(fmt.Sprint(r), c.Secret), "stack", string(pe.Stack))
	ent.record(e, c, start, e.o.Now().Sub(start), nil, nil, pe, nil)
}

// attempt runs the provider once and records the outcome.
func (e *Engine) attempt(ctx context.Context, c store.Connection, ent *entry) {
	// Scrapes during the collection show it unfinished: not the cached body.
	e.gen.Add(1)
	ctx = withSeq(ctx, e.seq.Add(1))
	start := e.o.Now()
	p := e.providers[c.Vendor]
	if p == nil {
		ent.record(e, c, start, 0, nil, nil, fmt.Errorf("this exporter has no provider for vendor %q; remove the connection or run a build that supports it", c.Vendor), nil)
		return
	}
	// A renewal the store has not taken yet: collect with it, never with
	// the credential it replaced.
	c = e.creds.overlay(c)
	rec := newCallRecorder(e.o.Transport, c.Vendor, &e.counts, e.callBound(c.Vendor), e.o.Now)
	// A renewed credential's expiry is exported by this very scrape, not
	// only once the store is listed again.
	var (
		mu      sync.Mutex
		expiry  time.Time
		renewed bool
	)
	renew := e.renewer(c.ID)
	ent.mu.Lock()
	prevSections := ent.sections.sectionResults()
	ent.mu.Unlock()
	s := &provider.Scrape{Conn: View(c), HTTP: &http.Client{Transport: rec}, Now: start, Previous: prevSections,
		Renew: func(ctx context.Context, fn func(provider.Connection) (*provider.Credential, error)) (provider.Connection, error) {
			nc, err := renew(ctx, fn)
			if err == nil {
				mu.Lock()
				expiry, renewed = nc.Expiry, true
				mu.Unlock()
			}
			return nc, err
		}}
	err := safeCollect(ctx, p, s)
	metrics, missing, updated := s.Result()
	if updated != nil {
		// Save a renewed credential before anything uses it again: a
		// rotated refresh token that is lost cannot be replayed. Only over
		// the credential it renewed: a reconnect meanwhile wins.
		switch serr := e.creds.save(c.ID, c.Secret, *updated); {
		case serr == nil:
			expiry, renewed = updated.Expiry, true
		case errors.Is(serr, errReplaced), errors.Is(serr, store.ErrNotFound):
			e.o.Logger.Info("not saving a renewed credential", "vendor", c.Vendor, "connection", c.Name, "id", c.ID, "reason", serr)
		default:
			err = errors.Join(err, fmt.Errorf("saving the renewed credential: %w", serr))
		}
	}
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("collection did not finish before the deadline: %w", ctx.Err())
	}
	// Only the packed forms outlive the collection: the sections, the
	// page's latest values and /metrics all read the same ones.
	secs := s.SectionResults()
	got := pack(secs, metrics)
	ent.mu.Lock()
	ent.expiry, ent.renewed = expiry, renewed
	if secs != nil {
		ent.sections = got
	}
	ent.mu.Unlock()
	if errors.Is(err, store.ErrLocked) {
		// Another replica holds the connection (a refresh): not a fault of
		// the vendor nor of the store. The next scrape tries again.
		e.o.Logger.Info("connection locked by another replica; keeping its last result", "vendor", c.Vendor, "connection", c.Name, "id", c.ID)
		ent.skipped("another replica holds this connection (a token refresh); try again in a few seconds")
		return
	}
	if errors.Is(err, store.ErrUnavailable) {
		// The store failed, not the vendor: the connection keeps its last
		// result and the next scrape tries again; the scrape reports
		// saas_exporter_store_up 0.
		e.storeFaults.Add(1)
		e.o.Logger.Warn("collection needs the store, which failed; keeping the connection's last result", "vendor", c.Vendor, "connection", c.Name, "id", c.ID, "err", redact(err.Error(), c.Secret))
		ent.skipped("the collection needed the store, which failed; try again when it is back")
		return
	}
	var pe *provider.PanicError
	if errors.As(err, &pe) {
		e.o.Logger.Error("collector panicked", "vendor", c.Vendor, "id", c.ID, "where", pe.Where, "panic", redact(fmt.Sprint(pe.Value), c.Secret), "stack", string(pe.Stack))
	}
	ent.record(e, c, start, e.o.Now().Sub(start), got, missing, err, rec)
}

// renewer is Scrape.Renew for one connection: fn runs under the store's
// cross-replica lock and its credential is saved in the same step. If the
// vendor accepted a renewal the store then fails to take (a database
// restart), the new credential is kept in memory, used, and saved again
// in the background.
func (e *Engine) renewer(id string) func(context.Context, func(provider.Connection) (*provider.Credential, error)) (provider.Connection, error) {
	return func(ctx context.Context, fn func(provider.Connection) (*provider.Credential, error)) (provider.Connection, error) {
		var (
			out     store.Connection
			from    map[string]string
			renewed bool
		)
		err := e.o.Store.UpdateLocked(ctx, id, func(c store.Connection) (*store.Connection, error) {
			from, renewed = c.Secret, false
			out = e.creds.overlay(c)
			cred, err := fn(View(out))
			if err != nil || cred == nil {
				return nil, err
			}
			applyCredential(&out, cred)
			renewed = true
			return &out, nil
		})
		switch {
		case err == nil && renewed:
			e.creds.landed(id, out.Secret)
		case err != nil && renewed && !permanent(err):
			e.creds.keep(id, from, credentialOf(out), err)
			return View(out), nil
		}
		return View(out), err
	}
}

// applyCredential copies a renewed credential onto a stored connection;
// identity (id, name, created, account) stays.
func applyCredential(c *store.Connection, cred *provider.Credential) {
	c.Secret = cred.Secret
	c.Expiry = cred.Expiry
	if cred.Settings != nil {
		c.Settings = cred.Settings
	}
	if cred.Scopes != nil {
		c.Scopes = cred.Scopes
		c.MissingScopes = cred.MissingScopes
	}
}

func safeCollect(ctx context.Context, p provider.Provider, s *provider.Scrape) (err error) {
	defer provider.Recover(p.Vendor()+" collector", &err)
	return p.Collect(ctx, s)
}

// record stores the outcome of an attempt and queues the status for the store.
func (ent *entry) record(e *Engine, c store.Connection, start time.Time, dur time.Duration, got *collected, missing []string, err error, rec *callRecorder) {
	// Grouped once (pack); every scrape until the next collection reuses it.
	if got == nil {
		got = &collected{}
	}
	usage, rendered, rerr := got.latest(), got.families, got.err
	if rerr != nil {
		err = errors.Join(err, fmt.Errorf("%s collector produced inconsistent metrics: %w", c.Vendor, rerr))
	}
	state := store.StateActive
	accepted := false
	var until time.Time
	if rec != nil {
		rec.mu.Lock()
		accepted = rec.accepted > 0
		if rec.limited {
			until = rec.until
		}
		remaining := rec.remaining
		rec.mu.Unlock()
		ent.mu.Lock()
		if !math.IsNaN(remaining) {
			ent.remaining = remaining
		}
		ent.mu.Unlock()
	}
	var se *provider.StateError
	switch {
	case err == nil:
	case errors.As(err, &se):
		state = se.State
		if se.State == store.StateRateLimited && se.Until.After(until) {
			until = se.Until
		}
	case !until.IsZero():
		state = store.StateRateLimited
	case provider.StatusOf(err) == http.StatusUnauthorized:
		state = store.StateRevoked
	default:
		state = store.StateError
	}
	if state == store.StateRateLimited && until.IsZero() {
		until = start.Add(defaultRateLimitWait)
	}
	if limit := start.Add(maxRateLimitWait); until.After(limit) {
		until = limit
	}
	msg := ""
	if err != nil {
		msg = redact(err.Error(), c.Secret)
	}

	ent.mu.Lock()
	ent.attempted = true
	ent.attemptAt = start
	ent.duration = dur
	ent.success = err == nil
	prev := ent.state
	ent.state = state
	switch state {
	case store.StateRevoked, store.StateExpired:
		ent.up = false
	case store.StateRateLimited:
		// The vendor said nothing about the credential; keep what we knew.
		ent.up = ent.up || accepted
	default:
		ent.up = accepted || err == nil
	}
	ent.until = until
	if missing != nil {
		ent.missing = missing
	}
	if len(rendered) > 0 {
		ent.usage = rendered
		ent.collectedAt = start
		ent.monthToDate, ent.hasMonthToDate = provider.MonthToDateOf(usage)
	}
	if err == nil {
		ent.lastSuccess = start
	}
	prevErr := ent.lastErr
	ent.lastErr = msg
	outcome := OutcomeSuccess
	if err != nil {
		outcome = state
	}
	ent.detail.remember(Attempt{At: start, Duration: dur, Outcome: outcome, Error: msg}, got)
	st := store.Status{State: state, LastSuccess: ent.lastSuccess, LastError: msg, Updated: start}
	ent.mu.Unlock()

	if err != nil && (msg != prevErr || state != prev) {
		e.o.Logger.Warn("collection failed", "vendor", c.Vendor, "connection", c.Name, "id", c.ID, "state", state, "err", msg)
	} else if err == nil && prev != store.StateActive {
		e.o.Logger.Info("collection recovered", "vendor", c.Vendor, "connection", c.Name, "id", c.ID)
	}
	e.gen.Add(1)
	e.status.put(c.ID, st, state != c.State || msg != c.LastError)
}

func (ent *entry) snapshot(c store.Connection) *snapshot {
	ent.mu.Lock()
	defer ent.mu.Unlock()
	last := ent.lastSuccess
	if c.LastSuccess.After(last) {
		last = c.LastSuccess // another replica succeeded more recently
	}
	if ent.renewed {
		c.Expiry = ent.expiry
	}
	return &snapshot{
		conn:        c,
		state:       ent.state,
		up:          ent.up,
		success:     ent.success,
		attempted:   ent.attempted,
		duration:    ent.duration,
		lastSuccess: last,
		collectedAt: ent.collectedAt,
		missing:     ent.missing,
		remaining:   ent.remaining,
		usage:       ent.usage,
		sections:    ent.sections.sectionList(),
	}
}

// redact removes every secret value from a message, in case a vendor or a
// library echoed one back, also in part: any run of 8 or more characters
// that begins or ends a secret (a vendor showing "SG.abcd1234…").
func redact(msg string, secret map[string]string) string {
	for _, v := range secret {
		if len(v) >= 4 {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	for _, v := range secret {
		if len(v) >= 2*echoMin {
			msg = redactEchoes(msg, v)
		}
	}
	return msg
}

// echoMin is the shortest part of a secret redacted on its own.
const echoMin = 8

// redactEchoes replaces every run of msg that is a prefix or a suffix of
// v, echoMin characters or longer.
func redactEchoes(msg, v string) string {
	hide := make([]bool, len(msg))
	head, tail := v[:echoMin], v[len(v)-echoMin:]
	for off := 0; ; {
		p := strings.Index(msg[off:], head)
		if p < 0 {
			break
		}
		p += off
		n := echoMin
		for n < len(v) && p+n < len(msg) && msg[p+n] == v[n] {
			n++
		}
		for i := p; i < p+n; i++ {
			hide[i] = true
		}
		off = p + 1
	}
	for off := 0; ; {
		p := strings.Index(msg[off:], tail)
		if p < 0 {
			break
		}
		p += off
		start := p
		for j := len(v) - echoMin - 1; j >= 0 && start > 0 && msg[start-1] == v[j]; j-- {
			start--
		}
		for i := start; i < p+echoMin; i++ {
			hide[i] = true
		}
		off = p + 1
	}
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		switch {
		case !hide[i]:
			b.WriteByte(msg[i])
		case i == 0 || !hide[i-1]:
			b.WriteString("[redacted]")
		}
	}
	return b.String()
}
