// Package sendgrid is everything the exporter knows about Twilio SendGrid:
// its API, how to connect (API key), and what to collect.
package sendgrid

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sendgrid/rest"
	sg "github.com/sendgrid/sendgrid-go"
	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/auth/oauth"
	"github.com/saas-exporter/saas_exporter/config"
	"github.com/saas-exporter/saas_exporter/provider"
)

const (
	vendor        = "sendgrid"
	defaultAPIURL = "https://api.sendgrid.com"
)

// RecommendedScopes are what a restricted key needs for every metric.
var RecommendedScopes = []string{"stats.read", "user.credits.read", "user.account.read", "teammates.read", "api_keys.read", "subusers.read"}

// Config is the vendors.sendgrid section.
type Config struct {
	APIURL string `yaml:"api_url"`
	// OAuth enables connecting with SendGrid sign-in (authorization code).
	OAuth *oauth.Section `yaml:"oauth"`
}

// Factory registers SendGrid with the exporter.
var Factory = provider.Factory{Vendor: vendor, New: New}

// Provider implements provider.Provider for SendGrid.
type Provider struct {
	apiURL string
	oauth  *oauth.Method // nil unless vendors.sendgrid.oauth is configured
	known  scopeMemory   // scopes learnt during collection (scopecheck.go)
}

// New builds the provider from its config section (nil: defaults).
func New(node *yaml.Node, env provider.Env) (provider.Provider, error) {
	var c Config
	if node != nil {
		if err := config.Decode(node, &c); err != nil {
			return nil, err
		}
	}
	if c.APIURL == "" {
		c.APIURL = defaultAPIURL
	}
	u, err := url.Parse(c.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api_url: must be an absolute http(s) URL such as %s, got %q", defaultAPIURL, c.APIURL)
	}
	p := &Provider{apiURL: strings.TrimRight(c.APIURL, "/")}
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
	}}
}

// Verify checks the key with GET /v3/scopes before anything is stored.
func (m *apiKeyMethod) Verify(ctx context.Context, hc *http.Client, values map[string]string) (*provider.Credential, error) {
	key := strings.TrimSpace(values["api_key"])
	switch {
	case key == "":
		return nil, provider.Inputf("api_key", "API key is empty: paste the key SendGrid showed when you created it (it starts with SG.)")
	case len(key) > 200 || strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r > '~' }):
		return nil, provider.Inputf("api_key", "API key contains characters a SendGrid key never has: paste only the key, without spaces or quotes")
	case !strings.HasPrefix(key, "SG."):
		return nil, provider.Inputf("api_key", "this is not a SendGrid API key: keys start with SG. (copy it from Settings → API Keys)")
	}
	c := &client{hc: hc, apiURL: m.p.apiURL, key: key}
	scopes, err := c.scopes(ctx)
	if err != nil {
		if st := provider.StatusOf(err); st == http.StatusUnauthorized || st == http.StatusForbidden {
			return nil, provider.Inputf("api_key", "SendGrid rejected the key (%v). Check that you pasted the whole key and that it was not deleted.", err)
		}
		return nil, fmt.Errorf("could not verify the key with SendGrid at %s: %w", m.p.apiURL, err)
	}
	cred := &provider.Credential{
		AuthMethod:    m.Name(),
		Secret:        map[string]string{"api_key": key},
		Scopes:        scopes,
		MissingScopes: missing(scopes),
	}
	cred.Account, cred.AccountID = c.identify(ctx, scopes)
	return cred, nil
}

func missing(granted []string) []string {
	var out []string
	for _, s := range RecommendedScopes {
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
}

// get builds the request the way sendgrid-go does (auth and headers) and
// sends it with the exporter's client: context-aware, bounded, counted.
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
	if json.Unmarshal(body, &e) != nil {
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
