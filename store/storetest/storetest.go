// Package storetest is the contract every store.Store backend must pass.
// A backend's test calls Run with a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/store"
)

// Run runs the contract suite. open must return a new, empty store for each
// call; Run closes it (Close may therefore be called twice).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Empty", testEmpty},
		{"PutGet", testPutGet},
		{"PutReplace", testPutReplace},
		{"PutEmptyID", testPutEmptyID},
		{"NameTaken", testNameTaken},
		{"ListOrder", testListOrder},
		{"Matching", testMatching},
		{"SetStatus", testSetStatus},
		{"SetStatusConcurrent", testSetStatusConcurrent},
		{"SetSecret", testSetSecret},
		{"Delete", testDelete},
		{"DeepCopy", testDeepCopy},
		{"UseOnce", testUseOnce},
		{"UseOnceExpiry", testUseOnceExpiry},
		{"UseOnceConcurrent", testUseOnceConcurrent},
		{"ConcurrentPut", testConcurrentPut},
		{"AccountTaken", testAccountTaken},
		{"ConcurrentAccount", testConcurrentAccount},
		{"UpdateLocked", testUpdateLocked},
		{"UpdateLockedNil", testUpdateLockedNil},
		{"UpdateLockedNotFound", testUpdateLockedNotFound},
		{"UpdateLockedError", testUpdateLockedError},
		{"UpdateLockedNameTaken", testUpdateLockedNameTaken},
		{"UpdateLockedOutlivesContext", testUpdateLockedOutlivesContext},
		{"UpdateLockedPutWins", testUpdateLockedPutWins},
		{"UpdateLockedDeleteWins", testUpdateLockedDeleteWins},
		{"UpdateLockedKeepsStatus", testUpdateLockedKeepsStatus},
		{"UpdateLockedLockWait", testUpdateLockedLockWait},
		{"SetStatusNewerWins", testSetStatusNewerWins},
		{"DeleteDuringUpdateLocked", testDeleteDuringUpdateLocked},
		{"Ping", testPing},
		{"Meta", testMeta},
		{"UpdateLockedSerialised", func(t *testing.T, s store.Store) { CheckSerialised(t, []store.Store{s}, 16) }},
		{"Budget", testBudget},
		{"Invites", testInvites},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

// ts returns a time that survives every backend exactly (UTC, microseconds).
func ts(offset time.Duration) time.Time {
	return time.Date(2025, 3, 4, 5, 6, 7, 891011000, time.UTC).Add(offset)
}

// Sample returns a connection with every field set.
func Sample(id, name string) store.Connection {
	return store.Connection{
		ID:            id,
		Vendor:        "sendgrid",
		Name:          name,
		Account:       "Acme " + name,
		AccountID:     "acct-" + id,
		AuthMethod:    "api_key",
		Settings:      map[string]string{"region": "eu"},
		Secret:        map[string]string{"api_key": "SG.secret-" + id, "refresh_token": "rt-" + id},
		Scopes:        []string{"stats.read", "user.profile.read"},
		MissingScopes: []string{"billing.read"},
		Created:       ts(0),
		Expiry:        ts(90 * 24 * time.Hour),
		Status: store.Status{
			State:       store.StateActive,
			LastSuccess: ts(time.Minute),
			LastError:   "",
			Updated:     ts(time.Minute),
		},
	}
}

// normalize makes values that backends may legitimately represent
// differently (nil vs empty, time zone) compare equal.
func normalize(c store.Connection) store.Connection {
	c = c.Clone()
	if len(c.Settings) == 0 {
		c.Settings = nil
	}
	if len(c.Secret) == 0 {
		c.Secret = nil
	}
	if len(c.Scopes) == 0 {
		c.Scopes = nil
	}
	if len(c.MissingScopes) == 0 {
		c.MissingScopes = nil
	}
	for _, p := range []*time.Time{&c.Created, &c.Expiry, &c.LastSuccess, &c.Updated} {
		*p = p.UTC()
	}
	return c
}

func checkConn(t *testing.T, what string, got, want store.Connection) {
	t.Helper()
	if g, w := normalize(got), normalize(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %s\n want %s", what, show(g), show(w))
	}
}

// show prints a connection with secret values masked, so a failing test
// does not print them either.
func show(c store.Connection) string {
	masked := map[string]string{}
	for k, v := range c.Secret {
		masked[k] = fmt.Sprintf("<%d bytes>", len(v))
	}
	c.Secret = masked
	budget := "none"
	if c.Budget != nil {
		budget = fmt.Sprint(*c.Budget)
	}
	c.Budget = nil
	return fmt.Sprintf("%+v budget=%s", c, budget)
}

func mustPut(t *testing.T, s store.Store, c store.Connection) {
	t.Helper()
	if err := s.Put(context.Background(), c); err != nil {
		t.Fatalf("Put(%s): %v", c.ID, err)
	}
}

func mustGet(t *testing.T, s store.Store, id string) store.Connection {
	t.Helper()
	c, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return c
}

func mustList(t *testing.T, s store.Store) []store.Connection {
	t.Helper()
	cs, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return cs
}

func ids(cs []store.Connection) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func testEmpty(t *testing.T, s store.Store) {
	ctx := context.Background()
	if cs := mustList(t, s); len(cs) != 0 {
		t.Errorf("List on empty store = %v", ids(cs))
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get missing: err = %v, want ErrNotFound", err)
	}
	if invs, err := s.ListInvites(ctx); err != nil || len(invs) != 0 {
		t.Errorf("ListInvites on empty store = %v, %v", invs, err)
	}
	if _, err := s.GetInvite(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetInvite missing: err = %v, want ErrNotFound", err)
	}
}

