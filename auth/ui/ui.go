// Package ui serves the HTML side: the admin pages, the sign-in page, the
// invite pages and the redirect flows' browser steps, with their
// templates and security headers. What a page does is connect's and who
// may see it is session's; it never imports api (the JSON API) or a vendor.
package ui

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/connect"
	"github.com/saas-exporter/saas_exporter/auth/session"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// Config configures Pages; every field but LoginHint is set.
type Config struct {
	Connect     *connect.Service
	Sessions    *session.Manager
	Store       store.Store
	Providers   []provider.Provider
	ExternalURL string
	Log         *slog.Logger
	Now         func() time.Time
	// LoginHint, if set, is shown under the sign-in form.
	LoginHint string
}

// Pages serves the HTML routes.
type Pages struct {
	c     Config
	pages *pages
}

// New parses the templates and builds Pages.
func New(c Config) (*Pages, error) {
	p, err := loadPages()
	if err != nil {
		return nil, err
	}
	return &Pages{c: c, pages: p}, nil
}

// Register registers the HTML routes on mux.
func (s *Pages) Register(mux *http.ServeMux) {
	// Admin pages.
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.loginSubmit)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("GET /{$}", s.admin(s.connectionsPage))
	mux.HandleFunc("GET /connections/{id}", s.admin(s.connectionPage))
	mux.HandleFunc("POST /connections/{id}/collect", s.admin(s.collectSubmit))
	mux.HandleFunc("POST /connections/{id}/rename", s.admin(s.renameSubmit))
	mux.HandleFunc("GET /connections/{id}/disconnect", s.admin(s.disconnectConfirm))
	mux.HandleFunc("POST /connections/{id}/disconnect", s.admin(s.disconnectSubmit))
	mux.HandleFunc("POST /connections/{id}/budget", s.admin(s.budgetSubmit))
	mux.HandleFunc("POST /invites", s.admin(s.inviteCreateSubmit))
	mux.HandleFunc("POST /invites/{id}/revoke", s.admin(s.inviteRevokeSubmit))

	// Connection flows.
	mux.HandleFunc("GET /connect/{vendor}", s.admin(s.formPage))
	mux.HandleFunc("POST /connect/{vendor}", s.admin(s.formSubmit))
	mux.HandleFunc("POST /connect/{vendor}/start", s.admin(s.startSubmit))
	mux.HandleFunc("GET /connect/{vendor}/callback", s.callback)

	// Invites (no login).
	mux.HandleFunc("GET /invite/done", s.inviteDone)
	mux.HandleFunc("GET /invite/{token}", s.invitePage)
	mux.HandleFunc("POST /invite/{token}", s.inviteSubmit)
	mux.HandleFunc("POST /invite/{token}/start", s.inviteStart)
}
