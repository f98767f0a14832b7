package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

var now = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

const externalURL = "http://exporter.test:9888"

type fixture struct {
	sim *vendorsim.Server
	srv *httptest.Server
	p   *Provider
}

func newFixture(t *testing.T, o vendorsim.Options) *fixture {
	t.Helper()
	if o.Now == nil {
		o.Now = func() time.Time { return now }
	}
	sim := vendorsim.New(o)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	return &fixture{sim: sim, srv: srv, p: newProvider(t, simConfig(srv.URL))}
}

func simConfig(base string) string {
	return "connect_app_sid: " + vendorsim.TwilioConnectAppSid + "\n" +
		"account_sid: " + vendorsim.TwilioOwnerAccountSid + "\n" +
		"auth_token: " + vendorsim.TwilioOwnerAuthToken + "\n" +
		"api_url: " + base + "/twilio\n" +
		"authorize_url: " + base + "/twilio-www/authorize\n"
}

func newProvider(t *testing.T, cfg string) *Provider {
	t.Helper()
	p, err := build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Provider)
}

func build(cfg string) (provider.Provider, error) {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(cfg), &n); err != nil {
		return nil, err
	}
	return New(&n, provider.Env{ExternalURL: externalURL})
}

// metrics is a collector over what one Collect emitted.
type metrics = provider.Metrics

func (f *fixture) collect(t *testing.T, ctx context.Context, sid string) (metrics, error) {
	t.Helper()
	s := &provider.Scrape{Conn: provider.Connection{Vendor: vendor, Name: "prod", AccountID: sid, Secret: map[string]string{}}, HTTP: &http.Client{}, Now: now}
	err := f.p.Collect(ctx, s)
	m, _, _ := s.Result()
	return m, err
}

func (f *fixture) authorize(t *testing.T, sid string) {
	t.Helper()
	if err := f.sim.AuthorizeTwilioAccount(sid); err != nil {
		t.Fatal(err)
	}
}

func lint(t *testing.T, m metrics) {
	t.Helper()
	problems, err := testutil.CollectAndLint(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func compareGolden(t *testing.T, m metrics, file string) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(m, strings.NewReader(string(want))); err != nil {
		t.Error(err)
	}
}

// Golden values were computed apart from the simulator, from the formulas
// documented on its day() (see the report); they span pages of 3.
func TestCollectAcme(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	f.authorize(t, vendorsim.TwilioAccountAcme)
	m, err := f.collect(t, context.Background(), vendorsim.TwilioAccountAcme)
	if err != nil {
		t.Fatal(err)
	}
	compareGolden(t, m, "acme.prom")
	lint(t, m)
}

// Beta's Balance answers 403: the metric is left out and the collection
// still succeeds.
func TestCollectBetaBalanceForbidden(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	f.authorize(t, vendorsim.TwilioAccountBeta)
	m, err := f.collect(t, context.Background(), vendorsim.TwilioAccountBeta)
	if err != nil {
		t.Fatalf("a forbidden balance failed the collection: %v", err)
	}
	if n := testutil.CollectAndCount(m, "saas_twilio_balance"); n != 0 {
		t.Errorf("saas_twilio_balance exported although Twilio answered 403 (%d series)", n)
	}
	compareGolden(t, m, "beta.prom")
	calls := f.sim.CallCounts().Routes["GET /twilio/2010-04-01/Accounts/"+vendorsim.TwilioAccountBeta+"/Balance.json"]
	if calls != 1 {
		t.Errorf("Balance called %d times, want 1", calls)
	}
}

// Gamma's Accounts.json answers 401 with code 20003: no subaccount series,
// and the connection is not revoked (its own resources answer).
func TestCollectSuspendedEUR(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	f.authorize(t, vendorsim.TwilioAccountGamma)
	m, err := f.collect(t, context.Background(), vendorsim.TwilioAccountGamma)
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP saas_twilio_account_status Twilio account status: 1 for the current one (active, suspended, closed), 0 for the others.
# TYPE saas_twilio_account_status gauge
saas_twilio_account_status{connection="prod",status="active"} 0
saas_twilio_account_status{connection="prod",status="closed"} 0
saas_twilio_account_status{connection="prod",status="suspended"} 1
# HELP saas_twilio_balance Balance of the Twilio account in the currency named by the currency label; absent where Twilio does not let the Connect App read it.
# TYPE saas_twilio_balance gauge
saas_twilio_balance{connection="prod",currency="EUR"} -4.2
# HELP saas_twilio_usage_price Price of the usage in the period by Twilio usage category, in the currency named by the currency label; category totalprice is the account's total including its subaccounts' usage. Categories overlap (calls includes calls-inbound): never sum them.
# TYPE saas_twilio_usage_price gauge
saas_twilio_usage_price{category="phonenumbers",connection="prod",currency="EUR",period="last_month"} 1.15
saas_twilio_usage_price{category="totalprice",connection="prod",currency="EUR",period="last_month"} 1.15
saas_twilio_usage_price{category="phonenumbers",connection="prod",currency="EUR",period="this_month"} 1.15
saas_twilio_usage_price{category="totalprice",connection="prod",currency="EUR",period="this_month"} 1.15
saas_twilio_usage_price{category="totalprice",connection="prod",currency="EUR",period="today"} 0
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "saas_twilio_account_status", "saas_twilio_balance", "saas_twilio_usage_price"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m, "saas_twilio_subaccounts", "saas_twilio_subaccount_spend"); n != 0 {
		t.Errorf("Twilio refused the account list, yet %d subaccount series were exported", n)
	}
}