func testPutGet(t *testing.T, s store.Store) {
	want := Sample("c1", "prod")
	want.LastError = "HTTP 401 from vendor"
	mustPut(t, s, want)
	checkConn(t, "Get after Put", mustGet(t, s, "c1"), want)
	cs := mustList(t, s)
	if len(cs) != 1 {
		t.Fatalf("List = %v, want [c1]", ids(cs))
	}
	checkConn(t, "List after Put", cs[0], want)

	// A minimal record (no maps, zero times) round-trips too.
	min := store.Connection{ID: "c2", Vendor: "segment", Name: "min"}
	mustPut(t, s, min)
	checkConn(t, "Get minimal", mustGet(t, s, "c2"), min)
}

func testPutReplace(t *testing.T, s store.Store) {
	mustPut(t, s, Sample("c1", "prod"))
	repl := Sample("c1", "production")
	repl.Secret = map[string]string{"api_key": "SG.rotated"}
	repl.Settings = nil
	repl.Scopes = []string{"stats.read"}
	repl.Status = store.Status{State: store.StateRevoked, LastError: "revoked", Updated: ts(time.Hour)}
	mustPut(t, s, repl)
	checkConn(t, "Get after replace", mustGet(t, s, "c1"), repl)
	if got := ids(mustList(t, s)); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("List after replace = %v, want [c1]", got)
	}
}

func testPutEmptyID(t *testing.T, s store.Store) {
	if err := s.Put(context.Background(), Sample("", "x")); err == nil {
		t.Error("Put with empty ID succeeded")
	}
	if cs := mustList(t, s); len(cs) != 0 {
		t.Errorf("List after rejected Put = %v", ids(cs))
	}
}

func testNameTaken(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := Sample("a", "prod")
	mustPut(t, s, a)

	err := s.Put(ctx, Sample("b", "prod"))
	if !errors.Is(err, store.ErrNameTaken) {
		t.Fatalf("Put with a taken name: err = %v, want ErrNameTaken", err)
	}
	if _, err := s.Get(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rejected connection was stored: err = %v", err)
	}
	checkConn(t, "owner of the name after rejected Put", mustGet(t, s, "a"), a)

	// Replacing the same ID with the same name is not a conflict.
	a.Account = "changed"
	mustPut(t, s, a)
	checkConn(t, "same ID same name", mustGet(t, s, "a"), a)

	// Renaming into a taken name is a conflict; renaming away frees it.
	mustPut(t, s, Sample("b", "staging"))
	if err := s.Put(ctx, Sample("b", "prod")); !errors.Is(err, store.ErrNameTaken) {
		t.Errorf("rename into a taken name: err = %v, want ErrNameTaken", err)
	}
	if got := mustGet(t, s, "b").Name; got != "staging" {
		t.Errorf("name after rejected rename = %q, want staging", got)
	}
	a.Name = "prod-old"
	mustPut(t, s, a)
	mustPut(t, s, Sample("c", "prod"))
	if got := ids(mustList(t, s)); !slices.Equal(got, []string{"c", "a", "b"}) {
		t.Errorf("List = %v, want [c a b] (prod, prod-old, staging)", got)
	}
}

func testListOrder(t *testing.T, s store.Store) {
	names := map[string]string{"1": "zeta", "2": "alpha", "3": "Mid", "4": "beta", "5": "alpha-2"}
	for _, id := range slices.Sorted(maps.Keys(names)) {
		mustPut(t, s, Sample(id, names[id]))
	}
	var got []string
	for _, c := range mustList(t, s) {
		got = append(got, c.Name)
	}
	want := []string{"Mid", "alpha", "alpha-2", "beta", "zeta"}
	if !slices.Equal(got, want) {
		t.Errorf("List names = %v, want %v (ordered by name, bytewise)", got, want)
	}
}

