// Package store keeps connection records. Secrets are sealed with a Keyring
// before they reach a backend, so no backend ever holds one in clear.
package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"
)

// Connection states, exported as saas_connection_state{state=...}.
const (
	StateActive      = "active"
	StateExpired     = "expired"
	StateRevoked     = "revoked"
	StateError       = "error"
	StateRateLimited = "rate_limited"
)

// states lists every state in the order metrics and pages show them.
var states = [...]string{StateActive, StateExpired, StateRevoked, StateError, StateRateLimited}

// States yields every state in the order metrics and pages show them. An
// iterator, not a slice: the table is fixed, and a scrape walks it for
// every connection without a copy.
func States() iter.Seq[string] { return yieldStates }

func yieldStates(yield func(string) bool) {
	for _, s := range states {
		if !yield(s) {
			return
		}
	}
}

// Connection is one stored vendor connection.
type Connection struct {
	ID         string `json:"id"`
	Vendor     string `json:"vendor"`
	Name       string `json:"name"`
	Account    string `json:"account"`    // human-readable account (name, workspace slug)
	AccountID  string `json:"account_id"` // vendor's stable id; connecting the same account again updates this record
	AuthMethod string `json:"auth_method"`
	// Settings are non-secret, provider-specific values (region, ...).
	Settings map[string]string `json:"settings,omitempty"`
	// Secret holds credentials. Backends only ever see it sealed.
	Secret        map[string]string `json:"-"`
	Scopes        []string          `json:"scopes,omitempty"`
	MissingScopes []string          `json:"missing_scopes,omitempty"`
	Created       time.Time         `json:"created"`
	// Expiry is when the credential stops working without a person; zero if never.
	Expiry time.Time `json:"expiry,omitempty"`
	// Budget is the monthly budget in the unit the vendor bills this
	// connection in (provider.Budgeted); nil: none. Part of the JSON
	// record, so no backend needs a schema change for it.
	Budget *float64 `json:"budget_monthly,omitempty"`
	Status
	// Damaged is set by List for a stored record that cannot be read (its
	// secret does not open, its JSON is broken): the connection is listed
	// with state error and this reason, has no secret, and is not
	// collected. Reconnecting or deleting it heals the store. Never stored.
	Damaged string `json:"-"`
}

// damagedRecord is the error of a connection record that cannot be decoded.
func damagedRecord(id string, err error) error {
	return fmt.Errorf("store: connection %q is %w: %v", id, ErrDamaged, err)
}

// damagedConn is how List and Get show a record they cannot read: whatever
// could be decoded, no secret, state error with the reason.
func damagedConn(c Connection, id string, err error) Connection {
	c.ID, c.Secret = id, nil
	if c.Name == "" {
		c.Name = id
	}
	c.Damaged = err.Error() + "; reconnect the connection (or restore the store from a backup)"
	c.Status = Status{State: StateError, LastSuccess: c.LastSuccess, LastError: c.Damaged, Updated: c.Updated}
	return c
}

// Status is what collection learns about a connection.
type Status struct {
	State       string    `json:"state"`
	LastSuccess time.Time `json:"last_success,omitempty"`
	LastError   string    `json:"last_error,omitempty"` // never contains a secret
	Updated     time.Time `json:"updated,omitempty"`
}

// Invite is a single-use link that lets someone connect one vendor.
type Invite struct {
	ID      string    `json:"id"`
	Vendor  string    `json:"vendor"`
	Name    string    `json:"name"` // connection name to create
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Used    time.Time `json:"used,omitempty"`
	Revoked bool      `json:"revoked,omitempty"`
	// ConnectionID is set when the invite reconnects an existing connection.
	ConnectionID string `json:"connection_id,omitempty"`
}

var (
	ErrNotFound  = errors.New("not found")
	ErrNameTaken = errors.New("a connection with this name already exists")
	// ErrAccountTaken: another connection already holds this vendor
	// account (same Vendor and non-empty AccountID). One vendor account is
	// one connection, however many connect it at once.
	ErrAccountTaken = errors.New("another connection already holds this vendor account")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("store is closed")
	// ErrUnavailable wraps every failure of the store itself: it did not
	// answer within its call timeout, could not be reached, or a row was
	// locked longer than that. The call may have been applied or not; the
	// caller may retry. It is never a fault of the record or of a vendor.
	ErrUnavailable = errors.New("store unavailable")
	// ErrLocked comes with ErrUnavailable when the call waited its whole
	// timeout for a lock another session holds (another replica's token
	// refresh): the store itself is fine.
	ErrLocked = errors.New("record locked by another session")
)

