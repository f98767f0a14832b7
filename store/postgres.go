package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the Store for several replicas sharing one PostgreSQL
// database. Secrets are sealed with the Keyring exactly as in Bolt (the same
// blob), so the database never holds one in clear.
type Postgres struct {
	pool     *pgxpool.Pool
	kr       *Keyring
	logger   *slog.Logger
	where    string // "database x on host:port" for messages; never the password
	password string // removed from every error, should a driver message hold it
	now      func() time.Time
	closed   atomic.Bool
	timeout  atomic.Int64 // per-call timeout, nanoseconds (SetCallTimeout)
	secrets  openedSecrets
}

var _ Store = (*Postgres)(nil)

const (
	// pgDefaultMaxConns applies when the DSN sets no pool_max_conns: an
	// UpdateLocked holds a connection while its fn calls a vendor, so the
	// driver's default (4 on small machines) would starve other calls.
	pgDefaultMaxConns = 16
	// pgConnectTimeout applies when the DSN sets no connect_timeout, so an
	// unreachable server fails a call instead of hanging it.
	pgConnectTimeout = 10 * time.Second
	// pgLockedIdleTimeout ends an UpdateLocked session that stays idle
	// inside its transaction longer than this (a replica that hung or lost
	// its network while holding the row lock), releasing the lock. fn
	// (a token refresh) must finish well within it.
	pgLockedIdleTimeout = "5min"
	// pgMigrateLockKey names the advisory lock held while migrating.
	pgMigrateLockKey int64 = 0x5aa5_e7_0000_0001
	// DefaultPostgresCallTimeout bounds each store call (a query, a
	// write, waiting for a row lock) unless SetCallTimeout says otherwise:
	// a stopped, frozen or locked database then fails the call, reported
	// as ErrUnavailable, instead of holding a scrape or a request.
	DefaultPostgresCallTimeout = 3 * time.Second
	// pgCancelGrace is how long a timed-out call waits for the server to
	// confirm the cancellation before the connection is dropped.
	pgCancelGrace = 300 * time.Millisecond
	// pgSaveTimeout bounds saving fn's result in UpdateLocked; the save is
	// not tied to the caller's context (see UpdateLocked).
	pgSaveTimeout = 30 * time.Second
)

// pgMigrations are applied in order, each once, recorded in
// schema_migrations. Never edit one that has shipped; append a new one.
var pgMigrations = []struct {
	version int
	name    string
	sql     string
}{
	{1, "initial schema", `
CREATE TABLE schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE store_meta (
	key   text PRIMARY KEY,
	value bytea NOT NULL
);
-- record is the Connection as JSON without its secret; sealed_secret is
-- the Keyring-sealed JSON of the secret map (the same blob as in bbolt).
CREATE TABLE connections (
	id            text PRIMARY KEY,
	name          text NOT NULL,
	vendor        text NOT NULL,
	record        jsonb NOT NULL,
	sealed_secret bytea NOT NULL,
	updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX connections_name_key ON connections (name);
CREATE TABLE invites (
	id      text PRIMARY KEY,
	created timestamptz NOT NULL,
	record  jsonb NOT NULL
);
CREATE TABLE use_once (
	key     text PRIMARY KEY,
	expires timestamptz NOT NULL
);
CREATE INDEX use_once_expires ON use_once (expires);
`},
	{2, "one connection per vendor account", `
-- Connections stored twice for one account before this rule (concurrent
-- connects) keep working: all but the smallest id are marked and left out
-- of the index, until their account changes.
ALTER TABLE connections ADD COLUMN legacy_duplicate boolean NOT NULL DEFAULT false;
UPDATE connections c SET legacy_duplicate = true
WHERE c.record->>'account_id' <> '' AND EXISTS (
	SELECT 1 FROM connections o
	WHERE o.vendor = c.vendor AND o.record->>'account_id' = c.record->>'account_id' AND o.id < c.id);
CREATE UNIQUE INDEX connections_account_key ON connections (vendor, (record->>'account_id'))
	WHERE record->>'account_id' <> '' AND NOT legacy_duplicate;
`},
}