// With pages of 3, the 10 usage categories take 4 pages per period and
// Acme's 7 numbers 3 pages; with pages of 1000, one call each.
func TestPagination(t *testing.T) {
	for _, tc := range []struct {
		pageSize            int
		usagePages, numbers int64
	}{{3, 4, 3}, {2, 5, 4}, {1000, 1, 1}} {
		t.Run(strconv.Itoa(tc.pageSize), func(t *testing.T) {
			f := newFixture(t, vendorsim.Options{PageSize: tc.pageSize})
			f.authorize(t, vendorsim.TwilioAccountAcme)
			m, err := f.collect(t, context.Background(), vendorsim.TwilioAccountAcme)
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, m, "acme.prom")
			routes := f.sim.CallCounts().Routes
			base := "GET /twilio/2010-04-01/Accounts/" + vendorsim.TwilioAccountAcme
			for path, want := range map[string]int64{
				"/Usage/Records/Today.json":     tc.usagePages,
				"/Usage/Records/ThisMonth.json": tc.usagePages,
				"/IncomingPhoneNumbers.json":    tc.numbers,
				".json":                         1,
				"/Balance.json":                 1,
			} {
				if got := routes[base+path]; got != want {
					t.Errorf("%s: %d calls, want %d", path, got, want)
				}
			}
		})
	}
}

// twilio-go decodes price into a float32, which loses digits; the
// collector parses the decimal strings as float64.
func TestPricePrecision(t *testing.T) {
	f := newFixture(t, vendorsim.Options{PageSize: 1000})
	f.authorize(t, vendorsim.TwilioAccountAcme)
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/twilio/2010-04-01/Accounts/"+vendorsim.TwilioAccountAcme+"/Usage/Records/ThisMonth.json?Category=calls-outbound", nil)
	req.SetBasicAuth(vendorsim.TwilioAccountAcme, vendorsim.TwilioOwnerAuthToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	var raw struct {
		UsageRecords []struct {
			Price json.RawMessage `json:"price"`
		} `json:"usage_records"`
	}
	var sdk openapi.ListUsageRecordThisMonthResponse
	var ours usagePage
	for _, out := range []any{&raw, &sdk} {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatal(err)
		}
	}
	if err := provider.Unmarshal(body, &ours); err != nil {
		t.Fatal(err)
	}
	if string(raw.UsageRecords[0].Price) != `"302.85563"` {
		t.Fatalf("the simulator's price is %s, want the JSON string \"302.85563\"", raw.UsageRecords[0].Price)
	}
	sdkPrice := float64(*sdk.UsageRecords[0].Price)
	if sdkPrice == 302.85563 {
		t.Fatalf("twilio-go's float32 price kept every digit (%v): the precise path would be unnecessary", sdkPrice)
	}
	t.Logf("twilio-go: %v, collector: %v", sdkPrice, ours.UsageRecords[0].Price.v)
	if got := ours.UsageRecords[0].Price.v; got != 302.85563 {
		t.Errorf("collector's price = %v, want 302.85563", got)
	}
}

