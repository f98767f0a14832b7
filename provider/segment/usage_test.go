package segment

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/saas-exporter/saas_exporter/provider"
)

func TestParseCount(t *testing.T) {
	for in, want := range map[string]float64{
		`"0"`:                              0,
		`"615003"`:                         615003,
		`"2475000003"`:                     2475000003,
		`"9007199254740993"`:               9007199254740992, // 2^53+1: parsed exactly, rounded once to float64
		`"18446744073709551617"`:           18446744073709551616,
		`"000042"`:                         42,
		`12`:                               12, // a bare JSON integer
		`"123456789012345678901234567890"`: 1.2345678901234568e29,
	} {
		got, err := parseCount(json.RawMessage(in))
		if err != nil || got != want {
			t.Errorf("parseCount(%s) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		`"12abc"`:                            `is "12abc", not a whole number`,
		`"-5"`:                               `is "-5", not a whole number`,
		`"1e3"`:                              `not a whole number`,
		`"1.5"`:                              `not a whole number`,
		`" 12"`:                              `not a whole number`,
		`""`:                                 `is "", not a whole number`,
		`null`:                               "is missing",
		``:                                   "is missing",
		`true`:                               "not a whole number",
		`1.5`:                                "not a whole number",
		`"` + strings.Repeat("9", 200) + `"`: "…", // bounded in the message
	} {
		_, err := parseCount(json.RawMessage(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseCount(%s) = %v, want error containing %q", in, err, want)
		}
	}
}

// fakeSegment answers GET / and empty lists, and the usage lists from
// the given bodies (data objects).
func fakeSegment(t *testing.T, mtu, calls string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/":
			w.Write([]byte(`{"data":{"workspace":{"id":"w1","name":"","slug":"fake"}}}`))
		case "/usage/mtu/daily":
			w.Write([]byte(`{"data":` + mtu + `}`))
		case "/usage/api-calls/daily":
			w.Write([]byte(`{"data":` + calls + `}`))
		case "/usage/mtu/sources/daily":
			w.Write([]byte(`{"data":{"dailyPerSourceMTUUsage":[{"sourceId":"s1","periodStart":1772323200,"periodEnd":1775001600,"identified":"1","anonymous":"0","anonymousIdentified":"0","neverIdentified":"0","timestamp":"2026-03-15T00:00:00.000Z"}],"pagination":{"current":"MA=="}}}`))
		case "/usage/api-calls/sources/daily":
			w.Write([]byte(`{"data":{"dailyPerSourceAPICallsUsage":[{"sourceId":"s1","apiCalls":"1","timestamp":"2026-03-15T00:00:00.000Z"}],"pagination":{"current":"MA=="}}}`))
		default:
			key := strings.TrimPrefix(r.URL.Path, "/")
			w.Write([]byte(`{"data":{"` + key + `":[],"pagination":{"current":"MA=="}}}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func collectFake(t *testing.T, srv *httptest.Server) (metrics, error) {
	t.Helper()
	p := newProvider(t, "api_url: "+srv.URL+"\n")
	s := &provider.Scrape{Conn: tokenConn("us", "sgp_fakeTokenForAFakeServer000000000"), HTTP: srv.Client(), Now: t0}
	err := p.Collect(context.Background(), s)
	m, _, _ := s.Result()
	return m, err
}

// Bigint strings end to end: the latest snapshot by timestamp wins, in
// whatever order the entries come.
func TestBigintsAndLatestSnapshot(t *testing.T) {
	mtu := `{"dailyWorkspaceMTUUsage":[
	 {"periodStart":1772323200,"periodEnd":1775001600,"identified":"9007199254740993","anonymous":12,"anonymousIdentified":"18446744073709551617","neverIdentified":"0","timestamp":"2026-03-15T00:00:00.000Z"},
	 {"periodStart":1772323200,"periodEnd":1775001600,"identified":"1","anonymous":"1","anonymousIdentified":"1","neverIdentified":"garbage is ignored in older entries","timestamp":"2026-03-14T00:00:00.000Z"}
	],"pagination":{"current":"MA==","next":null}}`
	calls := `{"dailyWorkspaceAPICallsUsage":[{"apiCalls":"123456789012345678901234567890","timestamp":"2026-03-15T00:00:00.000Z"}],"pagination":{"current":"MA=="}}`
	m, err := collectFake(t, fakeSegment(t, mtu, calls))
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP saas_segment_api_calls API calls of a Segment usage period (this_month: so far; last_month: the previous period), from Segment's latest daily cumulative count.
# TYPE saas_segment_api_calls gauge
saas_segment_api_calls{connection="prod",period="last_month"} 1.2345678901234568e+29
saas_segment_api_calls{connection="prod",period="this_month"} 1.2345678901234568e+29
# HELP saas_segment_mtu Monthly tracked users of a Segment usage period (this_month: so far; last_month: the previous period), by kind, from Segment's latest daily cumulative count. Billable MTUs = identified + never_identified.
# TYPE saas_segment_mtu gauge
saas_segment_mtu{connection="prod",kind="anonymous",period="last_month"} 12
saas_segment_mtu{connection="prod",kind="anonymous",period="this_month"} 12
saas_segment_mtu{connection="prod",kind="anonymous_identified",period="last_month"} 1.8446744073709552e+19
saas_segment_mtu{connection="prod",kind="anonymous_identified",period="this_month"} 1.8446744073709552e+19
saas_segment_mtu{connection="prod",kind="identified",period="last_month"} 9.007199254740992e+15
saas_segment_mtu{connection="prod",kind="identified",period="this_month"} 9.007199254740992e+15
saas_segment_mtu{connection="prod",kind="never_identified",period="last_month"} 0
saas_segment_mtu{connection="prod",kind="never_identified",period="this_month"} 0
# HELP saas_segment_warehouses Warehouses connected to the Segment workspace.
# TYPE saas_segment_warehouses gauge
saas_segment_warehouses{connection="prod"} 0
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "saas_segment_api_calls", "saas_segment_mtu", "saas_segment_warehouses"); err != nil {
		t.Error(err)
	}
}

func TestUsageGarbage(t *testing.T) {
	okCalls := `{"dailyWorkspaceAPICallsUsage":[],"pagination":{"current":"MA=="}}`
	for name, c := range map[string]struct{ mtu, calls, want string }{
		"garbage count": {`{"dailyWorkspaceMTUUsage":[{"periodStart":1772323200,"periodEnd":1775001600,"identified":"12abc","anonymous":"1","anonymousIdentified":"1","neverIdentified":"1","timestamp":"2026-03-15T00:00:00.000Z"}],"pagination":{"current":"MA=="}}`,
			okCalls, `segment GET /usage/mtu/daily: identified of 2026-03-15T00:00:00.000Z is "12abc", not a whole number`},
		"missing count": {`{"dailyWorkspaceMTUUsage":[{"identified":"1","anonymous":"1","anonymousIdentified":"1","timestamp":"2026-03-15T00:00:00.000Z"}],"pagination":{"current":"MA=="}}`,
			okCalls, "never_identified of 2026-03-15T00:00:00.000Z is missing"},
		"bad timestamp": {`{"dailyWorkspaceMTUUsage":[{"identified":"1","anonymous":"1","anonymousIdentified":"1","neverIdentified":"1","timestamp":"yesterday"}],"pagination":{"current":"MA=="}}`,
			okCalls, `timestamp "yesterday" is not an ISO-8601 time`},
		"no list":    {`{"somethingElse":[]}`, okCalls, "the answer has no data.dailyWorkspaceMTUUsage"},
		"not a list": {`{"dailyWorkspaceMTUUsage":{"a":1}}`, okCalls, "data.dailyWorkspaceMTUUsage does not parse"},
		"bad api calls": {`{"dailyWorkspaceMTUUsage":[{"periodStart":1772323200,"periodEnd":1775001600,"identified":"1","anonymous":"1","anonymousIdentified":"1","neverIdentified":"1","timestamp":"2026-03-15T00:00:00.000Z"}],"pagination":{"current":"MA=="}}`,
			`{"dailyWorkspaceAPICallsUsage":[{"apiCalls":"-3","timestamp":"2026-03-15T00:00:00Z"}]}`, `apiCalls of 2026-03-15T00:00:00Z is "-3", not a whole number`},
		"stuck cursor": {`{"dailyWorkspaceMTUUsage":[],"pagination":{"current":"MA==","next":"MA=="}}`, okCalls, ""},
	} {
		m, err := collectFake(t, fakeSegment(t, c.mtu, c.calls))
		if err == nil || !strings.Contains(err.Error(), c.want) || stateOf(err) != "" {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
		// The lists still made it.
		if n := testutil.CollectAndCount(m, "saas_segment_sources"); n != 1 {
			t.Errorf("%s: the other sections were lost (%d)", name, n)
		}
	}
}

func TestAddMonth(t *testing.T) {
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 0, 0, 0, 0, time.UTC) }
	for _, c := range []struct {
		in   time.Time
		n    int
		want time.Time
	}{
		{d(2026, 3, 10), -1, d(2026, 2, 10)},
		{d(2026, 3, 31), -1, d(2026, 2, 28)},
		{d(2026, 1, 31), 1, d(2026, 2, 28)},
		{d(2028, 1, 30), 1, d(2028, 2, 29)},
		{d(2026, 12, 15), 1, d(2027, 1, 15)},
		{d(2026, 1, 1), -1, d(2025, 12, 1)},
	} {
		if got := addMonth(c.in, c.n); !got.Equal(c.want) {
			t.Errorf("addMonth(%s, %d) = %s, want %s", c.in.Format(time.DateOnly), c.n, got.Format(time.DateOnly), c.want.Format(time.DateOnly))
		}
	}
}
