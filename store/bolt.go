package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// DefaultBoltFile is the store file name inside data_dir.
const DefaultBoltFile = "saas_exporter.db"

const boltSchemaVersion = 1

var (
	bucketMeta        = []byte("meta")
	bucketConnections = []byte("connections")
	bucketNonces      = []byte("nonces")
	bucketInvites     = []byte("invites")
	// bucketAccounts indexes vendor "\x00" account id → connection id,
	// written in the same transaction as the connection: one vendor
	// account is one connection.
	bucketAccounts = []byte("accounts")
	// bucketNames indexes connection name → connection id, written in the
	// same transaction as the connection: a Put checks its name in one
	// lookup, not by reading every record (5,000 connects took 13 minutes).
	bucketNames = []byte("names")

	metaSchema = []byte("schema_version")
	metaCanary = []byte("canary")

	canaryText = []byte("saas_exporter key canary")
)

// boltLockTimeout bounds the wait for another process' lock; tests lower it.
var boltLockTimeout = 5 * time.Second

// noncePurgeBatch bounds how many expired nonces one UseOnce removes, so a
// call stays cheap however many have piled up.
const noncePurgeBatch = 64

// Bolt is the embedded Store: one bbolt file, secrets sealed with a Keyring.
type Bolt struct {
	db      *bolt.DB
	kr      *Keyring
	path    string
	now     func() time.Time
	locks   idLocks
	secrets openedSecrets
}

var _ Store = (*Bolt)(nil)

// boltConn is the stored form of a Connection: the secret map is one sealed
// blob, never in clear.
type boltConn struct {
	Connection
	SealedSecret []byte `json:"sealed_secret"`
}