func TestDecimal(t *testing.T) {
	for in, want := range map[string]decimal{
		`"2192.84855"`: {v: 2192.84855, ok: true},
		`12.5`:         {v: 12.5, ok: true},
		`"-0.03000"`:   {v: -0.03, ok: true},
		`" 7 "`:        {v: 7, ok: true},
		`null`:         {},
		`""`:           {},
		`"n/a"`:        {bad: "n/a"},
		`"NaN"`:        {bad: "NaN"},
		`"\u0031.5"`:   {v: 1.5, ok: true},
		`"1e400"`:      {bad: "1e400"},
		`-1e400`:       {bad: "-1e400"},
		`true`:         {bad: "true"},
	} {
		var d decimal
		if err := d.UnmarshalJSON([]byte(in)); err != nil || d != want {
			t.Errorf("%s: got %+v (%v), want %+v", in, d, err, want)
		}
		// As a field, decoded by the provider's decoder (UnmarshalJSONFrom).
		var r usageRecord
		if err := provider.Unmarshal([]byte(`{"price":`+in+`}`), &r); err != nil || r.Price != want {
			t.Errorf("price %s: got %+v (%v), want %+v", in, r.Price, err, want)
		}
	}
}

// Twilio's error code is a JSON number; a numeric string is taken too (as
// json.Number did), anything else is no code, so no error body.
func TestParseErrorCode(t *testing.T) {
	for body, want := range map[string][2]string{
		`{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}`: {"20003", "Authenticate"},
		`{"CODE":20404,"Message":"Not found"}`:      {"20404", "Not found"},
		`{"code":"20003","message":"m"}`:            {"20003", "m"},
		`{"code":1,"code":2,"message":"last wins"}`: {"2", "last wins"},
		`{"code":"abc","message":"m"}`:              {"", ""},
		`{"code":null,"message":"m"}`:               {"", ""},
		`{"code":{},"message":"m"}`:                 {"", ""},
		`{"message":"m"}`:                           {"", ""},
		`{"code":1`:                                 {"", ""},
	} {
		code, msg := parseError([]byte(body))
		if code != want[0] || msg != want[1] {
			t.Errorf("%s: %q %q, want %q", body, code, msg, want)
		}
	}
}

