package auth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
)

// startFlow begins a redirect flow for this browser: it sets the flow
// cookie and returns where to send the browser.
func (s *Server) startFlow(w http.ResponseWriter, p provider.Provider, m provider.RedirectMethod, t target) (string, error) {
	now := s.now()
	f := flowState{
		Vendor:    p.Vendor(),
		Method:    m.Name(),
		State:     b64.EncodeToString(randomBytes(32)),
		Verifier:  b64.EncodeToString(randomBytes(32)), // 43 characters, RFC 7636
		Name:      t.Name,
		Reconnect: t.Reconnect,
		Invite:    t.Invite,
		Expires:   now.Add(flowTTL).Unix(),
	}
	u, err := authorizeURL(m, s.providerFlow(f))
	if err == nil {
		var pu *url.URL
		if pu, err = url.Parse(u); err == nil && (pu.Scheme != "http" && pu.Scheme != "https" || pu.Host == "") {
			err = errors.New("not an absolute http(s) URL")
		}
	}
	if err != nil {
		s.log.Error("building the authorize URL", "vendor", p.Vendor(), "method", m.Name(), "err", err)
		return "", fail(http.StatusServiceUnavailable, "Could not start connecting %s (%s): %v. Check the vendor's configuration.", p.Title(), m.Title(), err)
	}
	s.setCookie(w, flowCookie, s.sealFlow(f), "/", time.Unix(f.Expires, 0))
	s.log.Info("connection flow started", "vendor", p.Vendor(), "method", m.Name(), "name", t.Name, "reconnect", t.Reconnect, "invite", t.Invite)
	return u, nil
}

func (s *Server) providerFlow(f flowState) provider.Flow {
	return provider.Flow{State: f.State, Verifier: f.Verifier, RedirectURL: s.o.ExternalURL + "/connect/" + f.Vendor + "/callback"}
}

// startSubmit is the admin's "Connect with …" / "Reconnect" button.
func (s *Server) startSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	p := s.provider(r.PathValue("vendor"))
	if p == nil {
		s.errorPage(w, http.StatusNotFound, "Unknown vendor", "There is no vendor called “"+r.PathValue("vendor")+"”. Known vendors: "+s.vendorList()+".", "/", "Back to connections")
		return
	}
	m := redirectMethod(p, r.PostFormValue("method"))
	if m == nil {
		s.errorPage(w, http.StatusBadRequest, "Unknown method", p.Title()+" has no enabled sign-in method called “"+r.PostFormValue("method")+"”. Available: "+methodNames(p)+".", "/", "Back to connections")
		return
	}
	if u := s.wrongHost(r); u != "" {
		s.errorPage(w, http.StatusBadRequest, "Open the exporter at its external URL", s.wrongHostMessage(r), s.o.ExternalURL+"/", "Open "+s.o.ExternalURL+"/")
		return
	}
	t := target{Name: r.PostFormValue("name"), Reconnect: r.PostFormValue("reconnect")}
	ctx, cancel := s.contextOf(r)
	defer cancel()
	if err := s.checkTarget(ctx, p, t); err != nil {
		f := asFailure(err)
		s.errorPage(w, f.Status, "Cannot connect "+p.Title(), f.Msg, "/", "Back to connections")
		return
	}
	u, err := s.startFlow(w, p, m, t)
	if err != nil {
		f := asFailure(err)
		s.errorPage(w, f.Status, "Cannot connect "+p.Title(), f.Msg, "/", "Back to connections")
		return
	}
	http.Redirect(w, r, u, http.StatusFound)
}

