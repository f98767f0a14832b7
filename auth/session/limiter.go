package session

import (
	"sync"
	"time"
)

// ThrottleKey is what failed sign-ins are counted by: the user name tried
// and the client, so wrong passwords from one client never lock out
// another client, nor another user.
func ThrottleKey(user, client string) string {
	return user + "\x00" + client
}

// Limiter counts failed sign-ins per key in a sliding window.
type Limiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	fails  map[string][]time.Time
}

const maxTrackedClients = 10000

func newLimiter(max int, window time.Duration) *Limiter {
	return &Limiter{max: max, window: window, fails: map[string][]time.Time{}}
}

func (l *Limiter) recent(key string, now time.Time) []time.Time {
	fs := l.fails[key]
	i := 0
	for i < len(fs) && !fs[i].After(now.Add(-l.window)) {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(l.fails, key)
		return nil
	}
	l.fails[key] = fs
	return fs
}

// Allowed reports whether key may try again, and if not, from when.
func (l *Limiter) Allowed(key string, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fs := l.recent(key, now)
	if len(fs) >= l.max {
		return fs[len(fs)-l.max].Add(l.window), false
	}
	return time.Time{}, true
}

// Fail counts a failed sign-in of key.
func (l *Limiter) Fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) >= maxTrackedClients {
		for k := range l.fails {
			l.recent(k, now)
		}
		// Still full: forget arbitrary clients rather than grow without bound.
		for k := range l.fails {
			if len(l.fails) < maxTrackedClients {
				break
			}
			delete(l.fails, k)
		}
	}
	fs := append(l.recent(key, now), now)
	if len(fs) > l.max {
		fs = fs[len(fs)-l.max:]
	}
	l.fails[key] = fs
}

// Reset forgets key's failures (after a successful sign-in).
func (l *Limiter) Reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}