func TestBadUsageValueIsReported(t *testing.T) {
	api := http.NewServeMux()
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/Today.json"):
			io.WriteString(w, `{"next_page_uri":null,"usage_records":[{"category":"sms","count":"12","usage":"oops","usage_unit":"messages","price":"0.1","price_unit":"usd"},{"category":"sms","count":"99","usage":"99","price":"9"}]}`)
		case strings.HasSuffix(r.URL.Path, "/ThisMonth.json"), strings.HasSuffix(r.URL.Path, "/IncomingPhoneNumbers.json"):
			io.WriteString(w, `{"next_page_uri":null,"usage_records":[],"incoming_phone_numbers":[]}`)
		case strings.HasSuffix(r.URL.Path, "/Balance.json"):
			io.WriteString(w, `{"balance":"1.5","currency":"USD"}`)
		default:
			io.WriteString(w, `{"sid":"`+vendorsim.TwilioAccountAcme+`","status":"active"}`)
		}
	})
	srv := httptest.NewServer(api)
	defer srv.Close()
	f := &fixture{p: newProvider(t, simConfig(srv.URL))}
	m, err := f.collect(t, context.Background(), vendorsim.TwilioAccountAcme)
	if err == nil || !strings.Contains(err.Error(), `sms usage "oops"`) {
		t.Errorf("want an error naming the bad value, got %v", err)
	}
	want := `
# HELP saas_twilio_usage_events Number of usage events (calls, messages, …) in the period by Twilio usage category, including the account's subaccounts (periods in GMT; this_month: month to date; last_month: the previous calendar month). A category with no usage is left out unless it had usage in this or the previous period (then 0); totalprice is always there.
# TYPE saas_twilio_usage_events gauge
saas_twilio_usage_events{category="sms",connection="prod",period="today"} 12
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "saas_twilio_usage_events"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m, "saas_twilio_usage"); n != 0 {
		t.Errorf("the bad usage value was exported (%d series)", n)
	}
}

// A next_page_uri that leaves the account's list is not followed: the
// owner's token goes with every call.
func TestNextPageOutsideAccountNotFollowed(t *testing.T) {
	var hits int
	api := http.NewServeMux()
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"next_page_uri":"https://evil.example/2010-04-01/Accounts/ACffffffffffffffffffffffffffffffff/IncomingPhoneNumbers.json","incoming_phone_numbers":[{}]}`)
	})
	srv := httptest.NewServer(api)
	defer srv.Close()
	p := newProvider(t, simConfig(srv.URL))
	c := p.client(http.DefaultClient, vendorsim.TwilioAccountAcme)
	s := &provider.Scrape{Conn: provider.Connection{Name: "prod"}}
	err := collectPhoneNumbers(context.Background(), c, s)
	if err == nil || !strings.Contains(err.Error(), "is not a page of the same list") {
		t.Errorf("want a refusal, got %v", err)
	}
	if hits != 1 {
		t.Errorf("%d calls, want 1", hits)
	}
}

func isRevoked(err error) bool {
	var se *provider.StateError
	return errors.As(err, &se) && se.State == "revoked"
}

func TestNotAuthorizedIsRevoked(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	_, err := f.collect(t, context.Background(), vendorsim.TwilioAccountAcme)
	if !isRevoked(err) {
		t.Fatalf("want revoked, got %v", err)
	}
	var he *provider.HTTPError
	if !errors.As(err, &he) || he.Status != 401 || he.Code != "20003" || he.Message != "Authenticate" {
		t.Errorf("want Twilio's 401 code 20003 Authenticate, got %#v", he)
	}
	if strings.Contains(err.Error(), vendorsim.TwilioOwnerAuthToken) {
		t.Error("auth token in the error")
	}
	if !strings.Contains(err.Error(), "/twilio/2010-04-01/Accounts/"+vendorsim.TwilioAccountAcme+".json") {
		t.Errorf("error does not name the path that was called: %v", err)
	}
}

// Deauthorization end to end: the simulator signs the callback, Webhook
// accepts it, and the next collection is revoked.
func TestDeauthorizeCallbackThenRevoked(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	f.authorize(t, vendorsim.TwilioAccountAcme)
	if _, err := f.collect(t, context.Background(), vendorsim.TwilioAccountAcme); err != nil {
		t.Fatal(err)
	}
	var got []string
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		revoked, err := f.p.Webhook(r, "deauthorize")
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		got = revoked
		io.WriteString(w, "ok")
	}))
	defer exporter.Close()
	// The provider checks the signature against its own external_url.
	f.p.externalURL = exporter.URL
	if err := f.sim.SetTwilioConnectApp(exporter.URL+CallbackPath, exporter.URL+DeauthorizePath); err != nil {
		t.Fatal(err)
	}
	res, err := f.sim.DeauthorizeTwilioAccount(context.Background(), vendorsim.TwilioAccountAcme)
	if err != nil || res.Status != 200 {
		t.Fatalf("callback: %+v %v", res, err)
	}
	if len(got) != 1 || got[0] != vendorsim.TwilioAccountAcme {
		t.Errorf("revoked %v", got)
	}
	if _, err := f.collect(t, context.Background(), vendorsim.TwilioAccountAcme); !isRevoked(err) {
		t.Errorf("after deauthorization: want revoked, got %v", err)
	}
}

