package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/dashboards"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// promResult is the answer of Prometheus' query API.
type promResult struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	} `json:"data"`
}

// A real Prometheus scrapes the exporter with every vendor connected; every
// expression of every dashboard panel and alert rule runs through its API.
func TestPrometheusEndToEnd(t *testing.T) {
	// Not parallel: Prometheus scrapes within a timeout a busy machine can miss.
	promBin := requireTool(t, "prometheus")
	s := startStack(t, stackOptions{})

	// Every vendor, every auth method that needs no browser, one revoked
	// and one whose credential runs out soon (Segment OAuth with tokens of
	// 5 minutes whose renewals are refused: the access token's expiry
	// becomes the connection's).
	s.Sim.SetSegmentTokenLifetime(5 * time.Minute)
	for _, c := range []map[string]string{
		{"vendor": "sendgrid", "name": "sg-acme", "api_key": vendorsim.SendGridKeyAcme},
		{"vendor": "sendgrid", "name": "sg-beta", "api_key": vendorsim.SendGridKeyBeta},
		{"vendor": "sendgrid", "name": "sg-euro", "api_key": vendorsim.SendGridKeyEuro, "region": "eu"},
		{"vendor": "segment", "name": "seg-us", "token": vendorsim.SegmentTokenAcme, "region": "us"},
		{"vendor": "segment", "name": "seg-eu", "method": "client_credentials", "region": "eu", "client_id": vendorsim.SegmentOAuthClientEuro,
			"key_id": vendorsim.SegmentOAuthKeyIDEuro, "private_key": vendorsim.SegmentOAuthTestPrivateKey},
	} {
		if code := s.api("POST", "/api/v1/connections", c, nil); code != 201 {
			t.Fatalf("connect %s: %d", c["name"], code)
		}
	}
	// Twilio: a top-level account, a suspended one whose subaccount list
	// is refused, and a parent together with one of its subaccounts.
	for name, acct := range map[string]string{
		"tw-acme":     vendorsim.TwilioAccountAcme,
		"tw-gamma":    vendorsim.TwilioAccountGamma,
		"tw-delta":    vendorsim.TwilioAccountDelta,
		"tw-delta-eu": vendorsim.TwilioSubaccountDeltaEU,
	} {
		fc := newAPIFlowClient()
		resp := consentTwilio(t, fc, s.startFlow(fc, map[string]string{"vendor": "twilio", "name": name}), acct, "allow")
		resp.Body.Close()
	}
	s.Sim.SetSegmentOAuthRefuse(true)
	// sg-beta's key is revoked at SendGrid.
	s.Sim.RevokeSendGridKey(vendorsim.SendGridKeyBeta)
	conns := s.connections()
	if n := len(conns); n != 9 {
		t.Fatalf("%d connections, want 9", n)
	}
	// Budgets: tw-acme is over its budget (the simulator's Acme spends
	// more than 40 usd every day), sg-acme far under.
	for name, v := range map[string]float64{"tw-acme": 10, "sg-acme": 1e9} {
		if code := s.api("PUT", "/api/v1/connections/"+conns[name].ID+"/budget", map[string]any{"monthly": v}, nil); code != 200 {
			t.Fatalf("budget of %s: %d", name, code)
		}
	}
	// Every vendor's series, Twilio's subaccount spend and the budgets
	// included, pass Prometheus' own lint.
	full := s.scrape()
	if !strings.Contains(full, `saas_twilio_subaccount_spend{connection="tw-delta"`) {
		t.Error("no subaccount spend for the connected parent tw-delta")
	}
	if !strings.Contains(full, `saas_budget_monthly{connection="tw-acme",unit="usd",vendor="twilio"} 10`) {
		t.Error("no budget for tw-acme in the scrape")
	}
	promtoolCheck(t, full)

	// Prometheus on loopback, scraping /metrics every second, with the
	// shipped alert rules.
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	promAddr := l.Addr().String()
	l.Close()
	rules, err := filepath.Abs("../../dashboards/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: saas_exporter
    scrape_timeout: 1s
    static_configs:
      - targets: [%q]
`, rules, strings.TrimPrefix(s.URL, "http://"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var plog strings.Builder
	cmd := exec.CommandContext(ctx, promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &plog, &plog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel()

	query := func(q string) (promResult, error) {
		var r promResult
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
		if err != nil {
			return r, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &r); err != nil {
			return r, fmt.Errorf("%d %s", resp.StatusCode, b)
		}
		if r.Status != "success" {
			return r, fmt.Errorf("%s", r.Error)
		}
		return r, nil
	}
	// Wait for two successful scrapes.
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := query(`sum_over_time(up{job="saas_exporter"}[1m]) >= 2`)
		if err == nil && len(r.Data.Result) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not scrape the exporter twice: %v\n%s", err, plog.String())
		}
		time.Sleep(250 * time.Millisecond)
	}

	// And for the budget recording rules to have run on those scrapes.
	for {
		r, err := query(`saas:budget_usage:ratio{connection="tw-acme"} > 1`)
		if err == nil && len(r.Data.Result) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no budget ratio over 1 recorded for tw-acme: %v %v\n%s", r.Data.Result, err, plog.String())
		}
		time.Sleep(250 * time.Millisecond)
	}

	exprs, err := dashboards.Expressions("../../dashboards")
	if err != nil {
		t.Fatal(err)
	}
	var panels, alerts int
	for _, e := range exprs {
		r, err := query(e.Query)
		if err != nil {
			t.Errorf("%s: %s\n  %s", e.Source, err, e.Query)
			continue
		}
		switch e.Kind {
		case dashboards.KindPanel, dashboards.KindVariable:
			panels++
			if len(r.Data.Result) == 0 {
				t.Errorf("%s returns no data\n  %s", e.Source, e.Query)
			}
		case dashboards.KindAlert:
			alerts++
		}
	}
	t.Logf("%d panel and variable expressions and %d alert expressions ran against Prometheus", panels, alerts)
	if panels < 20 || alerts < 10 {
		t.Errorf("only %d panel and %d alert expressions found", panels, alerts)
	}

	// The Twilio spend totals count the connected subaccount once: inside
	// its parent's total.
	// scalar is the value of q's one series whose currency is USD, or
	// its only series.
	scalar := func(q string) float64 {
		t.Helper()
		r, err := query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var found []float64
		for _, raw := range r.Data.Result {
			var v struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			}
			if err := json.Unmarshal(raw, &v); err != nil {
				t.Fatal(err)
			}
			if c, ok := v.Metric["currency"]; ok && c != "USD" {
				continue
			}
			f, err := strconv.ParseFloat(fmt.Sprint(v.Value[1]), 64)
			if err != nil {
				t.Fatal(err)
			}
			found = append(found, f)
		}
		if len(found) != 1 {
			t.Fatalf("%s: want one USD series, got %s", q, r.Data.Result)
		}
		return found[0]
	}
	own := func(conn string) float64 {
		return scalar(`max(saas_twilio_usage_price{connection="` + conn + `",category="totalprice",period="this_month"})`)
	}
	checked := 0
	for _, e := range exprs {
		if e.Source != "SaaS / Twilio › Spend this month › A" {
			continue
		}
		checked++
		got := scalar(e.Query)
		acme, delta, eu := own("tw-acme"), own("tw-delta"), own("tw-delta-eu")
		if want := acme + delta; math.Abs(got-want) > 1e-6 || eu == 0 {
			t.Errorf("Twilio spend this month (USD) = %v, want tw-acme %v + tw-delta %v (which includes tw-delta-eu %v)", got, acme, delta, eu)
		}
	}
	if checked != 1 {
		t.Errorf("found %d \"Spend this month\" panels on the Twilio dashboard, want 1", checked)
	}

	// The Segment dashboard's billable MTUs are identified +
	// never_identified, as the simulator counts them.
	ws, _ := vendorsim.SegmentWorkspaceFor(vendorsim.SegmentTokenAcme)
	billable := fmt.Sprint(ws.MTUOn(s.Sim.Now()).Billable())
	found := 0
	for _, e := range exprs {
		if e.File != "saas-segment.json" || !strings.HasSuffix(e.Source, "› Billable MTUs › A") {
			continue
		}
		found++
		r, err := query(e.Query)
		if err != nil {
			t.Fatal(err)
		}
		type sample struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		var got []sample
		ok := false
		for _, raw := range r.Data.Result {
			var x sample
			json.Unmarshal(raw, &x)
			got = append(got, x)
			if x.Metric["connection"] == "seg-us" {
				ok = x.Value[1] == billable
			}
		}
		if !ok {
			t.Errorf("%s: seg-us billable MTUs %v, want %s (identified + never_identified)", e.Source, got, billable)
		}
	}
	if found == 0 {
		t.Error("no Billable MTUs panel in saas-segment.json")
	}

	// alertResult runs the expression of alert name.
	alertResult := func(name string) []json.RawMessage {
		t.Helper()
		for _, e := range exprs {
			if e.Source == "alert "+name {
				r, err := query(e.Query)
				if err != nil {
					t.Fatal(err)
				}
				return r.Data.Result
			}
		}
		t.Fatalf("no %s alert in dashboards/alerts.yml", name)
		return nil
	}

	// Only tw-acme is over its budget.
	if res := alertResult("SaasBudgetExceeded"); len(res) != 1 || !strings.Contains(string(res[0]), `"connection":"tw-acme"`) || !strings.Contains(string(res[0]), `"unit":"usd"`) {
		t.Errorf("SaasBudgetExceeded expression: %s", res)
	}
	// The API shows the collected month to date, and that tw-gamma (an
	// account Twilio prices in EUR) has none to compare with a usd budget.
	var budgets []struct {
		Name   string `json:"name"`
		Budget struct {
			Monthly     *float64 `json:"monthly"`
			Unit        string   `json:"unit"`
			Comparable  bool     `json:"comparable"`
			Warning     string   `json:"warning"`
			MonthToDate *float64 `json:"month_to_date"`
		} `json:"budget"`
	}
	s.api("GET", "/api/v1/connections", nil, &budgets)
	seen := 0
	for _, c := range budgets {
		b := c.Budget
		switch c.Name {
		case "tw-acme":
			seen++
			if b.Monthly == nil || *b.Monthly != 10 || b.Unit != "usd" || !b.Comparable || b.MonthToDate == nil || *b.MonthToDate <= 10 {
				t.Errorf("tw-acme budget in the API: %+v", b)
			}
		case "tw-gamma":
			seen++
			if b.Comparable || !strings.Contains(b.Warning, "No usage can be compared") || b.MonthToDate != nil {
				t.Errorf("tw-gamma (EUR) budget in the API: %+v, want not comparable", b)
			}
		}
	}
	if seen != 2 {
		t.Errorf("tw-acme and tw-gamma: %d of them in the API's list", seen)
	}

	// Now every connection state an alert is about: SendGrid fails (sg-acme
	// and sg-euro down, their collections failing), Twilio rate limits (every tw-*),
	// sg-beta stays revoked, seg-eu's credential runs out within minutes.
	s.Sim.SetFault("sendgrid", vendorsim.Fault{Status: 503})
	s.Sim.SetFault("twilio", vendorsim.Fault{RateLimit: true, RetryAfter: time.Hour})
	deadline = time.Now().Add(60 * time.Second)
	for {
		r1, err1 := query(`saas_connection_state{state="rate_limited"} == 1`)
		r2, err2 := query(`saas_connection_up{connection="sg-acme"} == 0`)
		if err1 == nil && err2 == nil && len(r1.Data.Result) == 4 && len(r2.Data.Result) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not see the faults: %v %v %s %s", err1, err2, r1.Data.Result, r2.Data.Result)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Each alert's expression is true for exactly the connections in the
	// state it is about ("-" for the exporter's own alerts).
	want := map[string]string{
		"SaasConnectionExpired":          "",
		"SaasConnectionRevoked":          "sg-beta",
		"SaasConnectionExpiringSoon":     "",
		"SaasConnectionExpiringCritical": "seg-eu",
		"SaasConnectionDown":             "sg-acme sg-euro",
		"SaasScrapeFailing":              "sg-acme sg-euro",
		"SaasConnectionRateLimited":      "tw-acme tw-delta tw-delta-eu tw-gamma",
		"SaasUsageDataStale":             "",
		"SaasSendGridCreditsLow":         "",
		"SaasBudgetExceeded":             "tw-acme",
		"SaasBudgetProjectedToExceed":    "", // tw-acme, the only budget, is already over it
		"SaasSegmentMTUsAboveLastPeriod": "", // the simulator's workspaces stay below last period
		"SaasExporterAbsent":             "",
		"SaasExporterDown":               "",
		"SaasExporterStoreDown":          "",
	}
	seenAlert := map[string]bool{}
	for _, e := range exprs {
		if e.Kind != dashboards.KindAlert {
			continue
		}
		name := strings.TrimPrefix(e.Source, "alert ")
		seenAlert[name] = true
		r, err := query(e.Query)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var conns []string
		for _, raw := range r.Data.Result {
			var sample struct {
				Metric map[string]string `json:"metric"`
			}
			if err := json.Unmarshal(raw, &sample); err != nil {
				t.Fatal(err)
			}
			c, ok := sample.Metric["connection"]
			if !ok {
				c = "-"
			}
			conns = append(conns, c)
		}
		sort.Strings(conns)
		w, known := want[name]
		if !known {
			t.Errorf("alert %s has no expected result in this test: add it (its expression returns %q)", name, strings.Join(conns, " "))
			continue
		}
		if got := strings.Join(conns, " "); got != w {
			t.Errorf("alert %s: expression true for %q, want %q\n  %s", name, got, w, e.Query)
		}
	}
	for name := range want {
		if !seenAlert[name] {
			t.Errorf("alert %s is not in dashboards/alerts.yml", name)
		}
	}

	// The exporter stops: its own alerts' expressions become true.
	s.stop()
	deadline = time.Now().Add(30 * time.Second)
	for {
		r, err := query(`up{job="saas_exporter"} == 0`)
		if err == nil && len(r.Data.Result) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus did not see the exporter down: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, e := range exprs {
		if e.Source != "alert SaasExporterDown" && e.Source != "alert SaasExporterAbsent" {
			continue
		}
		if r, err := query(e.Query); err != nil || len(r.Data.Result) != 1 {
			t.Errorf("%s with the exporter stopped: %v %s", e.Source, err, r.Data.Result)
		}
	}
}
