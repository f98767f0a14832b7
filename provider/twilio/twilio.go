// Package twilio is everything the exporter knows about Twilio: its API,
// how to connect (Twilio Connect), the deauthorize callback, and what to
// collect.
//
// A Twilio Connect App belongs to one Twilio account (the owner, configured
// in vendors.twilio). A customer account authorizes the app on Twilio's
// consent page; from then on the exporter reads that account with basic
// auth (customer AccountSid, owner's auth token). Nothing secret is stored
// per connection: the owner's token comes from the configuration.
package twilio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	twclient "github.com/twilio/twilio-go/client"
	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/config"
	"github.com/saas-exporter/saas_exporter/provider"
)

const (
	vendor              = "twilio"
	DefaultAPIURL       = "https://api.twilio.com"
	DefaultAuthorizeURL = "https://www.twilio.com/authorize"
	// CallbackPath and DeauthorizePath follow external_url: enter them
	// as the Connect App's Authorize URL and Deauthorize Callback URL.
	CallbackPath    = "/connect/twilio/callback"
	DeauthorizePath = "/connect/twilio/deauthorize"
)

// Config is the vendors.twilio section.
type Config struct {
	ConnectAppSid string `yaml:"connect_app_sid"`
	AccountSid    string `yaml:"account_sid"` // the Connect App owner's
	AuthToken     string `yaml:"auth_token"`  // the owner's auth token
	AuthTokenFile string `yaml:"auth_token_file"`
	APIURL        string `yaml:"api_url"`
	AuthorizeURL  string `yaml:"authorize_url"`
	// MaxSubaccounts bounds the subaccounts whose spend is collected
	// (one call each per period and collection); nil: the default.
	MaxSubaccounts *int `yaml:"max_subaccounts"`
}

// DefaultMaxSubaccounts is vendors.twilio.max_subaccounts' default;
// maxMaxSubaccounts is Twilio's default limit of subaccounts per account.
const (
	DefaultMaxSubaccounts = 100
	maxMaxSubaccounts     = 1000
)

// Factory registers Twilio with the exporter.
func Factory() provider.Factory { return provider.Factory{Vendor: vendor, New: New} }

// Provider implements provider.Provider and provider.Webhooks for Twilio.
type Provider struct {
	apiURL        string // no trailing slash
	api           *url.URL
	authorizeURL  string // no trailing slash
	connectAppSid string
	accountSid    string
	authToken     string
	externalURL   string
	log           *slog.Logger
	// maxSubaccounts: vendors.twilio.max_subaccounts.
	maxSubaccounts int
}

var (
	accountSidRe    = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	connectAppSidRe = regexp.MustCompile(`^CN[0-9a-fA-F]{32}$`)
	// twilio-go refuses credentials with other characters.
	authTokenRe = regexp.MustCompile(`^[A-Za-z0-9]+$`)
)

