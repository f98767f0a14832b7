package auth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/store"
)

func TestFormPage(t *testing.T) {
	e := newEnv(t)
	c, _ := e.admin()
	r := e.do(c, "GET", "/connect/keyco?method=api_key", nil)
	wantStatus(t, r, 200)
	wantBody(t, r,
		`<input id="f-api_key" type="password" name="api_key" value=""`,
		`<select id="f-region" name="region"`, `<option value="eu">`,
		`<textarea id="f-note" name="note"`,
		`name="name"`, "A restricted key.")
	// Without ?method the first form method is used.
	wantStatus(t, e.do(c, "GET", "/connect/keyco", nil), 200)

	r = e.do(c, "GET", "/connect/nosuch", nil)
	wantStatus(t, r, http.StatusNotFound)
	wantBody(t, r, "Known vendors: hookco, keyco, oauthco.")
	r = e.do(c, "GET", "/connect/keyco?method=%3Cscript%3E", nil)
	wantStatus(t, r, http.StatusNotFound)
	if strings.Contains(r.body, "<script>") {
		t.Error("method name reflected unescaped")
	}
	wantStatus(t, e.do(c, "GET", "/connect/keyco?reconnect=0000000000000000", nil), http.StatusNotFound)
}

func TestFormConnect(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()

	// A rejected key: the form comes back with the vendor's reason, the
	// name and region kept, the key field empty; nothing stored.
	r := e.do(c, "POST", "/connect/keyco", url.Values{"csrf": {csrf}, "method": {"api_key"}, "name": {"prod"}, "api_key": {badKey}, "region": {"eu"}, "note": {"hello <b>"}})
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "KeyCo rejected this API key (HTTP 401)", `value="prod"`, `<option value="eu" selected>`, "hello &lt;b&gt;", `name="api_key" value=""`, `class="invalid"`)
	if len(e.conns()) != 0 || e.changeCount() != 0 {
		t.Fatal("stored after a rejected key")
	}

	// Missing and invalid names, missing key, unknown option.
	for _, tc := range []struct {
		form url.Values
		want string
	}{
		{url.Values{"name": {""}, "api_key": {goodKey}}, "A connection name is required"},
		{url.Values{"name": {"-bad name"}, "api_key": {goodKey}}, "The connection name must be"},
		{url.Values{"name": {strings.Repeat("a", 64)}, "api_key": {goodKey}}, "The connection name must be"},
		{url.Values{"name": {"prod"}, "api_key": {"  "}}, "API key (api_key) is required."},
		{url.Values{"name": {"prod"}, "api_key": {goodKey}, "region": {"mars"}}, "Region must be one of: us, eu."},
	} {
		tc.form.Set("csrf", csrf)
		tc.form.Set("method", "api_key")
		r := e.do(c, "POST", "/connect/keyco", tc.form)
		wantStatus(t, r, http.StatusBadRequest)
		wantBody(t, r, tc.want)
	}
	// The vendor cannot be reached: a clear message, no 500.
	r = e.connectKey(c, csrf, "prod", downKey)
	wantStatus(t, r, http.StatusBadGateway)
	wantBody(t, r, "Could not check the credential with KeyCo", "connection refused", "Nothing was stored")
	if len(e.conns()) != 0 {
		t.Fatal("stored after failures")
	}

	created := e.clk.Now()
	r = e.connectKey(c, csrf, "prod", "  "+goodKey+"\n")
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/?msg=connected&name=prod" {
		t.Errorf("redirect to %q", r.location())
	}
	conn := e.connByName("prod")
	if len(conn.ID) != 16 || conn.Vendor != "keyco" || conn.AccountID != "acct-1" || conn.Account != "KeyCo acct-1" ||
		conn.AuthMethod != "api_key" || conn.State != store.StateActive || !conn.Created.Equal(created) ||
		conn.Secret["api_key"] != goodKey || conn.Settings["region"] != "eu" ||
		strings.Join(conn.Scopes, ",") != "stats.read" || strings.Join(conn.MissingScopes, ",") != "billing.read" {
		t.Errorf("stored %+v", conn)
	}
	if e.changeCount() != 1 || e.changes[0] != conn.ID {
		t.Errorf("OnChange calls %v", e.changes)
	}
	r = e.do(c, "GET", "/?msg=connected&name=prod", nil)
	wantBody(t, r, "Connected “prod”.", "KeyCo acct-1", "state-active", "billing.read", "stats.read", "/connections/"+conn.ID+"/disconnect")

	// The name is taken now, also for another vendor.
	r = e.do(c, "POST", "/connect/hookco", url.Values{"csrf": {csrf}, "method": {"token"}, "name": {"prod"}, "token": {hookToken}, "account": {"AC1"}})
	wantStatus(t, r, http.StatusConflict)
	wantBody(t, r, "The name “prod” is already used by another connection")
	// Same vendor, another account, same name: refused after verifying.
	r = e.connectKey(c, csrf, "prod", goodKey2)
	wantStatus(t, r, http.StatusConflict)
	if len(e.conns()) != 1 {
		t.Fatalf("%d connections", len(e.conns()))
	}
	wantStatus(t, e.connectKey(c, csrf, "staging", goodKey2), http.StatusSeeOther)
	if len(e.conns()) != 2 {
		t.Fatalf("%d connections", len(e.conns()))
	}
}

