package store

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Memory is a Store kept in process memory, for tests and throwaway runs.
// It copies every value on the way in and out, so callers never share a map
// or slice with it.
type Memory struct {
	mu      sync.Mutex
	closed  bool
	conns   map[string]Connection
	once    map[string]time.Time
	invites map[string]Invite
	now     func() time.Time
	locks   idLocks
	meta    map[string][]byte
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{
		conns:   map[string]Connection{},
		once:    map[string]time.Time{},
		invites: map[string]Invite{},
		now:     time.Now,
	}
}

// errEmptyID is returned for writes without an ID; it is a caller bug.
var errEmptyID = errors.New("store: record has an empty id")

func (m *Memory) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	return nil
}

func (m *Memory) List(ctx context.Context) ([]Connection, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := make([]Connection, 0, len(m.conns))
	for _, c := range m.conns {
		out = append(out, c.Clone())
	}
	sortConnections(out)
	return out, nil
}

func (m *Memory) Matching(ctx context.Context, vendor, accountID, name string) ([]Connection, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := []Connection{}
	for _, c := range m.conns {
		if name != "" && c.Name == name || accountID != "" && c.Vendor == vendor && c.AccountID == accountID {
			out = append(out, c.Clone())
		}
	}
	sortConnections(out)
	return out, nil
}

func (m *Memory) Get(ctx context.Context, id string) (Connection, error) {
	if err := m.lock(ctx); err != nil {
		return Connection{}, err
	}
	defer m.mu.Unlock()
	c, ok := m.conns[id]
	if !ok {
		return Connection{}, ErrNotFound
	}
	return c.Clone(), nil
}

func (m *Memory) Put(ctx context.Context, c Connection) error {
	if c.ID == "" {
		return errEmptyID
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	return m.put(c)
}

// put stores c if its name and account are free; m.mu is held.
func (m *Memory) put(c Connection) error {
	if old, had := m.conns[c.ID]; c.AccountID != "" && !(had && sameAccount(old, c)) {
		for id, other := range m.conns {
			if id != c.ID && sameAccount(other, c) {
				return ErrAccountTaken
			}
		}
	}
	for id, other := range m.conns {
		if id != c.ID && other.Name == c.Name {
			return ErrNameTaken
		}
	}
	m.conns[c.ID] = c.Clone()
	return nil
}

// sameAccount: a and b hold the same vendor account.
func sameAccount(a, b Connection) bool {
	return a.AccountID != "" && a.Vendor == b.Vendor && a.AccountID == b.AccountID
}

func (m *Memory) SetStatus(ctx context.Context, id string, s Status) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	c, ok := m.conns[id]
	if !ok {
		return ErrNotFound
	}
	if statusStale(c.Status, s) {
		return nil
	}
	c.Status = s
	m.conns[id] = c
	return nil
}

func (m *Memory) SetSecret(ctx context.Context, id string, secret map[string]string, expiry time.Time) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	c, ok := m.conns[id]
	if !ok {
		return ErrNotFound
	}
	c.Secret = cloneMap(secret)
	c.Expiry = expiry
	m.conns[id] = c
	return nil
}

func (m *Memory) UpdateLocked(ctx context.Context, id string, fn func(Connection) (*Connection, error)) error {
	return updateLocked(ctx, &m.locks, m, id, fn)
}

func (m *Memory) replaceIf(ctx context.Context, id string, read, next Connection) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	cur, ok := m.conns[id]
	if !ok {
		return ErrNotFound
	}
	next, err := replacement(cur, read, next)
	if err != nil {
		return err
	}
	return m.put(next)
}

// Delete waits for an UpdateLocked of the same id to finish, so that one
// cannot write back the record after the delete returned.
func (m *Memory) Delete(ctx context.Context, id string) error {
	unlock, err := m.locks.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	delete(m.conns, id)
	return nil
}

func (m *Memory) GetMeta(ctx context.Context, key string) ([]byte, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	v, ok := m.meta[key]
	if !ok {
		return nil, ErrNotFound
	}
	return slices.Clone(v), nil
}

func (m *Memory) PutMeta(ctx context.Context, key string, value []byte) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if m.meta == nil {
		m.meta = map[string][]byte{}
	}
	m.meta[key] = slices.Clone(value)
	return nil
}

func (m *Memory) Ping(ctx context.Context) error {
	if err := m.lock(ctx); err != nil {
		return err
	}
	m.mu.Unlock()
	return nil
}

func (m *Memory) UseOnce(ctx context.Context, key string, expires time.Time) (bool, error) {
	if key == "" {
		return false, errors.New("store: UseOnce with an empty key")
	}
	if err := m.lock(ctx); err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	now := m.now()
	for k, exp := range m.once {
		if !now.Before(exp) {
			delete(m.once, k)
		}
	}
	if _, used := m.once[key]; used {
		return false, nil
	}
	m.once[key] = expires
	return true, nil
}

func (m *Memory) Used(ctx context.Context, key string) (bool, error) {
	if err := m.lock(ctx); err != nil {
		return false, err
	}
	defer m.mu.Unlock()
	exp, ok := m.once[key]
	return ok && m.now().Before(exp), nil
}

func (m *Memory) PutInvite(ctx context.Context, inv Invite) error {
	if inv.ID == "" {
		return errEmptyID
	}
	if err := m.lock(ctx); err != nil {
		return err
	}
	defer m.mu.Unlock()
	m.invites[inv.ID] = inv
	return nil
}

func (m *Memory) GetInvite(ctx context.Context, id string) (Invite, error) {
	if err := m.lock(ctx); err != nil {
		return Invite{}, err
	}
	defer m.mu.Unlock()
	inv, ok := m.invites[id]
	if !ok {
		return Invite{}, ErrNotFound
	}
	return inv, nil
}

func (m *Memory) ListInvites(ctx context.Context) ([]Invite, error) {
	if err := m.lock(ctx); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	out := make([]Invite, 0, len(m.invites))
	for _, inv := range m.invites {
		out = append(out, inv)
	}
	sortInvites(out)
	return out, nil
}

func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

func sortConnections(cs []Connection) {
	slices.SortFunc(cs, func(a, b Connection) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
}

// sortInvites orders newest first, as pages show them.
func sortInvites(is []Invite) {
	slices.SortFunc(is, func(a, b Invite) int {
		return cmp.Or(b.Created.Compare(a.Created), cmp.Compare(a.ID, b.ID))
	})
}
