package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/store/pgtest"
	"github.com/saas-exporter/saas_exporter/store/storetest"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// migrateChildEnv carries the arguments of a `store migrate` that
// TestStoreMigrateKilled runs in a child process (this test binary) and kills.
const migrateChildEnv = "SAAS_EXPORTER_MIGRATE_CHILD_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(migrateChildEnv); args != "" {
		os.Exit(run(context.Background(), strings.Split(args, "\x1f"), os.Stdout, os.Stderr, nil))
	}
	os.Exit(m.Run())
}

// migrate runs `saas_exporter store migrate` and returns its exit code,
// output and log.
func migrate(t *testing.T, cfgFile string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb strings.Builder
	code := run(context.Background(), append([]string{"--config.file=" + cfgFile, "store", "migrate"}, args...), &out, &errb, nil)
	return code, out.String(), errb.String()
}

// `store migrate` run again after replicas worked on PostgreSQL refuses
// to roll it back, and says what would be lost: a connection deleted there
// would come back, one rewritten there would be replaced. --force does it.
func TestStoreMigrateRefusesChangedDestination(t *testing.T) {
	s := startStack(t, stackOptions{})
	var prod, seg apiConn
	s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "prod", "api_key": vendorsim.SendGridKeyAcme}, &prod)
	s.api("POST", "/api/v1/connections", map[string]string{"vendor": "segment", "name": "seg", "token": vendorsim.SegmentTokenAcme, "region": "us"}, &seg)
	if code := s.stop(); code != 0 {
		t.Fatalf("stop: %d", code)
	}
	dsn, _ := pgtest.Start(t)
	cfgFile := filepath.Join(s.Dir, "config.yml")
	if code, out, errb := migrate(t, cfgFile, "--from=bbolt", "--to=postgres:"+dsn); code != 0 {
		t.Fatalf("first migration: %d %s %s", code, out, errb)
	}

	// Two replicas take over the database; one deletes seg, the other
	// reconnects prod (a new credential and status).
	shared := "secret_key_file: " + filepath.Join(s.Dir, "data", store.DefaultKeyFile) + "\nstore:\n  postgres:\n    dsn: " + dsn + "\n"
	a := startStack(t, stackOptions{ExtraConfig: shared})
	b := startStack(t, stackOptions{ExtraConfig: shared, Sim: a.Sim, SimURL: a.SimURL})
	if code := a.api("DELETE", "/api/v1/connections/"+seg.ID, nil, nil); code != 204 {
		t.Fatalf("delete on A: %d", code)
	}
	if code := b.api("POST", "/api/v1/connections/"+prod.ID+"/reconnect", map[string]string{"api_key": vendorsim.SendGridKeyAcme}, nil); code != 200 {
		t.Fatalf("reconnect on B: %d", code)
	}
	a.stop()
	b.stop()

	code, out, errb := migrate(t, cfgFile, "--from=bbolt", "--to=postgres:"+dsn)
	if code == 0 {
		t.Fatalf("migrating again over a changed destination succeeded: %s", out)
	}
	for _, want := range []string{
		`connection \"seg\" (` + seg.ID + `) was deleted from the destination since the last migration; it would come back`,
		`connection \"prod\" (` + prod.ID + `) differs in the destination (`,
		"--force",
	} {
		if !strings.Contains(errb, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, errb)
		}
	}
	pg := openShared(t, shared, dsn)
	if _, err := pg.Get(context.Background(), seg.ID); err != store.ErrNotFound {
		t.Errorf("the refused migration brought seg back: %v", err)
	}

	if code, out, errb := migrate(t, cfgFile, "--from=bbolt", "--to=postgres:"+dsn, "--force"); code != 0 || !strings.Contains(out, "copied and verified 2 connections") {
		t.Fatalf("--force: %d %s %s", code, out, errb)
	}
	if _, err := pg.Get(context.Background(), seg.ID); err != nil {
		t.Errorf("after --force, seg is back from the source: %v", err)
	}
	// And once more: nothing changed since the forced run.
	if code, out, errb := migrate(t, cfgFile, "--from=bbolt", "--to=postgres:"+dsn); code != 0 {
		t.Errorf("a run after the forced one: %d %s %s", code, out, errb)
	}
}

// A `store migrate` killed half-way leaves a destination that replicas
// refuse to start on, saying how to finish; running it again finishes it.
func TestStoreMigrateKilled(t *testing.T) {
	dir := t.TempDir()
	key, err := store.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kr, err := store.LoadKeyring(keyFile, "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	boltFile := filepath.Join(dir, "source.db")
	src, err := store.OpenBolt(boltFile, kr)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("c%04d", i)
		if err := src.Put(context.Background(), storetest.Sample(id, id)); err != nil {
			t.Fatal(err)
		}
	}
	src.Close()

	dsn, _ := pgtest.Start(t)
	shared := "secret_key_file: " + keyFile + "\nstore:\n  postgres:\n    dsn: " + dsn + "\n"
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte("data_dir: "+filepath.Join(dir, "data")+"\n"+shared), 0o600); err != nil {
		t.Fatal(err)
	}
	// A slow database (each row takes 10 ms) keeps the copy going long
	// enough for the kill to land in it, however busy the machine is.
	openShared(t, shared, dsn).Close()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `
CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.01); RETURN NEW; END $$;
CREATE TRIGGER slow_row BEFORE INSERT ON connections FOR EACH ROW EXECUTE FUNCTION slow_row();`); err != nil {
		t.Fatal(err)
	}
	// The migration runs in a child process, killed once it has copied
	// something.
	args := []string{"--config.file=" + cfgFile, "store", "migrate", "--from=bbolt:" + boltFile, "--to=postgres"}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), migrateChildEnv+"="+strings.Join(args, "\x1f"))
	var childOut strings.Builder
	child.Stdout, child.Stderr = &childOut, &childOut
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	copied := 0
	for deadline := time.Now().Add(20 * time.Second); copied == 0 && time.Now().Before(deadline); {
		// The table appears when the child has created the schema.
		if conn.QueryRow(context.Background(), "SELECT count(*) FROM connections").Scan(&copied) != nil {
			copied = 0
		}
		time.Sleep(time.Millisecond)
	}
	child.Process.Kill()
	child.Wait()
	conn.QueryRow(context.Background(), "SELECT count(*) FROM connections").Scan(&copied)
	if copied == 0 || copied == n {
		t.Fatalf("the kill landed outside the copy (%d of %d copied):\n%s", copied, n, childOut.String())
	}
	t.Logf("killed after %d of %d connections", copied, n)
	if _, err := conn.Exec(context.Background(), "DROP TRIGGER slow_row ON connections"); err != nil {
		t.Fatal(err)
	}

	for _, replica := range []string{"A", "B"} {
		code, logs := startReplica(t, shared)
		if code == 0 || !strings.Contains(logs, "did not complete") || !strings.Contains(logs, "run the same command again") {
			t.Errorf("replica %s on the half-migrated database: exit %d, want a refusal:\n%s", replica, code, logs)
		}
	}
	if code, out, errb := migrate(t, cfgFile, "--from=bbolt:"+boltFile, "--to=postgres"); code != 0 || !strings.Contains(out, fmt.Sprintf("copied and verified %d connections", n)) {
		t.Fatalf("finishing the migration: %d %s %s", code, out, errb)
	}
	if code, logs := startReplica(t, shared); code != 0 {
		t.Errorf("a replica after the finished migration: exit %d:\n%s", code, logs)
	}
}
