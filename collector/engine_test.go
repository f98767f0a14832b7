package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/store/storetest"
)

// fakeVendor answers /usage with a status chosen per connection.
type fakeVendor struct {
	srv    *httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	status map[string]int         // by key; default 200
	header map[string]http.Header // extra headers by key
	block  chan struct{}          // if set, /usage waits for it (or the client)
}

func newFakeVendor(t *testing.T) *fakeVendor {
	v := &fakeVendor{status: map[string]int{}, header: map[string]http.Header{}}
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.calls.Add(1)
		key := r.Header.Get("Authorization")
		v.mu.Lock()
		st, ok := v.status[key]
		h := v.header[key]
		block := v.block
		v.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		for k, vs := range h {
			w.Header()[k] = vs
		}
		if !ok {
			st = 200
		}
		w.WriteHeader(st)
		if st != 200 {
			fmt.Fprint(w, `{"error": "refused"}`)
			return
		}
		fmt.Fprint(w, `{"used": 42}`)
	}))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *fakeVendor) set(key string, status int, h http.Header) {
	v.mu.Lock()
	v.status[key] = status
	v.header[key] = h
	v.mu.Unlock()
}

var descUsed = provider.NewDesc("fake_used", "Units used.")

// fakeProvider calls the fake vendor once per collection.
type fakeProvider struct {
	url   string
	panic bool
}

