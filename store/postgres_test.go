package store_test

import (
	"context"
	"testing"

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
	kr, err := store.ParseKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	return kr, key
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

func TestPostgresContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		dsn, _ := pgtest.Start(t)
		kr, _ := newKeyring(t)
		return openPG(t, dsn, kr)
	})
}
