package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func testConn(id, name string) Connection {
	return Connection{
		ID: id, Vendor: "sendgrid", Name: name, Account: "account-of-" + id, AuthMethod: "api_key",
		Secret:  map[string]string{"api_key": "CLEARTEXT-" + id},
		Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Status:  Status{State: StateActive},
	}
}

func openTestBolt(t *testing.T, path string, kr *Keyring) *Bolt {
	t.Helper()
	s, err := OpenBolt(path, kr)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	return s
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestBoltReopenPersists(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), DefaultBoltFile)
	kr := mustRing(t, mustKey(t))
	s := openTestBolt(t, path, kr)
	c := testConn("c1", "prod")
	if err := s.Put(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus(ctx, "c1", Status{State: StateExpired, LastError: "token expired"}); err != nil {
		t.Fatal(err)
	}
	inv := Invite{ID: "inv1", Vendor: "twilio", Name: "x", Created: c.Created, Expires: c.Created.Add(time.Hour)}
	if err := s.PutInvite(ctx, inv); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.UseOnce(ctx, "state1", time.Now().Add(time.Hour)); !ok || err != nil {
		t.Fatalf("UseOnce = %v, %v", ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTestBolt(t, path, kr)
	defer s.Close()
	got, err := s.Get(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Secret["api_key"] != "CLEARTEXT-c1" || got.State != StateExpired || got.LastError != "token expired" || got.Account != c.Account {
		t.Errorf("after reopen: %+v", got)
	}
	if gi, err := s.GetInvite(ctx, "inv1"); err != nil || gi.Name != "x" {
		t.Errorf("invite after reopen = %+v, %v", gi, err)
	}
	if ok, err := s.UseOnce(ctx, "state1", time.Now().Add(time.Hour)); ok || err != nil {
		t.Errorf("UseOnce after reopen = %v, %v; want false", ok, err)
	}
}

func TestBoltWrongKeyChangesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, withData := range []bool{false, true} {
		t.Run(fmt.Sprintf("connections=%v", withData), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), DefaultBoltFile)
			rightKey, wrongKey := mustKey(t), mustKey(t)
			right, wrong := mustRing(t, rightKey), mustRing(t, wrongKey)
			s := openTestBolt(t, path, right)
			if withData {
				if err := s.Put(ctx, testConn("c1", "prod")); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			before := fileSum(t, path)

			_, err := OpenBolt(path, wrong)
			if err == nil {
				t.Fatal("OpenBolt with the wrong key succeeded")
			}
			for _, want := range []string{path, "cannot be read with the configured secret key", right.KeyIDs()[0], "not in the keyring", "secret_key_file", SecretKeyEnv} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if strings.Contains(err.Error(), rightKey) || strings.Contains(err.Error(), wrongKey) {
				t.Error("error contains a key")
			}
			if fileSum(t, path) != before {
				t.Fatal("OpenBolt with the wrong key changed the file")
			}
			// The failed open released the lock and the right key still works.
			s = openTestBolt(t, path, right)
			s.Close()
		})
	}
}

// rawSealedKeyIDs returns the key id of the canary and of every stored secret.
func rawSealedKeyIDs(t *testing.T, path string) []string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []string
	db.View(func(tx *bolt.Tx) error {
		out = append(out, fmt.Sprintf("%x", tx.Bucket(bucketMeta).Get(metaCanary)[1:5]))
		return tx.Bucket(bucketConnections).ForEach(func(k, v []byte) error {
			var rec boltConn
			if err := json.Unmarshal(v, &rec); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%x", rec.SealedSecret[1:5]))
			return nil
		})
	})
	return out
}

func TestBoltKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), DefaultBoltFile)
	oldKey, newKey := mustKey(t), mustKey(t)
	oldID, newID := mustRing(t, oldKey).KeyIDs()[0], mustRing(t, newKey).KeyIDs()[0]

	s := openTestBolt(t, path, mustRing(t, oldKey))
	for _, id := range []string{"a", "b"} {
		if err := s.Put(ctx, testConn(id, id)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	for i, id := range rawSealedKeyIDs(t, path) {
		if id != oldID {
			t.Fatalf("before rotation, sealed value %d uses key %s, want %s", i, id, oldID)
		}
	}

	// New key first, old second: old data opens and is re-sealed with the new key.
	s = openTestBolt(t, path, mustRing(t, newKey+"\n"+oldKey))
	for _, id := range []string{"a", "b"} {
		c, err := s.Get(ctx, id)
		if err != nil || c.Secret["api_key"] != "CLEARTEXT-"+id {
			t.Fatalf("Get(%s) after rotation: %v", id, err)
		}
	}
	if err := s.Put(ctx, testConn("c", "c")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for i, id := range rawSealedKeyIDs(t, path) {
		if id != newID {
			t.Errorf("sealed value %d uses key %s, want the new key %s", i, id, newID)
		}
	}

	// The old key can now be dropped; the old key alone no longer opens the store.
	s = openTestBolt(t, path, mustRing(t, newKey))
	if cs, err := s.List(ctx); err != nil || len(cs) != 3 {
		t.Fatalf("List with the new key only = %d, %v", len(cs), err)
	}
	s.Close()
	if _, err := OpenBolt(path, mustRing(t, oldKey)); err == nil || !strings.Contains(err.Error(), newID) {
		t.Fatalf("old key alone: err = %v, want one naming key id %s", err, newID)
	}
}

func TestBoltFileHasNoClearSecrets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), DefaultBoltFile)
	kr := mustRing(t, mustKey(t))
	s := openTestBolt(t, path, kr)
	var secrets []string
	for i := range 20 {
		c := testConn(fmt.Sprintf("c%02d", i), fmt.Sprintf("name%02d", i))
		secrets = append(secrets, c.Secret["api_key"])
		if err := s.Put(ctx, c); err != nil {
			t.Fatal(err)
		}
		newSecret := fmt.Sprintf("REFRESHED-%02d", i)
		secrets = append(secrets, newSecret)
		if err := s.SetSecret(ctx, c.ID, map[string]string{"api_key": newSecret}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			if err := s.Delete(ctx, c.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(when string) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The grep must be able to see stored text at all.
		if !bytes.Contains(raw, []byte("account-of-c01")) {
			t.Fatalf("%s: non-secret field not found in the file: the check below would prove nothing", when)
		}
		for _, sec := range secrets {
			if bytes.Contains(raw, []byte(sec)) {
				t.Errorf("%s: the file contains a secret in clear (%s)", when, sec[:9])
			}
		}
	}
	check("after writes")
	s.Close()
	s = openTestBolt(t, path, kr)
	s.Close()
	check("after reopen")
}

func TestBoltLocked(t *testing.T) {
	old := boltLockTimeout
	boltLockTimeout = 50 * time.Millisecond
	t.Cleanup(func() { boltLockTimeout = old })

	path := filepath.Join(t.TempDir(), DefaultBoltFile)
	kr := mustRing(t, mustKey(t))
	s := openTestBolt(t, path, kr)
	defer s.Close()
	_, err := OpenBolt(path, kr)
	if err == nil {
		t.Fatal("second OpenBolt of a locked file succeeded")
	}
	for _, want := range []string{path, "locked by another process", "same data_dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestBoltRejectsForeignFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kr := mustRing(t, mustKey(t))

	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1000), 0o600)
	before := fileSum(t, garbage)
	_, err := OpenBolt(garbage, kr)
	if err == nil || !strings.Contains(err.Error(), garbage) || !strings.Contains(err.Error(), "not a readable saas_exporter store") {
		t.Errorf("garbage file: err = %v", err)
	}
	if fileSum(t, garbage) != before {
		t.Error("OpenBolt changed a garbage file")
	}

	// A store written by a newer schema is refused, with what to do.
	newer := filepath.Join(dir, "newer.db")
	s := openTestBolt(t, newer, kr)
	s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaSchema, []byte("99")) })
	s.Close()
	_, err = OpenBolt(newer, kr)
	if err == nil || !strings.Contains(err.Error(), "schema version 99") || !strings.Contains(err.Error(), "upgrade") {
		t.Errorf("newer schema: err = %v", err)
	}
}

func TestBoltUseOncePurges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestBolt(t, filepath.Join(t.TempDir(), DefaultBoltFile), mustRing(t, mustKey(t)))
	defer s.Close()
	// Write expired records directly: UseOnce itself would purge them as it went.
	err := s.db.Update(func(tx *bolt.Tx) error {
		var past [8]byte
		binary.BigEndian.PutUint64(past[:], uint64(time.Now().Add(-time.Minute).UnixNano()))
		for i := range 500 {
			if err := tx.Bucket(bucketNonces).Put(fmt.Appendf(nil, "old-%03d", i), past[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		s.db.View(func(tx *bolt.Tx) error { n = tx.Bucket(bucketNonces).Stats().KeyN; return nil })
		return n
	}
	before := count()
	for i := range 20 {
		if _, err := s.UseOnce(ctx, fmt.Sprintf("new-%03d", i), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// Each call removes up to noncePurgeBatch expired records.
	if after := count(); before != 500 || after > 20 {
		t.Errorf("expired nonces not purged: %d before, %d after", before, after)
	}
}

func TestOpenBoltNeedsKeyring(t *testing.T) {
	t.Parallel()
	if _, err := OpenBolt(filepath.Join(t.TempDir(), "x.db"), nil); err == nil {
		t.Fatal("OpenBolt without a keyring succeeded")
	}
	if _, err := OpenBolt(filepath.Join(t.TempDir(), "y.db"), &Keyring{}); err == nil {
		t.Fatal("OpenBolt with an empty keyring succeeded")
	}
}
