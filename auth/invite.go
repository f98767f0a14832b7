package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

func (s *Server) inviteURL(id string) string {
	return s.o.ExternalURL + "/invite/" + s.inviteToken(id)
}

func (s *Server) inviteStatus(inv store.Invite) string {
	switch {
	case inv.Revoked:
		return "revoked"
	case !inv.Used.IsZero():
		return "used"
	case !s.now().Before(inv.Expires):
		return "expired"
	}
	return "pending"
}

// inviteProblem says why inv cannot be used, or returns nil.
func (s *Server) inviteProblem(inv store.Invite) *failure {
	switch s.inviteStatus(inv) {
	case "revoked":
		return fail(http.StatusGone, "This invite was revoked by an administrator. Ask them for a new link.")
	case "used":
		return fail(http.StatusGone, "This invite was already used on %s. Invite links work once; ask the administrator for a new link if you need to connect again.", inv.Used.UTC().Format("2006-01-02 15:04 UTC"))
	case "expired":
		return fail(http.StatusGone, "This invite expired on %s. Ask the administrator for a new link.", inv.Expires.UTC().Format("2006-01-02 15:04 UTC"))
	}
	return nil
}

// usableInvite loads an invite and checks that it can still be used.
func (s *Server) usableInvite(ctx context.Context, id string) (store.Invite, error) {
	inv, err := s.o.Store.GetInvite(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return inv, fail(http.StatusNotFound, "This invite does not exist (it may have been deleted). Ask the administrator for a new link.")
	}
	if err != nil {
		return inv, err
	}
	if f := s.inviteProblem(inv); f != nil {
		return inv, f
	}
	return inv, nil
}

// resolveInvite checks an invite token from a URL.
func (s *Server) resolveInvite(ctx context.Context, tok string) (store.Invite, provider.Provider, error) {
	id, ok := s.inviteID(tok)
	if !ok {
		return store.Invite{}, nil, fail(http.StatusForbidden, "This invite link is not valid: it was changed or cut off. Check that you copied the whole link, or ask the administrator for a new one.")
	}
	inv, err := s.usableInvite(ctx, id)
	if err != nil {
		return inv, nil, err
	}
	p := s.provider(inv.Vendor)
	if p == nil {
		return inv, nil, fail(http.StatusNotFound, "This invite is for a vendor this exporter no longer supports. Ask the administrator for a new link.")
	}
	return inv, p, nil
}

// createInvite makes an invite for a new connection (name) or to reconnect
// an existing one (connID).
func (s *Server) createInvite(ctx context.Context, vendor, name, connID string, ttl time.Duration) (store.Invite, error) {
	if connID != "" {
		c, err := s.o.Store.Get(ctx, connID)
		if errors.Is(err, store.ErrNotFound) {
			return store.Invite{}, fail(http.StatusNotFound, "There is no connection with id %s.", connID)
		}
		if err != nil {
			return store.Invite{}, err
		}
		if vendor != "" && vendor != c.Vendor {
			return store.Invite{}, fail(http.StatusBadRequest, "Connection %s is a %s connection, not %s.", connID, c.Vendor, vendor)
		}
		if name != "" && name != c.Name {
			return store.Invite{}, fail(http.StatusBadRequest, "Connection %s is called “%s”; leave the name out to reconnect it.", connID, c.Name)
		}
		vendor, name = c.Vendor, c.Name
	}
	if vendor == "" {
		return store.Invite{}, fail(http.StatusBadRequest, "vendor is required (known: %s).", s.vendorList())
	}
	p := s.provider(vendor)
	if p == nil {
		return store.Invite{}, fail(http.StatusBadRequest, "Unknown vendor “%s” (known: %s).", vendor, s.vendorList())
	}
	if !usable(p) {
		return store.Invite{}, fail(http.StatusBadRequest, "%s has no sign-in method configured, so an invite could not be used.", p.Title())
	}
	if ttl == 0 {
		ttl = s.o.InviteTTL
	}
	if ttl < time.Minute || ttl > maxInviteTTL {
		return store.Invite{}, fail(http.StatusBadRequest, "expires_in must be between 1m and %s.", maxInviteTTL)
	}
	if connID == "" {
		if err := s.checkTarget(ctx, p, target{Name: name}); err != nil {
			return store.Invite{}, err
		}
	}
	now := s.now()
	inv := store.Invite{ID: newID(), Vendor: vendor, Name: name, Created: now, Expires: now.Add(ttl), ConnectionID: connID}
	if err := s.o.Store.PutInvite(ctx, inv); err != nil {
		return store.Invite{}, err
	}
	s.log.Info("invite created", "vendor", vendor, "name", name, "invite", inv.ID, "reconnect", connID, "expires", inv.Expires)
	return inv, nil
}

func (s *Server) revokeInvite(ctx context.Context, id string) (store.Invite, error) {
	inv, err := s.o.Store.GetInvite(ctx, id)
	if err != nil {
		return inv, err
	}
	inv.Revoked = true
	if err := s.o.Store.PutInvite(ctx, inv); err != nil {
		return inv, err
	}
	s.log.Info("invite revoked", "vendor", inv.Vendor, "name", inv.Name, "invite", inv.ID)
	return inv, nil
}