// testSetStatusConcurrent: statuses written at once (the collector's
// status writer does, and a store may batch them) each land on their own
// record, which keeps its secret and the rest.
func testSetStatusConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 40
	want := make([]store.Connection, n)
	for i := range n {
		want[i] = Sample(fmt.Sprintf("c%02d", i), fmt.Sprintf("prod-%02d", i))
		want[i].AccountID = fmt.Sprintf("acct-%02d", i)
		want[i].Secret = map[string]string{"api_key": fmt.Sprintf("key-%02d", i)}
		mustPut(t, s, want[i])
	}
	var wg sync.WaitGroup
	for i := range n {
		want[i].Status = store.Status{State: store.StateActive, LastSuccess: ts(time.Hour + time.Duration(i)*time.Second), Updated: ts(time.Hour + time.Duration(i)*time.Second)}
		st := want[i].Status
		id := want[i].ID
		wg.Go(func() {
			if err := s.SetStatus(ctx, id, st); err != nil {
				t.Errorf("SetStatus %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	for i := range n {
		checkConn(t, "after concurrent SetStatus", mustGet(t, s, want[i].ID), want[i])
	}
}

func testSetStatus(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := Sample("c1", "prod")
	mustPut(t, s, c)
	st := store.Status{State: store.StateRateLimited, LastSuccess: ts(2 * time.Minute), LastError: "HTTP 429", Updated: ts(3 * time.Minute)}
	if err := s.SetStatus(ctx, "c1", st); err != nil {
		t.Fatal(err)
	}
	c.Status = st
	checkConn(t, "after SetStatus", mustGet(t, s, "c1"), c)

	if err := s.SetStatus(ctx, "missing", st); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetStatus on missing id: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetStatus created a record: err = %v", err)
	}
}

func testSetSecret(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := Sample("c1", "prod")
	mustPut(t, s, c)
	sec := map[string]string{"access_token": "at-new", "refresh_token": "rt-new"}
	exp := ts(2 * time.Hour)
	if err := s.SetSecret(ctx, "c1", sec, exp); err != nil {
		t.Fatal(err)
	}
	c.Secret, c.Expiry = sec, exp
	checkConn(t, "after SetSecret", mustGet(t, s, "c1"), c)

	// A zero expiry means the credential never expires.
	if err := s.SetSecret(ctx, "c1", sec, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "c1").Expiry; !got.IsZero() {
		t.Errorf("Expiry after SetSecret with zero time = %v", got)
	}

	if err := s.SetSecret(ctx, "missing", sec, exp); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetSecret on missing id: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetSecret created a record: err = %v", err)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, Sample("c1", "prod"))
	mustPut(t, s, Sample("c2", "staging"))
	if err := s.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if got := ids(mustList(t, s)); !slices.Equal(got, []string{"c2"}) {
		t.Errorf("List after Delete = %v, want [c2]", got)
	}
	if err := s.Delete(ctx, "c1"); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if err := s.Delete(ctx, "never-existed"); err != nil {
		t.Errorf("Delete of unknown id: %v", err)
	}
	// The name is free again.
	mustPut(t, s, Sample("c3", "prod"))
}

func testDeepCopy(t *testing.T, s store.Store) {
	ctx := context.Background()
	in := Sample("c1", "prod")
	want := in.Clone()
	mustPut(t, s, in)
	in.Secret["api_key"] = "mutated"
	in.Settings["region"] = "mutated"
	in.Scopes[0] = "mutated"
	in.MissingScopes[0] = "mutated"
	checkConn(t, "after mutating the value given to Put", mustGet(t, s, "c1"), want)

	got := mustGet(t, s, "c1")
	got.Secret["api_key"] = "mutated"
	got.Settings["region"] = "mutated"
	got.Scopes[0] = "mutated"
	checkConn(t, "after mutating the value Get returned", mustGet(t, s, "c1"), want)

	l := mustList(t, s)
	l[0].Secret["api_key"] = "mutated"
	l[0].Scopes[0] = "mutated"
	checkConn(t, "after mutating the value List returned", mustGet(t, s, "c1"), want)

	sec := map[string]string{"api_key": "v2"}
	if err := s.SetSecret(ctx, "c1", sec, want.Expiry); err != nil {
		t.Fatal(err)
	}
	sec["api_key"] = "mutated"
	if got := mustGet(t, s, "c1").Secret["api_key"]; got != "v2" {
		t.Errorf("secret after mutating the map given to SetSecret changed (%d bytes, want 2)", len(got))
	}
}

func testUseOnce(t *testing.T, s store.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for i, want := range []bool{true, false, false} {
		got, err := s.UseOnce(ctx, "state-abc", exp)
		if err != nil || got != want {
			t.Fatalf("UseOnce call %d = %v, %v; want %v", i+1, got, err, want)
		}
	}
	if got, err := s.UseOnce(ctx, "state-other", exp); err != nil || !got {
		t.Errorf("UseOnce of another key = %v, %v; want true", got, err)
	}
	if _, err := s.UseOnce(ctx, "", exp); err == nil {
		t.Error("UseOnce with an empty key succeeded")
	}
	// Used reads without recording.
	for i := 0; i < 2; i++ {
		if used, err := s.Used(ctx, "state-unseen"); err != nil || used {
			t.Fatalf("Used of an unrecorded key = %v, %v; want false", used, err)
		}
	}
	if used, err := s.Used(ctx, "state-abc"); err != nil || !used {
		t.Errorf("Used of a recorded key = %v, %v; want true", used, err)
	}
	if got, err := s.UseOnce(ctx, "state-unseen", exp); err != nil || !got {
		t.Errorf("UseOnce after Used = %v, %v; want true", got, err)
	}
	if _, err := s.UseOnce(ctx, "state-past", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if used, err := s.Used(ctx, "state-past"); err != nil || used {
		t.Errorf("Used of an expired key = %v, %v; want false", used, err)
	}
}

func testUseOnceExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	past := time.Now().Add(-time.Minute)
	future := time.Now().Add(time.Hour)
	// Many expired records, so backends that purge in batches do purge.
	for i := range 300 {
		if ok, err := s.UseOnce(ctx, fmt.Sprintf("old-%03d", i), past); err != nil || !ok {
			t.Fatalf("UseOnce(old-%03d) = %v, %v", i, ok, err)
		}
	}
	if ok, err := s.UseOnce(ctx, "live", future); err != nil || !ok {
		t.Fatalf("UseOnce(live) = %v, %v", ok, err)
	}
	for i := range 300 {
		if ok, err := s.UseOnce(ctx, fmt.Sprintf("new-%03d", i), future); err != nil || !ok {
			t.Fatalf("UseOnce(new-%03d) = %v, %v", i, ok, err)
		}
	}
	// A live record survives every purge.
	if ok, err := s.UseOnce(ctx, "live", future); err != nil || ok {
		t.Errorf("second UseOnce(live) = %v, %v; want false", ok, err)
	}
	if ok, err := s.UseOnce(ctx, "new-150", future); err != nil || ok {
		t.Errorf("second UseOnce(new-150) = %v, %v; want false", ok, err)
	}
	// An expired record counts as unused; using it again starts a new one.
	if ok, err := s.UseOnce(ctx, "old-007", future); err != nil || !ok {
		t.Errorf("UseOnce of an expired key = %v, %v; want true", ok, err)
	}
	if ok, err := s.UseOnce(ctx, "old-007", future); err != nil || ok {
		t.Errorf("UseOnce of a renewed key = %v, %v; want false", ok, err)
	}
}

func testUseOnceConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	const n = 16
	var wg sync.WaitGroup
	results := make(chan bool, n)
	for range n {
		wg.Go(func() {
			ok, err := s.UseOnce(ctx, "contended", exp)
			if err != nil {
				t.Error(err)
			}
			results <- ok
		})
	}
	wg.Wait()
	close(results)
	wins := 0
	for ok := range results {
		if ok {
			wins++
		}
	}
	if wins != 1 {
		t.Errorf("%d concurrent UseOnce calls of one key returned true %d times, want once", n, wins)
	}
}

func testConcurrentPut(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := s.Put(ctx, Sample(fmt.Sprintf("c%02d", i), fmt.Sprintf("name-%02d", i))); err != nil {
				t.Error(err)
			}
		})
	}
	// Several writers race for one name: exactly one wins.
	taken := make(chan error, n)
	for i := range n {
		wg.Go(func() { taken <- s.Put(ctx, Sample(fmt.Sprintf("x%02d", i), "contested")) })
	}
	wg.Wait()
	close(taken)
	wins := 0
	for err := range taken {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrNameTaken):
			t.Errorf("contested Put: %v", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d writers of one name: %d succeeded, want 1", n, wins)
	}
	if got := len(mustList(t, s)); got != n+1 {
		t.Errorf("List has %d connections, want %d", got, n+1)
	}
}

