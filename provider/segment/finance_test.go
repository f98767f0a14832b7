package segment

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// fakeAPI answers GET / and, by path, {"data": bodies[path]}; other lists
// answer empty. It records every Accept header.
type fakeAPI struct {
	mu      sync.Mutex
	bodies  map[string]string
	accepts []string
	srv     *httptest.Server
}

var usageKeys = map[string]string{
	workspaceMTU.path: workspaceMTU.key, workspaceCalls.path: workspaceCalls.key,
	sourceMTU.path: sourceMTU.key, sourceCalls.path: sourceCalls.key,
}

func newFakeAPI(t *testing.T, bodies map[string]string) *fakeAPI {
	t.Helper()
	f := &fakeAPI{bodies: bodies}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.accepts = append(f.accepts, r.Header.Get("Accept"))
		body, ok := f.bodies[r.URL.Path]
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/":
			body = `{"workspace":{"id":"w1","name":"","slug":"fake"}}`
		case !ok:
			key := usageKeys[r.URL.Path]
			if key == "" {
				key = strings.TrimPrefix(r.URL.Path, "/")
			}
			body = `{"` + key + `":[],"pagination":{"current":"MA=="}}`
		}
		w.Write([]byte(`{"data":` + body + `}`))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) set(path, body string) {
	f.mu.Lock()
	f.bodies[path] = body
	f.mu.Unlock()
}

// mtuBody is a workspace MTU list of one snapshot of the March period.
func mtuBody(identified string) string {
	return `{"dailyWorkspaceMTUUsage":[{"periodStart":1772323200,"periodEnd":1775001600,"identified":"` + identified +
		`","anonymous":"30","anonymousIdentified":"10","neverIdentified":"20","timestamp":"2026-03-15T00:00:00.000Z"}],"pagination":{"current":"MA=="}}`
}

const callsBody = `{"dailyWorkspaceAPICallsUsage":[{"apiCalls":"500","timestamp":"2026-03-15T00:00:00.000Z"}],"pagination":{"current":"MA=="}}`

// run collects once against f, passing the previous sections' results as
// the engine does.
func (f *fakeAPI) run(t *testing.T, p *Provider, prev map[string]provider.SectionResult, at time.Time) (metrics, map[string]provider.SectionResult, error) {
	t.Helper()
	s := &provider.Scrape{Conn: tokenConn("us", "sgp_fakeTokenForAFakeServer000000000"), HTTP: f.srv.Client(), Now: at, Previous: prev}
	err := p.Collect(context.Background(), s)
	m, _, _ := s.Result()
	return m, s.SectionResults(), err
}

