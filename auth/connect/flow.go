package connect

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/session"
	"github.com/saas-exporter/saas_exporter/provider"
)

// FlowState is the content of the saas_flow cookie: which flow this
// browser started. It is sealed (see session.Manager.Seal), so the PKCE
// verifier never leaves the server in clear.
type FlowState struct {
	Vendor    string `json:"v"`
	Method    string `json:"m"`
	State     string `json:"s"`
	Verifier  string `json:"pk"`
	Name      string `json:"n,omitempty"`
	Reconnect string `json:"r,omitempty"`
	Invite    string `json:"i,omitempty"`
	Expires   int64  `json:"e"`
}

// SealFlow is the flow cookie's value for f.
func (s *Service) SealFlow(f FlowState) string {
	b, _ := json.Marshal(f)
	return s.c.Sessions.Seal(session.FlowCookie, b)
}

var errFlowForged = errors.New("forged")

// OpenFlow reads a flow cookie made by SealFlow.
func (s *Service) OpenFlow(v string) (FlowState, error) {
	var f FlowState
	b, ok := s.c.Sessions.Open(session.FlowCookie, v)
	if !ok || json.Unmarshal(b, &f) != nil || f.State == "" {
		return f, errFlowForged
	}
	return f, nil
}

// StartFlow begins a redirect flow for this browser: it sets the flow
// cookie and returns where to send the browser.
func (s *Service) StartFlow(w http.ResponseWriter, p provider.Provider, m provider.RedirectMethod, t Target) (string, error) {
	now := s.c.Now()
	f := FlowState{
		Vendor:    p.Vendor(),
		Method:    m.Name(),
		State:     session.RandomToken(32),
		Verifier:  session.RandomToken(32), // 43 characters, RFC 7636
		Name:      t.Name,
		Reconnect: t.Reconnect,
		Invite:    t.Invite,
		Expires:   now.Add(FlowTTL).Unix(),
	}
	u, err := authorizeURL(m, s.providerFlow(f))
	if err == nil {
		var pu *url.URL
		if pu, err = url.Parse(u); err == nil && (pu.Scheme != "http" && pu.Scheme != "https" || pu.Host == "") {
			err = errors.New("not an absolute http(s) URL")
		}
	}
	if err != nil {
		s.c.Log.Error("building the authorize URL", "vendor", p.Vendor(), "method", m.Name(), "err", err)
		return "", Fail(http.StatusServiceUnavailable, "Could not start connecting %s (%s): %v. Check the vendor's configuration.", p.Title(), m.Title(), err)
	}
	s.c.Sessions.SetCookie(w, session.FlowCookie, s.SealFlow(f), "/", time.Unix(f.Expires, 0))
	s.c.Log.Info("connection flow started", "vendor", p.Vendor(), "method", m.Name(), "name", t.Name, "reconnect", t.Reconnect, "invite", t.Invite)
	return u, nil
}

func (s *Service) providerFlow(f FlowState) provider.Flow {
	return provider.Flow{State: f.State, Verifier: f.Verifier, RedirectURL: s.c.ExternalURL + "/connect/" + f.Vendor + "/callback"}
}

// Outcome is how a callback ends: a redirect to a clean URL, or a page
// saying what went wrong and where to go next.
type Outcome struct {
	Redirect string // set on success
	Status   int
	Title    string
	Message  string
	Detail   string // vendor-provided text, shown as plain text
	Link     string
	LinkText string
}