func (p *fakeProvider) Vendor() string             { return "fake" }
func (p *fakeProvider) Title() string              { return "Fake" }
func (p *fakeProvider) Methods() []provider.Method { return nil }
func (p *fakeProvider) Collect(ctx context.Context, s *provider.Scrape) error {
	if p.panic {
		panic("boom")
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", p.url+"/usage", nil)
	req.Header.Set("Authorization", s.Conn.Secret["key"])
	var out struct{ Used float64 }
	if err := provider.DoJSON(s.HTTP, req, "fake", func(b []byte) (string, string) {
		if !strings.Contains(string(b), "error") {
			return "", ""
		}
		return "", "echo " + s.Conn.Secret["key"] // a vendor echoing the key: must be redacted
	}, &out); err != nil {
		return err
	}
	s.Gauge(descUsed, out.Used)
	s.MissingScopes([]string{"billing.read"})
	return nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T, names ...string) (*Engine, *fakeVendor, *store.Memory, *clock) {
	t.Helper()
	v := newFakeVendor(t)
	st := store.NewMemory()
	for i, n := range names {
		err := st.Put(context.Background(), store.Connection{
			ID: fmt.Sprintf("id%d", i), Vendor: "fake", Name: n, Account: "acct-" + n, AuthMethod: "api_key",
			Secret: map[string]string{"key": "secret-" + n}, Created: t0.Add(-time.Hour),
			Status: store.Status{State: store.StateActive},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	clk := &clock{t: t0}
	e := New(Options{Store: st, Providers: []provider.Provider{&fakeProvider{url: v.srv.URL}}, Timeout: 2 * time.Second,
		MinInterval: 30 * time.Second, Concurrency: 4, VendorConcurrency: 2, Now: clk.now})
	t.Cleanup(e.Close)
	return e, v, st, clk
}

func scrapeOf(e *Engine, keep func(store.Connection) bool) prometheus.Gatherer {
	return textGatherer{e: e, ctx: context.Background(), keep: keep}
}

func TestExposition(t *testing.T) {
	e, _, _, _ := setup(t, "prod")
	want := `
# HELP saas_connection_created_timestamp_seconds When the connection was created (Unix time).
# TYPE saas_connection_created_timestamp_seconds gauge
saas_connection_created_timestamp_seconds{connection="prod",vendor="fake"} 1.7735724e+09
# HELP saas_connection_info Stored vendor connection; always 1.
# TYPE saas_connection_info gauge
saas_connection_info{account="acct-prod",auth_method="api_key",connection="prod",vendor="fake"} 1
# HELP saas_connection_last_success_timestamp_seconds Last successful collection of the connection (Unix time).
# TYPE saas_connection_last_success_timestamp_seconds gauge
saas_connection_last_success_timestamp_seconds{connection="prod",vendor="fake"} 1.773576e+09
# HELP saas_connection_scope_missing 1 for each recommended scope the credential lacks; metrics needing it are left out.
# TYPE saas_connection_scope_missing gauge
saas_connection_scope_missing{connection="prod",scope="billing.read",vendor="fake"} 1
# HELP saas_connection_state Connection state: 1 for the current state, 0 for the others.
# TYPE saas_connection_state gauge
saas_connection_state{connection="prod",state="active",vendor="fake"} 1
saas_connection_state{connection="prod",state="error",vendor="fake"} 0
saas_connection_state{connection="prod",state="expired",vendor="fake"} 0
saas_connection_state{connection="prod",state="rate_limited",vendor="fake"} 0
saas_connection_state{connection="prod",state="revoked",vendor="fake"} 0
# HELP saas_connection_up 1 if the vendor accepted the connection's credential on the last attempt, 0 otherwise.
# TYPE saas_connection_up gauge
saas_connection_up{connection="prod",vendor="fake"} 1
# HELP saas_fake_used Units used.
# TYPE saas_fake_used gauge
saas_fake_used{connection="prod"} 42
# HELP saas_scrape_success 1 if every vendor call of the connection's last collection succeeded. Results are reused for scrape.min_interval and shared by concurrent scrapes.
# TYPE saas_scrape_success gauge
saas_scrape_success{connection="prod",vendor="fake"} 1
# HELP saas_usage_collected_timestamp_seconds When the exposed usage values were fetched from the vendor (Unix time); cache age is time() minus this.
# TYPE saas_usage_collected_timestamp_seconds gauge
saas_usage_collected_timestamp_seconds{connection="prod",vendor="fake"} 1.773576e+09
`
	// scrape_duration varies; compare everything else.
	names := []string{"saas_connection_created_timestamp_seconds", "saas_connection_info", "saas_connection_last_success_timestamp_seconds",
		"saas_connection_scope_missing", "saas_connection_state", "saas_connection_up", "saas_fake_used", "saas_scrape_success", "saas_usage_collected_timestamp_seconds"}
	if err := testutil.GatherAndCompare(scrapeOf(e, nil), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(scrapeOf(e, nil), "saas_scrape_duration_seconds"); n != 1 {
		t.Errorf("saas_scrape_duration_seconds: %d series", n)
	}
	if problems, err := testutil.GatherAndLint(scrapeOf(e, nil)); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestReuseWithinMinInterval(t *testing.T) {
	e, v, _, clk := setup(t, "a", "b")
	testutil.GatherAndCount(scrapeOf(e, nil))
	testutil.GatherAndCount(scrapeOf(e, nil))
	if got := v.calls.Load(); got != 2 {
		t.Fatalf("two scrapes inside min_interval: %d vendor calls, want 2 (one per connection)", got)
	}
	clk.add(31 * time.Second)
	testutil.GatherAndCount(scrapeOf(e, nil))
	if got := v.calls.Load(); got != 4 {
		t.Fatalf("after min_interval: %d vendor calls, want 4", got)
	}
}

func TestConcurrentScrapesShareOneCall(t *testing.T) {
	e, v, _, _ := setup(t, "a")
	v.block = make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); testutil.GatherAndCount(scrapeOf(e, nil)) }()
	}
	// Let every scraper reach the shared flight before the vendor answers.
	for deadline := time.Now().Add(5 * time.Second); v.calls.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(v.block)
	wg.Wait()
	if got := v.calls.Load(); got != 1 {
		t.Fatalf("5 concurrent scrapes: %d vendor calls, want 1", got)
	}
}

func TestSlowConnectionDoesNotBlockOthers(t *testing.T) {
	e, v, _, _ := setup(t, "fast", "slow")
	slow := make(chan struct{})
	defer close(slow)
	// Only "slow" blocks: a second fake vendor would do, but a per-key block is simpler.
	v.mu.Lock()
	v.block = nil
	v.mu.Unlock()
	slowSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-slow:
		case <-r.Context().Done():
		}
	}))
	defer slowSrv.Close()
	e.providers["slowfake"] = &fakeProvider{url: slowSrv.URL}
	c, _ := e.o.Store.Get(context.Background(), "id1")
	c.Vendor = "slowfake"
	if err := e.o.Store.Put(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	got := gather(t, textGatherer{e: e, ctx: ctx})
	if got[`saas_scrape_success{connection="fast",vendor="fake"}`] != 1 {
		t.Errorf("fast connection: %v", got)
	}
	if got[`saas_scrape_success{connection="slow",vendor="slowfake"}`] != 0 {
		t.Errorf("slow connection should have failed: %v", got)
	}
	if got[`saas_connection_state{connection="slow",state="error",vendor="slowfake"}`] != 1 {
		t.Errorf("slow connection state: %v", got)
	}
}

