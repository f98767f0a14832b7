package auth

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/session"
	"github.com/saas-exporter/saas_exporter/store"
)

// start posts the admin's "Connect with OAuthCo" button and returns the
// authorize URL it redirects to.
func (e *env) start(c *http.Client, csrf string, form url.Values) string {
	e.t.Helper()
	form.Set("csrf", csrf)
	if form.Get("method") == "" {
		form.Set("method", "oauth")
	}
	r := e.do(c, "POST", "/connect/oauthco/start", form)
	wantStatus(e.t, r, http.StatusFound)
	u, err := url.Parse(r.location())
	if err != nil {
		e.t.Fatal(err)
	}
	e.forbidLog(u.Query().Get("state"))
	return r.location()
}

// consentTo plays the vendor's consent page and returns the callback URL
// it sends the browser to.
func (e *env) consentTo(authorizeURL string) string {
	e.t.Helper()
	r := e.do(e.client(), "GET", authorizeURL, nil)
	wantStatus(e.t, r, http.StatusFound)
	return r.location()
}

func (e *env) flowCookie(c *http.Client) *http.Cookie {
	u, _ := url.Parse(e.srv.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == flowCookie {
			return ck
		}
	}
	return nil
}

func TestRedirectFlowEndToEnd(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()

	// The start sets a flow cookie bound to this browser.
	r := e.do(c, "POST", "/connect/oauthco/start", url.Values{"csrf": {csrf}, "method": {"oauth"}, "name": {"prod"}})
	wantStatus(t, r, http.StatusFound)
	var fc *http.Cookie
	for _, ck := range r.Cookies() {
		if ck.Name == flowCookie {
			fc = ck
		}
	}
	if fc == nil || !fc.HttpOnly || fc.SameSite != http.SameSiteLaxMode || fc.Path != "/" || fc.MaxAge != int(flowTTL.Seconds()) {
		t.Fatalf("flow cookie %+v", fc)
	}
	au, _ := url.Parse(r.location())
	state := au.Query().Get("state")
	e.forbidLog(state)
	if len(state) != 43 {
		t.Errorf("state %q: want 32 random bytes base64url", state)
	}

	// The whole flow, as a browser follows it.
	f := &http.Client{Jar: c.Jar}
	r = e.do(f, "POST", "/connect/oauthco/start", url.Values{"csrf": {csrf}, "method": {"oauth"}, "name": {"prod"}})
	wantStatus(t, r, 200)
	if r.Request.URL.Path != "/" || r.Request.URL.RawQuery != "msg=connected&name=prod" {
		t.Errorf("ended at %s", r.Request.URL)
	}
	wantBody(t, r, "Connected “prod”.", "OAuthCo acme")
	conn := e.connByName("prod")
	if conn.Vendor != "oauthco" || conn.AccountID != "acme" || conn.AuthMethod != "oauth" || conn.Secret["access_token"] != tokenPref+"acme" || conn.Expiry.IsZero() || conn.State != store.StateActive {
		t.Errorf("stored %+v", conn)
	}
	if e.flowCookie(c) != nil {
		t.Error("flow cookie not cleared after the callback")
	}
	fl := e.consent.flows[len(e.consent.flows)-1]
	if len(fl.Verifier) < 43 || fl.RedirectURL != e.srv.URL+"/connect/oauthco/callback" || fl.State == state {
		t.Errorf("Finish got %+v", fl)
	}
	e.forbidLog(fl.State)
	e.forbidLog(fl.Verifier)
	if !strings.Contains(e.logs.String(), `"msg":"connection connected"`) {
		t.Error("connect not logged")
	}
}

