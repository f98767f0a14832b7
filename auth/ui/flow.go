package ui

import (
	"net/http"

	"github.com/saas-exporter/saas_exporter/auth/connect"
)

// startSubmit is the admin's "Connect with …" / "Reconnect" button.
func (s *Pages) startSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	p := s.c.Connect.Provider(r.PathValue("vendor"))
	if p == nil {
		s.errorPage(w, http.StatusNotFound, "Unknown vendor", "There is no vendor called “"+r.PathValue("vendor")+"”. Known vendors: "+s.c.Connect.VendorList()+".", "/", "Back to connections")
		return
	}
	m := connect.RedirectMethod(p, r.PostFormValue("method"))
	if m == nil {
		s.errorPage(w, http.StatusBadRequest, "Unknown method", p.Title()+" has no enabled sign-in method called “"+r.PostFormValue("method")+"”. Available: "+connect.MethodNames(p)+".", "/", "Back to connections")
		return
	}
	if u := s.c.Connect.WrongHost(r); u != "" {
		s.errorPage(w, http.StatusBadRequest, "Open the exporter at its external URL", s.c.Connect.WrongHostMessage(r), s.c.ExternalURL+"/", "Open "+s.c.ExternalURL+"/")
		return
	}
	t := connect.Target{Name: r.PostFormValue("name"), Reconnect: r.PostFormValue("reconnect")}
	ctx, cancel := connect.ContextOf(r)
	defer cancel()
	if err := s.c.Connect.CheckTarget(ctx, p, t); err != nil {
		f := connect.AsFailure(err)
		s.errorPage(w, f.Status, "Cannot connect "+p.Title(), f.Msg, "/", "Back to connections")
		return
	}
	u, err := s.c.Connect.StartFlow(w, p, m, t)
	if err != nil {
		f := connect.AsFailure(err)
		s.errorPage(w, f.Status, "Cannot connect "+p.Title(), f.Msg, "/", "Back to connections")
		return
	}
	http.Redirect(w, r, u, http.StatusFound)
}

// callback is where the vendor sends the browser back: connect decides,
// this page shows the outcome.
func (s *Pages) callback(w http.ResponseWriter, r *http.Request) {
	o := s.c.Connect.Callback(w, r)
	if o.Redirect != "" {
		http.Redirect(w, r, o.Redirect, http.StatusSeeOther)
		return
	}
	s.render(w, o.Status, "error.html", errorData{base: base{Title: o.Title}, Status: o.Status, Message: o.Message, Detail: o.Detail, Link: o.Link, LinkText: o.LinkText})
}
