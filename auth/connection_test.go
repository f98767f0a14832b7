package auth

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saas-exporter/saas_exporter/auth/api"
	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// summaryKeyProvider is keyco with a summary: its used units against a limit.
type summaryKeyProvider struct{ keyProvider }

func (summaryKeyProvider) Summary(_ provider.Connection, latest provider.Samples) []provider.SummaryItem {
	var out []provider.SummaryItem
	if v, ok := latest.Get("saas_keyco_used"); ok {
		out = append(out, provider.SummaryItem{Group: "Usage", Label: "Units used", Value: v, Unit: "units", Limit: 100, Note: "of the plan"})
	}
	if v, ok := latest.Get("saas_keyco_spend"); ok {
		out = append(out, provider.SummaryItem{Group: "Usage", Label: "Spend", Value: v, Unit: "USD"})
	}
	return out
}

var (
	descKeycoUsed  = provider.NewDesc("keyco_used", "Units used.")
	descKeycoSpend = provider.NewDesc("keyco_spend", "Spend.")
)

// fakeCollections stands in for the engine: a fixed detail per id, and
// CollectNow answering err (nil: a success recorded in the history).
type fakeCollections struct {
	st *store.Memory
	at time.Time

	mu      sync.Mutex
	details map[string]collector.Detail
	err     error
	calls   []string
}

func (f *fakeCollections) CollectNow(ctx context.Context, id string) (collector.Attempt, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, id)
	if _, err := f.st.Get(ctx, id); err != nil {
		return collector.Attempt{}, err
	}
	if f.err != nil {
		return collector.Attempt{}, f.err
	}
	a := collector.Attempt{At: f.at, Duration: 1500 * time.Millisecond, Outcome: collector.OutcomeSuccess}
	d := f.details[id]
	d.History = append([]collector.Attempt{a}, d.History...)
	f.details[id] = d
	return a, nil
}

func (f *fakeCollections) Detail(id string) (collector.Detail, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.details[id]
	return d, ok
}

func (f *fakeCollections) Latest(id string) (collector.Latest, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.details[id]
	if !ok || len(d.History) == 0 {
		return collector.Latest{}, false
	}
	l := collector.Latest{At: d.History[0].At, State: d.State, Error: d.History[0].Error}
	for _, a := range d.History {
		if a.Outcome == collector.OutcomeSuccess {
			l.LastSuccess = a.At
			break
		}
	}
	return l, true
}

func (f *fakeCollections) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// newConnEnv connects keyco as "prod" and "other" with a summary-capable
// provider and fake collections holding prod's latest values and attempts.
func newConnEnv(t *testing.T) (*env, *fakeCollections, store.Connection) {
	t.Helper()
	fc := &fakeCollections{details: map[string]collector.Detail{}}
	e := newEnv(t, func(o *Options) {
		o.Providers[0] = summaryKeyProvider{}
		o.Collections = fc
	})
	fc.st = e.st
	fc.at = e.clk.Now()
	c, csrf := e.admin()
	wantStatus(t, e.connectKey(c, csrf, "prod", goodKey), http.StatusSeeOther)
	wantStatus(t, e.connectKey(c, csrf, "other", goodKey2), http.StatusSeeOther)
	prod := e.connByName("prod")
	t0 := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	fc.details[prod.ID] = collector.Detail{
		State:       store.StateActive,
		CollectedAt: t0,
		Latest: []prometheus.Metric{
			prometheus.MustNewConstMetric(descKeycoUsed, prometheus.GaugeValue, 42, "prod"),
			prometheus.MustNewConstMetric(descKeycoSpend, prometheus.GaugeValue, 1234.5, "prod"),
		},
		History: []collector.Attempt{
			{At: t0, Duration: 250 * time.Millisecond, Outcome: collector.OutcomeSuccess},
			{At: t0.Add(-time.Minute), Duration: 2 * time.Second, Outcome: store.StateError, Error: "keyco GET /v3/usage: HTTP 502 <b>bad gateway</b>"},
		},
	}
	return e, fc, prod
}

