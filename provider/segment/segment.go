// Package segment is everything the exporter knows about Twilio Segment:
// its Public API (net/http; the official Go SDK is not used), how to
// connect (a Public API token, or OAuth client credentials with a
// private_key_jwt assertion), and what to collect.
package segment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/config"
	"github.com/saas-exporter/saas_exporter/provider"
)

// Defaults of the vendors.segment keys. The OAuth authorization servers
// are Segment's documented regional ones; their token route is /token.
const (
	DefaultAPIURL     = "https://api.segmentapis.com"
	DefaultEUAPIURL   = "https://eu1.api.segmentapis.com"
	DefaultTokenURL   = "https://oauth2.segment.io/token"
	DefaultEUTokenURL = "https://oauth2.eu1.segmentapis.com/token"
)

// Method names (the auth_method label).
const (
	MethodToken             = "token"
	MethodClientCredentials = "client_credentials"
)

// apiVersion is the media type of Public API version 1, sent as Accept on
// every call.
const apiVersion = "application/vnd.segment.v1+json"

// Scope is the OAuth scope of the Public API.
const Scope = "public_api:read_write"

// regionNames lists the region values, the default first.
var regionNames = []string{"us", "eu"}

const vendor = "segment"

// Keys of Credential.Settings and Credential.Secret.
const (
	settingRegion        = "region"
	settingWorkspaceSlug = "workspace_slug"
	settingClientID      = "client_id"
	settingKeyID         = "key_id"
	// settingPeriodStart is a date on which one of the workspace's usage
	// periods started, found when connecting, so that a new process does
	// not search for it (see resolvePeriod).
	settingPeriodStart = "usage_period_start"

	secretToken       = "token"
	secretPrivateKey  = "private_key"
	secretAccessToken = "access_token"
	secretTokenExpiry = "access_token_expiry" // RFC 3339
)

// Config is the vendors.segment section. Every key is optional.
type Config struct {
	APIURL     string `yaml:"api_url"`
	EUAPIURL   string `yaml:"eu_api_url"`
	TokenURL   string `yaml:"token_url"`
	EUTokenURL string `yaml:"eu_token_url"`
	// MTULimits are the plans' MTUs per period by workspace slug: the
	// connection page draws billable MTUs against them. Segment's API does
	// not tell a plan's limit.
	MTULimits map[string]float64 `yaml:"mtu_limits"`
}

// Factory registers Segment with the exporter.
func Factory() provider.Factory { return provider.Factory{Vendor: vendor, New: New} }

// region is where one Segment region answers.
type region struct {
	name     string // us, eu
	apiURL   string // no trailing slash
	tokenURL string
}