// OpenPostgres connects to the database in dsn, creates or migrates the
// schema (one replica at a time), and checks that kr opens the stored key
// canary and every stored secret. If it does not, OpenPostgres fails and
// changes nothing. Values sealed with an older key of the ring are then
// re-sealed with the first key, so the old key can be dropped.
//
// The DSN is a PostgreSQL URL or key=value string; pgxpool settings
// (pool_max_conns, ...) are honoured.
func OpenPostgres(ctx context.Context, dsn string, kr *Keyring, logger *slog.Logger) (*Postgres, error) {
	if kr == nil || len(kr.keys) == 0 {
		return nil, errors.New("store: OpenPostgres needs a keyring (see LoadKeyring)")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, dsnError(dsn, err)
	}
	var s *Postgres
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = max(cfg.MaxConns, pgDefaultMaxConns)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = pgConnectTimeout
	}
	// A call that times out is cancelled on the server too (a statement
	// waiting for a lock would otherwise run once the lock is free, after
	// the caller was told it failed); a frozen server that cannot take the
	// cancel request gets the connection closed shortly after.
	cfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: pgCancelGrace}
	}
	// A statement waiting for a row lock gives up a little before the
	// call's deadline, so the server can say it was a lock (another
	// replica's refresh), not a slow or frozen server.
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, fmt.Sprintf("SET lock_timeout = %d", s.CallTimeout().Milliseconds()*9/10))
		return err
	}
	s = &Postgres{
		kr:       kr,
		logger:   logger,
		where:    fmt.Sprintf("database %q on %s", cfg.ConnConfig.Database, net.JoinHostPort(cfg.ConnConfig.Host, fmt.Sprint(cfg.ConnConfig.Port))),
		password: cfg.ConnConfig.Password,
		now:      time.Now,
	}
	s.timeout.Store(int64(DefaultPostgresCallTimeout))
	// The pool connects lazily; a bad address shows up in migrate below.
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, s.redact(fmt.Errorf("store: PostgreSQL (%s): %w", s.where, err))
	}
	stale, err := s.migrate(ctx)
	if err != nil {
		s.pool.Close()
		return nil, s.redact(err)
	}
	if stale > 0 {
		s.reseal(ctx)
	}
	return s, nil
}

// dsnError describes an unparsable DSN without quoting it: it may hold a
// password, and the driver's own message quotes the string it failed on.
func dsnError(dsn string, err error) error {
	reason := "unrecognised syntax"
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		// "cannot parse `<dsn, password masked>`: <reason>"
		text := pce.Error()
		if i := strings.Index(text, "`: "); strings.HasPrefix(text, "cannot parse `") && i >= 0 {
			reason = text[i+3:]
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			reason = strings.ReplaceAll(reason, ue.Error(), ue.Err.Error()) // url.Error quotes the whole URL
		}
	}
	for _, pw := range dsnPasswords(dsn) {
		reason = strings.ReplaceAll(reason, pw, "xxxxx")
	}
	return fmt.Errorf("store.postgres.dsn cannot be parsed (%s): use a URL such as postgres://user:password@host:5432/dbname?sslmode=require or key=value pairs such as \"host=db dbname=saas_exporter user=exporter\"", reason)
}

var (
	dsnURLPassword = regexp.MustCompile(`^[a-z]+://[^:/@]*:(.*)@`)
	dsnKVPassword  = regexp.MustCompile(`password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]*)`)
)

// dsnPasswords guesses the password(s) in a DSN that did not parse.
func dsnPasswords(dsn string) []string {
	var out []string
	if m := dsnURLPassword.FindStringSubmatch(dsn); m != nil {
		out = append(out, m[1])
		if u, err := url.PathUnescape(m[1]); err == nil {
			out = append(out, u)
		}
	}
	for _, m := range dsnKVPassword.FindAllStringSubmatch(dsn, -1) {
		out = append(out, strings.Trim(m[1], "'"))
	}
	keep := out[:0]
	for _, pw := range out {
		if len(pw) >= 3 { // shorter would mangle unrelated words
			keep = append(keep, pw)
		}
	}
	return keep
}