func TestRevokedKeepsSeries(t *testing.T) {
	e, v, st, clk := setup(t, "prod")
	testutil.GatherAndCount(scrapeOf(e, nil))
	v.set("secret-prod", 401, nil)
	clk.add(time.Minute)
	got := gather(t, scrapeOf(e, nil))
	if got[`saas_connection_state{connection="prod",state="revoked",vendor="fake"}`] != 1 || got[`saas_connection_up{connection="prod",vendor="fake"}`] != 0 {
		t.Fatalf("after 401: %v", got)
	}
	if _, ok := got[`saas_fake_used{connection="prod"}`]; !ok {
		t.Error("last known usage vanished")
	}
	e.Close() // flush status
	c, _ := st.Get(context.Background(), "id0")
	if c.State != store.StateRevoked {
		t.Errorf("stored state %q", c.State)
	}
	if strings.Contains(c.LastError, "secret-prod") {
		t.Errorf("secret in stored error: %q", c.LastError)
	}
	// Revoked: no more vendor calls, series still there.
	calls := v.calls.Load()
	clk.add(time.Hour)
	got = gather(t, scrapeOf(e, nil))
	if v.calls.Load() != calls {
		t.Error("called the vendor for a revoked connection")
	}
	if got[`saas_connection_state{connection="prod",state="revoked",vendor="fake"}`] != 1 {
		t.Errorf("revoked series gone: %v", got)
	}
}

func TestRateLimitHonoured(t *testing.T) {
	e, v, _, clk := setup(t, "prod")
	v.set("secret-prod", 429, http.Header{"Retry-After": {"120"}})
	got := gather(t, scrapeOf(e, nil))
	if got[`saas_connection_state{connection="prod",state="rate_limited",vendor="fake"}`] != 1 {
		t.Fatalf("after 429: %v", got)
	}
	v.set("secret-prod", 200, http.Header{"X-RateLimit-Remaining": {"17"}})
	clk.add(90 * time.Second) // past min_interval, before the reset
	gather(t, scrapeOf(e, nil))
	if n := v.calls.Load(); n != 1 {
		t.Fatalf("called before the reset: %d calls", n)
	}
	clk.add(31 * time.Second)
	got = gather(t, scrapeOf(e, nil))
	if n := v.calls.Load(); n != 2 {
		t.Fatalf("after the reset: %d calls, want 2", n)
	}
	if got[`saas_connection_state{connection="prod",state="active",vendor="fake"}`] != 1 || got[`saas_vendor_rate_limit_remaining{connection="prod",vendor="fake"}`] != 17 {
		t.Errorf("after reset: %v", got)
	}
}

func TestPanicIsAnError(t *testing.T) {
	e, _, _, _ := setup(t, "prod")
	e.providers["fake"] = &fakeProvider{panic: true}
	got := gather(t, scrapeOf(e, nil))
	if got[`saas_connection_state{connection="prod",state="error",vendor="fake"}`] != 1 {
		t.Errorf("panic: %v", got)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for in, want := range map[string]time.Time{
		"30":                            now.Add(30 * time.Second),
		"1700000100":                    time.Unix(1_700_000_100, 0),
		"Tue, 14 Nov 2023 22:15:00 GMT": time.Date(2023, 11, 14, 22, 15, 0, 0, time.UTC),
	} {
		got, ok := parseWhen(in, now)
		if !ok || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v %v, want %v", in, got, ok, want)
		}
	}
	if _, ok := parseWhen("soon", now); ok {
		t.Error("garbage accepted")
	}
}

