package auth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/api"
	"github.com/saas-exporter/saas_exporter/store"
)

// invite creates an invite through the API and returns its path.
func (e *env) invite(body map[string]string) (string, api.Invite) {
	e.t.Helper()
	r := e.api("POST", "/api/v1/invites", body)
	wantStatus(e.t, r, http.StatusCreated)
	inv := decode[api.Invite](e.t, r)
	path := strings.TrimPrefix(inv.URL, e.srv.URL)
	e.forbidLog(strings.TrimPrefix(path, "/invite/"))
	return path, inv
}

func TestInviteFormFlow(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	wantStatus(t, e.connectKey(c, csrf, "secret-conn-name", goodKey2), http.StatusSeeOther)
	path, inv := e.invite(map[string]string{"vendor": "keyco", "name": "customer"})

	guest := e.client()
	r := e.do(guest, "GET", path, nil)
	wantStatus(t, r, 200)
	wantBody(t, r, "Connect KeyCo", "customer", `type="password" name="api_key"`, `action="`+path+`"`)
	// Only this vendor, nothing of the admin pages.
	for _, no := range []string{"secret-conn-name", "Sign out", "OAuthCo", "HookCo", `href="/"`, "/connections/"} {
		if strings.Contains(r.body, no) {
			t.Errorf("invite page shows %q", no)
		}
	}
	guestCSRF := csrfOf(t, r.body)

	// CSRF is checked.
	wantStatus(t, e.do(guest, "POST", path, url.Values{"method": {"api_key"}, "api_key": {goodKey}}), http.StatusForbidden)
	// A rejected key leaves the invite usable and the key field empty.
	r = e.do(guest, "POST", path, url.Values{"csrf": {guestCSRF}, "method": {"api_key"}, "api_key": {badKey}, "region": {"eu"}})
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "KeyCo rejected this API key", `<option value="eu" selected>`)
	if strings.Contains(r.body, "secret-conn-name") || strings.Contains(r.body, "Sign out") {
		t.Error("error page shows admin content")
	}

	r = e.do(guest, "POST", path, url.Values{"csrf": {guestCSRF}, "method": {"api_key"}, "api_key": {goodKey}})
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/invite/done" {
		t.Fatalf("redirect to %q", r.location())
	}
	r = e.do(guest, "GET", "/invite/done", nil)
	wantStatus(t, r, 200)
	wantBody(t, r, "Connected. You can close this page.")
	conn := e.connByName("customer")
	if conn.AccountID != "acct-1" {
		t.Errorf("stored %+v", conn)
	}
	got, err := e.st.GetInvite(t.Context(), inv.ID)
	if err != nil || got.Used.IsZero() || got.ConnectionID != conn.ID {
		t.Errorf("invite after use: %+v %v", got, err)
	}

	// Used: a clear 410 on both GET and POST.
	r = e.do(guest, "GET", path, nil)
	wantStatus(t, r, http.StatusGone)
	wantBody(t, r, "already used")
	r = e.do(guest, "POST", path, url.Values{"csrf": {guestCSRF}, "method": {"api_key"}, "api_key": {goodKey}})
	wantStatus(t, r, http.StatusGone)
	if len(e.conns()) != 2 {
		t.Fatal("reuse stored something")
	}
}

