package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// damagedStore writes a store with a few connections and returns its path
// and keyring.
func damagedStore(t *testing.T) (string, *Keyring) {
	t.Helper()
	path := filepath.Join(t.TempDir(), DefaultBoltFile)
	kr := mustRing(t, mustKey(t))
	s := openTestBolt(t, path, kr)
	for i := range 150 {
		if err := s.Put(context.Background(), testConn(fmt.Sprint("c", i), fmt.Sprint("conn-", i))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	return path, kr
}

// openDamaged opens a damaged file: a clear error naming the file, or a
// store that works; never a panic.
func openDamaged(t *testing.T, path string, kr *Keyring) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("OpenBolt panicked: %v", r)
		}
	}()
	s, err := OpenBolt(path, kr)
	if err != nil {
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "backup") {
			t.Errorf("error does not name the file and what to do: %v", err)
		}
		return err
	}
	defer s.Close()
	if _, err := s.List(context.Background()); err != nil {
		t.Errorf("opened, then List: %v", err)
	}
	return nil
}

// Zeroing any one 4 KiB page or truncating the file gives a clear error
// (or, for a page not in use, a working store), never a panic.
func TestBoltDamagedFile(t *testing.T) {
	t.Parallel()
	path, kr := damagedStore(t)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	failed := 0
	dir := t.TempDir()
	// A fresh file each time: a panic inside bbolt's Open leaves that
	// file's lock held until the process ends (the exporter exits then).
	for p := 0; p*page < len(orig); p++ {
		b := append([]byte(nil), orig...)
		clear(b[p*page : min(len(b), (p+1)*page)])
		path := filepath.Join(dir, fmt.Sprintf("zeroed-page-%d.db", p))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if openDamaged(t, path, kr) != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Error("zeroing every page in turn never gave an error")
	}
	for _, size := range []int{len(orig) / 2, 3 * page, page + 100} {
		path := filepath.Join(dir, fmt.Sprintf("truncated-%d.db", size))
		if err := os.WriteFile(path, orig[:size], 0o600); err != nil {
			t.Fatal(err)
		}
		if openDamaged(t, path, kr) == nil && size < len(orig)/2 {
			t.Errorf("truncated to %d of %d bytes: opened without an error", size, len(orig))
		}
	}
}

// One record whose secret does not open (or whose JSON is broken) does not
// stop the store: it opens, lists that connection as an error with the
// reason and no secret, lists the others intact, and a reconnect (Put)
// heals it.
func TestBoltDamagedRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), DefaultBoltFile)
	kr := mustRing(t, mustKey(t))
	s := openTestBolt(t, path, kr)
	for _, id := range []string{"a", "b", "c"} {
		if err := s.Put(ctx, testConn(id, "conn-"+id)); err != nil {
			t.Fatal(err)
		}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConnections)
		var rec boltConn
		if err := json.Unmarshal(b.Get([]byte("b")), &rec); err != nil {
			return err
		}
		rec.SealedSecret[len(rec.SealedSecret)-1] ^= 0xff // tampered
		v, _ := json.Marshal(rec)
		if err := b.Put([]byte("b"), v); err != nil {
			return err
		}
		return b.Put([]byte("c"), []byte("{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = OpenBolt(path, kr)
	if err != nil {
		t.Fatalf("one damaged record stopped the store: %v", err)
	}
	defer s.Close()
	cs, err := s.List(ctx)
	if err != nil || len(cs) != 3 {
		t.Fatalf("List: %d connections, %v", len(cs), err)
	}
	byID := map[string]Connection{}
	for _, c := range cs {
		byID[c.ID] = c
	}
	if a := byID["a"]; a.Damaged != "" || a.Secret["api_key"] != "CLEARTEXT-a" {
		t.Errorf("intact connection: %+v", a)
	}
	for _, id := range []string{"b", "c"} {
		c := byID[id]
		if c.Damaged == "" || c.State != StateError || !strings.Contains(c.LastError, "reconnect") || c.Secret != nil {
			t.Errorf("damaged %s: damaged %q state %q last_error %q secret %v", id, c.Damaged, c.State, c.LastError, c.Secret != nil)
		}
	}
	if byID["b"].Name != "conn-b" {
		t.Errorf("damaged secret: the rest of the record is lost: %+v", byID["b"])
	}
	// Get says so (reconnecting is the remedy), with what it could read.
	for _, id := range []string{"b", "c"} {
		if c, err := s.Get(ctx, id); !errors.Is(err, ErrDamaged) || id == "b" && c.Name != "conn-b" {
			t.Errorf("Get of damaged %s: %v (name %q), want ErrDamaged", id, err, c.Name)
		}
	}
	// A migration refuses to copy it: its sealed secret would be lost.
	if _, err := Migrate(ctx, s, NewMemory()); err == nil || !strings.Contains(err.Error(), "cannot be read") {
		t.Errorf("migrating a store with a damaged record: %v", err)
	}
	// Reconnecting replaces the record.
	if err := s.Put(ctx, testConn("b", "conn-b")); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Get(ctx, "b"); err != nil || c.Secret["api_key"] != "CLEARTEXT-b" {
		t.Errorf("after the reconnect: %v", err)
	}
}
