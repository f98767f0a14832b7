// Package auth wires the web side of the exporter: it checks Options and
// builds session (who is signed in), connect (what connecting a vendor
// means), ui (the HTML pages) and api (the JSON API), and registers their
// routes. It never names a vendor: it only sees provider.Provider.
//
// Nothing is kept in process memory that another replica would need: the
// session, CSRF, flow and invite tokens are signed with Options.SigningKey,
// and single-use values go through Store.UseOnce.
package auth

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/api"
	"github.com/saas-exporter/saas_exporter/auth/connect"
	"github.com/saas-exporter/saas_exporter/auth/session"
	"github.com/saas-exporter/saas_exporter/auth/ui"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// Options configures a Server.
type Options struct {
	Store       store.Store
	Providers   []provider.Provider
	ExternalURL string            // no trailing slash; https → Secure cookies
	Admins      map[string]string // user → bcrypt hash
	// SigningKey (at least 32 bytes) keys the HMACs of session, CSRF, flow
	// and invite tokens. Every replica must use the same key.
	SigningKey []byte
	// PreviousSigningKeys are accepted, never used to sign: after a key
	// rotation, invite links signed with an older key keep working.
	PreviousSigningKeys [][]byte
	// Client returns the HTTP client for a vendor's Verify/Finish calls;
	// nil: a client with a 30s timeout.
	Client   func(vendor string) *http.Client
	Logger   *slog.Logger
	Now      func() time.Time // default time.Now
	OnChange func(connectionID string)
	// OnEdit is called after a setting of a connection changed (its
	// budget) that needs no new collection, only a fresh list.
	OnEdit func(connectionID string)
	// MonthToDate tells what this replica's last collection of a
	// connection reported as its month-to-date usage (known: a
	// collection with usage ran). nil: never known.
	MonthToDate func(connectionID string) (v float64, reported, known bool)
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client (web.trusted_proxies).
	TrustedProxies []netip.Prefix
	// InviteTTL is the default lifetime of an invite; default 72h.
	InviteTTL time.Duration
	// Collections serves the connection page's values, attempt history
	// and Collect now; nil: the page shows the stored state only.
	Collections Collections
	// LoginHint, if set, is shown under the sign-in form (e.g. where a
	// generated password is to be found).
	LoginHint string
}

// Collections is what the connection page and the API ask of the
// collection engine (collector.Engine).
type Collections = connect.Collections

// Server serves the connection pages, flows and API.
type Server struct {
	o        Options
	sessions *session.Manager
	connect  *connect.Service
	ui       *ui.Pages
	api      *api.Handler
}

const defaultInvite = 72 * time.Hour

// New checks o and builds a Server.
func New(o Options) (*Server, error) {
	if o.Store == nil {
		return nil, errors.New("auth: Options.Store is nil")
	}
	if len(o.SigningKey) < 32 {
		return nil, fmt.Errorf("auth: the signing key must be at least 32 bytes, got %d", len(o.SigningKey))
	}
	u, err := url.Parse(o.ExternalURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("auth: external URL %q must be an absolute http(s) URL such as https://exporter.example.com", o.ExternalURL)
	}
	if strings.HasSuffix(o.ExternalURL, "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("auth: external URL %q must have no trailing slash, query or fragment", o.ExternalURL)
	}
	if len(o.Admins) == 0 {
		return nil, errors.New("auth: no admin users configured; add at least one user with a bcrypt hash under admins")
	}
	for user, hash := range o.Admins {
		if user == "" || strings.ContainsAny(user, ":\x00") {
			return nil, fmt.Errorf("auth: admin user name %q is empty or contains ':'", user)
		}
		if !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("auth: admin %q: password must be a bcrypt hash (starting with $2), e.g. from `htpasswd -nbBC 10 user password`", user)
		}
	}
	seen := map[string]bool{}
	for _, p := range o.Providers {
		v := p.Vendor()
		if v == "" || seen[v] || !connect.ValidName(v) {
			return nil, fmt.Errorf("auth: provider vendor %q is empty, invalid or listed twice", v)
		}
		seen[v] = true
	}
	for _, k := range o.PreviousSigningKeys {
		if len(k) < 32 {
			return nil, fmt.Errorf("auth: a previous signing key must be at least 32 bytes, got %d", len(k))
		}
	}
	log, now := o.Logger, o.Now
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if now == nil {
		now = time.Now
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	client := func(vendor string) *http.Client {
		if o.Client != nil {
			if c := o.Client(vendor); c != nil {
				return c
			}
		}
		return hc
	}
	if o.InviteTTL <= 0 {
		o.InviteTTL = defaultInvite
	}
	s := &Server{o: o}
	if s.sessions, err = session.New(session.Config{Store: o.Store, Admins: o.Admins, SigningKey: o.SigningKey, PreviousSigningKeys: o.PreviousSigningKeys,
		Secure: u.Scheme == "https", Now: now, TrustedProxies: o.TrustedProxies}); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if s.connect, err = connect.New(connect.Config{Store: o.Store, Providers: o.Providers, ExternalURL: o.ExternalURL, Sessions: s.sessions,
		Client: client, Log: log, Now: now, OnChange: o.OnChange, OnEdit: o.OnEdit, MonthToDate: o.MonthToDate,
		InviteTTL: o.InviteTTL, Collections: o.Collections}); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if s.ui, err = ui.New(ui.Config{Connect: s.connect, Sessions: s.sessions, Store: o.Store, Providers: o.Providers,
		ExternalURL: o.ExternalURL, Log: log, Now: now, LoginHint: o.LoginHint}); err != nil {
		return nil, err
	}
	s.api = api.New(api.Config{Connect: s.connect, Sessions: s.sessions, Store: o.Store, Log: log, Now: now})
	return s, nil
}

// Register registers every route on mux.
func (s *Server) Register(mux *http.ServeMux) {
	s.ui.Register(mux)
	// Vendor callbacks no browser sends. Some vendors call them by GET
	// (Twilio's DeauthorizeCallbackMethod).
	mux.HandleFunc("POST /connect/{vendor}/{name}", s.connect.Webhook)
	mux.HandleFunc("GET /connect/{vendor}/{name}", s.connect.Webhook)
	s.api.Register(mux)
}

// Authenticated reports cheaply whether r comes from a signed-in admin: a
// signed, unexpired session cookie, or basic-auth credentials the API
// accepted within the last minute. No bcrypt and no store call, so it can
// run before a request is admitted (see the cap on unauthenticated requests).
func (s *Server) Authenticated(r *http.Request) bool {
	return s.sessions.Authenticated(r) || s.api.Authenticated(r)
}