// migrate brings the schema to the newest version in one transaction,
// under an advisory lock so that replicas starting together take turns.
// Stored data is verified with the keyring before anything is changed.
// It returns how many values are sealed with a key other than the first.
func (s *Postgres) migrate(ctx context.Context) (stale int, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("store: cannot connect to PostgreSQL (%s): %w; check store.postgres.dsn and that the server is running", s.where, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// Replicas starting together wait for each other's migration, however
	// long it takes: no lock_timeout here.
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = 0"); err != nil {
		return 0, fmt.Errorf("store: PostgreSQL (%s): %w", s.where, err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", pgMigrateLockKey); err != nil {
		return 0, fmt.Errorf("store: PostgreSQL (%s): taking the migration lock: %w", s.where, err)
	}
	version, err := s.schemaVersion(ctx, tx)
	if err != nil {
		return 0, err
	}
	latest := pgMigrations[len(pgMigrations)-1].version
	if version > latest {
		return 0, fmt.Errorf("store: PostgreSQL (%s) has schema version %d, but this saas_exporter reads up to %d: upgrade saas_exporter", s.where, version, latest)
	}
	if version == 0 {
		if err := s.orphanTables(ctx, tx); err != nil {
			return 0, err
		}
	}
	for _, m := range pgMigrations {
		if m.version <= version {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			hint := ""
			if version == 0 {
				hint = "; the database must be dedicated to saas_exporter (or give it its own schema with search_path in the DSN)"
			}
			return 0, fmt.Errorf("store: PostgreSQL (%s): applying schema migration %d (%s): %w%s", s.where, m.version, m.name, err, hint)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			return 0, fmt.Errorf("store: PostgreSQL (%s): recording schema migration %d: %w", s.where, m.version, err)
		}
		s.logger.Info("applied store schema migration", "version", m.version, "name", m.name, "database", s.where)
	}
	// Everything in one transaction: a failed check changes nothing.
	if err := s.checkSchema(ctx, tx); err != nil {
		return 0, err
	}
	if version > 0 {
		if stale, err = s.verify(ctx, tx); err != nil {
			return 0, err
		}
	}
	if version == 0 {
		sealed, err := s.kr.Seal(canaryText)
		if err != nil {
			return 0, err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO store_meta (key, value) VALUES ('canary', $1)", sealed); err != nil {
			return 0, fmt.Errorf("store: PostgreSQL (%s): writing the key canary: %w", s.where, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("store: PostgreSQL (%s): committing the schema: %w", s.where, err)
	}
	return stale, nil
}

// pgSchema is the newest schema as saas_exporter reads it: every table with
// its columns and their types, and the indexes it relies on. A migration
// that changes the schema changes this too. Columns and tables that are
// not listed (added by a DBA) are allowed.
var pgSchema = []struct {
	table   string
	columns [][2]string // name, information_schema data_type
}{
	{"schema_migrations", [][2]string{{"version", "integer"}, {"name", "text"}, {"applied_at", "timestamp with time zone"}}},
	{"store_meta", [][2]string{{"key", "text"}, {"value", "bytea"}}},
	{"connections", [][2]string{{"id", "text"}, {"name", "text"}, {"vendor", "text"}, {"record", "jsonb"}, {"sealed_secret", "bytea"}, {"updated_at", "timestamp with time zone"}, {"legacy_duplicate", "boolean"}}},
	{"invites", [][2]string{{"id", "text"}, {"created", "timestamp with time zone"}, {"record", "jsonb"}}},
	{"use_once", [][2]string{{"key", "text"}, {"expires", "timestamp with time zone"}}},
}

// pgIndexes are the indexes correctness depends on (uniqueness, keys).
var pgIndexes = []string{
	"schema_migrations_pkey", "store_meta_pkey", "connections_pkey", "connections_name_key", "connections_account_key", "invites_pkey", "use_once_pkey",
}

// checkSchema compares the database with pgSchema and names everything
// that is missing or has another type, so a damaged schema stops the
// replica at start instead of failing its calls later.
func (s *Postgres) checkSchema(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema()`)
	if err != nil {
		return fmt.Errorf("store: PostgreSQL (%s): reading the schema: %w", s.where, err)
	}
	have := map[[2]string]string{}
	tables := map[string]bool{}
	var table, column, typ string
	if _, err := pgx.ForEachRow(rows, []any{&table, &column, &typ}, func() error {
		have[[2]string{table, column}] = typ
		tables[table] = true
		return nil
	}); err != nil {
		return fmt.Errorf("store: PostgreSQL (%s): reading the schema: %w", s.where, err)
	}
	var problems []string
	for _, t := range pgSchema {
		if !tables[t.table] {
			problems = append(problems, "table "+t.table+" is missing")
			continue
		}
		for _, c := range t.columns {
			got, ok := have[[2]string{t.table, c[0]}]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("column %s.%s (%s) is missing", t.table, c[0], c[1]))
			case got != c[1]:
				problems = append(problems, fmt.Sprintf("column %s.%s is %s, want %s", t.table, c[0], got, c[1]))
			}
		}
	}
	var present []string
	if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(indexname::text), '{}') FROM pg_indexes WHERE schemaname = current_schema()`).Scan(&present); err != nil {
		return fmt.Errorf("store: PostgreSQL (%s): reading the indexes: %w", s.where, err)
	}
	for _, ix := range pgIndexes {
		if !slices.Contains(present, ix) {
			problems = append(problems, "index "+ix+" is missing")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("store: PostgreSQL (%s) does not have the schema saas_exporter expects: %s. It was changed outside saas_exporter: restore the database from a backup, or repair what is named here by hand", s.where, strings.Join(problems, "; "))
	}
	return nil
}

// orphanTables refuses a database without a schema version that holds
// saas_exporter's tables: the version record was dropped or emptied, and
// applying the migrations again would fail or hide what happened.
func (s *Postgres) orphanTables(ctx context.Context, tx pgx.Tx) error {
	var found []string
	for _, t := range pgSchema {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", t.table).Scan(&exists); err != nil {
			return fmt.Errorf("store: PostgreSQL (%s): reading the schema: %w", s.where, err)
		}
		if exists && t.table != "schema_migrations" {
			found = append(found, t.table)
		}
	}
	if len(found) == 0 {
		return nil
	}
	// The key canary tells our tables from another application's.
	ours := false
	if slices.Contains(found, "store_meta") {
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM store_meta WHERE key = 'canary')").Scan(&ours); err != nil {
			ours = false
		}
	}
	if !ours {
		return fmt.Errorf("store: PostgreSQL (%s) has tables saas_exporter did not create (%s): the database must be dedicated to saas_exporter (or give it its own schema with search_path in the DSN)", s.where, strings.Join(found, ", "))
	}
	var versions []string
	for _, m := range pgMigrations {
		versions = append(versions, fmt.Sprintf("(%d, '%s')", m.version, m.name))
	}
	return fmt.Errorf("store: PostgreSQL (%s) holds saas_exporter's data (tables %s, with its key canary) but its schema_migrations table is missing or empty, so the schema version is unknown (was it dropped or emptied by hand?). Restore the database from a backup; or, if the tables are otherwise intact and this build created them, re-create schema_migrations as in migration 1 and record the versions: INSERT INTO schema_migrations (version, name) VALUES %s", s.where, strings.Join(found, ", "), strings.Join(versions, ", "))
}

