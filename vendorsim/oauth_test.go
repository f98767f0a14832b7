package vendorsim

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	testRedirect = "http://127.0.0.1:9888/connect/sendgrid/callback"
	testVerifier = "test-verifier-0123456789-abcdefghijklmnopqrstuvwxyz"
	testState    = "state-1234"
)

func challengeOf(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func oauthCall(t *testing.T, method, u string, form url.Values, basic bool) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if basic {
		req.SetBasicAuth(url.QueryEscape(OAuthClientID), url.QueryEscape(OAuthClientSecret))
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func authzQuery(edit func(q url.Values)) url.Values {
	q := url.Values{
		"response_type": {"code"}, "client_id": {OAuthClientID}, "redirect_uri": {testRedirect},
		"scope": {"stats.read user.credits.read user.username.read"}, "state": {testState},
		"code_challenge": {challengeOf(testVerifier)}, "code_challenge_method": {"S256"},
	}
	if edit != nil {
		edit(q)
	}
	return q
}

// consent plays the consent page: GET it, then POST its form with the
// decision and account. It returns the redirect's query.
func consent(t *testing.T, ts *httptest.Server, q url.Values, decision, account string) url.Values {
	t.Helper()
	page := oauthCall(t, "GET", ts.URL+"/oauth/authorize?"+q.Encode(), nil, false)
	if page.Status != 200 || !strings.Contains(string(page.Body), `value="allow"`) {
		t.Fatalf("consent page: %d %s", page.Status, page.Body)
	}
	form := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`).FindAllStringSubmatch(string(page.Body), -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	form.Set("decision", decision)
	form.Set("account", account)
	a := oauthCall(t, "POST", ts.URL+"/oauth/authorize", form, false)
	return redirectQuery(t, a)
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&#43;", "+").Replace(s)
}

func redirectQuery(t *testing.T, a answer) url.Values {
	t.Helper()
	if a.Status != http.StatusFound {
		t.Fatalf("want a redirect back to the client, got %d %s", a.Status, a.Body)
	}
	u, err := url.Parse(a.Header.Get("Location"))
	if err != nil || u.Scheme+"://"+u.Host+u.Path != testRedirect {
		t.Fatalf("redirect to %q", a.Header.Get("Location"))
	}
	return u.Query()
}

type tokenAnswer struct {
	AccessToken           string `json:"access_token"`
	TokenType             string `json:"token_type"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token"`
	Scope                 string `json:"scope"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in"`
	Error                 string `json:"error"`
	ErrorDescription      string `json:"error_description"`
}

func token(t *testing.T, ts *httptest.Server, form url.Values) (int, tokenAnswer) {
	t.Helper()
	a := oauthCall(t, "POST", ts.URL+"/oauth/token", form, true)
	var out tokenAnswer
	a.decode(t, &out)
	if a.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("token answer without Cache-Control: no-store")
	}
	return a.Status, out
}

func exchange(t *testing.T, ts *httptest.Server, code string) (int, tokenAnswer) {
	t.Helper()
	return token(t, ts, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "code_verifier": {testVerifier}})
}

