package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

type apiConn struct {
	ID            string   `json:"id"`
	Vendor        string   `json:"vendor"`
	Name          string   `json:"name"`
	State         string   `json:"state"`
	MissingScopes []string `json:"missing_scopes"`
}

// A SendGrid key connected through the JSON API shows up in /metrics
// with the simulator's values, and the scrape passes promtool.
func TestSendGridEndToEnd(t *testing.T) {
	s := startStack(t, stackOptions{})
	var c apiConn
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "prod", "api_key": vendorsim.SendGridKeyAcme}, &c); code != 201 {
		t.Fatalf("connect: %d", code)
	}
	var limited apiConn
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "beta", "api_key": vendorsim.SendGridKeyBeta}, &limited); code != 201 {
		t.Fatalf("connect beta: %d", code)
	}
	if strings.Join(limited.MissingScopes, ",") != "user.credits.read,teammates.read,api_keys.read,subusers.read,subusers.stats.sums.read,subusers.credits.read" {
		t.Errorf("beta missing scopes: %v", limited.MissingScopes)
	}

	m := s.scrape()
	now := time.Now().UTC()
	credits, _ := vendorsim.SendGridCreditsAt(vendorsim.SendGridKeyAcme, s.Sim.Now())
	for series, want := range map[string]string{
		`saas_connection_up{connection="prod",vendor="sendgrid"}`:                                  "1",
		`saas_connection_state{connection="prod",state="active",vendor="sendgrid"}`:                "1",
		`saas_scrape_success{connection="prod",vendor="sendgrid"}`:                                 "1",
		`saas_sendgrid_credits_remaining{connection="prod"}`:                                       fmt.Sprint(credits.Remain),
		`saas_sendgrid_credits_limit{connection="prod"}`:                                           fmt.Sprint(credits.Total),
		`saas_sendgrid_teammates{connection="prod",user_type="admin"}`:                             "2",
		`saas_sendgrid_subusers{connection="prod",disabled="true"}`:                                "2",
		`saas_sendgrid_api_keys{connection="prod"}`:                                                "5",
		`saas_sendgrid_reputation_ratio{connection="prod"}`:                                        "0.995",
		`saas_sendgrid_emails{connection="prod",event="requests",period="today"}`:                  fmt.Sprint(vendorsim.SendGridDayStats(vendorsim.SendGridKeyAcme, now)["requests"]),
		`saas_sendgrid_teammates_pending{connection="prod"}`:                                       "2",
		`saas_sendgrid_teammates_pending_expired{connection="prod"}`:                               "1",
		`saas_sendgrid_credits_reset_frequency{connection="prod",frequency="monthly"}`:             "1",
		`saas_connection_scope_missing{connection="beta",scope="subusers.read",vendor="sendgrid"}`: "1",
		`saas_connection_state{connection="beta",state="active",vendor="sendgrid"}`:                "1",
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
	if strings.Contains(m, `saas_sendgrid_credits_remaining{connection="beta"}`) {
		t.Error("credits exported for a key without user.credits.read")
	}
	if !strings.Contains(m, `saas_vendor_requests_total{code="200",vendor="sendgrid"}`) {
		t.Error("no saas_vendor_requests_total")
	}
	if !strings.Contains(m, "saas_exporter_build_info{") {
		t.Error("no saas_exporter_build_info")
	}
	promtoolCheck(t, m)

	// The key is revoked at SendGrid: the connection turns revoked and its
	// health series stay.
	s.Sim.RevokeSendGridKey(vendorsim.SendGridKeyAcme)
	time.Sleep(5 * time.Millisecond) // past min_interval
	m = s.scrape()
	if got := metricValue(t, m, `saas_connection_state{connection="prod",state="revoked",vendor="sendgrid"}`); got != "1" {
		t.Errorf("after revocation state revoked = %s", got)
	}
	if got := metricValue(t, m, `saas_connection_up{connection="prod",vendor="sendgrid"}`); got != "0" {
		t.Errorf("after revocation up = %s", got)
	}
	metricValue(t, m, `saas_connection_info{account="acme",auth_method="api_key",connection="prod",vendor="sendgrid"}`)
	promtoolCheck(t, m)

	// /probe and /sd.
	code, body := s.get("/probe?connection=" + c.ID)
	if code != 200 || !strings.Contains(body, `saas_connection_info{`) || strings.Contains(body, `connection="beta"`) {
		t.Errorf("/probe: %d %s", code, body)
	}
	if code, _ := s.get("/probe?connection=nope"); code != 404 {
		t.Errorf("/probe unknown: %d", code)
	}
	code, body = s.get("/sd")
	if code != 200 || !strings.Contains(body, `"__param_connection":"`+c.ID+`"`) {
		t.Errorf("/sd: %d %s", code, body)
	}

	// Disconnect removes it from /metrics.
	if code := s.api("DELETE", "/api/v1/connections/"+c.ID, nil, nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if m := s.scrape(); strings.Contains(m, `connection="prod"`) {
		t.Error("deleted connection still in /metrics")
	}
}

// Bad input through the API is refused with a clear error and stores nothing.
func TestAPIBadInputStoresNothing(t *testing.T) {
	s := startStack(t, stackOptions{})
	for _, tc := range []struct {
		body any
		code int
		want string
	}{
		{map[string]string{"vendor": "sendgrid", "name": "x", "api_key": ""}, 400, "api_key"},
		{map[string]string{"vendor": "sendgrid", "name": "x", "api_key": "SG.not-a-real-key"}, 400, "rejected"},
		{map[string]string{"vendor": "mailchimp", "name": "x", "api_key": "k"}, 400, "sendgrid"},
		{map[string]string{"vendor": "sendgrid", "name": "bad name!", "api_key": vendorsim.SendGridKeyAcme}, 400, "name"},
		{"garbage", 400, ""},
		// A misspelt field names the one meant.
		{map[string]string{"vendor": "sendgrid", "apikey": vendorsim.SendGridKeyAcme}, 400, `did you mean "api_key"`},
	} {
		var out struct {
			Error string `json:"error"`
		}
		code := s.api("POST", "/api/v1/connections", tc.body, &out)
		if code != tc.code || !strings.Contains(strings.ToLower(out.Error), tc.want) || out.Error == "" {
			t.Errorf("%v: %d %q", tc.body, code, out.Error)
		}
	}
	var list []apiConn
	s.api("GET", "/api/v1/connections", nil, &list)
	if len(list) != 0 {
		t.Errorf("bad input stored %d connections", len(list))
	}
	// A name already used by another account's connection.
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "dup", "api_key": vendorsim.SendGridKeyAcme}, nil); code != 201 {
		t.Fatalf("first: %d", code)
	}
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "dup", "api_key": vendorsim.SendGridKeyBeta}, nil); code != 409 {
		t.Errorf("duplicate name: %d", code)
	}
	// The same account again updates its connection instead of duplicating it.
	var again apiConn
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "other", "api_key": vendorsim.SendGridKeyAcme}, &again); code != 200 || again.Name != "dup" {
		t.Errorf("same account: %d %+v", code, again)
	}
	// Unauthenticated.
	resp, err := http.Get(s.URL + "/api/v1/connections")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("no auth: %d", resp.StatusCode)
	}
}

