package sendgrid

import (
	"context"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/provider/oauth"
	"github.com/saas-exporter/saas_exporter/provider/providertest"
	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type oauthFixture struct {
	t     *testing.T
	sim   *vendorsim.Server
	url   string
	clock *clock
	p     *Provider
	st    *store.Memory
}

func oauthConfig(base string) string {
	return "api_url: " + base + "/sendgrid\neu_api_url: " + base + "/sendgrid-eu\noauth:\n  client_id: " + vendorsim.OAuthClientID + "\n  client_secret: " + vendorsim.OAuthClientSecret +
		"\n  auth_url: " + base + "/oauth/authorize\n  token_url: " + base + "/oauth/token\n"
}

func newOAuthFixture(t *testing.T) *oauthFixture {
	t.Helper()
	c := &clock{t: now}
	sim := vendorsim.New(vendorsim.Options{Now: c.Now})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(oauthConfig(srv.URL)), &n); err != nil {
		t.Fatal(err)
	}
	p, err := New(&n, provider.Env{})
	if err != nil {
		t.Fatal(err)
	}
	pr := p.(*Provider)
	// Token expiries at connect time follow the simulator's clock too.
	cfg := pr.oauth.Config()
	cfg.Now = c.Now
	cfg.RetryBackoff = time.Millisecond
	pr.oauth = oauth.NewMethod(oauthMethodName, pr.oauth.Title(), "SendGrid", cfg, pr.verifyOAuth)
	return &oauthFixture{t: t, sim: sim, url: srv.URL, clock: c, p: pr, st: store.NewMemory()}
}