// Clone returns a deep copy of c, so the copy shares no map or slice with c.
func (c Connection) Clone() Connection {
	c.Settings = cloneMap(c.Settings)
	c.Secret = cloneMap(c.Secret)
	c.Scopes = cloneSlice(c.Scopes)
	c.MissingScopes = cloneSlice(c.MissingScopes)
	if c.Budget != nil {
		b := *c.Budget
		c.Budget = &b
	}
	return c
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneSlice(s []string) []string {
	if s == nil {
		return nil
	}
	return append(make([]string, 0, len(s)), s...)
}

// Store is implemented by every backend (bbolt, postgres). Every method is
// safe for concurrent use. A write that returns nil is durable.
type Store interface {
	// List returns every connection with its secret opened, ordered by name.
	List(ctx context.Context) ([]Connection, error)
	// Get returns one connection or ErrNotFound. A record it cannot read
	// comes back as List shows it, with an error wrapping ErrDamaged.
	Get(ctx context.Context, id string) (Connection, error)
	// Matching returns the connections a connection of vendor with
	// accountID and name would collide with: the one named name (""
	// matches none) and the one of vendor with accountID ("" matches
	// none; of duplicates stored before the account rule, at least one),
	// secrets opened, damaged ones as List gives them, ordered by name. It
	// reads the store's indexes, not every record: connecting does not
	// slow down as connections are added.
	Matching(ctx context.Context, vendor, accountID, name string) ([]Connection, error)
	// Put creates or replaces the connection with c.ID. It returns
	// ErrAccountTaken if another connection holds c's (Vendor, AccountID)
	// (checked in the same transaction as the write), or ErrNameTaken if
	// another connection already uses c.Name. A Put that
	// keeps a record's (Vendor, AccountID) never fails on it, so
	// duplicates stored before the rule keep working.
	Put(ctx context.Context, c Connection) error
	// SetStatus updates only the status of a connection (ErrNotFound if
	// gone). A stored status whose Updated is later than s.Updated is kept
	// (a newer decision, such as a deauthorize, wins); an s with a zero
	// Updated is always written. The check and the write are one step.
	SetStatus(ctx context.Context, id string, s Status) error
	// SetSecret replaces a connection's secret and expiry (token refresh).
	SetSecret(ctx context.Context, id string, secret map[string]string, expiry time.Time) error
	// UpdateLocked reads connection id under an exclusive lock that holds
	// across every process sharing the store (a row lock in PostgreSQL),
	// calls fn with the current record, and saves the record fn returns
	// (nil: nothing to save) before the lock is released. It serialises
	// OAuth refreshes: a rotating refresh token must never be used twice.
	// fn must not call the store. ErrNotFound if id is gone.
	//
	// Once fn has returned a record it is saved even if ctx ends meanwhile
	// (bounded by 30 s): fn may have used up a rotating refresh token. A
	// Put, Delete or SetStatus that lands while fn runs is never undone:
	// the write then returns ErrChanged (secret replaced) or ErrNotFound
	// (deleted), or waits for the lock and applies after. With
	// WithLockWait on ctx, a lock held by another caller for longer than
	// that wait gives ErrLocked without calling fn.
	UpdateLocked(ctx context.Context, id string, fn func(c Connection) (*Connection, error)) error
	// Delete removes a connection and its secret. Deleting a missing id is
	// not an error. A delete that returned nil is final: no write that was
	// in flight (UpdateLocked, SetStatus, SetSecret) brings the record back.
	Delete(ctx context.Context, id string) error
	// Ping checks that the store answers, without reading a record or
	// opening a secret (readiness).
	Ping(ctx context.Context) error

	// UseOnce records a single-use value (flow state, invite id). It
	// returns true the first time key is used, false afterwards. Records
	// may be dropped after expires: once expires has passed, the key counts
	// as unused again, so callers must check expiry themselves.
	UseOnce(ctx context.Context, key string, expires time.Time) (bool, error)
	// Used reports whether UseOnce recorded key and it has not expired,
	// without recording it (a logged-out session is checked this way).
	Used(ctx context.Context, key string) (bool, error)

	// PutInvite creates or replaces the invite with inv.ID.
	PutInvite(ctx context.Context, inv Invite) error
	// GetInvite returns one invite or ErrNotFound.
	GetInvite(ctx context.Context, id string) (Invite, error)
	// ListInvites returns every invite, newest Created first.
	ListInvites(ctx context.Context) ([]Invite, error)

	Close() error
}