func TestDeadlineFromHeader(t *testing.T) {
	e := New(Options{Store: store.NewMemory(), Timeout: 8 * time.Second})
	defer e.Close()
	r := httptest.NewRequest("GET", "/metrics", nil)
	if d := e.Deadline(r); d != 8*time.Second {
		t.Errorf("no header: %v", d)
	}
	r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "5")
	if d := e.Deadline(r); d != 4500*time.Millisecond {
		t.Errorf("5s header: %v", d)
	}
	r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "1.6")
	if d := e.Deadline(r); d != 1100*time.Millisecond {
		t.Errorf("1.6s header: %v", d)
	}
	// Below the floor (1s): read as 1s, half of it kept as the margin.
	for _, v := range []string{"0.6", "0.000001"} {
		r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", v)
		if d := e.Deadline(r); d != 500*time.Millisecond {
			t.Errorf("%ss header: %v", v, d)
		}
	}
	r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", "junk")
	if d := e.Deadline(r); d != 8*time.Second {
		t.Errorf("junk header: %v", d)
	}
}

// textGatherer gathers by parsing what the engine writes, so the tests
// read the very exposition Prometheus reads.
type textGatherer struct {
	e        *Engine
	ctx      context.Context
	keep     func(store.Connection) bool
	counters bool
}

func (g textGatherer) Gather() ([]*dto.MetricFamily, error) {
	var buf bytes.Buffer
	if err := g.e.expose(g.ctx, &buf, g.keep, g.counters); err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(&buf)
	if err != nil {
		return nil, fmt.Errorf("the exposition does not parse: %w\n%s", err, buf.String())
	}
	out := make([]*dto.MetricFamily, 0, len(fams))
	for _, mf := range fams {
		// Series order inside a family is free in the format; compare sorted.
		slices.SortFunc(mf.Metric, func(a, b *dto.Metric) int { return strings.Compare(a.String(), b.String()) })
		out = append(out, mf)
	}
	slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out, nil
}

// gather gathers g and returns "name{labels}" → value.
func gather(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
			out[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = v
		}
	}
	return out
}

// renewingProvider renews its token through Scrape.Renew on every collection.
type renewingProvider struct{ renewals atomic.Int64 }

func (p *renewingProvider) Vendor() string             { return "fake" }
func (p *renewingProvider) Title() string              { return "Fake" }
func (p *renewingProvider) Methods() []provider.Method { return nil }
func (p *renewingProvider) Collect(ctx context.Context, s *provider.Scrape) error {
	c, err := s.Renew(ctx, func(cur provider.Connection) (*provider.Credential, error) {
		if cur.Secret["token"] == "fresh" {
			return nil, nil // another replica renewed it already
		}
		p.renewals.Add(1)
		return &provider.Credential{Secret: map[string]string{"token": "fresh"}, Expiry: s.Now.Add(time.Hour)}, nil
	})
	if err != nil {
		return err
	}
	if c.Secret["token"] != "fresh" {
		return fmt.Errorf("renewed token not returned: %q", c.Secret["token"])
	}
	return nil
}

