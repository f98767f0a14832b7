package segment

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// t0 is the tests' "now": Acme's usage period began on March 1, Euro
// Corp's on March 10.
var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// clock is the simulator's and Verify's settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

type env struct {
	sim   *vendorsim.Server
	srv   *httptest.Server
	p     *Provider
	clock *clock
}

// newEnv starts the simulator with pageSize items per page and a provider
// pointed at it.
func newEnv(t *testing.T, pageSize int) *env {
	t.Helper()
	clk := &clock{t: t0}
	sim := vendorsim.New(vendorsim.Options{Now: clk.Now, PageSize: pageSize})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	p := newProvider(t, "api_url: "+srv.URL+"/segment/us\neu_api_url: "+srv.URL+"/segment/eu\n"+
		"token_url: "+srv.URL+"/segment/oauth/us/token\neu_token_url: "+srv.URL+"/segment/oauth/eu/token\n")
	p.now = clk.Now
	return &env{sim: sim, srv: srv, p: p, clock: clk}
}

func newProvider(t *testing.T, cfg string) *Provider {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(cfg), &n); err != nil {
		t.Fatal(err)
	}
	p, err := New(&n, provider.Env{})
	if err != nil {
		t.Fatal(err)
	}
	pp := p.(*Provider)
	pp.retryDelays = []time.Duration{time.Millisecond, time.Millisecond}
	return pp
}

// metrics is a collector over what one Collect emitted.
type metrics = provider.Metrics

func tokenConn(region, token string) provider.Connection {
	return provider.Connection{
		ID: "c1", Vendor: vendor, Name: "prod", AuthMethod: MethodToken,
		Settings: map[string]string{settingRegion: region},
		Secret:   map[string]string{secretToken: token},
	}
}

// collect runs one collection at the given time.
func (e *env) collect(t *testing.T, c provider.Connection, at time.Time) (metrics, *provider.Credential, error) {
	t.Helper()
	e.clock.Set(at)
	s := &provider.Scrape{Conn: c, HTTP: e.srv.Client(), Now: at}
	err := e.p.Collect(context.Background(), s)
	m, _, updated := s.Result()
	return m, updated, err
}