func TestServerErrorIsNotRevocation(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	f.authorize(t, vendorsim.TwilioAccountAcme)
	f.sim.SetFault("twilio", vendorsim.Fault{Status: 503})
	_, err := f.collect(t, context.Background(), vendorsim.TwilioAccountAcme)
	var se *provider.StateError
	if err == nil || errors.As(err, &se) {
		t.Fatalf("want a plain error, got %v", err)
	}
	var he *provider.HTTPError
	if !errors.As(err, &he) || he.Status != 503 || he.Code != "20503" {
		t.Errorf("want 503 code 20503, got %v", err)
	}
}

func TestRateLimitedIsHTTP429(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	f.authorize(t, vendorsim.TwilioAccountAcme)
	f.sim.SetFault("twilio", vendorsim.Fault{RateLimit: true})
	_, err := f.collect(t, context.Background(), vendorsim.TwilioAccountAcme)
	if provider.StatusOf(err) != 429 || isRevoked(err) {
		t.Errorf("want HTTP 429 (the engine reads the headers), got %v", err)
	}
}

// Answers that are not Twilio's JSON get errors that say so, on both the
// twilio-go path (account) and ours (usage).
func TestNotJSON(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	f.authorize(t, vendorsim.TwilioAccountAcme)
	f.sim.SetFault("twilio", vendorsim.Fault{HTML: true})
	_, err := f.collect(t, context.Background(), vendorsim.TwilioAccountAcme)
	if err == nil || !strings.Contains(err.Error(), "not the JSON Twilio sends") {
		t.Errorf("account via twilio-go: %v", err)
	}
	c := f.p.client(http.DefaultClient, vendorsim.TwilioAccountAcme)
	err = collectUsage(context.Background(), c, &provider.Scrape{}, periods[0])
	if err == nil || !strings.Contains(err.Error(), "expected JSON") {
		t.Errorf("usage: %v", err)
	}
}

// twilio-go passes no context: the rewriter attaches it, so the scrape's
// deadline ends a call that hangs (the client has no timeout of its own).
func TestDeadlineReachesTwilioGo(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	f.authorize(t, vendorsim.TwilioAccountAcme)
	f.sim.SetFault("twilio", vendorsim.Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c := f.p.client(&http.Client{}, vendorsim.TwilioAccountAcme)
	c.hc.Timeout = time.Hour // only the context can end the call
	_, err := c.fetchAccount(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("want the context's deadline, got %v", err)
	}
}

func signedRequest(t *testing.T, form url.Values, token string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, DeauthorizePath, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		r.Header.Set("X-Twilio-Signature", vendorsim.TwilioSignature(token, externalURL+DeauthorizePath, form))
	}
	return r
}

