package sendgrid

import (
	"context"
	"errors"
	"fmt"
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

// collectConn runs one collection of conn at t with the sections kept from
// prev (as the engine passes them), and returns what it exported.
func collectConn(t *testing.T, p *Provider, conn provider.Connection, at time.Time, prev map[string]provider.SectionResult) (metrics, *provider.Scrape, error) {
	t.Helper()
	s := &provider.Scrape{Conn: conn, HTTP: http.DefaultClient, Now: at, Previous: prev}
	err := p.Collect(context.Background(), s)
	m, _, _ := s.Result()
	return m, s, err
}

func keyConn(key, region string) provider.Connection {
	c := provider.Connection{Name: "prod", AuthMethod: "api_key", Secret: map[string]string{"api_key": key}}
	if region != "" {
		c.Settings = map[string]string{"region": region}
	}
	return c
}

// TestPagesStopOnShortPage: a page shorter than the limit is the last one
// (the old loop asked for one more, empty, page of every list). After a
// full first page the next pageWave pages are asked at once (issue #17: a
// long list in a round trip per pageWave pages), so 7 teammates at 3 a
// page take 2 round trips and 5 calls.
func TestPagesStopOnShortPage(t *testing.T) {
	for _, c := range []struct {
		items, limit, calls, rounds int
	}{{7, 3, 5, 2}, {6, 3, 5, 2}, {0, 3, 1, 1}, {2, 500, 1, 1}, {1000, 500, 5, 2}, {14, 3, 5, 2}, {15, 3, 9, 3}} {
		var (
			mu                  sync.Mutex
			calls, got, highest int
		)
		err := pages(context.Background(), c.limit, func(_ context.Context, offset, limit int) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			highest = max(highest, offset)
			n := max(min(limit, c.items-offset), 0)
			got += n
			return n, nil
		})
		// Round trips: the first page, then one per wave.
		rounds := 1 + (highest/c.limit+pageWave-1)/pageWave
		if err != nil || calls != c.calls || got != c.items || rounds != c.rounds {
			t.Errorf("%d items, limit %d: %d calls in %d round trips for %d items (%v), want %d calls in %d", c.items, c.limit, calls, rounds, got, err, c.calls, c.rounds)
		}
	}

	sim, p := newSim(t)
	p.pageSize = 3
	m, _, err := collectConn(t, p, keyConn(vendorsim.SendGridKeyAcme, ""), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	routes := sim.CallCounts().Routes
	if routes["GET /sendgrid/v3/teammates"] != 5 || routes["GET /sendgrid/v3/subusers"] != 5 {
		t.Errorf("calls: teammates %d (want 5 for 7: a page, then a wave of 4), subusers %d (want 5 for 5)", routes["GET /sendgrid/v3/teammates"], routes["GET /sendgrid/v3/subusers"])
	}
	want := `
# HELP saas_sendgrid_teammates Teammates (seats) by user type, SSO teammates included.
# TYPE saas_sendgrid_teammates gauge
saas_sendgrid_teammates{connection="prod",user_type="admin"} 2
saas_sendgrid_teammates{connection="prod",user_type="owner"} 1
saas_sendgrid_teammates{connection="prod",user_type="teammate"} 4
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "saas_sendgrid_teammates"); err != nil {
		t.Error(err)
	}
}

// Invitations past their expiration_date are counted apart.
func TestPendingExpired(t *testing.T) {
	_, p := newSim(t)
	for _, c := range []struct {
		key, region   string
		live, expired float64
	}{{vendorsim.SendGridKeyAcme, "", 2, 1}, {vendorsim.SendGridKeyEuro, "eu", 0, 1}} {
		m, _, err := collectConn(t, p, keyConn(c.key, c.region), now, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`
# HELP saas_sendgrid_teammates_pending Teammate invitations not accepted yet and not expired.
# TYPE saas_sendgrid_teammates_pending gauge
saas_sendgrid_teammates_pending{connection="prod"} %v
# HELP saas_sendgrid_teammates_pending_expired Teammate invitations past their expiration_date, never accepted (they hold no seat; resending renews them).
# TYPE saas_sendgrid_teammates_pending_expired gauge
saas_sendgrid_teammates_pending_expired{connection="prod"} %v
`, c.live, c.expired)
		if err := testutil.CollectAndCompare(m, strings.NewReader(want), "saas_sendgrid_teammates_pending", "saas_sendgrid_teammates_pending_expired"); err != nil {
			t.Errorf("%s: %v", c.key[:25], err)
		}
	}
}

// TestRegionVerify: the key is checked in the chosen region; a key of
// the other region is refused with the region to choose, and the key
// never appears in an error.
func TestRegionVerify(t *testing.T) {
	_, p := newSim(t)
	m := p.Methods()[0].(provider.FormMethod)
	if f := m.Fields(); len(f) != 2 || f[1].Name != "region" || strings.Join(f[1].Options, ",") != "global,eu" {
		t.Fatalf("fields %+v", f)
	}
	cred, err := m.Verify(context.Background(), http.DefaultClient, map[string]string{"api_key": vendorsim.SendGridKeyEuro, "region": "eu"})
	if err != nil {
		t.Fatal(err)
	}
	if cred.Settings["region"] != "eu" || cred.Account != "euro" {
		t.Errorf("euro credential: %v %q", cred.Settings, cred.Account)
	}
	for _, c := range []struct {
		key, region, field, want string
	}{
		{vendorsim.SendGridKeyEuro, "global", "region", "this key belongs to SendGrid's EU region: choose region eu"},
		{vendorsim.SendGridKeyEuro, "", "region", "choose region eu"},
		{vendorsim.SendGridKeyAcme, "eu", "region", "this key belongs to SendGrid's global region: choose region global"},
		{"SG.unknown.key-that-is-unknown", "eu", "api_key", "SendGrid rejected the key in region eu"},
		{vendorsim.SendGridKeyAcme, "mars", "region", `unknown region "mars": choose one of global, eu`},
	} {
		_, err := m.Verify(context.Background(), http.DefaultClient, map[string]string{"api_key": c.key, "region": c.region})
		var ie *provider.InputError
		if !errors.As(err, &ie) || ie.Field != c.field || !strings.Contains(ie.Message, c.want) {
			t.Errorf("%s in %q: %v, want %s error containing %q", c.key[:12], c.region, err, c.field, c.want)
		}
		if err != nil && strings.Contains(err.Error(), c.key) {
			t.Errorf("the key is in the error: %v", err)
		}
	}
}

// TestRegionCollect: a connection calls its region's host only; a stored
// connection without a region is global (connections made before regions).
func TestRegionCollect(t *testing.T) {
	sim, p := newSim(t)
	if _, _, err := collectConn(t, p, keyConn(vendorsim.SendGridKeyEuro, "eu"), now, nil); err != nil {
		t.Fatal(err)
	}
	for route, n := range sim.CallCounts().Routes {
		if n > 0 && !strings.HasPrefix(route, "GET /sendgrid-eu/") {
			t.Errorf("EU connection called %s", route)
		}
	}
	_, _, err := collectConn(t, p, keyConn(vendorsim.SendGridKeyEuro, ""), now, nil)
	var se *provider.StateError
	if !errors.As(err, &se) || se.State != "revoked" {
		t.Errorf("EU key on the global host: %v, want revoked", err)
	}
	if _, _, err := collectConn(t, p, keyConn(vendorsim.SendGridKeyAcme, "atlantis"), now, nil); err == nil || !strings.Contains(err.Error(), "region is not one of global, eu; reconnect it") {
		t.Errorf("bad stored region: %v", err)
	}
}

// TestSubusers: the top max_subusers by requests, per period; credits for
// this month's top ones; none for a key or account without subusers.
func TestSubusers(t *testing.T) {
	sim, p := newSimConfig(t, "max_subusers: 2\n")
	m, _, err := collectConn(t, p, keyConn(vendorsim.SendGridKeyAcme, ""), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m, "saas_sendgrid_subuser_emails"); n != 2*16*3 {
		t.Errorf("%d subuser email series, want 96 (2 subusers x 16 events x 3 periods)", n)
	}
	month := vendorsim.SendGridSubuserRangeStats(vendorsim.SendGridKeyAcme, "acme-transactional", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), now)
	want := fmt.Sprintf(`
# HELP saas_sendgrid_subuser_credits_remaining Email credits a subuser has left of its own allocation (GET /v3/subusers/{name}/credits), for the subusers with the most requests this month; subusers without a limit are left out.
# TYPE saas_sendgrid_subuser_credits_remaining gauge
saas_sendgrid_subuser_credits_remaining{connection="prod",subuser="acme-marketing"} 52555
saas_sendgrid_subuser_credits_remaining{connection="prod",subuser="acme-transactional"} 22459
# HELP saas_sendgrid_subuser_emails Email events of one subuser in the period (GET /v3/subusers/stats/sums), for the vendors.sendgrid.max_subusers subusers with the most requests in that period.
# TYPE saas_sendgrid_subuser_emails gauge
saas_sendgrid_subuser_emails{connection="prod",event="requests",period="this_month",subuser="acme-marketing"} 47445
saas_sendgrid_subuser_emails{connection="prod",event="requests",period="this_month",subuser="acme-transactional"} %d
`, month["requests"])
	got := append(with(m, "saas_sendgrid_subuser_credits_remaining", nil),
		with(m, "saas_sendgrid_subuser_emails", map[string]string{"event": "requests", "period": "this_month"})...)
	if err := testutil.CollectAndCompare(got, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if n := sim.CallCounts().Routes["GET /sendgrid/v3/subusers/acme-transactional/credits"] + sim.CallCounts().Routes["GET /sendgrid/v3/subusers/acme-marketing/credits"]; n != 2 {
		t.Errorf("%d credit calls, want 2: %v", n, sim.CallCounts().Routes)
	}

	// No subusers scope (beta, euro), or max_subusers 0: none, no error.
	_, p0 := newSimConfig(t, "max_subusers: 0\n")
	for _, c := range []struct {
		p        *Provider
		key, reg string
	}{{p, vendorsim.SendGridKeyBeta, ""}, {p, vendorsim.SendGridKeyEuro, "eu"}, {p0, vendorsim.SendGridKeyAcme, ""}} {
		m, _, err := collectConn(t, c.p, keyConn(c.key, c.reg), now, nil)
		if err != nil {
			t.Errorf("%s: %v", c.key[:25], err)
		}
		if n := testutil.CollectAndCount(m, "saas_sendgrid_subuser_emails", "saas_sendgrid_subuser_credits_remaining"); n != 0 {
			t.Errorf("%s: %d subuser series", c.key[:25], n)
		}
	}
}

// TestLastMonthEvery: the closed month is fetched once, kept for
// closedMonthEvery, fetched again after it, and a new month starts anew.
func TestLastMonthEvery(t *testing.T) {
	var (
		mu  sync.Mutex
		clk = now
	)
	sim, p := newSimAt(t, "", func() time.Time { mu.Lock(); defer mu.Unlock(); return clk })
	conn := keyConn(vendorsim.SendGridKeyAcme, "")
	statsCalls := func() int64 { return sim.CallCounts().Routes["GET /sendgrid/v3/stats"] }
	sumsCalls := func() int64 { return sim.CallCounts().Routes["GET /sendgrid/v3/subusers/stats/sums"] }
	lastMonth := func(m metrics) int {
		return len(with(m, "saas_sendgrid_emails", map[string]string{"period": "last_month"})) +
			len(with(m, "saas_sendgrid_subuser_emails", map[string]string{"period": "last_month"}))
	}
	m, s, err := collectConn(t, p, conn, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.SectionResults()["stats.read:last_month:2026-02"]; !ok || statsCalls() != 3 || sumsCalls() != 3 || lastMonth(m) != 16+5*16 {
		t.Fatalf("first collection: sections %v, %d stats calls (want 3), %d sums calls (want 3: today, this month shared by stats and credits, last month), %d last_month series", keys(s.SectionResults()), statsCalls(), sumsCalls(), lastMonth(m))
	}
	m, s, err = collectConn(t, p, conn, now.Add(closedMonthEvery-time.Minute), s.SectionResults())
	if err != nil || statsCalls() != 5 || lastMonth(m) != 16+5*16 {
		t.Errorf("within %s: %v, %d stats calls (want 5: last month kept), %d last_month series", closedMonthEvery, err, statsCalls(), lastMonth(m))
	}
	if _, s, err = collectConn(t, p, conn, now.Add(closedMonthEvery+time.Minute), s.SectionResults()); err != nil {
		t.Fatal(err)
	}
	if statsCalls() != 8 {
		t.Errorf("after %s: %d stats calls, want 8", closedMonthEvery, statsCalls())
	}
	april := time.Date(2026, 4, 1, 0, 30, 0, 0, time.UTC)
	mu.Lock()
	clk = april
	mu.Unlock()
	if _, s, err = collectConn(t, p, conn, april, s.SectionResults()); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.SectionResults()["stats.read:last_month:2026-03"]; !ok || statsCalls() != 11 {
		t.Errorf("new month: sections %v, %d stats calls (want 11)", keys(s.SectionResults()), statsCalls())
	}
	if _, old := s.SectionResults()["stats.read:last_month:2026-02"]; old {
		t.Error("February is still kept in April")
	}
}

// with returns the series of metric name whose labels include match.
func with(m metrics, name string, match map[string]string) metrics {
	var out metrics
	for _, x := range m {
		if !strings.Contains(x.Desc().String(), `fqName: "`+name+`"`) {
			continue
		}
		var pb dto.Metric
		if err := x.Write(&pb); err != nil {
			continue
		}
		n := 0
		for _, l := range pb.GetLabel() {
			if v, ok := match[l.GetName()]; ok && v == l.GetValue() {
				n++
			}
		}
		if n == len(match) {
			out = append(out, x)
		}
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestCreditsResetFrequency(t *testing.T) {
	_, p := newSim(t)
	m, _, err := collectConn(t, p, keyConn(vendorsim.SendGridKeyEuro, "eu"), now, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP saas_sendgrid_credits_reset_frequency How often the credits reset (reset_frequency of GET /v3/user/credits); one-hot. The credit cycle need not be the calendar month of the this_month stats.
# TYPE saas_sendgrid_credits_reset_frequency gauge
saas_sendgrid_credits_reset_frequency{connection="prod",frequency="daily"} 0
saas_sendgrid_credits_reset_frequency{connection="prod",frequency="monthly"} 0
saas_sendgrid_credits_reset_frequency{connection="prod",frequency="weekly"} 1
# HELP saas_sendgrid_credits_reset_timestamp_seconds When the credits next reset (Unix time, start of the UTC day).
# TYPE saas_sendgrid_credits_reset_timestamp_seconds gauge
saas_sendgrid_credits_reset_timestamp_seconds{connection="prod"} 1.7736192e+09
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "saas_sendgrid_credits_reset_frequency", "saas_sendgrid_credits_reset_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}

// Vendor text in labels is valid UTF-8 and at most 128 characters; names
// alike in their first 128 characters stay two subusers (the cut keeps a
// hash of the whole name); an empty name is left out.
func TestLabelBounds(t *testing.T) {
	long := strings.Repeat("é", 300)
	body := fmt.Sprintf(`{"date":"2026-03-01","stats":[{"name":%q,"type":"subuser","metrics":{"requests":3}},{"name":%q,"type":"subuser","metrics":{"requests":2}},{"name":"","type":"subuser","metrics":{"requests":1}},{"name":"ok","type":"subuser","metrics":{"requests":1}}]}`,
		long+"a", long+"b")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
	t.Cleanup(srv.Close)
	p := &Provider{maxSubusers: 50}
	top, err := p.topSubusers(context.Background(), &client{hc: srv.Client(), apiURL: srv.URL, key: "SG.x"}, currentPeriods(now)[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(top) != 3 || top[2].label != "ok" || top[0].name != long+"a" || top[1].name != long+"b" || top[0].label == top[1].label ||
		utf8.RuneCountInString(top[0].label) != provider.MaxLabelLen || utf8.RuneCountInString(top[1].label) != provider.MaxLabelLen {
		t.Errorf("top: %d subusers: %+v", len(top), top)
	}
}

// saas_sendgrid_account_info{type} takes SendGrid's two documented types;
// any other text the vendor sends is "other", never a label of its own.
func TestAccountTypeIsAKnownValue(t *testing.T) {
	for in, want := range map[string]string{"free": "free", "Paid": "paid", "enterprise " + strings.Repeat("x", 500): "other"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"type":%q,"reputation":99}`, in)
		}))
		s := &provider.Scrape{Conn: provider.Connection{Name: "prod"}, HTTP: srv.Client(), Now: time.Now()}
		if err := collectAccount(context.Background(), &client{hc: srv.Client(), apiURL: srv.URL, key: "SG.x"}, s); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		ms, _, _ := s.Result()
		found := false
		for _, m := range ms {
			var pb dto.Metric
			m.Write(&pb)
			for _, l := range pb.GetLabel() {
				if l.GetName() == "type" {
					found = true
					if l.GetValue() != want {
						t.Errorf("type %.20q: label %q, want %q", in, l.GetValue(), want)
					}
				}
			}
		}
		if !found {
			t.Errorf("type %.20q: no account_info series", in)
		}
	}
}
