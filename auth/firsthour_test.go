package auth

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// An invite for a new connection, answered with the credential of an
// account already connected under another name, replaces that
// connection's credential: both the invitee and the admin are told.
func TestInviteForAlreadyConnectedAccount(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	wantStatus(t, e.connectKey(c, csrf, "prod", goodKey), http.StatusSeeOther)
	prod := e.connByName("prod")
	path, inv := e.invite(map[string]string{"vendor": "keyco", "name": "partner"})

	guest := e.follower()
	r := e.do(guest, "GET", path, nil)
	r = e.do(guest, "POST", path, url.Values{"csrf": {csrfOf(t, r.body)}, "method": {"api_key"}, "api_key": {goodKey}})
	wantStatus(t, r, 200)
	wantBody(t, r, "This account was already connected as “prod”; its credential was replaced.")
	if strings.Contains(r.body, "Connected. You can close this page.") {
		t.Error("the invitee is told a new connection was made")
	}
	if n := len(e.conns()); n != 1 {
		t.Fatalf("%d connections", n)
	}
	got, _ := e.st.GetInvite(t.Context(), inv.ID)
	if got.ConnectionID != prod.ID {
		t.Fatalf("invite used for %q, want %q", got.ConnectionID, prod.ID)
	}

	r = e.do(c, "GET", "/", nil)
	wantBody(t, r, "used for “prod”", "account was already connected as “prod”: its credential was replaced; no connection “partner” was made.")
}

// The same through a redirect flow (the callback path).
func TestInviteRedirectForAlreadyConnectedAccount(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	r := e.do(c, "POST", "/connect/oauthco/start", url.Values{"csrf": {csrf}, "method": {"oauth"}, "name": {"prod"}})
	wantStatus(t, r, http.StatusFound)
	wantStatus(t, e.do(c, "GET", e.consentTo(r.location()), nil), http.StatusSeeOther)

	path, _ := e.invite(map[string]string{"vendor": "oauthco", "name": "partner"})
	guest := e.client()
	r = e.do(guest, "GET", path, nil)
	r = e.do(guest, "POST", path+"/start", url.Values{"csrf": {csrfOf(t, r.body)}, "method": {"oauth"}})
	wantStatus(t, r, http.StatusFound)
	r = e.do(guest, "GET", e.consentTo(r.location()), nil)
	wantStatus(t, r, http.StatusSeeOther)
	r = e.do(guest, "GET", r.location(), nil)
	wantBody(t, r, "This account was already connected as “prod”; its credential was replaced.")
	wantBody(t, e.do(c, "GET", "/", nil), "account was already connected as “prod”: its credential was replaced; no connection “partner” was made.")
}

// offco has only a method that is not configured (like Twilio without
// connect_app_sid): nothing that needs a method is offered.
type offProvider struct{ redirectProvider }

func (offProvider) Vendor() string { return "offco" }
func (offProvider) Title() string  { return "OffCo" }
func (p *offProvider) Methods() []provider.Method {
	return []provider.Method{&redirectMethodImpl{p: &p.redirectProvider, name: "connect", enabled: false}}
}

func TestUnconfiguredVendorOffersNoInvite(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Providers = append(o.Providers, &offProvider{}) })
	if err := e.st.Put(t.Context(), store.Connection{ID: "0000000000000off", Vendor: "offco", Name: "old", Status: store.Status{State: store.StateError}}); err != nil {
		t.Fatal(err)
	}
	c, csrf := e.admin()
	r := e.do(c, "GET", "/", nil)
	wantBody(t, r, "Connect OffCo", "not configured (see vendors.offco", "Invite the KeyCo account's admin instead")
	for _, no := range []string{"Invite the OffCo account's admin", `name="vendor" value="offco"`, `name="connection_id" value="0000000000000off"`} {
		if strings.Contains(r.body, no) {
			t.Errorf("offered %q for a vendor with no usable method", no)
		}
	}
	// What is no longer offered still fails with a clear reason.
	r = e.do(c, "POST", "/invites", url.Values{"csrf": {csrf}, "vendor": {"offco"}, "name": {"x"}})
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "OffCo has no sign-in method configured")
}

// A misspelt field names the field the user most likely meant, also when
// the misspelling made the redirect method the default.
func TestAPIUnknownFieldNamesClosest(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		rp := o.Providers[1].(*redirectProvider)
		o.Providers = append(o.Providers, mixedProvider{rp})
	})
	for _, c := range []struct{ body, want string }{
		{`{"vendor":"mixed","name":"a","apikey":"k"}`, `unknown field \"apikey\": did you mean \"api_key\" (method \"api_key\" of mixed)?`},
		{`{"vendor":"mixed","name":"a","API-Key":"k"}`, `did you mean \"api_key\"`},
		{`{"vendor":"mixed","name":"a","api_kye":"k"}`, `did you mean \"api_key\"`},
		{`{"vendor":"keyco","name":"a","api_key":"k","regoin":"eu"}`, `unknown field \"regoin\" for method \"api_key\" of keyco: did you mean \"region\"?`},
		// Nothing close: the list of fields.
		{`{"vendor":"mixed","name":"a","colour":"k"}`, `unknown field \"colour\": method \"oauth\" of mixed takes no fields`},
		{`{"vendor":"keyco","name":"a","api_key":"k","colour":"eu"}`, `(fields: vendor, name, method, api_key, region, note)`},
	} {
		r := e.api("POST", "/api/v1/connections", c.body)
		wantStatus(t, r, http.StatusBadRequest)
		wantBody(t, r, c.want)
	}
	if len(e.conns()) != 0 {
		t.Fatal("stored")
	}
}

