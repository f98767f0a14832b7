// Package provider is the small interface between the generic parts of the
// exporter (auth, collector) and one vendor (provider/<vendor>). Generic code
// never names a vendor; it only sees these types. It imports nothing of the
// exporter: a vendor sees a Connection view, never the store's record.
package provider

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Provider is everything one vendor contributes.
type Provider interface {
	// Vendor is the vendor's label value and URL segment, e.g. "sendgrid".
	Vendor() string
	// Title is the vendor's name for people, e.g. "SendGrid".
	Title() string
	// Methods lists the ways to connect, preferred first. Each is a
	// FormMethod or a RedirectMethod.
	Methods() []Method
	// Collect fetches a connection's usage and reports it through s,
	// with its independent parts as s.Sections (concurrent, each keeping
	// its last good series when it fails). It returns an error if any
	// vendor call failed; metrics emitted before the error are still
	// exported. Wrap errors with Revoked, Expired or RateLimited so the
	// engine can set the state.
	Collect(ctx context.Context, s *Scrape) error
}

// CallBound is implemented by providers whose vendor documents how many
// calls one account may have in flight (or a rate from which a safe bound
// follows). The engine never sends one account more concurrent calls than
// this, unless scrape.vendor_concurrency overrides it.
type CallBound interface {
	MaxConcurrentCalls() int
}

// DefaultCallBound is the bound for a provider that documents none.
const DefaultCallBound = 4

// Method is one way to connect a vendor.
type Method interface {
	// Name is the auth_method label value: "api_key", "token", "connect", "oauth", ...
	Name() string
	// Title is shown on buttons and headings: "API key".
	Title() string
}

// Field is one input of a FormMethod.
type Field struct {
	Name      string   // form and JSON key, e.g. "api_key"
	Label     string   // "API key"
	Help      string   // one sentence under the input
	Secret    bool     // rendered as a password input, never echoed back
	Options   []string // non-empty: a select with these values, the first is the default
	Optional  bool
	Multiline bool // textarea (PEM keys)
}

// FormMethod connects with values a person pastes (API key, token).
type FormMethod interface {
	Method
	Fields() []Field
	// Verify checks the values with the vendor before anything is stored.
	// Bad or rejected input is reported as *InputError.
	Verify(ctx context.Context, hc *http.Client, values map[string]string) (*Credential, error)
}

// RedirectMethod connects by sending the browser to the vendor and back
// (Twilio Connect, OAuth authorization code).
type RedirectMethod interface {
	Method
	// Enabled reports whether the method is configured (app registration present).
	Enabled() bool
	// AuthorizeURL is where the browser goes to give consent.
	AuthorizeURL(f Flow) (string, error)
	// Finish completes the flow from the callback's query parameters. The
	// caller has already checked that this browser started flow f.
	// A denial or bad callback is reported as *InputError.
	Finish(ctx context.Context, hc *http.Client, f Flow, query url.Values) (*Credential, error)
}

// Flow is the per-browser state of a redirect flow.
type Flow struct {
	State       string // single-use, bound to the browser by a cookie
	Verifier    string // PKCE code verifier (S256)
	RedirectURL string // {external_url}/connect/{vendor}/callback
}

// Webhooks is implemented by providers that receive vendor callbacks that
// no browser sends (Twilio's deauthorize callback), served at
// GET and POST /connect/{vendor}/{name}.
type Webhooks interface {
	// Webhook checks and handles a vendor callback. It returns the
	// AccountIDs whose credentials the vendor revoked. An unauthenticated
	// request is reported with ErrForbidden.
	Webhook(r *http.Request, name string) (revoked []string, err error)
}

// RevocationChecker is implemented by Webhooks providers whose revocation
// callbacks can be replayed (a signature without a timestamp): before a
// connection is revoked on such a callback, the vendor is asked with the
// connection's own credentials whether access is really gone.
type RevocationChecker interface {
	// StillAuthorized reports whether c's credential still works (the
	// callback is stale). An error means the vendor could not tell.
	StillAuthorized(ctx context.Context, hc *http.Client, c Connection) (bool, error)
}

// Credential is what a successful connection flow yields.
type Credential struct {
	AccountID     string            // vendor's stable id; empty if the vendor does not tell
	Account       string            // human-readable account name
	AuthMethod    string            // Method.Name()
	Secret        map[string]string // sealed at rest; every value is redacted from errors
	Settings      map[string]string // non-secret (region, ...)
	Scopes        []string          // granted
	MissingScopes []string          // recommended but not granted
	Expiry        time.Time         // zero: never expires
}

// Connection is what a provider sees of a connection: who it is, how it
// was connected, its settings and its credential. It is a view, not the
// storage model: the engine and the web side build it from the stored
// record (collector.View), and a provider changes a connection only by
// returning a Credential, which the engine saves.
type Connection struct {
	ID         string
	Vendor     string
	Name       string
	Account    string // human-readable account (name, workspace slug)
	AccountID  string // vendor's stable id
	AuthMethod string
	// Settings are non-secret, provider-specific values (region, ...).
	Settings map[string]string
	// Secret is the credential, opened by the engine.
	Secret        map[string]string
	Scopes        []string
	MissingScopes []string
	// Expiry is when the credential stops working without a person; zero if never.
	Expiry time.Time
}
