package collector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saas-exporter/saas_exporter/store"
)

// HistoryLen is how many attempts the engine remembers per connection.
const HistoryLen = 20

// Attempt is one collection of one connection, as this process ran it.
type Attempt struct {
	At       time.Time
	Duration time.Duration
	// Outcome is "success", or the state the attempt left: error,
	// rate_limited, revoked, expired.
	Outcome string
	Error   string // redacted; empty on success
}

// OutcomeSuccess is Attempt.Outcome of a collection without errors.
const OutcomeSuccess = "success"

// detail is what the connection page reads of an entry besides its health.
// It is guarded by the entry's mutex.
type detail struct {
	name    string     // the connection label the kept usage carries
	history []Attempt  // oldest first, at most HistoryLen
	seq     uint64     // attempts recorded since the process started
	latest  *collected // the last collection that had metrics, kept sections included
	// An attempt that ended without a verdict on the connection (the store
	// failed, another replica held it) is not in the history; Collect now
	// says why from these.
	skips uint64
	skip  string
}

// skipped notes an attempt that learnt nothing about the connection.
func (ent *entry) skipped(why string) {
	ent.mu.Lock()
	ent.detail.skips++
	ent.detail.skip = why
	ent.mu.Unlock()
}

// remember records an attempt; latest replaces the kept metrics when the
// collection produced any (a failed one keeps the last good values).
func (d *detail) remember(a Attempt, latest *collected) {
	d.seq++
	d.history = append(d.history, a)
	if over := len(d.history) - HistoryLen; over > 0 {
		d.history = append(d.history[:0:0], d.history[over:]...)
	}
	if !latest.empty() {
		d.latest = latest
	}
}

// named drops what carries an old connection label after a rename: the
// next collection emits the new name, and no series keeps the old one.
func (ent *entry) named(name string) {
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if ent.detail.name == name {
		return
	}
	if ent.detail.name != "" {
		ent.usage, ent.sections, ent.detail.latest = nil, nil, nil
		ent.collectedAt = time.Time{}
		ent.attempted = false // collect under the new name on the next scrape
	}
	ent.detail.name = name
}

// Detail is what this process knows of one connection's collections.
type Detail struct {
	State       string // as of the last attempt (or the store, before one)
	CollectedAt time.Time
	// Latest are the metrics of the last collection that produced any,
	// with each section's kept values; nil before one.
	Latest []prometheus.Metric
	// History lists this process's last attempts, newest first.
	History []Attempt
	// RateLimitedUntil: no vendor call before this (zero: none pending).
	RateLimitedUntil time.Time
}

// known returns connection id's entry; nil if this process has not seen it.
func (e *Engine) known(id string) *entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.entries[id]
}

// Detail returns what the engine knows of connection id; ok is false if
// this process has not seen it since it started (or since it was deleted).
func (e *Engine) Detail(id string) (d Detail, ok bool) {
	ent := e.known(id)
	if ent == nil {
		return Detail{}, false
	}
	ent.mu.Lock()
	defer ent.mu.Unlock()
	d = Detail{State: ent.state, CollectedAt: ent.collectedAt, Latest: ent.detail.latest.latest()}
	if e.o.Now().Before(ent.until) {
		d.RateLimitedUntil = ent.until
	}
	d.History = slices.Clone(ent.detail.history)
	slices.Reverse(d.History)
	return d, true
}

// Latest is this process's last attempt at a connection: what Detail
// tells of it, without copying the history or the metrics, so a list can
// ask it of every connection.
type Latest struct {
	At          time.Time // when the attempt started
	State       string    // the state it left
	Error       string    // its error; "" if it succeeded
	LastSuccess time.Time // this process's last successful attempt
}

// Latest returns the last attempt at connection id; false before any.
func (e *Engine) Latest(id string) (Latest, bool) {
	ent := e.known(id)
	if ent == nil {
		return Latest{}, false
	}
	ent.mu.Lock()
	defer ent.mu.Unlock()
	h := ent.detail.history
	if len(h) == 0 {
		return Latest{}, false
	}
	a := h[len(h)-1]
	return Latest{At: a.At, State: ent.state, Error: a.Error, LastSuccess: ent.lastSuccess}, true
}

// NotCollectedError says why CollectNow called no vendor.
type NotCollectedError struct {
	State  string    // rate_limited, revoked, expired, or "" (see Reason)
	Until  time.Time // rate_limited: when a call is allowed again
	Reason string    // State "": why; empty: no collection slot was free
}

func (e *NotCollectedError) Error() string {
	switch e.State {
	case store.StateRateLimited:
		return fmt.Sprintf("not collected: the vendor rate-limited this connection until %s; try again after that", e.Until.UTC().Format("2006-01-02 15:04:05 UTC"))
	case store.StateRevoked, store.StateExpired:
		return fmt.Sprintf("not collected: the connection is %s; reconnect it first", e.State)
	}
	if e.Reason != "" {
		return "not collected: " + e.Reason
	}
	return "not collected: scrape.concurrency connections were being collected for all of scrape.timeout; try again, or raise scrape.concurrency"
}

// CollectNow collects connection id at once, whatever scrape.min_interval
// says, and returns the attempt. It honours a rate limit (no call before the
// vendor's wait is over: *NotCollectedError) and makes no call for a revoked
// or expired credential, which needs a person. A scrape collecting the
// connection at the same moment shares this attempt. store.ErrNotFound if
// the connection does not exist.
func (e *Engine) CollectNow(ctx context.Context, id string) (Attempt, error) {
	c, err := e.o.Store.Get(ctx, id)
	if err != nil {
		return Attempt{}, err
	}
	if c.State == store.StateRevoked || c.State == store.StateExpired {
		return Attempt{}, &NotCollectedError{State: c.State}
	}
	ent := e.entry(c)
	ent.mu.Lock()
	before, skipsBefore := ent.detail.seq, ent.detail.skips
	ent.mu.Unlock()
	// Twice at most: a scrape's flight we joined may have found its result
	// fresh and made no call.
	for range 2 {
		ent.mu.Lock()
		until := ent.until
		ent.mu.Unlock()
		if e.o.Now().Before(until) {
			return Attempt{}, &NotCollectedError{State: store.StateRateLimited, Until: until}
		}
		done := e.flight.DoChan(c.ID, func() (any, error) {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.o.Timeout)
			defer cancel()
			select {
			case e.pool <- struct{}{}:
				defer func() { <-e.pool }()
			case <-actx.Done():
				return nil, nil
			}
			ent.mu.Lock()
			limited := e.o.Now().Before(ent.until)
			ent.mu.Unlock()
			if !limited {
				e.attempt(actx, c, ent)
			}
			return nil, nil
		})
		select {
		case <-done:
		case <-ctx.Done():
			return Attempt{}, ctx.Err()
		}
		ent.mu.Lock()
		seq, h, skips, why := ent.detail.seq, ent.detail.history, ent.detail.skips, ent.detail.skip
		ent.mu.Unlock()
		if seq > before && len(h) > 0 {
			return h[len(h)-1], nil
		}
		if skips > skipsBefore {
			return Attempt{}, &NotCollectedError{Reason: why}
		}
	}
	return Attempt{}, &NotCollectedError{}
}

// IsNotCollected reports whether err is a *NotCollectedError.
func IsNotCollected(err error) bool {
	var nc *NotCollectedError
	return errors.As(err, &nc)
}
