package store

import (
	"context"
	"sync"
)

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

// lock waits for id's lock (or ctx) and returns its release.
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
	select {
	case k.ch <- struct{}{}:
		return func() { <-k.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// updateLocked is UpdateLocked for a backend with Get and Put: the lock is
// held around the read, fn (which may call a vendor) and the write.
func updateLocked(ctx context.Context, l *idLocks, s Store, id string, fn func(Connection) (*Connection, error)) error {
	unlock, err := l.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	c, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	nc, err := fn(c)
	if err != nil || nc == nil {
		return err
	}
	nc.ID = id
	return s.Put(ctx, *nc)
}
