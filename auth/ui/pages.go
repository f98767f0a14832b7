package ui

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/saas-exporter/saas_exporter/auth/connect"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

type connRow struct {
	store.Connection
	Title      string
	StateClass string
	// Reconnect, when set, is how to reconnect: a link to a form
	// (ReconnectURL) or a button starting a redirect flow (ReconnectMethod).
	Reconnect       bool
	ReconnectURL    string
	ReconnectMethod string
	// Broken: the credential needs a person (expired, revoked, error), so
	// Reconnect is the primary action.
	Broken bool
	// CanInvite: the vendor has a usable method, so an invite can work.
	CanInvite bool
	// BudgetInfo is the budget form's content; nil for a vendor without a
	// billing unit.
	BudgetInfo  *connect.Budget
	BudgetValue string
}

type methodView struct {
	Name, Title, URL string
}

type vendorSection struct {
	Vendor, Title string
	Forms         []methodView
	Redirects     []methodView
	Disabled      []methodView // redirect methods without configuration
	CanInvite     bool
}

type inviteRow struct {
	store.Invite
	Title  string
	Status string
	URL    string // only while the invite can be used
	// UsedFor names the connection a used invite went to, Note says why
	// it is not the one the invite named.
	UsedFor, Note string
}

type connectionsData struct {
	base
	Conns   []connRow
	Vendors []vendorSection
	Invites []inviteRow
}

func (s *Pages) connectionsPage(w http.ResponseWriter, r *http.Request, a adminCtx) {
	ctx := r.Context()
	conns, err := s.c.Store.List(ctx)
	if err != nil {
		s.storeErrorPage(w, err)
		return
	}
	invites, err := s.c.Store.ListInvites(ctx)
	if err != nil {
		s.storeErrorPage(w, err)
		return
	}
	q := r.URL.Query()
	d := connectionsData{base: base{Title: "Connections", User: a.User, CSRF: a.CSRF, Flash: flashText(q.Get("msg"), q.Get("name"))}}
	if u := s.c.Connect.WrongHost(r); u != "" {
		d.Warn, d.WarnLink = s.c.Connect.WrongHostMessage(r), u
	}
	for _, c := range conns {
		c = s.c.Connect.Live(c)
		row := connRow{Connection: c, Title: s.c.Connect.Title(c.Vendor), StateClass: stateClass(c.State), BudgetInfo: s.c.Connect.BudgetView(c)}
		if c.Budget != nil {
			row.BudgetValue = connect.FmtBudget(*c.Budget)
		}
		if p := s.c.Connect.Provider(c.Vendor); p != nil {
			row.CanInvite = connect.Usable(p)
		}
		row.ReconnectURL, row.ReconnectMethod, row.Reconnect = s.c.Connect.ReconnectOf(c)
		row.Broken = c.State == store.StateExpired || c.State == store.StateRevoked || c.State == store.StateError
		d.Conns = append(d.Conns, row)
	}
	for _, p := range s.c.Providers {
		sec := vendorSection{Vendor: p.Vendor(), Title: p.Title()}
		for _, m := range p.Methods() {
			switch m := m.(type) {
			case provider.FormMethod:
				sec.Forms = append(sec.Forms, methodView{Name: m.Name(), Title: m.Title(), URL: "/connect/" + p.Vendor() + "?method=" + url.QueryEscape(m.Name())})
			case provider.RedirectMethod:
				if m.Enabled() {
					sec.Redirects = append(sec.Redirects, methodView{Name: m.Name(), Title: m.Title()})
				} else {
					sec.Disabled = append(sec.Disabled, methodView{Name: m.Name(), Title: m.Title()})
				}
			}
		}
		sec.CanInvite = connect.Usable(p)
		d.Vendors = append(d.Vendors, sec)
	}
	names := map[string]string{}
	for _, c := range conns {
		names[c.ID] = c.Name
	}
	done := 0
	for _, inv := range invites {
		row := inviteRow{Invite: inv, Title: s.c.Connect.Title(inv.Vendor), Status: s.c.Connect.InviteStatus(inv)}
		if name, ok := names[inv.ConnectionID]; ok && row.Status == "used" {
			row.UsedFor = name
			if name != inv.Name {
				row.Note = "The invitee's account was already connected as “" + name + "”: its credential was replaced; no connection “" + inv.Name + "” was made."
			}
		}
		if row.Status == "pending" {
			row.URL = s.c.Connect.InviteURL(inv.ID)
		} else if done++; done > 20 {
			continue // old invites: the API lists them all
		}
		d.Invites = append(d.Invites, row)
	}
	s.render(w, http.StatusOK, "connections.html", d)
}

func (s *Pages) storeErrorPage(w http.ResponseWriter, err error) {
	s.c.Log.Error("store", "err", err)
	f := connect.AsFailure(err)
	s.errorPage(w, f.Status, "Store unavailable", f.Msg, "/", "Try again")
}

type fieldView struct {
	provider.Field
	Value string // never set for secret fields
	Error bool
}

type formView struct {
	Method, MethodTitle string
	Fields              []fieldView
	Error               string
	// IDPrefix starts the inputs' ids, unique per form of a page.
	IDPrefix string
}

type formData struct {
	base
	Action      string
	VendorTitle string
	Form        formView
	// ShowName asks for a connection name (new admin connections).
	ShowName      bool
	Name          string
	NameError     bool
	Reconnect     string
	ReconnectName string
}