// schemaVersion returns the newest applied migration, 0 for an empty database.
func (s *Postgres) schemaVersion(ctx context.Context, tx pgx.Tx) (int, error) {
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("store: PostgreSQL (%s): reading the schema version: %w", s.where, err)
	}
	if !exists {
		return 0, nil
	}
	var version int
	err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations WHERE name IS NOT NULL").Scan(&version)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42703" { // undefined column
		return 0, fmt.Errorf("store: PostgreSQL (%s) has a schema_migrations table that saas_exporter did not create: use a database (or a schema, with search_path in the DSN) dedicated to saas_exporter", s.where)
	}
	if err != nil {
		return 0, fmt.Errorf("store: PostgreSQL (%s): reading the schema version: %w", s.where, err)
	}
	return version, nil
}

// verify checks the canary and every stored secret with the keyring, and
// counts the values sealed with an older key. It works on every schema
// version this build knows.
func (s *Postgres) verify(ctx context.Context, tx pgx.Tx) (stale int, err error) {
	var canary []byte
	err = tx.QueryRow(ctx, "SELECT value FROM store_meta WHERE key = 'canary'").Scan(&canary)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("store: PostgreSQL (%s) has no key canary: the store is damaged; restore it from a backup", s.where)
	}
	if err != nil {
		return 0, fmt.Errorf("store: PostgreSQL (%s): reading the key canary: %w", s.where, err)
	}
	pt, err := s.kr.Open(canary)
	if err != nil {
		return 0, fmt.Errorf("store: PostgreSQL (%s) cannot be read with the configured secret key: %w", s.where, err)
	}
	if string(pt) != string(canaryText) {
		return 0, fmt.Errorf("store: PostgreSQL (%s) has a wrong key canary: the store is damaged; restore it from a backup", s.where)
	}
	if !s.sealedWithFirst(canary) {
		stale++
	}
	rows, err := tx.Query(ctx, "SELECT id, name, sealed_secret FROM connections ORDER BY id")
	if err != nil {
		return 0, fmt.Errorf("store: PostgreSQL (%s): reading connections: %w", s.where, err)
	}
	var id, name string
	var sealed []byte
	// The canary opened, so the key is right: a record that does not open
	// is damaged on its own (List shows it as an error; the others work),
	// unless it names a key the ring lacks (a replica started with a
	// rotated-away key list): that is refused, changing nothing.
	_, err = pgx.ForEachRow(rows, []any{&id, &name, &sealed}, func() error {
		if _, err := s.kr.Open(sealed); err != nil {
			var unknown *UnknownKeyError
			if errors.As(err, &unknown) {
				return fmt.Errorf("store: PostgreSQL (%s): the secret of connection %q (%s) cannot be opened: %w", s.where, name, id, err)
			}
			s.logger.Error("store: a connection's secret cannot be opened; it is shown as an error until reconnected or deleted", "connection", name, "id", id, "err", err)
			return nil
		}
		if !s.sealedWithFirst(sealed) {
			stale++
		}
		return nil
	})
	return stale, err
}

func (s *Postgres) sealedWithFirst(sealed []byte) bool {
	return len(sealed) >= sealHeaderLen && string(sealed[1:sealHeaderLen]) == string(s.kr.keys[0].id[:])
}

// reseal seals values written with an older key again with the first key.
// Each update only applies if the value is unchanged (another replica may
// have rewritten it meanwhile), and takes no lock for longer than itself.
// Failures are logged: the store works either way, the old key is just
// needed a little longer.
func (s *Postgres) reseal(ctx context.Context) {
	n, err := s.resealAll(ctx)
	if err != nil {
		s.logger.Warn("re-sealing stored secrets with the newest key failed; keep the older keys in the keyring for now", "database", s.where, "err", s.redact(err))
		return
	}
	s.logger.Info("re-sealed stored secrets with the newest key", "count", n, "database", s.where)
}