func testInvites(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := store.Invite{ID: "inv-a", Vendor: "twilio", Name: "prod", Created: ts(0), Expires: ts(24 * time.Hour)}
	b := store.Invite{ID: "inv-b", Vendor: "segment", Name: "eu", Created: ts(time.Hour), Expires: ts(25 * time.Hour), ConnectionID: "c9"}
	for _, inv := range []store.Invite{a, b} {
		if err := s.PutInvite(ctx, inv); err != nil {
			t.Fatal(err)
		}
	}
	checkInvite := func(what string, got, want store.Invite) {
		t.Helper()
		for _, p := range []*time.Time{&got.Created, &got.Expires, &got.Used} {
			*p = p.UTC()
		}
		if got != want {
			t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
		}
	}
	got, err := s.GetInvite(ctx, "inv-b")
	if err != nil {
		t.Fatal(err)
	}
	checkInvite("GetInvite", got, b)

	a.Used = ts(2 * time.Hour)
	a.Revoked = true
	if err := s.PutInvite(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetInvite(ctx, "inv-a")
	if err != nil {
		t.Fatal(err)
	}
	checkInvite("GetInvite after replace", got, a)

	list, err := s.ListInvites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("ListInvites has %d invites, want 2", len(list))
	}
	checkInvite("ListInvites[0] (newest)", list[0], b)
	checkInvite("ListInvites[1]", list[1], a)

	if _, err := s.GetInvite(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetInvite missing: err = %v, want ErrNotFound", err)
	}
	if err := s.PutInvite(ctx, store.Invite{Vendor: "twilio"}); err == nil {
		t.Error("PutInvite with empty ID succeeded")
	}
}

func testClosed(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, Sample("c1", "prod"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Get(ctx, "c1"); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Get after Close: err = %v, want ErrClosed", err)
	}
	if err := s.Put(ctx, Sample("c2", "x")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Put after Close: err = %v, want ErrClosed", err)
	}
	if _, err := s.UseOnce(ctx, "k", time.Now().Add(time.Hour)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("UseOnce after Close: err = %v, want ErrClosed", err)
	}
	called := false
	err := s.UpdateLocked(ctx, "c1", func(c store.Connection) (*store.Connection, error) { called = true; return nil, nil })
	if !errors.Is(err, store.ErrClosed) || called {
		t.Errorf("UpdateLocked after Close: err = %v, fn called = %v; want ErrClosed, not called", err, called)
	}
}

