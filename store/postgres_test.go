package store_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/store/pgtest"
	"github.com/saas-exporter/saas_exporter/store/storetest"
)

func newKeyring(t testing.TB) (*store.Keyring, string) {
	t.Helper()
	key, err := store.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return mustParseKeyring(t, key), key
}

func mustParseKeyring(t testing.TB, text string) *store.Keyring {
	t.Helper()
	kr, err := store.ParseKeyring(text)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func openPG(t testing.TB, dsn string, kr *store.Keyring) *store.Postgres {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), dsn, kr, nil)
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawConn is a plain connection for looking at (or tampering with) what the
// store wrote.
func rawConn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// dump returns every row of every table in the store's schema as text, to
// show that a refused open changed nothing.
func dump(t testing.TB, dsn string) string {
	t.Helper()
	ctx := context.Background()
	c := rawConn(t, dsn)
	rows, err := c.Query(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, table := range tables {
		var text string
		q := fmt.Sprintf("SELECT coalesce(string_agg(row_to_json(t)::text, E'\\n' ORDER BY row_to_json(t)::text), '') FROM %s t", pgx.Identifier{table}.Sanitize())
		if err := c.QueryRow(ctx, q).Scan(&text); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "== %s\n%s\n", table, text)
	}
	return b.String()
}

func withPassword(t testing.TB, dsn, pw string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), pw)
	return u.String()
}

func pgConn(id, name string) store.Connection {
	c := storetest.Sample(id, name)
	c.Secret = map[string]string{"api_key": "CLEARTEXT-" + id, "refresh_token": "CLEARREFRESH-" + id}
	return c
}

func TestPostgresContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		dsn, _ := pgtest.Start(t)
		kr, _ := newKeyring(t)
		return openPG(t, dsn, kr)
	})
}

// Two stores on one database stand for two replicas: each has its own pool.
func TestPostgresUpdateLockedAcrossReplicas(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	kr, _ := newKeyring(t)
	a, b := openPG(t, dsn, kr), openPG(t, dsn, kr)
	storetest.CheckSerialised(t, []store.Store{a, b}, 16)

	ctx := context.Background()
	c := pgConn("oauth", "oauth")
	c.Secret = map[string]string{"refresh_token": "rt-1"}
	if err := a.Put(ctx, c); err != nil {
		t.Fatal(err)
	}
	aInside, release := make(chan struct{}), make(chan struct{})
	var bStarted atomic.Bool
	var bSaw string
	errs := make(chan error, 2)
	go func() {
		errs <- a.UpdateLocked(ctx, "oauth", func(c store.Connection) (*store.Connection, error) {
			close(aInside)
			<-release
			c.Secret = map[string]string{"refresh_token": "rt-2"}
			return &c, nil
		})
	}()
	<-aInside
	go func() {
		errs <- b.UpdateLocked(ctx, "oauth", func(c store.Connection) (*store.Connection, error) {
			bStarted.Store(true)
			bSaw = c.Secret["refresh_token"]
			c.Secret = map[string]string{"refresh_token": "rt-3"}
			return &c, nil
		})
	}()
	// Wait until PostgreSQL reports b's session waiting for a lock.
	raw := rawConn(t, dsn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		err := raw.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%'`).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting == 1 {
			break
		}
		if bStarted.Load() || time.Now().After(deadline) {
			close(release)
			t.Fatalf("the second replica's UpdateLocked did not wait for the row lock (fn started: %v)", bStarted.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if bStarted.Load() {
		t.Fatal("the second replica's fn ran while the first held the lock")
	}
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("UpdateLocked: %v", err)
		}
	}
	if bSaw != "rt-2" {
		t.Errorf("the second replica's fn saw refresh token %q, want rt-2 (the first one's result)", bSaw)
	}
	got, err := b.Get(ctx, "oauth")
	if err != nil || got.Secret["refresh_token"] != "rt-3" {
		t.Errorf("after both: refresh token %q, %v; want rt-3", got.Secret["refresh_token"], err)
	}
}

