package collector

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/saas-exporter/saas_exporter/store"
)

// A decision taken while a collection runs (a deauthorize callback, a
// reconnect) is newer than that collection's result: writing the result
// must not overwrite it. A connection without such a decision gets the
// result (so the test cannot pass by writing nothing).
func TestStatusWriteKeepsNewerDecision(t *testing.T) {
	e, v, st, clk := setup(t, "prod", "other")
	ctx := context.Background()
	block := make(chan struct{})
	v.mu.Lock()
	v.block = block
	v.mu.Unlock()
	v.set("secret-prod", 500, nil)
	v.set("secret-other", 500, nil)

	done := make(chan error, 1)
	go func() {
		_, err := testutil.GatherAndCount(scrapeOf(e, nil))
		done <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); v.calls.Load() < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("the collections did not call the vendor (%d calls)", v.calls.Load())
		}
		time.Sleep(time.Millisecond)
	}
	// While both collections wait for the vendor, prod is revoked.
	clk.add(time.Second)
	newer := store.Status{State: store.StateRevoked, LastError: "deauthorized by the account's admin", Updated: clk.now()}
	if err := st.SetStatus(ctx, "id0", newer); err != nil {
		t.Fatal(err)
	}
	close(block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.Close() // writes pending status

	prod, err := st.Get(ctx, "id0")
	if err != nil {
		t.Fatal(err)
	}
	if prod.State != store.StateRevoked || prod.LastError != newer.LastError || !prod.Updated.Equal(newer.Updated) {
		t.Errorf("the collection's older result overwrote the newer status: %+v", prod.Status)
	}
	other, err := st.Get(ctx, "id1")
	if err != nil {
		t.Fatal(err)
	}
	if other.State != store.StateError || other.LastError == "" {
		t.Errorf("the result of the other collection was not written: %+v", other.Status)
	}
}
