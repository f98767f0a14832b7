package collector

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/saas-exporter/saas_exporter/store"
)

func TestCollectNowIgnoresMinInterval(t *testing.T) {
	e, v, _, clk := setup(t, "prod")
	gather(t, scrapeOf(e, nil))
	clk.add(time.Second) // well inside min_interval
	a, err := e.CollectNow(context.Background(), "id0")
	if err != nil {
		t.Fatal(err)
	}
	if n := v.calls.Load(); n != 2 {
		t.Fatalf("vendor calls: %d, want 2 (scrape, then collect now)", n)
	}
	if a.Outcome != OutcomeSuccess || !a.At.Equal(t0.Add(time.Second)) || a.Error != "" {
		t.Errorf("attempt: %+v", a)
	}
	d, ok := e.Detail("id0")
	if !ok || len(d.History) != 2 || !d.History[0].At.Equal(a.At) || len(d.Latest) != 1 {
		t.Fatalf("detail: ok=%v %+v", ok, d)
	}
	// The scrape after it reuses the fresh result.
	gather(t, scrapeOf(e, nil))
	if n := v.calls.Load(); n != 2 {
		t.Errorf("the scrape after collect now called the vendor again: %d calls", n)
	}
}

func TestCollectNowHonoursRateLimit(t *testing.T) {
	e, v, _, clk := setup(t, "prod")
	v.set("secret-prod", 429, http.Header{"Retry-After": {"120"}})
	a, err := e.CollectNow(context.Background(), "id0")
	if err != nil || a.Outcome != store.StateRateLimited {
		t.Fatalf("first: %+v %v", a, err)
	}
	clk.add(time.Minute)
	_, err = e.CollectNow(context.Background(), "id0")
	var nc *NotCollectedError
	if !errors.As(err, &nc) || nc.State != store.StateRateLimited || !nc.Until.Equal(t0.Add(120*time.Second)) {
		t.Fatalf("inside the wait: %v", err)
	}
	if !strings.Contains(err.Error(), "try again after") {
		t.Errorf("message: %v", err)
	}
	if n := v.calls.Load(); n != 1 {
		t.Errorf("called the vendor inside its rate-limit wait: %d calls", n)
	}
	if d, _ := e.Detail("id0"); !d.RateLimitedUntil.Equal(t0.Add(120 * time.Second)) {
		t.Errorf("detail until: %v", d.RateLimitedUntil)
	}
}

func TestCollectNowRefusals(t *testing.T) {
	e, v, st, _ := setup(t, "prod")
	if _, err := e.CollectNow(context.Background(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	if err := st.SetStatus(context.Background(), "id0", store.Status{State: store.StateRevoked}); err != nil {
		t.Fatal(err)
	}
	_, err := e.CollectNow(context.Background(), "id0")
	if !IsNotCollected(err) || !strings.Contains(err.Error(), "reconnect") {
		t.Errorf("revoked: %v", err)
	}
	if v.calls.Load() != 0 {
		t.Error("called the vendor for a revoked connection")
	}
}

func TestHistoryKeepsLast20Redacted(t *testing.T) {
	e, v, _, clk := setup(t, "prod")
	v.set("secret-prod", 400, nil) // not retried
	for i := range 25 {
		clk.add(time.Minute)
		if _, err := e.CollectNow(context.Background(), "id0"); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	d, _ := e.Detail("id0")
	if len(d.History) != HistoryLen {
		t.Fatalf("%d attempts kept, want %d", len(d.History), HistoryLen)
	}
	if !d.History[0].At.Equal(t0.Add(25*time.Minute)) || !d.History[19].At.Equal(t0.Add(6*time.Minute)) {
		t.Errorf("not the newest first: %v … %v", d.History[0].At, d.History[19].At)
	}
	for _, a := range d.History {
		if a.Outcome != store.StateError || a.Error == "" || strings.Contains(a.Error, "secret-prod") {
			t.Fatalf("attempt: %+v", a)
		}
	}
}

func TestRenameDropsOldLabel(t *testing.T) {
	e, v, st, clk := setup(t, "prod")
	gather(t, scrapeOf(e, nil))
	err := st.UpdateLocked(context.Background(), "id0", func(c store.Connection) (*store.Connection, error) {
		c.Name = "production"
		return &c, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Forget("id0")
	// The first collection under the new name fails: the values kept from
	// before must not go on under the old name.
	v.set("secret-prod", 500, nil)
	clk.add(time.Second)
	got := gather(t, scrapeOf(e, nil))
	if _, ok := got[`saas_fake_used{connection="prod"}`]; ok {
		t.Errorf("old name still exported: %v", got)
	}
	v.set("secret-prod", 200, nil)
	if _, err := e.CollectNow(context.Background(), "id0"); err != nil {
		t.Fatal(err)
	}
	got = gather(t, scrapeOf(e, nil))
	if got[`saas_fake_used{connection="production"}`] != 42 {
		t.Errorf("new name missing: %v", got)
	}
	if n, _ := testutil.GatherAndCount(scrapeOf(e, nil), "saas_fake_used"); n != 1 {
		t.Errorf("saas_fake_used: %d series, want 1", n)
	}
}

// Collect now on a connection another replica holds (its refresh), or
// while the store fails, says so instead of blaming the vendor or a full
// collection pool; the history keeps only verdicts.
func TestCollectNowLockedOrStoreDown(t *testing.T) {
	e, locks, _, clk := setupLocks(t)
	locks.locked.Store(true)
	_, err := e.CollectNow(context.Background(), "id0")
	var nc *NotCollectedError
	if !errors.As(err, &nc) || !strings.Contains(err.Error(), "another replica holds this connection") {
		t.Errorf("locked: %v", err)
	}
	locks.locked.Store(false)
	locks.fail.Store(true)
	clk.add(time.Second)
	if _, err := e.CollectNow(context.Background(), "id0"); err == nil || !strings.Contains(err.Error(), "needed the store, which failed") {
		t.Errorf("store down: %v", err)
	}
	if d, _ := e.Detail("id0"); len(d.History) != 0 {
		t.Errorf("history: %+v", d.History)
	}
	locks.fail.Store(false)
	if a, err := e.CollectNow(context.Background(), "id0"); err != nil || a.Outcome != OutcomeSuccess {
		t.Errorf("store back: %+v %v", a, err)
	}
}

// TestLatestFollowsTheLastAttempt: Latest tells what Detail's newest
// attempt tells (state, error, when) and the last success, and nothing
// before the first attempt.
func TestLatestFollowsTheLastAttempt(t *testing.T) {
	e, v, _, clk := setup(t, "prod")
	if _, ok := e.Latest("id0"); ok {
		t.Fatal("Latest before any attempt")
	}
	gather(t, scrapeOf(e, nil))
	l, ok := e.Latest("id0")
	if !ok || l.State != store.StateActive || l.Error != "" || !l.At.Equal(t0) || !l.LastSuccess.Equal(t0) {
		t.Fatalf("after a success: %+v %v", l, ok)
	}
	clk.add(time.Minute)
	v.set("secret-prod", 401, nil)
	if _, err := e.CollectNow(context.Background(), "id0"); err != nil {
		t.Fatal(err)
	}
	l, _ = e.Latest("id0")
	d, _ := e.Detail("id0")
	if l.State != store.StateRevoked || l.State != d.State || l.Error == "" || l.Error != d.History[0].Error || !l.At.Equal(d.History[0].At) || !l.LastSuccess.Equal(t0) {
		t.Errorf("after a revocation: %+v; detail %+v", l, d.History[0])
	}
}