func compareGolden(t *testing.T, m metrics, file string) {
	t.Helper()
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(m, strings.NewReader(string(want))); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(m); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func stateOf(err error) string {
	var se *provider.StateError
	if errors.As(err, &se) {
		return se.State
	}
	return ""
}

// TestCollectAcme: region us, usage period from the 1st, several pages of
// every list (page size 3). The golden values are the simulator's
// formulas worked out by hand for March 15 (day 15 of the period, month
// number 3): identified 41000*15+3 = 615003, anonymous_identified
// 7500*15+3 = 112503, never_identified 88000*15+3 = 1320003, anonymous
// their sum 1432506, API calls 165000000*15+3 = 2475000003 (past 2^31);
// last month (February, 28 days, month 2): identified 41000*28+2 =
// 1148002, API calls 165000000*28+2 = 4620000002; period start
// 2026-03-01T00:00Z = 1772323200. Per source (weights 1..7 of 28, the
// remainder to the first): identified of "Javascript 1" (41000 -
// 39533)*15+3 = 22008, of "iOS 7" 41000*7/28*15 = 153750. Seats: one each
// of Workspace Owner, Source Admin (a member with it), Source Read-only,
// Workspace Member and other (a role outside the known set).
func TestCollectAcme(t *testing.T) {
	e := newEnv(t, 3)
	m, updated, err := e.collect(t, tokenConn("us", vendorsim.SegmentTokenAcme), t0)
	if err != nil {
		t.Fatal(err)
	}
	if updated != nil {
		t.Error("a token connection has nothing to renew")
	}
	compareGolden(t, m, "testdata/acme.prom")
	// Every list was followed to its end, three items per page; the
	// period was found with one call of one item. No GET /: every
	// section's 401 is the credential check.
	routes := e.sim.CallCounts().Routes
	for path, want := range map[string]int64{
		"/": 0, "/sources": 3, "/destinations": 3, "/warehouses": 2, "/users": 2, "/invites": 1,
		"/usage/mtu/daily": 1 + 5 + 10, "/usage/api-calls/daily": 5 + 10, // this month (15 days), last month (28)
		"/usage/mtu/sources/daily": 35, "/usage/api-calls/sources/daily": 35, // 15 days of 7 sources
	} {
		if got := routes["GET /segment/us"+path]; got != want {
			t.Errorf("GET %s: %d calls, want %d", path, got, want)
		}
	}
}

// TestCollectEuro: region eu; the workspace's periods start on the 10th,
// so period=2026-03-01 answers nothing and the provider asks for every
// other day of the last 31 at once (30 calls) and takes the latest that
// answers, March 10 (day 6 on March 15): identified 2000*6+3 =
// 12003, anonymous_identified 300*6+3 = 1803, never_identified 4700*6+3 =
// 28203, anonymous 30006, API calls 1200000*6+3 = 7200003; period start
// 2026-03-10T00:00Z = 1773100800. Last month: February 10 to March 9, 28
// days, month 2. No warehouses: 0, not absent.
func TestCollectEuro(t *testing.T) {
	e := newEnv(t, 1000)
	m, _, err := e.collect(t, tokenConn("eu", vendorsim.SegmentTokenEuro), t0)
	if err != nil {
		t.Fatal(err)
	}
	compareGolden(t, m, "testdata/euro.prom")
	routes := e.sim.CallCounts().Routes
	if routes["GET /segment/eu/usage/mtu/daily"] != 1+30+2 || routes["GET /segment/eu/usage/api-calls/daily"] != 2 {
		t.Errorf("usage calls: %v", routes)
	}
}

// The page size changes the number of calls, never the values.
func TestPageSizeDoesNotChangeValues(t *testing.T) {
	var outs []string
	for _, size := range []int{1, 1000} {
		e := newEnv(t, size)
		m, _, err := e.collect(t, tokenConn("us", vendorsim.SegmentTokenAcme), t0)
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(m)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, mf := range mfs {
			b.WriteString(mf.String())
		}
		outs = append(outs, b.String())
		if size == 1 {
			if n := e.sim.CallCounts().Routes["GET /segment/us/sources"]; n != 7 {
				t.Errorf("page size 1: %d calls for 7 sources", n)
			}
		}
	}
	if outs[0] != outs[1] {
		t.Errorf("values differ between page sizes:\n%s\n%s", outs[0], outs[1])
	}
}

func TestRevokedToken(t *testing.T) {
	e := newEnv(t, 3)
	e.sim.RevokeSegmentToken(vendorsim.SegmentTokenAcme)
	_, _, err := e.collect(t, tokenConn("us", vendorsim.SegmentTokenAcme), t0)
	if stateOf(err) != "revoked" || provider.StatusOf(err) != 401 {
		t.Fatalf("want revoked 401, got %v", err)
	}
	if strings.Contains(err.Error(), vendorsim.SegmentTokenAcme) {
		t.Error("token in error text")
	}
	if _, _, err := e.collect(t, tokenConn("us", ""), t0); stateOf(err) != "revoked" || !strings.Contains(err.Error(), "reconnect") {
		t.Errorf("no stored token: %v", err)
	}
	if _, _, err := e.collect(t, tokenConn("mars", vendorsim.SegmentTokenAcme), t0); err == nil || !strings.Contains(err.Error(), "no valid region") {
		t.Errorf("bad region: %v", err)
	}
}

func TestRateLimited(t *testing.T) {
	e := newEnv(t, 3)
	e.sim.SetFault("segment", vendorsim.Fault{RateLimit: true, RetryAfter: 90500 * time.Millisecond})
	_, _, err := e.collect(t, tokenConn("us", vendorsim.SegmentTokenAcme), t0)
	var se *provider.StateError
	if !errors.As(err, &se) || se.State != "rate_limited" {
		t.Fatalf("want rate_limited, got %v", err)
	}
	// msBeforeNext from the body, counted from the scrape's time.
	if want := t0.Add(90500 * time.Millisecond); !se.Until.Equal(want) {
		t.Errorf("until %s, want %s", se.Until, want)
	}
	if provider.StatusOf(err) != 429 || !strings.Contains(err.Error(), "Too many requests") || !strings.Contains(err.Error(), "RequestError") {
		t.Errorf("error: %v", err)
	}
}

// A 429 in one section and a plain failure elsewhere: the state is
// rate_limited with the latest wait; a 401 anywhere wins over both.
func TestClassify(t *testing.T) {
	rl := func(d time.Duration) error { return provider.RateLimited(t0.Add(d), errors.New("slow down")) }
	plain := errors.New("boom")
	unauth := &provider.HTTPError{Vendor: vendor, Status: 401}
	var se *provider.StateError
	if err := classify([]error{plain, rl(time.Second), rl(time.Minute)}, false); !errors.As(err, &se) || se.State != "rate_limited" || !se.Until.Equal(t0.Add(time.Minute)) || !strings.Contains(err.Error(), "boom") {
		t.Errorf("rate limited: %v", err)
	}
	if err := classify([]error{rl(time.Second), unauth}, false); stateOf(err) != "revoked" {
		t.Errorf("token 401: %v", err)
	}
	if err := classify([]error{unauth}, true); stateOf(err) != "expired" {
		t.Errorf("oauth 401: %v", err)
	}
	if err := classify([]error{plain}, false); err == nil || stateOf(err) != "" {
		t.Errorf("plain: %v", err)
	}
	if classify(nil, false) != nil {
		t.Error("no errors")
	}
}

func TestServerErrorIsNotRevocation(t *testing.T) {
	e := newEnv(t, 3)
	e.sim.SetFault("segment", vendorsim.Fault{Status: 503})
	_, _, err := e.collect(t, tokenConn("eu", vendorsim.SegmentTokenEuro), t0)
	var he *provider.HTTPError
	if err == nil || stateOf(err) != "" || !errors.As(err, &he) {
		t.Fatalf("want a plain HTTP error, got %v", err)
	}
	// The envelope's type and message reach the error.
	if he.Status != 503 || he.Code != "InternalServerError" || he.Message != "service unavailable" || !strings.HasPrefix(he.Path, "/segment/eu/") {
		t.Errorf("parsed error: %+v", he)
	}
}

func TestParseError(t *testing.T) {
	code, msg, ms := parseError([]byte(`{"errors":[{"type":"RequestError","message":"Too many requests","data":{"remainingPoints":0,"msBeforeNext":57647,"consumedPoints":21}},{"type":"x","field":"pagination","message":"bad"}]}`))
	if code != "RequestError" || msg != "Too many requests; pagination: bad" || ms == nil || *ms != 57647 {
		t.Errorf("parseError = %q %q %v", code, msg, ms)
	}
	if code, msg, ms := parseError([]byte("<html>")); code != "" || msg != "" || ms != nil {
		t.Errorf("not JSON: %q %q %v", code, msg, ms)
	}
}

func TestConfig(t *testing.T) {
	p, err := New(nil, provider.Env{})
	if err != nil {
		t.Fatal(err)
	}
	pp := p.(*Provider)
	if pp.regions["us"] != (region{"us", DefaultAPIURL, DefaultTokenURL}) || pp.regions["eu"] != (region{"eu", DefaultEUAPIURL, DefaultEUTokenURL}) {
		t.Errorf("defaults: %+v", pp.regions)
	}
	// An empty section (segment: with nothing under it) is the defaults too.
	var null yaml.Node
	if err := yaml.Unmarshal([]byte("~"), &null); err != nil {
		t.Fatal(err)
	}
	if _, err := New(&null, provider.Env{}); err != nil {
		t.Errorf("empty section: %v", err)
	}
	pp = newProvider(t, "api_url: http://proxy.local/segment/\n")
	if pp.regions["us"].apiURL != "http://proxy.local/segment" || pp.regions["eu"].apiURL != DefaultEUAPIURL {
		t.Errorf("trailing slash / other defaults: %+v", pp.regions)
	}
	for cfg, want := range map[string]string{
		"api_url: ftp://x\n":                        "api_url: must be an absolute http(s) URL such as https://api.segmentapis.com",
		"eu_api_url: eu1.api.segmentapis.com\n":     "eu_api_url: must be an absolute http(s) URL",
		"token_url: https://x/token?a=b\n":          "token_url: must not carry a query",
		"eu_token_url: 'http://'\n":                 "eu_token_url: must be an absolute http(s) URL such as https://oauth2.eu1.segmentapis.com/token",
		"api_ur1: http://x\n":                       `unknown key "api_ur1"`,
		"api_url: [a]\n":                            "cannot unmarshal",
		"eu_api_url: ${SEGMENT_TEST_UNSET_VAR_1}\n": "SEGMENT_TEST_UNSET_VAR_1 is not set",
	} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(cfg), &n); err != nil {
			t.Fatal(err)
		}
		if _, err := New(&n, provider.Env{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", cfg, err, want)
		}
	}
	// Every bad key is named, not only the first.
	var n yaml.Node
	_ = yaml.Unmarshal([]byte("api_url: x\ntoken_url: y\n"), &n)
	if _, err := New(&n, provider.Env{}); err == nil || !strings.Contains(err.Error(), "api_url:") || !strings.Contains(err.Error(), "token_url:") {
		t.Errorf("two bad keys: %v", err)
	}
}

