package auth

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/session"
)

func TestNewRejectsBadOptions(t *testing.T) {
	e := newEnv(t)
	good := e.s.o
	cases := map[string]func(*Options){
		"short key":        func(o *Options) { o.SigningKey = []byte("short") },
		"no store":         func(o *Options) { o.Store = nil },
		"trailing slash":   func(o *Options) { o.ExternalURL = "http://x.example/" },
		"relative url":     func(o *Options) { o.ExternalURL = "x.example" },
		"no admins":        func(o *Options) { o.Admins = nil },
		"plain password":   func(o *Options) { o.Admins = map[string]string{"a": "secret"} },
		"duplicate vendor": func(o *Options) { o.Providers = append(o.Providers, keyProvider{}) },
	}
	for name, mod := range cases {
		o := good
		mod(&o)
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	c := e.client()

	r := e.do(c, "GET", "/connect/keyco?method=api_key", nil)
	wantStatus(t, r, http.StatusSeeOther)
	if got := r.location(); got != "/login?next="+url.QueryEscape("/connect/keyco?method=api_key") {
		t.Fatalf("redirect to %q", got)
	}

	r = e.do(c, "GET", "/login?next=/connect/keyco", nil)
	wantStatus(t, r, 200)
	wantBody(t, r, `name="password"`, `type="password"`, `name="viewport"`)
	csrf := csrfOf(t, r.body)

	r = e.do(c, "POST", "/login", url.Values{"csrf": {csrf}, "user": {adminUser}, "password": {"wrong"}, "next": {"/connect/keyco"}})
	wantStatus(t, r, http.StatusUnauthorized)
	wantBody(t, r, "Wrong user name or password.", `name="user" value="`+adminUser+`"`)
	if strings.Contains(r.body, "wrong\"") {
		t.Error("password echoed back")
	}
	// Not signed in: no user name in the header, no Sign out button.
	for _, signedIn := range []string{"Sign out", `action="/logout"`, `<span class="muted">` + adminUser} {
		if strings.Contains(r.body, signedIn) {
			t.Errorf("the failed sign-in page looks signed in (%q):\n%s", signedIn, r.body)
		}
	}

	r = e.do(c, "POST", "/login", url.Values{"csrf": {csrf}, "user": {adminUser}, "password": {adminPass}, "next": {"/connect/keyco"}})
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/connect/keyco" {
		t.Errorf("after login: redirect to %q", r.location())
	}
	var sc *http.Cookie
	for _, ck := range r.Cookies() {
		if ck.Name == sessionCookie {
			sc = ck
		}
	}
	if sc == nil || !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || sc.Secure {
		t.Fatalf("session cookie %+v", sc)
	}
	if sc.MaxAge != int(session.TTL.Seconds()) {
		t.Errorf("session cookie MaxAge %d", sc.MaxAge)
	}
	r = e.do(c, "GET", "/", nil)
	wantStatus(t, r, 200)
	wantBody(t, r, "Connections", "Connect KeyCo", "Sign out")

	// Signing out ends the session in this browser.
	r = e.do(c, "POST", "/logout", url.Values{"csrf": {csrfOf(t, r.body)}})
	wantStatus(t, r, http.StatusSeeOther)
	r = e.do(c, "GET", "/", nil)
	wantStatus(t, r, http.StatusSeeOther)
}

func TestLoginOnlyRedirectsLocally(t *testing.T) {
	e := newEnv(t)
	for _, next := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "evil"} {
		c := e.client()
		r := e.do(c, "GET", "/login", nil)
		r = e.do(c, "POST", "/login", url.Values{"csrf": {csrfOf(t, r.body)}, "user": {adminUser}, "password": {adminPass}, "next": {next}})
		wantStatus(t, r, http.StatusSeeOther)
		if r.location() != "/" {
			t.Errorf("next=%q: redirected to %q", next, r.location())
		}
	}
}

func TestSecureCookiesOnHTTPS(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ExternalURL = "https://exporter.example.com" })
	c := e.client()
	r := e.do(c, "GET", "/login", nil)
	r = e.do(c, "POST", "/login", url.Values{"csrf": {csrfOf(t, r.body)}, "user": {adminUser}, "password": {adminPass}})
	wantStatus(t, r, http.StatusSeeOther)
	found := false
	for _, ck := range r.Cookies() {
		if ck.Name == sessionCookie {
			found = true
			if !ck.Secure {
				t.Error("session cookie not Secure on an https external URL")
			}
		}
	}
	if !found {
		t.Fatal("no session cookie")
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	r := e.do(c, "GET", "/login", nil)
	csrf := csrfOf(t, r.body)
	for i := 0; i < 5; i++ {
		r = e.do(c, "POST", "/login", url.Values{"csrf": {csrf}, "user": {adminUser}, "password": {"nope"}})
		wantStatus(t, r, http.StatusUnauthorized)
	}
	// Limited now, even with the right password.
	r = e.do(c, "POST", "/login", url.Values{"csrf": {csrf}, "user": {adminUser}, "password": {adminPass}})
	wantStatus(t, r, http.StatusTooManyRequests)
	wantBody(t, r, "Too many failed sign-ins", "Try again in")
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	// The API shares the limit.
	wantStatus(t, e.api("GET", "/api/v1/connections", nil), http.StatusTooManyRequests)

	e.clk.Add(61 * time.Second)
	r = e.do(c, "POST", "/login", url.Values{"csrf": {csrf}, "user": {adminUser}, "password": {adminPass}})
	wantStatus(t, r, http.StatusSeeOther)
}

