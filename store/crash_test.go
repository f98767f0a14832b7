package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/store/storetest"
)

const (
	crashEnvPath   = "SAAS_EXPORTER_CRASH_CHILD_PATH"
	crashEnvKey    = "SAAS_EXPORTER_CRASH_CHILD_KEY"
	crashEnvPrefix = "SAAS_EXPORTER_CRASH_CHILD_PREFIX"
)

// TestMain runs the crash child instead of the tests when TestBoltCrash
// starts this binary as its child.
func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnvPath); path != "" {
		crashChild(path)
	}
	os.Exit(m.Run())
}

// crashChild writes until it is killed, printing each write after it is
// acknowledged.
func crashChild(path string) {
	kr, err := store.ParseKeyring(os.Getenv(crashEnvKey))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	s, err := store.OpenBolt(path, kr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	prefix := os.Getenv(crashEnvPrefix)
	for i := 0; ; i++ {
		id := fmt.Sprintf("%s-%05d", prefix, i)
		c := storetest.Sample(id, id)
		c.Secret = map[string]string{"token": "v1-" + id}
		if err := s.Put(ctx, c); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintf(os.Stdout, "PUT %s\n", id)
		// Also rewrite the previous record, so a kill can hit an update.
		if i > 0 {
			prev := fmt.Sprintf("%s-%05d", prefix, i-1)
			if err := s.SetSecret(ctx, prev, map[string]string{"token": "v2-" + prev}, time.Time{}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			fmt.Fprintf(os.Stdout, "SEC %s\n", prev)
		}
	}
}

// TestBoltCrash kills a writing child process at a random moment and checks
// that the store opens afterwards with every acknowledged write in it.
func TestBoltCrash(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), store.DefaultBoltFile)
	kr, key := newKeyring(t)
	acked := map[string]string{} // id -> the secret it must at least have

	for round := range 4 {
		want := 20 + rand.IntN(60)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // only against a hung child
		cmd := exec.CommandContext(ctx, os.Args[0])
		cmd.Env = append(os.Environ(), crashEnvPath+"="+path, crashEnvKey+"="+key, fmt.Sprintf("%s=r%d", crashEnvPrefix, round))
		storetest.Kill(t, cmd, "SEC", want, acked)
		cancel()

		s, err := store.OpenBolt(path, kr)
		if err != nil {
			t.Fatalf("round %d: store does not open after the kill: %v", round, err)
		}
		for id, sec := range acked {
			c, err := s.Get(context.Background(), id)
			if err != nil {
				t.Errorf("round %d: acknowledged connection %s: %v", round, id, err)
				continue
			}
			got := c.Secret["token"]
			// An update may have landed without its acknowledgement; never older.
			if !storetest.Acked(got, sec, id) {
				t.Errorf("round %d: connection %s has secret %q, want %q", round, id, got, sec)
			}
		}
		s.Close()
	}
}
