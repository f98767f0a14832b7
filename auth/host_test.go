package auth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The UI opened at localhost while external_url says 127.0.0.1 (or the
// other way round): the vendor would send the browser back to a host
// where it has no cookies, so the pages say so and no flow starts.
func TestWrongHostSaidBeforeFlowStarts(t *testing.T) {
	e := newEnv(t)
	if !strings.HasPrefix(e.srv.URL, "http://127.0.0.1:") {
		t.Fatalf("test server at %s, expected 127.0.0.1", e.srv.URL)
	}
	other := strings.Replace(e.srv.URL, "127.0.0.1", "localhost", 1)

	// An admin signed in at localhost.
	c := e.client()
	r := e.do(c, "GET", other+"/login", nil)
	r = e.do(c, "POST", other+"/login", url.Values{"csrf": {csrfOf(t, r.body)}, "user": {adminUser}, "password": {adminPass}, "next": {"/"}})
	wantStatus(t, r, http.StatusSeeOther)
	r = e.do(c, "GET", other+"/", nil)
	wantStatus(t, r, 200)
	wantBody(t, r, `id="wrong-host"`, "opened at localhost:", "external_url is "+e.srv.URL, `<a href="`+e.srv.URL+`/">`)
	r = e.do(c, "POST", other+"/connect/oauthco/start", url.Values{"csrf": {csrfOf(t, r.body)}, "method": {"oauth"}, "name": {"prod"}})
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "external_url is "+e.srv.URL, "start again")
	for _, ck := range r.Cookies() {
		if ck.Name == flowCookie {
			t.Error("a flow was started at the wrong host")
		}
	}

	// An invitee at localhost.
	path, _ := e.invite(map[string]string{"vendor": "oauthco", "name": "guest"})
	guest := e.client()
	r = e.do(guest, "GET", other+path, nil)
	wantStatus(t, r, 200)
	wantBody(t, r, `id="wrong-host"`, `<a href="`+e.srv.URL+path+`">`)
	r = e.do(guest, "POST", other+path+"/start", url.Values{"csrf": {csrfOf(t, r.body)}, "method": {"oauth"}})
	wantStatus(t, r, http.StatusBadRequest)
	wantBody(t, r, "external_url is "+e.srv.URL)

	// At external_url itself, and behind a reverse proxy (whose Host is
	// not the browser's), nothing is said and the flow starts.
	admin, csrf := e.admin()
	r = e.do(admin, "GET", "/", nil)
	if strings.Contains(r.body, "wrong-host") {
		t.Errorf("warning at external_url itself:\n%s", r.body)
	}
	req, _ := http.NewRequest("POST", other+"/connect/oauthco/start", strings.NewReader(url.Values{"csrf": {csrf}, "method": {"oauth"}, "name": {"prod"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", "192.0.2.1")
	srvURL, _ := url.Parse(e.srv.URL) // httptest's own URL
	for _, ck := range admin.Jar.Cookies(srvURL) {
		req.AddCookie(ck)
	}
	wantStatus(t, e.send(e.client(), req), http.StatusFound)
	wantStatus(t, e.do(admin, "POST", "/connect/oauthco/start", url.Values{"csrf": {csrf}, "method": {"oauth"}, "name": {"prod"}}), http.StatusFound)
}
