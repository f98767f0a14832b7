package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// Issue #12 item 2: what a page on another origin makes a browser send with
// fetch(…, {method:'POST', mode:'no-cors', credentials:'include', body}):
// the cached basic-auth credentials and a body without a JSON type. Every
// state-changing API request answers 415 and changes nothing.
func TestAPICrossSitePostRefused(t *testing.T) {
	e := newEnv(t)
	wantStatus(t, e.api("POST", "/api/v1/connections", map[string]string{"vendor": "keyco", "name": "prod", "api_key": goodKey}), http.StatusCreated)
	id := e.connByName("prod").ID
	before := e.changeCount()
	bodies := map[string]string{
		"/api/v1/invites":                          `{"vendor":"keyco","name":"evil"}`,
		"/api/v1/connections":                      `{"vendor":"oauthco","name":"evil"}`,
		"/api/v1/connections/" + id + "/reconnect": `{"api_key":"` + goodKey2 + `"}`,
		"/api/v1/connections/" + id + "/collect":   `{}`,
	}
	// A Blob without a type sends no Content-Type; no-cors allows only
	// the "simple" types besides.
	for _, ct := range []string{"", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		for path, body := range bodies {
			req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(body))
			if ct != "" {
				req.Header.Set("Content-Type", ct)
			}
			req.Header.Set("Origin", "https://evil.example")
			req.SetBasicAuth(adminUser, adminPass)
			r := e.send(e.client(), req)
			if r.StatusCode != http.StatusUnsupportedMediaType {
				t.Fatalf("Content-Type %q, POST %s: status %d, want 415; body %s", ct, path, r.StatusCode, r.body)
			}
			wantBody(t, r, "Content-Type: application/json")
			if len(r.Cookies()) != 0 {
				t.Errorf("Content-Type %q, POST %s: set cookies %v", ct, path, r.Cookies())
			}
		}
	}
	invs, _ := e.st.ListInvites(context.Background())
	if len(invs) != 0 || len(e.conns()) != 1 || e.connByName("prod").AccountID != "acct-1" || e.changeCount() != before {
		t.Errorf("a refused request changed something: invites %v, connections %+v", invs, e.conns())
	}
	// Scripts that send the JSON type keep working.
	wantStatus(t, e.api("POST", "/api/v1/invites", map[string]string{"vendor": "keyco", "name": "later"}), http.StatusCreated)
}

// Issue #12 item 5: behind a load balancer every client has the LB's
// address. Wrong passwords from one client (named by X-Forwarded-For from
// a trusted proxy) never lock out a correct password from another client;
// from an untrusted peer the header changes nothing.
func TestThrottlePerUserAndClient(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	login := func(xff, user, pass string) resp {
		t.Helper()
		c := e.client()
		r := e.do(c, "GET", "/login", nil)
		form := url.Values{"csrf": {csrfOf(t, r.body)}, "user": {user}, "password": {pass}}
		req, _ := http.NewRequest("POST", e.srv.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", xff)
		return e.send(c, req)
	}
	apiFrom := func(xff, pass string) resp {
		t.Helper()
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/connections", nil)
		req.SetBasicAuth(adminUser, pass)
		req.Header.Set("X-Forwarded-For", xff)
		return e.send(e.client(), req)
	}
	// The attacker: 5 wrong passwords a minute, through the proxy.
	for i := 0; i < 5; i++ {
		wantStatus(t, login("198.51.100.66", adminUser, "guess"), http.StatusUnauthorized)
	}
	wantStatus(t, login("198.51.100.66", adminUser, adminPass), http.StatusTooManyRequests)
	wantStatus(t, apiFrom("198.51.100.66", adminPass), http.StatusTooManyRequests)
	// The admins and scripts behind the same proxy are not locked out. The
	// client may prepend its own X-Forwarded-For: the proxy's entry counts.
	wantStatus(t, login("203.0.113.7", adminUser, adminPass), http.StatusSeeOther)
	wantStatus(t, login("198.51.100.66, 203.0.113.8", adminUser, adminPass), http.StatusSeeOther)
	wantStatus(t, apiFrom("203.0.113.9", adminPass), http.StatusOK)
	// Faking the proxy's header from the attacker's side changes nothing.
	wantStatus(t, login("203.0.113.7, 198.51.100.66", adminUser, adminPass), http.StatusTooManyRequests)

	// Without trusted proxies the header is ignored: the peer is the client.
	e2 := newEnv(t)
	for i := 0; i < 5; i++ {
		req, _ := http.NewRequest("GET", e2.srv.URL+"/api/v1/connections", nil)
		req.SetBasicAuth(adminUser, "guess")
		req.Header.Set("X-Forwarded-For", fmt.Sprint("192.0.2.", i))
		wantStatus(t, e2.send(e2.client(), req), http.StatusUnauthorized)
	}
	req, _ := http.NewRequest("GET", e2.srv.URL+"/api/v1/connections", nil)
	req.SetBasicAuth(adminUser, adminPass)
	req.Header.Set("X-Forwarded-For", "192.0.2.200")
	wantStatus(t, e2.send(e2.client(), req), http.StatusTooManyRequests)
}

// Issue #12 item 6: a session cookie saved before POST /logout opens
// nothing afterwards, on this replica or another one sharing the store;
// nor after the admin's password changes in the config.
func TestLogoutEndsSessionOnEveryReplica(t *testing.T) {
	e := newEnv(t)
	replica := newEnv(t, func(o *Options) { o.Store = e.st })
	c, csrf := e.admin()
	u, _ := url.Parse(e.srv.URL)
	var saved *http.Cookie
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			saved = ck
		}
	}
	if saved == nil {
		t.Fatal("no session cookie")
	}
	with := func(env *env, method, path string, form url.Values) resp {
		t.Helper()
		var body *strings.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		} else {
			body = strings.NewReader("")
		}
		req, _ := http.NewRequest(method, env.srv.URL+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: saved.Value})
		return env.send(env.client(), req)
	}
	wantStatus(t, with(replica, "GET", "/", nil), http.StatusOK)

	wantStatus(t, e.do(c, "POST", "/logout", url.Values{"csrf": {csrf}}), http.StatusSeeOther)
	for _, env := range []*env{e, replica} {
		r := with(env, "GET", "/", nil)
		if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/login") {
			t.Errorf("the saved cookie after logout: %d %s", r.StatusCode, r.location())
		}
		r = with(env, "POST", "/invites", url.Values{"csrf": {csrf}, "vendor": {"keyco"}, "name": {"evil"}})
		if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/login") {
			t.Errorf("an invite with the saved cookie after logout: %d %s", r.StatusCode, r.location())
		}
	}
	if invs, _ := e.st.ListInvites(context.Background()); len(invs) != 0 {
		t.Errorf("invites created after logout: %+v", invs)
	}
	if !strings.Contains(e.logs.String(), `"msg":"admin signed out"`) {
		t.Error("logout not logged")
	}
	// Signing in again works.
	e.login(c)

	// A password change in the config (a replica restarted with the new
	// hash) ends the sessions made with the old one.
	c2, _ := e.admin()
	newHash, _ := bcrypt.GenerateFromPassword([]byte("new-password-43"), bcrypt.MinCost)
	changed := newEnv(t, func(o *Options) { o.Store = e.st; o.Admins = map[string]string{adminUser: string(newHash)} })
	for _, ck := range c2.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			saved = ck
		}
	}
	if r := with(changed, "GET", "/", nil); r.StatusCode != http.StatusSeeOther {
		t.Errorf("a session made before a password change: %d", r.StatusCode)
	}
}

