package twilio

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// clock is the time the simulator and the scrape share.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// queries records the query of every request, by path.
type queries struct {
	mu   sync.Mutex
	seen map[string][]url.Values
}

func (q *queries) RoundTrip(r *http.Request) (*http.Response, error) {
	q.mu.Lock()
	if q.seen == nil {
		q.seen = map[string][]url.Values{}
	}
	q.seen[r.URL.Path] = append(q.seen[r.URL.Path], r.URL.Query())
	q.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// run is one collection at the clock's time with the sections kept from
// prev, as the engine does.
func (f *fixture) run(t *testing.T, sid string, at time.Time, prev map[string]provider.SectionResult, rt http.RoundTripper) (metrics, map[string]provider.SectionResult, error) {
	t.Helper()
	s := &provider.Scrape{Conn: provider.Connection{Vendor: vendor, Name: "prod", AccountID: sid, Secret: map[string]string{}},
		HTTP: &http.Client{Transport: rt}, Now: at, Previous: prev}
	err := f.p.Collect(context.Background(), s)
	m, _, _ := s.Result()
	return m, s.SectionResults(), err
}

// A parent connection: usage includes the subaccounts (asked for
// explicitly), each subaccount's own spend for this and last month, and
// the subaccounts by status. Values come from the simulator's documented
// formulas, computed apart (testdata/delta.prom).
func TestCollectParentWithSubaccounts(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	f.authorize(t, vendorsim.TwilioAccountDelta)
	q := &queries{}
	m, _, err := f.run(t, vendorsim.TwilioAccountDelta, now, nil, q)
	if err != nil {
		t.Fatal(err)
	}
	compareGolden(t, m, "delta.prom")
	lint(t, m)
	own := "/twilio/2010-04-01/Accounts/" + vendorsim.TwilioAccountDelta + "/Usage/Records/"
	for _, list := range []string{"Today", "ThisMonth", "LastMonth"} {
		for _, v := range q.seen[own+list+".json"] {
			if v.Get("IncludeSubaccounts") != "true" {
				t.Errorf("%s: IncludeSubaccounts=%q, want true sent explicitly", list, v.Get("IncludeSubaccounts"))
			}
		}
		if len(q.seen[own+list+".json"]) == 0 {
			t.Errorf("%s not read", list)
		}
	}
	sub := "/twilio/2010-04-01/Accounts/" + vendorsim.TwilioSubaccountDeltaEU + "/Usage/Records/ThisMonth.json"
	if v := q.seen[sub]; len(v) != 1 || v[0].Get("IncludeSubaccounts") != "false" || v[0].Get("Category") != "totalprice" {
		t.Errorf("subaccount usage asked as %v, want one call with IncludeSubaccounts=false&Category=totalprice", v)
	}
}

// A connected subaccount names its parent and lists no subaccounts of
// its own (testdata/eu.prom); Beta (Trial, Accounts.json 403) exports no
// subaccount series and succeeds (testdata/beta.prom).
func TestCollectConnectedSubaccountAndRefusedListing(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	for _, tc := range []struct{ sid, golden string }{
		{vendorsim.TwilioSubaccountDeltaEU, "eu.prom"},
		{vendorsim.TwilioAccountBeta, "beta.prom"},
	} {
		f.authorize(t, tc.sid)
		m, err := f.collect(t, context.Background(), tc.sid)
		if err != nil {
			t.Fatalf("%s: %v", tc.golden, err)
		}
		compareGolden(t, m, tc.golden)
	}
}

func TestMaxSubaccounts(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	f.p = newProvider(t, simConfig(f.srv.URL)+"max_subaccounts: 2\n")
	f.authorize(t, vendorsim.TwilioAccountDelta)
	m, err := f.collect(t, context.Background(), vendorsim.TwilioAccountDelta)
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m, "saas_twilio_subaccount_spend"); n != 4 {
		t.Errorf("%d spend series, want 2 subaccounts × 2 periods", n)
	}
	want := `
# HELP saas_twilio_subaccounts ` + helpOf(t, m, "saas_twilio_subaccounts") + `
# TYPE saas_twilio_subaccounts gauge
saas_twilio_subaccounts{connection="prod",status="active"} 2
saas_twilio_subaccounts{connection="prod",status="closed"} 1
saas_twilio_subaccounts{connection="prod",status="suspended"} 1
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "saas_twilio_subaccounts"); err != nil {
		t.Errorf("the count beyond max_subaccounts must stay: %v", err)
	}
	calls := 0
	for route, n := range f.sim.CallCounts().Routes {
		if strings.Contains(route, "/Accounts/ACde1a00000000000000000000000000e") && strings.Contains(route, "/Usage/") {
			calls += int(n)
		}
	}
	if calls != 4 {
		t.Errorf("%d subaccount usage calls, want 4", calls)
	}

	f.p = newProvider(t, simConfig(f.srv.URL)+"max_subaccounts: 0\n")
	m, err = f.collect(t, context.Background(), vendorsim.TwilioAccountDelta)
	if err != nil || testutil.CollectAndCount(m, "saas_twilio_subaccount_spend") != 0 || testutil.CollectAndCount(m, "saas_twilio_subaccounts") != 3 {
		t.Errorf("max_subaccounts 0: spend %d, counts %d, err %v", testutil.CollectAndCount(m, "saas_twilio_subaccount_spend"), testutil.CollectAndCount(m, "saas_twilio_subaccounts"), err)
	}
	for bad, want := range map[string]string{"-1": "max_subaccounts: must be from 0", "1001": "max_subaccounts: must be from 0", "lots": "cannot unmarshal !!str `lots` into int"} {
		if _, err := build(simConfig(f.srv.URL) + "max_subaccounts: " + bad + "\n"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("max_subaccounts %s: %v, want %q", bad, err, want)
		}
	}
}

func helpOf(t *testing.T, m metrics, name string) string {
	t.Helper()
	for _, x := range m {
		if strings.Contains(x.Desc().String(), `fqName: "`+name+`"`) {
			s := x.Desc().String()
			i := strings.Index(s, `help: "`) + len(`help: "`)
			return s[i : i+strings.Index(s[i:], `", `)]
		}
	}
	t.Fatalf("no %s", name)
	return ""
}