// Issue #12 item 3: a callback without state, or with a wrong one, is
// refused before the flow is consumed; the real callback still works. A
// cross-site page can navigate the admin's browser (which holds the flow
// cookie) to the callback with an account of its choosing.
func TestCallbackForgedInputsDoNotBurnFlow(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	real := e.consentTo(e.start(c, csrf, url.Values{"name": {"prod"}}))
	cb, _ := url.Parse(real)
	forged := func(q url.Values) string {
		u := *cb
		u.RawQuery = q.Encode()
		return u.String()
	}
	for name, q := range map[string]url.Values{
		"no state":         {"code": {authCode}, "account": {"mallory"}},
		"empty state":      {"state": {""}, "code": {authCode}, "account": {"mallory"}},
		"wrong state":      {"state": {"AAAA" + cb.Query().Get("state")[4:]}, "code": {authCode}, "account": {"mallory"}},
		"no state, denial": {"error": {"access_denied"}},
	} {
		r := e.do(c, "GET", forged(q), nil)
		wantStatus(t, r, http.StatusBadRequest)
		if len(e.conns()) != 0 {
			t.Fatalf("%s: a forged callback stored %+v", name, e.conns())
		}
		if e.flowCookie(c) == nil {
			t.Fatalf("%s: a forged callback dropped the flow cookie", name)
		}
	}
	r := e.do(c, "GET", real, nil)
	wantStatus(t, r, http.StatusSeeOther)
	if got := e.connByName("prod"); got.AccountID != "acme" {
		t.Errorf("stored account %q, want the one the vendor sent (acme)", got.AccountID)
	}
}

func TestCallbackRefusals(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	refused := func(r resp, want string) {
		t.Helper()
		wantStatus(t, r, http.StatusBadRequest)
		wantBody(t, r, want, "Start again")
		if len(e.conns()) != 0 {
			t.Fatal("stored despite a refused callback")
		}
	}

	t.Run("forged state", func(t *testing.T) {
		cb, _ := url.Parse(e.consentTo(e.start(c, csrf, url.Values{"name": {"prod"}})))
		q := cb.Query()
		q.Set("state", "AAAA"+q.Get("state")[4:])
		cb.RawQuery = q.Encode()
		refused(e.do(c, "GET", cb.String(), nil), "Forged or mixed-up callback")
	})
	t.Run("no cookie", func(t *testing.T) {
		cb := e.consentTo(e.start(c, csrf, url.Values{"name": {"prod"}}))
		refused(e.do(e.client(), "GET", cb, nil), "No connection in progress")
	})
	t.Run("forged cookie", func(t *testing.T) {
		cb := e.consentTo(e.start(c, csrf, url.Values{"name": {"prod"}}))
		req, _ := http.NewRequest("GET", cb, nil)
		req.AddCookie(&http.Cookie{Name: flowCookie, Value: session.RandomToken(80)})
		refused(e.send(e.client(), req), "Invalid sign-in cookie")
	})
	t.Run("other vendor", func(t *testing.T) {
		cb, _ := url.Parse(e.consentTo(e.start(c, csrf, url.Values{"name": {"prod"}})))
		cb.Path = "/connect/keyco/callback"
		refused(e.do(c, "GET", cb.String(), nil), "This browser started connecting OAuthCo, but came back to the KeyCo callback")
	})
	t.Run("expired", func(t *testing.T) {
		cb := e.consentTo(e.start(c, csrf, url.Values{"name": {"prod"}}))
		e.clk.Add(flowTTL + time.Second)
		refused(e.do(c, "GET", cb, nil), "More than 10 minutes passed")
	})
	t.Run("denied", func(t *testing.T) {
		e.consent.mu.Lock()
		e.consent.deny = true
		e.consent.mu.Unlock()
		defer func() { e.consent.mu.Lock(); e.consent.deny = false; e.consent.mu.Unlock() }()
		r := e.do(c, "GET", e.consentTo(e.start(c, csrf, url.Values{"name": {"prod"}})), nil)
		refused(r, "OAuthCo did not grant access")
		wantBody(t, r, "error: access_denied — &lt;b&gt;The user said no&lt;/b&gt;")
		if strings.Contains(r.body, "<b>The user") {
			t.Error("error_description rendered as HTML")
		}
	})
	t.Run("vendor error", func(t *testing.T) {
		cb, _ := url.Parse(e.consentTo(e.start(c, csrf, url.Values{"name": {"prod"}})))
		q := cb.Query()
		q.Set("code", "not-the-code")
		cb.RawQuery = q.Encode()
		refused(e.do(c, "GET", cb.String(), nil), "OAuthCo did not send a valid authorization code.")
	})
	t.Run("unknown vendor", func(t *testing.T) {
		r := e.do(c, "GET", "/connect/nosuch/callback?code=x", nil)
		wantStatus(t, r, http.StatusBadRequest)
	})
}

