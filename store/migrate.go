package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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

// MigrateOptions tune MigrateWith.
type MigrateOptions struct {
	// Force overwrites a destination that changed since the last
	// migration into it (what would be lost is otherwise an error).
	Force bool
	// From describes the source in the destination's migration record
	// ("bbolt /data/saas_exporter.db"); never a password.
	From string
	// Key keys the fingerprints kept in the migration record (derive it
	// from the keyring), so they say nothing about a secret.
	Key []byte
	// Now is the clock of the migration record (default time.Now).
	Now func() time.Time
}

// Migrate is MigrateWith with the default options.
func Migrate(ctx context.Context, from, to Store) (MigrateReport, error) {
	return MigrateWith(ctx, from, to, MigrateOptions{})
}

// MigrateWith copies every connection (with its secret) and every invite
// from one store to another, e.g. from bbolt to PostgreSQL, then reads
// each back from the destination and checks it equals the source. Puts
// replace by id, so running it again finishes an interrupted run.
//
// A destination that keeps a migration record (every store of this
// package) is marked "running" before the first write and "complete" only
// after the last check; CheckMigration refuses to serve from it in
// between. Running it again is refused (a *LossError naming what would be
// lost) when the destination changed since the last migration into it: a
// record rewritten there (a rotated refresh token, a new status), or
// deleted there. Without such a record, any record that differs from the
// source counts as changed. opts.Force overwrites anyway.
//
// Single-use records (flow states) are not copied: they live minutes.
// Stop the exporters using the source first, or later writes are missed.
// Errors name connections but never contain a secret.
func MigrateWith(ctx context.Context, from, to Store, opts MigrateOptions) (MigrateReport, error) {
	var rep MigrateReport
	if opts.Now == nil {
		opts.Now = time.Now
	}
	conns, err := from.List(ctx)
	if err != nil {
		return rep, fmt.Errorf("reading connections from the source store: %w", err)
	}
	invites, err := from.ListInvites(ctx)
	if err != nil {
		return rep, fmt.Errorf("reading invites from the source store: %w", err)
	}
	meta, _ := to.(Meta)
	var last *migrationRecord
	if meta != nil {
		if last, err = readMigration(ctx, meta); err != nil {
			return rep, err
		}
	}
	if !opts.Force {
		lost, err := wouldLose(ctx, to, last, conns, invites, opts.Key)
		if err != nil {
			return rep, err
		}
		if len(lost) > 0 {
			return rep, &LossError{Lost: lost}
		}
	}
	rec := migrationRecord{State: migrationRunning, From: opts.From, Started: opts.Now().UTC(), Connections: len(conns), Invites: len(invites)}
	if last != nil {
		rec.Records = last.Records // what the destination held after the last complete run
	}
	if meta != nil {
		if err := writeMigration(ctx, meta, rec); err != nil {
			return rep, err
		}
	}
	for _, c := range conns {
		if c.Damaged != "" {
			// Copying would drop its sealed secret for good.
			return rep, fmt.Errorf("connection %q (%s) in the source store cannot be read (%s); delete or reconnect it there, or restore the source from a backup, then run the migration again", c.Name, c.ID, c.Damaged)
		}
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
	records := map[string]string{}

	// Verify by reading back, through the destination's own decoding.
	for _, c := range conns {
		got, err := to.Get(ctx, c.ID)
		if err != nil {
			return rep, fmt.Errorf("verifying connection %q (%s) in the destination: %w", c.Name, c.ID, err)
		}
		if field := connDiff(c, got); field != "" {
			return rep, fmt.Errorf("verifying connection %q (%s): the destination's copy differs in %s", c.Name, c.ID, field)
		}
		records["c:"+c.ID] = connPrint(opts.Key, got)
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
		records["i:"+inv.ID] = invitePrint(opts.Key, got)
		rep.Invites++
	}
	all, err := to.List(ctx)
	if err != nil {
		return rep, fmt.Errorf("listing the destination's connections: %w", err)
	}
	rep.Extra = len(all) - len(conns)
	if meta != nil {
		rec.State, rec.Finished, rec.Records = migrationComplete, opts.Now().UTC(), records
		if err := writeMigration(ctx, meta, rec); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// connDiff names the first field in which b differs from a ("" if none).
// Empty and nil maps and slices are the same; times compare as instants.
// It never returns a value, so a secret cannot leak through it.
func connDiff(a, b Connection) string {
	if d := connDiffs(a, b); len(d) > 0 {
		return d[0]
	}
	return ""
}

// connDiffs names every field in which b differs from a.
func connDiffs(a, b Connection) []string {
	var out []string
	strs := []struct {
		name string
		a, b string
	}{
		{"id", a.ID, b.ID}, {"vendor", a.Vendor, b.Vendor}, {"name", a.Name, b.Name},
		{"account", a.Account, b.Account}, {"account_id", a.AccountID, b.AccountID},
		{"auth_method", a.AuthMethod, b.AuthMethod}, {"state", a.State, b.State},
		{"last_error", a.LastError, b.LastError}, {"damaged", a.Damaged, b.Damaged},
	}
	for _, f := range strs {
		if f.a != f.b {
			out = append(out, f.name)
		}
	}
	if !maps.Equal(a.Secret, b.Secret) {
		out = append(out, "secret")
	}
	if !maps.Equal(a.Settings, b.Settings) {
		out = append(out, "settings")
	}
	if !slices.Equal(a.Scopes, b.Scopes) {
		out = append(out, "scopes")
	}
	if !slices.Equal(a.MissingScopes, b.MissingScopes) {
		out = append(out, "missing_scopes")
	}
	if (a.Budget == nil) != (b.Budget == nil) || (a.Budget != nil && *a.Budget != *b.Budget) {
		out = append(out, "budget_monthly")
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
			out = append(out, f.name)
		}
	}
	// A field added to Connection must be added above too (a test checks).
	return out
}

func sameInvite(a, b Invite) bool {
	return a.ID == b.ID && a.Vendor == b.Vendor && a.Name == b.Name && a.Revoked == b.Revoked &&
		a.ConnectionID == b.ConnectionID && a.Created.Equal(b.Created) && a.Expires.Equal(b.Expires) && a.Used.Equal(b.Used)
}

// Meta is implemented by stores that keep small named values beside their
// records (the migration record). Every store of this package does.
type Meta interface {
	// GetMeta returns the value of key, or ErrNotFound.
	GetMeta(ctx context.Context, key string) ([]byte, error)
	// PutMeta creates or replaces the value of key.
	PutMeta(ctx context.Context, key string, value []byte) error
}

const (
	migrationKey      = "migration"
	migrationRunning  = "running"
	migrationComplete = "complete"
)

// migrationRecord is what a destination remembers of the last migration
// into it.
type migrationRecord struct {
	State       string    `json:"state"`
	From        string    `json:"from,omitempty"`
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished,omitzero"`
	Connections int       `json:"connections"`
	Invites     int       `json:"invites"`
	// Records maps "c:"+id and "i:"+id to a keyed fingerprint of each
	// record as the last complete migration left it.
	Records map[string]string `json:"records,omitempty"`
}

func readMigration(ctx context.Context, m Meta) (*migrationRecord, error) {
	b, err := m.GetMeta(ctx, migrationKey)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the destination's migration record: %w", err)
	}
	var rec migrationRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("the store's migration record is damaged (%v): run `saas_exporter store migrate` again to rewrite it", err)
	}
	return &rec, nil
}

