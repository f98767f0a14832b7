package auth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/api"
	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/store/storetest"
)

func decode[T any](t *testing.T, r resp) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("%s %s: not JSON (%v): %s", r.Request.Method, r.Request.URL.Path, err, r.body)
	}
	return v
}

func TestAPIAuth(t *testing.T) {
	e := newEnv(t)
	for name, r := range map[string]resp{
		"missing":      e.apiAs("", "", "GET", "/api/v1/connections", nil),
		"wrong":        e.apiAs(adminUser, "wrong", "GET", "/api/v1/connections", nil),
		"unknown user": e.apiAs("bob", adminPass, "GET", "/api/v1/connections", nil),
	} {
		if r.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: %d, WWW-Authenticate %q", name, r.StatusCode, r.Header.Get("WWW-Authenticate"))
		}
		if decode[map[string]string](t, r)["error"] == "" {
			t.Errorf("%s: no error message", name)
		}
	}
	r := e.api("GET", "/api/v1/connections", nil)
	wantStatus(t, r, 200)
	if strings.TrimSpace(r.body) != "[]" {
		t.Errorf("empty list: %s", r.body)
	}
	// A successful check is cached under a key that is no password.
	keys := e.s.api.CachedKeys()
	if len(keys) != 1 {
		t.Fatalf("cache has %d entries", len(keys))
	}
	for _, k := range keys {
		if strings.Contains(k, adminPass) {
			t.Error("cache key contains the password")
		}
	}
	// Cached or not, a wrong password is refused.
	wantStatus(t, e.apiAs(adminUser, adminPass+"x", "GET", "/api/v1/connections", nil), http.StatusUnauthorized)
	// The cache entry expires.
	e.clk.Add(2 * time.Minute)
	wantStatus(t, e.api("GET", "/api/v1/connections", nil), 200)
	wantStatus(t, e.api("GET", "/api/v1/nosuch", nil), http.StatusNotFound)
}

func TestAPIConnections(t *testing.T) {
	e := newEnv(t)
	r := e.api("POST", "/api/v1/connections", map[string]string{"vendor": "keyco", "name": "prod", "api_key": goodKey, "region": "eu"})
	wantStatus(t, r, http.StatusCreated)
	c := decode[map[string]any](t, r)
	id, _ := c["id"].(string)
	if len(id) != 16 || c["vendor"] != "keyco" || c["name"] != "prod" || c["account_id"] != "acct-1" || c["auth_method"] != "api_key" || c["state"] != "active" {
		t.Errorf("created %v", c)
	}
	for _, k := range []string{"id", "vendor", "name", "account", "account_id", "auth_method", "state", "created", "expiry", "last_success", "last_error", "scopes", "missing_scopes", "settings"} {
		if _, ok := c[k]; !ok {
			t.Errorf("connection JSON lacks %q", k)
		}
	}
	if e.changeCount() != 1 {
		t.Errorf("OnChange %d", e.changeCount())
	}

	r = e.api("GET", "/api/v1/connections/"+id, nil)
	wantStatus(t, r, 200)
	got := decode[api.Connection](t, r)
	if got.ID != id || got.Settings["region"] != "eu" || got.MissingScopes[0] != "billing.read" || got.Expiry != nil {
		t.Errorf("get %+v", got)
	}
	r = e.api("GET", "/api/v1/connections", nil)
	if list := decode[[]api.Connection](t, r); len(list) != 1 || list[0].ID != id {
		t.Errorf("list %+v", list)
	}

	// Same account again: updated, not duplicated.
	r = e.api("POST", "/api/v1/connections", map[string]string{"vendor": "keyco", "name": "prod-2", "api_key": goodKey})
	wantStatus(t, r, http.StatusOK)
	if decode[api.Connection](t, r).ID != id {
		t.Error("dedupe changed the id")
	}

	// Reconnect keeps the id, name and created time.
	if err := e.st.SetStatus(context.Background(), id, store.Status{State: store.StateRevoked, LastError: "401"}); err != nil {
		t.Fatal(err)
	}
	e.clk.Add(time.Hour)
	r = e.api("POST", "/api/v1/connections/"+id+"/reconnect", map[string]string{"api_key": goodKey, "region": "us"})
	wantStatus(t, r, http.StatusOK)
	rc := decode[api.Connection](t, r)
	if rc.ID != id || rc.Name != "prod" || rc.State != "active" || rc.LastError != "" || rc.Settings["region"] != "us" || !rc.Created.Equal(got.Created) {
		t.Errorf("reconnected %+v", rc)
	}
	wantStatus(t, e.api("POST", "/api/v1/connections/"+id+"/reconnect", map[string]string{"vendor": "hookco", "api_key": goodKey}), http.StatusBadRequest)
	wantStatus(t, e.api("POST", "/api/v1/connections/"+id+"/reconnect", map[string]string{"name": "renamed", "api_key": goodKey}), http.StatusBadRequest)
	wantStatus(t, e.api("POST", "/api/v1/connections/"+id+"/reconnect", map[string]string{"vendor": "keyco", "name": "prod", "api_key": goodKey}), http.StatusOK)
	wantStatus(t, e.api("POST", "/api/v1/connections/0000000000000000/reconnect", map[string]string{"api_key": goodKey}), http.StatusNotFound)
	r = e.api("POST", "/api/v1/connections/"+id+"/reconnect", map[string]string{"api_key": badKey})
	wantStatus(t, r, http.StatusBadRequest)
	if decode[api.Error](t, r).Field != "api_key" {
		t.Errorf("error %s", r.body)
	}

	wantStatus(t, e.api("DELETE", "/api/v1/connections/"+id, nil), http.StatusNoContent)
	wantStatus(t, e.api("DELETE", "/api/v1/connections/"+id, nil), http.StatusNotFound)
	wantStatus(t, e.api("GET", "/api/v1/connections/"+id, nil), http.StatusNotFound)
	if len(e.conns()) != 0 {
		t.Fatal("not deleted")
	}
}

