package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// fakeClock is shared by the simulator and the exporter (hooks.now), so
// token lifetimes and the refresh failure window pass without
// waiting.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// oauthStack is a stack with vendors.sendgrid.oauth pointing at the
// simulator's authorization server and a fake clock. It also collects
// every page and API answer the test sees, for the secrets check.
type oauthStack struct {
	*stack
	clock *fakeClock
	t0    time.Time
	// opts started the stack; replica starts another with the same clock,
	// sections and simulator.
	opts stackOptions
	// seen is every answer of the exporter, except the authorize URL of a
	// flow start (which carries the state by design).
	seen *syncBuffer
	// Codes and states of callbacks: never in an answer or a log line.
	codes, states []string
}

func startOAuthStack(t *testing.T, opts ...stackOptions) *oauthStack {
	t.Helper()
	// The exporter's sendgrid section gets the oauth block (this stack only).
	var sections []func(string, string) string
	found := false
	for _, f := range vendorSections {
		if strings.HasPrefix(f("SIM", "EXPORTER"), "  sendgrid:\n") {
			found = true
			f := f
			sections = append(sections, func(sim, exp string) string {
				return f(sim, exp) + "    oauth:\n      client_id: " + vendorsim.OAuthClientID + "\n      client_secret: " + vendorsim.OAuthClientSecret +
					"\n      auth_url: " + sim + "/oauth/authorize\n      token_url: " + sim + "/oauth/token\n"
			})
			continue
		}
		sections = append(sections, f)
	}
	if !found {
		t.Fatal("no sendgrid section in vendorSections")
	}

	// Real time, to the second: cookies set with the fake clock must not
	// look expired to the cookie jar.
	fc := &fakeClock{t: time.Now().UTC().Truncate(time.Second)}
	o := stackOptions{}
	if len(opts) > 0 {
		o = opts[0]
	}
	o.SimOptions.Now = fc.Now
	o.Now = fc.Now
	o.Sections = sections
	s := startStack(t, o)
	return &oauthStack{stack: s, clock: fc, t0: fc.Now(), seen: &syncBuffer{}, opts: o}
}

// replica starts a second exporter with the stack's clock, vendor sections
// and simulator, and o's configuration.
func (s *oauthStack) replica(o stackOptions) *stack {
	s.t.Helper()
	o.Now, o.Sections = s.opts.Now, s.opts.Sections
	o.Sim, o.SimURL = s.Sim, s.SimURL
	return startStack(s.t, o)
}

// flowClient is a script's HTTP client: a cookie jar, and redirects shown
// rather than followed so each step can be checked.
type flowClient struct {
	*http.Client
}