// fieldViews prepares m's inputs; secret values are never filled in again.
func fieldViews(m provider.FormMethod, values map[string]string, errField string) []fieldView {
	var fs []fieldView
	for _, f := range m.Fields() {
		v := fieldView{Field: f, Error: errField == f.Name}
		if !f.Secret {
			v.Value = values[f.Name]
		}
		fs = append(fs, v)
	}
	return fs
}

func (s *Pages) formPage(w http.ResponseWriter, r *http.Request, a adminCtx) {
	p, m, ok := s.formTarget(w, r)
	if !ok {
		return
	}
	d := formData{base: base{Title: "Connect " + p.Title(), User: a.User, CSRF: a.CSRF}, Action: "/connect/" + p.Vendor(), VendorTitle: p.Title(),
		Form: formView{Method: m.Name(), MethodTitle: m.Title(), Fields: fieldViews(m, nil, ""), IDPrefix: "f-"}, ShowName: true}
	if id := r.URL.Query().Get("reconnect"); id != "" {
		c, err := s.c.Connect.ReconnectTarget(r.Context(), p, id)
		var other *connect.Failure // of another vendor
		if errors.Is(err, store.ErrNotFound) || errors.As(err, &other) {
			s.errorPage(w, http.StatusNotFound, "No such connection", "There is no "+p.Title()+" connection with this id; it may have been disconnected.", "/", "Back to connections")
			return
		}
		if err != nil {
			s.storeErrorPage(w, err)
			return
		}
		d.Title, d.ShowName, d.Reconnect, d.ReconnectName = "Reconnect "+c.Name, false, c.ID, c.Name
		vals := map[string]string{}
		for k, v := range c.Settings {
			vals[k] = v
		}
		d.Form.Fields = fieldViews(m, vals, "")
	}
	s.render(w, http.StatusOK, "form.html", d)
}

// formTarget finds the vendor and form method a /connect/{vendor} request is for.
func (s *Pages) formTarget(w http.ResponseWriter, r *http.Request) (provider.Provider, provider.FormMethod, bool) {
	p := s.c.Connect.Provider(r.PathValue("vendor"))
	if p == nil {
		s.errorPage(w, http.StatusNotFound, "Unknown vendor", "There is no vendor called “"+r.PathValue("vendor")+"”. Known vendors: "+s.c.Connect.VendorList()+".", "/", "Back to connections")
		return nil, nil, false
	}
	name := r.FormValue("method")
	m := connect.FormMethod(p, name)
	if m == nil {
		s.errorPage(w, http.StatusNotFound, "Unknown method", p.Title()+" has no form sign-in method called “"+name+"”. Available: "+connect.MethodNames(p)+".", "/", "Back to connections")
		return nil, nil, false
	}
	return p, m, true
}

func (s *Pages) formSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	p, m, ok := s.formTarget(w, r)
	if !ok {
		return
	}
	t := connect.Target{Name: r.PostFormValue("name"), Reconnect: r.PostFormValue("reconnect")}
	d := formData{base: base{Title: "Connect " + p.Title(), User: a.User, CSRF: a.CSRF}, Action: "/connect/" + p.Vendor(), VendorTitle: p.Title(),
		Form: formView{Method: m.Name(), MethodTitle: m.Title(), IDPrefix: "f-"}, ShowName: t.Reconnect == "", Name: t.Name, Reconnect: t.Reconnect}
	ctx, cancel := connect.ContextOf(r)
	defer cancel()
	if t.Reconnect != "" {
		c, err := s.c.Store.Get(ctx, t.Reconnect)
		if err == nil {
			d.Title, d.ReconnectName = "Reconnect "+c.Name, c.Name
		}
	}
	res, err := s.c.Connect.ConnectForm(r, p, m, t, r.PostFormValue)
	if err != nil {
		f := connect.AsFailure(err)
		submitted := map[string]string{}
		for _, fl := range m.Fields() {
			submitted[fl.Name] = r.PostFormValue(fl.Name)
		}
		d.Form.Fields = fieldViews(m, submitted, f.Field)
		d.Form.Error = f.Msg
		d.NameError = f.Field == "name"
		s.render(w, f.Status, "form.html", d)
		return
	}
	http.Redirect(w, r, "/?msg="+res.Kind+"&name="+url.QueryEscape(res.Conn.Name), http.StatusSeeOther)
}

type confirmData struct {
	base
	Conn   store.Connection
	VTitle string
}

func (s *Pages) disconnectConfirm(w http.ResponseWriter, r *http.Request, a adminCtx) {
	c, err := s.c.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.connFailurePage(w, err)
		return
	}
	s.render(w, http.StatusOK, "confirm.html", confirmData{base: base{Title: "Disconnect " + c.Name, User: a.User, CSRF: a.CSRF}, Conn: c, VTitle: s.c.Connect.Title(c.Vendor)})
}

func (s *Pages) disconnectSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	c, err := s.c.Connect.Disconnect(r.Context(), r.PathValue("id"), a.User)
	if err != nil {
		s.connFailurePage(w, err)
		return
	}
	http.Redirect(w, r, "/?msg=disconnected&name="+url.QueryEscape(c.Name), http.StatusSeeOther)
}
