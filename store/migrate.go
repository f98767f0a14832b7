package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// MigrateReport says what Migrate copied.
type MigrateReport struct {
	// Connections copied, each read back from the destination and found
	// identical to the source, secret included.
	Connections int
	// Invites copied and read back.
	Invites int
	// Extra counts connections the destination holds that the source does
	// not; Migrate leaves them alone.
	Extra int
}

// Migrate copies every connection (with its secret) and every invite from
// one store to another, e.g. from bbolt to PostgreSQL, then reads each back
// from the destination and checks it equals the source. Puts replace by
// id, so running it again is harmless (and finishes an interrupted run).
// Single-use records (flow states) are not copied: they live minutes.
// Stop the exporters using the source first, or later writes are missed.
// Errors name connections but never contain a secret.
func Migrate(ctx context.Context, from, to Store) (MigrateReport, error) {
	var rep MigrateReport
	conns, err := from.List(ctx)
	if err != nil {
		return rep, fmt.Errorf("reading connections from the source store: %w", err)
	}
	invites, err := from.ListInvites(ctx)
	if err != nil {
		return rep, fmt.Errorf("reading invites from the source store: %w", err)
	}
	for _, c := range conns {
		if err := to.Put(ctx, c); err != nil {
			if errors.Is(err, ErrNameTaken) {
				return rep, fmt.Errorf("copying connection %q (%s): the destination already has another connection with this name; rename or delete it there, then run the migration again", c.Name, c.ID)
			}
			if errors.Is(err, ErrAccountTaken) {
				return rep, fmt.Errorf("copying connection %q (%s): another connection already holds %s account %s (in the destination, or twice in the source from concurrent connects before one account meant one connection); disconnect the duplicate, then run the migration again", c.Name, c.ID, c.Vendor, c.AccountID)
			}
			return rep, fmt.Errorf("copying connection %q (%s): %w", c.Name, c.ID, err)
		}
	}
	for _, inv := range invites {
		if err := to.PutInvite(ctx, inv); err != nil {
			return rep, fmt.Errorf("copying invite %s: %w", inv.ID, err)
		}
	}

	// Verify by reading back, through the destination's own decoding.
	for _, c := range conns {
		got, err := to.Get(ctx, c.ID)
		if err != nil {
			return rep, fmt.Errorf("verifying connection %q (%s) in the destination: %w", c.Name, c.ID, err)
		}
		if field := connDiff(c, got); field != "" {
			return rep, fmt.Errorf("verifying connection %q (%s): the destination's copy differs in %s", c.Name, c.ID, field)
		}
		rep.Connections++
	}
	for _, inv := range invites {
		got, err := to.GetInvite(ctx, inv.ID)
		if err != nil {
			return rep, fmt.Errorf("verifying invite %s in the destination: %w", inv.ID, err)
		}
		if !sameInvite(inv, got) {
			return rep, fmt.Errorf("verifying invite %s: the destination's copy differs", inv.ID)
		}
		rep.Invites++
	}
	all, err := to.List(ctx)
	if err != nil {
		return rep, fmt.Errorf("listing the destination's connections: %w", err)
	}
	rep.Extra = len(all) - len(conns)
	return rep, nil
}

// connDiff names the first field in which b differs from a ("" if none).
// Empty and nil maps and slices are the same; times compare as instants.
// It never returns a value, so a secret cannot leak through it.
func connDiff(a, b Connection) string {
	strs := []struct {
		name string
		a, b string
	}{
		{"id", a.ID, b.ID}, {"vendor", a.Vendor, b.Vendor}, {"name", a.Name, b.Name},
		{"account", a.Account, b.Account}, {"account_id", a.AccountID, b.AccountID},
		{"auth_method", a.AuthMethod, b.AuthMethod}, {"state", a.State, b.State},
		{"last_error", a.LastError, b.LastError},
	}
	for _, f := range strs {
		if f.a != f.b {
			return f.name
		}
	}
	switch {
	case !maps.Equal(a.Secret, b.Secret):
		return "secret"
	case !maps.Equal(a.Settings, b.Settings):
		return "settings"
	case !slices.Equal(a.Scopes, b.Scopes):
		return "scopes"
	case !slices.Equal(a.MissingScopes, b.MissingScopes):
		return "missing_scopes"
	case (a.Budget == nil) != (b.Budget == nil) || (a.Budget != nil && *a.Budget != *b.Budget):
		return "budget_monthly"
	}
	times := []struct {
		name string
		a, b time.Time
	}{
		{"created", a.Created, b.Created}, {"expiry", a.Expiry, b.Expiry},
		{"last_success", a.LastSuccess, b.LastSuccess}, {"updated", a.Updated, b.Updated},
	}
	for _, f := range times {
		if !f.a.Equal(f.b) {
			return f.name
		}
	}
	// A field added to Connection must be added above too (a test checks).
	return ""
}

func sameInvite(a, b Invite) bool {
	return a.ID == b.ID && a.Vendor == b.Vendor && a.Name == b.Name && a.Revoked == b.Revoked &&
		a.ConnectionID == b.ConnectionID && a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires) && a.Used.Equal(b.Used)
}
