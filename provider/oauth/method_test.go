package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/saas-exporter/saas_exporter/provider"
)

var flow = provider.Flow{State: "state-abcdefghijklmnop", Verifier: "verifier-0123456789abcdefghijklmnopqrstuvwxyz", RedirectURL: redirectURL}

func TestAuthorizeURL(t *testing.T) {
	a := newAS(t)
	m, _ := newMethod(t, a, nil)
	if !m.Enabled() || m.Name() != "oauth" || m.Title() != "Example sign-in" {
		t.Fatalf("method: %v %q %q", m.Enabled(), m.Name(), m.Title())
	}
	raw, err := m.AuthorizeURL(flow)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := map[string]string{
		"response_type": "code", "client_id": clientID, "redirect_uri": redirectURL, "scope": "read stats",
		"state": flow.State, "code_challenge": oauth2.S256ChallengeFromVerifier(flow.Verifier), "code_challenge_method": "S256",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if u.Host != "vendor.example" || strings.Contains(raw, flow.Verifier) || strings.Contains(raw, clientSecret) {
		t.Errorf("authorize URL %s", raw)
	}
	if _, err := m.AuthorizeURL(provider.Flow{RedirectURL: redirectURL}); err == nil {
		t.Error("a flow without state was accepted")
	}
	off := NewMethod("oauth", "x", "Example", Config{}, nil)
	if off.Enabled() {
		t.Error("an unconfigured method is enabled")
	}
	if _, err := off.AuthorizeURL(flow); err == nil {
		t.Error("an unconfigured method built a URL")
	}
}

func callback(code string) url.Values {
	return url.Values{"code": {code}, "state": {flow.State}}
}

func TestFinishExchangesWithPKCEOverTheGivenClient(t *testing.T) {
	a := newAS(t)
	a.set(func(a *fakeAS) { a.life = 1800 })
	m, v := newMethod(t, a, func() time.Time { return t0 })
	cc := &countingClient{}
	hc := &http.Client{Transport: cc}
	cred, err := m.Finish(context.Background(), hc, flow, callback("code-123456"))
	if err != nil {
		t.Fatal(err)
	}
	f := a.lastForm()
	for k, want := range map[string]string{"grant_type": "authorization_code", "code": "code-123456", "redirect_uri": redirectURL, "code_verifier": flow.Verifier} {
		if f.Get(k) != want {
			t.Errorf("token request %s = %q, want %q", k, f.Get(k), want)
		}
	}
	if f.Get("client_secret") != "" {
		t.Error("client secret sent in the body as well as in basic auth")
	}
	if cc.count() != 1 || v.hc != hc {
		t.Errorf("the exchange did not use the client given to Finish (%d requests)", cc.count())
	}
	if len(v.tokens) != 1 || v.tokens[0] != "access-1-xyz" {
		t.Errorf("verify saw %v", v.tokens)
	}
	if cred.AuthMethod != "oauth" || cred.Account != "acct" || cred.AccountID != "42" {
		t.Errorf("credential %+v", cred)
	}
	if cred.Secret[SecretAccessToken] != "access-1-xyz" || cred.Secret[SecretRefreshToken] != "refresh-1-xyz" || len(cred.Secret) != 2 {
		t.Errorf("secret keys %v", keys(cred.Secret))
	}
	if cred.Settings[SettingAccessExpiry] != t0.Add(30*time.Minute).Format(time.RFC3339) || cred.Settings["region"] != "us" {
		t.Errorf("settings %v", cred.Settings)
	}
	if _, ok := cred.Settings[SettingRefreshExpiry]; ok || !cred.Expiry.IsZero() {
		t.Errorf("unknown refresh lifetime gave expiry %v / %v", cred.Expiry, cred.Settings)
	}

	// A token answer that tells the refresh token's lifetime sets the expiry.
	a.set(func(a *fakeAS) { a.refLife = 86400 })
	cred, err = m.Finish(context.Background(), hc, flow, callback("code-2"))
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(24 * time.Hour); !cred.Expiry.Equal(want) || cred.Settings[SettingRefreshExpiry] != want.Format(time.RFC3339) {
		t.Errorf("expiry %v, settings %v", cred.Expiry, cred.Settings)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestFinishRefusesErrorsAndBadCallbacks(t *testing.T) {
	a := newAS(t)
	m, v := newMethod(t, a, nil)
	for _, tc := range []struct {
		q    url.Values
		want string
	}{
		{url.Values{"error": {"access_denied"}, "state": {flow.State}}, "Access was denied on Example's consent page"},
		{url.Values{"error": {"access_denied"}, "error_description": {"The user said <b>no</b>"}}, "Example said: “The user said <b>no</b>”"},
		{url.Values{"error": {"invalid_request"}}, "check auth_url and client_id in vendors.example.oauth"},
		{url.Values{"error": {"unauthorized_client"}}, "(unauthorized_client)"},
		{url.Values{"error": {"unsupported_response_type"}}, "does not support the authorization code flow"},
		{url.Values{"error": {"invalid_scope"}}, "refused the requested scopes read stats (invalid_scope)"},
		{url.Values{"error": {"server_error"}}, "try again later"},
		{url.Values{"error": {"temporarily_unavailable"}}, "try again in a few minutes"},
		{url.Values{"error": {"weird\nthing"}}, `reported the error "weird thing"`},
		{url.Values{"code": {"c"}, "state": {"forged"}}, "missing or forged"},
		{url.Values{"code": {"c"}}, "missing or forged"},
		{url.Values{"state": {flow.State}}, "carries no authorization code"},
	} {
		_, err := m.Finish(context.Background(), http.DefaultClient, flow, tc.q)
		var ie *provider.InputError
		if !errors.As(err, &ie) || !strings.Contains(ie.Message, tc.want) {
			t.Errorf("%v: got %v, want an input error with %q", tc.q, err, tc.want)
		}
	}
	long := strings.Repeat("x", 5000)
	_, err := m.Finish(context.Background(), http.DefaultClient, flow, url.Values{"error": {"access_denied"}, "error_description": {long}})
	if err == nil || len(err.Error()) > 1000 {
		t.Errorf("a long error_description was not clipped (%d bytes)", len(err.Error()))
	}
	if a.count() != 0 || len(v.tokens) != 0 {
		t.Errorf("refused callbacks reached the token endpoint (%d) or the vendor (%d)", a.count(), len(v.tokens))
	}
}

func TestFinishTokenEndpointErrors(t *testing.T) {
	a := newAS(t)
	m, v := newMethod(t, a, nil)
	for _, tc := range []struct {
		setup func(*fakeAS)
		input bool
		want  string
	}{
		{func(a *fakeAS) { a.errCode, a.desc = "invalid_grant", "PKCE verification failed" }, true, "refused the authorization code (invalid_grant)"},
		{func(a *fakeAS) { a.errCode, a.status = "invalid_client", 401 }, true, "check client_id and client_secret in vendors.example.oauth"},
		{func(a *fakeAS) { a.errCode = "invalid_scope" }, true, "check scopes in vendors.example.oauth"},
		{func(a *fakeAS) { a.errCode = "unsupported_grant_type" }, true, "unsupported_grant_type"},
		{func(a *fakeAS) { a.errCode, a.status = "temporarily_unavailable", 503 }, false, "answered HTTP 503 (temporarily_unavailable)"},
		{func(a *fakeAS) { a.status = 502 }, false, "answered HTTP 502 without an OAuth error"},
		{func(a *fakeAS) { a.html = true }, false, "exchanging the authorization code with Example"},
	} {
		a.set(func(a *fakeAS) { a.errCode, a.desc, a.status, a.html = "", "", 0, false; tc.setup(a) })
		_, err := m.Finish(context.Background(), http.DefaultClient, flow, callback("code-secret-value"))
		var ie *provider.InputError
		if err == nil || errors.As(err, &ie) != tc.input || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v (input error: %v), want %q (input error: %v)", err, errors.As(err, &ie), tc.want, tc.input)
		}
		if err != nil && (strings.Contains(err.Error(), "code-secret-value") || strings.Contains(err.Error(), clientSecret)) {
			t.Errorf("secret in error: %v", err)
		}
	}
	if len(v.tokens) != 0 {
		t.Error("a failed exchange reached the vendor check")
	}

	// Unreachable token endpoint.
	a.srv.Close()
	_, err := m.Finish(context.Background(), http.DefaultClient, flow, callback("code-secret-value"))
	if err == nil || !strings.Contains(err.Error(), "exchanging the authorization code with Example") || strings.Contains(err.Error(), "code-secret-value") {
		t.Errorf("unreachable: %v", err)
	}
}

func TestFinishVendorCheck(t *testing.T) {
	a := newAS(t)
	cfg := Config{ClientID: clientID, ClientSecret: clientSecret, AuthURL: "https://vendor.example/a", TokenURL: a.srv.URL}
	refused := provider.Inputf("", "the vendor refused the token")
	m := NewMethod("oauth", "t", "Example", cfg, func(ctx context.Context, hc *http.Client, tok *oauth2.Token) (*provider.Credential, error) {
		return nil, refused
	})
	if _, err := m.Finish(context.Background(), nil, flow, callback("c")); !errors.Is(err, refused) {
		t.Errorf("verify error not passed on: %v", err)
	}
	m = NewMethod("oauth", "t", "Example", cfg, func(ctx context.Context, hc *http.Client, tok *oauth2.Token) (*provider.Credential, error) {
		return nil, nil
	})
	if _, err := m.Finish(context.Background(), nil, flow, callback("c")); err == nil {
		t.Error("a nil credential was accepted")
	}
}

func TestFinishRefusesNonBearerTokens(t *testing.T) {
	srv := newAS(t)
	srv.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"at-1234","token_type":"mac","expires_in":60}`))
	})
	m, v := newMethod(t, srv, nil)
	if _, err := m.Finish(context.Background(), nil, flow, callback("c")); err == nil || !strings.Contains(err.Error(), `type "MAC"`) {
		t.Errorf("mac token: %v", err)
	}
	if len(v.tokens) != 0 {
		t.Error("a MAC token reached the vendor check")
	}
}
