package sendgrid

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"golang.org/x/oauth2"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/provider/oauth"
)

// oauthMethodName is the auth_method of connections made with OAuth.
const oauthMethodName = "oauth"

// defaultOAuthScopes are requested when vendors.sendgrid.oauth.scopes is
// empty: every recommended scope, plus the account's name and id.
var defaultOAuthScopes = append(slices.Clone(recommendedScopes), "user.username.read")

// newOAuthMethod builds the OAuth method from vendors.sendgrid.oauth.
func (p *Provider) newOAuthMethod(sec *oauth.Section, env provider.Env) (*oauth.Method, error) {
	resolved := *sec
	resolved.ClientSecretFile = env.Path(sec.ClientSecretFile)
	cfg, err := resolved.Config("oauth", defaultOAuthScopes)
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
	for _, region := range regionNames {
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

// askScopes reads /v3/scopes with c's credential and records the answer.
// A 401 is the verdict on the credential: an API key is revoked; an
// OAuth connection's access token tok is refreshed (oauth.Rejected) and
// asked again, and a second 401 means the grant is gone.
func (p *Provider) askScopes(ctx context.Context, s *provider.Scrape, c *client, tok string) ([]string, error) {
	scopes, err := c.scopes(ctx)
	if provider.StatusOf(err) == http.StatusUnauthorized {
		if tok == "" {
			return nil, provider.Revoked(err)
		}
		if c.key, err = p.oauth.Rejected(ctx, s, tok); err != nil {
			return nil, err
		}
		scopes, err = c.scopes(ctx)
		if provider.StatusOf(err) == http.StatusUnauthorized {
			return nil, provider.Expired(fmt.Errorf("SendGrid refused the refreshed access token (%v); reconnect the connection", err))
		}
	}
	if err != nil {
		return nil, err
	}
	p.known.set(s.Conn, scopes)
	s.MissingScopes(missing(scopes))
	return scopes, nil
}

// midCollection401 reports a 401 on an OAuth connection after /v3/scopes
// accepted the token: not a verdict on the grant (the next scrape refreshes
// and decides), so the 401 is not passed on for the engine to read as
// revocation.
func midCollection401(err error) error {
	return fmt.Errorf("%v (SendGrid refused the access token during the collection; the next one refreshes it)", err)
}