func testUpdateLocked(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := Sample("c1", "prod")
	mustPut(t, s, c)
	mustPut(t, s, Sample("c2", "other"))
	// The record changed after Put: fn must see the current one.
	st := store.Status{State: store.StateExpired, LastError: "token expired", Updated: ts(time.Hour)}
	if err := s.SetStatus(ctx, "c1", st); err != nil {
		t.Fatal(err)
	}
	c.Status = st
	calls := 0
	var want store.Connection
	err := s.UpdateLocked(ctx, "c1", func(got store.Connection) (*store.Connection, error) {
		calls++
		checkConn(t, "record given to fn", got, c)
		got.Secret = map[string]string{"access_token": "at-2", "refresh_token": "rt-2"}
		got.Expiry = ts(3 * time.Hour)
		got.Status = store.Status{State: store.StateActive, LastSuccess: ts(2 * time.Hour), Updated: ts(2 * time.Hour)}
		got.Scopes = append(got.Scopes, "new.scope")
		want = got.Clone()
		return &got, nil
	})
	if err != nil {
		t.Fatalf("UpdateLocked: %v", err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times, want 1", calls)
	}
	checkConn(t, "Get after UpdateLocked", mustGet(t, s, "c1"), want)
	checkConn(t, "the other connection", mustGet(t, s, "c2"), Sample("c2", "other"))

	// The record is saved under the id that was locked, whatever fn set.
	err = s.UpdateLocked(ctx, "c1", func(got store.Connection) (*store.Connection, error) {
		got.ID = "elsewhere"
		got.Account = "renamed account"
		return &got, nil
	})
	if err != nil {
		t.Fatalf("UpdateLocked changing the ID: %v", err)
	}
	want.Account = "renamed account"
	checkConn(t, "Get after fn changed the ID", mustGet(t, s, "c1"), want)
	if _, err := s.Get(ctx, "elsewhere"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("fn's ID created a record: err = %v", err)
	}
}

func testUpdateLockedNil(t *testing.T, s store.Store) {
	c := Sample("c1", "prod")
	mustPut(t, s, c)
	calls := 0
	err := s.UpdateLocked(context.Background(), "c1", func(got store.Connection) (*store.Connection, error) {
		calls++
		got.Secret["api_key"] = "changed but not returned"
		got.Name = "changed"
		return nil, nil
	})
	if err != nil || calls != 1 {
		t.Fatalf("UpdateLocked returning nil = %v, fn called %d times; want nil, once", err, calls)
	}
	checkConn(t, "Get after fn returned nil", mustGet(t, s, "c1"), c)
}

func testUpdateLockedNotFound(t *testing.T, s store.Store) {
	called := false
	err := s.UpdateLocked(context.Background(), "missing", func(c store.Connection) (*store.Connection, error) {
		called = true
		return &c, nil
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateLocked on a missing id: err = %v, want ErrNotFound", err)
	}
	if called {
		t.Error("fn was called for a missing id")
	}
	if cs := mustList(t, s); len(cs) != 0 {
		t.Errorf("UpdateLocked on a missing id created %v", ids(cs))
	}
}

func testUpdateLockedError(t *testing.T, s store.Store) {
	c := Sample("c1", "prod")
	mustPut(t, s, c)
	boom := errors.New("vendor said no")
	err := s.UpdateLocked(context.Background(), "c1", func(got store.Connection) (*store.Connection, error) {
		got.Secret = map[string]string{"api_key": "must not be saved"}
		got.State = store.StateRevoked
		return &got, boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("UpdateLocked with failing fn: err = %v, want fn's error", err)
	}
	checkConn(t, "Get after fn failed", mustGet(t, s, "c1"), c)
	// The lock was released: the next call gets it.
	if err := s.UpdateLocked(context.Background(), "c1", func(store.Connection) (*store.Connection, error) { return nil, nil }); err != nil {
		t.Errorf("UpdateLocked after a failed one: %v", err)
	}
}

func testUpdateLockedNameTaken(t *testing.T, s store.Store) {
	a, b := Sample("a", "prod"), Sample("b", "staging")
	mustPut(t, s, a)
	mustPut(t, s, b)
	err := s.UpdateLocked(context.Background(), "b", func(got store.Connection) (*store.Connection, error) {
		got.Name = "prod"
		got.Secret = map[string]string{"api_key": "must not be saved"}
		return &got, nil
	})
	if !errors.Is(err, store.ErrNameTaken) {
		t.Errorf("UpdateLocked renaming into a taken name: err = %v, want ErrNameTaken", err)
	}
	checkConn(t, "renamed connection after the rejected save", mustGet(t, s, "b"), b)
	checkConn(t, "owner of the name", mustGet(t, s, "a"), a)
}

// CheckSerialised runs n concurrent UpdateLocked calls on one connection,
// spread over stores (handles on one shared store, like replicas of one
// database, or a single store), and fails t if two fn bodies overlap or an
// update is lost. Each fn increments a counter kept in the secret.
func CheckSerialised(t *testing.T, stores []store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	c := Sample("serial", "serialised")
	c.Secret = map[string]string{"n": "0"}
	mustPut(t, stores[0], c)
	var inside, overlaps, calls atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		s := stores[i%len(stores)]
		wg.Go(func() {
			err := s.UpdateLocked(ctx, "serial", func(got store.Connection) (*store.Connection, error) {
				calls.Add(1)
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				defer inside.Add(-1)
				v, err := strconv.Atoi(got.Secret["n"])
				if err != nil {
					return nil, fmt.Errorf("counter in the secret: %v", err)
				}
				// Give another caller every chance to run fn now, as a
				// vendor round trip would.
				time.Sleep(time.Millisecond)
				got.Secret = map[string]string{"n": strconv.Itoa(v + 1)}
				return &got, nil
			})
			if err != nil {
				t.Errorf("UpdateLocked: %v", err)
			}
		})
	}
	wg.Wait()
	if got := overlaps.Load(); got != 0 {
		t.Errorf("%d of %d UpdateLocked fn calls ran while another was running", got, n)
	}
	if got := calls.Load(); got != int32(n) {
		t.Errorf("fn called %d times, want %d", got, n)
	}
	for i, s := range stores {
		if got := mustGet(t, s, "serial").Secret["n"]; got != strconv.Itoa(n) {
			t.Errorf("store %d: counter after %d serialised increments = %q (lost updates)", i, n, got)
		}
	}
}

// The caller's context ends while fn runs (the scrape deadline during a
// token refresh): what fn returns is saved all the same, since the vendor
// has already rotated the refresh token it used.
func testUpdateLockedOutlivesContext(t *testing.T, s store.Store) {
	mustPut(t, s, Sample("c1", "prod"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := s.UpdateLocked(ctx, "c1", func(got store.Connection) (*store.Connection, error) {
		cancel()
		got.Secret = map[string]string{"access_token": "at-2", "refresh_token": "rt-2"}
		return &got, nil
	})
	if err != nil {
		t.Errorf("UpdateLocked whose context ended inside fn: %v", err)
	}
	if got := mustGet(t, s, "c1").Secret["refresh_token"]; got != "rt-2" {
		t.Errorf("refresh token after the context ended inside fn = %q, want the rotated rt-2", got)
	}
}

// during runs write while fn of an UpdateLocked on id is running, and
// returns fn's result and the write's error. A backend whose row lock
// holds the write until fn is done makes fn give up waiting for it (the
// write then applies after UpdateLocked).
func during(t *testing.T, s store.Store, id string, write func() error, fn func(store.Connection) *store.Connection) (updateErr, writeErr error) {
	t.Helper()
	done := make(chan error, 1)
	updateErr = s.UpdateLocked(context.Background(), id, func(got store.Connection) (*store.Connection, error) {
		go func() { done <- write() }()
		wait := time.NewTimer(200 * time.Millisecond)
		defer wait.Stop()
		select {
		case err := <-done:
			done <- err
		case <-wait.C:
		}
		return fn(got), nil
	})
	return updateErr, <-done
}

func renewed(got store.Connection) *store.Connection {
	got.Secret = map[string]string{"api_key": "renewed from the old secret"}
	return &got
}

// A reconnect (Put) while a renewal runs: the reconnect's secret stays.
func testUpdateLockedPutWins(t *testing.T, s store.Store) {
	mustPut(t, s, Sample("c1", "prod"))
	re := Sample("c1", "prod")
	re.Secret = map[string]string{"api_key": "from the reconnect"}
	uerr, perr := during(t, s, "c1", func() error { return s.Put(context.Background(), re) }, renewed)
	if perr != nil {
		t.Fatalf("Put: %v", perr)
	}
	if uerr != nil && !errors.Is(uerr, store.ErrChanged) {
		t.Errorf("UpdateLocked: err = %v, want nil or ErrChanged", uerr)
	}
	if got := mustGet(t, s, "c1").Secret["api_key"]; got != "from the reconnect" {
		t.Errorf("secret after a reconnect during a renewal = %q, want the reconnect's", got)
	}
}

// A delete while a renewal runs: the connection stays deleted.
func testUpdateLockedDeleteWins(t *testing.T, s store.Store) {
	mustPut(t, s, Sample("c1", "prod"))
	uerr, derr := during(t, s, "c1", func() error { return s.Delete(context.Background(), "c1") }, renewed)
	if derr != nil {
		t.Fatalf("Delete: %v", derr)
	}
	if uerr != nil && !errors.Is(uerr, store.ErrNotFound) {
		t.Errorf("UpdateLocked: err = %v, want nil or ErrNotFound", uerr)
	}
	if c, err := s.Get(context.Background(), "c1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("connection deleted during a renewal came back: %v %s", err, show(c))
	}
}

// A status written while a renewal runs (a deauthorize) is kept.
func testUpdateLockedKeepsStatus(t *testing.T, s store.Store) {
	mustPut(t, s, Sample("c1", "prod"))
	st := store.Status{State: store.StateRevoked, LastError: "deauthorized", Updated: ts(time.Hour)}
	uerr, serr := during(t, s, "c1", func() error { return s.SetStatus(context.Background(), "c1", st) }, renewed)
	if uerr != nil || serr != nil {
		t.Fatalf("UpdateLocked: %v; SetStatus: %v", uerr, serr)
	}
	got := mustGet(t, s, "c1")
	if got.State != store.StateRevoked || got.Secret["api_key"] != "renewed from the old secret" {
		t.Errorf("after a status write during a renewal: state %q, secret %q; want revoked and the renewed secret", got.State, got.Secret["api_key"])
	}
}

// With WithLockWait, a lock held by another caller gives ErrLocked
// without calling fn, and the holder's update is saved.
func testUpdateLockedLockWait(t *testing.T, s store.Store) {
	mustPut(t, s, Sample("c1", "prod"))
	entered, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- s.UpdateLocked(context.Background(), "c1", func(got store.Connection) (*store.Connection, error) {
			close(entered)
			<-release
			return renewed(got), nil
		})
	}()
	<-entered
	called := false
	err := s.UpdateLocked(store.WithLockWait(context.Background(), 50*time.Millisecond), "c1", func(got store.Connection) (*store.Connection, error) {
		called = true
		return nil, nil
	})
	close(release)
	if !errors.Is(err, store.ErrLocked) || called {
		t.Errorf("UpdateLocked on a held lock with a lock wait: err = %v, fn called = %v; want ErrLocked, not called", err, called)
	}
	if err := <-held; err != nil {
		t.Fatalf("holder: %v", err)
	}
	if got := mustGet(t, s, "c1").Secret["api_key"]; got != "renewed from the old secret" {
		t.Errorf("holder's update: %q", got)
	}
	// Free again: the lock wait does not stop a call that gets it.
	if err := s.UpdateLocked(store.WithLockWait(context.Background(), 50*time.Millisecond), "c1", func(store.Connection) (*store.Connection, error) { return nil, nil }); err != nil {
		t.Errorf("UpdateLocked with a lock wait on a free lock: %v", err)
	}
}

// SetStatus never replaces a newer status with an older one (a collection
// that started before a deauthorize finishes after it).
func testSetStatusNewerWins(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := Sample("c1", "prod")
	mustPut(t, s, c)
	newer := store.Status{State: store.StateRevoked, LastError: "deauthorized", Updated: ts(2 * time.Hour)}
	if err := s.SetStatus(ctx, "c1", newer); err != nil {
		t.Fatal(err)
	}
	older := store.Status{State: store.StateActive, LastSuccess: ts(time.Hour), Updated: ts(time.Hour)}
	if err := s.SetStatus(ctx, "c1", older); err != nil {
		t.Errorf("SetStatus with an older status: %v", err)
	}
	if got := mustGet(t, s, "c1").Status; got.State != store.StateRevoked {
		t.Errorf("older status overwrote a newer one: %+v", got)
	}
	same := store.Status{State: store.StateError, LastError: "HTTP 500", Updated: newer.Updated}
	if err := s.SetStatus(ctx, "c1", same); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "c1").Status; got.State != store.StateError {
		t.Errorf("status with the same time was not written: %+v", got)
	}
	if err := s.SetStatus(ctx, "missing", older); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetStatus on missing id: err = %v, want ErrNotFound", err)
	}
}

// A Delete that returned nil is final: an UpdateLocked that was running
// when it was called does not write the record back afterwards.
func testDeleteDuringUpdateLocked(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, Sample("a", "one"))
	deleted := make(chan error, 1)
	err := s.UpdateLocked(ctx, "a", func(c store.Connection) (*store.Connection, error) {
		go func() { deleted <- s.Delete(ctx, "a") }()
		// Give the delete time to finish if it does not wait for us; the
		// verdict below holds either way.
		select {
		case err := <-deleted:
			deleted <- err
		case <-time.After(100 * time.Millisecond):
		}
		c.Secret = map[string]string{"api_key": "renewed"}
		return &c, nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateLocked: %v", err)
	}
	if err := <-deleted; err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if c, err := s.Get(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the deleted record is back after a racing UpdateLocked: %v %s", err, show(c))
	}
}

// Ping answers on an open store, ErrClosed after Close.
func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping on an open store: %v", err)
	}
	s.Close()
	if err := s.Ping(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
}