func (s *Postgres) resealAll(ctx context.Context) (int, error) {
	n := 0
	var canary []byte
	if err := s.pool.QueryRow(ctx, "SELECT value FROM store_meta WHERE key = 'canary'").Scan(&canary); err != nil {
		return n, err
	}
	if !s.sealedWithFirst(canary) {
		sealed, err := s.kr.Seal(canaryText)
		if err != nil {
			return n, err
		}
		if _, err := s.pool.Exec(ctx, "UPDATE store_meta SET value = $2 WHERE key = 'canary' AND value = $1", canary, sealed); err != nil {
			return n, err
		}
		n++
	}
	rows, err := s.pool.Query(ctx, "SELECT id, sealed_secret FROM connections")
	if err != nil {
		return n, err
	}
	type item struct {
		id     string
		sealed []byte
	}
	var todo []item
	var it item
	if _, err := pgx.ForEachRow(rows, []any{&it.id, &it.sealed}, func() error {
		if !s.sealedWithFirst(it.sealed) {
			todo = append(todo, item{it.id, append([]byte(nil), it.sealed...)})
		}
		return nil
	}); err != nil {
		return n, err
	}
	for _, it := range todo {
		pt, err := s.kr.Open(it.sealed)
		if err != nil {
			continue // damaged: left as it is
		}
		sealed, err := s.kr.Seal(pt)
		clear(pt)
		if err != nil {
			return n, err
		}
		tag, err := s.pool.Exec(ctx, "UPDATE connections SET sealed_secret = $3 WHERE id = $1 AND sealed_secret = $2", it.id, it.sealed, sealed)
		if err != nil {
			return n, err
		}
		n += int(tag.RowsAffected())
	}
	return n, nil
}

// Where describes the database ("database x on host:port"); it never
// contains the password.
func (s *Postgres) Where() string { return s.where }

// redactedError hides a password inside a driver's message while keeping
// errors.Is/As working.
type redactedError struct {
	err error
	pw  string
}

func (e *redactedError) Error() string { return strings.ReplaceAll(e.err.Error(), e.pw, "xxxxx") }
func (e *redactedError) Unwrap() error { return e.err }

func (s *Postgres) redact(err error) error {
	if err == nil || s.password == "" || !strings.Contains(err.Error(), s.password) {
		return err
	}
	return &redactedError{err: err, pw: s.password}
}

// SetCallTimeout sets the bound of each later store call (d <= 0: the default).
func (s *Postgres) SetCallTimeout(d time.Duration) {
	if d <= 0 {
		d = DefaultPostgresCallTimeout
	}
	if s.timeout.Swap(int64(d)) != int64(d) {
		s.pool.Reset() // new sessions take the new lock_timeout
	}
}

// CallTimeout is the bound of each store call.
func (s *Postgres) CallTimeout() time.Duration { return time.Duration(s.timeout.Load()) }

// call bounds one store call by the call timeout (and by ctx).
func (s *Postgres) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.CallTimeout())
}

// unavailable is a failure of the store itself: it wraps ErrUnavailable
// and keeps the driver's error for errors.As.
type unavailable struct {
	msg    string
	err    error
	locked bool
}

func (e *unavailable) Error() string { return e.msg }
func (e *unavailable) Unwrap() []error {
	if e.locked {
		return []error{ErrUnavailable, ErrLocked, e.err}
	}
	return []error{ErrUnavailable, e.err}
}

// fail turns a driver error into the store's: ErrNotFound, ErrClosed, an
// ErrUnavailable naming the reason, or a wrapped error without the
// password. parent is the caller's context: a deadline of the caller's is
// theirs, a deadline of the call's own is the store's fault. A lost
// connection resets the pool, so that after a server restart no idle
// connection to the old server is handed out again.
func (s *Postgres) fail(parent context.Context, op string, err error) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	case s.closed.Load():
		return ErrClosed
	case parent.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return fmt.Errorf("store: %s: %w", op, err)
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || (errors.As(err, &pgErr) && pgErr.Code == "57014"): // query_canceled
		s.pool.Reset() // a frozen server leaves half-used connections behind
		return &unavailable{err: err, msg: fmt.Sprintf("store: PostgreSQL (%s): %s: no answer within %s (store.postgres.call_timeout): the server is stopped, overloaded or unreachable, or another replica holds a lock on the same rows", s.where, op, s.CallTimeout())}
	case errors.As(err, &pgErr) && pgErr.Code == "55P03": // lock_not_available
		return &unavailable{err: err, locked: true, msg: fmt.Sprintf("store: PostgreSQL (%s): %s: the record is locked by another replica (a credential refresh takes a few seconds) or by another session; try again", s.where, op)}
	case connectionLost(err):
		s.pool.Reset()
		return &unavailable{err: err, msg: s.redact(fmt.Errorf("store: PostgreSQL (%s): %s: %w", s.where, op, err)).Error()}
	}
	return s.redact(fmt.Errorf("store: PostgreSQL (%s): %s: %w", s.where, op, err))
}

func connectionLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 57P: the server shut down or restarted.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func (s *Postgres) open() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

func (s *Postgres) encodeConn(c Connection) (record, sealed []byte, err error) {
	pt, err := json.Marshal(c.Secret)
	if err != nil {
		return nil, nil, err
	}
	sealed, err = s.kr.Seal(pt)
	clear(pt)
	if err != nil {
		return nil, nil, err
	}
	// Connection.Secret is tagged json:"-": the record never holds it.
	record, err = json.Marshal(c)
	return record, sealed, err
}

// decodeConn decodes a stored row; one it cannot read comes back as
// damagedConn, with an error wrapping ErrDamaged.
func (s *Postgres) decodeConn(id string, record, sealed []byte) (Connection, error) {
	var c Connection
	if err := json.Unmarshal(record, &c); err != nil {
		err = damagedRecord(id, err)
		return damagedConn(Connection{}, id, err), err
	}
	secret, err := s.secrets.open(s.kr, id, sealed)
	if err != nil {
		return damagedConn(c, id, err), err
	}
	c.Secret = secret
	c.ID = id
	return c, nil
}

func (s *Postgres) List(parent context.Context) ([]Connection, error) {
	out, err := s.query(parent, "listing connections", "SELECT id, record, sealed_secret FROM connections")
	if err != nil {
		return nil, err
	}
	return s.secrets.listed(out), nil
}

// query reads connections (id, record, sealed_secret rows); a damaged
// one is returned as an error connection, the others work.
func (s *Postgres) query(parent context.Context, what, sql string, args ...any) ([]Connection, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, s.fail(parent, what, err)
	}
	out := []Connection{}
	var id string
	var record, sealed []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &record, &sealed}, func() error {
		c, _ := s.decodeConn(id, record, sealed) // a damaged one is listed as an error; the others work
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, s.fail(parent, what, err)
	}
	return out, nil
}

func (s *Postgres) Matching(parent context.Context, vendor, accountID, name string) ([]Connection, error) {
	out, err := s.query(parent, "reading matching connections", `SELECT id, record, sealed_secret FROM connections
WHERE (name = $3 AND $3 <> '') OR (vendor = $1 AND record->>'account_id' = $2 AND $2 <> '')`, vendor, accountID, name)
	if err != nil {
		return nil, err
	}
	sortConnections(out)
	return out, nil
}