func TestWebhook(t *testing.T) {
	p := newProvider(t, simConfig("http://127.0.0.1:1"))
	good := url.Values{"AccountSid": {vendorsim.TwilioAccountBeta}, "ConnectAppSid": {vendorsim.TwilioConnectAppSid}}
	revoked, err := p.Webhook(signedRequest(t, good, vendorsim.TwilioOwnerAuthToken), "deauthorize")
	if err != nil || len(revoked) != 1 || revoked[0] != vendorsim.TwilioAccountBeta {
		t.Fatalf("good signature: %v %v", revoked, err)
	}

	other := url.Values{"AccountSid": {vendorsim.TwilioAccountBeta}, "ConnectAppSid": {"CN" + strings.Repeat("f", 32)}}
	tampered := signedRequest(t, good, vendorsim.TwilioOwnerAuthToken)
	tampered.Body = io.NopCloser(strings.NewReader(url.Values{"AccountSid": {vendorsim.TwilioAccountAcme}, "ConnectAppSid": {vendorsim.TwilioConnectAppSid}}.Encode()))
	wrongURL := httptest.NewRequest(http.MethodPost, DeauthorizePath, strings.NewReader(good.Encode()))
	wrongURL.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	wrongURL.Header.Set("X-Twilio-Signature", vendorsim.TwilioSignature(vendorsim.TwilioOwnerAuthToken, "http://elsewhere.test"+DeauthorizePath, good))
	for name, r := range map[string]*http.Request{
		"missing signature":  signedRequest(t, good, ""),
		"wrong token":        signedRequest(t, good, "someoneElsesAuthToken00000000000"),
		"tampered body":      tampered,
		"signed for another": wrongURL,
		"other Connect App":  signedRequest(t, other, vendorsim.TwilioOwnerAuthToken),
	} {
		revoked, err := p.Webhook(r, "deauthorize")
		if !errors.Is(err, provider.ErrForbidden) || revoked != nil {
			t.Errorf("%s: want ErrForbidden, got %v %v", name, revoked, err)
		}
		if err != nil && strings.Contains(err.Error(), vendorsim.TwilioOwnerAuthToken) {
			t.Errorf("%s: token in error", name)
		}
	}

	if _, err := p.Webhook(signedRequest(t, good, vendorsim.TwilioOwnerAuthToken), "callback2"); err == nil || errors.Is(err, provider.ErrForbidden) {
		t.Errorf("unknown name: want a plain error, got %v", err)
	}
	noAccount := url.Values{"AccountSid": {"nope"}, "ConnectAppSid": {vendorsim.TwilioConnectAppSid}}
	if _, err := p.Webhook(signedRequest(t, noAccount, vendorsim.TwilioOwnerAuthToken), "deauthorize"); err == nil || errors.Is(err, provider.ErrForbidden) {
		t.Errorf("signed but no valid AccountSid: want a plain error, got %v", err)
	}
	big := httptest.NewRequest(http.MethodPost, DeauthorizePath, strings.NewReader("AccountSid="+strings.Repeat("A", 2*maxWebhookBody)))
	big.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	big.Header.Set("X-Twilio-Signature", "x")
	var mbe *http.MaxBytesError
	if _, err := p.Webhook(big, "deauthorize"); !errors.As(err, &mbe) {
		t.Errorf("oversized body: want *http.MaxBytesError, got %v", err)
	}
	// Without a configured Connect App nothing can be authenticated.
	bare := newProvider(t, "api_url: http://127.0.0.1:1\n")
	if _, err := bare.Webhook(signedRequest(t, good, vendorsim.TwilioOwnerAuthToken), "deauthorize"); !errors.Is(err, provider.ErrForbidden) {
		t.Errorf("unconfigured: want ErrForbidden, got %v", err)
	}
}

func connect(p *Provider) provider.RedirectMethod {
	return p.Methods()[0].(provider.RedirectMethod)
}