func TestSessionExpiry(t *testing.T) {
	e := newEnv(t)
	c, _ := e.admin()
	e.clk.Add(session.TTL - time.Minute)
	wantStatus(t, e.do(c, "GET", "/", nil), 200)
	e.clk.Add(2 * time.Minute)
	r := e.do(c, "GET", "/?msg=connected", nil)
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/login?next="+url.QueryEscape("/?msg=connected") {
		t.Errorf("expired session: redirect to %q", r.location())
	}
}

func TestForgedSessions(t *testing.T) {
	e := newEnv(t)
	other := newEnv(t, func(o *Options) { o.SigningKey = bytes.Repeat([]byte{9}, 32) })
	tok := other.s.sessions.NewSession(adminUser) // signed with another key
	unknown := e.s.sessions.NewSession("mallory")
	for name, v := range map[string]string{"other key": tok, "unknown user": unknown, "garbage": "abc.def", "empty": ""} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/", nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: v})
		r := e.send(e.client(), req)
		if r.StatusCode != http.StatusSeeOther {
			t.Errorf("%s: status %d", name, r.StatusCode)
		}
	}
	// A password change in the config ends existing sessions.
	tok = e.s.sessions.NewSession(adminUser)
	if _, ok := e.s.sessions.CheckSession(tok); !ok {
		t.Fatal("fresh session refused")
	}
	o := e.s.o
	o.Admins = map[string]string{adminUser: adminHash[:len(adminHash)-1] + "x"}
	changed, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := changed.sessions.CheckSession(tok); ok {
		t.Error("session survived a password change")
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	_, otherCSRF := e.admin() // another session's token
	form := func(tok string) url.Values {
		v := url.Values{"method": {"api_key"}, "name": {"prod"}, "api_key": {goodKey}}
		if tok != "" {
			v.Set("csrf", tok)
		}
		return v
	}
	for name, tok := range map[string]string{"missing": "", "bad": changeFirst(csrf), "other session": otherCSRF} {
		r := e.do(c, "POST", "/connect/keyco", form(tok))
		wantStatus(t, r, http.StatusForbidden)
		wantBody(t, r, "The form expired or was not sent from this site; reload the page and try again.")
		if len(e.conns()) != 0 {
			t.Fatalf("%s: connection stored despite a bad CSRF token", name)
		}
	}
	for _, path := range []string{"/logout", "/invites", "/connect/oauthco/start"} {
		r := e.do(c, "POST", path, url.Values{"csrf": {"nope"}, "vendor": {"keyco"}, "name": {"x"}, "method": {"oauth"}})
		wantStatus(t, r, http.StatusForbidden)
	}
	// The login form is bound to its cookie too.
	r := e.do(e.client(), "POST", "/login", url.Values{"csrf": {csrf}, "user": {adminUser}, "password": {adminPass}})
	wantStatus(t, r, http.StatusForbidden)
	// The right token works.
	wantStatus(t, e.do(c, "POST", "/connect/keyco", form(csrf)), http.StatusSeeOther)
}

func TestPOSTWithoutSessionRedirectsToLogin(t *testing.T) {
	e := newEnv(t)
	r := e.do(e.client(), "POST", "/connect/keyco", url.Values{"method": {"api_key"}})
	wantStatus(t, r, http.StatusSeeOther)
	if !strings.HasPrefix(r.location(), "/login?next=") {
		t.Errorf("redirect to %q", r.location())
	}
}

func TestLoginHint(t *testing.T) {
	hint := "The password of user admin was generated at the first start: see the exporter log."
	e := newEnv(t, func(o *Options) { o.LoginHint = hint })
	r := e.do(e.client(), "GET", "/login", nil)
	wantStatus(t, r, 200)
	wantBody(t, r, hint)
	if r := newEnv(t).do(e.client(), "GET", "/login", nil); strings.Contains(r.body, `class="help"`) {
		t.Errorf("a hint without LoginHint:\n%s", r.body)
	}
}