// deltaFixture is a simulator on a settable clock at now, with pages of
// 1000 and the parent Delta authorized.
func deltaFixture(t *testing.T) (*clock, *fixture) {
	t.Helper()
	c := &clock{t: now}
	f := newFixture(t, vendorsim.Options{Now: c.Now, PageSize: 1000})
	f.authorize(t, vendorsim.TwilioAccountDelta)
	return c, f
}

// last_month is read once, then at most every closedEvery; a new month is
// a new section, read at once.
func TestLastMonthFetchedRarely(t *testing.T) {
	c, f := deltaFixture(t)
	lastMonth := func() (own, sub int64) {
		r := f.sim.CallCounts().Routes
		return r["GET /twilio/2010-04-01/Accounts/"+vendorsim.TwilioAccountDelta+"/Usage/Records/LastMonth.json"],
			r["GET /twilio/2010-04-01/Accounts/"+vendorsim.TwilioSubaccountDeltaEU+"/Usage/Records/LastMonth.json"]
	}
	var prev map[string]provider.SectionResult
	var m metrics
	for i, step := range []struct {
		at            time.Time
		own, sub      int64
		lastMonthDays string
	}{
		{now, 1, 1, "2026-02"},
		{now.Add(time.Hour), 1, 1, "2026-02"},
		{now.Add(closedEvery - time.Minute), 1, 1, "2026-02"},
		{now.Add(closedEvery), 2, 2, "2026-02"},
		{time.Date(2026, 4, 1, 0, 5, 0, 0, time.UTC), 3, 3, "2026-03"},
	} {
		c.Set(step.at)
		var err error
		m, prev, err = f.run(t, vendorsim.TwilioAccountDelta, step.at, prev, nil)
		if err != nil {
			t.Fatal(err)
		}
		if own, sub := lastMonth(); own != step.own || sub != step.sub {
			t.Errorf("step %d (%s): LastMonth read %d times for the parent and %d for a subaccount, want %d and %d", i, step.at, own, sub, step.own, step.sub)
		}
		if n := countWhere(m, "saas_twilio_usage_price", "period", "last_month"); n == 0 {
			t.Errorf("step %d: last_month series missing while not due", i)
		}
		if _, ok := prev["usage:last_month:"+step.lastMonthDays]; !ok {
			t.Errorf("step %d: no section for last month %s: %v", i, step.lastMonthDays, keys(prev))
		}
	}
}