var idRE = regexp.MustCompile(`\sid="([^"]+)"`)

// Every id on a page is unique, and every label points at one: the
// invite page has a form per method, with fields of the same names.
func TestPageIDsUnique(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Providers = append(o.Providers, twoFormsProvider{})
	})
	c, _ := e.admin()
	path, _ := e.invite(map[string]string{"vendor": "twoforms", "name": "guest"})
	for _, r := range []resp{
		e.do(e.client(), "GET", path, nil),
		e.do(c, "GET", "/", nil),
		e.do(c, "GET", "/connect/twoforms?method=api_key", nil),
		e.do(e.client(), "GET", "/login", nil),
	} {
		wantStatus(t, r, 200)
		seen := map[string]bool{}
		for _, m := range idRE.FindAllStringSubmatch(r.body, -1) {
			if seen[m[1]] {
				t.Errorf("%s: id=%q appears twice", r.Request.URL.Path, m[1])
			}
			seen[m[1]] = true
		}
		for _, m := range regexp.MustCompile(`<label for="([^"]+)"`).FindAllStringSubmatch(r.body, -1) {
			if !seen[m[1]] {
				t.Errorf("%s: label for %q, no such id", r.Request.URL.Path, m[1])
			}
		}
	}
}

// twoFormsProvider has two form methods that share the field "region".
type twoFormsProvider struct{}

func (twoFormsProvider) Vendor() string { return "twoforms" }
func (twoFormsProvider) Title() string  { return "TwoForms" }
func (twoFormsProvider) Methods() []provider.Method {
	return []provider.Method{keyMethod{}, namedKeyMethod{"other"}}
}
func (twoFormsProvider) Collect(context.Context, *provider.Scrape) error { return nil }

type namedKeyMethod struct{ name string }

func (m namedKeyMethod) Name() string             { return m.name }
func (m namedKeyMethod) Title() string            { return "Other key" }
func (m namedKeyMethod) Fields() []provider.Field { return keyMethod{}.Fields() }
func (m namedKeyMethod) Verify(ctx context.Context, hc *http.Client, v map[string]string) (*provider.Credential, error) {
	return keyMethod{}.Verify(ctx, hc, v)
}

// raceStore holds every caller of UseOnce for an invite until n have
// arrived, so n uses of one invite all get past the "already used" checks
// before the store decides: only UseOnce's answer can stop the others.
type raceStore struct {
	store.Store
	n       int
	mu      sync.Mutex
	arrived int
	all     chan struct{}
}

func (s *raceStore) UseOnce(ctx context.Context, key string, until time.Time) (bool, error) {
	if strings.HasPrefix(key, "invite:") {
		s.mu.Lock()
		s.arrived++
		if s.arrived == s.n {
			close(s.all)
		}
		s.mu.Unlock()
		select {
		case <-s.all:
		case <-time.After(10 * time.Second): // not all arrived: let the test fail on counts
		}
	}
	return s.Store.UseOnce(ctx, key, until)
}

// Concurrent uses of one invite: exactly one connects, the others are told
// it was used. Every use gets past the "already used" checks (raceStore),
// so this holds only if UseOnce's answer is obeyed.
func TestInviteConcurrentUse(t *testing.T) {
	const n = 4
	var rs *raceStore
	e := newEnv(t, func(o *Options) {
		rs = &raceStore{Store: o.Store, n: n, all: make(chan struct{})}
		o.Store = rs
	})
	path, _ := e.invite(map[string]string{"vendor": "keyco", "name": "a"})
	guest := e.client()
	csrf := csrfOf(t, e.do(guest, "GET", path, nil).body)
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(url.Values{"csrf": {csrf}, "method": {"api_key"}, "api_key": {goodKey}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r, err := e.client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			r.Body.Close()
			codes <- r.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	rs.mu.Lock()
	arrived := rs.arrived
	rs.mu.Unlock()
	if arrived != n {
		t.Fatalf("%d of %d uses reached UseOnce", arrived, n)
	}
	won, gone := 0, 0
	for c := range codes {
		switch c {
		case http.StatusSeeOther:
			won++
		case http.StatusGone:
			gone++
		default:
			t.Errorf("status %d", c)
		}
	}
	if won != 1 || gone != n-1 || len(e.conns()) != 1 {
		t.Fatalf("%d uses won, %d refused as used, %d connections; want 1, %d, 1", won, gone, len(e.conns()), n-1)
	}
}
