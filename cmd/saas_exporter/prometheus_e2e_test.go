package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
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
		{"vendor": "segment", "name": "seg-us", "token": vendorsim.SegmentTokenAcme, "region": "us"},
		{"vendor": "segment", "name": "seg-eu", "method": "client_credentials", "region": "eu", "client_id": vendorsim.SegmentOAuthClientEuro,
			"key_id": vendorsim.SegmentOAuthKeyIDEuro, "private_key": vendorsim.SegmentOAuthTestPrivateKey},
	} {
		if code := s.api("POST", "/api/v1/connections", c, nil); code != 201 {
			t.Fatalf("connect %s: %d", c["name"], code)
		}
	}
	for _, name := range []string{"tw-acme", "tw-gamma"} {
		fc := newAPIFlowClient()
		acct := vendorsim.TwilioAccountAcme
		if name == "tw-gamma" {
			acct = vendorsim.TwilioAccountGamma
		}
		resp := consentTwilio(t, fc, s.startFlow(fc, map[string]string{"vendor": "twilio", "name": name}), acct, "allow")
		resp.Body.Close()
	}
	s.Sim.SetSegmentOAuthRefuse(true)
	// sg-beta's key is revoked at SendGrid.
	s.Sim.RevokeSendGridKey(vendorsim.SendGridKeyBeta)
	conns := s.connections()
	if n := len(conns); n != 6 {
		t.Fatalf("%d connections, want 6", n)
	}
	// Budgets: tw-acme is over its budget (the simulator's Acme spends
	// more than 40 usd every day), sg-acme far under.
	for name, v := range map[string]float64{"tw-acme": 10, "sg-acme": 1e9} {
		if code := s.api("PUT", "/api/v1/connections/"+conns[name].ID+"/budget", map[string]any{"monthly": v}, nil); code != 200 {
			t.Fatalf("budget of %s: %d", name, code)
		}
	}

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

	// Only tw-acme is over its budget (and Prometheus runs the alert's
	// query templates' selectors too).
	for _, e := range exprs {
		if e.Source != "alert SaasBudgetExceeded" {
			continue
		}
		r, err := query(e.Query)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data.Result) != 1 || !strings.Contains(string(r.Data.Result[0]), `"connection":"tw-acme"`) || !strings.Contains(string(r.Data.Result[0]), `"unit":"usd"`) {
			t.Errorf("SaasBudgetExceeded expression: %s", r.Data.Result)
		}
	}

	// The revoked connection makes the revoked alert's expression true,
	// and only for it.
	for _, e := range exprs {
		if e.Source != "alert SaasConnectionRevoked" {
			continue
		}
		r, err := query(e.Query)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Data.Result) != 1 || !strings.Contains(string(r.Data.Result[0]), `"connection":"sg-beta"`) {
			t.Errorf("SaasConnectionRevoked expression: %s", r.Data.Result)
		}
		return
	}
	t.Error("no SaasConnectionRevoked alert in dashboards/alerts.yml")
}