func keys(m map[string]provider.SectionResult) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// countWhere counts series of name with label l = v.
func countWhere(m metrics, name, l, v string) int {
	n := 0
	for _, x := range m {
		if !strings.Contains(x.Desc().String(), `fqName: "`+name+`"`) {
			continue
		}
		var pb dto.Metric
		_ = x.Write(&pb)
		for _, lp := range pb.GetLabel() {
			if lp.GetName() == l && lp.GetValue() == v {
				n++
			}
		}
	}
	return n
}

// value returns the gauge of name with exactly the given labels (besides
// connection), and whether it is there.
func value(m metrics, name string, labels map[string]string) (float64, bool) {
	for _, x := range m {
		if !strings.Contains(x.Desc().String(), `fqName: "`+name+`"`) {
			continue
		}
		var pb dto.Metric
		_ = x.Write(&pb)
		match := len(pb.GetLabel()) == len(labels)+1
		for _, lp := range pb.GetLabel() {
			if lp.GetName() != "connection" && labels[lp.GetName()] != lp.GetValue() {
				match = false
			}
		}
		if match {
			return pb.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// A category used earlier stays at 0 at the day boundary, through the new
// day, and is left out the day after (Acme's phone numbers are billed on
// the 1st only). The same across a month boundary for this_month.
func TestUnusedCategoryKeptAtZeroUntilThePeriodEnds(t *testing.T) {
	c := &clock{}
	f := newFixture(t, vendorsim.Options{Now: c.Now})
	f.authorize(t, vendorsim.TwilioAccountAcme)
	phone := map[string]string{"category": "phonenumbers", "period": "today", "currency": "USD"}
	keptSteps(t, f, c, phone, nil, []keptStep{
		{time.Date(2026, 3, 1, 23, 50, 0, 0, time.UTC), true, 8.05},
		{time.Date(2026, 3, 2, 0, 5, 0, 0, time.UTC), true, 0},
		{time.Date(2026, 3, 2, 23, 55, 0, 0, time.UTC), true, 0},
		{time.Date(2026, 3, 3, 0, 5, 0, 0, time.UTC), false, 0},
	})
}

type keptStep struct {
	at      time.Time
	present bool
	want    float64
}

// keptSteps collects Acme at each step's time, carrying the sections over,
// and checks the usage_price series with labels want (and that never, if
// set, is absent).
func keptSteps(t *testing.T, f *fixture, c *clock, want, never map[string]string, steps []keptStep) {
	t.Helper()
	var prev map[string]provider.SectionResult
	for i, step := range steps {
		c.Set(step.at)
		m, p, err := f.run(t, vendorsim.TwilioAccountAcme, step.at, prev, nil)
		if err != nil {
			t.Fatal(err)
		}
		prev = p
		if v, ok := value(m, "saas_twilio_usage_price", want); ok != step.present || v != step.want {
			t.Errorf("step %d (%s): %v = %v (present %v), want %v (present %v)", i, step.at, want, v, ok, step.want, step.present)
		}
		if _, ok := value(m, "saas_twilio_usage_price", never); never != nil && ok {
			t.Errorf("step %d: %v, never used, is exported", i, never)
		}
	}
}

// this_month: a fake Twilio whose month changes between two collections;
// sms had usage in February, none in March so far.
func TestThisMonthCategoryKeptAtZeroAfterTheFirst(t *testing.T) {
	c := &clock{t: time.Date(2026, 2, 28, 23, 55, 0, 0, time.UTC)}
	api := http.NewServeMux()
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		sms := "0"
		if c.Now().Month() == time.February {
			sms = "3"
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/ThisMonth.json"):
			w.Write([]byte(`{"next_page_uri":null,"usage_records":[{"category":"sms","count":"` + sms + `","usage":"` + sms + `","usage_unit":"messages","price":"` + sms + `","price_unit":"usd"},{"category":"mms","count":"0","usage":"0","usage_unit":"messages","price":"0","price_unit":"usd"},{"category":"totalprice","count":"0","usage":"` + sms + `","usage_unit":"usd","price":"` + sms + `","price_unit":"usd"}]}`))
		case strings.HasSuffix(r.URL.Path, "/Usage/Records/Today.json"), strings.HasSuffix(r.URL.Path, "/LastMonth.json"), strings.HasSuffix(r.URL.Path, "/IncomingPhoneNumbers.json"), r.URL.Path == "/twilio/2010-04-01/Accounts.json":
			w.Write([]byte(`{"next_page_uri":null,"usage_records":[],"incoming_phone_numbers":[],"accounts":[]}`))
		case strings.HasSuffix(r.URL.Path, "/Balance.json"):
			w.Write([]byte(`{"balance":"1.5","currency":"USD"}`))
		default:
			w.Write([]byte(`{"sid":"` + vendorsim.TwilioAccountAcme + `","status":"active","type":"Full","owner_account_sid":"` + vendorsim.TwilioAccountAcme + `"}`))
		}
	})
	srv := newServer(t, api)
	f := &fixture{p: newProvider(t, simConfig(srv))}
	sms := map[string]string{"category": "sms", "period": "this_month", "currency": "USD"}
	mms := map[string]string{"category": "mms", "period": "this_month", "currency": "USD"}
	keptSteps(t, f, c, sms, mms, []keptStep{
		{c.Now(), true, 3},
		{time.Date(2026, 3, 1, 0, 5, 0, 0, time.UTC), true, 0},
		{time.Date(2026, 3, 20, 0, 5, 0, 0, time.UTC), true, 0},
		{time.Date(2026, 4, 1, 0, 5, 0, 0, time.UTC), false, 0},
	})
}

// newServer serves h on loopback and returns its URL.
func newServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestMissingFirst(t *testing.T) {
	subs := []account{{Sid: "a"}, {Sid: "b"}, {Sid: "c"}, {Sid: "d"}}
	var got []string
	for _, a := range missingFirst(subs, map[string]bool{"a": true, "c": true}) {
		got = append(got, a.Sid)
	}
	if strings.Join(got, "") != "bdac" {
		t.Errorf("order %v, want b d a c", got)
	}
	if subs[0].Sid != "a" {
		t.Error("the input was reordered")
	}
}

// Each subaccount's spend this month is read at most every
// subaccountEvery; the counts on every collection.
func TestSubaccountSpendEvery(t *testing.T) {
	c, f := deltaFixture(t)
	routes := func() (list, spend int64) {
		r := f.sim.CallCounts().Routes
		return r["GET /twilio/2010-04-01/Accounts.json"], r["GET /twilio/2010-04-01/Accounts/"+vendorsim.TwilioSubaccountDeltaUS+"/Usage/Records/ThisMonth.json"]
	}
	var prev map[string]provider.SectionResult
	for i, step := range []struct {
		at    time.Time
		spend int64
	}{
		{now, 1},
		{now.Add(time.Minute), 1},
		{now.Add(subaccountEvery - time.Second), 1},
		{now.Add(subaccountEvery), 2},
	} {
		c.Set(step.at)
		list0, _ := routes()
		m, p, err := f.run(t, vendorsim.TwilioAccountDelta, step.at, prev, nil)
		if err != nil {
			t.Fatal(err)
		}
		prev = p
		list, spend := routes()
		if spend != step.spend || list == list0 {
			t.Errorf("step %d: subaccount ThisMonth read %d times (want %d); account list read %d times this collection (want at least 1)", i, spend, step.spend, list-list0)
		}
		if _, ok := value(m, "saas_twilio_subaccount_spend", map[string]string{"subaccount_sid": vendorsim.TwilioSubaccountDeltaUS, "subaccount": "Delta US", "period": "this_month", "currency": "USD"}); !ok {
			t.Errorf("step %d: the kept spend is not exported", i)
		}
	}
}

// A fake parent P with subaccounts S1, S2 whose usage answers are set per
// test: a 500 fails the section (kept for the next collection), a 401
// leaves the subaccount out without revoking the connection, an answer
// without totalprice is an error, not a zero.
func TestSubaccountSpendFailures(t *testing.T) {
	const (
		P  = "AC00000000000000000000000000000a00"
		S1 = "AC00000000000000000000000000000a01"
		S2 = "AC00000000000000000000000000000a02"
	)
	var mu sync.Mutex
	answer := map[string]int{S1: 200, S2: 200}
	body := map[string]string{}
	api := http.NewServeMux()
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		path := strings.TrimPrefix(r.URL.Path, "/twilio") // simConfig's api_url
		mu.Lock()
		defer mu.Unlock()
		switch {
		case path == "/2010-04-01/Accounts.json":
			w.Write([]byte(`{"next_page_uri":null,"accounts":[{"sid":"` + P + `","owner_account_sid":"` + P + `","status":"active","friendly_name":"P"},` +
				`{"sid":"` + S1 + `","owner_account_sid":"` + P + `","status":"active","friendly_name":"one"},{"sid":"` + S2 + `","owner_account_sid":"` + P + `","status":"suspended","friendly_name":"two"}]}`))
		case strings.Contains(path, "/Usage/Records/"):
			sid := strings.Split(path, "/")[3]
			if st, ok := answer[sid]; ok && st != 200 {
				w.WriteHeader(st)
				w.Write([]byte(`{"code":20003,"message":"Authenticate","more_info":"x","status":401}`))
				return
			}
			if b, ok := body[sid]; ok {
				w.Write([]byte(b))
				return
			}
			w.Write([]byte(`{"next_page_uri":null,"usage_records":[{"category":"totalprice","count":"0","usage":"2.5","usage_unit":"usd","price":"2.5","price_unit":"usd"}]}`))
		case strings.HasSuffix(path, "/IncomingPhoneNumbers.json"):
			w.Write([]byte(`{"next_page_uri":null,"incoming_phone_numbers":[]}`))
		case strings.HasSuffix(path, "/Balance.json"):
			w.Write([]byte(`{"balance":"1.5","currency":"USD"}`))
		default:
			w.Write([]byte(`{"sid":"` + P + `","status":"active","type":"Full","owner_account_sid":"` + P + `"}`))
		}
	})
	f := &fixture{p: newProvider(t, simConfig(newServer(t, api)))}
	spend := func(m metrics, sid, name string) (float64, bool) {
		return value(m, "saas_twilio_subaccount_spend", map[string]string{"subaccount_sid": sid, "subaccount": name, "period": "this_month", "currency": "USD"})
	}

	answer[S2] = 500
	m, prev, err := f.run(t, P, now, nil, nil)
	if err == nil || isRevoked(err) || !strings.Contains(err.Error(), "subaccount "+S2) {
		t.Errorf("a subaccount answering 500: want a plain error naming it, got %v", err)
	}
	if v, ok := spend(m, S1, "one"); !ok || v != 2.5 {
		t.Errorf("the other subaccount's spend must be exported: %v %v", v, ok)
	}
	mu.Lock()
	answer[S2] = 200
	mu.Unlock()
	m, prev, err = f.run(t, P, now.Add(time.Minute), prev, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := spend(m, S2, "two"); !ok {
		t.Error("the failed subaccount is not read again on the next collection")
	}

	mu.Lock()
	answer[S2] = 401
	mu.Unlock()
	m, _, err = f.run(t, P, now.Add(time.Hour), prev, nil)
	if err != nil {
		t.Errorf("a subaccount Twilio does not let us read: want no error, got %v", err)
	}
	if _, ok := spend(m, S2, "two"); ok {
		t.Error("the refused subaccount's spend is exported")
	}
	if n := testutil.CollectAndCount(m, "saas_twilio_subaccounts"); n != 3 {
		t.Errorf("subaccount counts: %d series", n)
	}

	mu.Lock()
	answer[S2] = 200
	body[S2] = `{"next_page_uri":null,"usage_records":[]}`
	mu.Unlock()
	_, _, err = f.run(t, P, now.Add(2*time.Hour), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "has no totalprice record") {
		t.Errorf("an empty usage answer: want an error, got %v", err)
	}
}