// Every store keeps the small named values store migrate records.
func testMeta(t *testing.T, s store.Store) {
	ctx := context.Background()
	m, ok := s.(store.Meta)
	if !ok {
		t.Fatalf("%T does not implement store.Meta", s)
	}
	if _, err := m.GetMeta(ctx, "migration"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMeta of a missing key: %v, want ErrNotFound", err)
	}
	for _, v := range []string{"one", "two"} {
		if err := m.PutMeta(ctx, "migration", []byte(v)); err != nil {
			t.Fatal(err)
		}
		if got, err := m.GetMeta(ctx, "migration"); err != nil || string(got) != v {
			t.Errorf("GetMeta after PutMeta(%q) = %q, %v", v, got, err)
		}
	}
	// The store's own metadata is not reachable through Meta.
	for _, k := range []string{"canary", "schema_version"} {
		if _, err := m.GetMeta(ctx, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetMeta(%q) = %v, want ErrNotFound", k, err)
		}
	}
}

// SetBudget sets (b != nil) or clears a connection's monthly budget with
// UpdateLocked, the way the API does: only the budget of the current
// record changes.
func SetBudget(ctx context.Context, s store.Store, id string, b *float64) error {
	return s.UpdateLocked(ctx, id, func(c store.Connection) (*store.Connection, error) {
		c.Budget = b
		return &c, nil
	})
}

