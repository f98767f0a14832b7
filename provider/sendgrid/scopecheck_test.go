package sendgrid

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// run is one collection of a stored connection, as the engine runs it:
// the sections' last results come back as Previous.
type stored struct {
	conn provider.Connection
	prev map[string]provider.SectionResult
}

func (st *stored) collect(t *testing.T, p *Provider, at time.Time) (metrics, []string, error) {
	t.Helper()
	s := &provider.Scrape{Conn: st.conn, HTTP: http.DefaultClient, Now: at, Previous: st.prev}
	err := p.Collect(context.Background(), s)
	if r := s.SectionResults(); r != nil {
		st.prev = r
	}
	m, missing, _ := s.Result()
	return m, missing, err
}

// TestScopesCheckedAtMostEveryFewMinutes: with the scopes stored when
// connecting, /v3/scopes is read alongside the other calls on the first
// collection, then not again for scopeCheckEvery.
func TestScopesCheckedAtMostEveryFewMinutes(t *testing.T) {
	sim, p := newSim(t)
	acct, _ := vendorsim.SendGridAccountFor(vendorsim.SendGridKeyAcme)
	st := &stored{conn: provider.Connection{ID: "c1", Name: "prod", AuthMethod: "api_key",
		Secret: map[string]string{"api_key": vendorsim.SendGridKeyAcme}, Scopes: acct.Scopes}}
	scopeCalls := func() int64 { return sim.CallCounts().Routes["GET /sendgrid/v3/scopes"] }
	for i, step := range []struct {
		after time.Duration
		want  int64
	}{{0, 1}, {time.Minute, 1}, {4 * time.Minute, 1}, {scopeCheckEvery + time.Second, 2}} {
		if _, _, err := st.collect(t, p, now.Add(step.after)); err != nil {
			t.Fatal(err)
		}
		if got := scopeCalls(); got != step.want {
			t.Errorf("collection %d (+%s): %d calls of /v3/scopes, want %d", i, step.after, got, step.want)
		}
	}
}

// TestLostScopeLearntFrom403: the stored scopes say teammates.read, the
// key no longer has it. The section's 403 leaves the teammates out
// without failing the collection and names the scope missing; the next
// collection asks /v3/scopes again and no longer calls /v3/teammates.
func TestLostScopeLearntFrom403(t *testing.T) {
	sim, p := newSim(t)
	beta, _ := vendorsim.SendGridAccountFor(vendorsim.SendGridKeyBeta)
	claimed := append(slices.Clone(beta.Scopes), "teammates.read") // granted when connecting, since removed
	st := &stored{conn: provider.Connection{ID: "c2", Name: "prod", AuthMethod: "api_key",
		Secret: map[string]string{"api_key": vendorsim.SendGridKeyBeta}, Scopes: claimed}}
	// The first collection's own scope check would already say so: make
	// it not due, as a few minutes after connecting.
	st.prev = map[string]provider.SectionResult{scopeSection: {At: now.Add(-time.Minute)}}
	m, missing, err := st.collect(t, p, now)
	if err != nil {
		t.Fatalf("a lost scope failed the collection: %v", err)
	}
	if !slices.Contains(missing, "teammates.read") {
		t.Errorf("missing scopes %v do not name teammates.read", missing)
	}
	if n := testutil.CollectAndCount(m, "saas_sendgrid_teammates"); n != 0 {
		t.Errorf("%d teammates series without the scope", n)
	}
	routes := sim.CallCounts().Routes
	if routes["GET /sendgrid/v3/teammates"] != 1 || routes["GET /sendgrid/v3/scopes"] != 0 {
		t.Fatalf("first collection: %v", routes)
	}
	if _, _, err := st.collect(t, p, now.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	routes = sim.CallCounts().Routes
	if routes["GET /sendgrid/v3/scopes"] != 1 {
		t.Errorf("after a 403, /v3/scopes was called %d times on the next collection, want 1", routes["GET /sendgrid/v3/scopes"])
	}
	if routes["GET /sendgrid/v3/teammates"] != 1 {
		t.Errorf("the lost scope's endpoint was called again (%d calls)", routes["GET /sendgrid/v3/teammates"])
	}
}

// A 403 while /v3/scopes still lists the scope (IP access management, an
// outage) is a failure, not a lost scope.
func TestForbiddenWithScopeGrantedIsAFailure(t *testing.T) {
	var m scopeMemory
	c := provider.Connection{ID: "c", Scopes: []string{"stats.read", "teammates.read"}}
	if left := m.lose(c, []string{"teammates.read"}); strings.Join(left, ",") != "stats.read" {
		t.Fatalf("after losing teammates.read: %v", left)
	}
	if !m.get(c).recheck || m.get(c).granted403 {
		t.Fatal("a lost scope asks /v3/scopes again and is not yet contradicted")
	}
	m.set(c, []string{"stats.read", "teammates.read"})
	if !m.get(c).granted403 {
		t.Error("/v3/scopes lists the scope after its 403: the 403 must count as a failure")
	}
	m.set(c, []string{"stats.read", "teammates.read"})
	if m.get(c).granted403 {
		t.Error("granted403 outlives the next check")
	}
	// A Reconnect stores new scopes: what was learnt before is dropped.
	m.lose(c, []string{"stats.read"})
	c.Scopes = []string{"stats.read"}
	if k := m.get(c); k.recheck || strings.Join(k.scopes, ",") != "stats.read" {
		t.Errorf("after a Reconnect: %+v", k)
	}
}