// fn has used up a refresh token when it returns; the new one is saved even
// if the caller's context ended meanwhile.
func TestPostgresUpdateLockedSavesAfterCancel(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	kr, _ := newKeyring(t)
	s := openPG(t, dsn, kr)
	if err := s.Put(context.Background(), pgConn("c1", "prod")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	err := s.UpdateLocked(ctx, "c1", func(c store.Connection) (*store.Connection, error) {
		cancel()
		c.Secret = map[string]string{"refresh_token": "rt-new"}
		return &c, nil
	})
	if err != nil {
		t.Fatalf("UpdateLocked whose context ended during fn: %v", err)
	}
	got, err := s.Get(context.Background(), "c1")
	if err != nil || got.Secret["refresh_token"] != "rt-new" {
		t.Errorf("refresh token after save = %q, %v; want rt-new", got.Secret["refresh_token"], err)
	}
}

func TestPostgresConcurrentOpen(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	kr, _ := newKeyring(t)
	const n = 6
	start := make(chan struct{})
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			s, err := store.OpenPostgres(context.Background(), dsn, kr, nil)
			if err == nil {
				err = s.Put(context.Background(), pgConn(fmt.Sprintf("c-%p", s), fmt.Sprintf("n-%p", s)))
				s.Close()
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent OpenPostgres on a fresh database: %v", err)
		}
	}
	ctx := context.Background()
	raw := rawConn(t, dsn)
	var migrations, versions, canaries int
	if err := raw.QueryRow(ctx, "SELECT count(*), count(DISTINCT version) FROM schema_migrations").Scan(&migrations, &versions); err != nil {
		t.Fatal(err)
	}
	if migrations != versions || migrations == 0 {
		t.Errorf("schema_migrations has %d rows for %d versions", migrations, versions)
	}
	if err := raw.QueryRow(ctx, "SELECT count(*) FROM store_meta WHERE key = 'canary'").Scan(&canaries); err != nil || canaries != 1 {
		t.Errorf("%d key canaries (%v), want 1", canaries, err)
	}
	s := openPG(t, dsn, kr)
	if cs, err := s.List(ctx); err != nil || len(cs) != n {
		t.Errorf("List = %d connections, %v; want %d", len(cs), err, n)
	}
}