// Provider implements provider.Provider for Segment.
type Provider struct {
	regions map[string]region
	log     *slog.Logger
	// now is Verify's clock; Collect uses Scrape.Now.
	now func() time.Time
	// retryDelays are the waits between token requests when a renewal
	// fails for a reason that may pass (network, 5xx; a 429 waits for its
	// Retry-After instead).
	retryDelays []time.Duration
	// sleep waits d or until ctx ends (tests record the waits).
	sleep func(ctx context.Context, d time.Duration) error

	mtuLimits map[string]float64 // vendors.segment.mtu_limits

	mu      sync.Mutex
	periods map[string]knownPeriod // by connection id
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
	check("api_url", &c.APIURL, DefaultAPIURL)
	check("eu_api_url", &c.EUAPIURL, DefaultEUAPIURL)
	check("token_url", &c.TokenURL, DefaultTokenURL)
	check("eu_token_url", &c.EUTokenURL, DefaultEUTokenURL)
	for slug, n := range c.MTULimits {
		if n <= 0 || slug == "" {
			errs = append(errs, fmt.Errorf("mtu_limits: %q: %v: each entry must be a workspace slug with the plan's MTUs per period, a number above 0", slug, n))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provider{
		regions: map[string]region{
			"us": {name: "us", apiURL: c.APIURL, tokenURL: c.TokenURL},
			"eu": {name: "eu", apiURL: c.EUAPIURL, tokenURL: c.EUTokenURL},
		},
		log:         log,
		now:         env.Clock(),
		retryDelays: []time.Duration{250 * time.Millisecond, time.Second},
		sleep:       sleepCtx,
		periods:     map[string]knownPeriod{},
		mtuLimits:   c.MTULimits,
	}, nil
}

func (p *Provider) Vendor() string { return vendor }
func (p *Provider) Title() string  { return "Segment" }
func (p *Provider) Methods() []provider.Method {
	return []provider.Method{&tokenMethod{p}, &clientCredentialsMethod{p}}
}

// regionOf reads the region field: empty means the default (us).
func (p *Provider) regionOf(v string) (region, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		v = regionNames[0]
	}
	r, ok := p.regions[v]
	if !ok {
		if len(v) > 20 {
			v = v[:20] + "…"
		}
		return region{}, provider.Inputf("region", "unknown region %q: choose one of %s (the region your Segment workspace was created in)", v, strings.Join(regionNames, ", "))
	}
	return r, nil
}

func (p *Provider) otherRegion(r region) region {
	if r.name == "us" {
		return p.regions["eu"]
	}
	return p.regions["us"]
}

func regionField() provider.Field {
	return provider.Field{
		Name:    "region",
		Label:   "Region",
		Help:    "Where the workspace lives: us (api.segmentapis.com) or eu (eu1.api.segmentapis.com).",
		Options: append([]string(nil), regionNames...),
	}
}

type tokenMethod struct{ p *Provider }

func (m *tokenMethod) Name() string  { return MethodToken }
func (m *tokenMethod) Title() string { return "Public API token" }
func (m *tokenMethod) Fields() []provider.Field {
	return []provider.Field{
		{
			Name:   "token",
			Label:  "Public API token",
			Help:   "A workspace owner creates it in Segment under Settings → Workspace settings → Access Management → Tokens (Public API).",
			Secret: true,
		},
		regionField(),
	}
}

// Verify reads the workspace with GET / before anything is stored. A token
// refused in one region is tried once in the other, to say which region
// it belongs to.
func (m *tokenMethod) Verify(ctx context.Context, hc *http.Client, values map[string]string) (*provider.Credential, error) {
	r, err := m.p.regionOf(values["region"])
	if err != nil {
		return nil, err
	}
	token, err := checkToken(values["token"])
	if err != nil {
		return nil, err
	}
	c := &client{hc: hc, apiURL: r.apiURL, token: token, now: m.p.now()}
	ws, err := c.workspace(ctx)
	if err != nil {
		if st := provider.StatusOf(err); st == http.StatusUnauthorized || st == http.StatusForbidden {
			other := m.p.otherRegion(r)
			oc := &client{hc: hc, apiURL: other.apiURL, token: token, now: m.p.now()}
			if _, oerr := oc.workspace(ctx); oerr == nil {
				return nil, provider.Inputf("region", "this token belongs to the %s region: choose region %s and connect again", strings.ToUpper(other.name), other.name)
			}
			return nil, provider.Inputf("token", "Segment rejected the token in region %s (%v). Check that you pasted the whole token, that it was not removed in Segment, and the region.", r.name, err)
		}
		return nil, fmt.Errorf("could not verify the token with Segment at %s: %w", r.apiURL, err)
	}
	settings := map[string]string{settingRegion: r.name, settingWorkspaceSlug: ws.Slug}
	m.p.rememberPeriod(ctx, c, settings)
	return &provider.Credential{
		AccountID:  ws.ID,
		Account:    ws.account(),
		AuthMethod: MethodToken,
		Settings:   settings,
		Secret:     map[string]string{secretToken: token},
	}, nil
}

// rememberPeriod stores the workspace's usage period start in settings
// when Segment tells it (see settingPeriodStart); nothing otherwise.
func (p *Provider) rememberPeriod(ctx context.Context, c *client, settings map[string]string) {
	if start, ok := p.findPeriod(ctx, c, p.now()); ok {
		settings[settingPeriodStart] = start.Format(time.DateOnly)
	}
}

// MaxConcurrentCalls: Segment documents rate limits by token and sender
// address, with headers and 429s (honoured by the engine), but no number
// of calls in flight; it warns against bursts of N+1 calls. 12 lets one
// collection (11 calls when the period is known) go out at once, and a
// period search (31 calls, only when none is known) in three waves.
func (p *Provider) MaxConcurrentCalls() int { return 12 }

// checkToken trims a pasted token and rejects what no Segment token looks
// like, without echoing it.
func checkToken(v string) (string, error) {
	t := strings.TrimSpace(v)
	if rest, ok := strings.CutPrefix(t, "Bearer "); ok {
		t = strings.TrimSpace(rest)
	}
	switch {
	case t == "":
		return "", provider.Inputf("token", "the token is empty: paste the Public API token Segment showed when it was created")
	case strings.ContainsFunc(t, func(r rune) bool { return !tokenChar(r) }):
		return "", provider.Inputf("token", "the token contains characters a Segment token never has (spaces, quotes, line breaks?): paste only the token")
	case len(t) < 20 || len(t) > 2048:
		return "", provider.Inputf("token", "this does not look like a Segment Public API token (they start with sgp_ and are about 70 characters long)")
	}
	return t, nil
}

func tokenChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~+/=", r)
}

