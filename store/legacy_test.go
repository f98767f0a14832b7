package store_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/store/pgtest"
	"github.com/saas-exporter/saas_exporter/store/storetest"
)

// A file written before the accounts index, with one account connected
// twice (concurrent connects): it opens, and both connections keep working.
func TestBoltLegacyDuplicates(t *testing.T) {
	key, _ := store.GenerateKey()
	kr, _ := store.ParseKeyring(key)
	path := filepath.Join(t.TempDir(), store.DefaultBoltFile)
	s, err := store.OpenBolt(path, kr)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"dup1", "dup2"} {
		c := storetest.Sample(id, id)
		if err := s.Put(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// What an older exporter left: no index, a duplicated account.
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("connections"))
		var rec map[string]any
		if err := json.Unmarshal(b.Get([]byte("dup2")), &rec); err != nil {
			return err
		}
		rec["account_id"] = "acct-dup"
		v, _ := json.Marshal(rec)
		if err := b.Put([]byte("dup2"), v); err != nil {
			return err
		}
		if err := json.Unmarshal(b.Get([]byte("dup1")), &rec); err != nil {
			return err
		}
		rec["account_id"] = "acct-dup"
		v, _ = json.Marshal(rec)
		if err := b.Put([]byte("dup1"), v); err != nil {
			return err
		}
		return tx.DeleteBucket([]byte("accounts"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err = store.OpenBolt(path, kr); err != nil {
		t.Fatalf("opening a file with duplicated accounts: %v", err)
	}
	defer s.Close()
	storetest.CheckLegacyDuplicates(t, s)
}

// A PostgreSQL store of schema 1 with one account connected twice: the
// migration to the account index succeeds and both keep working.
func TestPostgresLegacyDuplicates(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	ctx := context.Background()
	key, _ := store.GenerateKey()
	kr, _ := store.ParseKeyring(key)
	s := openPG(t, dsn, kr)
	for _, id := range []string{"dup1", "dup2"} {
		if err := s.Put(ctx, storetest.Sample(id, id)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// Back to schema 1, as an older exporter left it, with the duplicate.
	if _, err := rawConn(t, dsn).Exec(ctx, `
DROP INDEX connections_account_key;
ALTER TABLE connections DROP COLUMN legacy_duplicate;
DELETE FROM schema_migrations WHERE version = 2;
UPDATE connections SET record = jsonb_set(record, '{account_id}', '"acct-dup"')`); err != nil {
		t.Fatal(err)
	}
	storetest.CheckLegacyDuplicates(t, openPG(t, dsn, kr))
}