func TestConnectionPage(t *testing.T) {
	e, _, prod := newConnEnv(t)
	c, _ := e.admin()
	r := e.do(c, "GET", "/connections/"+prod.ID, nil)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r,
		"KeyCo", "KeyCo acct-1", "acct-1", "api_key", "<dt>Region</dt><dd>eu</dd>", "stats.read", "billing.read",
		// Summary: grouped, formatted, with a server-drawn meter (42 of 100 → 84 of 200).
		"<h3>Usage</h3>", "Units used", "42 units", "1,234.50 USD", `<svg class="meter"`, `width="84.0"`, "42% of 100 units", "of the plan",
		// History: newest first, errors escaped.
		"2026-03-15 12:00:00 UTC", "250 ms", "2026-03-15 11:59:00 UTC", "2.00 s", "HTTP 502 &lt;b&gt;bad gateway&lt;/b&gt;",
		// Actions.
		`action="/connections/`+prod.ID+`/collect"`, ">Collect now<", "/connect/keyco?method=api_key&amp;reconnect="+prod.ID, ">Reconnect<",
		`action="/connections/`+prod.ID+`/rename"`, "This starts new series",
	)
	if strings.Index(r.body, "12:00:00 UTC") > strings.Index(r.body, "11:59:00 UTC") {
		t.Error("history is not newest first")
	}
	csp := r.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	// The picture needs neither script nor inline style attributes.
	for _, bad := range []string{"<script", " style=", "javascript:"} {
		if strings.Contains(r.body, bad) {
			t.Errorf("page contains %q", bad)
		}
	}

	// A connection this process has not collected yet: the stored state, and why there are no values.
	other := e.connByName("other")
	r = e.do(c, "GET", "/connections/"+other.ID, nil)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Nothing collected by this exporter process yet", "No collection yet.", ">Reconnect<")

	// The connections list links each connection to its page.
	r = e.do(c, "GET", "/", nil)
	wantBody(t, r, `href="/connections/`+prod.ID+`"`, `href="/connections/`+other.ID+`"`)
}

func TestConnectionUnknownID(t *testing.T) {
	e, fc, _ := newConnEnv(t)
	c, csrf := e.admin()
	const id = "0000000000000000"
	r := e.do(c, "GET", "/connections/"+id, nil)
	wantStatus(t, r, http.StatusNotFound)
	wantBody(t, r, "No such connection")
	wantStatus(t, e.do(c, "POST", "/connections/"+id+"/collect", url.Values{"csrf": {csrf}}), http.StatusNotFound)
	wantStatus(t, e.do(c, "POST", "/connections/"+id+"/rename", url.Values{"csrf": {csrf}, "name": {"x"}}), http.StatusNotFound)
	for _, req := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/connections/" + id, nil},
		{"PATCH", "/api/v1/connections/" + id, map[string]string{"name": "x"}},
		{"POST", "/api/v1/connections/" + id + "/collect", "{}"},
	} {
		r := e.api(req.method, req.path, req.body)
		wantStatus(t, r, http.StatusNotFound)
		wantBody(t, r, "no connection with id "+id)
	}
	_ = fc
}

func TestCollectNowPage(t *testing.T) {
	e, fc, prod := newConnEnv(t)
	c, csrf := e.admin()
	// Without the form's CSRF token: refused, nothing collected.
	wantStatus(t, e.do(c, "POST", "/connections/"+prod.ID+"/collect", url.Values{}), http.StatusForbidden)
	if fc.callCount() != 0 {
		t.Fatal("collected without CSRF")
	}
	r := e.do(c, "POST", "/connections/"+prod.ID+"/collect", url.Values{"csrf": {csrf}})
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/connections/"+prod.ID+"?msg=collected" {
		t.Fatalf("redirect %q", r.location())
	}
	r = e.do(c, "GET", r.location(), nil)
	wantBody(t, r, "Collected just now", "1.50 s")

	until := time.Date(2026, 3, 15, 12, 5, 0, 0, time.UTC)
	fc.mu.Lock()
	fc.err = &collector.NotCollectedError{State: store.StateRateLimited, Until: until}
	d := fc.details[prod.ID]
	d.RateLimitedUntil = until
	fc.details[prod.ID] = d
	fc.mu.Unlock()
	r = e.do(c, "POST", "/connections/"+prod.ID+"/collect", url.Values{"csrf": {csrf}})
	if r.location() != "/connections/"+prod.ID+"?msg=rate_limited" {
		t.Fatalf("redirect %q", r.location())
	}
	r = e.do(c, "GET", r.location(), nil)
	wantBody(t, r, `class="error"`, "Not collected: the vendor asked to wait until 2026-03-15 12:05:00 UTC")

	// The API says the same with 429 and Retry-After.
	r = e.api("POST", "/api/v1/connections/"+prod.ID+"/collect", "{}")
	wantStatus(t, r, http.StatusTooManyRequests)
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	fc.mu.Lock()
	fc.err = &collector.NotCollectedError{State: store.StateRevoked}
	fc.mu.Unlock()
	wantStatus(t, e.api("POST", "/api/v1/connections/"+prod.ID+"/collect", "{}"), http.StatusConflict)
	r = e.do(c, "POST", "/connections/"+prod.ID+"/collect", url.Values{"csrf": {csrf}})
	r = e.do(c, "GET", r.location(), nil)
	wantBody(t, r, "Reconnect it first")
	fc.mu.Lock()
	fc.err = &collector.NotCollectedError{Reason: "another replica holds this connection (a token refresh); try again in a few seconds"}
	fc.mu.Unlock()
	r = e.api("POST", "/api/v1/connections/"+prod.ID+"/collect", "{}")
	wantStatus(t, r, http.StatusServiceUnavailable)
	wantBody(t, r, "another replica holds this connection")
	r = e.do(c, "POST", "/connections/"+prod.ID+"/collect", url.Values{"csrf": {csrf}})
	r = e.do(c, "GET", r.location(), nil)
	wantBody(t, r, "another replica was refreshing")
	fc.mu.Lock()
	fc.err = nil
	fc.mu.Unlock()
	r = e.api("POST", "/api/v1/connections/"+prod.ID+"/collect", "{}")
	wantStatus(t, r, http.StatusOK)
	if got := decode[api.ConnectionDetail](t, r); len(got.History) != 4 || got.History[0].Outcome != "success" {
		t.Errorf("after collect: %+v", got.History)
	}
}

