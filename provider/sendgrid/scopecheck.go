package sendgrid

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
)

// How an API key's scopes are known without asking on every collection
// (issue #17): /v3/scopes is read when connecting and on Reconnect (both
// store the answer with the connection), then by a section of its own at
// most every scopeCheckEvery, concurrently with the others. A scope lost
// in between shows as the 403 of the section needing it: that section is
// left out from then on (saas_connection_scope_missing says so) and the
// next collection checks /v3/scopes again.

// scopeCheckEvery is how often /v3/scopes is read during collection.
const scopeCheckEvery = 5 * time.Minute

// scopeSection is the name of the section reading /v3/scopes.
const scopeSection = "scopes"

// scopeMemory is what the provider learnt of each connection's scopes
// since the process started, by connection id.
type scopeMemory struct {
	mu sync.Mutex
	m  map[string]knownScopes
}

type knownScopes struct {
	stored  string   // the stored scopes this was learnt from: a Reconnect changes them
	scopes  []string // granted, as last learnt
	recheck bool     // a section's 403 took a scope away: ask /v3/scopes next time
	lost    []string // the scopes that 403 took away
	// granted403: /v3/scopes still lists a scope whose section got a
	// 403, so the 403 has another cause (IP access management, an
	// outage): sections' 403s are failures, not lost scopes.
	granted403 bool
}

func storedKey(c provider.Connection) string { return strings.Join(c.Scopes, " ") }

// get returns the scopes to collect with: what was learnt, or the stored
// ones when nothing was learnt since they were stored.
func (m *scopeMemory) get(c provider.Connection) knownScopes {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.m[c.ID]; ok && k.stored == storedKey(c) {
		return k
	}
	return knownScopes{stored: storedKey(c), scopes: slices.Clone(c.Scopes)}
}

// set records what /v3/scopes answered.
func (m *scopeMemory) set(c provider.Connection, scopes []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]knownScopes{}
	}
	old := m.m[c.ID]
	k := knownScopes{stored: storedKey(c), scopes: slices.Clone(scopes)}
	k.granted403 = old.recheck && len(old.lost) > 0 && !slices.ContainsFunc(old.lost, func(l string) bool { return !slices.Contains(scopes, l) })
	m.m[c.ID] = k
}

// lose removes scopes a 403 showed are gone and returns what is left.
func (m *scopeMemory) lose(c provider.Connection, lost []string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]knownScopes{}
	}
	k, ok := m.m[c.ID]
	if !ok || k.stored != storedKey(c) {
		k = knownScopes{stored: storedKey(c), scopes: slices.Clone(c.Scopes)}
	}
	k.scopes = slices.DeleteFunc(k.scopes, func(s string) bool { return slices.Contains(lost, s) })
	k.recheck, k.granted403 = true, false
	for _, l := range lost {
		if !slices.Contains(k.lost, l) {
			k.lost = append(k.lost, l)
		}
	}
	m.m[c.ID] = k
	return slices.Clone(k.scopes)
}

// scopeCheck is the section reading /v3/scopes: due every
// scopeCheckEvery, or at once after a 403.
func (p *Provider) scopeCheck(c *client, k knownScopes) provider.Section {
	every := scopeCheckEvery
	if k.recheck {
		every = 0
	}
	return provider.Section{Name: scopeSection, Every: every, Run: func(ctx context.Context, s *provider.Scrape) error {
		scopes, err := c.scopes(ctx)
		if err != nil {
			return err
		}
		p.known.set(s.Conn, scopes)
		s.MissingScopes(missing(scopes))
		return nil
	}}
}

// lostScope wraps a section's run: its 403 means one of scopes was taken
// from the key since it was last checked. The section is left out (no
// error: a missing scope is not a failed collection) until /v3/scopes,
// asked on the next collection, says otherwise.
func (p *Provider) lostScope(scopes []string, run func(context.Context, *provider.Scrape) error) func(context.Context, *provider.Scrape) error {
	return func(ctx context.Context, s *provider.Scrape) error {
		err := run(ctx, s)
		if provider.StatusOf(err) != http.StatusForbidden || p.known.get(s.Conn).granted403 {
			return err
		}
		s.MissingScopes(missing(p.known.lose(s.Conn, scopes)))
		return nil
	}
}