func writeMigration(ctx context.Context, m Meta, rec migrationRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := m.PutMeta(ctx, migrationKey, b); err != nil {
		return fmt.Errorf("writing the destination's migration record (%s): %w", rec.State, err)
	}
	return nil
}

// CheckMigration refuses a store whose last `store migrate` into it did
// not finish: it may hold any part of the source, and looks valid.
func CheckMigration(ctx context.Context, s Store) error {
	m, ok := s.(Meta)
	if !ok {
		return nil
	}
	rec, err := readMigration(ctx, m)
	if err != nil || rec == nil || rec.State == migrationComplete {
		return err
	}
	return fmt.Errorf("store: the last `saas_exporter store migrate` into this store (from %s, started %s, %d connections and %d invites to copy) did not complete, so it may hold only part of them: run the same command again to finish it; the exporter does not start on it until then", cmpOr(rec.From, "another store"), rec.Started.Format(time.RFC3339), rec.Connections, rec.Invites)
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// LossError is MigrateWith refusing to overwrite what changed in the
// destination; Lost names each record and what would happen to it.
type LossError struct{ Lost []string }

func (e *LossError) Error() string {
	return "the destination changed since the last migration into it (replicas ran on it?); migrating again would lose:\n  - " +
		strings.Join(e.Lost, "\n  - ") +
		"\nIf exporters have been running on the destination, it is the newer store: keep it and do not migrate again. To overwrite it with the source anyway, run again with --force."
}

// wouldLose lists what copying conns and invites over to would lose.
func wouldLose(ctx context.Context, to Store, last *migrationRecord, conns []Connection, invites []Invite, key []byte) ([]string, error) {
	dst, err := to.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the destination's connections: %w", err)
	}
	dinv, err := to.ListInvites(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the destination's invites: %w", err)
	}
	byID := make(map[string]Connection, len(dst))
	for _, d := range dst {
		byID[d.ID] = d
	}
	invByID := make(map[string]Invite, len(dinv))
	for _, d := range dinv {
		invByID[d.ID] = d
	}
	copied := func(k, print string) bool {
		return last != nil && last.Records[k] != "" && (print == "" || last.Records[k] == print)
	}
	var lost []string
	for _, c := range conns {
		d, ok := byID[c.ID]
		switch {
		case !ok && copied("c:"+c.ID, ""):
			lost = append(lost, fmt.Sprintf("connection %q (%s) was deleted from the destination since the last migration; it would come back", c.Name, c.ID))
		case !ok:
		case len(connDiffs(c, d)) == 0:
		case copied("c:"+c.ID, connPrint(key, d)):
			// Unchanged there since the last migration: the source is newer.
		default:
			lost = append(lost, fmt.Sprintf("connection %q (%s) differs in the destination (%s) and was changed there since the last migration; the destination's version would be replaced by the source's", d.Name, c.ID, strings.Join(connDiffs(c, d), ", ")))
		}
	}
	for _, inv := range invites {
		d, ok := invByID[inv.ID]
		switch {
		case !ok && copied("i:"+inv.ID, ""):
			lost = append(lost, fmt.Sprintf("invite %s was deleted from the destination since the last migration; it would come back", inv.ID))
		case !ok, sameInvite(inv, d), copied("i:"+inv.ID, invitePrint(key, d)):
		default:
			lost = append(lost, fmt.Sprintf("invite %s (%s) was changed in the destination (used or revoked there) since the last migration; it would be reset", inv.ID, d.Name))
		}
	}
	return lost, nil
}

// connPrint is a keyed fingerprint of a connection, secret included; it
// tells whether a record changed without holding anything of it.
func connPrint(key []byte, c Connection) string {
	rec, _ := json.Marshal(c)
	secret, _ := json.Marshal(c.Secret)
	h := hmac.New(sha256.New, key)
	h.Write(rec)
	h.Write([]byte{0})
	h.Write(secret)
	return hex.EncodeToString(h.Sum(nil))
}

func invitePrint(key []byte, inv Invite) string {
	rec, _ := json.Marshal(inv)
	h := hmac.New(sha256.New, key)
	h.Write(rec)
	return hex.EncodeToString(h.Sum(nil))
}