func TestRename(t *testing.T) {
	e, _, prod := newConnEnv(t)
	c, csrf := e.admin()
	before := e.changeCount()

	// Bad input changes nothing.
	for _, tc := range []struct {
		name   string
		status int
		want   string
	}{
		{"other", http.StatusConflict, "The name “other” is already used by another connection"},
		{"bad name!", http.StatusBadRequest, "The connection name must be 1 to 63 characters: letters, digits, '_', '.', '-', starting with a letter or digit."},
		{"", http.StatusBadRequest, "A new name is required"},
	} {
		r := e.do(c, "POST", "/connections/"+prod.ID+"/rename", url.Values{"csrf": {csrf}, "name": {tc.name}})
		wantStatus(t, r, tc.status)
		if !strings.Contains(html.UnescapeString(r.body), tc.want) {
			t.Errorf("%q: page lacks %q", tc.name, tc.want)
		}
		wantBody(t, r, `class="invalid"`, "This starts new series")
		r = e.api("PATCH", "/api/v1/connections/"+prod.ID, map[string]string{"name": tc.name})
		wantStatus(t, r, tc.status)
		if f := decode[api.Error](t, r); f.Field != "name" || !strings.Contains(f.Error, strings.Trim(tc.want, ".")) {
			t.Errorf("%q: API error %+v", tc.name, f)
		}
	}
	for _, tc := range []struct{ body, ctype, want string }{
		{`{"name":"x"}`, "text/plain", "Content-Type: application/json"},
		{`{}`, "application/json", "name is required"},
		{`{"name":5}`, "application/json", `field \"name\" must be a string`},
		{`{"name":"x","vendor":"keyco"}`, "application/json", `unknown field \"vendor\"`},
		{`{"name":`, "application/json", "not valid JSON"},
	} {
		req, _ := http.NewRequest("PATCH", e.srv.URL+"/api/v1/connections/"+prod.ID, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.ctype)
		req.SetBasicAuth(adminUser, adminPass)
		r := e.send(e.client(), req)
		if r.StatusCode/100 != 4 || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s: %d %s", tc.body, r.StatusCode, r.body)
		}
	}
	if got := e.connByName("prod"); got.ID != prod.ID || e.changeCount() != before {
		t.Fatal("a refused rename changed something")
	}

	// The page form renames and says what that means.
	r := e.do(c, "POST", "/connections/"+prod.ID+"/rename", url.Values{"csrf": {csrf}, "name": {"production"}})
	wantStatus(t, r, http.StatusSeeOther)
	r = e.do(c, "GET", r.location(), nil)
	wantBody(t, r, "Renamed.", "<h1>production")
	if got, _ := e.st.Get(context.Background(), prod.ID); got.Name != "production" || got.Secret["api_key"] != goodKey || got.AccountID != prod.AccountID {
		t.Errorf("after rename: %+v", got)
	}
	if e.changeCount() != before+1 {
		t.Error("rename did not tell the engine")
	}
	// The API too.
	r = e.api("PATCH", "/api/v1/connections/"+prod.ID, map[string]string{"name": "prod-eu"})
	wantStatus(t, r, http.StatusOK)
	if got := decode[api.Connection](t, r); got.Name != "prod-eu" || got.ID != prod.ID {
		t.Errorf("API rename: %+v", got)
	}
	// Renaming to the same name is a no-op.
	wantStatus(t, e.api("PATCH", "/api/v1/connections/"+prod.ID, map[string]string{"name": "prod-eu"}), http.StatusOK)
	if e.changeCount() != before+2 {
		t.Errorf("changes: %d", e.changeCount()-before)
	}
}

