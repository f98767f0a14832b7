// Package sendgrid is everything the exporter knows about Twilio SendGrid:
// its API, how to connect (API key), and what to collect.
package sendgrid

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sendgrid/rest"
	sg "github.com/sendgrid/sendgrid-go"
	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/config"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/provider/oauth"
)

const vendor = "sendgrid"

// regionNames are the values of the connection's "region" setting, the
// default first; they are sendgrid-go's data residency names.
var regionNames = []string{"global", "eu"}

// Defaults of vendors.sendgrid. The hosts come from sendgrid-go's data
// residency table (see regionHost).
var (
	defaultAPIURL   = regionHost("global")
	defaultEUAPIURL = regionHost("eu")
)

const (
	// DefaultMaxSubusers bounds the subusers exported per period.
	DefaultMaxSubusers = 50
	// maxMaxSubusers keeps one collection's subuser calls and series sane.
	maxMaxSubusers = 1000
	settingRegion  = "region"
)

// regionHost asks sendgrid-go's SetDataResidency for a region's host, so
// the library's table stays the source. Requests do not go through
// SetDataResidency itself: it replaces the host with SendGrid's own, which
// would ignore api_url and eu_api_url (proxies, the simulator).
func regionHost(region string) string {
	r, err := sg.SetDataResidency(rest.Request{}, region)
	if err != nil {
		panic(fmt.Sprintf("sendgrid-go does not know region %q: %v", region, err)) // a library upgrade broke the table
	}
	return r.BaseURL
}

// recommendedScopes are what a restricted key needs for every metric
// ("read access to Subusers" in SendGrid's key editor grants the three
// subusers.* ones).
var recommendedScopes = []string{"stats.read", "user.credits.read", "user.account.read", "teammates.read", "api_keys.read",
	"subusers.read", "subusers.stats.sums.read", "subusers.credits.read"}

// RecommendedScopes returns a copy of the scopes a restricted key needs for
// every metric.
func RecommendedScopes() []string { return slices.Clone(recommendedScopes) }

// Config is the vendors.sendgrid section.
type Config struct {
	APIURL   string `yaml:"api_url"`
	EUAPIURL string `yaml:"eu_api_url"`
	// MaxSubusers is how many subusers (the top by requests) are exported
	// per period; 0 exports none.
	MaxSubusers *int `yaml:"max_subusers"`
	// OAuth enables connecting with SendGrid sign-in (authorization code).
	OAuth *oauth.Section `yaml:"oauth"`
}

// Factory registers SendGrid with the exporter.
func Factory() provider.Factory { return provider.Factory{Vendor: vendor, New: New} }

// Provider implements provider.Provider for SendGrid.
type Provider struct {
	apiURLs     map[string]string // by region, no trailing slash
	maxSubusers int
	pageSize    int           // limit of paged lists; SendGrid's largest, smaller in tests
	oauth       *oauth.Method // nil unless vendors.sendgrid.oauth is configured
	known       scopeMemory   // scopes learnt during collection (scopecheck.go)
}