func refreshWith(t *testing.T, ts *httptest.Server, rt string) (int, tokenAnswer) {
	t.Helper()
	return token(t, ts, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
}

// connectAccount runs consent and code exchange for account.
func connectAccount(t *testing.T, ts *httptest.Server, account string) tokenAnswer {
	t.Helper()
	q := consent(t, ts, authzQuery(nil), "allow", account)
	if q.Get("state") != testState || q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	st, tok := exchange(t, ts, q.Get("code"))
	if st != 200 {
		t.Fatalf("exchange: %d %+v", st, tok)
	}
	return tok
}

func scopesWith(t *testing.T, ts *httptest.Server, access string) (int, []string) {
	t.Helper()
	a := get(t, ts, "/sendgrid/v3/scopes", access)
	if a.Status != 200 {
		return a.Status, nil
	}
	var out struct{ Scopes []string }
	a.decode(t, &out)
	return a.Status, out.Scopes
}

func TestOAuthCodeFlowAndBearerTokens(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	tok := connectAccount(t, ts, "acme")
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 3600 || tok.RefreshToken == "" || tok.Scope != "stats.read user.credits.read user.username.read" || tok.RefreshTokenExpiresIn != 0 {
		t.Errorf("token answer %+v", tok)
	}
	// The access token works on SendGrid with the granted scopes only.
	st, scopes := scopesWith(t, ts, tok.AccessToken)
	if st != 200 || strings.Join(scopes, " ") != "stats.read user.credits.read user.username.read" {
		t.Errorf("scopes with the access token: %d %v", st, scopes)
	}
	if a := get(t, ts, "/sendgrid/v3/user/account", tok.AccessToken); a.Status != 403 {
		t.Errorf("a scope not granted: %d", a.Status)
	}
	if a := get(t, ts, "/sendgrid/v3/user/username", tok.AccessToken); a.Status != 200 || !strings.Contains(string(a.Body), `"acme"`) {
		t.Errorf("username: %d %s", a.Status, a.Body)
	}
	// Beta, all of its scopes when none are requested.
	q := consent(t, ts, authzQuery(func(q url.Values) { q.Del("scope") }), "allow", "beta")
	_, btok := exchange(t, ts, q.Get("code"))
	if _, scopes := scopesWith(t, ts, btok.AccessToken); strings.Join(scopes, " ") != "stats.read user.account.read mail.send" {
		t.Errorf("beta scopes %v", scopes)
	}
	if g := sim.OAuthGrants(); len(g) != 2 || g[0].Account != "acme" || g[1].Account != "beta" || g[0].RefreshToken != tok.RefreshToken || sim.OAuthCodeExchanges() != 2 {
		t.Errorf("grants %+v, exchanges %d", g, sim.OAuthCodeExchanges())
	}
}

func TestOAuthDeny(t *testing.T) {
	_, ts, _ := newSim(t, Options{})
	q := consent(t, ts, authzQuery(nil), "deny", "acme")
	if q.Get("error") != "access_denied" || q.Get("state") != testState || q.Get("code") != "" {
		t.Errorf("deny: %v", q)
	}
}

func TestOAuthAuthorizeRequestErrors(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	// Errors about the client or redirect URI are shown, never redirected.
	for _, edit := range []func(url.Values){
		func(q url.Values) { q.Set("client_id", "someone-else") },
		func(q url.Values) { q.Set("redirect_uri", "http://evil.example/connect/sendgrid/callback") },
		func(q url.Values) { q.Set("redirect_uri", "http://localhost:9999/connect/sendgrid/callback") },
		func(q url.Values) { q.Set("redirect_uri", "https://127.0.0.1:9888/connect/sendgrid/callback") },
		func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:9888/connect/twilio/callback") },
		func(q url.Values) { q.Set("redirect_uri", testRedirect+"?x=1") },
		func(q url.Values) { q.Del("redirect_uri") },
	} {
		a := oauthCall(t, "GET", ts.URL+"/oauth/authorize?"+authzQuery(edit).Encode(), nil, false)
		if a.Status != 400 || a.Header.Get("Location") != "" || !strings.HasPrefix(a.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%v: %d %q", authzQuery(edit), a.Status, a.Header.Get("Location"))
		}
	}
	for _, ok := range []string{"http://localhost:9888/connect/sendgrid/callback", "http://127.0.0.1:41234/connect/sendgrid/callback"} {
		if !allowedRedirect(ok) {
			t.Errorf("%s refused", ok)
		}
	}
	// Everything else goes back to the client with the state.
	for _, tc := range []struct {
		edit func(url.Values)
		want string
	}{
		{func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{func(q url.Values) { q.Del("code_challenge") }, "invalid_request"},
		{func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{func(q url.Values) { q.Set("code_challenge", "short") }, "invalid_request"},
		{func(q url.Values) { q.Set("scope", "stats.read admin.everything") }, "invalid_scope"},
	} {
		q := redirectQuery(t, oauthCall(t, "GET", ts.URL+"/oauth/authorize?"+authzQuery(tc.edit).Encode(), nil, false))
		if q.Get("error") != tc.want || q.Get("state") != testState || q.Get("error_description") == "" {
			t.Errorf("want %s, got %v", tc.want, q)
		}
	}
	// The switch for any RFC 6749 error.
	sim.SetOAuthAuthorizeError("temporarily_unavailable")
	q := redirectQuery(t, oauthCall(t, "GET", ts.URL+"/oauth/authorize?"+authzQuery(nil).Encode(), nil, false))
	if q.Get("error") != "temporarily_unavailable" || q.Get("state") != testState {
		t.Errorf("forced error: %v", q)
	}
	sim.SetOAuthAuthorizeError("")
	// Allow without an account.
	form := authzQuery(nil)
	form.Set("decision", "allow")
	if a := oauthCall(t, "POST", ts.URL+"/oauth/authorize", form, false); a.Status != 400 || !strings.Contains(string(a.Body), "acme, beta") {
		t.Errorf("no account: %d %s", a.Status, a.Body)
	}
}

func TestOAuthCodeExchangeChecks(t *testing.T) {
	_, ts, clock := newSim(t, Options{})
	code := func() string { return consent(t, ts, authzQuery(nil), "allow", "acme").Get("code") }
	for _, tc := range []struct {
		name string
		form func(code string) url.Values
		want string
	}{
		{"PKCE mismatch", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {testRedirect}, "code_verifier": {testVerifier + "x"}}
		}, "PKCE verification failed"},
		{"no verifier", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {testRedirect}}
		}, "PKCE verification failed"},
		{"other redirect", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {"http://127.0.0.1:1/connect/sendgrid/callback"}, "code_verifier": {testVerifier}}
		}, "redirect_uri does not match"},
		{"unknown code", func(c string) url.Values {
			return url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "redirect_uri": {testRedirect}, "code_verifier": {testVerifier}}
		}, "unknown authorization code"},
	} {
		c := code()
		st, out := token(t, ts, tc.form(c))
		if st != 400 || out.Error != "invalid_grant" || !strings.Contains(out.ErrorDescription, tc.want) {
			t.Errorf("%s: %d %+v", tc.name, st, out)
		}
		// A code is good for one presentation, failed or not.
		if st, out := exchange(t, ts, c); tc.name != "unknown code" && (st != 400 || out.Error != "invalid_grant") {
			t.Errorf("%s: the code worked after a failed presentation: %d", tc.name, st)
		}
	}

	// Expired code (simulator clock).
	c := code()
	clock.Set(testNow.Add(OAuthCodeLifetime + time.Second))
	if st, out := exchange(t, ts, c); st != 400 || !strings.Contains(out.ErrorDescription, "expired") {
		t.Errorf("expired code: %d %+v", st, out)
	}
	clock.Set(testNow)

	// A replayed code is refused and revokes what it gave.
	c = code()
	st, tok := exchange(t, ts, c)
	if st != 200 {
		t.Fatalf("exchange %d", st)
	}
	if st, out := exchange(t, ts, c); st != 400 || out.Error != "invalid_grant" || !strings.Contains(out.ErrorDescription, "already used") {
		t.Errorf("replay: %d %+v", st, out)
	}
	if st, _ := scopesWith(t, ts, tok.AccessToken); st != 401 {
		t.Errorf("access token after code replay: %d", st)
	}
	if st, out := refreshWith(t, ts, tok.RefreshToken); st != 400 || out.Error != "invalid_grant" {
		t.Errorf("refresh after code replay: %d %+v", st, out)
	}
}