func TestAccountIDDedupe(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	wantStatus(t, e.connectKey(c, csrf, "prod", goodKey), http.StatusSeeOther)
	first := e.connByName("prod")
	e.clk.Add(time.Hour)
	// Connecting the same account again, under another name, updates it.
	r := e.connectKey(c, csrf, "prod-again", goodKey)
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/?msg=updated&name=prod" {
		t.Errorf("redirect to %q", r.location())
	}
	cs := e.conns()
	if len(cs) != 1 || cs[0].ID != first.ID || cs[0].Name != "prod" || !cs[0].Created.Equal(first.Created) {
		t.Fatalf("after reconnecting the same account: %+v", cs)
	}
	r = e.do(c, "GET", "/?"+strings.SplitN(r.location(), "?", 2)[1], nil)
	wantBody(t, r, "This account was already connected as “prod”")
	// And under the same name.
	wantStatus(t, e.connectKey(c, csrf, "prod", goodKey), http.StatusSeeOther)
	if len(e.conns()) != 1 {
		t.Fatal("duplicate created")
	}
}

func TestReconnectForm(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	wantStatus(t, e.connectKey(c, csrf, "prod", goodKey), http.StatusSeeOther)
	orig := e.connByName("prod")
	wantStatus(t, e.connectKey(c, csrf, "other", goodKey2), http.StatusSeeOther)
	ctx := context.Background()
	if err := e.st.SetStatus(ctx, orig.ID, store.Status{State: store.StateRevoked, LastError: "HTTP 401", LastSuccess: orig.Created}); err != nil {
		t.Fatal(err)
	}
	r := e.do(c, "GET", "/", nil)
	reconnectURL := "/connect/keyco?method=api_key&amp;reconnect=" + orig.ID
	wantBody(t, r, "state-revoked", "HTTP 401", reconnectURL)
	// Every connection is offered Reconnect, not only broken ones: a
	// rotated key must not need Disconnect + connect (#18 item 4).
	if n := strings.Count(r.body, ">Reconnect<"); n != 2 {
		t.Errorf("Reconnect offered %d times for 2 connections", n)
	}
	wantBody(t, r, "/connect/keyco?method=api_key&amp;reconnect="+e.connByName("other").ID)
	// Primary for the revoked one, secondary for the healthy one.
	wantBody(t, r, `class="button" href="/connect/keyco?method=api_key&amp;reconnect=`+orig.ID, `class="button secondary" href="/connect/keyco?method=api_key&amp;reconnect=`+e.connByName("other").ID)

	r = e.do(c, "GET", "/connect/keyco?method=api_key&reconnect="+orig.ID, nil)
	wantStatus(t, r, 200)
	wantBody(t, r, "Reconnect prod", `name="reconnect" value="`+orig.ID+`"`, `<option value="eu" selected>`)
	if strings.Contains(r.body, `id="f-name"`) {
		t.Error("reconnect form asks for a name")
	}

	// Another account that is already connected as "other": refused.
	r = e.do(c, "POST", "/connect/keyco", url.Values{"csrf": {csrf}, "method": {"api_key"}, "reconnect": {orig.ID}, "api_key": {goodKey2}})
	wantStatus(t, r, http.StatusConflict)
	wantBody(t, r, "already connected as “other”")

	e.clk.Add(time.Hour)
	r = e.do(c, "POST", "/connect/keyco", url.Values{"csrf": {csrf}, "method": {"api_key"}, "reconnect": {orig.ID}, "api_key": {goodKey}, "region": {"us"}, "name": {"ignored"}})
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/?msg=reconnected&name=prod" {
		t.Errorf("redirect to %q", r.location())
	}
	got := e.connByName("prod")
	if got.ID != orig.ID || !got.Created.Equal(orig.Created) || got.State != store.StateActive || got.LastError != "" ||
		got.Settings["region"] != "us" || !got.Updated.Equal(e.clk.Now()) || !got.LastSuccess.Equal(orig.Created) {
		t.Errorf("after reconnect: %+v", got)
	}
}

