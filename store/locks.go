package store

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"
)

// ErrChanged is returned by UpdateLocked when the connection's secret was
// replaced while fn ran (a reconnect): fn's record, built on the old
// secret, is not saved and the newer secret stays.
var ErrChanged = errors.New("store: the connection's credential was replaced while it was being updated; the newer credential stays")

// lockedSaveTimeout bounds saving fn's result in UpdateLocked. The save is
// not tied to the caller's context: fn may have used up a rotating refresh
// token, and its successor must be kept even when the scrape has ended.
const lockedSaveTimeout = 30 * time.Second

type lockWaitKey struct{}

// WithLockWait returns ctx under which UpdateLocked waits at most d for a
// lock another caller holds, then returns ErrLocked without calling fn. A
// caller that can carry on without the update (its current token is still
// valid) uses it so that another replica's slow renewal does not fail it.
func WithLockWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, lockWaitKey{}, d)
}

// lockWait is the wait set by WithLockWait, or 0 (wait as long as ctx).
func lockWait(ctx context.Context) time.Duration {
	d, _ := ctx.Value(lockWaitKey{}).(time.Duration)
	return d
}

// idLocks serialises work per connection id inside one process; the
// embedded backends have one process per store file, so that is enough.
type idLocks struct {
	mu sync.Mutex
	m  map[string]*idLock
}

type idLock struct {
	ch   chan struct{}
	refs int
}

// lock waits for id's lock (or ctx, or the lock wait set by WithLockWait)
// and returns its release.
func (l *idLocks) lock(ctx context.Context, id string) (func(), error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*idLock{}
	}
	k := l.m[id]
	if k == nil {
		k = &idLock{ch: make(chan struct{}, 1)}
		l.m[id] = k
	}
	k.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
	var waited <-chan time.Time
	if d := lockWait(ctx); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		waited = t.C
	}
	select {
	case k.ch <- struct{}{}:
		return func() { <-k.ch; release() }, nil
	case <-waited:
		release()
		return nil, ErrLocked
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// replacer is an embedded backend's atomic compare-and-write for
// UpdateLocked.
type replacer interface {
	Get(ctx context.Context, id string) (Connection, error)
	// replaceIf writes next as connection id in one step, if the stored
	// record still has read's secret (ErrChanged otherwise, ErrNotFound if
	// it is gone). A status fn left alone keeps the stored one, which a
	// status write may have changed meanwhile.
	replaceIf(ctx context.Context, id string, read, next Connection) error
}

// updateLocked is UpdateLocked for an embedded backend: the process-wide
// lock is held around the read, fn (which may call a vendor) and the
// write. Writes that do not take the lock (Put, Delete, SetStatus) may
// land while fn runs; replaceIf keeps them, as PostgreSQL's row lock does
// by making them wait.
func updateLocked(ctx context.Context, l *idLocks, s replacer, id string, fn func(Connection) (*Connection, error)) error {
	unlock, err := l.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	c, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	nc, err := fn(c.Clone())
	if err != nil || nc == nil {
		return err
	}
	next := nc.Clone()
	next.ID = id
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockedSaveTimeout)
	defer cancel()
	return s.replaceIf(saveCtx, id, c, next)
}

// replacement is what replaceIf writes over cur, or an error.
func replacement(cur, read, next Connection) (Connection, error) {
	if !maps.Equal(cur.Secret, read.Secret) {
		return Connection{}, ErrChanged
	}
	if sameStatus(next.Status, read.Status) {
		next.Status = cur.Status
	}
	return next, nil
}

func sameStatus(a, b Status) bool {
	return a.State == b.State && a.LastError == b.LastError && a.LastSuccess.Equal(b.LastSuccess) && a.Updated.Equal(b.Updated)
}

// statusStale reports whether writing s over cur would replace a newer
// decision (SetStatus keeps it). An undated s is always written.
func statusStale(cur, s Status) bool {
	return !s.Updated.IsZero() && cur.Updated.After(s.Updated)
}
