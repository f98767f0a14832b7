package auth

import (
	"errors"
	"net/http"
	"net/url"

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
	BudgetInfo  *apiBudget
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

func (s *Server) title(vendor string) string {
	if p := s.provider(vendor); p != nil {
		return p.Title()
	}
	return vendor
}

func (s *Server) connectionsPage(w http.ResponseWriter, r *http.Request, a adminCtx) {
	ctx := r.Context()
	conns, err := s.o.Store.List(ctx)
	if err != nil {
		s.storeErrorPage(w, err)
		return
	}
	invites, err := s.o.Store.ListInvites(ctx)
	if err != nil {
		s.storeErrorPage(w, err)
		return
	}
	q := r.URL.Query()
	d := connectionsData{base: base{Title: "Connections", User: a.User, CSRF: a.CSRF, Flash: flashText(q.Get("msg"), q.Get("name"))}}
	if u := s.wrongHost(r); u != "" {
		d.Warn, d.WarnLink = s.wrongHostMessage(r), u
	}
	for _, c := range conns {
		row := connRow{Connection: c, Title: s.title(c.Vendor), StateClass: stateClass(c.State), BudgetInfo: s.budgetView(c)}
		if c.Budget != nil {
			row.BudgetValue = fmtBudget(*c.Budget)
		}
		if p := s.provider(c.Vendor); p != nil {
			row.CanInvite = usable(p)
		}
		row.ReconnectURL, row.ReconnectMethod, row.Reconnect = s.reconnectOf(c)
		row.Broken = c.State == store.StateExpired || c.State == store.StateRevoked || c.State == store.StateError
		d.Conns = append(d.Conns, row)
	}
	for _, p := range s.o.Providers {
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
		sec.CanInvite = usable(p)
		d.Vendors = append(d.Vendors, sec)
	}
	names := map[string]string{}
	for _, c := range conns {
		names[c.ID] = c.Name
	}
	done := 0
	for _, inv := range invites {
		row := inviteRow{Invite: inv, Title: s.title(inv.Vendor), Status: s.inviteStatus(inv)}
		if name, ok := names[inv.ConnectionID]; ok && row.Status == "used" {
			row.UsedFor = name
			if name != inv.Name {
				row.Note = "The invitee's account was already connected as “" + name + "”: its credential was replaced; no connection “" + inv.Name + "” was made."
			}
		}
		if row.Status == "pending" {
			row.URL = s.inviteURL(inv.ID)
		} else if done++; done > 20 {
			continue // old invites: the API lists them all
		}
		d.Invites = append(d.Invites, row)
	}
	s.render(w, http.StatusOK, "connections.html", d)
}

// usable reports whether p has a method a person can connect with here.
func usable(p provider.Provider) bool {
	return formMethod(p, "") != nil || redirectMethod(p, "") != nil
}

func (s *Server) storeErrorPage(w http.ResponseWriter, err error) {
	s.log.Error("store", "err", err)
	f := asFailure(err)
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

func (s *Server) formPage(w http.ResponseWriter, r *http.Request, a adminCtx) {
	p, m, ok := s.formTarget(w, r)
	if !ok {
		return
	}
	d := formData{base: base{Title: "Connect " + p.Title(), User: a.User, CSRF: a.CSRF}, Action: "/connect/" + p.Vendor(), VendorTitle: p.Title(),
		Form: formView{Method: m.Name(), MethodTitle: m.Title(), Fields: fieldViews(m, nil, ""), IDPrefix: "f-"}, ShowName: true}
	if id := r.URL.Query().Get("reconnect"); id != "" {
		c, err := s.o.Store.Get(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && c.Vendor != p.Vendor()) {
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
func (s *Server) formTarget(w http.ResponseWriter, r *http.Request) (provider.Provider, provider.FormMethod, bool) {
	p := s.provider(r.PathValue("vendor"))
	if p == nil {
		s.errorPage(w, http.StatusNotFound, "Unknown vendor", "There is no vendor called “"+r.PathValue("vendor")+"”. Known vendors: "+s.vendorList()+".", "/", "Back to connections")
		return nil, nil, false
	}
	name := r.FormValue("method")
	m := formMethod(p, name)
	if m == nil {
		s.errorPage(w, http.StatusNotFound, "Unknown method", p.Title()+" has no form sign-in method called “"+name+"”. Available: "+methodNames(p)+".", "/", "Back to connections")
		return nil, nil, false
	}
	return p, m, true
}

func (s *Server) formSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	p, m, ok := s.formTarget(w, r)
	if !ok {
		return
	}
	t := target{Name: r.PostFormValue("name"), Reconnect: r.PostFormValue("reconnect")}
	d := formData{base: base{Title: "Connect " + p.Title(), User: a.User, CSRF: a.CSRF}, Action: "/connect/" + p.Vendor(), VendorTitle: p.Title(),
		Form: formView{Method: m.Name(), MethodTitle: m.Title(), IDPrefix: "f-"}, ShowName: t.Reconnect == "", Name: t.Name, Reconnect: t.Reconnect}
	ctx, cancel := s.contextOf(r)
	defer cancel()
	if t.Reconnect != "" {
		c, err := s.o.Store.Get(ctx, t.Reconnect)
		if err == nil {
			d.Title, d.ReconnectName = "Reconnect "+c.Name, c.Name
		}
	}
	res, err := s.connectForm(r, p, m, t, r.PostFormValue)
	if err != nil {
		f := asFailure(err)
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

// connectForm is the whole form flow: check, verify with the vendor, store.
func (s *Server) connectForm(r *http.Request, p provider.Provider, m provider.FormMethod, t target, get func(string) string) (saved, error) {
	ctx, cancel := s.contextOf(r)
	defer cancel()
	values, err := formValues(m, get)
	if err != nil {
		return saved{}, err
	}
	if err := s.checkTarget(ctx, p, t); err != nil {
		return saved{}, err
	}
	cred, err := s.verify(ctx, p, m, values)
	if err != nil {
		return saved{}, err
	}
	return s.save(ctx, p, m.Name(), cred, t)
}

type confirmData struct {
	base
	Conn   store.Connection
	VTitle string
}

func (s *Server) disconnectConfirm(w http.ResponseWriter, r *http.Request, a adminCtx) {
	c, err := s.o.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.connFailurePage(w, err)
		return
	}
	s.render(w, http.StatusOK, "confirm.html", confirmData{base: base{Title: "Disconnect " + c.Name, User: a.User, CSRF: a.CSRF}, Conn: c, VTitle: s.title(c.Vendor)})
}

func (s *Server) disconnectSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	c, err := s.disconnect(r, r.PathValue("id"), a.User)
	if err != nil {
		s.connFailurePage(w, err)
		return
	}
	http.Redirect(w, r, "/?msg=disconnected&name="+url.QueryEscape(c.Name), http.StatusSeeOther)
}

// disconnect deletes a connection and its credential.
func (s *Server) disconnect(r *http.Request, id, user string) (store.Connection, error) {
	c, err := s.o.Store.Get(r.Context(), id)
	if err != nil {
		return c, err
	}
	if err := s.o.Store.Delete(r.Context(), id); err != nil {
		return c, err
	}
	s.changed(id)
	s.log.Info("connection disconnected", "vendor", c.Vendor, "name", c.Name, "id", c.ID, "by", user)
	return c, nil
}