func TestCallbackReplay(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	cb := e.consentTo(e.start(c, csrf, url.Values{"name": {"prod"}}))
	cookie := e.flowCookie(c)
	wantStatus(t, e.do(c, "GET", cb, nil), http.StatusSeeOther)
	if len(e.conns()) != 1 {
		t.Fatal("not stored")
	}
	// The same URL again: the cookie is gone.
	r := e.do(c, "GET", cb, nil)
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "No connection in progress")
	// With the old cookie replayed: the state was used.
	req, _ := http.NewRequest("GET", cb, nil)
	req.AddCookie(cookie)
	r = e.send(e.client(), req)
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "Callback already used")
	if len(e.conns()) != 1 || e.changeCount() != 1 {
		t.Fatal("the replay changed something")
	}
}

func TestStartRefusals(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	wantStatus(t, e.connectKey(c, csrf, "taken", goodKey), http.StatusSeeOther)
	for _, tc := range []struct {
		form   url.Values
		status int
		want   string
	}{
		{url.Values{"method": {"oauth"}, "name": {""}}, 400, "A connection name is required"},
		{url.Values{"method": {"oauth"}, "name": {"bad name"}}, 400, "The connection name must be"},
		{url.Values{"method": {"oauth"}, "name": {"taken"}}, 409, "already used"},
		{url.Values{"method": {"legacy"}, "name": {"x"}}, 400, "no enabled sign-in method called “legacy”"},
		{url.Values{"method": {"oauth"}, "reconnect": {"0123456789abcdef"}}, 404, "There is no connection with id"},
	} {
		tc.form.Set("csrf", csrf)
		r := e.do(c, "POST", "/connect/oauthco/start", tc.form)
		wantStatus(t, r, tc.status)
		wantBody(t, r, tc.want)
		if r.Header.Get("Set-Cookie") != "" && strings.Contains(r.Header.Get("Set-Cookie"), flowCookie) {
			t.Error("flow cookie set on a refused start")
		}
	}
	// Reconnecting a connection of another vendor.
	id := e.connByName("taken").ID
	r := e.do(c, "POST", "/connect/oauthco/start", url.Values{"csrf": {csrf}, "method": {"oauth"}, "reconnect": {id}})
	wantStatus(t, r, http.StatusBadRequest)
}

func TestReconnectRedirect(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	wantStatus(t, e.do(c, "GET", e.consentTo(e.start(c, csrf, url.Values{"name": {"prod"}})), nil), http.StatusSeeOther)
	orig := e.connByName("prod")
	if err := e.st.SetStatus(context.Background(), orig.ID, store.Status{State: store.StateExpired, LastError: "refresh failed"}); err != nil {
		t.Fatal(err)
	}
	r := e.do(c, "GET", "/", nil)
	wantBody(t, r, `name="reconnect" value="`+orig.ID+`"`, "state-expired")

	e.clk.Add(time.Hour)
	e.consent.mu.Lock()
	e.consent.account = "acme" // same account
	e.consent.mu.Unlock()
	cb := e.consentTo(e.start(c, csrf, url.Values{"reconnect": {orig.ID}}))
	r = e.do(c, "GET", cb, nil)
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/?msg=reconnected&name=prod" {
		t.Errorf("redirect to %q", r.location())
	}
	got := e.connByName("prod")
	if got.ID != orig.ID || !got.Created.Equal(orig.Created) || got.State != store.StateActive || got.LastError != "" || len(e.conns()) != 1 {
		t.Errorf("after reconnect: %+v", got)
	}
}

func TestRedirectDedupe(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	wantStatus(t, e.do(c, "GET", e.consentTo(e.start(c, csrf, url.Values{"name": {"prod"}})), nil), http.StatusSeeOther)
	r := e.do(c, "GET", e.consentTo(e.start(c, csrf, url.Values{"name": {"prod2"}})), nil)
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/?msg=updated&name=prod" || len(e.conns()) != 1 {
		t.Errorf("redirect to %q, %d connections", r.location(), len(e.conns()))
	}
}