func TestInviteRefusals(t *testing.T) {
	e := newEnv(t)
	expired, _ := e.invite(map[string]string{"vendor": "keyco", "name": "a", "expires_in": "1h"})
	revoked, rinv := e.invite(map[string]string{"vendor": "keyco", "name": "b"})
	wantStatus(t, e.api("DELETE", "/api/v1/invites/"+rinv.ID, nil), http.StatusNoContent)
	valid, vinv := e.invite(map[string]string{"vendor": "keyco", "name": "c"})
	e.clk.Add(time.Hour + time.Second)

	tok := strings.TrimPrefix(valid, "/invite/")
	// Change the id's first digit to a different one (ids are random hex).
	tamperedID := "1" + tok[1:]
	if tok[0] == '1' {
		tamperedID = "2" + tok[1:]
	}
	unknownTok := e.s.sessions.InviteToken("00000000000000ff") // well signed, never stored
	e.forbidLog(strings.SplitN(unknownTok, ".", 2)[1])
	for _, tc := range []struct {
		name, path string
		status     int
		want       string
	}{
		{"expired", expired, 410, "This invite expired on"},
		{"revoked", revoked, 410, "This invite was revoked"},
		{"tampered signature", "/invite/" + vinv.ID + ".AAAA" + tok[len(vinv.ID)+5:], 403, "This invite link is not valid"},
		{"tampered id", "/invite/" + tamperedID, 403, "This invite link is not valid"},
		{"cut off", valid[:len(valid)-3], 403, "This invite link is not valid"},
		{"garbage", "/invite/hello", 403, "This invite link is not valid"},
		{"unknown", "/invite/" + unknownTok, 404, "This invite does not exist"},
	} {
		r := e.do(e.client(), "GET", tc.path, nil)
		if r.StatusCode != tc.status || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s: %d %s", tc.name, r.StatusCode, r.body)
		}
		r = e.do(e.client(), "POST", tc.path, url.Values{"csrf": {e.s.sessions.CSRFToken("invite", strings.TrimPrefix(tc.path, "/invite/"))}, "method": {"api_key"}, "api_key": {goodKey}})
		if r.StatusCode != tc.status {
			t.Errorf("%s: POST %d %s", tc.name, r.StatusCode, r.body)
		}
	}
	if len(e.conns()) != 0 {
		t.Fatal("a refused invite stored something")
	}
	wantStatus(t, e.do(e.client(), "GET", valid, nil), 200)
}

func TestInviteRevokedWhileOpen(t *testing.T) {
	e := newEnv(t)
	path, inv := e.invite(map[string]string{"vendor": "keyco", "name": "a"})
	guest := e.client()
	csrf := csrfOf(t, e.do(guest, "GET", path, nil).body)
	wantStatus(t, e.api("DELETE", "/api/v1/invites/"+inv.ID, nil), http.StatusNoContent)
	r := e.do(guest, "POST", path, url.Values{"csrf": {csrf}, "method": {"api_key"}, "api_key": {goodKey}})
	wantStatus(t, r, http.StatusGone)
	wantBody(t, r, "revoked")
	if len(e.conns()) != 0 {
		t.Fatal("stored")
	}
}

func TestInviteRedirectFlow(t *testing.T) {
	e := newEnv(t)
	path, inv := e.invite(map[string]string{"vendor": "oauthco", "name": "guest"})
	guest := e.client()
	r := e.do(guest, "GET", path, nil)
	wantStatus(t, r, 200)
	wantBody(t, r, `action="`+path+`/start"`, `name="method" value="oauth"`)
	if strings.Contains(r.body, `value="legacy"`) {
		t.Error("disabled method offered")
	}
	r = e.do(guest, "POST", path+"/start", url.Values{"csrf": {csrfOf(t, r.body)}, "method": {"oauth"}})
	wantStatus(t, r, http.StatusFound)
	au, _ := url.Parse(r.location())
	e.forbidLog(au.Query().Get("state"))
	r = e.do(guest, "GET", e.consentTo(r.location()), nil)
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/invite/done" {
		t.Fatalf("redirect to %q", r.location())
	}
	if c := e.connByName("guest"); c.AccountID != "acme" {
		t.Errorf("stored %+v", c)
	}
	if got, _ := e.st.GetInvite(t.Context(), inv.ID); got.Used.IsZero() {
		t.Error("invite not marked used")
	}
	wantStatus(t, e.do(guest, "GET", path, nil), http.StatusGone)
}

func TestInviteRedirectFlowRevokedBeforeCallback(t *testing.T) {
	e := newEnv(t)
	path, inv := e.invite(map[string]string{"vendor": "oauthco", "name": "guest"})
	guest := e.client()
	r := e.do(guest, "POST", path+"/start", url.Values{"csrf": {csrfOf(t, e.do(guest, "GET", path, nil).body)}, "method": {"oauth"}})
	wantStatus(t, r, http.StatusFound)
	au, _ := url.Parse(r.location())
	e.forbidLog(au.Query().Get("state"))
	cb := e.consentTo(r.location())
	wantStatus(t, e.api("DELETE", "/api/v1/invites/"+inv.ID, nil), http.StatusNoContent)
	r = e.do(guest, "GET", cb, nil)
	wantStatus(t, r, http.StatusGone)
	wantBody(t, r, "revoked")
	if len(e.conns()) != 0 {
		t.Fatal("stored")
	}
}