func (f *oauthFixture) method() provider.RedirectMethod {
	f.t.Helper()
	for _, m := range f.p.Methods() {
		if rm, ok := m.(provider.RedirectMethod); ok && m.Name() == "oauth" {
			return rm
		}
	}
	f.t.Fatal("no oauth method")
	return nil
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// consent runs the simulator's consent page for the flow and returns the
// callback's query.
func (f *oauthFixture) consent(fl provider.Flow, account, decision string) url.Values {
	f.t.Helper()
	u, err := f.method().AuthorizeURL(fl)
	if err != nil {
		f.t.Fatal(err)
	}
	resp, err := noFollow.Get(u)
	if err != nil {
		f.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := url.Values{"account": {account}, "decision": {decision}}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`).FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	resp, err = noFollow.PostForm(f.url+"/oauth/authorize", form)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		f.t.Fatalf("consent answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query()
}

var testFlow = provider.Flow{State: "state-0123456789", Verifier: "verifier-0123456789abcdefghijklmnopqrstuvwxyz", RedirectURL: "http://127.0.0.1:9888/connect/sendgrid/callback"}

// connect runs the whole flow and stores the connection.
func (f *oauthFixture) connect(account string) store.Connection {
	f.t.Helper()
	q := f.consent(testFlow, account, "allow")
	cred, err := f.method().Finish(context.Background(), http.DefaultClient, testFlow, q)
	if err != nil {
		f.t.Fatal(err)
	}
	c := store.Connection{ID: "c-" + account, Vendor: "sendgrid", Name: connName(account), Account: cred.Account, AccountID: cred.AccountID, AuthMethod: cred.AuthMethod,
		Secret: cred.Secret, Settings: cred.Settings, Scopes: cred.Scopes, MissingScopes: cred.MissingScopes, Expiry: cred.Expiry, Created: now}
	if err := f.st.Put(context.Background(), c); err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *oauthFixture) get(id string) store.Connection {
	f.t.Helper()
	c, err := f.st.Get(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// collect runs Collect on the stored connection as the engine does.
func (f *oauthFixture) collect(id string) (metrics, error) {
	f.t.Helper()
	s := &provider.Scrape{Conn: collector.View(f.get(id)), HTTP: http.DefaultClient, Now: f.clock.Now(),
		Renew: providertest.Renew(f.st, id)}
	err := f.p.Collect(context.Background(), s)
	m, _, _ := s.Result()
	return m, err
}

func stateOf(err error) string {
	var se *provider.StateError
	if errors.As(err, &se) {
		return se.State
	}
	return ""
}

func TestOAuthConfig(t *testing.T) {
	f := newOAuthFixture(t)
	if ms := f.p.Methods(); len(ms) != 2 || ms[0].Name() != "api_key" || !f.method().Enabled() {
		t.Errorf("methods %v", ms)
	}
	cfg := f.p.oauth.Config()
	if strings.Join(cfg.Scopes, " ") != strings.Join(defaultOAuthScopes, " ") || cfg.RefreshFailureWindow != 96*time.Hour || cfg.ConfigKey != "vendors.sendgrid.oauth" {
		t.Errorf("config %+v", cfg)
	}
	p, _ := New(nil, provider.Env{})
	if ms := p.Methods(); len(ms) != 1 {
		t.Errorf("OAuth offered without configuration: %v", ms)
	}
	for y, want := range map[string]string{
		"oauth:\n  client_id: x\n":                    "oauth.auth_url is required",
		"oauth:\n  client_id: x\n  clientsecret: y\n": `unknown key "clientsecret" in oauth`,
		"oauth:\n  client_id: x\n  client_secret: s\n  auth_url: https://a/x\n  token_url: https://a/t\n  refresh_failure_window: 1d\n": "`1d` into a duration",
	} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(y), &n); err != nil {
			t.Fatal(err)
		}
		if _, err := New(&n, provider.Env{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", y, err, want)
		}
	}
	var n yaml.Node
	yaml.Unmarshal([]byte("oauth:\n  client_id: x\n  client_secret: s\n  auth_url: https://a/x\n  token_url: https://a/t\n  scopes: [stats.read]\n  refresh_failure_window: 12h\n"), &n)
	p, err := New(&n, provider.Env{})
	if err != nil {
		t.Fatal(err)
	}
	if c := p.(*Provider).oauth.Config(); strings.Join(c.Scopes, " ") != "stats.read" || c.RefreshFailureWindow != 12*time.Hour {
		t.Errorf("scopes %v window %s", c.Scopes, c.RefreshFailureWindow)
	}
}

// Connected with OAuth, acme yields exactly what its API key yields.
func TestOAuthConnectAndCollect(t *testing.T) {
	f := newOAuthFixture(t)
	c := f.connect("acme")
	if c.Account != "acme" || c.AccountID != "4242001" || c.AuthMethod != "oauth" || len(c.MissingScopes) != 0 || c.Secret[oauth.SecretRefreshToken] == "" || c.Secret["api_key"] != "" {
		t.Errorf("connection %+v (secret keys %d)", c, len(c.Secret))
	}
	if !c.Expiry.IsZero() || c.Settings[oauth.SettingAccessExpiry] == "" {
		t.Errorf("expiry %v settings %v", c.Expiry, c.Settings)
	}
	m, err := f.collect(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/acme.prom")
	if err != nil {
		t.Fatal(err)
	}
	if err := testutil.CollectAndCompare(m, strings.NewReader(string(want))); err != nil {
		t.Error(err)
	}
	if f.sim.OAuthRefreshCalls() != 0 {
		t.Error("a fresh token was refreshed")
	}

	// Beta's grant cannot read its name: no account, missing scopes named.
	b := f.connect("beta")
	if b.Account != "" || b.AccountID != "" || b.Settings["region"] != "global" ||
		strings.Join(b.MissingScopes, ",") != "user.credits.read,teammates.read,api_keys.read,subusers.read,subusers.stats.sums.read,subusers.credits.read" {
		t.Errorf("beta %+v", b)
	}
}

// A sign-in has no region field: the region is the host that accepts the
// token, and collections use it.
func TestOAuthLearnsTheRegion(t *testing.T) {
	f := newOAuthFixture(t)
	c := f.connect("euro")
	if c.Settings["region"] != "eu" || c.Account != "euro" {
		t.Fatalf("euro connection: region %q account %q", c.Settings["region"], c.Account)
	}
	m, err := f.collect(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m, "saas_sendgrid_emails"); n != 48 {
		t.Errorf("%d email series, want 48", n)
	}
	if f.sim.CallCounts().Routes["GET /sendgrid-eu/v3/stats"] == 0 {
		t.Errorf("no stats call at the EU host: %v", f.sim.CallCounts().Routes)
	}
}

func TestOAuthDenied(t *testing.T) {
	f := newOAuthFixture(t)
	q := f.consent(testFlow, "acme", "deny")
	_, err := f.method().Finish(context.Background(), http.DefaultClient, testFlow, q)
	var ie *provider.InputError
	if !errors.As(err, &ie) || !strings.Contains(ie.Message, "Access was denied on SendGrid's consent page") {
		t.Errorf("deny: %v", err)
	}
}

func TestOAuthPKCEMismatch(t *testing.T) {
	f := newOAuthFixture(t)
	q := f.consent(testFlow, "acme", "allow")
	other := testFlow
	other.Verifier = "another-verifier-0123456789abcdefghijklmnopqrstu"
	_, err := f.method().Finish(context.Background(), http.DefaultClient, other, q)
	var ie *provider.InputError
	if !errors.As(err, &ie) || !strings.Contains(ie.Message, "PKCE") {
		t.Errorf("PKCE mismatch: %v", err)
	}
	if len(f.sim.OAuthGrants()) != 0 {
		t.Error("a grant was made despite the PKCE mismatch")
	}
}

func TestOAuthRefreshBeforeExpiryAndAfter401(t *testing.T) {
	f := newOAuthFixture(t)
	c := f.connect("acme")
	first := c.Secret[oauth.SecretRefreshToken]

	// 30s before the access token ends (margin 60s): refreshed, rotated, saved.
	f.clock.Add(time.Hour - 30*time.Second)
	if _, err := f.collect(c.ID); err != nil {
		t.Fatal(err)
	}
	c = f.get(c.ID)
	if f.sim.OAuthRefreshCalls() != 1 || c.Secret[oauth.SecretRefreshToken] == first || c.Secret[oauth.SecretRefreshToken] != f.sim.OAuthGrants()[0].RefreshToken {
		t.Errorf("refresh calls %d; stored refresh token rotated: %v", f.sim.OAuthRefreshCalls(), c.Secret[oauth.SecretRefreshToken] != first)
	}

	// The simulator stops honouring the token early (its clock says so),
	// the stored expiry does not: the 401 refreshes once and the scrape works.
	c.Settings[oauth.SettingAccessExpiry] = f.clock.Now().Add(24 * time.Hour).Format(time.RFC3339)
	f.st.Put(context.Background(), c)
	f.clock.Add(time.Hour)
	if _, err := f.collect(c.ID); err != nil {
		t.Fatalf("after a 401: %v", err)
	}
	if f.sim.OAuthRefreshCalls() != 2 {
		t.Errorf("refresh calls %d, want 2", f.sim.OAuthRefreshCalls())
	}
}

func TestOAuthRevokedGrantExpires(t *testing.T) {
	f := newOAuthFixture(t)
	c := f.connect("acme")
	f.sim.RevokeOAuthGrants("acme")
	_, err := f.collect(c.ID)
	if stateOf(err) != "expired" || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("revoked grant: %v", err)
	}
	for _, tok := range f.sim.OAuthGrants()[0].AccessTokens {
		if strings.Contains(err.Error(), tok) {
			t.Error("access token in the error")
		}
	}
}

func TestOAuthTokenEndpointDown(t *testing.T) {
	f := newOAuthFixture(t)
	c := f.connect("acme")
	f.sim.SetOAuthTokenUnavailable(true)

	// Within the margin, the current token still works.
	f.clock.Add(time.Hour - 30*time.Second)
	if _, err := f.collect(c.ID); err != nil {
		t.Fatalf("token still valid: %v", err)
	}
	c = f.get(c.ID)
	if c.Settings[oauth.SettingFailingSince] != f.clock.Now().Format(time.RFC3339) || c.Expiry.IsZero() {
		t.Errorf("failure not recorded: %v %v", c.Settings, c.Expiry)
	}
	// Past its end: an error, not expired yet.
	f.clock.Add(time.Minute)
	if _, err := f.collect(c.ID); err == nil || stateOf(err) != "" || !strings.Contains(err.Error(), "temporarily_unavailable") {
		t.Errorf("token gone, window open: %v", err)
	}
	// Past the window: expired.
	f.clock.Add(96 * time.Hour)
	if _, err := f.collect(c.ID); stateOf(err) != "expired" {
		t.Errorf("window passed: %v", err)
	}
}

func TestOAuthWithoutConfiguration(t *testing.T) {
	f := newOAuthFixture(t)
	c := f.connect("acme")
	f.p.oauth = nil
	_, err := f.collect(c.ID)
	if err == nil || stateOf(err) != "" || !strings.Contains(err.Error(), "vendors.sendgrid.oauth is no longer configured") {
		t.Errorf("got %v", err)
	}
}

// connName: acme is "prod", as in the golden file.
func connName(account string) string {
	if account == "acme" {
		return "prod"
	}
	return account
}

// An OAuth connection's scopes are known from connecting: its collections
// do not ask /v3/scopes first (a round trip before every other call), but
// alongside the others at most every scopeCheckEvery, as for an API key.
func TestOAuthScopesNotAskedFirst(t *testing.T) {
	f := newOAuthFixture(t)
	c := f.connect("acme")
	scopesCalls := func() int64 { return f.sim.CallCounts().Routes["GET /sendgrid/v3/scopes"] }
	before := scopesCalls()
	var prev map[string]provider.SectionResult
	for i := range 3 {
		s := &provider.Scrape{Conn: collector.View(f.get(c.ID)), HTTP: http.DefaultClient, Now: f.clock.Now(),
			Renew: providertest.Renew(f.st, c.ID), Previous: prev}
		if err := f.p.Collect(context.Background(), s); err != nil {
			t.Fatalf("collection %d: %v", i+1, err)
		}
		prev = s.SectionResults()
		f.clock.Add(time.Minute)
	}
	if got := scopesCalls() - before; got != 1 {
		t.Errorf("three collections a minute apart asked /v3/scopes %d times, want 1 (alongside, at most every %s)", got, scopeCheckEvery)
	}
	if _, ok := prev[scopeSection]; !ok {
		t.Errorf("no %q section: /v3/scopes was asked before the others, not alongside", scopeSection)
	}
}
