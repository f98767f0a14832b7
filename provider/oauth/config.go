// Package oauth is the generic OAuth 2.0 authorization-code client that
// providers build on: a provider.RedirectMethod (PKCE S256; the state comes
// from the web flow that calls it) and the token lifecycle a provider runs
// inside Collect (refresh before expiry and once after a 401, rotation saved
// under the store's cross-replica lock, failure window, expiry). It sits below
// the vendor packages: it may import provider, store and config, never auth,
// collector or a vendor package, and it never names a vendor.
package oauth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/saas-exporter/saas_exporter/config"
)

// Defaults of a Config.
const (
	DefaultRefreshFailureWindow = 96 * time.Hour
	DefaultRefreshMargin        = 60 * time.Second
	DefaultRetryBackoff         = 250 * time.Millisecond
)

// Section is the YAML of an OAuth client registration, e.g.
// vendors.<vendor>.oauth. Decode it with config.Decode and turn it into a
// Config with Section.Config.
type Section struct {
	ClientID         string   `yaml:"client_id"`
	ClientSecret     string   `yaml:"client_secret"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	AuthURL          string   `yaml:"auth_url"`
	TokenURL         string   `yaml:"token_url"`
	Scopes           []string `yaml:"scopes"`
	// RefreshFailureWindow: how long refreshing may fail (network, 5xx)
	// before the connection is marked expired. Default 96h.
	RefreshFailureWindow time.Duration `yaml:"refresh_failure_window"`
}

// Config checks the section and reads client_secret_file. key is the
// section's name in errors relative to where the caller reports them
// (e.g. "oauth", which the exporter prefixes with "vendors.<vendor>: ").
// defaultScopes are used when scopes is empty.
func (s Section) Config(key string, defaultScopes []string) (Config, error) {
	var errs []error
	secret, err := config.ReadSecret(s.ClientSecret, s.ClientSecretFile, key+".client_secret")
	if err != nil {
		errs = append(errs, err)
	}
	c := Config{
		ClientID:             strings.TrimSpace(s.ClientID),
		ClientSecret:         secret,
		AuthURL:              strings.TrimSpace(s.AuthURL),
		TokenURL:             strings.TrimSpace(s.TokenURL),
		Scopes:               s.Scopes,
		RefreshFailureWindow: s.RefreshFailureWindow,
	}
	if len(c.Scopes) == 0 {
		c.Scopes = append([]string(nil), defaultScopes...)
	}
	if c.ClientID == "" {
		errs = append(errs, fmt.Errorf("%s.client_id is required (the client id of the OAuth app registered with the vendor)", key))
	}
	if err == nil && secret == "" {
		errs = append(errs, fmt.Errorf("%s: set client_secret or client_secret_file (the OAuth app's client secret)", key))
	}
	for _, u := range []struct{ name, v string }{{"auth_url", c.AuthURL}, {"token_url", c.TokenURL}} {
		if u.v == "" {
			errs = append(errs, fmt.Errorf("%s.%s is required", key, u.name))
		} else if err := checkURL(u.v); err != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %v, got %q", key, u.name, err, u.v))
		}
	}
	for _, sc := range c.Scopes {
		if sc == "" || strings.ContainsAny(sc, " \t\r\n\"\\") {
			errs = append(errs, fmt.Errorf("%s.scopes: %q is not a scope (one scope per list item, no spaces or quotes)", key, sc))
		}
	}
	if c.RefreshFailureWindow < 0 {
		errs = append(errs, fmt.Errorf("%s.refresh_failure_window must be positive, got %s", key, c.RefreshFailureWindow))
	}
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}

func checkURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http(s) URL")
	}
	if u.Fragment != "" {
		return errors.New("must not have a #fragment")
	}
	return nil
}

// Config is an OAuth 2.0 client registration plus the lifecycle rules.
type Config struct {
	ClientID     string
	ClientSecret string
	AuthURL      string
	TokenURL     string
	Scopes       []string
	// AuthStyle is how the client authenticates at the token endpoint.
	// Zero means HTTP basic (RFC 6749 §2.3.1, which every server must
	// support); oauth2's auto-detection is never used, since it sends a
	// failed refresh twice.
	AuthStyle oauth2.AuthStyle
	// RefreshFailureWindow: refreshing may fail this long (network, 5xx)
	// before the connection is expired. Default 96h.
	RefreshFailureWindow time.Duration
	// RefreshMargin: access tokens are refreshed this long before they
	// expire. Default 60s.
	RefreshMargin time.Duration
	// RetryBackoff is the first wait before retrying a refresh that
	// failed with a network error or 5xx; it doubles per retry, within the
	// scrape's deadline. Default 250ms.
	RetryBackoff time.Duration
	// ConfigKey names the configuration section in messages for people,
	// e.g. "vendors.example.oauth".
	ConfigKey string
	// Now is the clock of Finish (token expiries at connect time). Default
	// time.Now. Collection uses Scrape.Now instead.
	Now func() time.Time
	// Logger gets refresh outcomes (never a token). Default: discard.
	Logger *slog.Logger
}

func (c *Config) applyDefaults() {
	if c.RefreshFailureWindow <= 0 {
		c.RefreshFailureWindow = DefaultRefreshFailureWindow
	}
	if c.RefreshMargin <= 0 {
		c.RefreshMargin = DefaultRefreshMargin
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.AuthStyle == oauth2.AuthStyleAutoDetect {
		c.AuthStyle = oauth2.AuthStyleInHeader
	}
	if c.ConfigKey == "" {
		c.ConfigKey = "the OAuth configuration"
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// oauth2Config is built per call: oauth2.Config holds a cache that must
// not be copied, and the redirect URL differs per flow.
func (c *Config) oauth2Config(redirectURL string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: c.AuthURL, TokenURL: c.TokenURL, AuthStyle: c.AuthStyle},
		RedirectURL:  redirectURL,
		Scopes:       c.Scopes,
	}
}
