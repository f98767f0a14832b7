package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func query(t *testing.T, dsn string) int {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT 41 + 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStartGivesFreshDatabases(t *testing.T) {
	ctx := context.Background()
	a, dropA := Start(t)
	b, _ := Start(t)
	if a == b {
		t.Fatalf("two Start calls returned the same DSN %s", a)
	}
	c, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var found bool
	if err := cb.QueryRow(ctx, "SELECT to_regclass('only_in_a') IS NOT NULL").Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found {
		t.Error("a table created in one database is visible in another")
	}
	if Shared(t) != Shared(t) {
		t.Error("Shared returned two servers")
	}
	dropA()
	if _, err := pgx.Connect(ctx, a); err == nil {
		t.Error("connecting to a dropped database succeeded")
	}
	dropA() // harmless twice
}

func TestRestartKeepsPortAndData(t *testing.T) {
	s := NewServer(t)
	dsn, _ := s.NewDatabase(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)

	s.StopServer(t)
	if _, err := pgx.Connect(ctx, dsn); err == nil {
		t.Fatal("connecting to a stopped server succeeded")
	}
	s.StartServer(t)
	s.Restart(t)
	c, err = pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	defer c.Close(ctx)
	var x int
	if err := c.QueryRow(ctx, "SELECT x FROM kept").Scan(&x); err != nil || x != 7 {
		t.Errorf("data after restart = %d, %v; want 7", x, err)
	}
}

func TestCloseRemovesFiles(t *testing.T) {
	s := NewServer(t)
	if got := query(t, s.DSN("postgres")); got != 42 {
		t.Fatalf("SELECT = %d", got)
	}
	base := s.base
	s.Close()
	if _, err := os.Stat(base); !os.IsNotExist(err) {
		t.Errorf("after Close, %s still exists (stat: %v)", base, err)
	}
	if _, err := pgx.Connect(context.Background(), s.DSN("postgres")); err == nil {
		t.Error("server still accepts connections after Close")
	}
	s.Close() // harmless twice
}
