package ui

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/connect"
	"github.com/saas-exporter/saas_exporter/auth/session"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// inviteCreateSubmit is the connections page's Invite buttons.
func (s *Pages) inviteCreateSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	var ttl time.Duration
	if v := r.PostFormValue("expires_in"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errorPage(w, http.StatusBadRequest, "Cannot create invite", "The expiry must be a duration such as 72h.", "/", "Back to connections")
			return
		}
		ttl = d
	}
	inv, err := s.c.Connect.CreateInvite(r.Context(), r.PostFormValue("vendor"), r.PostFormValue("name"), r.PostFormValue("connection_id"), ttl)
	if err != nil {
		f := connect.AsFailure(err)
		s.errorPage(w, f.Status, "Cannot create invite", f.Msg, "/", "Back to connections")
		return
	}
	http.Redirect(w, r, "/?msg=invite_created&name="+url.QueryEscape(inv.Name)+"#invites", http.StatusSeeOther)
}

func (s *Pages) inviteRevokeSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	if _, err := s.c.Connect.RevokeInvite(r.Context(), r.PathValue("id")); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.errorPage(w, http.StatusNotFound, "No such invite", "This invite does not exist.", "/", "Back to connections")
			return
		}
		s.storeErrorPage(w, err)
		return
	}
	http.Redirect(w, r, "/?msg=invite_revoked#invites", http.StatusSeeOther)
}

type inviteData struct {
	base
	VendorTitle string
	Name        string
	Reconnect   bool
	Action      string
	StartAction string
	Forms       []formView
	Redirects   []methodView
}

func (s *Pages) inviteFailPage(w http.ResponseWriter, err error) {
	f := connect.AsFailure(err)
	s.render(w, f.Status, "error.html", errorData{base: base{Title: "Invite not usable"}, Status: f.Status, Message: f.Msg})
}

func (s *Pages) renderInvite(w http.ResponseWriter, r *http.Request, status int, tok string, inv store.Invite, p provider.Provider, errMethod string, errView *formView) {
	d := inviteData{base: base{Title: "Connect " + p.Title(), CSRF: s.c.Sessions.CSRFToken("invite", tok)}, VendorTitle: p.Title(), Name: inv.Name, Reconnect: inv.ConnectionID != "",
		Action: "/invite/" + tok, StartAction: "/invite/" + tok + "/start"}
	if u := s.c.Connect.WrongHost(r); u != "" {
		d.Warn, d.WarnLink = s.c.Connect.WrongHostMessage(r), u
	}
	for _, m := range p.Methods() {
		switch m := m.(type) {
		case provider.FormMethod:
			if errView != nil && m.Name() == errMethod {
				d.Forms = append(d.Forms, *errView)
			} else {
				d.Forms = append(d.Forms, formView{Method: m.Name(), MethodTitle: m.Title(), Fields: fieldViews(m, nil, "")})
			}
		case provider.RedirectMethod:
			if m.Enabled() {
				d.Redirects = append(d.Redirects, methodView{Name: m.Name(), Title: m.Title()})
			}
		}
	}
	for i := range d.Forms {
		d.Forms[i].IDPrefix = "f-" + d.Forms[i].Method + "-" // one page, several forms
	}
	s.render(w, status, "invite.html", d)
}

func (s *Pages) invitePage(w http.ResponseWriter, r *http.Request) {
	tok := r.PathValue("token")
	inv, p, err := s.c.Connect.ResolveInvite(r.Context(), tok)
	if err != nil {
		s.inviteFailPage(w, err)
		return
	}
	s.renderInvite(w, r, http.StatusOK, tok, inv, p, "", nil)
}