func TestMethods(t *testing.T) {
	p, _ := New(nil, provider.Env{})
	ms := p.Methods()
	if len(ms) != 2 || ms[0].Name() != "token" || ms[0].Title() != "Public API token" || ms[1].Name() != "client_credentials" || ms[1].Title() != "OAuth (client credentials)" {
		t.Fatalf("methods: %v", ms)
	}
	fieldSummary := func(m provider.Method) string {
		var out []string
		for _, f := range m.(provider.FormMethod).Fields() {
			s := f.Name
			if f.Secret {
				s += "+secret"
			}
			if f.Multiline {
				s += "+multiline"
			}
			if len(f.Options) > 0 {
				s += "[" + strings.Join(f.Options, "|") + "]"
			}
			if f.Label == "" || f.Help == "" {
				t.Errorf("%s: field %s lacks a label or help", m.Name(), f.Name)
			}
			out = append(out, s)
		}
		return strings.Join(out, " ")
	}
	if got := fieldSummary(ms[0]); got != "token+secret region[us|eu]" {
		t.Errorf("token fields: %s", got)
	}
	if got := fieldSummary(ms[1]); got != "region[us|eu] client_id key_id private_key+secret+multiline" {
		t.Errorf("oauth fields: %s", got)
	}
	if p.Vendor() != "segment" || p.Title() != "Segment" {
		t.Error("names")
	}
}

