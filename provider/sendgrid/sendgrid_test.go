package sendgrid

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

var now = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

func newSim(t *testing.T) (*vendorsim.Server, *Provider) {
	t.Helper()
	return newSimConfig(t, "")
}

// newSimConfig starts a simulator and a provider pointing both regions at
// it, with extra config lines.
func newSimConfig(t *testing.T, extra string) (*vendorsim.Server, *Provider) {
	t.Helper()
	return newSimAt(t, extra, func() time.Time { return now })
}

// newSimAt is newSimConfig with the simulator's clock.
func newSimAt(t *testing.T, extra string, clock func() time.Time) (*vendorsim.Server, *Provider) {
	t.Helper()
	sim := vendorsim.New(vendorsim.Options{Now: clock})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("api_url: "+srv.URL+"/sendgrid\neu_api_url: "+srv.URL+"/sendgrid-eu\n"+extra), &n); err != nil {
		t.Fatal(err)
	}
	p, err := New(&n, provider.Env{})
	if err != nil {
		t.Fatal(err)
	}
	return sim, p.(*Provider)
}

// metrics is a collector over what one Collect emitted.
type metrics = provider.Metrics

func collect(t *testing.T, p *Provider, key string) (metrics, []string, error) {
	t.Helper()
	s := &provider.Scrape{Conn: provider.Connection{Vendor: vendor, Name: "prod", Secret: map[string]string{"api_key": key}}, HTTP: http.DefaultClient, Now: now}
	err := p.Collect(context.Background(), s)
	m, missing, _ := s.Result()
	return m, missing, err
}