func TestAPICreateRejects(t *testing.T) {
	e := newEnv(t)
	wantStatus(t, e.api("POST", "/api/v1/connections", map[string]string{"vendor": "keyco", "name": "taken", "api_key": goodKey}), http.StatusCreated)
	before := e.changeCount()
	for _, tc := range []struct {
		name   string
		body   any
		ctype  string
		status int
		want   string
	}{
		{"unknown vendor", `{"vendor":"acme","name":"x"}`, "", 400, `unknown vendor \"acme\" (known: hookco, keyco, oauthco)`},
		{"no vendor", `{"name":"x"}`, "", 400, "vendor is required (known: hookco, keyco, oauthco)"},
		{"unknown method", `{"vendor":"keyco","name":"x","method":"oauth"}`, "", 400, `unknown method \"oauth\" for keyco (available: api_key)`},
		{"disabled method", `{"vendor":"oauthco","name":"x","method":"legacy"}`, "", 400, "not configured"},
		{"missing field", `{"vendor":"keyco","name":"x","region":"us"}`, "", 400, "API key (api_key) is required."},
		{"empty field", `{"vendor":"keyco","name":"x","api_key":""}`, "", 400, "API key (api_key) is required."},
		{"bad option", `{"vendor":"keyco","name":"x","api_key":"good-key","region":"mars"}`, "", 400, "Region must be one of: us, eu."},
		{"missing name", `{"vendor":"keyco","api_key":"good-key"}`, "", 400, "A connection name is required"},
		{"invalid name", `{"vendor":"keyco","name":"a b","api_key":"good-key"}`, "", 400, "The connection name must be"},
		{"duplicate name", `{"vendor":"hookco","name":"taken","token":"hook-token-value","account":"AC9"}`, "", 409, "already used"},
		{"rejected key", `{"vendor":"keyco","name":"x","api_key":"bad-key-value"}`, "", 400, "KeyCo rejected this API key"},
		{"vendor down", `{"vendor":"keyco","name":"x","api_key":"down-key-value"}`, "", 502, "Could not check the credential with KeyCo"},
		{"garbage", `{"vendor":`, "", 400, "not valid JSON"},
		{"not an object", `["keyco"]`, "", 400, "must be a JSON object"},
		{"null", `null`, "", 400, "must be a JSON object"},
		{"trailing data", `{"vendor":"keyco","name":"x","api_key":"good-key"} {}`, "", 400, "data after the JSON object"},
		{"empty body", ``, "", 400, "request body is empty"},
		{"unknown key", `{"vendor":"keyco","name":"x","api_key":"good-key","apikey":"y"}`, "", 400, `unknown field \"apikey\"`},
		{"key for redirect", `{"vendor":"oauthco","name":"x","scope":"all"}`, "", 400, `unknown field \"scope\"`},
		{"number", `{"vendor":"keyco","name":"x","api_key":42}`, "", 400, `field \"api_key\" must be a string`},
		{"too large", `{"vendor":"keyco","name":"x","api_key":"` + strings.Repeat("k", maxBody) + `"}`, "", 413, "larger than 64 KiB"},
		{"form content type", `{"vendor":"keyco","name":"x","api_key":"good-key"}`, "application/x-www-form-urlencoded", 415, "Content-Type: application/json"},
		{"text content type", `{"vendor":"keyco","name":"x","api_key":"good-key"}`, "text/plain", 415, "Content-Type: application/json"},
	} {
		req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/connections", strings.NewReader(tc.body.(string)))
		ct := tc.ctype
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
		req.SetBasicAuth(adminUser, adminPass)
		r := e.send(e.client(), req)
		if r.StatusCode != tc.status || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s: %d %s; want %d with %q", tc.name, r.StatusCode, r.body, tc.status, tc.want)
		}
		if r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: Content-Type %q", tc.name, r.Header.Get("Content-Type"))
		}
		if len(e.conns()) != 1 || e.changeCount() != before {
			t.Fatalf("%s: something was stored", tc.name)
		}
		for _, ck := range r.Cookies() {
			if ck.Name == flowCookie {
				t.Errorf("%s: flow cookie set", tc.name)
			}
		}
	}
}

