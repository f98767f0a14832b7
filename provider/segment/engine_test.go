package segment

import (
	"bufio"
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// scrapeMetrics serves /metrics once and returns its samples by
// "name{labels}".
func scrapeMetrics(t *testing.T, e *collector.Engine) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	e.MetricsHandler(prometheus.NewRegistry()).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// Through the real engine: a renewed OAuth token is stored and
// saas_connection_expiry_timestamp_seconds follows it; a 429 sets
// rate_limited and no call is made before msBeforeNext has passed.
func TestThroughEngine(t *testing.T) {
	env := newEnv(t, 1000)
	env.sim.SetSegmentTokenLifetime(time.Hour)
	oc := env.connect(t) // expires t0+1h
	st := store.NewMemory()
	for _, c := range []store.Connection{
		{ID: "o1", Vendor: vendor, Name: "oauth", AuthMethod: oc.AuthMethod, Account: oc.Account, AccountID: oc.AccountID,
			Settings: oc.Settings, Secret: oc.Secret, Expiry: oc.Expiry, Created: t0, Status: store.Status{State: store.StateActive}},
		{ID: "t1", Vendor: vendor, Name: "euro", AuthMethod: MethodToken, Account: "Euro Corp", AccountID: "EuroVendorsimWs0000002",
			Settings: map[string]string{settingRegion: "eu"}, Secret: map[string]string{secretToken: vendorsim.SegmentTokenEuro},
			Created: t0, Status: store.Status{State: store.StateActive}},
	} {
		if err := st.Put(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	eng := collector.New(collector.Options{Store: st, Providers: []provider.Provider{env.p}, Timeout: 5 * time.Second,
		Now: env.clock.Now, Concurrency: 4, VendorConcurrency: 4})
	t.Cleanup(eng.Close)

	env.clock.Set(t0.Add(55 * time.Minute))
	m := scrapeMetrics(t, eng)
	// Renewal works, so the connection does not expire without a person.
	if got, ok := m[`saas_connection_expiry_timestamp_seconds{connection="oauth",vendor="segment"}`]; ok {
		t.Errorf("expiry metric %v while renewal works", got)
	}
	for _, conn := range []string{"oauth", "euro"} {
		if m[`saas_connection_state{connection="`+conn+`",state="active",vendor="segment"}`] != 1 || m[`saas_scrape_success{connection="`+conn+`",vendor="segment"}`] != 1 {
			t.Errorf("%s not active and successful: %v", conn, m)
		}
	}
	if m[`saas_segment_mtu{connection="euro",kind="identified",period="this_month"}`] != 12003 || m[`saas_segment_sources{connection="oauth"}`] != 7 {
		t.Error("usage missing")
	}
	if _, ok := m[`saas_connection_expiry_timestamp_seconds{connection="euro",vendor="segment"}`]; ok {
		t.Error("a token that never expires has an expiry metric")
	}
	stored, err := st.Get(context.Background(), "o1")
	if err != nil {
		t.Fatal(err)
	}
	if !stored.Expiry.IsZero() || stored.Secret["access_token"] == oc.Secret["access_token"] || stored.Secret["private_key"] == "" {
		t.Errorf("stored credential not renewed: expiry %s", stored.Expiry)
	}

	env.sim.SetFault("segment", vendorsim.Fault{RateLimit: true, RetryAfter: 2 * time.Minute})
	env.clock.Set(t0.Add(60 * time.Minute))
	m = scrapeMetrics(t, eng)
	if m[`saas_connection_state{connection="euro",state="rate_limited",vendor="segment"}`] != 1 {
		t.Errorf("not rate limited: %v", m)
	}
	calls := env.sim.Calls("segment")
	env.clock.Set(t0.Add(61 * time.Minute))
	scrapeMetrics(t, eng)
	if n := env.sim.Calls("segment"); n != calls {
		t.Errorf("%d calls before the reset", n-calls)
	}
	env.sim.ClearFaults()
	env.clock.Set(t0.Add(62*time.Minute + time.Second))
	m = scrapeMetrics(t, eng)
	if env.sim.Calls("segment") == calls || m[`saas_connection_state{connection="euro",state="active",vendor="segment"}`] != 1 {
		t.Errorf("not collected again after the reset: %v", m)
	}
}

// A failing renewal makes the access token's expiry the connection's:
// the expiry alert sees it coming, in the same scrape.
func TestThroughEngineRenewalFailing(t *testing.T) {
	env := newEnv(t, 1000)
	env.sim.SetSegmentTokenLifetime(time.Hour)
	oc := env.connect(t) // token expires t0+1h
	st := store.NewMemory()
	if err := st.Put(context.Background(), store.Connection{ID: "o1", Vendor: vendor, Name: "oauth", AuthMethod: oc.AuthMethod,
		Account: oc.Account, AccountID: oc.AccountID, Settings: oc.Settings, Secret: oc.Secret, Created: t0,
		Status: store.Status{State: store.StateActive}}); err != nil {
		t.Fatal(err)
	}
	eng := collector.New(collector.Options{Store: st, Providers: []provider.Provider{env.p}, Timeout: 5 * time.Second,
		Now: env.clock.Now, Concurrency: 4, VendorConcurrency: 4})
	t.Cleanup(eng.Close)
	env.sim.SetSegmentOAuthRefuse(true)
	env.clock.Set(t0.Add(55 * time.Minute))
	m := scrapeMetrics(t, eng)
	if got := m[`saas_connection_expiry_timestamp_seconds{connection="oauth",vendor="segment"}`]; got != float64(t0.Add(time.Hour).Unix()) {
		t.Errorf("expiry metric %v, want the token's expiry %v", got, t0.Add(time.Hour).Unix())
	}
	if m[`saas_connection_state{connection="oauth",state="active",vendor="segment"}`] != 1 {
		t.Errorf("still usable: %v", m)
	}
	// Renewal works again: the expiry goes away.
	env.sim.SetSegmentOAuthRefuse(false)
	env.clock.Set(t0.Add(56 * time.Minute))
	m = scrapeMetrics(t, eng)
	if got, ok := m[`saas_connection_expiry_timestamp_seconds{connection="oauth",vendor="segment"}`]; ok {
		t.Errorf("expiry metric %v after a successful renewal", got)
	}
}

// Through the engine, the previous period is fetched at most every 4
// hours and its series stay in between; a new period starts afresh.
func TestLastMonthThroughEngine(t *testing.T) {
	env := newEnv(t, 1000)
	st := store.NewMemory()
	if err := st.Put(context.Background(), store.Connection{ID: "t1", Vendor: vendor, Name: "acme", AuthMethod: MethodToken,
		Account: "Acme", AccountID: "AcmeVendorsimWs0000001", Settings: map[string]string{settingRegion: "us"},
		Secret: map[string]string{secretToken: vendorsim.SegmentTokenAcme}, Created: t0, Status: store.Status{State: store.StateActive}}); err != nil {
		t.Fatal(err)
	}
	eng := collector.New(collector.Options{Store: st, Providers: []provider.Provider{env.p}, Timeout: 5 * time.Second,
		Now: env.clock.Now, Concurrency: 4, VendorConcurrency: 4})
	t.Cleanup(eng.Close)
	mtuCalls := func() int64 { return env.sim.CallCounts().Routes["GET /segment/us/usage/mtu/daily"] }
	const last = `saas_segment_mtu{connection="acme",kind="identified",period="last_month"}`

	env.clock.Set(t0)
	m := scrapeMetrics(t, eng)
	if m[last] != 41000*28+2 || mtuCalls() != 3 { // find the period, this month, last month
		t.Fatalf("first scrape: last month %v, %d MTU calls", m[last], mtuCalls())
	}
	for i, at := range []time.Duration{time.Minute, time.Hour, 3*time.Hour + 59*time.Minute} {
		env.clock.Set(t0.Add(at))
		before := mtuCalls()
		m = scrapeMetrics(t, eng)
		if n := mtuCalls() - before; n != 1 || m[last] != 41000*28+2 {
			t.Errorf("scrape %d at +%s: %d MTU calls (want this month only), last month %v (want it kept)", i, at, n, m[last])
		}
	}
	env.clock.Set(t0.Add(4 * time.Hour))
	before := mtuCalls()
	scrapeMetrics(t, eng)
	if n := mtuCalls() - before; n != 2 {
		t.Errorf("after 4 h: %d MTU calls, want 2 (last month is due)", n)
	}
	// April 2: last month is March (31 days, month 3).
	env.clock.Set(time.Date(2026, 4, 2, 1, 0, 0, 0, time.UTC))
	m = scrapeMetrics(t, eng)
	if m[last] != 41000*31+3 {
		t.Errorf("new period: last month %v, want March's final %d", m[last], 41000*31+3)
	}
}