func TestCollectFullKey(t *testing.T) {
	_, p := newSim(t)
	m, missing, err := collect(t, p, vendorsim.SendGridKeyAcme)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 0 {
		t.Errorf("missing scopes for the full key: %v", missing)
	}
	want, err := os.ReadFile("testdata/acme.prom")
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

// The limited key may read stats and account only: everything else is
// left out, not reported as 0, and the missing scopes are named.
func TestCollectLimitedKey(t *testing.T) {
	_, p := newSim(t)
	m, missing, err := collect(t, p, vendorsim.SendGridKeyBeta)
	if err != nil {
		t.Fatal(err)
	}
	wantMissing := "api_keys.read,subusers.credits.read,subusers.read,subusers.stats.sums.read,teammates.read,user.credits.read"
	if got := strings.Join(sorted(missing), ","); got != wantMissing {
		t.Errorf("missing = %s, want %s", got, wantMissing)
	}
	for _, absent := range []string{"saas_sendgrid_credits_remaining", "saas_sendgrid_credits_reset_frequency", "saas_sendgrid_teammates",
		"saas_sendgrid_api_keys", "saas_sendgrid_subusers", "saas_sendgrid_subuser_emails", "saas_sendgrid_subuser_credits_remaining"} {
		if n := testutil.CollectAndCount(m, absent); n != 0 {
			t.Errorf("%s exported without its scope (%d series)", absent, n)
		}
	}
	if n := testutil.CollectAndCount(m, "saas_sendgrid_emails"); n != 48 {
		t.Errorf("saas_sendgrid_emails: %d series, want 48 (16 events x 3 periods)", n)
	}
	want := `
# HELP saas_sendgrid_account_info SendGrid account type; always 1.
# TYPE saas_sendgrid_account_info gauge
saas_sendgrid_account_info{connection="prod",type="free"} 1
# HELP saas_sendgrid_reputation_ratio Sender reputation, from 0 to 1.
# TYPE saas_sendgrid_reputation_ratio gauge
saas_sendgrid_reputation_ratio{connection="prod"} 0.8725
`
	if err := testutil.CollectAndCompare(m, strings.NewReader(want), "saas_sendgrid_account_info", "saas_sendgrid_reputation_ratio"); err != nil {
		t.Error(err)
	}
}

func TestRevokedKey(t *testing.T) {
	sim, p := newSim(t)
	sim.RevokeSendGridKey(vendorsim.SendGridKeyAcme)
	_, _, err := collect(t, p, vendorsim.SendGridKeyAcme)
	var se *provider.StateError
	if !errors.As(err, &se) || se.State != "revoked" {
		t.Fatalf("want revoked, got %v", err)
	}
	if strings.Contains(err.Error(), vendorsim.SendGridKeyAcme) {
		t.Error("key in error text")
	}
}

func TestServerErrorIsNotRevocation(t *testing.T) {
	sim, p := newSim(t)
	sim.SetFault("sendgrid", vendorsim.Fault{Status: 503})
	_, _, err := collect(t, p, vendorsim.SendGridKeyAcme)
	var se *provider.StateError
	if err == nil || errors.As(err, &se) {
		t.Fatalf("want a plain error, got %v", err)
	}
	if provider.StatusOf(err) != 503 {
		t.Errorf("status: %v", err)
	}
}

func TestVerify(t *testing.T) {
	_, p := newSim(t)
	m := p.Methods()[0].(provider.FormMethod)
	cred, err := m.Verify(context.Background(), http.DefaultClient, map[string]string{"api_key": " " + vendorsim.SendGridKeyBeta + "\n"})
	if err != nil {
		t.Fatal(err)
	}
	if cred.Secret["api_key"] != vendorsim.SendGridKeyBeta || cred.AuthMethod != "api_key" {
		t.Errorf("credential: %+v", cred.AuthMethod)
	}
	if strings.Join(cred.MissingScopes, ",") != "user.credits.read,teammates.read,api_keys.read,subusers.read,subusers.stats.sums.read,subusers.credits.read" || cred.Settings["region"] != "global" {
		t.Errorf("missing: %v", cred.MissingScopes)
	}
	for in, want := range map[string]string{
		"":                               "API key is empty",
		"hello world":                    "characters a SendGrid key never has",
		"AKIAIOSFODNN7EXAMPLE":           "not a SendGrid API key",
		"SG.unknown.key-that-is-unknown": "SendGrid rejected the key",
	} {
		_, err := m.Verify(context.Background(), http.DefaultClient, map[string]string{"api_key": in})
		var ie *provider.InputError
		if !errors.As(err, &ie) || !strings.Contains(ie.Message, want) {
			t.Errorf("Verify(%q) = %v, want input error containing %q", in, err, want)
		}
		if in != "" && err != nil && strings.Contains(err.Error(), in) {
			t.Errorf("Verify(%q) echoed the key: %v", in, err)
		}
	}
}

func TestConfig(t *testing.T) {
	var n yaml.Node
	_ = yaml.Unmarshal([]byte("api_url: ftp://x\n"), &n)
	if _, err := New(&n, provider.Env{}); err == nil || !strings.Contains(err.Error(), "api_url: must be an absolute http(s) URL") {
		t.Errorf("bad url: %v", err)
	}
	for y, want := range map[string]string{
		"eu_api_url: api.eu.sendgrid.com\n":    `eu_api_url: must be an absolute http(s) URL such as https://api.eu.sendgrid.com, got "api.eu.sendgrid.com"`,
		"eu_api_url: https://u:p@x/\n":         "eu_api_url: must not carry a query, fragment or user info",
		"max_subusers: -1\n":                   "max_subusers: must be between 0 (no subuser series) and 1000, got -1",
		"max_subusers: 5000\n":                 "max_subusers: must be between 0 (no subuser series) and 1000, got 5000",
		"max_subusers: many\n":                 "line 1: cannot unmarshal",
		"api_url: ftp://x\nmax_subusers: -1\n": "api_url: must be an absolute http(s) URL",
	} {
		var n yaml.Node
		_ = yaml.Unmarshal([]byte(y), &n)
		if _, err := New(&n, provider.Env{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", y, err, want)
		}
	}
	_ = yaml.Unmarshal([]byte("api_ur1: http://x\n"), &n)
	if _, err := New(&n, provider.Env{}); err == nil || !strings.Contains(err.Error(), `unknown key "api_ur1"`) {
		t.Errorf("unknown key: %v", err)
	}
	p, err := New(nil, provider.Env{})
	if err != nil {
		t.Fatal(err)
	}
	pp := p.(*Provider)
	if pp.apiURLs["global"] != "https://api.sendgrid.com" || pp.apiURLs["eu"] != "https://api.eu.sendgrid.com" || pp.maxSubusers != 50 {
		t.Errorf("defaults: %+v", pp)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