func TestRenewSavesBeforeUse(t *testing.T) {
	e, _, st, clk := setup(t, "prod")
	p := &renewingProvider{}
	e.providers["fake"] = p
	got := gather(t, scrapeOf(e, nil))
	if got[`saas_scrape_success{connection="prod",vendor="fake"}`] != 1 {
		t.Fatalf("scrape: %v", got)
	}
	// The scrape that renewed exports the new expiry already.
	if v := got[`saas_connection_expiry_timestamp_seconds{connection="prod",vendor="fake"}`]; v != float64(t0.Add(time.Hour).Unix()) {
		t.Errorf("expiry metric in the renewing scrape: %v", v)
	}
	c, _ := st.Get(context.Background(), "id0")
	if c.Secret["token"] != "fresh" || !c.Expiry.Equal(t0.Add(time.Hour)) || c.Name != "prod" {
		t.Errorf("stored after renewal: %+v", c)
	}
	clk.add(time.Minute)
	gather(t, scrapeOf(e, nil))
	if n := p.renewals.Load(); n != 1 {
		t.Errorf("renewed %d times; the stored fresh token should have been reused", n)
	}
	// The next scrape exports the new expiry.
	if got := gather(t, scrapeOf(e, nil)); got[`saas_connection_expiry_timestamp_seconds{connection="prod",vendor="fake"}`] != float64(t0.Add(time.Hour).Unix()) {
		t.Errorf("expiry metric: %v", got[`saas_connection_expiry_timestamp_seconds{connection="prod",vendor="fake"}`])
	}
}

// A 503 is retried when the deadline leaves room, and the scrape succeeds.
func TestRetryWithinDeadline(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(503)
			return
		}
		fmt.Fprint(w, `{"used": 1}`)
	}))
	defer srv.Close()
	e, _, _, _ := setup(t, "prod")
	e.providers["fake"] = &fakeProvider{url: srv.URL}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := gather(t, textGatherer{e: e, ctx: ctx})
	if got[`saas_scrape_success{connection="prod",vendor="fake"}`] != 1 || n.Load() != 2 {
		t.Fatalf("retry: %d calls, %v", n.Load(), got[`saas_scrape_success{connection="prod",vendor="fake"}`])
	}
	if c := e.counts.snapshot(); c[[2]string{"fake", "503"}] != 1 || c[[2]string{"fake", "200"}] != 1 {
		t.Errorf("request counts: %v", c)
	}
}

// No retry when the deadline has no room for one.
func TestNoRetryPastDeadline(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(503)
	}))
	defer srv.Close()
	e, _, _, _ := setup(t, "prod")
	e.providers["fake"] = &fakeProvider{url: srv.URL}
	// The collection's own deadline (scrape.timeout) bounds retries.
	e.o.Timeout = 40 * time.Millisecond
	gather(t, textGatherer{e: e, ctx: context.Background()})
	if n.Load() != 1 {
		t.Errorf("%d calls with a 40ms deadline; a 50-150ms backoff does not fit", n.Load())
	}
}

// Label values are escaped as the text format requires.
func TestExpositionEscapesLabels(t *testing.T) {
	e, _, st, _ := setup(t, "prod")
	c, _ := st.Get(context.Background(), "id0")
	c.Account = "Acme \"EU\" \\ Ops\nteam"
	if err := st.Put(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	got := gather(t, scrapeOf(e, nil))
	if got[`saas_connection_info{account="Acme \"EU\" \\ Ops\nteam",auth_method="api_key",connection="prod",vendor="fake"}`] != 1 {
		t.Errorf("info series: %v", got)
	}
}

// Many connections in one scrape: every one is reported (regression: the
// snapshot slice once grew while collections were writing into it).
func TestManyConnections(t *testing.T) {
	names := make([]string, 60)
	for i := range names {
		names[i] = fmt.Sprintf("c%02d", i)
	}
	e, _, _, _ := setup(t, names...)
	gather(t, scrapeOf(e, nil))
	// The warm scrape answers from memory, while the loop still starts
	// goroutines: that is when the old bug lost snapshots.
	got := gather(t, scrapeOf(e, nil))
	for _, n := range names {
		if got[`saas_scrape_success{connection="`+n+`",vendor="fake"}`] != 1 {
			t.Errorf("%s: not reported as successful", n)
		}
	}
}

// /sd polls answer from the list the scrapes use: polls within the list's
// freshness (and a scrape with them) list the store once.
func TestSDReusesTheList(t *testing.T) {
	_, v, st, clk := setup(t, "prod", "dev")
	counter := &storetest.ListCounter{Store: st}
	e := New(Options{Store: counter, Providers: []provider.Provider{&fakeProvider{url: v.srv.URL}}, Timeout: 2 * time.Second,
		MinInterval: 30 * time.Second, Now: clk.now})
	t.Cleanup(e.Close)
	for i := 0; i < 3; i++ {
		rec := httptest.NewRecorder()
		e.SDHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/sd", nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"connection":"dev"`) {
			t.Fatalf("/sd: %d %s", rec.Code, rec.Body)
		}
	}
	gather(t, scrapeOf(e, nil))
	if n := counter.Lists(); n != 1 {
		t.Errorf("three /sd polls and a scrape listed the store %d times, want 1", n)
	}
}

