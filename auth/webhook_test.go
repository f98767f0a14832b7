package auth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/store"
)

func (e *env) hook(path, sig string, form url.Values) resp {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		req.Header.Set("X-Signature", sig)
	}
	return e.send(e.client(), req)
}

func TestWebhookRevokes(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	for name, acct := range map[string]string{"h1": "AC1", "h2": "AC2"} {
		r := e.do(c, "POST", "/connect/hookco", url.Values{"csrf": {csrf}, "method": {"token"}, "name": {name}, "token": {hookToken}, "account": {acct}})
		wantStatus(t, r, http.StatusSeeOther)
	}
	// A keyco connection with the same account id is another vendor's.
	wantStatus(t, e.connectKey(c, csrf, "k1", goodKey), http.StatusSeeOther)
	before := e.connByName("h1")
	changes := e.changeCount()

	// Unauthenticated: 403, nothing changes.
	r := e.hook("/connect/hookco/deauthorize", "forged", url.Values{"AccountSid": {"AC1"}})
	wantStatus(t, r, http.StatusForbidden)
	if e.connByName("h1").State != store.StateActive || e.changeCount() != changes {
		t.Fatal("forged callback changed a connection")
	}
	// Malformed: 400.
	wantStatus(t, e.hook("/connect/hookco/deauthorize", "valid", url.Values{}), http.StatusBadRequest)
	wantStatus(t, e.hook("/connect/hookco/other", "valid", url.Values{"AccountSid": {"AC1"}}), http.StatusBadRequest)
	// Vendors without webhooks, unknown vendors, reserved names: 404.
	wantStatus(t, e.hook("/connect/keyco/deauthorize", "valid", url.Values{"AccountSid": {"acct-1"}}), http.StatusNotFound)
	wantStatus(t, e.hook("/connect/nosuch/deauthorize", "valid", nil), http.StatusNotFound)
	wantStatus(t, e.hook("/connect/hookco/callback", "valid", url.Values{"AccountSid": {"AC1"}}), http.StatusNotFound)
	// Too large.
	r = e.hook("/connect/hookco/deauthorize", "valid", url.Values{"AccountSid": {"AC1"}, "pad": {strings.Repeat("x", maxBody)}})
	wantStatus(t, r, http.StatusRequestEntityTooLarge)
	if e.connByName("h1").State != store.StateActive {
		t.Fatal("a refused callback revoked")
	}

	e.clk.Add(time.Minute)
	r = e.hook("/connect/hookco/deauthorize", "valid", url.Values{"AccountSid": {"AC1"}})
	wantStatus(t, r, http.StatusOK)
	got := e.connByName("h1")
	if got.State != store.StateRevoked || got.LastError != "revoked by the vendor (deauthorize callback)" || got.Secret["token"] != hookToken ||
		got.AccountID != "AC1" || !got.Created.Equal(before.Created) || !got.Updated.Equal(e.clk.Now()) {
		t.Errorf("after revocation: %+v", got)
	}
	if e.connByName("h2").State != store.StateActive || e.connByName("k1").State != store.StateActive {
		t.Error("other connections revoked too")
	}
	if e.changeCount() != changes+1 || e.changes[len(e.changes)-1] != got.ID {
		t.Errorf("OnChange %v", e.changes)
	}
	if !strings.Contains(e.logs.String(), `"msg":"connection revoked by the vendor"`) {
		t.Error("revocation not logged")
	}
	// An unknown account is fine (already disconnected).
	wantStatus(t, e.hook("/connect/hookco/deauthorize", "valid", url.Values{"AccountSid": {"AC9"}}), http.StatusOK)
	// The page offers Reconnect now.
	wantBody(t, e.do(c, "GET", "/", nil), "state-revoked", "revoked by the vendor")
}