func TestPostgresWrongKey(t *testing.T) {
	ctx := context.Background()
	base, _ := pgtest.Start(t)
	const pw = "pw-Do-Not-Show-9f27"
	dsn := withPassword(t, base, pw)
	kr1, key1 := newKeyring(t)
	s := openPG(t, dsn, kr1)
	for _, c := range []store.Connection{pgConn("c1", "prod"), pgConn("c2", "staging")} {
		if err := s.Put(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutInvite(ctx, store.Invite{ID: "inv", Vendor: "twilio", Name: "x", Created: time.Now(), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseOnce(ctx, "state", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := dump(t, dsn)

	kr2, key2 := newKeyring(t)
	_, err := store.OpenPostgres(ctx, dsn, kr2, nil)
	if err == nil {
		t.Fatal("OpenPostgres with a wrong key succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"cannot be read with the configured secret key", store.SecretKeyEnv, kr1.KeyIDs()[0]} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	for _, secret := range []string{pw, key1, key2} {
		if strings.Contains(msg, secret) {
			t.Errorf("error contains a secret: %q", msg)
		}
	}
	if after := dump(t, dsn); after != before {
		t.Errorf("a refused open changed the database:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// One secret sealed with a key the ring lacks: refused too, naming it.
	_, key3 := newKeyring(t)
	sealed, err := mustParseKeyring(t, key3).Seal([]byte(`{"api_key":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rawConn(t, dsn).Exec(ctx, "UPDATE connections SET sealed_secret = $1 WHERE id = 'c2'", sealed); err != nil {
		t.Fatal(err)
	}
	before = dump(t, dsn)
	_, err = store.OpenPostgres(ctx, dsn, kr1, nil)
	if err == nil || !strings.Contains(err.Error(), `"staging" (c2)`) || !strings.Contains(err.Error(), "not in the keyring") {
		t.Errorf("open with one unreadable secret: err = %v, want it to name connection staging (c2)", err)
	}
	if after := dump(t, dsn); after != before {
		t.Error("a refused open changed the database")
	}
}

func TestPostgresKeyRotation(t *testing.T) {
	ctx := context.Background()
	dsn, _ := pgtest.Start(t)
	_, oldKey := newKeyring(t)
	_, newKey := newKeyring(t)
	s := openPG(t, dsn, mustParseKeyring(t, oldKey))
	for _, c := range []store.Connection{pgConn("c1", "prod"), pgConn("c2", "staging")} {
		if err := s.Put(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	both := mustParseKeyring(t, newKey+"\n"+oldKey)
	openPG(t, dsn, both).Close()
	// Everything is sealed with the new key now (the key id follows the
	// format version byte).
	newID := both.KeyIDs()[0]
	raw := rawConn(t, dsn)
	rows, err := raw.Query(ctx, "SELECT sealed_secret FROM connections UNION ALL SELECT value FROM store_meta WHERE key = 'canary'")
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 3 {
		t.Fatalf("%d sealed values, want 3", len(blobs))
	}
	for _, b := range blobs {
		if id := hex.EncodeToString(b[1:5]); id != newID {
			t.Errorf("value sealed with key %s after opening with the new key first, want %s", id, newID)
		}
	}

	s = openPG(t, dsn, mustParseKeyring(t, newKey))
	got, err := s.Get(ctx, "c2")
	if err != nil || got.Secret["api_key"] != "CLEARTEXT-c2" {
		t.Errorf("with the new key only: Get = %v (secret ok: %v)", err, got.Secret["api_key"] == "CLEARTEXT-c2")
	}
}

func TestPostgresNoClearSecrets(t *testing.T) {
	ctx := context.Background()
	dsn, _ := pgtest.Start(t)
	kr, _ := newKeyring(t)
	s := openPG(t, dsn, kr)
	var secrets []string
	for i := range 3 {
		c := pgConn(fmt.Sprintf("c%d", i), fmt.Sprintf("name-%d", i))
		if err := s.Put(ctx, c); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, c.Secret["api_key"], c.Secret["refresh_token"])
	}
	if err := s.SetSecret(ctx, "c1", map[string]string{"access_token": "CLEARACCESS-set"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	err := s.UpdateLocked(ctx, "c2", func(c store.Connection) (*store.Connection, error) {
		c.Secret = map[string]string{"refresh_token": "CLEARREFRESH-locked"}
		return &c, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, "CLEARACCESS-set", "CLEARREFRESH-locked")
	// The secrets are there (through the store) ...
	if c, err := s.Get(ctx, "c2"); err != nil || c.Secret["refresh_token"] != "CLEARREFRESH-locked" {
		t.Fatalf("Get(c2) = %v, secret ok %v", err, c.Secret["refresh_token"] == "CLEARREFRESH-locked")
	}
	// ... but no column of any table holds one, as text or as bytes
	// (row_to_json shows bytea as hex).
	all := dump(t, dsn)
	if !strings.Contains(all, "name-1") {
		t.Fatalf("the dump misses the connections:\n%s", all)
	}
	for _, sec := range secrets {
		if strings.Contains(all, sec) || strings.Contains(all, hex.EncodeToString([]byte(sec))) {
			t.Errorf("secret %q is stored in clear", sec)
		}
	}
}

func TestPostgresRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	dsn, _ := pgtest.Start(t)
	kr, _ := newKeyring(t)
	openPG(t, dsn, kr).Close()
	if _, err := rawConn(t, dsn).Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future')"); err != nil {
		t.Fatal(err)
	}
	before := dump(t, dsn)
	_, err := store.OpenPostgres(ctx, dsn, kr, nil)
	if err == nil || !strings.Contains(err.Error(), "schema version 999") || !strings.Contains(err.Error(), "upgrade saas_exporter") {
		t.Errorf("open of a newer schema: err = %v", err)
	}
	if dump(t, dsn) != before {
		t.Error("a refused open changed the database")
	}
}

func TestPostgresRefusesForeignTables(t *testing.T) {
	ctx := context.Background()
	kr, _ := newKeyring(t)

	dsn, _ := pgtest.Start(t)
	// Another migration tool's bookkeeping table.
	if _, err := rawConn(t, dsn).Exec(ctx, "CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	_, err := store.OpenPostgres(ctx, dsn, kr, nil)
	if err == nil || !strings.Contains(err.Error(), "did not create") || !strings.Contains(err.Error(), "dedicated to saas_exporter") {
		t.Errorf("open with a foreign schema_migrations table: err = %v", err)
	}

	dsn, _ = pgtest.Start(t)
	// Another application's table with one of our names.
	if _, err := rawConn(t, dsn).Exec(ctx, "CREATE TABLE connections (x int)"); err != nil {
		t.Fatal(err)
	}
	_, err = store.OpenPostgres(ctx, dsn, kr, nil)
	if err == nil || !strings.Contains(err.Error(), "dedicated to saas_exporter") {
		t.Errorf("open with a foreign connections table: err = %v", err)
	}
	var leftover bool
	if err := rawConn(t, dsn).QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&leftover); err != nil || leftover {
		t.Errorf("a failed migration left schema_migrations behind (%v)", err)
	}
}

func TestPostgresDSNErrorsHidePassword(t *testing.T) {
	const pw = "hunter2-Secret-7781"
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	kr, _ := newKeyring(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct{ dsn, want string }{
		{fmt.Sprintf("postgres://exporter:%s@127.0.0.1:%d/db?sslmode=disable", pw, port), "cannot connect to PostgreSQL"},
		{fmt.Sprintf("host=127.0.0.1 port=%d user=exporter password=%s dbname=db sslmode=disable", port, pw), "cannot connect to PostgreSQL"},
		{"postgres://exporter:" + pw + "@127.0.0.1:notaport/db", "cannot be parsed"},
		{"postgres://exporter:" + pw + "@[::1/db", "cannot be parsed"},
		{"host=127.0.0.1 password='" + pw + "' port=notaport", "cannot be parsed"},
		{"host=127.0.0.1 password=" + pw + " connect_timeout=soon", "cannot be parsed"},
		{"postgres://exporter:" + pw + "@127.0.0.1/db?sslmode=sometimes", "cannot be parsed"},
		{"postgres://127.0.0.1/db?password=" + pw + "&port=x", "cannot be parsed"},
		{"postgres://exporter:" + pw + "%zz@127.0.0.1/db", "cannot be parsed"},
	} {
		s, err := store.OpenPostgres(ctx, tc.dsn, kr, nil)
		if err == nil {
			s.Close()
			t.Errorf("OpenPostgres(%s) succeeded", strings.ReplaceAll(tc.dsn, pw, "PW"))
			continue
		}
		if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), url.QueryEscape(pw)) {
			t.Errorf("error shows the password: %v", err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenPostgres(%s): err = %v, want it to say %q", strings.ReplaceAll(tc.dsn, pw, "PW"), err, tc.want)
		}
	}
	if _, err := store.OpenPostgres(ctx, "postgres://127.0.0.1/db", nil, nil); err == nil {
		t.Error("OpenPostgres without a keyring succeeded")
	}
}

// The server goes away under an open store: calls fail with an error, and
// work again once it is back, without reopening the store.
func TestPostgresServerRestart(t *testing.T) {
	srv := pgtest.NewServer(t)
	base, _ := srv.NewDatabase(t)
	const pw = "pw-Restart-Secret-4411"
	dsn := withPassword(t, base, pw) // trust auth accepts any password
	kr, _ := newKeyring(t)
	s := openPG(t, dsn, kr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // only against a hang
	defer cancel()
	if err := s.Put(ctx, pgConn("c1", "prod")); err != nil {
		t.Fatal(err)
	}
	// Fill the pool with several connections, so that more die with the
	// server than the failing calls below come across.
	const held = 8
	for i := range held {
		if err := s.Put(ctx, pgConn(fmt.Sprintf("h%d", i), fmt.Sprintf("held-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	var inside sync.WaitGroup
	inside.Add(held)
	var wg sync.WaitGroup
	for i := range held {
		wg.Go(func() {
			err := s.UpdateLocked(ctx, fmt.Sprintf("h%d", i), func(c store.Connection) (*store.Connection, error) {
				inside.Done()
				inside.Wait() // all hold a connection at once
				return nil, nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	srv.StopServer(t)
	called := false
	_, errGet := s.Get(ctx, "c1")
	_, errList := s.List(ctx)
	errPut := s.Put(ctx, pgConn("c2", "staging"))
	_, errOnce := s.UseOnce(ctx, "state", time.Now().Add(time.Hour))
	errLocked := s.UpdateLocked(ctx, "c1", func(c store.Connection) (*store.Connection, error) { called = true; return &c, nil })
	_, errInv := s.ListInvites(ctx)
	for name, err := range map[string]error{"Get": errGet, "List": errList, "Put": errPut, "UseOnce": errOnce, "UpdateLocked": errLocked, "ListInvites": errInv} {
		switch {
		case err == nil:
			t.Errorf("%s with the server down succeeded", name)
		case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrClosed):
			t.Errorf("%s with the server down: %v (a lost server is neither)", name, err)
		case strings.Contains(err.Error(), pw):
			t.Errorf("%s error shows the password: %v", name, err)
		}
	}
	if called {
		t.Error("UpdateLocked called fn with the server down")
	}
	if !strings.Contains(errGet.Error(), s.Where()) {
		t.Errorf("error %q does not say which database (%s)", errGet, s.Where())
	}

	srv.StartServer(t)
	got, err := s.Get(ctx, "c1")
	if err != nil || got.Secret["api_key"] != "CLEARTEXT-c1" {
		t.Fatalf("first Get after the restart: %v", err)
	}
	if err := s.Put(ctx, pgConn("c2", "staging")); err != nil {
		t.Errorf("Put after the restart: %v", err)
	}
	err = s.UpdateLocked(ctx, "c1", func(c store.Connection) (*store.Connection, error) {
		c.State = store.StateExpired
		return &c, nil
	})
	if err != nil {
		t.Errorf("UpdateLocked after the restart: %v", err)
	}
	if c, err := s.Get(ctx, "c1"); err != nil || c.State != store.StateExpired {
		t.Errorf("Get after UpdateLocked after the restart: state %q, %v", c.State, err)
	}
	if cs, err := s.List(ctx); err != nil || len(cs) != held+2 {
		t.Errorf("List after the restart = %d connections, %v; want %d", len(cs), err, held+2)
	}
}

// Expired single-use keys are removed by later calls, so the table does not
// grow without bound.
func TestPostgresUseOncePurges(t *testing.T) {
	ctx := context.Background()
	dsn, _ := pgtest.Start(t)
	kr, _ := newKeyring(t)
	s := openPG(t, dsn, kr)
	future := time.Now().Add(time.Hour)
	// Written directly: through UseOnce, each would purge the ones before.
	raw := rawConn(t, dsn)
	if _, err := raw.Exec(ctx, "INSERT INTO use_once (key, expires) SELECT 'old-' || i, now() - interval '1 minute' FROM generate_series(1, 200) i"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if ok, err := s.UseOnce(ctx, fmt.Sprintf("new-%03d", i), future); err != nil || !ok {
			t.Fatalf("UseOnce = %v, %v", ok, err)
		}
	}
	var expired, live int
	err := raw.QueryRow(ctx, "SELECT count(*) FILTER (WHERE expires <= now()), count(*) FILTER (WHERE expires > now()) FROM use_once").Scan(&expired, &live)
	if err != nil {
		t.Fatal(err)
	}
	if expired != 0 || live != 10 {
		t.Errorf("use_once holds %d expired and %d live keys, want 0 and 10", expired, live)
	}
}

// A budget set through one replica is what every replica reads and
// exports, and a status write from another replica does not undo it.
func TestPostgresBudgetAcrossReplicas(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	kr, _ := newKeyring(t)
	a, b := openPG(t, dsn, kr), openPG(t, dsn, kr)
	ctx := context.Background()
	if err := a.Put(ctx, pgConn("c1", "prod")); err != nil {
		t.Fatal(err)
	}
	v := 500.0
	if err := storetest.SetBudget(ctx, a, "c1", &v); err != nil {
		t.Fatal(err)
	}
	if err := b.SetStatus(ctx, "c1", store.Status{State: store.StateError, LastError: "HTTP 500"}); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]store.Store{"a": a, "b": b} {
		got, err := s.Get(ctx, "c1")
		if err != nil || got.Budget == nil || *got.Budget != 500 || got.LastError != "HTTP 500" {
			t.Errorf("replica %s reads budget %v, last error %q, %v; want 500, HTTP 500", name, got.Budget, got.LastError, err)
		}
	}
	if err := storetest.SetBudget(ctx, b, "c1", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Get(ctx, "c1"); err != nil || got.Budget != nil {
		t.Errorf("replica a after b cleared the budget: %v, %v", got.Budget, err)
	}
}

// One connection whose sealed secret does not open (the canary does): the
// store opens, lists it as an error with the reason, and the others work.
func TestPostgresDamagedRecord(t *testing.T) {
	ctx := context.Background()
	dsn, _ := pgtest.Start(t)
	kr, _ := newKeyring(t)
	s := openPG(t, dsn, kr)
	for _, c := range []store.Connection{pgConn("a", "conn-a"), pgConn("b", "conn-b")} {
		c.AccountID = "acct-" + c.ID
		if err := s.Put(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rawConn(t, dsn).Exec(ctx, "UPDATE connections SET sealed_secret = 'garbage' WHERE id = 'b'"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openPG(t, dsn, kr)
	cs, err := s.List(ctx)
	if err != nil || len(cs) != 2 {
		t.Fatalf("List: %d, %v", len(cs), err)
	}
	if cs[0].Damaged != "" || cs[0].Secret["api_key"] != "CLEARTEXT-a" {
		t.Errorf("intact connection: damaged %q", cs[0].Damaged)
	}
	if b := cs[1]; b.Name != "conn-b" || b.State != store.StateError || b.Damaged == "" || b.Secret != nil {
		t.Errorf("damaged connection: name %q state %q damaged %q", b.Name, b.State, b.Damaged)
	}
}