func TestInviteReconnect(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	wantStatus(t, e.connectKey(c, csrf, "prod", goodKey), http.StatusSeeOther)
	orig := e.connByName("prod")
	if err := e.st.SetStatus(t.Context(), orig.ID, store.Status{State: store.StateRevoked}); err != nil {
		t.Fatal(err)
	}
	// The connections page's Invite button for this connection.
	r := e.do(c, "POST", "/invites", url.Values{"csrf": {csrf}, "connection_id": {orig.ID}})
	wantStatus(t, r, http.StatusSeeOther)
	r = e.do(c, "GET", r.location(), nil)
	wantBody(t, r, "Invite for “prod” created")
	invs, _ := e.st.ListInvites(t.Context())
	if len(invs) != 1 || invs[0].ConnectionID != orig.ID || invs[0].Name != "prod" {
		t.Fatalf("invites %+v", invs)
	}
	path := "/invite/" + e.s.sessions.InviteToken(invs[0].ID)
	e.forbidLog(e.s.sessions.InviteToken(invs[0].ID))
	wantBody(t, r, e.srv.URL+path, `action="/invites/`+invs[0].ID+`/revoke"`)

	guest := e.client()
	r = e.do(guest, "GET", path, nil)
	wantBody(t, r, "reconnect")
	e.clk.Add(time.Hour)
	r = e.do(guest, "POST", path, url.Values{"csrf": {csrfOf(t, r.body)}, "method": {"api_key"}, "api_key": {goodKey}})
	wantStatus(t, r, http.StatusSeeOther)
	got := e.connByName("prod")
	if got.ID != orig.ID || got.State != store.StateActive || !got.Created.Equal(orig.Created) || len(e.conns()) != 1 {
		t.Errorf("after reconnect invite: %+v", got)
	}
}

func TestInviteUI(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	r := e.do(c, "POST", "/invites", url.Values{"csrf": {csrf}, "vendor": {"hookco"}, "name": {"partner"}, "expires_in": {"24h"}})
	wantStatus(t, r, http.StatusSeeOther)
	invs, _ := e.st.ListInvites(t.Context())
	if len(invs) != 1 || invs[0].Vendor != "hookco" || !invs[0].Expires.Equal(e.clk.Now().Add(24*time.Hour)) {
		t.Fatalf("invites %+v", invs)
	}
	e.forbidLog(e.s.sessions.InviteToken(invs[0].ID))
	r = e.do(c, "POST", "/invites/"+invs[0].ID+"/revoke", url.Values{"csrf": {csrf}})
	wantStatus(t, r, http.StatusSeeOther)
	r = e.do(c, "GET", r.location(), nil)
	wantBody(t, r, "Invite revoked", "status-revoked")
	if strings.Contains(r.body, e.s.sessions.InviteToken(invs[0].ID)) {
		t.Error("revoked invite's link still shown")
	}
	r = e.do(c, "POST", "/invites", url.Values{"csrf": {csrf}, "vendor": {"hookco"}, "name": {"bad name"}})
	wantStatus(t, r, http.StatusBadRequest)
	wantStatus(t, e.do(c, "POST", "/invites/0000000000000000/revoke", url.Values{"csrf": {csrf}}), http.StatusNotFound)
}

func TestInviteNotBurnedByNameClash(t *testing.T) {
	e := newEnv(t)
	path, inv := e.invite(map[string]string{"vendor": "keyco", "name": "prod"})
	// Meanwhile an admin connects another account of the vendor as "prod".
	r := e.api("POST", "/api/v1/connections", map[string]string{"vendor": "keyco", "name": "prod", "api_key": goodKey2})
	wantStatus(t, r, http.StatusCreated)
	id := decode[api.Connection](t, r).ID

	guest := e.client()
	csrf := csrfOf(t, e.do(guest, "GET", path, nil).body)
	r = e.do(guest, "POST", path, url.Values{"csrf": {csrf}, "method": {"api_key"}, "api_key": {goodKey}})
	wantStatus(t, r, http.StatusConflict)
	wantBody(t, r, "already used by another connection")
	if got, _ := e.st.GetInvite(t.Context(), inv.ID); !got.Used.IsZero() {
		t.Fatal("invite marked used")
	}
	// Once the clash is gone, the same link works.
	wantStatus(t, e.api("DELETE", "/api/v1/connections/"+id, nil), http.StatusNoContent)
	r = e.do(guest, "POST", path, url.Values{"csrf": {csrf}, "method": {"api_key"}, "api_key": {goodKey}})
	wantStatus(t, r, http.StatusSeeOther)
	if e.connByName("prod").AccountID != "acct-1" {
		t.Error("wrong account stored")
	}
}