// New builds the provider from its config section (nil: Twilio Connect
// disabled, default URLs).
func New(node *yaml.Node, env provider.Env) (provider.Provider, error) {
	var c Config
	if node != nil {
		if err := config.Decode(node, &c); err != nil {
			return nil, err
		}
	}
	var errs []error
	token, err := config.ReadSecret(strings.TrimSpace(c.AuthToken), env.Path(c.AuthTokenFile), "auth_token")
	if err != nil {
		errs = append(errs, err)
	}
	c.AuthToken = token
	c.ConnectAppSid = strings.TrimSpace(c.ConnectAppSid)
	c.AccountSid = strings.TrimSpace(c.AccountSid)
	if c.ConnectAppSid != "" && !connectAppSidRe.MatchString(c.ConnectAppSid) {
		errs = append(errs, fmt.Errorf("connect_app_sid: must be a Connect App SID, CN followed by 32 hex digits (Twilio console → Account → Connect Apps), got %q", c.ConnectAppSid))
	}
	if c.AccountSid != "" && !accountSidRe.MatchString(c.AccountSid) {
		errs = append(errs, fmt.Errorf("account_sid: must be the Account SID of the account that owns the Connect App, AC followed by 32 hex digits, got %q", c.AccountSid))
	}
	if c.AuthToken != "" && !authTokenRe.MatchString(c.AuthToken) {
		// Never echo the value: it is a secret.
		errs = append(errs, errors.New("auth_token: contains characters a Twilio auth token never has (only letters and digits); paste the auth token of account_sid from the Twilio console, without quotes or spaces"))
	}
	var set, missing []string
	for _, k := range []struct{ name, v string }{{"connect_app_sid", c.ConnectAppSid}, {"account_sid", c.AccountSid}, {"auth_token", c.AuthToken}} {
		if k.v == "" {
			missing = append(missing, k.name)
		} else {
			set = append(set, k.name)
		}
	}
	if len(set) > 0 && len(missing) > 0 {
		errs = append(errs, fmt.Errorf("connect_app_sid, account_sid and auth_token enable Twilio Connect together: %s set but %s missing", strings.Join(set, ", "), strings.Join(missing, ", ")))
	}
	api, err := absURL("api_url", c.APIURL, DefaultAPIURL)
	if err != nil {
		errs = append(errs, err)
	}
	authz, err := absURL("authorize_url", c.AuthorizeURL, DefaultAuthorizeURL)
	if err != nil {
		errs = append(errs, err)
	}
	maxSubs := DefaultMaxSubaccounts
	if c.MaxSubaccounts != nil {
		maxSubs = *c.MaxSubaccounts
		if maxSubs < 0 || maxSubs > maxMaxSubaccounts {
			errs = append(errs, fmt.Errorf("max_subaccounts: must be from 0 (no per-subaccount spend) to %d (Twilio's default limit of subaccounts), got %d; each subaccount costs one API call per period and collection", maxMaxSubaccounts, maxSubs))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{
		apiURL:         strings.TrimRight(api.String(), "/"),
		api:            api,
		authorizeURL:   strings.TrimRight(authz.String(), "/"),
		connectAppSid:  c.ConnectAppSid,
		accountSid:     c.AccountSid,
		authToken:      c.AuthToken,
		externalURL:    strings.TrimRight(env.ExternalURL, "/"),
		log:            log,
		maxSubaccounts: maxSubs,
	}, nil
}

func absURL(key, v, def string) (*url.URL, error) {
	if v == "" {
		v = def
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: must be an absolute http(s) URL such as %s, got %q", key, def, v)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("%s: must not have a query, fragment or user info, got %q", key, v)
	}
	return u, nil
}

func (p *Provider) Vendor() string { return vendor }
func (p *Provider) Title() string  { return "Twilio" }
func (p *Provider) Methods() []provider.Method {
	return []provider.Method{&connectMethod{p}}
}

// enabled: the Connect App is configured.
func (p *Provider) enabled() bool {
	return p.connectAppSid != "" && p.accountSid != "" && p.authToken != ""
}

var errNotConfigured = errors.New("Twilio Connect is not configured: set vendors.twilio.connect_app_sid, account_sid and auth_token (the Connect App and its owner)")

// connectMethod is Twilio Connect: consent on twilio.com, then the browser
// comes back with ?AccountSid=AC….
type connectMethod struct{ p *Provider }

func (m *connectMethod) Name() string  { return "connect" }
func (m *connectMethod) Title() string { return "Twilio Connect" }
func (m *connectMethod) Enabled() bool { return m.p.enabled() }

// AuthorizeURL is {authorize_url}/{connect_app_sid}?state=…. Twilio takes
// the way back from the Connect App's registered Authorize URL, not from
// this request.
func (m *connectMethod) AuthorizeURL(f provider.Flow) (string, error) {
	if !m.p.enabled() {
		return "", errNotConfigured
	}
	q := url.Values{}
	if f.State != "" {
		q.Set("state", f.State)
	}
	u := m.p.authorizeURL + "/" + url.PathEscape(m.p.connectAppSid)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u, nil
}

// errorCode matches the error values Twilio sends back (unauthorized_client).
var errorCode = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Finish checks the callback and verifies the account with Twilio before
// anything is stored.
func (m *connectMethod) Finish(ctx context.Context, hc *http.Client, f provider.Flow, query url.Values) (*provider.Credential, error) {
	if e := query.Get("error"); e != "" {
		if !errorCode.MatchString(e) {
			e = "an unreadable error"
		}
		return nil, provider.Inputf("", "Twilio did not connect the account: access was not granted on Twilio's consent page (Twilio answered %s). Nothing was stored; start again and choose Allow.", e)
	}
	if !m.p.enabled() {
		return nil, errNotConfigured
	}
	sid := strings.TrimSpace(query.Get("AccountSid"))
	switch {
	case sid == "":
		return nil, provider.Inputf("", "Twilio sent the browser back without an AccountSid. Nothing was stored; start again from the exporter. (The Connect App's Authorize URL in the Twilio console must be %s%s.)", m.p.externalURL, CallbackPath)
	case !accountSidRe.MatchString(sid):
		return nil, provider.Inputf("", "Twilio sent back an AccountSid that is not an Account SID (AC followed by 32 hex digits). Nothing was stored; start again from the exporter.")
	}
	c := m.p.client(hc, sid)
	acct, err := c.fetchAccount(ctx)
	if err != nil {
		if provider.StatusOf(err) == http.StatusUnauthorized {
			return nil, provider.Inputf("", "Twilio account %s has not authorized the Connect App %s (Twilio answered: %v). Nothing was stored; start again and choose Allow on Twilio's page.", sid, m.p.connectAppSid, err)
		}
		return nil, fmt.Errorf("could not verify account %s with Twilio at %s: %w", sid, m.p.apiURL, err)
	}
	if acct.Sid != "" && !strings.EqualFold(acct.Sid, sid) {
		return nil, fmt.Errorf("twilio answered for account %s when asked for %s; check vendors.twilio.api_url", acct.Sid, sid)
	}
	name := acct.FriendlyName
	if name == "" {
		name = sid
	}
	settings := map[string]string{}
	if acct.Type != "" {
		settings["type"] = acct.Type
	}
	if acct.Status != "" {
		settings["status"] = acct.Status
	}
	return &provider.Credential{
		AccountID:  sid,
		Account:    name,
		AuthMethod: m.Name(),
		// The owner's auth token comes from the configuration; a
		// connection holds nothing secret.
		Secret:   map[string]string{},
		Settings: settings,
	}, nil
}

// maxWebhookBody bounds a deauthorize callback (two short form fields).
const maxWebhookBody = 64 << 10

// Webhook handles /connect/twilio/deauthorize: Twilio tells that an
// account deauthorized the Connect App, with the Connect App's
// DeauthorizeCallbackMethod, POST or GET. The request must carry a valid
// X-Twilio-Signature: HMAC-SHA1 with the owner's auth token over the
// callback URL as configured (external_url + DeauthorizePath), followed
// for a POST by the sorted form parameters, and for a GET by nothing: a
// GET is signed over the full URL, query string included.
func (p *Provider) Webhook(r *http.Request, name string) ([]string, error) {
	if name != "deauthorize" {
		return nil, fmt.Errorf("twilio has no callback %q; the deauthorize callback is %s", name, DeauthorizePath)
	}
	if !p.enabled() {
		return nil, fmt.Errorf("%w: %v", provider.ErrForbidden, errNotConfigured)
	}
	if p.externalURL == "" {
		return nil, fmt.Errorf("%w: external_url is unknown, so the signature cannot be checked", provider.ErrForbidden)
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return nil, fmt.Errorf("the deauthorize callback must be a GET or a POST, got %s", r.Method)
	}
	sig := r.Header.Get("X-Twilio-Signature")
	if sig == "" {
		return nil, fmt.Errorf("%w: no X-Twilio-Signature header", provider.ErrForbidden)
	}
	callback := p.externalURL + DeauthorizePath
	signed, params := callback, map[string]string{}
	var values url.Values
	if r.Method == http.MethodGet {
		signed += "?" + r.URL.RawQuery
		var err error
		if values, err = url.ParseQuery(r.URL.RawQuery); err != nil {
			return nil, fmt.Errorf("reading the deauthorize callback's query string: %w", err)
		}
	} else {
		r.Body = http.MaxBytesReader(nil, r.Body, maxWebhookBody)
		if err := r.ParseForm(); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, err
			}
			return nil, fmt.Errorf("reading the deauthorize callback's form: %w", err)
		}
		values = r.PostForm
		for k, v := range r.PostForm {
			params[k] = v[0]
		}
	}
	v := twclient.NewRequestValidator(p.authToken)
	if !v.Validate(signed, params, sig) {
		return nil, fmt.Errorf("%w: X-Twilio-Signature does not match (the Connect App's Deauthorize Callback URL must be exactly %s, and vendors.twilio.auth_token the owner's current token)", provider.ErrForbidden, callback)
	}
	params = map[string]string{"ConnectAppSid": values.Get("ConnectAppSid"), "AccountSid": values.Get("AccountSid")}
	if params["ConnectAppSid"] != p.connectAppSid {
		return nil, fmt.Errorf("%w: the callback is for another Connect App", provider.ErrForbidden)
	}
	acct := params["AccountSid"]
	if !accountSidRe.MatchString(acct) {
		return nil, errors.New("the deauthorize callback has no valid AccountSid")
	}
	p.log.Info("twilio: account deauthorized the Connect App", "account_sid", acct, "method", r.Method)
	return []string{acct}, nil
}

// StillAuthorized asks Twilio whether the Connect App still reads c's
// account. Twilio's signature has no timestamp, so a deauthorize callback
// can be replayed after the account authorized the app again: only an
// answer of 401 (code 20003) confirms it.
func (p *Provider) StillAuthorized(ctx context.Context, hc *http.Client, c provider.Connection) (bool, error) {
	if !accountSidRe.MatchString(c.AccountID) {
		return false, fmt.Errorf("connection %s has no Twilio Account SID", c.Name)
	}
	_, err := p.client(hc, c.AccountID).fetchAccount(ctx)
	switch {
	case err == nil:
		return true, nil
	case provider.StatusOf(err) == http.StatusUnauthorized:
		return false, nil
	}
	return false, err
}
