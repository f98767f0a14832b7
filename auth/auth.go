// Package auth serves everything a person or a script does to connect a
// vendor: admin login and sessions, CSRF, the HTML pages, the redirect-flow
// machinery (state cookie, PKCE, callbacks), invites, vendor webhooks and the
// JSON API. It never names a vendor: it only sees provider.Provider.
//
// Nothing is kept in process memory that another replica would need: the
// session, CSRF, flow and invite tokens are signed with Options.SigningKey,
// and single-use values go through Store.UseOnce.
package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

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

// Server serves the connection pages, flows and API.
type Server struct {
	o        Options
	log      *slog.Logger
	now      func() time.Time
	client   func(string) *http.Client
	secure   bool
	external *url.URL
	keys     keys
	limiter  *limiter
	apiCache *authCache
	pages    *pages
}

const (
	// maxBody bounds every form and JSON body.
	maxBody       = 64 << 10
	sessionTTL    = 12 * time.Hour
	flowTTL       = 10 * time.Minute
	maxInviteTTL  = 90 * 24 * time.Hour
	defaultInvite = 72 * time.Hour
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

const nameRule = "1 to 63 characters: letters, digits, '_', '.', '-', starting with a letter or digit"

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
		if v == "" || seen[v] || !nameRE.MatchString(v) {
			return nil, fmt.Errorf("auth: provider vendor %q is empty, invalid or listed twice", v)
		}
		seen[v] = true
	}
	s := &Server{o: o, log: o.Logger, now: o.Now, external: u, secure: u.Scheme == "https"}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	s.client = func(vendor string) *http.Client {
		if o.Client != nil {
			if c := o.Client(vendor); c != nil {
				return c
			}
		}
		return hc
	}
	if s.o.InviteTTL <= 0 {
		s.o.InviteTTL = defaultInvite
	}
	s.keys = deriveKeys(o.SigningKey)
	for _, k := range o.PreviousSigningKeys {
		if len(k) < 32 {
			return nil, fmt.Errorf("auth: a previous signing key must be at least 32 bytes, got %d", len(k))
		}
		s.keys.oldInvite = append(s.keys.oldInvite, derive(k, "invite"))
	}
	s.limiter = newLimiter(5, time.Minute)
	s.apiCache = newAuthCache(time.Minute)
	if s.pages, err = loadPages(); err != nil {
		return nil, err
	}
	return s, nil
}

// Register registers every route on mux.
func (s *Server) Register(mux *http.ServeMux) {
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
	mux.HandleFunc("POST /connect/{vendor}/{name}", s.webhook)
	// Some vendors call webhooks by GET (Twilio's DeauthorizeCallbackMethod).
	mux.HandleFunc("GET /connect/{vendor}/{name}", s.webhook)

	// Invites (no login).
	mux.HandleFunc("GET /invite/done", s.inviteDone)
	mux.HandleFunc("GET /invite/{token}", s.invitePage)
	mux.HandleFunc("POST /invite/{token}", s.inviteSubmit)
	mux.HandleFunc("POST /invite/{token}/start", s.inviteStart)

	// JSON API.
	mux.HandleFunc("GET /api/v1/connections", s.api(s.apiList))
	mux.HandleFunc("POST /api/v1/connections", s.api(s.apiCreate))
	mux.HandleFunc("GET /api/v1/connections/{id}", s.api(s.apiGet))
	mux.HandleFunc("PATCH /api/v1/connections/{id}", s.api(s.apiRename))
	mux.HandleFunc("POST /api/v1/connections/{id}/collect", s.api(s.apiCollect))
	mux.HandleFunc("DELETE /api/v1/connections/{id}", s.api(s.apiDelete))
	mux.HandleFunc("POST /api/v1/connections/{id}/reconnect", s.api(s.apiReconnect))
	mux.HandleFunc("PUT /api/v1/connections/{id}/budget", s.api(s.apiSetBudget))
	mux.HandleFunc("GET /api/v1/invites", s.api(s.apiInvites))
	mux.HandleFunc("POST /api/v1/invites", s.api(s.apiInviteCreate))
	mux.HandleFunc("DELETE /api/v1/invites/{id}", s.api(s.apiInviteRevoke))
	mux.HandleFunc("/api/v1/", s.api(func(w http.ResponseWriter, r *http.Request, _ string) {
		writeJSONError(w, http.StatusNotFound, "no such API endpoint; see the README for GET/POST /api/v1/connections and /api/v1/invites")
	}))
}

func (s *Server) provider(vendor string) provider.Provider {
	return provider.Find(s.o.Providers, vendor)
}

func (s *Server) vendorList() string {
	vs := make([]string, 0, len(s.o.Providers))
	for _, p := range s.o.Providers {
		vs = append(vs, p.Vendor())
	}
	sort.Strings(vs)
	return strings.Join(vs, ", ")
}

func (s *Server) changed(id string) {
	if s.o.OnChange != nil {
		s.o.OnChange(id)
	}
}

// formMethod returns p's FormMethod called name ("" → the first one).
func formMethod(p provider.Provider, name string) provider.FormMethod {
	for _, m := range p.Methods() {
		if fm, ok := m.(provider.FormMethod); ok && (name == "" || fm.Name() == name) {
			return fm
		}
	}
	return nil
}

// redirectMethod returns p's enabled RedirectMethod called name ("" → the first enabled one).
func redirectMethod(p provider.Provider, name string) provider.RedirectMethod {
	for _, m := range p.Methods() {
		if rm, ok := m.(provider.RedirectMethod); ok && rm.Enabled() && (name == "" || rm.Name() == name) {
			return rm
		}
	}
	return nil
}

// methodNames lists the usable methods of p, for error messages.
func methodNames(p provider.Provider) string {
	var ns []string
	for _, m := range p.Methods() {
		if rm, ok := m.(provider.RedirectMethod); ok && !rm.Enabled() {
			continue
		}
		ns = append(ns, m.Name())
	}
	if len(ns) == 0 {
		return "none configured"
	}
	return strings.Join(ns, ", ")
}

// localPath returns next if it is a path on this site, else "/".
func localPath(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

// contextOf bounds vendor calls made for one request.
func (s *Server) contextOf(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), time.Minute)
}
