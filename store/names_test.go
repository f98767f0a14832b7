package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// The names index keeps names unique through renames and deletes, and a
// file whose index is missing or wrong (written by an older
// saas_exporter, or damaged) is re-indexed when it is opened.
func TestBoltNamesIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), DefaultBoltFile)
	kr := mustRing(t, mustKey(t))
	s := openTestBolt(t, path, kr)
	put := func(id, name string) error { return s.Put(ctx, testConn(id, name)) }
	if err := put("a", "x"); err != nil {
		t.Fatal(err)
	}
	if err := put("b", "x"); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("a second connection named x: %v, want ErrNameTaken", err)
	}
	if err := put("a", "y"); err != nil { // rename frees x
		t.Fatal(err)
	}
	if err := put("b", "x"); err != nil {
		t.Fatalf("x after a was renamed: %v", err)
	}
	if err := put("c", "y"); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("y after the rename: %v, want ErrNameTaken", err)
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := put("c", "y"); err != nil {
		t.Fatalf("y after a was deleted: %v", err)
	}

	// b holds x. With the index gone or wrong, reopening must rebuild it,
	// or "e" could take b's name.
	for _, damage := range []struct {
		name string
		fn   func(tx *bolt.Tx) error
	}{
		{"missing index", func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketNames) }},
		{"entry missing", func(tx *bolt.Tx) error { return tx.Bucket(bucketNames).Delete([]byte("x")) }},
		{"entry pointing elsewhere", func(tx *bolt.Tx) error { return tx.Bucket(bucketNames).Put([]byte("x"), []byte("zz")) }},
	} {
		t.Run(damage.name, func(t *testing.T) {
			if err := s.db.Update(damage.fn); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s = openTestBolt(t, path, kr)
			if err := put("e", "x"); !errors.Is(err, ErrNameTaken) {
				t.Fatalf("after reopening a file with the names index damaged (%s), a second x: %v, want ErrNameTaken", damage.name, err)
			}
		})
	}
	s.Close()
}

// A record whose JSON is broken does not stop a store whose secrets are
// re-sealed on open (a key rotation rebuilds the indexes).
func TestBoltDamagedRecordKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), DefaultBoltFile)
	oldKey, newKey := mustKey(t), mustKey(t)
	s := openTestBolt(t, path, mustRing(t, oldKey))
	for _, id := range []string{"a", "b"} {
		if err := s.Put(ctx, testConn(id, "conn-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketConnections).Put([]byte("b"), []byte("{not json")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err := OpenBolt(path, mustRing(t, newKey+"\n"+oldKey))
	if err != nil {
		t.Fatalf("a damaged record stopped a key rotation: %v", err)
	}
	defer s.Close()
	if c, err := s.Get(ctx, "a"); err != nil || c.Secret["api_key"] != "CLEARTEXT-a" {
		t.Errorf("the intact connection after the rotation: %v", err)
	}
}