func TestAuthorizeURL(t *testing.T) {
	p := newProvider(t, simConfig("http://127.0.0.1:1"))
	m := connect(p)
	if m.Name() != "connect" || m.Title() != "Twilio Connect" || !m.Enabled() {
		t.Errorf("method: %s %s %v", m.Name(), m.Title(), m.Enabled())
	}
	u, err := m.AuthorizeURL(provider.Flow{State: "st a/te", RedirectURL: externalURL + CallbackPath})
	want := "http://127.0.0.1:1/twilio-www/authorize/" + vendorsim.TwilioConnectAppSid + "?state=st+a%2Fte"
	if err != nil || u != want {
		t.Errorf("AuthorizeURL = %q, %v; want %q", u, err, want)
	}
	p2, err := New(nil, provider.Env{})
	if err != nil {
		t.Fatal(err)
	}
	m2 := connect(p2.(*Provider))
	if m2.Enabled() {
		t.Error("enabled without configuration")
	}
	if _, err := m2.AuthorizeURL(provider.Flow{State: "x"}); err == nil {
		t.Error("AuthorizeURL without configuration")
	}
}

func inputError(t *testing.T, err error, want string) {
	t.Helper()
	var ie *provider.InputError
	if !errors.As(err, &ie) || !strings.Contains(ie.Message, want) {
		t.Errorf("want an input error containing %q, got %v", want, err)
	}
}

func TestFinishErrors(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	m := connect(f.p)
	ctx := context.Background()
	fl := provider.Flow{State: "s", RedirectURL: externalURL + CallbackPath}
	_, err := m.Finish(ctx, http.DefaultClient, fl, url.Values{"error": {"unauthorized_client"}})
	inputError(t, err, "access was not granted on Twilio's consent page (Twilio answered unauthorized_client)")
	_, err = m.Finish(ctx, http.DefaultClient, fl, url.Values{"error": {"<script>"}})
	inputError(t, err, "answered an unreadable error")
	_, err = m.Finish(ctx, http.DefaultClient, fl, url.Values{})
	inputError(t, err, "without an AccountSid")
	_, err = m.Finish(ctx, http.DefaultClient, fl, url.Values{"AccountSid": {"AC123"}})
	inputError(t, err, "not an Account SID")
	// Acme has not allowed the app on the consent page.
	_, err = m.Finish(ctx, http.DefaultClient, fl, url.Values{"AccountSid": {vendorsim.TwilioAccountAcme}})
	inputError(t, err, "has not authorized the Connect App")
	if f.sim.Calls("twilio") != 1 {
		t.Errorf("%d calls to Twilio, want 1 (the account check)", f.sim.Calls("twilio"))
	}
	f.sim.SetFault("twilio", vendorsim.Fault{Status: 500})
	_, err = m.Finish(ctx, http.DefaultClient, fl, url.Values{"AccountSid": {vendorsim.TwilioAccountAcme}})
	var ie *provider.InputError
	if err == nil || errors.As(err, &ie) || !strings.Contains(err.Error(), "could not verify account") {
		t.Errorf("500: want a plain error, got %v", err)
	}
}

// The whole Connect flow against the simulator's consent page, as a
// browser does it.
func TestConnectFlow(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	if err := f.sim.SetTwilioConnectApp(externalURL+CallbackPath, externalURL+DeauthorizePath); err != nil {
		t.Fatal(err)
	}
	m := connect(f.p)
	fl := provider.Flow{State: "state-123", RedirectURL: externalURL + CallbackPath}
	authz, err := m.AuthorizeURL(fl)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(authz)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), vendorsim.TwilioConnectAppName) {
		t.Fatalf("consent page: %d %s", resp.StatusCode, page)
	}
	for _, tc := range []struct {
		decision string
		check    func(q url.Values)
	}{
		{"deny", func(q url.Values) {
			_, err := m.Finish(context.Background(), http.DefaultClient, fl, q)
			inputError(t, err, "unauthorized_client")
		}},
		{"allow", func(q url.Values) {
			cred, err := m.Finish(context.Background(), http.DefaultClient, fl, q)
			if err != nil {
				t.Fatal(err)
			}
			if cred.AccountID != vendorsim.TwilioAccountBeta || cred.Account != "Beta Labs" || cred.AuthMethod != "connect" ||
				cred.Settings["type"] != "Trial" || cred.Settings["status"] != "active" || cred.Secret == nil || len(cred.Secret) != 0 {
				t.Errorf("credential: %+v", cred)
			}
		}},
	} {
		resp, err := browser.PostForm(f.srv.URL+"/twilio-www/authorize/"+vendorsim.TwilioConnectAppSid,
			url.Values{"state": {fl.State}, "account_sid": {vendorsim.TwilioAccountBeta}, "decision": {tc.decision}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), externalURL+CallbackPath+"?") {
			t.Fatalf("%s: %d Location %q", tc.decision, resp.StatusCode, resp.Header.Get("Location"))
		}
		if loc.Query().Get("state") != fl.State {
			t.Errorf("%s: state not passed through: %s", tc.decision, loc)
		}
		tc.check(loc.Query())
	}
}

