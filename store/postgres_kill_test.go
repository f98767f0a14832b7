package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/store/pgtest"
	"github.com/saas-exporter/saas_exporter/store/storetest"
)

const (
	pgKillEnvDSN    = "SAAS_EXPORTER_PG_KILL_CHILD_DSN"
	pgKillEnvKey    = "SAAS_EXPORTER_PG_KILL_CHILD_KEY"
	pgKillEnvPrefix = "SAAS_EXPORTER_PG_KILL_CHILD_PREFIX"
)

// init runs the kill child instead of the tests when TestPostgresClientKill
// starts this binary as its child (TestMain, in crash_test.go, belongs to
// the internal test package; init runs before it).
func init() {
	if dsn := os.Getenv(pgKillEnvDSN); dsn != "" {
		pgKillChild(dsn)
	}
}

// pgKillChild writes until it is killed, printing each write after it is
// acknowledged: a Put of a new connection, then an UpdateLocked of the
// previous one, so a kill can land while a row lock is held.
func pgKillChild(dsn string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	kr, err := store.ParseKeyring(os.Getenv(pgKillEnvKey))
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	s, err := store.OpenPostgres(ctx, dsn, kr, nil)
	if err != nil {
		fail(err)
	}
	prefix := os.Getenv(pgKillEnvPrefix)
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s-%05d", prefix, i)
		c := pgConn(id, id)
		c.Secret = map[string]string{"token": "v1-" + id}
		if err := s.Put(ctx, c); err != nil {
			fail(err)
		}
		fmt.Printf("PUT %s\n", id)
		if i == 0 {
			continue
		}
		prev := fmt.Sprintf("%s-%05d", prefix, i-1)
		err := s.UpdateLocked(ctx, prev, func(c store.Connection) (*store.Connection, error) {
			c.Secret = map[string]string{"token": "v2-" + prev}
			return &c, nil
		})
		if err != nil {
			fail(err)
		}
		fmt.Printf("UPD %s\n", prev)
	}
}

// TestPostgresClientKill kills a writing client at a random moment: every
// write it had acknowledged is in the database, and no lock it held is left
// behind.
func TestPostgresClientKill(t *testing.T) {
	t.Parallel()
	dsn, _ := pgtest.Start(t)
	kr, key := newKeyring(t)
	acked := map[string]string{} // id -> the secret it must at least have
	for round := range 3 {
		want := 20 + rand.IntN(40)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // only against a hung child
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), pgKillEnvDSN+"="+dsn, pgKillEnvKey+"="+key, fmt.Sprintf("%s=r%d", pgKillEnvPrefix, round))
		storetest.Kill(t, cmd, "UPD", want, acked)
		cancel()

		ctx, cancel = context.WithTimeout(context.Background(), time.Minute) // a lock left behind would hang
		s, err := store.OpenPostgres(ctx, dsn, kr, nil)
		if err != nil {
			t.Fatalf("round %d: store does not open after the kill: %v", round, err)
		}
		for id, sec := range acked {
			c, err := s.Get(ctx, id)
			if err != nil {
				t.Errorf("round %d: acknowledged connection %s: %v", round, id, err)
				continue
			}
			got := c.Secret["token"]
			// An update may have landed without its acknowledgement; never older.
			if !storetest.Acked(got, sec, id) {
				t.Errorf("round %d: connection %s has secret %q, want %q", round, id, got, sec)
			}
			err = s.UpdateLocked(ctx, id, func(store.Connection) (*store.Connection, error) { return nil, nil })
			if err != nil {
				t.Errorf("round %d: locking %s after the kill: %v", round, id, err)
			}
		}
		s.Close()
		cancel()
	}
}