func TestAPIConnectionDetail(t *testing.T) {
	e, _, prod := newConnEnv(t)
	r := e.api("GET", "/api/v1/connections/"+prod.ID, nil)
	wantStatus(t, r, http.StatusOK)
	got := decode[map[string]any](t, r)
	for _, k := range []string{"id", "name", "state", "settings", "collected_at", "rate_limited_until", "summary", "history"} {
		if _, ok := got[k]; !ok {
			t.Errorf("detail JSON lacks %q: %s", k, r.body)
		}
	}
	d := decode[api.ConnectionDetail](t, r)
	if len(d.Summary) != 2 || d.Summary[0].Label != "Units used" || d.Summary[0].Value != 42 || d.Summary[0].Limit != 100 {
		t.Errorf("summary %+v", d.Summary)
	}
	if len(d.History) != 2 || d.History[1].Outcome != "error" || d.History[1].Duration != 2 || !strings.Contains(d.History[1].Error, "HTTP 502") {
		t.Errorf("history %+v", d.History)
	}
	// Nothing collected: empty lists, not null.
	r = e.api("GET", "/api/v1/connections/"+e.connByName("other").ID, nil)
	wantBody(t, r, `"summary": []`, `"history": []`, `"collected_at": null`)
}

// staleStoredStatus stores an error for prod, then gives this process a
// success an hour later (the status written behind it not yet stored),
// and returns that time.
func staleStoredStatus(t *testing.T, e *env, fc *fakeCollections, prod store.Connection) time.Time {
	t.Helper()
	if err := e.st.SetStatus(context.Background(), prod.ID, store.Status{State: store.StateError, LastError: "old stored error"}); err != nil {
		t.Fatal(err)
	}
	later := e.clk.Now().Add(time.Hour).UTC()
	fc.mu.Lock()
	fc.details[prod.ID] = collector.Detail{State: store.StateActive, History: []collector.Attempt{{At: later, Outcome: collector.OutcomeSuccess}}}
	fc.mu.Unlock()
	return later
}

// The stored status is written behind the collection; the page shows this
// process's newer attempt.
func TestConnectionPageNewerThanStore(t *testing.T) {
	e, fc, prod := newConnEnv(t)
	later := staleStoredStatus(t, e, fc, prod)
	c, _ := e.admin()
	r := e.do(c, "GET", "/connections/"+prod.ID, nil)
	wantBody(t, r, `<span class="badge state-active">active</span>`, "<dt>Last success</dt><dd>"+later.Format("2006-01-02 15:04 UTC")+"</dd>")
	if strings.Contains(r.body, "old stored error") {
		t.Error("the stored error shows after a newer success")
	}
	// A newer stored status (a revocation callback on another replica)
	// wins over this process's older success.
	if err := e.st.SetStatus(context.Background(), prod.ID, store.Status{State: store.StateRevoked, Updated: later.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	r = e.do(c, "GET", "/connections/"+prod.ID, nil)
	wantBody(t, r, `<span class="badge state-revoked">revoked</span>`)
	if got := decode[api.ConnectionDetail](t, e.api("GET", "/api/v1/connections/"+prod.ID, nil)); got.State != store.StateRevoked {
		t.Errorf("API state %q after a newer revocation", got.State)
	}
}

// The connections page lists this process's attempt when it is newer
// than the stored status (written behind the collection), as the
// connection page and the API's detail do.
func TestConnectionsListNewerThanStore(t *testing.T) {
	e, fc, prod := newConnEnv(t)
	later := staleStoredStatus(t, e, fc, prod)
	c, _ := e.admin()
	r := e.do(c, "GET", "/", nil)
	wantBody(t, r, `<span class="badge state-active">active</span>`)
	if strings.Contains(r.body, "old stored error") || strings.Contains(r.body, `"badge state-error"`) {
		t.Error("the list shows the stored error after a newer success")
	}
	if got := decode[api.ConnectionDetail](t, e.api("GET", "/api/v1/connections/"+prod.ID, nil)); got.State != store.StateActive || got.LastError != "" {
		t.Errorf("API detail: state %q, last error %q after a newer success", got.State, got.LastError)
	}
	// The API's list is the stored status every replica shares.
	for _, got := range decode[[]api.Connection](t, e.api("GET", "/api/v1/connections", nil)) {
		if got.ID == prod.ID && got.State != store.StateError {
			t.Errorf("API list: state %q, want the stored error", got.State)
		}
	}
	// A newer stored status (a revocation elsewhere) wins.
	if err := e.st.SetStatus(context.Background(), prod.ID, store.Status{State: store.StateRevoked, Updated: later.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	r = e.do(c, "GET", "/", nil)
	wantBody(t, r, `<span class="badge state-revoked">revoked</span>`)
}
