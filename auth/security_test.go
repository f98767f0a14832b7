package auth

import (
	"context"
	"net/http"
	"strings"
	"testing"
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