func TestOAuthClientAuthentication(t *testing.T) {
	_, ts, _ := newSim(t, Options{})
	c := consent(t, ts, authzQuery(nil), "allow", "acme").Get("code")
	form := url.Values{"grant_type": {"authorization_code"}, "code": {c}, "redirect_uri": {testRedirect}, "code_verifier": {testVerifier}}

	// Wrong secret, basic.
	req, _ := http.NewRequest("POST", ts.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(OAuthClientID, "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("wrong secret: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// Both methods at once.
	both := url.Values{"client_id": {OAuthClientID}, "client_secret": {OAuthClientSecret}}
	for k, v := range form {
		both[k] = v
	}
	if a := oauthCall(t, "POST", ts.URL+"/oauth/token", both, true); a.Status != 400 || !strings.Contains(string(a.Body), "invalid_request") {
		t.Errorf("both methods: %d %s", a.Status, a.Body)
	}
	// No authentication.
	if a := oauthCall(t, "POST", ts.URL+"/oauth/token", form, false); a.Status != 401 || !strings.Contains(string(a.Body), "invalid_client") {
		t.Errorf("none: %d %s", a.Status, a.Body)
	}
	// Credentials in the body work (the code is still unused: client
	// authentication comes before the code is looked at).
	if a := oauthCall(t, "POST", ts.URL+"/oauth/token", both, false); a.Status != 200 {
		t.Errorf("body credentials: %d %s", a.Status, a.Body)
	}
}

func TestOAuthRefreshRotation(t *testing.T) {
	sim, ts, clock := newSim(t, Options{})
	sim.SetOAuthAccessTokenLifetime(10 * time.Minute)
	tok := connectAccount(t, ts, "acme")
	if tok.ExpiresIn != 600 {
		t.Errorf("expires_in %d", tok.ExpiresIn)
	}
	clock.Set(testNow.Add(10 * time.Minute))
	if st, _ := scopesWith(t, ts, tok.AccessToken); st != 401 {
		t.Errorf("expired access token: %d", st)
	}
	st, next := refreshWith(t, ts, tok.RefreshToken)
	if st != 200 || next.RefreshToken == tok.RefreshToken || next.AccessToken == tok.AccessToken || next.Scope != tok.Scope {
		t.Fatalf("refresh: %d %+v", st, next)
	}
	if st, _ := scopesWith(t, ts, next.AccessToken); st != 200 {
		t.Errorf("refreshed access token: %d", st)
	}
	if sim.OAuthRefreshCalls() != 1 {
		t.Errorf("refresh calls %d", sim.OAuthRefreshCalls())
	}
	g := sim.OAuthGrants()[0]
	if g.RefreshToken != next.RefreshToken || g.Refreshes != 1 || len(g.RefreshTokens) != 2 || len(g.AccessTokens) != 2 {
		t.Errorf("grant %+v", g)
	}
	// Narrowing on refresh is allowed, widening is not.
	if st, out := token(t, ts, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {next.RefreshToken}, "scope": {"mail.send"}}); st != 400 || out.Error != "invalid_scope" {
		t.Errorf("widening: %d %+v", st, out)
	}
	// Reusing the rotated-away refresh token revokes the grant.
	if st, out := refreshWith(t, ts, tok.RefreshToken); st != 400 || out.Error != "invalid_grant" || !strings.Contains(out.ErrorDescription, "already used") {
		t.Errorf("reuse: %d %+v", st, out)
	}
	if st, out := refreshWith(t, ts, next.RefreshToken); st != 400 || out.Error != "invalid_grant" {
		t.Errorf("current token after reuse: %d %+v", st, out)
	}
	if st, _ := scopesWith(t, ts, next.AccessToken); st != 401 {
		t.Errorf("access token after reuse: %d", st)
	}
	if !sim.OAuthGrants()[0].Revoked || sim.OAuthRefreshCalls() != 4 {
		t.Errorf("revoked %v, refresh calls %d", sim.OAuthGrants()[0].Revoked, sim.OAuthRefreshCalls())
	}
	if st, out := refreshWith(t, ts, "vsor_unknown"); st != 400 || out.Error != "invalid_grant" {
		t.Errorf("unknown refresh token: %d %+v", st, out)
	}
}

func TestOAuthRefreshTokenLifetime(t *testing.T) {
	sim, ts, clock := newSim(t, Options{})
	sim.SetOAuthRefreshTokenLifetime(24 * time.Hour)
	tok := connectAccount(t, ts, "acme")
	if tok.RefreshTokenExpiresIn != 86400 {
		t.Errorf("refresh_token_expires_in %d", tok.RefreshTokenExpiresIn)
	}
	clock.Set(testNow.Add(24 * time.Hour))
	if st, out := refreshWith(t, ts, tok.RefreshToken); st != 400 || out.Error != "invalid_grant" || !strings.Contains(out.ErrorDescription, "expired") {
		t.Errorf("expired refresh token: %d %+v", st, out)
	}
}

func TestOAuthRevokeAndUnavailable(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	acme, beta := connectAccount(t, ts, "acme"), connectAccount(t, ts, "beta")

	sim.SetOAuthTokenUnavailable(true)
	if st, out := refreshWith(t, ts, acme.RefreshToken); st != 503 || out.Error != "temporarily_unavailable" {
		t.Errorf("unavailable: %d %+v", st, out)
	}
	if sim.OAuthRefreshCalls() != 1 {
		t.Errorf("refused refresh not counted: %d", sim.OAuthRefreshCalls())
	}
	sim.SetOAuthTokenUnavailable(false)

	if n := sim.RevokeOAuthGrants("acme"); n != 1 {
		t.Errorf("revoked %d grants", n)
	}
	if st, out := refreshWith(t, ts, acme.RefreshToken); st != 400 || out.Error != "invalid_grant" || !strings.Contains(out.ErrorDescription, "revoked") {
		t.Errorf("revoked grant: %d %+v", st, out)
	}
	if st, _ := scopesWith(t, ts, acme.AccessToken); st != 401 {
		t.Errorf("revoked access token: %d", st)
	}
	if st, _ := scopesWith(t, ts, beta.AccessToken); st != 200 {
		t.Errorf("another account's token: %d", st)
	}
	// An API key of the same account is not affected.
	if st, _ := scopesWith(t, ts, SendGridKeyAcme); st != 200 {
		t.Errorf("API key after revoking OAuth grants: %d", st)
	}
}

func TestOAuthTokenEndpointBadRequests(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	if a := oauthCall(t, "GET", ts.URL+"/oauth/token", nil, false); a.Status != 405 || a.Header.Get("Allow") != "POST" {
		t.Errorf("GET /token: %d", a.Status)
	}
	if a := do(t, ts, "POST", "/oauth/token", "", "application/json", `{"grant_type":"refresh_token"}`); a.Status != 400 || !strings.Contains(string(a.Body), "form-url-encoded") {
		t.Errorf("JSON body: %d %s", a.Status, a.Body)
	}
	if st, out := token(t, ts, url.Values{"grant_type": {"password"}}); st != 400 || out.Error != "unsupported_grant_type" {
		t.Errorf("password grant: %d %+v", st, out)
	}
	if st, out := token(t, ts, url.Values{}); st != 400 || out.Error != "invalid_request" {
		t.Errorf("no grant type: %d %+v", st, out)
	}
	if a := oauthCall(t, "GET", ts.URL+"/oauth/nothing", nil, false); a.Status != 404 {
		t.Errorf("unknown path: %d", a.Status)
	}
	// Faults answer in OAuth's error shape.
	sim.SetFault("oauth", Fault{Status: 502})
	if st, out := refreshWith(t, ts, "x"); st != 502 || out.Error != "server_error" {
		t.Errorf("fault: %d %+v", st, out)
	}
	if sim.Calls("oauth") == 0 {
		t.Error("calls to /oauth are not counted under vendor oauth")
	}
}

func TestOAuthControlAPI(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	a := do(t, ts, "PUT", "/_sim/oauth", "", "application/json", `{"access_token_lifetime":"2m","refresh_token_lifetime":"48h","token_unavailable":true,"authorize_error":"server_error"}`)
	var s oauthSettings
	a.decode(t, &s)
	if a.Status != 200 || s.AccessTokenLifetime != "2m0s" || s.RefreshTokenLifetime != "48h0m0s" || !s.TokenUnavailable || s.AuthorizeError != "server_error" {
		t.Errorf("PUT: %d %+v", a.Status, s)
	}
	for _, body := range []string{`{"access_token_lifetime":"0s"}`, `{"refresh_token_lifetime":"-1h"}`, `{"grants":3}`, `{"nope":1}`, `[`, `{"authorize_error":"a b"}`} {
		if a := do(t, ts, "PUT", "/_sim/oauth", "", "application/json", body); a.Status != 400 {
			t.Errorf("%s: %d", body, a.Status)
		}
	}
	do(t, ts, "PUT", "/_sim/oauth", "", "application/json", `{"token_unavailable":false,"authorize_error":""}`)
	connectAccount(t, ts, "beta")
	a = get(t, ts, "/_sim/oauth", "")
	a.decode(t, &s)
	if s.Grants != 1 || s.CodeExchanges != 1 || s.AccessTokenLifetime != "2m0s" {
		t.Errorf("GET: %+v", s)
	}
	if a := do(t, ts, "POST", "/_sim/oauth/revoke", "", "application/x-www-form-urlencoded", "account=beta"); a.Status != 200 || !strings.Contains(string(a.Body), `"revoked":1`) {
		t.Errorf("revoke: %d %s", a.Status, a.Body)
	}
	if a := do(t, ts, "POST", "/_sim/oauth/revoke", "", "application/json", `{"account":"nobody"}`); a.Status != 400 {
		t.Errorf("revoke unknown: %d", a.Status)
	}
	if !sim.OAuthGrants()[0].Revoked {
		t.Error("not revoked")
	}
	// The demo configuration names the client and both endpoints.
	cfg := sim.ConfigSnippet("http://127.0.0.1:9800")
	for _, want := range []string{"    oauth:\n      client_id: " + OAuthClientID, "auth_url: http://127.0.0.1:9800/oauth/authorize", "token_url: http://127.0.0.1:9800/oauth/token"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config snippet lacks %q", want)
		}
	}
	if !slices.ContainsFunc(sim.Vendors(), func(v VendorInfo) bool { return v.Vendor == "oauth" && len(v.Credentials) == 2 }) {
		t.Error("the index does not describe the OAuth server")
	}
}