func inputError(t *testing.T, err error, field, want string) {
	t.Helper()
	var ie *provider.InputError
	if !errors.As(err, &ie) || !strings.Contains(ie.Message, want) || (field != "" && ie.Field != field) {
		t.Errorf("got %v, want input error on %q containing %q", err, field, want)
	}
}

func TestVerifyToken(t *testing.T) {
	e := newEnv(t, 3)
	m := e.p.Methods()[0].(provider.FormMethod)
	verify := func(values map[string]string) (*provider.Credential, error) {
		return m.Verify(context.Background(), e.srv.Client(), values)
	}
	cred, err := verify(map[string]string{"token": " " + vendorsim.SegmentTokenAcme + "\n", "region": "us"})
	if err != nil {
		t.Fatal(err)
	}
	if cred.AccountID != "AcmeVendorsimWs0000001" || cred.Account != "Acme Analytics" || cred.AuthMethod != "token" ||
		cred.Settings["region"] != "us" || cred.Settings["workspace_slug"] != "acme-analytics" ||
		cred.Secret["token"] != vendorsim.SegmentTokenAcme || len(cred.Secret) != 1 || !cred.Expiry.IsZero() {
		t.Errorf("credential: %+v %v", cred, cred.Settings)
	}
	// Region defaults to us; EU tokens verify in eu ("EU" and a pasted
	// "Bearer " prefix are fine).
	if cred, err := verify(map[string]string{"token": vendorsim.SegmentTokenAcme}); err != nil || cred.Settings["region"] != "us" {
		t.Errorf("default region: %v", err)
	}
	cred, err = verify(map[string]string{"token": "Bearer " + vendorsim.SegmentTokenEuro, "region": "EU"})
	if err != nil || cred.AccountID != "EuroVendorsimWs0000002" || cred.Account != "Euro Corp" || cred.Settings["region"] != "eu" {
		t.Fatalf("eu: %+v %v", cred, err)
	}
	// The wrong region: one extra call to the other region gives the hint.
	_, err = verify(map[string]string{"token": vendorsim.SegmentTokenEuro, "region": "us"})
	inputError(t, err, "region", "this token belongs to the EU region: choose region eu")
	_, err = verify(map[string]string{"token": vendorsim.SegmentTokenAcme, "region": "eu"})
	inputError(t, err, "region", "this token belongs to the US region: choose region us")

	const unknown = "sgp_ThisTokenIsNotKnownToTheSimulatorAtAll000000000000000000000000000"
	e.sim.RevokeSegmentToken(vendorsim.SegmentTokenEuro)
	for _, c := range []struct {
		values      map[string]string
		field, want string
	}{
		{map[string]string{"token": unknown, "region": "us"}, "token", "Segment rejected the token in region us"},
		{map[string]string{"token": vendorsim.SegmentTokenEuro, "region": "eu"}, "token", "Segment rejected the token in region eu"},
		{map[string]string{"token": "  ", "region": "us"}, "token", "the token is empty"},
		{map[string]string{"token": "sgp_abc def ghi jkl mno pqr", "region": "us"}, "token", "characters a Segment token never has"},
		{map[string]string{"token": `"` + vendorsim.SegmentTokenAcme + `"`, "region": "us"}, "token", "characters a Segment token never has"},
		{map[string]string{"token": "sgp_short", "region": "us"}, "token", "does not look like a Segment Public API token"},
		{map[string]string{"token": vendorsim.SegmentTokenAcme, "region": "asia"}, "region", `unknown region "asia": choose one of us, eu`},
	} {
		_, err := verify(c.values)
		inputError(t, err, c.field, c.want)
		if tok := strings.Trim(c.values["token"], `" `); len(tok) > 8 && err != nil && strings.Contains(err.Error(), tok) {
			t.Errorf("%v: error echoes the token: %v", c.values["region"], err)
		}
	}
	// A vendor outage is not the person's fault: a plain error.
	e.sim.SetFault("segment", vendorsim.Fault{Status: 502})
	_, err = verify(map[string]string{"token": vendorsim.SegmentTokenAcme, "region": "us"})
	var ie *provider.InputError
	if err == nil || errors.As(err, &ie) || !strings.Contains(err.Error(), "could not verify the token with Segment") {
		t.Errorf("outage: %v", err)
	}
}