func newFlowClient() *flowClient {
	jar, _ := cookiejar.New(nil)
	return &flowClient{&http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type reply struct {
	Status   int
	Location string
	Body     string
}

func (s *oauthStack) do(c *flowClient, req *http.Request) reply {
	s.t.Helper()
	r := s.doQuiet(c, req)
	if strings.HasPrefix(req.URL.String(), s.URL) {
		s.seen.Write([]byte(r.Body))
	}
	return r
}

func (s *oauthStack) doQuiet(c *flowClient, req *http.Request) reply {
	s.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header.Get("Location"), string(b)}
}

func (s *oauthStack) get(c *flowClient, u string) reply {
	s.t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	return s.do(c, req)
}

func (s *oauthStack) postForm(c *flowClient, u string, form url.Values) reply {
	s.t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return s.do(c, req)
}

// apiFlow posts to the JSON API with c's jar (the flow cookie lands there)
// and returns the authorize URL of the 202 answer.
func (s *oauthStack) apiFlow(c *flowClient, path string, body map[string]string) string {
	s.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", s.URL+path, bytes.NewReader(b))
	req.SetBasicAuth(testAdmin, testPassword)
	req.Header.Set("Content-Type", "application/json")
	r := s.doQuiet(c, req)
	var out struct {
		AuthorizeURL string `json:"authorize_url"`
		Method       string `json:"method"`
	}
	json.Unmarshal([]byte(r.Body), &out)
	if u, err := url.Parse(out.AuthorizeURL); err == nil && u.Query().Get("state") != "" {
		s.seen.Write([]byte(strings.ReplaceAll(r.Body, u.Query().Get("state"), "")))
	}
	if r.Status != http.StatusAccepted || out.AuthorizeURL == "" || out.Method != "oauth" {
		s.t.Fatalf("POST %s: %d %s", path, r.Status, r.Body)
	}
	return out.AuthorizeURL
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// consent answers the simulator's consent page and returns where it sends
// the browser (the exporter's callback, with code or error).
func (s *oauthStack) consent(c *flowClient, authorizeURL, account, decision string) string {
	s.t.Helper()
	if !strings.HasPrefix(authorizeURL, s.SimURL+"/oauth/authorize?") {
		s.t.Fatalf("authorize URL %s is not the simulator's", authorizeURL)
	}
	page := s.get(c, authorizeURL)
	if page.Status != 200 {
		s.t.Fatalf("consent page: %d %s", page.Status, page.Body)
	}
	form := url.Values{"account": {account}, "decision": {decision}}
	for _, m := range hiddenRE.FindAllStringSubmatch(page.Body, -1) {
		form.Set(m[1], html.UnescapeString(m[2]))
	}
	r := s.postForm(c, s.SimURL+"/oauth/authorize", form)
	if r.Status != http.StatusFound || !strings.HasPrefix(r.Location, s.URL+"/connect/sendgrid/callback?") {
		s.t.Fatalf("consent answered %d %q", r.Status, r.Location)
	}
	if u, err := url.Parse(r.Location); err == nil {
		if v := u.Query().Get("code"); v != "" {
			s.codes = append(s.codes, v)
		}
		if v := u.Query().Get("state"); v != "" {
			s.states = append(s.states, v)
		}
	}
	return r.Location
}

// connect runs a whole flow started at path and checks it ends on the
// connections page.
func (s *oauthStack) connect(path string, body map[string]string, account string) {
	s.t.Helper()
	c := newFlowClient()
	cb := s.consent(c, s.apiFlow(c, path, body), account, "allow")
	r := s.get(c, cb)
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Location, "/?msg=") {
		s.t.Fatalf("callback: %d %q %s", r.Status, r.Location, r.Body)
	}
}

type oauthAPIConn struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Account    string            `json:"account"`
	AccountID  string            `json:"account_id"`
	AuthMethod string            `json:"auth_method"`
	State      string            `json:"state"`
	Created    time.Time         `json:"created"`
	Expiry     *time.Time        `json:"expiry"`
	LastError  string            `json:"last_error"`
	Settings   map[string]string `json:"settings"`
}

func (s *oauthStack) conns() map[string]oauthAPIConn {
	s.t.Helper()
	c := newFlowClient()
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/connections", nil)
	req.SetBasicAuth(testAdmin, testPassword)
	r := s.do(c, req)
	var list []oauthAPIConn
	if err := json.Unmarshal([]byte(r.Body), &list); err != nil {
		s.t.Fatalf("connections: %d %s", r.Status, r.Body)
	}
	out := map[string]oauthAPIConn{}
	for _, c := range list {
		out[c.Name] = c
	}
	return out
}

// stored waits until the connection's state as written to the store is
// state (the engine writes status in the background) and returns it.
func (s *oauthStack) stored(name, state string) oauthAPIConn {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := s.conns()[name]
		if c.State == state {
			return c
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: stored state %q, want %q (last error %q)", name, c.State, state, c.LastError)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// scrapeAfter moves the clock by d (the engine reuses results younger than
// min_interval by its clock) and scrapes.
func (s *oauthStack) scrapeAfter(d time.Duration) string {
	s.t.Helper()
	s.clock.Add(d)
	m := s.scrape()
	s.seen.Write([]byte(m))
	return m
}

func series(name, conn string, extra ...string) string {
	labels := append([]string{`connection="` + conn + `"`}, extra...)
	labels = append(labels, `vendor="sendgrid"`)
	return name + "{" + strings.Join(labels, ",") + "}"
}

func (s *oauthStack) wantHealth(m, conn, state, up string) {
	s.t.Helper()
	if got := metricValue(s.t, m, series("saas_connection_state", conn, `state="`+state+`"`)); got != "1" {
		s.t.Errorf("%s: state %s = %s (last error: %s)", conn, state, got, s.conns()[conn].LastError)
	}
	if got := metricValue(s.t, m, series("saas_connection_up", conn)); got != up {
		s.t.Errorf("%s: up = %s, want %s", conn, got, up)
	}
}

func (s *oauthStack) expiryMetric(m, conn string) (string, bool) {
	prefix := series("saas_connection_expiry_timestamp_seconds", conn) + " "
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimPrefix(line, prefix), true
		}
	}
	return "", false
}

