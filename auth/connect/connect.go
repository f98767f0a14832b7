// Package connect owns what connecting a vendor means, whoever asks (a
// page, the API, an invitee, a vendor): checking forms, verifying and
// saving credentials, redirect flows and their callbacks, invites,
// webhooks, and the edits pages and the API share (rename, budget,
// disconnect, collect now). It renders no page and writes no JSON; it
// imports session, provider, store and collector, never ui, api or a vendor.
package connect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/session"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// MaxBody bounds every form, JSON and webhook body.
const MaxBody = 64 << 10

// FlowTTL is how long a started redirect flow can be finished.
const FlowTTL = 10 * time.Minute

const maxInviteTTL = 90 * 24 * time.Hour

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// NameRule says what ValidName accepts.
const NameRule = "1 to 63 characters: letters, digits, '_', '.', '-', starting with a letter or digit"

// ValidName reports whether name can be a connection (or vendor) name.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// Config configures a Service; every field is set (the auth package fills
// in the defaults).
type Config struct {
	Store       store.Store
	Providers   []provider.Provider
	ExternalURL string // no trailing slash
	Sessions    *session.Manager
	// Client returns the HTTP client for a vendor's calls; never nil.
	Client      func(vendor string) *http.Client
	Log         *slog.Logger
	Now         func() time.Time
	OnChange    func(connectionID string)
	OnEdit      func(connectionID string)
	MonthToDate func(connectionID string) (v float64, reported, known bool)
	InviteTTL   time.Duration
	Collections Collections // nil: no collection on demand
}

// Service runs the connection operations.
type Service struct {
	c        Config
	external *url.URL
}

// New builds a Service; ExternalURL must parse.
func New(c Config) (*Service, error) {
	u, err := url.Parse(c.ExternalURL)
	if err != nil {
		return nil, err
	}
	return &Service{c: c, external: u}, nil
}

// Failure is an outcome a person can act on; pages and the API show Msg
// with Status.
type Failure struct {
	Status int
	Field  string
	Msg    string
	Detail string // vendor-provided text, shown as plain text
}

func (f *Failure) Error() string { return f.Msg }

// Fail makes a Failure with a formatted message.
func Fail(status int, format string, args ...any) *Failure {
	return &Failure{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// AsFailure turns any error into a Failure; errors that are not already
// one are store problems.
func AsFailure(err error) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	if errors.Is(err, store.ErrUnavailable) {
		return Fail(http.StatusServiceUnavailable, "The connection store is unavailable: %v. Try again; check the exporter log and saas_exporter_store_up if it persists.", err)
	}
	return Fail(http.StatusServiceUnavailable, "The connection store failed: %v. Nothing was changed; try again, and check the exporter log if it persists.", err)
}

// Target says what a successful connection writes.
type Target struct {
	Name      string // name of a new connection
	Reconnect string // id of the connection whose credential is replaced
	Invite    string // id of the invite the flow consumes
}

// redactor removes known secret values from text shown or logged.
type redactor []string

func (r *redactor) add(vs ...string) {
	for _, v := range vs {
		if len(strings.TrimSpace(v)) >= 4 {
			*r = append(*r, v)
		}
	}
}

func (r redactor) apply(s string) string {
	// Longest first, so a secret containing another is removed whole.
	vs := append([]string(nil), r...)
	sort.Slice(vs, func(i, j int) bool { return len(vs[i]) > len(vs[j]) })
	for _, v := range vs {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	return s
}

// Provider returns the provider of vendor, or nil.
func (s *Service) Provider(vendor string) provider.Provider {
	return provider.Find(s.c.Providers, vendor)
}

// VendorList names the known vendors, for error messages.
func (s *Service) VendorList() string {
	vs := make([]string, 0, len(s.c.Providers))
	for _, p := range s.c.Providers {
		vs = append(vs, p.Vendor())
	}
	sort.Strings(vs)
	return strings.Join(vs, ", ")
}

// Title is the vendor's title, or its name if no provider knows it.
func (s *Service) Title(vendor string) string {
	if p := s.Provider(vendor); p != nil {
		return p.Title()
	}
	return vendor
}

func (s *Service) changed(id string) {
	if s.c.OnChange != nil {
		s.c.OnChange(id)
	}
}

// FormMethod returns p's FormMethod called name ("" → the first one).
func FormMethod(p provider.Provider, name string) provider.FormMethod {
	for _, m := range p.Methods() {
		if fm, ok := m.(provider.FormMethod); ok && (name == "" || fm.Name() == name) {
			return fm
		}
	}
	return nil
}

// RedirectMethod returns p's enabled RedirectMethod called name ("" → the first enabled one).
func RedirectMethod(p provider.Provider, name string) provider.RedirectMethod {
	for _, m := range p.Methods() {
		if rm, ok := m.(provider.RedirectMethod); ok && rm.Enabled() && (name == "" || rm.Name() == name) {
			return rm
		}
	}
	return nil
}

// MethodNames lists the usable methods of p, for error messages.
func MethodNames(p provider.Provider) string {
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

// Usable reports whether p has a method a person can connect with here.
func Usable(p provider.Provider) bool {
	return FormMethod(p, "") != nil || RedirectMethod(p, "") != nil
}

// ContextOf bounds vendor calls made for one request.
func ContextOf(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), time.Minute)
}