// No secret reaches a log line, a page, an API answer or the scrape.
func TestSecretsNeverLeak(t *testing.T) {
	s := startStack(t, stackOptions{})
	key := vendorsim.SendGridKeyAcme
	var c apiConn
	s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "prod", "api_key": key}, &c)
	// A rejected key must not be echoed either.
	bad := "SG.leakcheckRejected000.thisKeyIsRejectedBySimAndMustNeverBeEchoed0"
	var errOut map[string]any
	s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "bad", "api_key": bad}, &errOut)

	var seen strings.Builder
	fmt.Fprint(&seen, errOut)
	seen.WriteString(s.scrape())
	s.Sim.SetFault("sendgrid", vendorsim.Fault{Status: 500})
	time.Sleep(5 * time.Millisecond)
	seen.WriteString(s.scrape())
	s.Sim.ClearFaults()
	var list []map[string]any
	s.api("GET", "/api/v1/connections", nil, &list)
	fmt.Fprint(&seen, list)

	b := s.browser()
	for _, p := range []string{"/", "/connect/sendgrid", "/sd", "/probe?connection=" + c.ID} {
		resp, err := b.Get(s.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen.Write(body)
	}
	// The UI form, with a bad key.
	resp, err := b.Get(s.URL + "/connect/sendgrid")
	if err == nil {
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp, err = b.PostForm(s.URL+"/connect/sendgrid", url.Values{"csrf": {formValue(string(page), "csrf")}, "method": {"api_key"}, "name": {"ui"}, "api_key": {bad}})
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			seen.Write(body)
		}
	}
	if code := s.stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	seen.WriteString(s.logs.String())
	for _, secret := range []string{key, bad, key[3:25], bad[3:25]} {
		if strings.Contains(seen.String(), secret) {
			t.Errorf("secret %q…: found in pages, API, scrape or logs", secret[:6])
		}
	}
	// And not in clear in the store file.
	raw, err := os.ReadFile(filepath.Join(s.Dir, "data", store.DefaultBoltFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), key) {
		t.Error("API key in clear in the store file")
	}
}