// New builds the provider from its config section (nil: defaults).
func New(node *yaml.Node, env provider.Env) (provider.Provider, error) {
	var c Config
	if node != nil {
		if err := config.Decode(node, &c); err != nil {
			return nil, err
		}
	}
	var errs []error
	check := func(key string, v *string, def string) {
		var err error
		if *v, err = config.BaseURL(key, *v, def); err != nil {
			errs = append(errs, err)
		}
	}
	check("api_url", &c.APIURL, defaultAPIURL)
	check("eu_api_url", &c.EUAPIURL, defaultEUAPIURL)
	maxSub := DefaultMaxSubusers
	if c.MaxSubusers != nil {
		maxSub = *c.MaxSubusers
		if maxSub < 0 || maxSub > maxMaxSubusers {
			errs = append(errs, fmt.Errorf("max_subusers: must be between 0 (no subuser series) and %d, got %d", maxMaxSubusers, maxSub))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := &Provider{
		apiURLs:     map[string]string{"global": c.APIURL, "eu": c.EUAPIURL},
		maxSubusers: maxSub,
		pageSize:    pageSize,
	}
	var err error
	if c.OAuth != nil {
		if p.oauth, err = p.newOAuthMethod(c.OAuth, env); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *Provider) Vendor() string { return vendor }
func (p *Provider) Title() string  { return "SendGrid" }
func (p *Provider) Methods() []provider.Method {
	ms := []provider.Method{&apiKeyMethod{p}}
	if p.oauth != nil {
		ms = append(ms, p.oauth)
	}
	return ms
}

type apiKeyMethod struct{ p *Provider }

func (m *apiKeyMethod) Name() string  { return "api_key" }
func (m *apiKeyMethod) Title() string { return "API key" }
func (m *apiKeyMethod) Fields() []provider.Field {
	return []provider.Field{{
		Name:   "api_key",
		Label:  "API key",
		Help:   "Create a restricted key in SendGrid (Settings → API Keys) with read access to Stats, Billing (credits), Account, Teammates, API Keys and Subusers.",
		Secret: true,
	}, {
		Name:    settingRegion,
		Label:   "Region",
		Help:    "Where the account's data lives: global (api.sendgrid.com), or eu for an account pinned to the EU (api.eu.sendgrid.com).",
		Options: slices.Clone(regionNames),
	}}
}

// regionOf reads the region field or setting: empty means global.
func regionOf(v string) (string, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		return regionNames[0], nil
	}
	if !slices.Contains(regionNames, v) {
		if len(v) > 20 {
			v = v[:20] + "…"
		}
		return "", provider.Inputf(settingRegion, "unknown region %q: choose one of %s (eu only for an account whose data SendGrid keeps in the EU)", v, strings.Join(regionNames, ", "))
	}
	return v, nil
}

func otherRegion(r string) string {
	if r == "eu" {
		return "global"
	}
	return "eu"
}

func regionTitle(r string) string {
	if r == "eu" {
		return "EU"
	}
	return "global"
}

// client returns a client for region's host.
func (p *Provider) client(hc *http.Client, region, key string) *client {
	return &client{hc: hc, apiURL: p.apiURLs[region], key: key}
}

// Verify checks the key with GET /v3/scopes at the chosen region's host
// before anything is stored. A key refused there is tried once at the
// other host, to say which region it belongs to.
func (m *apiKeyMethod) Verify(ctx context.Context, hc *http.Client, values map[string]string) (*provider.Credential, error) {
	region, err := regionOf(values[settingRegion])
	if err != nil {
		return nil, err
	}
	key := strings.TrimSpace(values["api_key"])
	switch {
	case key == "":
		return nil, provider.Inputf("api_key", "API key is empty: paste the key SendGrid showed when you created it (it starts with SG.)")
	case len(key) > 200 || strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r > '~' }):
		return nil, provider.Inputf("api_key", "API key contains characters a SendGrid key never has: paste only the key, without spaces or quotes")
	case !strings.HasPrefix(key, "SG."):
		return nil, provider.Inputf("api_key", "this is not a SendGrid API key: keys start with SG. (copy it from Settings → API Keys)")
	}
	c := m.p.client(hc, region, key)
	scopes, err := c.scopes(ctx)
	if err != nil {
		if st := provider.StatusOf(err); st == http.StatusUnauthorized || st == http.StatusForbidden {
			other := otherRegion(region)
			if _, oerr := m.p.client(hc, other, key).scopes(ctx); oerr == nil {
				return nil, provider.Inputf(settingRegion, "this key belongs to SendGrid's %s region: choose region %s and connect again", regionTitle(other), other)
			}
			return nil, provider.Inputf("api_key", "SendGrid rejected the key in region %s (%v). Check that you pasted the whole key, that it was not deleted, and the region.", region, err)
		}
		return nil, fmt.Errorf("could not verify the key with SendGrid at %s: %w", c.apiURL, err)
	}
	cred := &provider.Credential{
		AuthMethod:    m.Name(),
		Secret:        map[string]string{"api_key": key},
		Settings:      map[string]string{settingRegion: region},
		Scopes:        scopes,
		MissingScopes: missing(scopes),
	}
	cred.Account, cred.AccountID = c.identify(ctx, scopes)
	return cred, nil
}

func missing(granted []string) []string {
	var out []string
	for _, s := range recommendedScopes {
		if !slices.Contains(granted, s) {
			out = append(out, s)
		}
	}
	return out
}

// client calls the SendGrid v3 API with one key.
type client struct {
	hc     *http.Client
	apiURL string
	key    string
	tops   topMemo // one collection's top subusers by period
}

// get builds the request with sendgrid-go (auth and headers) and sends it
// with the exporter's client. sendgrid-go's own senders
// (MakeRequestWithContext) would go through rest.DefaultClient: not the
// engine's transport (call counting, rate-limit headers, per-account
// bounds) and with a sleep-and-retry on 429 that ignores the deadline.
func (c *client) get(ctx context.Context, path string, query map[string]string, out any) error {
	r := sg.GetRequest(c.key, path, c.apiURL)
	r.Method = rest.Get
	r.QueryParams = query
	req, err := rest.BuildRequestObject(r)
	if err != nil {
		return fmt.Errorf("sendgrid: building request for %s: %w", path, err)
	}
	return provider.DoJSON(c.hc, req.WithContext(ctx), vendor, parseError, out)
}

// parseError reads SendGrid's {"errors":[{"field":…,"message":…}]}.
func parseError(body []byte) (code, message string) {
	var e struct {
		Errors []struct {
			Field   *string `json:"field"`
			Message string  `json:"message"`
		} `json:"errors"`
	}
	// Every good answer is checked too (a gateway's 200 with an error
	// body): a body without the key is not decoded twice.
	if !provider.MayHaveKey(body, "errors") || provider.Unmarshal(body, &e) != nil {
		return "", ""
	}
	var msgs []string
	for _, x := range e.Errors {
		m := x.Message
		if x.Field != nil && *x.Field != "" {
			m = *x.Field + ": " + m
		}
		msgs = append(msgs, m)
	}
	return "", strings.Join(msgs, "; ")
}

func (c *client) scopes(ctx context.Context) ([]string, error) {
	var r struct {
		Scopes []string `json:"scopes"`
	}
	if err := c.get(ctx, "/v3/scopes", nil, &r); err != nil {
		return nil, err
	}
	slices.Sort(r.Scopes)
	return r.Scopes, nil
}

// dateOf parses SendGrid's "YYYY-MM-DD" dates (UTC).
func dateOf(s string) (time.Time, bool) {
	t, err := time.Parse("2006-01-02", s)
	return t, err == nil
}