// workspace is the answer of GET /.
type workspace struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Slug string `json:"slug"`
}

func (w workspace) account() string {
	if w.Name != "" {
		return w.Name
	}
	return w.Slug
}

// client calls the Public API of one region with one bearer token.
type client struct {
	hc     *http.Client
	apiURL string
	token  string
	now    time.Time // rate-limit waits count from here
}

// get calls path with query and decodes the answer into out. A 429 whose
// body says msBeforeNext becomes provider.RateLimited.
func (c *client) get(ctx context.Context, path string, query url.Values, out any) error {
	u := c.apiURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("segment: building request for %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	// Pinned: an unversioned call gets "the most stable version", which
	// can change under us.
	req.Header.Set("Accept", apiVersion)
	req.Header.Set("User-Agent", "saas_exporter")
	var wait *float64
	err = provider.DoJSON(c.hc, req, vendor, func(body []byte) (string, string) {
		code, msg, ms := parseError(body)
		wait = ms
		return code, msg
	}, out)
	if provider.StatusOf(err) == http.StatusTooManyRequests && wait != nil && *wait >= 0 {
		return provider.RateLimited(c.now.Add(time.Duration(*wait*float64(time.Millisecond))), err)
	}
	return err
}

// parseError reads Segment's {"errors":[{"type":…,"message":…,"data":…}]};
// data.msBeforeNext is set on a 429.
func parseError(body []byte) (code, message string, msBeforeNext *float64) {
	var e struct {
		Errors []struct {
			Type    string `json:"type"`
			Message string `json:"message"`
			Field   string `json:"field"`
			Data    struct {
				MsBeforeNext *float64 `json:"msBeforeNext"`
			} `json:"data"`
		} `json:"errors"`
	}
	// Every good answer is checked too (a gateway's 200 with an error
	// body): a body without the key is not decoded twice.
	if !provider.MayHaveKey(body, "errors") || provider.Unmarshal(body, &e) != nil {
		return "", "", nil
	}
	var msgs []string
	for _, x := range e.Errors {
		if code == "" {
			code = x.Type
		}
		m := x.Message
		if x.Field != "" {
			m = x.Field + ": " + m
		}
		if m != "" {
			msgs = append(msgs, m)
		}
		if x.Data.MsBeforeNext != nil && msBeforeNext == nil {
			msBeforeNext = x.Data.MsBeforeNext
		}
	}
	return code, strings.Join(msgs, "; "), msBeforeNext
}

func (c *client) workspace(ctx context.Context) (workspace, error) {
	var r struct {
		Data struct {
			Workspace *workspace `json:"workspace"`
		} `json:"data"`
	}
	if err := c.get(ctx, "/", nil, &r); err != nil {
		return workspace{}, err
	}
	if r.Data.Workspace == nil || r.Data.Workspace.ID == "" {
		return workspace{}, fmt.Errorf("segment GET /: the answer names no workspace (expected data.workspace.id)")
	}
	return *r.Data.Workspace, nil
}

// sleepCtx waits d, or less if ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