func ptr(v float64) *float64 { return &v }

// A budget is part of the record: stored exactly (0 is a budget, nil is
// none), kept by the status and secret writes of collection, and by a
// reconnect's Put of the record it read.
func testBudget(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := Sample("c1", "prod")
	mustPut(t, s, c)
	checkConn(t, "without a budget", mustGet(t, s, "c1"), c)
	for _, v := range []float64{500, 0.1, 0, 1e12, 123456.789} {
		if err := SetBudget(ctx, s, "c1", ptr(v)); err != nil {
			t.Fatalf("setting budget %v: %v", v, err)
		}
		got := mustGet(t, s, "c1")
		if got.Budget == nil || *got.Budget != v {
			t.Errorf("budget after setting %v = %v", v, got.Budget)
		}
	}
	c.Budget = ptr(250.5)
	if err := SetBudget(ctx, s, "c1", c.Budget); err != nil {
		t.Fatal(err)
	}
	st := store.Status{State: store.StateError, LastError: "HTTP 500", Updated: ts(time.Hour)}
	if err := s.SetStatus(ctx, "c1", st); err != nil {
		t.Fatal(err)
	}
	c.Status = st
	sec := map[string]string{"api_key": "rotated"}
	if err := s.SetSecret(ctx, "c1", sec, ts(time.Hour)); err != nil {
		t.Fatal(err)
	}
	c.Secret, c.Expiry = sec, ts(time.Hour)
	checkConn(t, "budget after SetStatus and SetSecret", mustGet(t, s, "c1"), c)
	if l := mustList(t, s); len(l) != 1 || l[0].Budget == nil || *l[0].Budget != 250.5 {
		t.Errorf("List lost the budget: %v", l)
	}
	// The record shares no pointer with what callers hold.
	*mustGet(t, s, "c1").Budget = 1
	*c.Budget = 2
	c.Budget = ptr(250.5)
	checkConn(t, "after mutating a returned budget", mustGet(t, s, "c1"), c)
	// Reconnect: the record read, with a new credential, is put back.
	re := mustGet(t, s, "c1")
	re.Secret = map[string]string{"api_key": "reconnected"}
	mustPut(t, s, re)
	checkConn(t, "budget after a reconnect's Put", mustGet(t, s, "c1"), re)

	if err := SetBudget(ctx, s, "c1", nil); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "c1"); got.Budget != nil {
		t.Errorf("budget after clearing = %v, want none", *got.Budget)
	}
	if err := SetBudget(ctx, s, "missing", ptr(1)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("budget on a missing id: err = %v, want ErrNotFound", err)
	}
}

// withAccount is Sample(id, name) holding vendor account acct.
func withAccount(id, name, vendor, acct string) store.Connection {
	c := Sample(id, name)
	c.Vendor, c.AccountID = vendor, acct
	return c
}

