package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/store/pgtest"
)

// Listing an unchanged store again opens no secret; a changed secret is
// opened once. (A scrape or an /sd poll lists the store.)
func TestListOpensOnlyChangedSecrets(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	kr, err := ParseKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	bolt, err := OpenBolt(filepath.Join(t.TempDir(), "s.db"), kr)
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	dsn, _ := pgtest.Start(t)
	pg, err := OpenPostgres(context.Background(), dsn, kr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	checkOpens(t, bolt, &bolt.secrets)
	checkOpens(t, pg, &pg.secrets)
}

func checkOpens(t *testing.T, b Store, secrets *openedSecrets) {
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		id := fmt.Sprint("c", i)
		if err := b.Put(ctx, Connection{ID: id, Name: id, Vendor: "v", Secret: map[string]string{"k": "secret-" + id}}); err != nil {
			t.Fatal(err)
		}
	}
	list := func() int64 {
		before := secrets.opened.Load()
		conns, err := b.List(ctx)
		if err != nil || len(conns) != 5 {
			t.Fatalf("List: %d %v", len(conns), err)
		}
		for _, c := range conns {
			if c.Secret["k"] != "secret-"+c.ID {
				t.Fatalf("%s: wrong secret", c.ID)
			}
		}
		return secrets.opened.Load() - before
	}
	list()
	if n := list(); n != 0 {
		t.Errorf("%T: listing an unchanged store opened %d secrets", b, n)
	}
	if err := b.SetSecret(ctx, "c2", map[string]string{"k": "secret-c2"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if n := list(); n != 1 {
		t.Errorf("%T: after one secret changed, a listing opened %d secrets, want 1", b, n)
	}
}