// inviteCreateSubmit is the connections page's Invite buttons.
func (s *Server) inviteCreateSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	var ttl time.Duration
	if v := r.PostFormValue("expires_in"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errorPage(w, http.StatusBadRequest, "Cannot create invite", "The expiry must be a duration such as 72h.", "/", "Back to connections")
			return
		}
		ttl = d
	}
	inv, err := s.createInvite(r.Context(), r.PostFormValue("vendor"), r.PostFormValue("name"), r.PostFormValue("connection_id"), ttl)
	if err != nil {
		f := asFailure(err)
		s.errorPage(w, f.Status, "Cannot create invite", f.Msg, "/", "Back to connections")
		return
	}
	http.Redirect(w, r, "/?msg=invite_created&name="+url.QueryEscape(inv.Name)+"#invites", http.StatusSeeOther)
}

func (s *Server) inviteRevokeSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	if _, err := s.revokeInvite(r.Context(), r.PathValue("id")); err != nil {
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

func (s *Server) inviteFailPage(w http.ResponseWriter, err error) {
	f := asFailure(err)
	s.render(w, f.Status, "error.html", errorData{base: base{Title: "Invite not usable"}, Status: f.Status, Message: f.Msg})
}

func (s *Server) renderInvite(w http.ResponseWriter, r *http.Request, status int, tok string, inv store.Invite, p provider.Provider, errMethod string, errView *formView) {
	d := inviteData{base: base{Title: "Connect " + p.Title(), CSRF: s.csrfToken("invite", tok)}, VendorTitle: p.Title(), Name: inv.Name, Reconnect: inv.ConnectionID != "",
		Action: "/invite/" + tok, StartAction: "/invite/" + tok + "/start"}
	if u := s.wrongHost(r); u != "" {
		d.Warn, d.WarnLink = s.wrongHostMessage(r), u
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

func (s *Server) invitePage(w http.ResponseWriter, r *http.Request) {
	tok := r.PathValue("token")
	inv, p, err := s.resolveInvite(r.Context(), tok)
	if err != nil {
		s.inviteFailPage(w, err)
		return
	}
	s.renderInvite(w, r, http.StatusOK, tok, inv, p, "", nil)
}

// invitePost parses an invite form and checks its token and CSRF.
func (s *Server) invitePost(w http.ResponseWriter, r *http.Request) (string, store.Invite, provider.Provider, bool) {
	tok := r.PathValue("token")
	if !s.parseForm(w, r) {
		return "", store.Invite{}, nil, false
	}
	if !s.csrfValid("invite", tok, r.PostFormValue(csrfField)) {
		s.errorPage(w, http.StatusForbidden, "Form expired", csrfMessage, "/invite/"+tok, "Reload the invite")
		return "", store.Invite{}, nil, false
	}
	inv, p, err := s.resolveInvite(r.Context(), tok)
	if err != nil {
		s.inviteFailPage(w, err)
		return "", store.Invite{}, nil, false
	}
	return tok, inv, p, true
}

func (s *Server) inviteSubmit(w http.ResponseWriter, r *http.Request) {
	tok, inv, p, ok := s.invitePost(w, r)
	if !ok {
		return
	}
	m := formMethod(p, r.PostFormValue("method"))
	if m == nil || r.PostFormValue("method") == "" {
		s.errorPage(w, http.StatusBadRequest, "Unknown method", p.Title()+" has no form sign-in method called “"+r.PostFormValue("method")+"”.", "/invite/"+tok, "Back to the invite")
		return
	}
	t := target{Name: inv.Name, Reconnect: inv.ConnectionID, Invite: inv.ID}
	res, err := s.connectForm(r, p, m, t, r.PostFormValue)
	if err != nil {
		f := asFailure(err)
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
	http.Redirect(w, r, inviteDoneURL(res), http.StatusSeeOther)
}

// inviteDoneURL is where an invitee lands; it says when the credential
// went to an account that was already connected under another name.
func inviteDoneURL(res saved) string {
	if res.Kind == "updated" {
		return "/invite/done?msg=updated&name=" + url.QueryEscape(res.Conn.Name)
	}
	return "/invite/done"
}

func (s *Server) inviteStart(w http.ResponseWriter, r *http.Request) {
	tok, inv, p, ok := s.invitePost(w, r)
	if !ok {
		return
	}
	m := redirectMethod(p, r.PostFormValue("method"))
	if m == nil || r.PostFormValue("method") == "" {
		s.errorPage(w, http.StatusBadRequest, "Unknown method", p.Title()+" has no enabled sign-in method called “"+r.PostFormValue("method")+"”.", "/invite/"+tok, "Back to the invite")
		return
	}
	if u := s.wrongHost(r); u != "" {
		s.errorPage(w, http.StatusBadRequest, "Open the invite at the exporter's external URL", s.wrongHostMessage(r), s.o.ExternalURL+"/invite/"+tok, "Open the invite at "+s.o.ExternalURL)
		return
	}
	t := target{Name: inv.Name, Reconnect: inv.ConnectionID, Invite: inv.ID}
	ctx, cancel := s.contextOf(r)
	defer cancel()
	err := s.checkTarget(ctx, p, t)
	var u string
	if err == nil {
		u, err = s.startFlow(w, p, m, t)
	}
	if err != nil {
		f := asFailure(err)
		s.errorPage(w, f.Status, "Cannot connect "+p.Title(), f.Msg, "/invite/"+tok, "Back to the invite")
		return
	}
	http.Redirect(w, r, u, http.StatusFound)
}

func (s *Server) inviteDone(w http.ResponseWriter, r *http.Request) {
	b := base{Title: "Connected"}
	if q := r.URL.Query(); q.Get("msg") == "updated" {
		b.Flash = flashText("updated", q.Get("name"))
	}
	s.render(w, http.StatusOK, "done.html", b)
}