// OpenBolt opens (creating if needed) the store file at path. It refuses to
// start, changing nothing, if the keyring cannot open what the file holds.
// Once that check passes, values sealed with an older key of the ring are
// re-sealed with the first key, so the old key can then be dropped.
func OpenBolt(path string, kr *Keyring) (*Bolt, error) {
	if kr == nil || len(kr.keys) == 0 {
		return nil, errors.New("store: OpenBolt needs a keyring (see LoadKeyring)")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the directory for store file %s: %w", path, err)
	}
	s, err := openBoltChecked(path, kr)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// damagedFile is the error for a store file bbolt cannot read.
func damagedFile(path string, cause any) error {
	return fmt.Errorf("store file %s is damaged (%v): restore it from a backup (or, with PostgreSQL, `saas_exporter store migrate` from a good copy); moving it away starts an empty store, and every connection must then be connected again", path, cause)
}

// openBoltChecked opens and checks the file. bbolt panics on a damaged
// page (and a read past a truncated file's end faults): both become an
// error naming the file, never a crash.
func openBoltChecked(path string, kr *Keyring) (s *Bolt, err error) {
	var db *bolt.DB
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				go db.Close() // may block on a lock the panic left held
			}
			s, err = nil, damagedFile(path, r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: boltLockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("store file %s is locked by another process: is another saas_exporter running with the same data_dir?", path)
	}
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrVersionMismatch) || errors.Is(err, bolterrors.ErrChecksum) {
		return nil, fmt.Errorf("store file %s is not a readable saas_exporter store (%v): restore it from a backup or move it away to start empty", path, err)
	}
	var pathErr *fs.PathError
	if err != nil && !errors.As(err, &pathErr) {
		return nil, damagedFile(path, err) // bbolt's own checks (size, meta pages)
	}
	if err != nil {
		return nil, fmt.Errorf("opening store file: %w", err)
	}
	s = &Bolt{db: db, kr: kr, path: path, now: time.Now}
	var fresh, missing bool
	var stale int
	// Check everything before writing anything: a wrong key must leave
	// the file exactly as it was.
	err = db.View(func(tx *bolt.Tx) error {
		for cerr := range tx.Check() {
			return damagedFile(path, cerr)
		}
		var err error
		fresh, stale, err = s.verify(tx)
		for _, name := range [][]byte{bucketMeta, bucketConnections, bucketNonces, bucketInvites, bucketAccounts, bucketNames} {
			missing = missing || tx.Bucket(name) == nil
		}
		// An older saas_exporter writing this file did not keep the names
		// index: checked at every open (one read of each record).
		missing = missing || !namesIndexed(tx)
		return err
	})
	if err == nil && (fresh || missing || stale > 0) {
		err = db.Update(func(tx *bolt.Tx) error { return s.initOrReseal(tx, fresh) })
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// verify checks the schema version, the canary and every stored secret.
// It reports whether the file is new and how many values are sealed with a
// key other than the first.
func (s *Bolt) verify(tx *bolt.Tx) (fresh bool, stale int, err error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if tx.Bucket(bucketConnections) != nil {
			return false, 0, fmt.Errorf("store file %s has connections but no key canary: it is damaged; restore it from a backup", s.path)
		}
		return true, 0, nil
	}
	if v := meta.Get(metaSchema); v != nil {
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return false, 0, fmt.Errorf("store file %s has an unreadable schema version: it is damaged; restore it from a backup", s.path)
		}
		if n > boltSchemaVersion {
			return false, 0, fmt.Errorf("store file %s has schema version %d, but this saas_exporter reads up to %d: upgrade saas_exporter", s.path, n, boltSchemaVersion)
		}
	}
	canary := meta.Get(metaCanary)
	if canary == nil {
		return false, 0, fmt.Errorf("store file %s has no key canary: it is damaged; restore it from a backup", s.path)
	}
	pt, err := s.kr.Open(canary)
	if err != nil {
		return false, 0, fmt.Errorf("store file %s cannot be read with the configured secret key: %w", s.path, err)
	}
	if !bytes.Equal(pt, canaryText) {
		return false, 0, fmt.Errorf("store file %s has a wrong key canary: it is damaged; restore it from a backup", s.path)
	}
	if !s.sealedWithFirst(canary) {
		stale++
	}
	if b := tx.Bucket(bucketConnections); b != nil {
		// A record that does not decode or open (the canary did) is
		// damaged on its own: List shows it as an error, the others work.
		// One naming a key the ring lacks means a wrong key list: refused.
		err = b.ForEach(func(k, v []byte) error {
			var rec boltConn
			if json.Unmarshal(v, &rec) != nil {
				return nil
			}
			_, err := s.kr.Open(rec.SealedSecret)
			var unknown *UnknownKeyError
			switch {
			case errors.As(err, &unknown):
				return fmt.Errorf("store file %s: the secret of connection %q (%s) cannot be opened: %w", s.path, rec.Name, k, err)
			case err == nil && !s.sealedWithFirst(rec.SealedSecret):
				stale++
			}
			return nil
		})
	}
	return false, stale, err
}

func (s *Bolt) sealedWithFirst(sealed []byte) bool {
	return len(sealed) >= sealHeaderLen && bytes.Equal(sealed[1:sealHeaderLen], s.kr.keys[0].id[:])
}

func (s *Bolt) initOrReseal(tx *bolt.Tx, fresh bool) error {
	for _, name := range [][]byte{bucketMeta, bucketConnections, bucketNonces, bucketInvites, bucketAccounts, bucketNames} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("initialising store file %s: %w", s.path, err)
		}
	}
	meta := tx.Bucket(bucketMeta)
	if fresh {
		if err := meta.Put(metaSchema, []byte(strconv.Itoa(boltSchemaVersion))); err != nil {
			return err
		}
	}
	if c := meta.Get(metaCanary); c == nil || !s.sealedWithFirst(c) {
		sealed, err := s.kr.Seal(canaryText)
		if err != nil {
			return err
		}
		if err := meta.Put(metaCanary, sealed); err != nil {
			return err
		}
	}
	if err := rebuildAccounts(tx); err != nil {
		return fmt.Errorf("indexing vendor accounts: %w", err)
	}
	if !namesIndexed(tx) {
		if err := rebuildNames(tx); err != nil {
			return fmt.Errorf("indexing connection names: %w", err)
		}
	}
	b := tx.Bucket(bucketConnections)
	type update struct{ k, v []byte }
	var updates []update
	err := b.ForEach(func(k, v []byte) error {
		var rec boltConn
		if json.Unmarshal(v, &rec) != nil || s.sealedWithFirst(rec.SealedSecret) {
			return nil // a damaged record stays as it is
		}
		pt, err := s.kr.Open(rec.SealedSecret)
		if err != nil {
			return nil
		}
		if rec.SealedSecret, err = s.kr.Seal(pt); err != nil {
			return err
		}
		nv, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		updates = append(updates, update{bytes.Clone(k), nv})
		return nil
	})
	if err != nil {
		return fmt.Errorf("re-sealing secrets with the newest key: %w", err)
	}
	// Writing inside ForEach is not allowed by bbolt; apply afterwards.
	for _, u := range updates {
		if err := b.Put(u.k, u.v); err != nil {
			return err
		}
	}
	return nil
}