// Callback handles the request where the vendor sends the browser back.
// It clears the flow cookie once the flow is consumed or unusable and
// returns what to show; every refusal is a 400 that says what happened.
func (s *Service) Callback(w http.ResponseWriter, r *http.Request) Outcome {
	vendor := r.PathValue("vendor")
	p := s.Provider(vendor)
	cookie, cerr := r.Cookie(session.FlowCookie)
	// The cookie is cleared only once the flow is consumed or unusable: a
	// forged callback (another site can navigate this browser here) must
	// neither burn nor drop the flow the real callback needs.
	clearFlow := func() { s.c.Sessions.ClearCookie(w, session.FlowCookie, "/") }
	again, againText := "/", "Start again from the connections page"
	refuse := func(title, msg, detail string) Outcome {
		s.c.Log.Info("connection callback refused", "vendor", vendor, "reason", title)
		return Outcome{Status: http.StatusBadRequest, Title: title, Message: msg, Detail: detail, Link: again, LinkText: againText}
	}
	if p == nil {
		return refuse("Unknown vendor", "This exporter has no vendor called “"+vendor+"”, so this callback cannot be for it.", "")
	}
	if cerr != nil {
		return refuse("No connection in progress", "This browser has no record of starting to connect "+p.Title()+": the link was opened in another browser, cookies are blocked, or this connection was already completed (each callback link works once). If the connection is not listed, start again.", "")
	}
	f, err := s.OpenFlow(cookie.Value)
	if err != nil {
		clearFlow()
		return refuse("Invalid sign-in cookie", "The cookie of this connection attempt is not valid: it was changed, or it was made by a server with a different signing key. Start again.", "")
	}
	if f.Invite != "" {
		again, againText = "/invite/"+s.c.Sessions.InviteToken(f.Invite), "Start again from the invite page"
	}
	if !s.c.Now().Before(time.Unix(f.Expires, 0)) {
		clearFlow()
		return refuse("Connection attempt expired", "More than 10 minutes passed between starting to connect "+p.Title()+" and coming back. Nothing was stored; start again.", "")
	}
	if f.Vendor != vendor {
		other := f.Vendor
		if op := s.Provider(f.Vendor); op != nil {
			other = op.Title()
		}
		return refuse("Wrong vendor", "This browser started connecting "+other+", but came back to the "+p.Title()+" callback. Nothing was stored; start again.", "")
	}
	// Every input is checked before the flow is consumed, and state is
	// required: without it any page could finish this browser's flow
	// with an account of its choosing.
	q := r.URL.Query()
	if !q.Has("state") {
		return refuse("Callback without state", "This callback carries no state, so it cannot be tied to the connection this browser started. Nothing was stored, and the connection attempt this browser started is still open: finish it on "+p.Title()+"'s page, or start again.", "")
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		return refuse("Forged or mixed-up callback", "The state in this callback does not match the connection this browser started, so it was not meant for this browser. Nothing was stored, and the connection attempt this browser started is still open: finish it on "+p.Title()+"'s page, or start again.", "")
	}
	ctx, cancel := ContextOf(r)
	defer cancel()
	first, err := s.c.Store.UseOnce(ctx, "flow:"+f.State, time.Unix(f.Expires, 0))
	if err != nil {
		s.c.Log.Error("recording flow state", "vendor", vendor, "err", err)
		fl := AsFailure(err)
		return Outcome{Status: fl.Status, Title: "Store unavailable", Message: fl.Msg, Link: again, LinkText: againText}
	}
	clearFlow()
	if !first {
		return refuse("Callback already used", "This callback link was already used; each one works once. Nothing was changed. If the connection is not listed, start again.", "")
	}
	if e := q.Get("error"); e != "" {
		detail := "error: " + clip(e)
		if d := q.Get("error_description"); d != "" {
			detail += " — " + clip(d)
		}
		return refuse(p.Title()+" did not grant access", p.Title()+" reported that access was not granted (for example, consent was denied). Nothing was stored. Its answer was:", detail)
	}
	m := RedirectMethod(p, f.Method)
	if m == nil {
		return refuse("Method not available", p.Title()+" sign-in method “"+f.Method+"” is no longer enabled on this exporter. Nothing was stored.", "")
	}
	t := Target{Name: f.Name, Reconnect: f.Reconnect, Invite: f.Invite}
	if t.Invite != "" {
		if _, err := s.UsableInvite(ctx, t.Invite); err != nil {
			fl := AsFailure(err)
			return Outcome{Status: fl.Status, Title: "Invite not usable", Message: fl.Msg}
		}
	}
	var red redactor
	red.add(f.State, f.Verifier)
	for _, vs := range q {
		red.add(vs...)
	}
	cred, err := s.guard(p, red, func() (*provider.Credential, error) {
		return m.Finish(ctx, s.c.Client(vendor), s.providerFlow(f), q)
	})
	if err != nil {
		fl := s.vendorFailure(p, err, red)
		return refuse("Could not connect "+p.Title(), fl.Msg, "")
	}
	res, err := s.Save(ctx, p, m.Name(), cred, t)
	if err != nil {
		fl := AsFailure(err)
		return Outcome{Status: fl.Status, Title: "Could not connect " + p.Title(), Message: fl.Msg, Link: again, LinkText: againText}
	}
	// 303 to a clean URL, so callback parameters leave the address bar.
	if t.Invite != "" {
		return Outcome{Redirect: InviteDoneURL(res)}
	}
	return Outcome{Redirect: "/?msg=" + res.Kind + "&name=" + url.QueryEscape(res.Conn.Name)}
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