func (s *Postgres) Get(parent context.Context, id string) (Connection, error) {
	if err := s.open(); err != nil {
		return Connection{}, err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	var record, sealed []byte
	err := s.pool.QueryRow(ctx, "SELECT record, sealed_secret FROM connections WHERE id = $1", id).Scan(&record, &sealed)
	if err != nil {
		return Connection{}, s.fail(parent, "reading connection", err)
	}
	return s.decodeConn(id, record, sealed)
}

// nameTaken reports whether err is the unique index on names refusing a row.
func nameTaken(err error) bool { return uniqueViolation(err, "connections_name_key") }

func accountTaken(err error) bool { return uniqueViolation(err, "connections_account_key") }

func uniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

func (s *Postgres) Put(parent context.Context, c Connection) error {
	if c.ID == "" {
		return errEmptyID
	}
	if err := s.open(); err != nil {
		return err
	}
	record, sealed, err := s.encodeConn(c)
	if err != nil {
		return err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	_, err = s.pool.Exec(ctx, `
INSERT INTO connections (id, name, vendor, record, sealed_secret) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, vendor = excluded.vendor, record = excluded.record,
	sealed_secret = excluded.sealed_secret, updated_at = now(),
	legacy_duplicate = connections.legacy_duplicate AND connections.vendor = excluded.vendor
		AND connections.record->>'account_id' IS NOT DISTINCT FROM excluded.record->>'account_id'`,
		c.ID, c.Name, c.Vendor, record, sealed)
	if accountTaken(err) {
		return ErrAccountTaken
	}
	if nameTaken(err) {
		return ErrNameTaken
	}
	return s.fail(parent, "saving connection", err)
}

// patch merges top-level fields into a stored record in one statement, so
// it needs no lock and cannot lose a concurrent update of other fields.
func (s *Postgres) patch(parent context.Context, op, id string, fields map[string]any, sealed []byte) error {
	if err := s.open(); err != nil {
		return err
	}
	p, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	var tag pgconn.CommandTag
	if sealed == nil {
		tag, err = s.pool.Exec(ctx, "UPDATE connections SET record = record || $2::jsonb, updated_at = now() WHERE id = $1", id, p)
	} else {
		tag, err = s.pool.Exec(ctx, "UPDATE connections SET record = record || $2::jsonb, sealed_secret = $3, updated_at = now() WHERE id = $1", id, p, sealed)
	}
	if err != nil {
		return s.fail(parent, op, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *Postgres) SetStatus(parent context.Context, id string, st Status) error {
	if err := s.open(); err != nil {
		return err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	// Every field explicitly: Status' JSON omits an empty last_error, and
	// a merge must still clear the old one.
	p, err := json.Marshal(map[string]any{
		"state": st.State, "last_success": st.LastSuccess, "last_error": st.LastError, "updated": st.Updated,
	})
	if err != nil {
		return err
	}
	// A newer status stored meanwhile (a deauthorize) wins. Both sides are
	// cast from the same RFC 3339 text, so equal times compare equal.
	tag, err := s.pool.Exec(ctx, `UPDATE connections SET record = record || $2::jsonb, updated_at = now()
WHERE id = $1 AND ($3 OR record->>'updated' IS NULL OR (record->>'updated')::timestamptz <= $4::text::timestamptz)`,
		id, p, st.Updated.IsZero(), st.Updated.UTC().Format(time.RFC3339Nano))
	if err != nil {
		return s.fail(parent, "saving status", err)
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM connections WHERE id = $1)", id).Scan(&exists); err != nil {
		return s.fail(parent, "saving status", err)
	}
	if !exists {
		return ErrNotFound
	}
	return nil // stale: the stored status is newer
}

func (s *Postgres) SetSecret(ctx context.Context, id string, secret map[string]string, expiry time.Time) error {
	pt, err := json.Marshal(secret)
	if err != nil {
		return err
	}
	sealed, err := s.kr.Seal(pt)
	clear(pt)
	if err != nil {
		return err
	}
	return s.patch(ctx, "saving secret", id, map[string]any{"expiry": expiry}, sealed)
}

// UpdateLocked runs fn while holding the connection's row lock
// (SELECT … FOR UPDATE), so a replica calling it for the same id waits and
// then reads what this one saved. Once fn has returned a record it is saved
// even if ctx ends meanwhile: fn may have used up a rotating refresh token,
// and losing its successor would cut the connection off.
func (s *Postgres) UpdateLocked(ctx context.Context, id string, fn func(Connection) (*Connection, error)) error {
	if err := s.open(); err != nil {
		return err
	}
	// Taking the lock is one store call, bounded like every other.
	lctx, cancel := s.call(ctx)
	defer cancel()
	tx, err := s.pool.Begin(lctx)
	if err != nil {
		return s.fail(ctx, "locking connection", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(lctx, "SET LOCAL idle_in_transaction_session_timeout = '"+pgLockedIdleTimeout+"'"); err != nil {
		return s.fail(ctx, "locking connection", err)
	}
	if d := lockWait(ctx); d > 0 {
		if _, err := tx.Exec(lctx, fmt.Sprintf("SET LOCAL lock_timeout = '%dms'", max(d.Milliseconds(), 1))); err != nil {
			return s.fail(ctx, "locking connection", err)
		}
	}
	var record, sealed []byte
	if err := tx.QueryRow(lctx, "SELECT record, sealed_secret FROM connections WHERE id = $1 FOR UPDATE", id).Scan(&record, &sealed); err != nil {
		return s.fail(ctx, "locking connection", err)
	}
	cancel()
	c, err := s.decodeConn(id, record, sealed)
	if err != nil {
		return err
	}
	nc, err := fn(c)
	if err != nil {
		return err
	}
	if nc == nil {
		cctx, cancel := s.call(ctx)
		defer cancel()
		return s.fail(ctx, "unlocking connection", tx.Commit(cctx))
	}
	saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pgSaveTimeout)
	defer cancel()
	n := nc.Clone()
	n.ID = id
	if record, sealed, err = s.encodeConn(n); err != nil {
		return err
	}
	_, err = tx.Exec(saveCtx, `UPDATE connections SET name = $2, vendor = $3, record = $4, sealed_secret = $5, updated_at = now(),
	legacy_duplicate = legacy_duplicate AND vendor = $3 AND record->>'account_id' IS NOT DISTINCT FROM $4::jsonb->>'account_id'
WHERE id = $1`,
		id, n.Name, n.Vendor, record, sealed)
	if accountTaken(err) {
		return ErrAccountTaken
	}
	if nameTaken(err) {
		return ErrNameTaken
	}
	// The save has its own bound: running out of it is the store's fault.
	if err != nil {
		return s.fail(context.Background(), "saving connection", err)
	}
	return s.fail(context.Background(), "saving connection", tx.Commit(saveCtx))
}

func (s *Postgres) Delete(parent context.Context, id string) error {
	if err := s.open(); err != nil {
		return err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	_, err := s.pool.Exec(ctx, "DELETE FROM connections WHERE id = $1", id)
	s.secrets.forget(id)
	return s.fail(parent, "deleting connection", err)
}

func (s *Postgres) GetMeta(parent context.Context, key string) ([]byte, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	var v []byte
	if err := s.pool.QueryRow(ctx, "SELECT value FROM store_meta WHERE key = $1", metaPrefix+key).Scan(&v); err != nil {
		return nil, s.fail(parent, "reading store metadata", err)
	}
	return v, nil
}

func (s *Postgres) PutMeta(parent context.Context, key string, value []byte) error {
	if err := s.open(); err != nil {
		return err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	_, err := s.pool.Exec(ctx, "INSERT INTO store_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", metaPrefix+key, value)
	return s.fail(parent, "saving store metadata", err)
}

// Ping runs an empty query, bounded like every call: readiness needs the
// database, not the records.
func (s *Postgres) Ping(parent context.Context) error {
	if err := s.open(); err != nil {
		return err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	// Reads no row, but needs the table: a table locked by another session
	// makes the store unready, as it makes every listing wait.
	_, err := s.pool.Exec(ctx, "SELECT 1 FROM connections LIMIT 0")
	return s.fail(parent, "checking the store", err)
}

// useOncePurge bounds how many expired keys one UseOnce removes, so a call
// stays cheap however many have piled up.
const useOncePurge = 64

func (s *Postgres) UseOnce(parent context.Context, key string, expires time.Time) (bool, error) {
	if key == "" {
		return false, errors.New("store: UseOnce with an empty key")
	}
	if err := s.open(); err != nil {
		return false, err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	// An expired row counts as unused: the conflict branch renews it. The
	// purge skips the key being used and rows another call is purging.
	tag, err := s.pool.Exec(ctx, `
WITH purged AS (
	DELETE FROM use_once WHERE key IN (
		SELECT key FROM use_once WHERE expires <= $3 AND key <> $1
		LIMIT `+fmt.Sprint(useOncePurge)+` FOR UPDATE SKIP LOCKED))
INSERT INTO use_once AS u (key, expires) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE u.expires <= $3`,
		key, expires, s.now())
	if err != nil {
		return false, s.fail(parent, "recording a single-use value", err)
	}
	return tag.RowsAffected() == 1, nil
}

func (s *Postgres) Used(parent context.Context, key string) (bool, error) {
	if err := s.open(); err != nil {
		return false, err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	var used bool
	err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM use_once WHERE key = $1 AND expires > $2)", key, s.now()).Scan(&used)
	if err != nil {
		return false, s.fail(parent, "reading a single-use value", err)
	}
	return used, nil
}

func (s *Postgres) PutInvite(parent context.Context, inv Invite) error {
	if inv.ID == "" {
		return errEmptyID
	}
	if err := s.open(); err != nil {
		return err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	record, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `
INSERT INTO invites (id, created, record) VALUES ($1, $2, $3)
ON CONFLICT (id) DO UPDATE SET created = excluded.created, record = excluded.record`,
		inv.ID, inv.Created, record)
	return s.fail(parent, "saving invite", err)
}

func (s *Postgres) GetInvite(parent context.Context, id string) (Invite, error) {
	if err := s.open(); err != nil {
		return Invite{}, err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	var record []byte
	if err := s.pool.QueryRow(ctx, "SELECT record FROM invites WHERE id = $1", id).Scan(&record); err != nil {
		return Invite{}, s.fail(parent, "reading invite", err)
	}
	var inv Invite
	if err := json.Unmarshal(record, &inv); err != nil {
		return Invite{}, fmt.Errorf("store: invite %q is damaged: %v", id, err)
	}
	return inv, nil
}

func (s *Postgres) ListInvites(parent context.Context) ([]Invite, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	ctx, cancel := s.call(parent)
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT id, record FROM invites")
	if err != nil {
		return nil, s.fail(parent, "listing invites", err)
	}
	out := []Invite{}
	var id string
	var record []byte
	var decodeErr error
	_, err = pgx.ForEachRow(rows, []any{&id, &record}, func() error {
		var inv Invite
		if err := json.Unmarshal(record, &inv); err != nil {
			decodeErr = fmt.Errorf("store: invite %q is damaged: %v", id, err)
			return decodeErr
		}
		out = append(out, inv)
		return nil
	})
	if decodeErr != nil {
		return nil, decodeErr
	}
	if err != nil {
		return nil, s.fail(parent, "listing invites", err)
	}
	sortInvites(out)
	return out, nil
}

// Close closes the pool, waiting for calls in flight; later calls return
// ErrClosed. Closing twice is harmless.
func (s *Postgres) Close() error {
	s.closed.Store(true)
	s.pool.Close()
	return nil
}