// Path returns the store file's path.
func (s *Bolt) Path() string { return s.path }

func (s *Bolt) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return closedErr(s.db.View(fn))
}

func (s *Bolt) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return closedErr(s.db.Update(fn))
}

func closedErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// decodeConn decodes a stored record; one it cannot read comes back as
// damagedConn, with an error wrapping ErrDamaged.
func (s *Bolt) decodeConn(k, v []byte) (Connection, error) {
	var rec boltConn
	if err := json.Unmarshal(v, &rec); err != nil {
		err = damagedRecord(string(k), err)
		return damagedConn(Connection{}, string(k), err), err
	}
	c := rec.Connection
	secret, err := s.secrets.open(s.kr, string(k), rec.SealedSecret)
	if err != nil {
		return damagedConn(c, string(k), err), err
	}
	c.Secret = secret
	return c, nil
}

func (s *Bolt) encodeConn(c Connection) ([]byte, error) {
	pt, err := json.Marshal(c.Secret)
	if err != nil {
		return nil, err
	}
	sealed, err := s.kr.Seal(pt)
	clear(pt)
	if err != nil {
		return nil, err
	}
	c.Secret = nil
	return json.Marshal(boltConn{Connection: c, SealedSecret: sealed})
}

func (s *Bolt) List(ctx context.Context) ([]Connection, error) {
	var out []Connection
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketConnections).ForEach(func(k, v []byte) error {
			c, _ := s.decodeConn(k, v) // a damaged one is listed as an error; the others work
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []Connection{}
	}
	return s.secrets.listed(out), nil
}

func (s *Bolt) Matching(ctx context.Context, vendor, accountID, name string) ([]Connection, error) {
	out := []Connection{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConnections)
		// An index entry is checked against the record it names: a
		// damaged record's old name may linger in it.
		add := func(id []byte, matches func(Connection) bool) {
			if id == nil {
				return
			}
			v := b.Get(id)
			if v == nil {
				return
			}
			c, _ := s.decodeConn(id, v) // a damaged one as List shows it
			for _, o := range out {
				if o.ID == c.ID {
					return
				}
			}
			if matches(c) {
				out = append(out, c)
			}
		}
		if accountID != "" {
			add(tx.Bucket(bucketAccounts).Get(accountKey(vendor, accountID)), func(c Connection) bool {
				return c.Vendor == vendor && c.AccountID == accountID
			})
		}
		if name != "" {
			add(tx.Bucket(bucketNames).Get([]byte(name)), func(c Connection) bool { return c.Name == name })
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortConnections(out)
	return out, nil
}

func (s *Bolt) Get(ctx context.Context, id string) (Connection, error) {
	var c Connection
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketConnections).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		c, err = s.decodeConn([]byte(id), v)
		return err
	})
	return c, err
}

// accountOf is what the accounts and names indexes need of a stored record.
type accountOf struct {
	Vendor    string `json:"vendor"`
	AccountID string `json:"account_id"`
	Name      string `json:"name"`
}

// indexedNames is the names index the connections call for: each name
// → the smallest id using it (two connections named alike before the
// index existed both keep working). Damaged records hold no name.
func indexedNames(tx *bolt.Tx) (map[string]string, error) {
	want := map[string]string{}
	err := tx.Bucket(bucketConnections).ForEach(func(k, v []byte) error {
		var a accountOf
		if json.Unmarshal(v, &a) != nil {
			return nil
		}
		if cur, ok := want[a.Name]; !ok || string(k) < cur {
			want[a.Name] = string(k)
		}
		return nil
	})
	return want, err
}