func TestAPIRedirectFlow(t *testing.T) {
	e := newEnv(t)
	jar := e.follower()
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/connections", strings.NewReader(`{"vendor":"oauthco","name":"api-prod"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(adminUser, adminPass)
	r := e.send(jar, req)
	wantStatus(t, r, http.StatusAccepted)
	au := decode[map[string]string](t, r)["authorize_url"]
	u, err := url.Parse(au)
	if err != nil || u.Query().Get("state") == "" {
		t.Fatalf("authorize_url %q", au)
	}
	e.forbidLog(u.Query().Get("state"))
	if e.flowCookie(jar) == nil {
		t.Fatal("no flow cookie")
	}
	if len(e.conns()) != 0 {
		t.Fatal("stored before the callback")
	}
	// Following the URL with the same cookie jar completes the flow.
	r = e.do(jar, "GET", au, nil)
	wantStatus(t, r, 200) // the login page: the client has no session
	conn := e.connByName("api-prod")
	if conn.AccountID != "acme" || conn.AuthMethod != "oauth" {
		t.Errorf("stored %+v", conn)
	}

	// Reconnect through the API with a redirect method: 202 too.
	req, _ = http.NewRequest("POST", e.srv.URL+"/api/v1/connections/"+conn.ID+"/reconnect", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(adminUser, adminPass)
	r = e.send(jar, req)
	wantStatus(t, r, http.StatusAccepted)
	au = decode[map[string]string](t, r)["authorize_url"]
	u, _ = url.Parse(au)
	e.forbidLog(u.Query().Get("state"))
	e.do(jar, "GET", au, nil)
	if cs := e.conns(); len(cs) != 1 || cs[0].ID != conn.ID {
		t.Errorf("after reconnect: %+v", cs)
	}
}

func TestAPIDefaultMethod(t *testing.T) {
	// A vendor with a form method and a redirect method: the form is used
	// when its fields are there, otherwise the redirect.
	e := newEnv(t, func(o *Options) {
		rp := o.Providers[1].(*redirectProvider)
		o.Providers = append(o.Providers, mixedProvider{rp})
	})
	r := e.api("POST", "/api/v1/connections", map[string]string{"vendor": "mixed", "name": "a", "api_key": goodKey})
	wantStatus(t, r, http.StatusCreated)
	r = e.api("POST", "/api/v1/connections", map[string]string{"vendor": "mixed", "name": "b"})
	wantStatus(t, r, http.StatusAccepted)
	e.forbidLog(decode[map[string]string](t, r)["authorize_url"])
	r = e.api("POST", "/api/v1/connections", map[string]string{"vendor": "mixed", "name": "b", "method": "api_key"})
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "API key (api_key) is required.")
}