// checkNoSecrets stops the exporter and looks for every token, code,
// state and the client secret in the logs, the exporter's answers and
// scrapes, and (tokens and codes) the store file. A state is in the store
// file by design: it is recorded there as used.
func (s *oauthStack) checkNoSecrets() {
	s.t.Helper()
	var tokens []string
	for _, g := range s.Sim.OAuthGrants() {
		tokens = append(tokens, g.AccessTokens...)
		tokens = append(tokens, g.RefreshTokens...)
	}
	if len(tokens) == 0 || len(s.codes) == 0 || len(s.states) == 0 {
		s.t.Fatalf("nothing to look for: %d tokens, %d codes, %d states", len(tokens), len(s.codes), len(s.states))
	}
	if code := s.stop(); code != 0 {
		s.t.Errorf("exit code %d", code)
	}
	raw, err := os.ReadFile(filepath.Join(s.Dir, "data", store.DefaultBoltFile))
	if err != nil {
		s.t.Fatal(err)
	}
	places := map[string]string{"a log line": s.logs.String(), "an answer or scrape of the exporter": s.seen.String(), "the store file in clear": string(raw)}
	check := func(kind string, values []string, where ...string) {
		for _, v := range values {
			for _, w := range where {
				if strings.Contains(places[w], v) {
					s.t.Errorf("%s %s… found in %s", kind, v[:8], w)
				}
			}
		}
	}
	all := []string{"a log line", "an answer or scrape of the exporter", "the store file in clear"}
	check("token", tokens, all...)
	check("code", s.codes, all...)
	check("state", s.states, all[:2]...)
	check("client secret", []string{vendorsim.OAuthClientSecret}, all[:2]...)
}