// namesIndexed reports whether the names index lists exactly the
// stored names.
func namesIndexed(tx *bolt.Tx) bool {
	idx, b := tx.Bucket(bucketNames), tx.Bucket(bucketConnections)
	if idx == nil || b == nil {
		return b == nil
	}
	want, err := indexedNames(tx)
	if err != nil {
		return false
	}
	n, same := 0, true
	_ = idx.ForEach(func(k, v []byte) error {
		n++
		same = same && want[string(k)] == string(v)
		return nil
	})
	return same && n == len(want)
}

// rebuildNames writes the names index anew from the connections.
func rebuildNames(tx *bolt.Tx) error {
	if tx.Bucket(bucketNames) != nil {
		if err := tx.DeleteBucket(bucketNames); err != nil {
			return err
		}
	}
	idx, err := tx.CreateBucket(bucketNames)
	if err != nil {
		return err
	}
	want, err := indexedNames(tx)
	if err != nil {
		return err
	}
	for name, id := range want {
		if err := idx.Put([]byte(name), []byte(id)); err != nil {
			return err
		}
	}
	return nil
}

func accountKey(vendor, accountID string) []byte { return []byte(vendor + "\x00" + accountID) }

// rebuildAccounts fills the accounts index from the connections. Of
// connections stored twice for one account before the index existed, the
// smallest id is indexed; the others keep working (see Put).
func rebuildAccounts(tx *bolt.Tx) error {
	idx := tx.Bucket(bucketAccounts)
	var keys [][]byte
	if err := idx.ForEach(func(k, _ []byte) error { keys = append(keys, bytes.Clone(k)); return nil }); err != nil {
		return err
	}
	for _, k := range keys {
		if err := idx.Delete(k); err != nil {
			return err
		}
	}
	type entry struct{ k, id []byte }
	var entries []entry
	err := tx.Bucket(bucketConnections).ForEach(func(k, v []byte) error {
		var a accountOf
		if json.Unmarshal(v, &a) != nil {
			return nil // a damaged record stays as it is, unindexed
		}
		if a.AccountID != "" {
			entries = append(entries, entry{accountKey(a.Vendor, a.AccountID), bytes.Clone(k)})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range entries {
		if idx.Get(e.k) == nil {
			if err := idx.Put(e.k, e.id); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Bolt) Put(ctx context.Context, c Connection) error {
	if c.ID == "" {
		return errEmptyID
	}
	v, err := s.encodeConn(c)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error { return putTx(tx, c, v) })
}

// putTx stores c (encoded as v) if its name and account are free.
func putTx(tx *bolt.Tx, c Connection, v []byte) error {
	b := tx.Bucket(bucketConnections)
	idx := tx.Bucket(bucketAccounts)
	var old accountOf
	ov := b.Get([]byte(c.ID))
	hadName := ov != nil
	if ov != nil && json.Unmarshal(ov, &old) != nil {
		old, hadName = accountOf{}, false // a damaged record: the reconnect replaces it
	}
	same := ov != nil && old.Vendor == c.Vendor && old.AccountID == c.AccountID
	key := accountKey(c.Vendor, c.AccountID)
	if c.AccountID != "" && !same {
		if owner := idx.Get(key); owner != nil && string(owner) != c.ID && b.Get(owner) != nil {
			return ErrAccountTaken
		}
	}
	if err := nameFree(tx, c.ID, c.Name); err != nil {
		return err
	}
	if err := indexName(tx, c.ID, old.Name, c.Name, hadName); err != nil {
		return err
	}
	if ov != nil && old.AccountID != "" && !same {
		if err := unindexAccount(tx, old, c.ID); err != nil {
			return err
		}
	}
	if owner := idx.Get(key); c.AccountID != "" && (owner == nil || b.Get(owner) == nil) {
		if err := idx.Put(key, []byte(c.ID)); err != nil {
			return err
		}
	}
	return b.Put([]byte(c.ID), v)
}

// nameFree returns ErrNameTaken if a connection other than id uses name.
// The index says who had the name; that record is read to be sure it
// still has it (a damaged record's old name may linger in the index).
func nameFree(tx *bolt.Tx, id, name string) error {
	owner := tx.Bucket(bucketNames).Get([]byte(name))
	if owner == nil || string(owner) == id {
		return nil
	}
	var other accountOf
	if v := tx.Bucket(bucketConnections).Get(owner); v != nil && json.Unmarshal(v, &other) == nil && other.Name == name {
		return ErrNameTaken
	}
	return nil
}

// indexName points name at id, dropping id's old name (if id still owns it).
func indexName(tx *bolt.Tx, id, oldName, name string, hadName bool) error {
	idx := tx.Bucket(bucketNames)
	if hadName && oldName != name && string(idx.Get([]byte(oldName))) == id {
		if err := idx.Delete([]byte(oldName)); err != nil {
			return err
		}
	}
	return idx.Put([]byte(name), []byte(id))
}

func (s *Bolt) replaceIf(ctx context.Context, id string, read, next Connection) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConnections)
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		cur, err := s.decodeConn([]byte(id), v)
		if err != nil {
			return err
		}
		if next, err = replacement(cur, read, next); err != nil {
			return err
		}
		nv, err := s.encodeConn(next)
		if err != nil {
			return err
		}
		return putTx(tx, next, nv)
	})
}