// One vendor account is one connection: (Vendor, AccountID) is unique
// among connections with an AccountID.
func testAccountTaken(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := withAccount("a", "prod", "sendgrid", "acct-1")
	mustPut(t, s, a)
	if err := s.Put(ctx, withAccount("b", "other", "sendgrid", "acct-1")); !errors.Is(err, store.ErrAccountTaken) {
		t.Fatalf("Put of a held account: err = %v, want ErrAccountTaken", err)
	}
	if _, err := s.Get(ctx, "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("rejected connection was stored: err = %v", err)
	}
	// Another vendor's account with the same id, and connections without
	// an account id, are no conflict.
	mustPut(t, s, withAccount("c", "c", "twilio", "acct-1"))
	mustPut(t, s, withAccount("d", "d", "sendgrid", ""))
	mustPut(t, s, withAccount("e", "e", "sendgrid", ""))
	// Replacing the holder is no conflict.
	a.Account = "changed"
	mustPut(t, s, a)
	// Moving into a held account is refused; moving away frees it.
	b := withAccount("b", "other", "sendgrid", "acct-2")
	mustPut(t, s, b)
	b.AccountID = "acct-1"
	if err := s.Put(ctx, b); !errors.Is(err, store.ErrAccountTaken) {
		t.Errorf("moving into a held account: err = %v, want ErrAccountTaken", err)
	}
	err := s.UpdateLocked(ctx, "b", func(c store.Connection) (*store.Connection, error) {
		c.AccountID = "acct-1"
		return &c, nil
	})
	if !errors.Is(err, store.ErrAccountTaken) {
		t.Errorf("UpdateLocked into a held account: err = %v, want ErrAccountTaken", err)
	}
	if got := mustGet(t, s, "b").AccountID; got != "acct-2" {
		t.Errorf("account after rejected moves = %q, want acct-2", got)
	}
	a.AccountID = "acct-3"
	mustPut(t, s, a)
	b.AccountID = "acct-1"
	mustPut(t, s, b)
	// Deleting the holder frees the account.
	if err := s.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, withAccount("f", "f", "sendgrid", "acct-1"))
}

// Many writers connect one account at once: exactly one connection holds it.
func testConcurrentAccount(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 20
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs <- s.Put(ctx, withAccount(fmt.Sprintf("k%02d", i), fmt.Sprintf("acme-%02d", i), "sendgrid", "acct-acme"))
		})
	}
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrAccountTaken):
			t.Errorf("a losing Put: err = %v, want ErrAccountTaken", err)
		}
	}
	if n := len(mustList(t, s)); wins != 1 || n != 1 {
		t.Errorf("%d concurrent Puts of one account: %d succeeded, %d stored; want 1 and 1", 20, wins, n)
	}
}

// CheckLegacyDuplicates runs on a store opened over data written before
// the one-connection-per-account rule, holding "dup1" and "dup2" for one
// sendgrid account "acct-dup": both keep working (status, secret, a Put
// that keeps their account), a new connection of that account is refused,
// and a duplicate that moves to another account cannot move back.
func CheckLegacyDuplicates(t *testing.T, s store.Store) {
	t.Helper()
	ctx := context.Background()
	for _, id := range []string{"dup1", "dup2"} {
		c := mustGet(t, s, id)
		if c.AccountID != "acct-dup" {
			t.Fatalf("%s holds %q, want acct-dup", id, c.AccountID)
		}
		c.Account = "renamed " + id
		mustPut(t, s, c)
		if err := s.UpdateLocked(ctx, id, func(c store.Connection) (*store.Connection, error) {
			c.Secret = map[string]string{"api_key": "rotated"}
			return &c, nil
		}); err != nil {
			t.Errorf("UpdateLocked of legacy duplicate %s: %v", id, err)
		}
		if err := s.SetStatus(ctx, id, store.Status{State: store.StateActive}); err != nil {
			t.Errorf("SetStatus of legacy duplicate %s: %v", id, err)
		}
	}
	if err := s.Put(ctx, withAccount("dup3", "dup3", "sendgrid", "acct-dup")); !errors.Is(err, store.ErrAccountTaken) {
		t.Errorf("a new connection of a duplicated account: err = %v, want ErrAccountTaken", err)
	}
	c := mustGet(t, s, "dup2")
	c.AccountID = "acct-other"
	mustPut(t, s, c)
	c.AccountID = "acct-dup"
	if err := s.Put(ctx, c); !errors.Is(err, store.ErrAccountTaken) {
		t.Errorf("moving back into a held account: err = %v, want ErrAccountTaken", err)
	}
}

// Matching finds by name and by (vendor, account id), opened, by name.
func testMatching(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := Sample("id-a", "alpha")
	a.AccountID = "acc1"
	b := Sample("id-b", "beta")
	b.Vendor, b.AccountID = "twilio", "acc1"
	c := Sample("id-c", "gamma")
	c.AccountID = ""
	d := Sample("id-d", "delta")
	d.AccountID = "acc2"
	for _, x := range []store.Connection{d, c, b, a} {
		mustPut(t, s, x)
	}
	match := func(vendor, account, name string, want ...store.Connection) {
		t.Helper()
		got, err := s.Matching(ctx, vendor, account, name)
		if err != nil {
			t.Fatalf("Matching(%q, %q, %q): %v", vendor, account, name, err)
		}
		if len(got) != len(want) {
			t.Fatalf("Matching(%q, %q, %q) = %v, want %v", vendor, account, name, ids(got), ids(want))
		}
		for i := range want {
			checkConn(t, fmt.Sprintf("Matching(%q, %q, %q)[%d]", vendor, account, name, i), got[i], want[i])
		}
	}
	match("sendgrid", "acc1", "", a)
	match("sendgrid", "acc1", "beta", a, b)
	match("twilio", "acc1", "alpha", a, b)
	match("sendgrid", "", "gamma", c)
	match("sendgrid", "acc1", "alpha", a)
	match("sendgrid", "acc9", "nobody")
	match("sendgrid", "", "") // an empty account id is no account
	match("segment", "acc1", "")

	// A renamed or deleted connection is found under what it is now.
	a.Name = "alpha2"
	mustPut(t, s, a)
	match("sendgrid", "", "alpha")
	match("sendgrid", "", "alpha2", a)
	if err := s.Delete(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	match("sendgrid", "acc2", "delta")
}

// ListCounter is a store that counts its List calls: the reads of every
// connection (each decodes every record).
type ListCounter struct {
	store.Store
	n atomic.Int64
}

func (l *ListCounter) List(ctx context.Context) ([]store.Connection, error) {
	l.n.Add(1)
	return l.Store.List(ctx)
}

// Lists is how many times List was called.
func (l *ListCounter) Lists() int64 { return l.n.Load() }