func TestAPIInvites(t *testing.T) {
	e := newEnv(t)
	r := e.api("POST", "/api/v1/invites", map[string]string{"vendor": "keyco", "name": "customer", "expires_in": "24h"})
	wantStatus(t, r, http.StatusCreated)
	inv := decode[api.Invite](t, r)
	if len(inv.ID) != 16 || !strings.HasPrefix(inv.URL, e.srv.URL+"/invite/"+inv.ID+".") || !inv.Expires.Equal(e.clk.Now().Add(24*time.Hour).UTC()) || inv.Status != "pending" {
		t.Errorf("invite %+v", inv)
	}
	e.forbidLog(strings.TrimPrefix(inv.URL, e.srv.URL+"/invite/"))
	r = e.api("POST", "/api/v1/invites", map[string]string{"vendor": "keyco", "name": "default"})
	wantStatus(t, r, http.StatusCreated)
	if d := decode[api.Invite](t, r); !d.Expires.Equal(e.clk.Now().Add(72 * time.Hour).UTC()) {
		t.Errorf("default expiry %v", d.Expires)
	}

	for _, tc := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"vendor":"nope","name":"x"}`, 400, "Unknown vendor"},
		{`{"name":"x"}`, 400, "vendor is required"},
		{`{"vendor":"keyco","name":"bad name"}`, 400, "The connection name must be"},
		{`{"vendor":"keyco","name":"x","expires_in":"soon"}`, 400, "not a duration"},
		{`{"vendor":"keyco","name":"x","expires_in":"-1h"}`, 400, "between 1m and"},
		{`{"vendor":"keyco","name":"x","expires_in":"10000h"}`, 400, "between 1m and"},
		{`{"vendor":"keyco","name":"x","extra":1}`, 400, `unknown field \"extra\"`},
		{`{"vendor":"keyco","name":`, 400, "not valid JSON"},
		{`{"vendor":"keyco","connection_id":"0000000000000000"}`, 404, "no connection with id"},
	} {
		r := e.api("POST", "/api/v1/invites", tc.body)
		if r.StatusCode != tc.status || !strings.Contains(r.body, tc.want) {
			t.Errorf("%s: %d %s", tc.body, r.StatusCode, r.body)
		}
	}
	r = e.api("GET", "/api/v1/invites", nil)
	list := decode[[]api.Invite](t, r)
	if len(list) != 2 {
		t.Fatalf("list %+v", list)
	}
	wantStatus(t, e.api("DELETE", "/api/v1/invites/"+inv.ID, nil), http.StatusNoContent)
	wantStatus(t, e.api("DELETE", "/api/v1/invites/0000000000000000", nil), http.StatusNotFound)
	for _, i := range decode[[]api.Invite](t, e.api("GET", "/api/v1/invites", nil)) {
		if i.ID == inv.ID && (i.Status != "revoked" || !i.Revoked || i.URL != "") {
			t.Errorf("revoked invite listed as %+v", i)
		}
	}
}

// Connecting, connecting the same account again and reconnecting read the
// connections they could collide with, not every connection: with
// thousands connected, each connect listed and decoded all of them (the
// bench's 5,000 took minutes to connect).
func TestConnectDoesNotListTheStore(t *testing.T) {
	var lc *storetest.ListCounter
	e := newEnv(t, func(o *Options) { lc = &storetest.ListCounter{Store: o.Store}; o.Store = lc })
	r := e.api("POST", "/api/v1/connections", map[string]string{"vendor": "keyco", "name": "prod", "api_key": goodKey})
	wantStatus(t, r, http.StatusCreated)
	id := decode[api.Connection](t, r).ID
	wantStatus(t, e.api("POST", "/api/v1/connections", map[string]string{"vendor": "keyco", "name": "prod-2", "api_key": goodKey}), http.StatusOK)
	wantStatus(t, e.api("POST", "/api/v1/connections", map[string]string{"vendor": "keyco", "name": "prod", "api_key": goodKey2}), http.StatusConflict)
	wantStatus(t, e.api("POST", "/api/v1/connections/"+id+"/reconnect", map[string]string{"api_key": goodKey}), http.StatusOK)
	if n := lc.Lists(); n != 0 {
		t.Errorf("%d lists of every connection for 4 connects", n)
	}
	if cs := e.conns(); len(cs) != 1 || cs[0].ID != id || cs[0].Name != "prod" {
		t.Errorf("stored %+v", cs)
	}
}