// unindexAccount drops id's entry for account a; another connection
// stored for the same account before the index existed takes it over.
func unindexAccount(tx *bolt.Tx, a accountOf, id string) error {
	idx := tx.Bucket(bucketAccounts)
	key := accountKey(a.Vendor, a.AccountID)
	if string(idx.Get(key)) != id {
		return nil
	}
	if err := idx.Delete(key); err != nil {
		return err
	}
	var heir []byte
	err := tx.Bucket(bucketConnections).ForEach(func(k, v []byte) error {
		var o accountOf
		if heir == nil && string(k) != id && json.Unmarshal(v, &o) == nil && o.Vendor == a.Vendor && o.AccountID == a.AccountID {
			heir = bytes.Clone(k)
		}
		return nil
	})
	if err != nil || heir == nil {
		return err
	}
	return idx.Put(key, heir)
}

// modify rewrites one stored connection in a single transaction.
func (s *Bolt) modify(ctx context.Context, id string, fn func(*Connection)) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConnections)
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		c, err := s.decodeConn([]byte(id), v)
		if err != nil {
			return err
		}
		fn(&c)
		nv, err := s.encodeConn(c)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), nv)
	})
}

// SetStatus rewrites the status alone: the sealed secret stays as stored
// (not opened and sealed again), and calls made at once share one
// transaction and one sync (bolt's Batch). A cold scrape of thousands of
// connections changes thousands of statuses within a second.
func (s *Bolt) SetStatus(ctx context.Context, id string, st Status) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Batch may run fn more than once: it reads and writes the record
	// afresh each time.
	return closedErr(s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConnections)
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var rec boltConn
		if err := json.Unmarshal(v, &rec); err != nil {
			return damagedRecord(id, err)
		}
		if statusStale(rec.Status, st) {
			return nil
		}
		rec.Status = st
		nv, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), nv)
	}))
}

func (s *Bolt) SetSecret(ctx context.Context, id string, secret map[string]string, expiry time.Time) error {
	return s.modify(ctx, id, func(c *Connection) {
		c.Secret = secret
		c.Expiry = expiry
	})
}

func (s *Bolt) UpdateLocked(ctx context.Context, id string, fn func(Connection) (*Connection, error)) error {
	return updateLocked(ctx, &s.locks, s, id, fn)
}

