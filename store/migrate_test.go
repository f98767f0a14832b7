package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/store/pgtest"
)

// migrateSource fills a store with connections of every shape and invites.
func migrateSource(t *testing.T, s store.Store) ([]store.Connection, []store.Invite) {
	t.Helper()
	ctx := context.Background()
	full := pgConn("c-full", "production")
	full.LastError = "HTTP 429 from vendor"
	noSecret := store.Connection{ID: "c-min", Vendor: "segment", Name: "minimal"}
	local := pgConn("c-local", "local time")
	local.Created = time.Date(2025, 6, 7, 8, 9, 10, 123456000, time.FixedZone("CEST", 2*3600))
	conns := []store.Connection{full, noSecret, local}
	for _, c := range conns {
		if err := s.Put(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	invites := []store.Invite{
		{ID: "inv-1", Vendor: "twilio", Name: "new", Created: now, Expires: now.Add(time.Hour)},
		{ID: "inv-2", Vendor: "sendgrid", Name: "again", Created: now.Add(time.Minute), Expires: now.Add(time.Hour), Used: now, ConnectionID: "c-full"},
	}
	for _, inv := range invites {
		if err := s.PutInvite(ctx, inv); err != nil {
			t.Fatal(err)
		}
	}
	return conns, invites
}

func TestMigrateBoltToPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	boltKR, _ := newKeyring(t)
	from, err := store.OpenBolt(filepath.Join(t.TempDir(), store.DefaultBoltFile), boltKR)
	if err != nil {
		t.Fatal(err)
	}
	defer from.Close()
	conns, invites := migrateSource(t, from)

	dsn, _ := pgtest.Start(t)
	pgKR, _ := newKeyring(t) // another key: secrets are opened and sealed again
	to := openPG(t, dsn, pgKR)
	want := store.MigrateReport{Connections: len(conns), Invites: len(invites)}
	for run := 1; run <= 2; run++ {
		rep, err := store.Migrate(ctx, from, to)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if rep != want {
			t.Errorf("run %d: report %+v, want %+v", run, rep, want)
		}
	}
	// Check independently of Migrate's own verification, through a fresh
	// store on the database.
	check := openPG(t, dsn, pgKR)
	got, err := check.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(conns) {
		t.Fatalf("destination has %d connections after two runs, want %d", len(got), len(conns))
	}
	for _, c := range conns {
		g, err := check.Get(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Secret) != len(c.Secret) || g.Secret["api_key"] != c.Secret["api_key"] || g.Secret["refresh_token"] != c.Secret["refresh_token"] {
			t.Errorf("connection %s: secret differs after migration", c.ID)
		}
		if g.Name != c.Name || g.LastError != c.LastError || !g.Created.Equal(c.Created) || !g.Expiry.Equal(c.Expiry) {
			t.Errorf("connection %s: got %+v", c.ID, g.Status)
		}
	}
	gotInv, err := check.ListInvites(ctx)
	if err != nil || len(gotInv) != len(invites) || gotInv[0].ID != "inv-2" || !gotInv[0].Used.Equal(invites[1].Used) {
		t.Errorf("destination invites = %+v, %v", gotInv, err)
	}

	// A connection only the destination has is counted and left alone.
	if err := to.Put(ctx, pgConn("c-extra", "extra")); err != nil {
		t.Fatal(err)
	}
	rep, err := store.Migrate(ctx, from, to)
	if err != nil || rep.Extra != 1 || rep.Connections != len(conns) {
		t.Errorf("third run with an extra connection: %+v, %v", rep, err)
	}
}

func TestMigrateNameConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	from, to := store.NewMemory(), store.NewMemory()
	migrateSource(t, from)
	if err := to.Put(ctx, pgConn("other-id", "production")); err != nil {
		t.Fatal(err)
	}
	_, err := store.Migrate(ctx, from, to)
	if err == nil || !strings.Contains(err.Error(), `"production" (c-full)`) || !strings.Contains(err.Error(), "rename or delete it") {
		t.Errorf("Migrate into a taken name: err = %v", err)
	}
}

// corrupting is a destination that loses part of a secret on the way.
type corrupting struct{ store.Store }

func (c corrupting) Get(ctx context.Context, id string) (store.Connection, error) {
	got, err := c.Store.Get(ctx, id)
	if got.Secret != nil {
		got.Secret["api_key"] += "-truncated"
	}
	return got, err
}

// failing is a destination whose writes fail.
type failing struct{ store.Store }

var errDiskFull = errors.New("disk full")

func (failing) Put(context.Context, store.Connection) error { return errDiskFull }

func TestMigrateVerifies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	from := store.NewMemory()
	conns, _ := migrateSource(t, from)
	_, err := store.Migrate(ctx, from, corrupting{store.NewMemory()})
	if err == nil || !strings.Contains(err.Error(), "differs in secret") {
		t.Fatalf("Migrate to a destination that alters secrets: err = %v", err)
	}
	for _, c := range conns {
		for _, v := range c.Secret {
			if strings.Contains(err.Error(), v) {
				t.Errorf("error shows a secret: %v", err)
			}
		}
	}

	_, err = store.Migrate(ctx, from, failing{store.NewMemory()})
	if !errors.Is(err, errDiskFull) || !strings.Contains(err.Error(), "copying connection") {
		t.Errorf("Migrate to a failing destination: err = %v", err)
	}

	// Memory to Memory round-trips exactly.
	to := store.NewMemory()
	rep, err := store.Migrate(ctx, from, to)
	if err != nil || rep.Connections != len(conns) {
		t.Fatalf("Migrate = %+v, %v", rep, err)
	}
	for _, c := range conns {
		g, err := to.Get(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if g.Secret["api_key"] != c.Secret["api_key"] {
			t.Errorf("connection %s: secret differs", c.ID)
		}
	}
}
