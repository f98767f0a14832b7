package auth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestSecretsNeverShown runs every path that handles a secret and checks
// that no secret value reaches a page, an API answer, a header or the log
// (newEnv's cleanup checks the same for every other test).
func TestSecretsNeverShown(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()

	// A vendor error that quotes the key is redacted, on the page and in the log.
	r := e.connectKey(c, csrf, "prod", leakyKey)
	wantStatus(t, r, http.StatusBadGateway)
	wantBody(t, r, "key [redacted] rejected")
	if !strings.Contains(e.logs.String(), "key [redacted] rejected") {
		t.Errorf("vendor error not logged (redacted):\n%s", e.logs.String())
	}
	r = e.api("POST", "/api/v1/connections", map[string]string{"vendor": "keyco", "name": "prod", "api_key": leakyKey})
	wantStatus(t, r, http.StatusBadGateway)
	wantBody(t, r, "[redacted]")

	// A provider that panics: a page, not a dropped connection; the panic
	// value is logged redacted.
	r = e.connectKey(c, csrf, "prod", panicKey)
	wantStatus(t, r, http.StatusBadGateway)
	wantBody(t, r, "the keyco provider failed unexpectedly")
	if !strings.Contains(e.logs.String(), "cannot handle key [redacted]") {
		t.Errorf("panic not logged (redacted):\n%s", e.logs.String())
	}

	// Rejected and accepted keys, through the page and the API.
	wantStatus(t, e.connectKey(c, csrf, "prod", badKey), http.StatusBadRequest)
	wantStatus(t, e.connectKey(c, csrf, "prod", goodKey), http.StatusSeeOther)
	wantStatus(t, e.api("POST", "/api/v1/connections", map[string]string{"vendor": "hookco", "name": "hook", "token": hookToken, "account": "AC1"}), http.StatusCreated)
	wantStatus(t, e.api("POST", "/api/v1/connections", map[string]string{"vendor": "keyco", "name": "x", "api_key": downKey}), http.StatusBadGateway)

	// A redirect flow whose callback fails after the code arrived, then one that succeeds.
	cb, _ := url.Parse(e.consentTo(e.start(c, csrf, url.Values{"name": {"oauth"}})))
	q := cb.Query()
	q.Del("account")
	cb.RawQuery = q.Encode()
	wantStatus(t, e.do(c, "GET", cb.String(), nil), http.StatusBadRequest)
	wantStatus(t, e.do(c, "GET", e.consentTo(e.start(c, csrf, url.Values{"name": {"oauth"}})), nil), http.StatusSeeOther)

	// Everything that shows connections.
	wantStatus(t, e.do(c, "GET", "/", nil), 200)
	for _, conn := range e.conns() {
		wantStatus(t, e.api("GET", "/api/v1/connections/"+conn.ID, nil), 200)
		wantStatus(t, e.do(c, "GET", "/connections/"+conn.ID+"/disconnect", nil), 200)
		want := http.StatusOK
		if conn.Vendor == "oauthco" {
			want = http.StatusNotFound // no form to reconnect with
		}
		wantStatus(t, e.do(c, "GET", "/connect/"+conn.Vendor+"?reconnect="+conn.ID, nil), want)
	}
	r = e.api("GET", "/api/v1/connections", nil)
	wantStatus(t, r, 200)

	// Every stored secret value, not only the ones the fakes were given.
	if len(e.conns()) != 3 {
		t.Fatalf("%d connections", len(e.conns()))
	}
	for _, conn := range e.conns() {
		if len(conn.Secret) == 0 {
			t.Errorf("%s: no secret stored", conn.Name)
		}
		for _, v := range conn.Secret {
			e.mu.Lock()
			for _, resp := range e.responses {
				if strings.Contains(resp, v) {
					t.Errorf("stored secret of %s in a response", conn.Name)
				}
			}
			e.mu.Unlock()
			if strings.Contains(e.logs.String(), v) {
				t.Errorf("stored secret of %s in the log", conn.Name)
			}
		}
	}
	if l := e.leaks(); len(l) != 0 {
		t.Errorf("leaks: %v", l)
	}

	// The checker itself finds a leak.
	ctl := &env{logs: &syncBuffer{}, responses: []string{"OK\n\n<p>" + goodKey + "</p>"}}
	ctl.logs.Write([]byte(`{"msg":"x","state":"abc-state"}`))
	ctl.logOnly = []string{"abc-state"}
	if len(ctl.leaks()) != 2 {
		t.Errorf("the leak check missed a planted secret: %v", ctl.leaks())
	}
}