// SIGTERM: the exporter stops cleanly and the store reopens with the data.
func TestGracefulShutdownKeepsData(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "prod", "api_key": vendorsim.SendGridKeyAcme}, nil)
	if code := s.stop(); code != 0 {
		t.Fatalf("exit code %d\n%s", code, s.logs.String())
	}
	kr, err := store.LoadKeyring("", "", filepath.Join(s.Dir, "data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenBolt(filepath.Join(s.Dir, "data", store.DefaultBoltFile), kr)
	if err != nil {
		t.Fatalf("store after shutdown: %v", err)
	}
	defer st.Close()
	conns, _ := st.List(t.Context())
	if len(conns) != 1 || conns[0].Secret["api_key"] != vendorsim.SendGridKeyAcme {
		t.Errorf("after restart: %+v", conns)
	}
}

// The region is part of the connection in the JSON API: an EU-pinned key
// is refused in the global region with the region to choose, and accepted
// in region eu, whose host is then the one collected.
func TestSendGridEURegionEndToEnd(t *testing.T) {
	s := startStack(t, stackOptions{})
	var e struct {
		Error string `json:"error"`
		Field string `json:"field"`
	}
	code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "euro", "api_key": vendorsim.SendGridKeyEuro}, &e)
	if code < 400 || code >= 500 || e.Field != "region" || !strings.Contains(e.Error, "choose region eu") || strings.Contains(e.Error, vendorsim.SendGridKeyEuro) {
		t.Fatalf("EU key in the default region: %d %+v", code, e)
	}
	var c apiConn
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "euro", "api_key": vendorsim.SendGridKeyEuro, "region": "eu"}, &c); code != 201 {
		t.Fatalf("connect in region eu: %d", code)
	}
	m := s.scrape()
	for series, want := range map[string]string{
		`saas_connection_state{connection="euro",state="active",vendor="sendgrid"}`:                      "1",
		`saas_sendgrid_credits_reset_frequency{connection="euro",frequency="weekly"}`:                    "1",
		`saas_sendgrid_teammates_pending_expired{connection="euro"}`:                                     "1",
		`saas_connection_info{account="euro",auth_method="api_key",connection="euro",vendor="sendgrid"}`: "1",
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
	promtoolCheck(t, m)
}