// invitePost parses an invite form and checks its token and CSRF.
func (s *Pages) invitePost(w http.ResponseWriter, r *http.Request) (string, store.Invite, provider.Provider, bool) {
	tok := r.PathValue("token")
	if !s.parseForm(w, r) {
		return "", store.Invite{}, nil, false
	}
	if !s.c.Sessions.CSRFValid("invite", tok, r.PostFormValue(session.CSRFField)) {
		s.errorPage(w, http.StatusForbidden, "Form expired", session.CSRFMessage, "/invite/"+tok, "Reload the invite")
		return "", store.Invite{}, nil, false
	}
	inv, p, err := s.c.Connect.ResolveInvite(r.Context(), tok)
	if err != nil {
		s.inviteFailPage(w, err)
		return "", store.Invite{}, nil, false
	}
	return tok, inv, p, true
}

func (s *Pages) inviteSubmit(w http.ResponseWriter, r *http.Request) {
	tok, inv, p, ok := s.invitePost(w, r)
	if !ok {
		return
	}
	m := connect.FormMethod(p, r.PostFormValue("method"))
	if m == nil || r.PostFormValue("method") == "" {
		s.errorPage(w, http.StatusBadRequest, "Unknown method", p.Title()+" has no form sign-in method called “"+r.PostFormValue("method")+"”.", "/invite/"+tok, "Back to the invite")
		return
	}
	t := connect.Target{Name: inv.Name, Reconnect: inv.ConnectionID, Invite: inv.ID}
	res, err := s.c.Connect.ConnectForm(r, p, m, t, r.PostFormValue)
	if err != nil {
		f := connect.AsFailure(err)
		if f.Status == http.StatusGone || f.Status == http.StatusNotFound {
			s.inviteFailPage(w, f)
			return
		}
		submitted := map[string]string{}
		for _, fl := range m.Fields() {
			submitted[fl.Name] = r.PostFormValue(fl.Name)
		}
		v := formView{Method: m.Name(), MethodTitle: m.Title(), Fields: fieldViews(m, submitted, f.Field), Error: f.Msg}
		s.renderInvite(w, r, f.Status, tok, inv, p, m.Name(), &v)
		return
	}
	http.Redirect(w, r, connect.InviteDoneURL(res), http.StatusSeeOther)
}

func (s *Pages) inviteStart(w http.ResponseWriter, r *http.Request) {
	tok, inv, p, ok := s.invitePost(w, r)
	if !ok {
		return
	}
	m := connect.RedirectMethod(p, r.PostFormValue("method"))
	if m == nil || r.PostFormValue("method") == "" {
		s.errorPage(w, http.StatusBadRequest, "Unknown method", p.Title()+" has no enabled sign-in method called “"+r.PostFormValue("method")+"”.", "/invite/"+tok, "Back to the invite")
		return
	}
	if u := s.c.Connect.WrongHost(r); u != "" {
		s.errorPage(w, http.StatusBadRequest, "Open the invite at the exporter's external URL", s.c.Connect.WrongHostMessage(r), s.c.ExternalURL+"/invite/"+tok, "Open the invite at "+s.c.ExternalURL)
		return
	}
	t := connect.Target{Name: inv.Name, Reconnect: inv.ConnectionID, Invite: inv.ID}
	ctx, cancel := connect.ContextOf(r)
	defer cancel()
	err := s.c.Connect.CheckTarget(ctx, p, t)
	var u string
	if err == nil {
		u, err = s.c.Connect.StartFlow(w, p, m, t)
	}
	if err != nil {
		f := connect.AsFailure(err)
		s.errorPage(w, f.Status, "Cannot connect "+p.Title(), f.Msg, "/invite/"+tok, "Back to the invite")
		return
	}
	http.Redirect(w, r, u, http.StatusFound)
}

func (s *Pages) inviteDone(w http.ResponseWriter, r *http.Request) {
	b := base{Title: "Connected"}
	if q := r.URL.Query(); q.Get("msg") == "updated" {
		b.Flash = flashText("updated", q.Get("name"))
	}
	s.render(w, http.StatusOK, "done.html", b)
}
