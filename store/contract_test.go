package store_test

import (
	"path/filepath"
	"testing"

	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/store/storetest"
)

func TestMemoryContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewMemory() })
}

func TestBoltContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store {
		key, err := store.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		kr, err := store.ParseKeyring(key)
		if err != nil {
			t.Fatal(err)
		}
		s, err := store.OpenBolt(filepath.Join(t.TempDir(), "data", store.DefaultBoltFile), kr)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