// checkedHook is hookco whose vendor can say whether a credential still
// works (provider.RevocationChecker).
type checkedHook struct {
	hookProvider
	mu    *sync.Mutex
	still *bool
	err   *error
}

func (h checkedHook) StillAuthorized(ctx context.Context, hc *http.Client, c provider.Connection) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return *h.still, *h.err
}

// Issue #12 item 7, generic side: a signed revocation callback revokes
// only what the vendor confirms; a stale one is ignored and logged; when
// the vendor cannot tell, nothing changes and the vendor is asked to retry.
func TestWebhookRevocationConfirmed(t *testing.T) {
	var mu sync.Mutex
	still, verr := true, error(nil)
	hook := checkedHook{mu: &mu, still: &still, err: &verr}
	e := newEnv(t, func(o *Options) { o.Providers = []provider.Provider{keyProvider{}, hook} })
	c, csrf := e.admin()
	wantStatus(t, e.do(c, "POST", "/connect/hookco", url.Values{"csrf": {csrf}, "method": {"token"}, "name": {"h1"}, "token": {hookToken}, "account": {"AC1"}}), http.StatusSeeOther)
	set := func(s bool, err error) { mu.Lock(); still, verr = s, err; mu.Unlock() }

	wantStatus(t, e.hook("/connect/hookco/deauthorize", "valid", url.Values{"AccountSid": {"AC1"}}), http.StatusOK)
	if st := e.connByName("h1").State; st != store.StateActive {
		t.Fatalf("a stale callback revoked: %s", st)
	}
	if !strings.Contains(e.logs.String(), "deauthorize callback ignored") {
		t.Error("the stale callback was not logged")
	}
	set(false, errors.New("hookco: connection refused"))
	wantStatus(t, e.hook("/connect/hookco/deauthorize", "valid", url.Values{"AccountSid": {"AC1"}}), http.StatusServiceUnavailable)
	if st := e.connByName("h1").State; st != store.StateActive {
		t.Fatalf("an unconfirmed callback revoked: %s", st)
	}
	set(false, nil)
	wantStatus(t, e.hook("/connect/hookco/deauthorize", "valid", url.Values{"AccountSid": {"AC1"}}), http.StatusOK)
	if st := e.connByName("h1").State; st != store.StateRevoked {
		t.Fatalf("a confirmed callback did not revoke: %s", st)
	}
	// By GET too (Twilio's DeauthorizeCallbackMethod may be GET).
	wantStatus(t, e.do(e.client(), "GET", "/connect/keyco/deauthorize", nil), http.StatusNotFound)
}