// Delete waits for an UpdateLocked of the same id to finish, so that one
// cannot write back the record after the delete returned.
func (s *Bolt) Delete(ctx context.Context, id string) error {
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	s.secrets.forget(id)
	return s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketConnections)
		if v := b.Get([]byte(id)); v != nil {
			var a accountOf
			if json.Unmarshal(v, &a) == nil && string(tx.Bucket(bucketNames).Get([]byte(a.Name))) == id {
				if err := tx.Bucket(bucketNames).Delete([]byte(a.Name)); err != nil {
					return err
				}
			}
			if json.Unmarshal(v, &a) == nil && a.AccountID != "" {
				if err := b.Delete([]byte(id)); err != nil {
					return err
				}
				return unindexAccount(tx, a, id)
			}
		}
		return b.Delete([]byte(id))
	})
}

// metaPrefix keeps Meta keys apart from the store's own (schema, canary).
const metaPrefix = "user:"

func (s *Bolt) GetMeta(ctx context.Context, key string) ([]byte, error) {
	var out []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get([]byte(metaPrefix + key))
		if v == nil {
			return ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

func (s *Bolt) PutMeta(ctx context.Context, key string, value []byte) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(metaPrefix+key), bytes.Clone(value))
	})
}

func (s *Bolt) Ping(ctx context.Context) error {
	return s.view(ctx, func(*bolt.Tx) error { return nil })
}

func (s *Bolt) UseOnce(ctx context.Context, key string, expires time.Time) (bool, error) {
	if key == "" {
		return false, errors.New("store: UseOnce with an empty key")
	}
	first := false
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketNonces)
		now := s.now().UnixNano()
		if v := b.Get([]byte(key)); len(v) == 8 && now < int64(binary.BigEndian.Uint64(v)) {
			return nil
		}
		purgeNonces(b, []byte(key), now)
		var exp [8]byte
		binary.BigEndian.PutUint64(exp[:], uint64(expires.UnixNano()))
		first = true
		return b.Put([]byte(key), exp[:])
	})
	if err != nil {
		return false, err
	}
	return first, nil
}

func (s *Bolt) Used(ctx context.Context, key string) (bool, error) {
	used := false
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketNonces).Get([]byte(key))
		used = len(v) == 8 && s.now().UnixNano() < int64(binary.BigEndian.Uint64(v))
		return nil
	})
	return used, err
}

// purgeNonces deletes expired nonces among the noncePurgeBatch entries
// following from (wrapping round). Keys are random, so starting at the key
// being used spreads the work over the whole bucket.
func purgeNonces(b *bolt.Bucket, from []byte, now int64) {
	var expired [][]byte
	c := b.Cursor()
	k, v := c.Seek(from)
	wrapped := false
	for i := 0; i < noncePurgeBatch; i++ {
		if k == nil {
			if wrapped {
				break
			}
			wrapped = true
			if k, v = c.First(); k == nil {
				break
			}
		}
		if wrapped && bytes.Compare(k, from) >= 0 {
			break // back where we started
		}
		if len(v) != 8 || now >= int64(binary.BigEndian.Uint64(v)) {
			expired = append(expired, bytes.Clone(k))
		}
		k, v = c.Next()
	}
	// Deleting while a cursor walks makes it skip entries; delete afterwards.
	for _, k := range expired {
		if err := b.Delete(k); err != nil {
			return
		}
	}
}

func (s *Bolt) PutInvite(ctx context.Context, inv Invite) error {
	if inv.ID == "" {
		return errEmptyID
	}
	v, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInvites).Put([]byte(inv.ID), v)
	})
}

func (s *Bolt) GetInvite(ctx context.Context, id string) (Invite, error) {
	var inv Invite
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketInvites).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		if err := json.Unmarshal(v, &inv); err != nil {
			return fmt.Errorf("store: invite %q is damaged: %v", id, err)
		}
		return nil
	})
	return inv, err
}

func (s *Bolt) ListInvites(ctx context.Context) ([]Invite, error) {
	out := []Invite{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInvites).ForEach(func(k, v []byte) error {
			var inv Invite
			if err := json.Unmarshal(v, &inv); err != nil {
				return fmt.Errorf("store: invite %q is damaged: %v", k, err)
			}
			out = append(out, inv)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sortInvites(out)
	return out, nil
}

// Close releases the file; later calls return ErrClosed.
func (s *Bolt) Close() error {
	return s.db.Close()
}