func TestConfig(t *testing.T) {
	ac, cn, tok := vendorsim.TwilioOwnerAccountSid, vendorsim.TwilioConnectAppSid, vendorsim.TwilioOwnerAuthToken
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for cfg, want := range map[string]string{
		"connect_app_sid: AC" + strings.Repeat("0", 32) + "\naccount_sid: " + ac + "\nauth_token: " + tok: `connect_app_sid: must be a Connect App SID, CN followed by 32 hex digits`,
		"connect_app_sid: " + cn + "\naccount_sid: AC123\nauth_token: " + tok:                             `account_sid: must be the Account SID of the account that owns the Connect App`,
		"connect_app_sid: " + cn + "\naccount_sid: " + ac + "\nauth_token: \"s3cr3t-with-dash\"":          `auth_token: contains characters a Twilio auth token never has`,
		"connect_app_sid: " + cn + "\naccount_sid: " + ac:                                                 `account_sid set but auth_token missing`,
		"connect_app_sid: " + cn: `connect_app_sid set but account_sid, auth_token missing`,
		"connect_app_sid: " + cn + "\naccount_sid: " + ac + "\nauth_token: " + tok + "\nauth_token_file: " + tokenFile: `auth_token: set either auth_token or auth_token_file, not both`,
		"auth_token_file: /nonexistent/token":                 `auth_token_file: open /nonexistent/token`,
		"api_url: api.twilio.com":                             `api_url: must be an absolute http(s) URL such as https://api.twilio.com, got "api.twilio.com"`,
		"authorize_url: https://www.twilio.com/authorize?x=1": `authorize_url: must not have a query`,
		"conect_app_sid: " + cn:                               `unknown key "conect_app_sid"`,
	} {
		_, err := build(cfg)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q:\n got %v\nwant %q", cfg, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("config %q: the token is echoed: %v", cfg, err)
		}
	}
	p := newProvider(t, "connect_app_sid: "+cn+"\naccount_sid: "+ac+"\nauth_token_file: "+tokenFile+"\n")
	if p.authToken != tok || !p.enabled() || p.apiURL != DefaultAPIURL || p.authorizeURL != DefaultAuthorizeURL {
		t.Errorf("token file and defaults: enabled=%v api=%s authorize=%s", p.enabled(), p.apiURL, p.authorizeURL)
	}
	t.Setenv("TW_TOKEN", tok)
	p = newProvider(t, "connect_app_sid: "+cn+"\naccount_sid: "+ac+"\nauth_token: ${TW_TOKEN}\napi_url: http://127.0.0.1:9800/twilio/\n")
	if p.authToken != tok || p.apiURL != "http://127.0.0.1:9800/twilio" {
		t.Errorf("env and trailing slash: api=%s", p.apiURL)
	}
}

// Label values from Twilio's enumerations stay a known set (#13 item 10).
func TestAccountTypeIsAKnownValue(t *testing.T) {
	for in, want := range map[string]string{"Full": "Full", "Trial": "Trial", "Enterprise " + strings.Repeat("x", 300): "other", "": "other"} {
		if got := accountType(in); got != want {
			t.Errorf("accountType(%.20q) = %q, want %q", in, got, want)
		}
	}
}