// The lifecycle of an OAuth connection, end to end: connect through the
// API and the simulator's consent page, refresh before expiry with
// rotation, a failing token endpoint, a rotated refresh token replayed
// (the grant is revoked), reconnect through the API and the UI button,
// revocation, and the refresh failure window.
func TestSendGridOAuthLifecycle(t *testing.T) {
	// Not parallel: its refresh calls run within the scrape timeout, which a busy machine can miss.
	s := startOAuthStack(t)
	s.connect("/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "oauth1", "method": "oauth"}, "acme")
	c := s.conns()["oauth1"]
	if c.State != "active" || c.AuthMethod != "oauth" || c.Account != "acme" || c.AccountID != "4242001" || c.Expiry != nil || c.Settings["access_token_expiry"] == "" {
		t.Fatalf("connected: %+v", c)
	}
	created := c.Created
	m := s.scrapeAfter(time.Second)
	s.wantHealth(m, "oauth1", "active", "1")
	credits, _ := vendorsim.SendGridCreditsAt(vendorsim.SendGridKeyAcme, s.clock.Now())
	if got := metricValue(t, m, `saas_sendgrid_credits_remaining{connection="oauth1"}`); got != fmt.Sprint(credits.Remain) {
		t.Errorf("credits = %s, want %d", got, credits.Remain)
	}
	metricValue(t, m, `saas_connection_info{account="acme",auth_method="oauth",connection="oauth1",vendor="sendgrid"}`)
	if _, ok := s.expiryMetric(m, "oauth1"); ok {
		t.Error("expiry exported while refresh works and the refresh token's lifetime is unknown")
	}
	if n := s.Sim.OAuthRefreshCalls(); n != 0 {
		t.Errorf("%d refreshes of a fresh token", n)
	}

	// 30s before the access token ends: refreshed once, the refresh token rotated.
	s.clock.Add(time.Hour - 31*time.Second)
	m = s.scrapeAfter(time.Second)
	s.wantHealth(m, "oauth1", "active", "1")
	grant := s.Sim.OAuthGrants()[0]
	if n := s.Sim.OAuthRefreshCalls(); n != 1 || len(grant.RefreshTokens) != 2 || grant.Refreshes != 1 {
		t.Fatalf("refresh calls %d, refresh tokens issued %d", n, len(grant.RefreshTokens))
	}
	oldRefresh := grant.RefreshTokens[0]
	// Past the first access token's end, scrapes use the new one.
	m = s.scrapeAfter(time.Minute)
	s.wantHealth(m, "oauth1", "active", "1")
	if metricValue(t, m, series("saas_scrape_success", "oauth1")) != "1" || s.Sim.OAuthRefreshCalls() != 1 {
		t.Errorf("after the old token's end: success %s, refreshes %d", metricValue(t, m, series("saas_scrape_success", "oauth1")), s.Sim.OAuthRefreshCalls())
	}

	// The token endpoint is down. Within the margin, the current token
	// serves, and the expiry becomes that token's end.
	s.Sim.SetOAuthTokenUnavailable(true)
	accessEnd, err := time.Parse(time.RFC3339, s.conns()["oauth1"].Settings["access_token_expiry"])
	if err != nil {
		t.Fatal(err)
	}
	s.clock.Add(accessEnd.Add(-46 * time.Second).Sub(s.clock.Now()))
	m = s.scrapeAfter(time.Second)
	s.wantHealth(m, "oauth1", "active", "1")
	// The metric shows the store as read at the scrape's start: the next
	// scrape exports what this one recorded.
	m = s.scrapeAfter(time.Second)
	s.wantHealth(m, "oauth1", "active", "1")
	if got, ok := s.expiryMetric(m, "oauth1"); !ok || !sameUnix(got, accessEnd) {
		t.Errorf("expiry while refresh fails = %q (exported: %v), want the access token's end %d", got, ok, accessEnd.Unix())
	}
	if c := s.conns()["oauth1"]; c.Settings["refresh_failing_since"] == "" || c.Expiry == nil || !c.Expiry.Equal(accessEnd) {
		t.Errorf("failing refresh not recorded: %+v", c)
	}
	// Past the token's end: state error, not yet expired.
	s.clock.Add(accessEnd.Add(time.Second).Sub(s.clock.Now()))
	m = s.scrapeAfter(time.Second)
	s.wantHealth(m, "oauth1", "error", "0")
	if le := s.stored("oauth1", "error").LastError; !strings.Contains(le, "temporarily_unavailable") || !strings.Contains(le, "marked expired if this lasts past") {
		t.Errorf("last error %q", le)
	}
	// The endpoint is back: refreshed, active, no expiry any more.
	s.Sim.SetOAuthTokenUnavailable(false)
	s.scrapeAfter(time.Second)
	m = s.scrapeAfter(time.Second)
	s.wantHealth(m, "oauth1", "active", "1")
	if _, ok := s.expiryMetric(m, "oauth1"); ok {
		t.Error("expiry still exported after refresh recovered")
	}
	if c := s.conns()["oauth1"]; c.Settings["refresh_failing_since"] != "" {
		t.Errorf("failure still recorded: %v", c.Settings)
	}

	// The first, rotated-away refresh token is refused by the simulator, and
	// (as at real servers) its reuse revokes the grant: the next scrape's
	// token is refused, the refresh gets invalid_grant, the connection expires
	// and its health series stay.
	resp, err := http.PostForm(s.SimURL+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {oldRefresh},
		"client_id": {vendorsim.OAuthClientID}, "client_secret": {vendorsim.OAuthClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	var tokErr struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&tokErr)
	resp.Body.Close()
	if resp.StatusCode != 400 || tokErr.Error != "invalid_grant" {
		t.Fatalf("old refresh token: %d %q", resp.StatusCode, tokErr.Error)
	}
	refreshes := s.Sim.OAuthRefreshCalls()
	m = s.scrapeAfter(time.Second)
	s.wantHealth(m, "oauth1", "expired", "0")
	metricValue(t, m, `saas_connection_info{account="acme",auth_method="oauth",connection="oauth1",vendor="sendgrid"}`)
	metricValue(t, m, series("saas_connection_created_timestamp_seconds", "oauth1"))
	if le := s.stored("oauth1", "expired").LastError; !strings.Contains(le, "invalid_grant") || !strings.Contains(le, "reconnect") {
		t.Errorf("last error %q", le)
	}
	if n := s.Sim.OAuthRefreshCalls(); n != refreshes+1 {
		t.Errorf("refresh attempts after the 401: %d", n-refreshes)
	}
	// Expired connections are not called again until reconnected.
	calls := s.Sim.Calls("sendgrid")
	m = s.scrapeAfter(time.Second)
	s.wantHealth(m, "oauth1", "expired", "0")
	if s.Sim.Calls("sendgrid") != calls {
		t.Error("an expired connection was collected")
	}

	// Reconnect through the API: same id, name and created time; active again.
	s.connect("/api/v1/connections/"+c.ID+"/reconnect", map[string]string{"method": "oauth"}, "acme")
	r := s.conns()["oauth1"]
	if r.ID != c.ID || !r.Created.Equal(created) || r.State != "active" || len(s.conns()) != 1 {
		t.Errorf("after reconnect: %+v (was %s created %v)", r, c.ID, created)
	}
	m = s.scrapeAfter(time.Second)
	s.wantHealth(m, "oauth1", "active", "1")

	// The account's admin removes the app: invalid_grant, expired.
	if n := s.Sim.RevokeOAuthGrants("acme"); n != 1 {
		t.Errorf("revoked %d grants", n)
	}
	m = s.scrapeAfter(time.Second)
	s.wantHealth(m, "oauth1", "expired", "0")
	s.stored("oauth1", "expired")

	// Reconnect with the UI button of the connections page.
	b := s.browser()
	resp, err = b.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	s.seen.Write(page)
	form := regexp.MustCompile(`(?s)<form class="inline" method="post" action="/connect/sendgrid/start">(.*?)</form>`).FindStringSubmatch(string(page))
	if form == nil || !strings.Contains(form[1], `name="reconnect" value="`+c.ID+`"`) || !strings.Contains(form[1], `name="method" value="oauth"`) {
		t.Fatalf("no Reconnect button for the expired OAuth connection")
	}
	fc := &flowClient{b}
	fc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	start := s.postForm(fc, s.URL+"/connect/sendgrid/start", url.Values{"csrf": {formValue(form[1], "csrf")}, "method": {"oauth"}, "reconnect": {c.ID}})
	if start.Status != http.StatusFound {
		t.Fatalf("Reconnect button: %d %s", start.Status, start.Body)
	}
	cb := s.consent(fc, start.Location, "acme", "allow")
	if r := s.get(fc, cb); r.Status != http.StatusSeeOther || !strings.Contains(r.Location, "msg=reconnected") {
		t.Fatalf("callback after the UI button: %d %q", r.Status, r.Location)
	}
	if r := s.conns()["oauth1"]; r.ID != c.ID || r.State != "active" {
		t.Errorf("after the UI reconnect: %+v", r)
	}

	// Refresh fails for longer than refresh_failure_window (96h): expired.
	s.Sim.SetOAuthTokenUnavailable(true)
	s.clock.Add(time.Hour)
	m = s.scrapeAfter(time.Second)
	s.wantHealth(m, "oauth1", "error", "0")
	s.clock.Add(96 * time.Hour)
	m = s.scrapeAfter(time.Second)
	s.wantHealth(m, "oauth1", "expired", "0")
	if le := s.stored("oauth1", "expired").LastError; !strings.Contains(le, "refresh failure window") {
		t.Errorf("last error %q", le)
	}

	s.checkNoSecrets()
	// Last, as it skips where promtool is not installed (outside CI).
	promtoolCheck(t, m)
}

func sameUnix(got string, want time.Time) bool {
	v, err := strconv.ParseFloat(got, 64)
	return err == nil && v == float64(want.Unix())
}

// Refused callbacks store nothing and say why: denied consent, an error
// from the authorization server, a forged state, a replayed callback and
// a PKCE mismatch.
func TestSendGridOAuthRefusedCallbacks(t *testing.T) {
	t.Parallel()
	s := startOAuthStack(t)
	body := map[string]string{"vendor": "sendgrid", "name": "oauth1", "method": "oauth"}
	refused := func(r reply, want string) {
		t.Helper()
		text := html.UnescapeString(r.Body)
		if r.Status != http.StatusBadRequest || !strings.Contains(text, want) {
			t.Errorf("want 400 with %q, got %d %s", want, r.Status, text)
		}
		if n := len(s.conns()); n != 0 {
			t.Errorf("%d connections stored", n)
		}
	}

	// Deny on the consent page.
	c := newFlowClient()
	refused(s.get(c, s.consent(c, s.apiFlow(c, "/api/v1/connections", body), "acme", "deny")), "SendGrid did not grant access")

	// The authorization server fails.
	s.Sim.SetOAuthAuthorizeError("server_error")
	c = newFlowClient()
	r := s.get(c, s.apiFlow(c, "/api/v1/connections", body))
	if r.Status != http.StatusFound {
		t.Fatalf("authorize with an error: %d", r.Status)
	}
	refused(s.get(c, r.Location), "server_error")
	s.Sim.SetOAuthAuthorizeError("")

	// A forged state.
	c = newFlowClient()
	cb := s.consent(c, s.apiFlow(c, "/api/v1/connections", body), "acme", "allow")
	u, _ := url.Parse(cb)
	q := u.Query()
	q.Set("state", strings.Repeat("A", len(q.Get("state"))))
	u.RawQuery = q.Encode()
	refused(s.get(c, u.String()), "Forged or mixed-up callback")

	// A replayed callback: the first works, the same URL with the same
	// flow cookie again is refused and never reaches the token endpoint.
	c = newFlowClient()
	cb = s.consent(c, s.apiFlow(c, "/api/v1/connections", body), "acme", "allow")
	exporterURL, _ := url.Parse(s.URL)
	cookies := c.Jar.Cookies(exporterURL)
	if r := s.get(c, cb); r.Status != http.StatusSeeOther {
		t.Fatalf("first callback: %d %s", r.Status, r.Body)
	}
	exchanges := s.Sim.OAuthCodeExchanges()
	c.Jar.SetCookies(exporterURL, cookies)
	r = s.get(c, cb)
	if text := html.UnescapeString(r.Body); r.Status != http.StatusBadRequest || !strings.Contains(text, "Callback already used") {
		t.Errorf("replay: %d %s", r.Status, text)
	}
	if s.Sim.OAuthCodeExchanges() != exchanges || len(s.conns()) != 1 {
		t.Errorf("replay reached the token endpoint (%d exchanges) or changed connections", s.Sim.OAuthCodeExchanges()-exchanges)
	}
	s.api("DELETE", "/api/v1/connections/"+s.conns()["oauth1"].ID, nil, nil)

	// PKCE mismatch: the challenge is swapped on the way to the consent
	// page, so the exporter's verifier does not match and the token
	// endpoint refuses the code.
	c = newFlowClient()
	au, _ := url.Parse(s.apiFlow(c, "/api/v1/connections", body))
	aq := au.Query()
	aq.Set("code_challenge", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()))
	au.RawQuery = aq.Encode()
	grants := len(s.Sim.OAuthGrants())
	refused(s.get(c, s.consent(c, au.String(), "acme", "allow")), "refused the authorization code (invalid_grant)")
	if len(s.Sim.OAuthGrants()) != grants {
		t.Error("the simulator granted access despite the PKCE mismatch")
	}
	if !strings.Contains(s.logs.String(), "connection callback refused") {
		t.Error("refusals are not logged")
	}

	s.checkNoSecrets()
}

// An invited admin completes the OAuth flow without an exporter login.
func TestSendGridOAuthInvite(t *testing.T) {
	t.Parallel()
	s := startOAuthStack(t)
	var inv struct {
		URL string `json:"url"`
	}
	if code := s.api("POST", "/api/v1/invites", map[string]string{"vendor": "sendgrid", "name": "invited"}, &inv); code != 201 || inv.URL == "" {
		t.Fatalf("invite: %d", code)
	}
	c := newFlowClient()
	page := s.get(c, inv.URL)
	form := regexp.MustCompile(`(?s)<form class="card" method="post" action="(/invite/[^"]+/start)">(.*?)</form>`).FindStringSubmatch(page.Body)
	if page.Status != 200 || form == nil || !strings.Contains(form[2], `value="oauth"`) {
		t.Fatalf("invite page without the OAuth button: %d %s", page.Status, page.Body)
	}
	start := s.postForm(c, s.URL+html.UnescapeString(form[1]), url.Values{"csrf": {formValue(form[2], "csrf")}, "method": {"oauth"}})
	if start.Status != http.StatusFound {
		t.Fatalf("invite start: %d %s", start.Status, start.Body)
	}
	r := s.get(c, s.consent(c, start.Location, "beta", "allow"))
	if r.Status != http.StatusSeeOther || r.Location != "/invite/done" {
		t.Fatalf("invite callback: %d %q %s", r.Status, r.Location, r.Body)
	}
	got := s.conns()["invited"]
	if got.State != "active" || got.AuthMethod != "oauth" {
		t.Errorf("invited connection %+v", got)
	}
	m := s.scrapeAfter(time.Second)
	s.wantHealth(m, "invited", "active", "1")
	metricValue(t, m, series("saas_connection_scope_missing", "invited", `scope="user.credits.read"`))
	// The link works once.
	if r := s.get(newFlowClient(), inv.URL); r.Status != http.StatusGone {
		t.Errorf("used invite: %d", r.Status)
	}
	s.checkNoSecrets()
}