func TestDisconnect(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	wantStatus(t, e.connectKey(c, csrf, "prod", goodKey), http.StatusSeeOther)
	id := e.connByName("prod").ID
	r := e.do(c, "GET", "/connections/"+id+"/disconnect", nil)
	wantStatus(t, r, 200)
	wantBody(t, r, "Disconnect “prod”?", `action="/connections/`+id+`/disconnect"`)
	r = e.do(c, "POST", "/connections/"+id+"/disconnect", url.Values{"csrf": {csrf}})
	wantStatus(t, r, http.StatusSeeOther)
	if r.location() != "/?msg=disconnected&name=prod" || len(e.conns()) != 0 {
		t.Fatalf("after disconnect: %q, %d connections", r.location(), len(e.conns()))
	}
	if e.changeCount() != 2 {
		t.Errorf("OnChange called %d times", e.changeCount())
	}
	wantStatus(t, e.do(c, "POST", "/connections/"+id+"/disconnect", url.Values{"csrf": {csrf}}), http.StatusNotFound)
	wantStatus(t, e.do(c, "GET", "/connections/"+id+"/disconnect", nil), http.StatusNotFound)
	if !strings.Contains(e.logs.String(), `"msg":"connection disconnected"`) {
		t.Error("disconnect not logged")
	}
}

func TestFlashNeverReflectsInput(t *testing.T) {
	e := newEnv(t)
	c, _ := e.admin()
	r := e.do(c, "GET", "/?msg=connected&name="+url.QueryEscape(`<script>alert(1)</script>`), nil)
	wantBody(t, r, "Connected the connection.")
	r = e.do(c, "GET", "/?msg="+url.QueryEscape(`<script>alert(1)</script>`), nil)
	if strings.Contains(r.body, "alert(1)") || strings.Contains(r.body, `class="flash"`) {
		t.Error("unknown message code rendered")
	}
	if r.Header.Get("Content-Security-Policy") == "" || r.Header.Get("X-Frame-Options") != "DENY" {
		t.Error("security headers missing")
	}
}

func TestConnectionsPageSections(t *testing.T) {
	e := newEnv(t)
	c, _ := e.admin()
	r := e.do(c, "GET", "/", nil)
	wantBody(t, r,
		"Connect KeyCo", `href="/connect/keyco?method=api_key"`,
		"Connect OAuthCo", `action="/connect/oauthco/start"`, `name="method" value="oauth"`,
		"not configured (see vendors.oauthco", // the disabled "legacy" method
		"Invite the KeyCo account's admin", `name="viewport"`)
	if strings.Contains(r.body, `value="legacy"`) {
		t.Error("disabled method offered")
	}
}

func TestFormBodyLimit(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	r := e.do(c, "POST", "/connect/keyco", url.Values{"csrf": {csrf}, "method": {"api_key"}, "name": {"prod"}, "api_key": {strings.Repeat("k", maxBody)}})
	wantStatus(t, r, http.StatusRequestEntityTooLarge)
	wantBody(t, r, "larger than 64 KiB")
	if len(e.conns()) != 0 {
		t.Fatal("stored")
	}
}

// damagedStore reads one connection as the store reads a record whose
// secret cannot be opened, until something writes it again.
type damagedStore struct {
	store.Store
	mu sync.Mutex
	id string
}

func (d *damagedStore) Get(ctx context.Context, id string) (store.Connection, error) {
	c, err := d.Store.Get(ctx, id)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil && id == d.id {
		err = fmt.Errorf("store: the secret of connection %q is %w", id, store.ErrDamaged)
		c.Secret, c.Damaged = nil, err.Error() // as the store shows it
		return c, err
	}
	return c, err
}

func (d *damagedStore) Put(ctx context.Context, c store.Connection) error {
	d.mu.Lock()
	if c.ID == d.id {
		d.id = ""
	}
	d.mu.Unlock()
	return d.Store.Put(ctx, c)
}

// A connection whose stored secret cannot be read is reconnected from
// the pages, as its error says: the form opens, and the new credential
// replaces the record under the same id and name.
func TestReconnectDamagedFromThePages(t *testing.T) {
	var ds *damagedStore
	e := newEnv(t, func(o *Options) { ds = &damagedStore{Store: o.Store}; o.Store = ds })
	c, csrf := e.admin()
	wantStatus(t, e.connectKey(c, csrf, "prod", goodKey), http.StatusSeeOther)
	id := e.connByName("prod").ID
	ds.mu.Lock()
	ds.id = id
	ds.mu.Unlock()

	r := e.do(c, "GET", "/connect/keyco?"+url.Values{"method": {"api_key"}, "reconnect": {id}}.Encode(), nil)
	wantStatus(t, r, http.StatusOK)
	wantBody(t, r, "Reconnect prod")
	r = e.do(c, "POST", "/connect/keyco", url.Values{"csrf": {csrf}, "method": {"api_key"}, "reconnect": {id}, "api_key": {goodKey}, "region": {"us"}})
	wantStatus(t, r, http.StatusSeeOther)
	got := e.connByName("prod")
	if got.ID != id || got.Secret["api_key"] != goodKey || got.Settings["region"] != "us" || got.State != store.StateActive || len(e.conns()) != 1 {
		t.Errorf("after reconnecting the damaged connection: %+v (%d stored)", got, len(e.conns()))
	}
}