// setupLocks is an engine over one connection ("prod", renewing on every
// collection) whose store's locks fail as unavailableLocks says.
func setupLocks(t *testing.T) (*Engine, *unavailableLocks, *store.Memory, *clock) {
	_, _, st, clk := setup(t, "prod")
	locks := &unavailableLocks{Store: st}
	e := New(Options{Store: locks, Providers: []provider.Provider{&renewingProvider{}}, Timeout: 2 * time.Second,
		MinInterval: 30 * time.Second, Now: clk.now})
	t.Cleanup(e.Close)
	return e, locks, st, clk
}

// unavailableLocks fails UpdateLocked as a frozen database does, while fail is set.
type unavailableLocks struct {
	store.Store
	fail   atomic.Bool
	locked atomic.Bool // the row is held by another replica
}

func (u *unavailableLocks) UpdateLocked(ctx context.Context, id string, fn func(store.Connection) (*store.Connection, error)) error {
	if u.locked.Load() {
		return fmt.Errorf("store: locking connection: locked by another replica: %w", errors.Join(store.ErrUnavailable, store.ErrLocked))
	}
	if u.fail.Load() {
		return fmt.Errorf("store: locking connection: no answer within 3s: %w", store.ErrUnavailable)
	}
	return u.Store.UpdateLocked(ctx, id, fn)
}

// A collection that needs the store (a renewal) while it is unavailable is
// not the vendor's fault: the connection keeps its last verdict, the
// scrape says saas_exporter_store_up 0, and the next scrape tries again.
func TestStoreFailureIsNotAVendorFailure(t *testing.T) {
	e, locks, st, clk := setupLocks(t)
	scrape := func() map[string]float64 {
		clk.add(time.Minute)
		return gather(t, textGatherer{e: e, ctx: context.Background(), counters: true})
	}
	if got := scrape(); got[`saas_scrape_success{connection="prod",vendor="fake"}`] != 1 || got["saas_exporter_store_up{}"] != 1 {
		t.Fatalf("first scrape: %v", got)
	}
	locks.fail.Store(true)
	for i := 0; i < 2; i++ {
		got := scrape()
		for series, want := range map[string]float64{
			"saas_exporter_store_up{}":                                              0,
			`saas_scrape_success{connection="prod",vendor="fake"}`:                  1,
			`saas_connection_up{connection="prod",vendor="fake"}`:                   1,
			`saas_connection_state{connection="prod",state="active",vendor="fake"}`: 1,
			`saas_connection_state{connection="prod",state="error",vendor="fake"}`:  0,
		} {
			if got[series] != want {
				t.Errorf("scrape %d with the store failing: %s = %v, want %v", i+1, series, got[series], want)
			}
		}
	}
	locks.fail.Store(false)
	if got := scrape(); got["saas_exporter_store_up{}"] != 1 {
		t.Errorf("store back: store_up %v", got["saas_exporter_store_up{}"])
	}
	e.Close()
	if c, _ := st.Get(context.Background(), "id0"); c.State != store.StateActive || c.LastError != "" {
		t.Errorf("stored status after the store failures: %+v", c.Status)
	}
}

