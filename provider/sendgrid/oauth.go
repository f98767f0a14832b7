package sendgrid

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"golang.org/x/oauth2"

	"github.com/saas-exporter/saas_exporter/auth/oauth"
	"github.com/saas-exporter/saas_exporter/provider"
)

// oauthMethodName is the auth_method of connections made with OAuth.
const oauthMethodName = "oauth"

// DefaultOAuthScopes are requested when vendors.sendgrid.oauth.scopes is
// empty: every recommended scope, plus the account's name and id.
var DefaultOAuthScopes = append(slices.Clone(RecommendedScopes), "user.username.read")

// newOAuthMethod builds the OAuth method from vendors.sendgrid.oauth.
func (p *Provider) newOAuthMethod(sec *oauth.Section, env provider.Env) (*oauth.Method, error) {
	resolved := *sec
	resolved.ClientSecretFile = env.Path(sec.ClientSecretFile)
	cfg, err := resolved.Config("oauth", DefaultOAuthScopes)
	if err != nil {
		return nil, err
	}
	cfg.ConfigKey = "vendors.sendgrid.oauth"
	cfg.Logger = env.Logger
	cfg.Now = env.Clock()
	return oauth.NewMethod(oauthMethodName, "SendGrid sign-in (OAuth)", "SendGrid", cfg, p.verifyOAuth), nil
}

// verifyOAuth checks a newly issued access token with GET /v3/scopes and
// learns the account, as for an API key. A sign-in has no form to choose
// a region in, so the region is whichever host accepts the token, global
// first; it is stored like an API key's and used from then on.
func (p *Provider) verifyOAuth(ctx context.Context, hc *http.Client, tok *oauth2.Token) (*provider.Credential, error) {
	var refused error
	for _, region := range Regions {
		c := p.client(hc, region, tok.AccessToken)
		scopes, err := c.scopes(ctx)
		if st := provider.StatusOf(err); err != nil && (st == http.StatusUnauthorized || st == http.StatusForbidden) {
			if refused == nil {
				refused = err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("could not verify the access token with SendGrid at %s: %w", c.apiURL, err)
		}
		cred := &provider.Credential{Scopes: scopes, MissingScopes: missing(scopes), Settings: map[string]string{settingRegion: region}}
		cred.Account, cred.AccountID = c.identify(ctx, scopes)
		return cred, nil
	}
	return nil, fmt.Errorf("SendGrid at %s (and at %s, the EU host) did not accept the access token its authorization server just issued (%v); check that auth_url and token_url in vendors.sendgrid.oauth belong to the same SendGrid as api_url", p.apiURLs["global"], p.apiURLs["eu"], refused)
}

// identify reads the account's name and id where the scopes allow it;
// empty when they do not or the call fails (the connection name is then
// what people see).
func (c *client) identify(ctx context.Context, scopes []string) (name, id string) {
	if !slices.Contains(scopes, "user.username.read") {
		return "", ""
	}
	var u struct {
		Username string `json:"username"`
		UserID   int64  `json:"user_id"`
	}
	if err := c.get(ctx, "/v3/user/username", nil, &u); err != nil {
		return "", ""
	}
	if u.UserID != 0 {
		id = strconv.FormatInt(u.UserID, 10)
	}
	return u.Username, id
}

// oauthScopes sets c's key to the connection's access token (refreshed as
// needed) and checks it with GET /v3/scopes. A 401 refreshes once and
// retries; a refreshed token that is refused again means a person must
// reconnect.
func (p *Provider) oauthScopes(ctx context.Context, s *provider.Scrape, c *client) ([]string, error) {
	if p.oauth == nil {
		return nil, errors.New("sendgrid: this connection uses OAuth, but vendors.sendgrid.oauth is no longer configured; configure it again, or reconnect with an API key")
	}
	tok, err := p.oauth.AccessToken(ctx, s)
	if err != nil {
		return nil, err
	}
	c.key = tok
	scopes, err := c.scopes(ctx)
	if provider.StatusOf(err) != http.StatusUnauthorized {
		return scopes, err
	}
	if c.key, err = p.oauth.Rejected(ctx, s, tok); err != nil {
		return nil, err
	}
	scopes, err = c.scopes(ctx)
	if provider.StatusOf(err) == http.StatusUnauthorized {
		return nil, provider.Expired(fmt.Errorf("SendGrid refused the refreshed access token (%v); reconnect the connection", err))
	}
	return scopes, err
}

// midCollection401 reports a 401 on an OAuth connection after /v3/scopes
// accepted the token: not a verdict on the grant (the next scrape refreshes
// and decides), so the 401 is not passed on for the engine to read as
// revocation.
func midCollection401(err error) error {
	return fmt.Errorf("%v (SendGrid refused the access token during the collection; the next one refreshes it)", err)
}