// callback is where the vendor sends the browser back. Every refusal is a
// 400 page that says what happened; the flow cookie is cleared either way.
func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	vendor := r.PathValue("vendor")
	p := s.provider(vendor)
	cookie, cerr := r.Cookie(flowCookie)
	// The cookie is cleared only once the flow is consumed or unusable: a
	// forged callback (another site can navigate this browser here) must
	// neither burn nor drop the flow the real callback needs.
	clearFlow := func() { s.clearCookie(w, flowCookie, "/") }
	again, againText := "/", "Start again from the connections page"
	refuse := func(title, msg, detail string) {
		s.log.Info("connection callback refused", "vendor", vendor, "reason", title)
		s.render(w, http.StatusBadRequest, "error.html", errorData{base: base{Title: title}, Status: http.StatusBadRequest, Message: msg, Detail: detail, Link: again, LinkText: againText})
	}
	if p == nil {
		refuse("Unknown vendor", "This exporter has no vendor called “"+vendor+"”, so this callback cannot be for it.", "")
		return
	}
	if cerr != nil {
		refuse("No connection in progress", "This browser has no record of starting to connect "+p.Title()+": the link was opened in another browser, cookies are blocked, or this connection was already completed (each callback link works once). If the connection is not listed, start again.", "")
		return
	}
	f, err := s.openFlow(cookie.Value)
	if err != nil {
		clearFlow()
		refuse("Invalid sign-in cookie", "The cookie of this connection attempt is not valid: it was changed, or it was made by a server with a different signing key. Start again.", "")
		return
	}
	if f.Invite != "" {
		again, againText = "/invite/"+s.inviteToken(f.Invite), "Start again from the invite page"
	}
	if !s.now().Before(time.Unix(f.Expires, 0)) {
		clearFlow()
		refuse("Connection attempt expired", "More than 10 minutes passed between starting to connect "+p.Title()+" and coming back. Nothing was stored; start again.", "")
		return
	}
	if f.Vendor != vendor {
		other := f.Vendor
		if op := s.provider(f.Vendor); op != nil {
			other = op.Title()
		}
		refuse("Wrong vendor", "This browser started connecting "+other+", but came back to the "+p.Title()+" callback. Nothing was stored; start again.", "")
		return
	}
	// Every input is checked before the flow is consumed, and state is
	// required: without it any page could finish this browser's flow
	// with an account of its choosing.
	q := r.URL.Query()
	if !q.Has("state") {
		refuse("Callback without state", "This callback carries no state, so it cannot be tied to the connection this browser started. Nothing was stored, and the connection attempt this browser started is still open: finish it on "+p.Title()+"'s page, or start again.", "")
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		refuse("Forged or mixed-up callback", "The state in this callback does not match the connection this browser started, so it was not meant for this browser. Nothing was stored, and the connection attempt this browser started is still open: finish it on "+p.Title()+"'s page, or start again.", "")
		return
	}
	ctx, cancel := s.contextOf(r)
	defer cancel()
	first, err := s.o.Store.UseOnce(ctx, "flow:"+f.State, time.Unix(f.Expires, 0))
	if err != nil {
		s.log.Error("recording flow state", "vendor", vendor, "err", err)
		fl := asFailure(err)
		s.render(w, fl.Status, "error.html", errorData{base: base{Title: "Store unavailable"}, Status: fl.Status, Message: fl.Msg, Link: again, LinkText: againText})
		return
	}
	clearFlow()
	if !first {
		refuse("Callback already used", "This callback link was already used; each one works once. Nothing was changed. If the connection is not listed, start again.", "")
		return
	}
	if e := q.Get("error"); e != "" {
		detail := "error: " + clip(e)
		if d := q.Get("error_description"); d != "" {
			detail += " — " + clip(d)
		}
		refuse(p.Title()+" did not grant access", p.Title()+" reported that access was not granted (for example, consent was denied). Nothing was stored. Its answer was:", detail)
		return
	}
	m := redirectMethod(p, f.Method)
	if m == nil {
		refuse("Method not available", p.Title()+" sign-in method “"+f.Method+"” is no longer enabled on this exporter. Nothing was stored.", "")
		return
	}
	t := target{Name: f.Name, Reconnect: f.Reconnect, Invite: f.Invite}
	if t.Invite != "" {
		if _, err := s.usableInvite(ctx, t.Invite); err != nil {
			fl := asFailure(err)
			s.render(w, fl.Status, "error.html", errorData{base: base{Title: "Invite not usable"}, Status: fl.Status, Message: fl.Msg})
			return
		}
	}
	var red redactor
	red.add(f.State, f.Verifier)
	for _, vs := range q {
		red.add(vs...)
	}
	cred, err := s.guard(p, red, func() (*provider.Credential, error) {
		return m.Finish(ctx, s.client(vendor), s.providerFlow(f), q)
	})
	if err != nil {
		fl := s.vendorFailure(p, err, red)
		refuse("Could not connect "+p.Title(), fl.Msg, "")
		return
	}
	res, err := s.save(ctx, p, m.Name(), cred, t)
	if err != nil {
		fl := asFailure(err)
		s.render(w, fl.Status, "error.html", errorData{base: base{Title: "Could not connect " + p.Title()}, Status: fl.Status, Message: fl.Msg, Link: again, LinkText: againText})
		return
	}
	// 303 to a clean URL, so callback parameters leave the address bar.
	if t.Invite != "" {
		http.Redirect(w, r, inviteDoneURL(res), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/?msg="+res.Kind+"&name="+url.QueryEscape(res.Conn.Name), http.StatusSeeOther)
}

// clip bounds vendor-provided text shown on a page.
func clip(s string) string {
	r := []rune(s)
	if len(r) > 300 {
		return string(r[:300]) + "…"
	}
	return s
}

func authorizeURL(m provider.RedirectMethod, f provider.Flow) (u string, err error) {
	defer func() {
		if v := recover(); v != nil {
			u, err = "", fmt.Errorf("the provider failed unexpectedly: %v", v)
		}
	}()
	return m.AuthorizeURL(f)
}