func value(t *testing.T, m metrics, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	for _, x := range m {
		if !strings.Contains(x.Desc().String(), `"`+name+`"`) {
			continue
		}
		var pb dto.Metric
		if err := x.Write(&pb); err != nil {
			t.Fatal(err)
		}
		match := 0
		for _, l := range pb.GetLabel() {
			if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
				match++
			}
		}
		if match == len(labels) {
			return pb.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// Item 4: an empty usage answer is a failed section whose message says
// so; no 0 is exported, and the last known values stay.
func TestEmptyUsageIsNotZero(t *testing.T) {
	f := newFakeAPI(t, map[string]string{})
	p := newProvider(t, "api_url: "+f.srv.URL+"\n")
	m, _, err := f.run(t, p, nil, t0)
	if err == nil || !strings.Contains(err.Error(), "no usage snapshot") || stateOf(err) != "" {
		t.Fatalf("empty answers: want a failure saying there is no snapshot, got %v", err)
	}
	if n := testutil.CollectAndCount(m, "saas_segment_mtu", "saas_segment_api_calls", "saas_segment_source_mtu"); n != 0 {
		t.Errorf("an empty answer exported %d usage series (zeros)", n)
	}

	// A good answer, then an empty one for the same period.
	f.set(workspaceMTU.path, mtuBody("42"))
	f.set(workspaceCalls.path, callsBody)
	m, prev, err := f.run(t, p, nil, t0.Add(time.Minute))
	if v, ok := value(t, m, "saas_segment_mtu", map[string]string{"kind": "identified", "period": "this_month"}); !ok || v != 42 {
		t.Fatalf("good answer: identified %v %v (err %v)", v, ok, err)
	}
	f.set(workspaceMTU.path, `{"dailyWorkspaceMTUUsage":[],"pagination":{"current":"MA=="}}`)
	m, _, err = f.run(t, p, prev, t0.Add(2*time.Minute))
	if err == nil || !strings.Contains(err.Error(), "no usage snapshot for the period starting 2026-03-01") || !strings.Contains(err.Error(), "not a zero") {
		t.Errorf("empty after good: %v", err)
	}
	if v, ok := value(t, m, "saas_segment_mtu", map[string]string{"kind": "identified", "period": "this_month"}); !ok || v != 42 {
		t.Errorf("the last known value must stay: got %v (present %v)", v, ok)
	}
	if v, ok := value(t, m, "saas_segment_api_calls", map[string]string{"period": "this_month"}); !ok || v != 500 {
		t.Errorf("the last known API calls must stay: got %v (present %v)", v, ok)
	}
}

// Item 5: every call asks for version 1.
func TestAPIVersionPinned(t *testing.T) {
	f := newFakeAPI(t, map[string]string{workspaceMTU.path: mtuBody("1"), workspaceCalls.path: callsBody})
	p := newProvider(t, "api_url: "+f.srv.URL+"\n")
	f.run(t, p, nil, t0)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.accepts) < 8 {
		t.Fatalf("only %d calls", len(f.accepts))
	}
	for _, a := range f.accepts {
		if a != "application/vnd.segment.v1+json" {
			t.Errorf("Accept %q, want application/vnd.segment.v1+json", a)
		}
	}
}

// A workspace whose periods start on the 10th: the 1st answers nothing,
// so the provider looks for the period's start once, then remembers it;
// at the next period it asks for it directly.
func TestMidMonthPeriod(t *testing.T) {
	e := newEnv(t, 1000)
	c := tokenConn("eu", vendorsim.SegmentTokenEuro)
	if _, _, err := e.collect(t, c, t0); err != nil {
		t.Fatal(err)
	}
	e.sim.ResetCalls()
	m, _, err := e.collect(t, c, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// This period and last month's (no engine here, so nothing is kept).
	if n := e.sim.CallCounts().Routes["GET /segment/eu/usage/mtu/daily"]; n != 2 {
		t.Errorf("%d MTU calls once the period is known, want 2 (no search)", n)
	}
	if v, _ := value(t, m, "saas_segment_period_start_timestamp_seconds", nil); v != float64(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC).Unix()) {
		t.Errorf("period start %v", v)
	}
	// April 12: the period from April 10, day 3; last month is March 10
	// to April 9, 31 days (the simulator's formulas: 2000*3+4, 2000*31+3).
	e.sim.ResetCalls()
	m, _, err = e.collect(t, c, time.Date(2026, 4, 12, 8, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if n := e.sim.CallCounts().Routes["GET /segment/eu/usage/mtu/daily"]; n != 2 {
		t.Errorf("%d MTU calls in the next period, want 2", n)
	}
	for period, want := range map[string]float64{"this_month": 2000*3 + 4, "last_month": 2000*31 + 3} {
		if v, _ := value(t, m, "saas_segment_mtu", map[string]string{"kind": "identified", "period": period}); v != want {
			t.Errorf("%s identified %v, want %v", period, v, want)
		}
	}
}

// Billable MTUs from the per-source series add up to the workspace's (the
// simulator's assumption), and every source is named.
func TestSourceUsage(t *testing.T) {
	e := newEnv(t, 1000)
	ws, _ := vendorsim.SegmentWorkspaceFor(vendorsim.SegmentTokenAcme)
	m, _, err := e.collect(t, tokenConn("us", vendorsim.SegmentTokenAcme), t0)
	if err != nil {
		t.Fatal(err)
	}
	var billable, calls float64
	sources := map[string]bool{}
	for _, x := range m {
		var pb dto.Metric
		x.Write(&pb)
		l := map[string]string{}
		for _, p := range pb.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		switch {
		case strings.Contains(x.Desc().String(), `"saas_segment_source_mtu"`):
			if l["source"] == "" || l["source_id"] == "" {
				t.Errorf("unnamed source: %v", l)
			}
			sources[l["source_id"]] = true
			if l["kind"] == "identified" || l["kind"] == "never_identified" {
				billable += pb.GetGauge().GetValue()
			}
		case strings.Contains(x.Desc().String(), `"saas_segment_source_api_calls"`):
			calls += pb.GetGauge().GetValue()
		}
	}
	mtu := ws.MTUOn(t0)
	if len(sources) != ws.Sources || billable != float64(mtu.Billable()) || calls != float64(ws.APICallsOn(t0)) {
		t.Errorf("%d sources, billable %v (want %d), calls %v (want %d)", len(sources), billable, mtu.Billable(), calls, ws.APICallsOn(t0))
	}
	if n := e.sim.SegmentUnversionedCalls(); n != 0 {
		t.Errorf("%d calls without the pinned version", n)
	}
}

// Vendor text in labels is bounded and valid UTF-8; a source missing from
// the sources list has an empty name.
func TestSourceLabelsBounded(t *testing.T) {
	long := strings.Repeat("é", 300) + "\xff"
	f := newFakeAPI(t, map[string]string{
		workspaceMTU.path: mtuBody("1"), workspaceCalls.path: callsBody,
		"/sources": `{"sources":[{"id":"s1","name":"` + long + `"}],"pagination":{"current":"MA=="}}`,
		sourceMTU.path: `{"dailyPerSourceMTUUsage":[
		  {"sourceId":"s1","periodStart":1772323200,"periodEnd":1775001600,"identified":"1","anonymous":"2","anonymousIdentified":"1","neverIdentified":"1","timestamp":"2026-03-15T00:00:00.000Z"},
		  {"sourceId":"gone","periodStart":1772323200,"periodEnd":1775001600,"identified":"5","anonymous":"0","anonymousIdentified":"0","neverIdentified":"0","timestamp":"2026-03-15T00:00:00.000Z"},
		  {"sourceId":"s1","periodStart":1772323200,"periodEnd":1775001600,"identified":"0","anonymous":"0","anonymousIdentified":"0","neverIdentified":"0","timestamp":"2026-03-14T00:00:00.000Z"}],"pagination":{"current":"MA=="}}`,
		sourceCalls.path: `{"dailyPerSourceAPICallsUsage":[{"sourceId":"s1","apiCalls":"7","timestamp":"2026-03-15T00:00:00.000Z"}],"pagination":{"current":"MA=="}}`,
	})
	p := newProvider(t, "api_url: "+f.srv.URL+"\n")
	m, _, err := f.run(t, p, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := provider.Label(long)
	if !strings.HasPrefix(want, strings.Repeat("é", 119)+"…") {
		t.Fatalf("cut name %q", want)
	}
	if v, ok := value(t, m, "saas_segment_source_mtu", map[string]string{"source_id": "s1", "source": want, "kind": "identified"}); !ok || v != 1 {
		t.Errorf("bounded name: %v %v", v, ok)
	}
	if v, ok := value(t, m, "saas_segment_source_mtu", map[string]string{"source_id": "gone", "source": "", "kind": "identified"}); !ok || v != 5 {
		t.Errorf("source not in the list: %v %v", v, ok)
	}
	for _, x := range m {
		var pb dto.Metric
		x.Write(&pb)
		for _, l := range pb.GetLabel() {
			if !utf8.ValidString(l.GetValue()) || utf8.RuneCountInString(l.GetValue()) > maxLabelLen {
				t.Errorf("label %s=%q", l.GetName(), l.GetValue())
			}
		}
	}
}

// Item 7: each user counts once, under their most privileged known role;
// unknown roles and users without any are "other".
func TestUsersByRole(t *testing.T) {
	f := newFakeAPI(t, map[string]string{
		workspaceMTU.path: mtuBody("1"), workspaceCalls.path: callsBody,
		"/users": `{"users":[
		  {"id":"1","name":"a","email":"a@x","permissions":[{"roleId":"r","roleName":"Workspace Member","resources":[]},{"roleId":"r2","roleName":"workspace owner","resources":[]}]},
		  {"id":"2","name":"b","email":"b@x","permissions":[{"roleId":"r","roleName":"Functions Admin","resources":[]}]},
		  {"id":"3","name":"c","email":"c@x","permissions":[{"roleId":"r","roleName":"Chief Vibes Officer","resources":[]}]},
		  {"id":"4","name":"d","email":"d@x"},
		  {"id":"5","name":"e","email":"e@x","permissions":[{"roleId":"r","roleName":"Workspace Member","resources":[]}]}
		],"pagination":{"current":"MA=="}}`,
	})
	p := newProvider(t, "api_url: "+f.srv.URL+"\n")
	m, _, _ := f.run(t, p, nil, t0)
	want := `
# HELP saas_segment_users Users with access to the Segment workspace (seats), by their most privileged role.
# TYPE saas_segment_users gauge
saas_segment_users{connection="prod",role="Function Admin"} 1
saas_segment_users{connection="prod",role="Workspace Member"} 1
saas_segment_users{connection="prod",role="Workspace Owner"} 1
saas_segment_users{connection="prod",role="other"} 2
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "saas_segment_users"); err != nil {
		t.Error(err)
	}
}

// Item 6: a 429 from the token endpoint waits for its Retry-After
// (bounded to 5 minutes) when that fits before the deadline, and
// otherwise leaves the connection rate limited until then, not expired.
func TestTokenRateLimit(t *testing.T) {
	e := newEnv(t, 1000)
	c := e.connect(t)
	var waits []time.Duration
	e.p.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return nil
	}
	at := t0.Add(25 * time.Hour) // the token has expired: renewal is due
	e.sim.SetSegmentOAuthRateLimit(1, 2*time.Second)
	if _, updated, err := e.collect(t, c, at); err != nil || updated == nil {
		t.Fatalf("after one 429: err %v, renewed %v", err, updated != nil)
	}
	if len(waits) != 1 || waits[0] != 2*time.Second {
		t.Errorf("waits %v, want [2s] (the Retry-After)", waits)
	}

	// Retry-After longer than the deadline allows: rate limited until then.
	waits = nil
	e.sim.SetSegmentOAuthRateLimit(10, 2*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := &provider.Scrape{Conn: c, HTTP: e.srv.Client(), Now: at}
	err := e.p.Collect(ctx, s)
	var se *provider.StateError
	if !errors.As(err, &se) || se.State != "rate_limited" || !se.Until.Equal(at.Add(2*time.Minute)) || len(waits) != 0 {
		t.Errorf("long Retry-After: %v (waits %v)", err, waits)
	}
	if err != nil && !strings.Contains(err.Error(), "rate limited") {
		t.Errorf("message: %v", err)
	}

	// Retry-After is bounded.
	if d := retryAfter("86400", at); d != maxRetryAfter {
		t.Errorf("Retry-After 86400 → %s, want %s", d, maxRetryAfter)
	}
	if d := retryAfter(at.Add(90*time.Second).Format(http.TimeFormat), at); d != 90*time.Second {
		t.Errorf("HTTP date → %s", d)
	}
	for _, v := range []string{"", "soon", "NaN"} {
		if d := retryAfter(v, at); d != -1 {
			t.Errorf("Retry-After %q → %s, want none", v, d)
		}
	}
	if d := retryAfter("-5", at); d != 0 {
		t.Errorf("negative → %s", d)
	}
}

// A broken body in the versioned media type is called broken JSON, not
// "not JSON".
func TestBrokenVersionedBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.segment.v1+json")
		w.Write([]byte(`{"data":{"workspace":`))
	}))
	t.Cleanup(srv.Close)
	p := newProvider(t, "api_url: "+srv.URL+"\n")
	err := p.Collect(context.Background(), &provider.Scrape{Conn: tokenConn("us", "sgp_fakeTokenForAFakeServer000000000"), HTTP: srv.Client(), Now: t0})
	if err == nil || !strings.Contains(err.Error(), "response is not valid JSON") {
		t.Errorf("got %v", err)
	}
}