// A connection whose row another replica holds (its refresh) keeps its
// verdict, and the store is not reported down for it.
func TestLockedElsewhereIsNoFault(t *testing.T) {
	e, locks, _, clk := setupLocks(t)
	gather(t, textGatherer{e: e, ctx: context.Background(), counters: true})
	locks.locked.Store(true)
	clk.add(time.Minute)
	got := gather(t, textGatherer{e: e, ctx: context.Background(), counters: true})
	for series, want := range map[string]float64{
		"saas_exporter_store_up{}":                                              1,
		`saas_connection_up{connection="prod",vendor="fake"}`:                   1,
		`saas_connection_state{connection="prod",state="active",vendor="fake"}`: 1,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
}

// Issue #12 item 1: a caller's short deadline (anyone can send
// X-Prometheus-Scrape-Timeout-Seconds) shows only in its own answer; the
// collection runs on, and what is cached and stored is its real outcome.
func TestCallerDeadlineIsNotTheConnectionsFailure(t *testing.T) {
	e, v, st, _ := setup(t, "prod")
	v.mu.Lock()
	v.block = make(chan struct{})
	v.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	got := gather(t, textGatherer{e: e, ctx: ctx})
	if got[`saas_scrape_success{connection="prod",vendor="fake"}`] != 0 {
		t.Errorf("the cut answer claims success: %v", got)
	}
	close(v.block)
	// The next scrape, within min_interval, gets the collection's result.
	got = gather(t, scrapeOf(e, nil))
	if got[`saas_scrape_success{connection="prod",vendor="fake"}`] != 1 || got[`saas_connection_up{connection="prod",vendor="fake"}`] != 1 ||
		got[`saas_connection_state{connection="prod",state="active",vendor="fake"}`] != 1 {
		t.Errorf("after a cut scrape: %v", got)
	}
	if n := v.calls.Load(); n != 1 {
		t.Errorf("%d vendor calls, want 1 (the cut scrape's collection, finished)", n)
	}
	e.Close()
	c, _ := st.Get(context.Background(), "id0")
	if c.State != store.StateActive || c.LastError != "" {
		t.Errorf("stored %q %q", c.State, c.LastError)
	}
}

// A collection that never started (every scrape.concurrency slot busy for
// all of scrape.timeout) is neither cached nor stored: nothing was learnt.
func TestNotStartedIsNotAFailure(t *testing.T) {
	e, v, st, _ := setup(t, "prod")
	// The collection's own deadline ends well before the scrape's, so
	// the slots are freed only after it gave up.
	e.o.Timeout = 10 * time.Millisecond
	for range cap(e.pool) {
		e.pool <- struct{}{} // every slot busy
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	gather(t, textGatherer{e: e, ctx: ctx})
	if n := v.calls.Load(); n != 0 {
		t.Fatalf("%d vendor calls with no free slot", n)
	}
	for range cap(e.pool) {
		<-e.pool
	}
	e.o.Timeout = 2 * time.Second
	got := gather(t, scrapeOf(e, nil))
	if got[`saas_scrape_success{connection="prod",vendor="fake"}`] != 1 || v.calls.Load() != 1 {
		t.Errorf("once a slot is free: %d calls, %v", v.calls.Load(), got)
	}
	e.Close()
	c, _ := st.Get(context.Background(), "id0")
	if c.State != store.StateActive || c.LastError != "" {
		t.Errorf("stored %q %q", c.State, c.LastError)
	}
}

// A vendor's rate-limit header far in the future (a millisecond timestamp,
// a reset decades away) parks the connection for maxRateLimitWait at most.
func TestRateLimitWaitIsCapped(t *testing.T) {
	for _, h := range []http.Header{
		{"X-Ratelimit-Reset": {"999999999"}},
		{"Retry-After": {fmt.Sprint(t0.Add(24 * time.Hour).UnixMilli())}},
		{"Retry-After": {"Fri, 01 Jan 2100 00:00:00 GMT"}},
	} {
		e, v, _, clk := setup(t, "prod")
		v.set("secret-prod", 429, h)
		gather(t, scrapeOf(e, nil))
		v.set("secret-prod", 200, nil)
		clk.add(maxRateLimitWait + time.Second)
		got := gather(t, scrapeOf(e, nil))
		if n := v.calls.Load(); n != 2 || got[`saas_connection_state{connection="prod",state="active",vendor="fake"}`] != 1 {
			t.Errorf("%v: %d calls after %s, want 2 and active: %v", h, n, maxRateLimitWait+time.Second, got)
		}
	}
}

func TestParseWhenMilliseconds(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	if got, ok := parseWhen("1700000100000", now); !ok || !got.Equal(time.Unix(1_700_000_100, 0)) {
		t.Errorf("millisecond timestamp: %v %v", got, ok)
	}
}

// The scrape whose collection runs past its deadline describes that
// attempt: up 0 with state error, and the time it waited, not the last
// attempt's up and duration.
func TestTimedOutScrapeDescribesOneAttempt(t *testing.T) {
	e, v, _, _ := setup(t, "prod")
	e.o.Now = time.Now  // durations must pass
	e.o.MinInterval = 0 // every scrape collects
	if got := gather(t, scrapeOf(e, nil)); got[`saas_connection_up{connection="prod",vendor="fake"}`] != 1 {
		t.Fatalf("first scrape: %v", got)
	}
	block := make(chan struct{})
	defer close(block)
	v.mu.Lock()
	v.block = block
	v.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	got := gather(t, textGatherer{e: e, ctx: ctx})
	up := got[`saas_connection_up{connection="prod",vendor="fake"}`]
	state := got[`saas_connection_state{connection="prod",state="error",vendor="fake"}`]
	dur := got[`saas_scrape_duration_seconds{connection="prod",vendor="fake"}`]
	if up != 0 || state != 1 || dur < 0.1 {
		t.Errorf("scrape cut by its deadline: up %v, state error %v, duration %vs; want 0, 1, the time it waited", up, state, dur)
	}
}

// A vendor echoing part of a secret (8 characters or more from its start
// or its end) in an error does not carry it into last_error or a log line.
func TestRedactEchoedParts(t *testing.T) {
	key := "SG.abcdefgh12345678ZYXWVUTS"
	secret := map[string]string{"api_key": key}
	for in, want := range map[string]string{
		"bad key " + key + " here":            "bad key [redacted] here",
		"key SG.abcdefgh… is not valid":       "key [redacted]… is not valid",
		"key ending in 678ZYXWVUTS refused":   "key ending in [redacted] refused",
		"key ***ZYXWVUTS and SG.abcdefgh1***": "key ***[redacted] and [redacted]***",
		"short SG.abc and VUTS stay":          "short SG.abc and VUTS stay",
		"unrelated 12345678 text":             "unrelated 12345678 text",
	} {
		if got := redact(in, secret); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// A vendor's 60 KB account name does not become a 60 KB label value.
func TestAccountLabelIsBounded(t *testing.T) {
	e, _, st, _ := setup(t, "prod")
	c, _ := st.Get(context.Background(), "id0")
	c.Account = strings.Repeat("a", 60_000)
	if err := st.Put(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	for k := range gather(t, scrapeOf(e, nil)) {
		if len(k) > 1000 {
			t.Errorf("series of %d bytes: %.80s…", len(k), k)
		}
	}
}

// TestTransportReadsLongHeaders: the shared transport's small socket
// buffers (2 KiB for reading) still read an answer whose header lines are
// longer than that, whole.
func TestTransportReadsLongHeaders(t *testing.T) {
	long := strings.Repeat("x", 6<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Long", long)
		w.Header().Set("Link", "<"+long+">; rel=next")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	c := &http.Client{Transport: NewTransport()}
	for range 3 { // a new socket, then a kept-alive one
		resp, err := c.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Header.Get("X-Long") != long || resp.Header.Get("Link") != "<"+long+">; rel=next" || string(body) != `{"ok":true}` {
			t.Fatalf("headers of %d and %d bytes, body %q", len(resp.Header.Get("X-Long")), len(resp.Header.Get("Link")), body)
		}
	}
}
