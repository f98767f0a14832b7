package segment

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/saas-exporter/saas_exporter/provider"
)

// OAuth timing.
const (
	// assertionLifetime: Segment expects client assertions to be valid
	// "for less than sixty seconds", counted from iat.
	assertionLifetime = 50 * time.Second
	// clockSkew: iat is set this far in the past, so a token server whose
	// clock is a little behind ours does not see an assertion from the
	// future (Segment's own SDKs use 5 s).
	clockSkew = 5 * time.Second
	// maxRetryAfter bounds a token endpoint's Retry-After (Segment's SDKs
	// clamp it to 300 s).
	maxRetryAfter = 5 * time.Minute
	// renewMargin: an access token with less than this left is renewed
	// before use (Segment's lifetimes run from one day to 30 days).
	renewMargin = 10 * time.Minute
	// maxTokenBody bounds what is read of a token endpoint answer.
	maxTokenBody = 64 << 10
)

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

type clientCredentialsMethod struct{ p *Provider }

func (m *clientCredentialsMethod) Name() string  { return MethodClientCredentials }
func (m *clientCredentialsMethod) Title() string { return "OAuth (client credentials)" }
func (m *clientCredentialsMethod) Fields() []provider.Field {
	return []provider.Field{
		regionField(),
		{
			Name:  "client_id",
			Label: "App ID",
			Help:  "The OAuth app's App ID (Settings → Workspace settings → Access Management → OAuth application → Overview). The app needs the public_api:read_write scope.",
		},
		{
			Name:  "key_id",
			Label: "Key ID",
			Help:  "The Key ID of the public key you uploaded to the OAuth app.",
		},
		{
			Name:      "private_key",
			Label:     "Private key (PEM)",
			Help:      "The RSA private key whose public half is uploaded to the OAuth app, from -----BEGIN … PRIVATE KEY----- to the END line. It is stored encrypted and only signs token requests.",
			Secret:    true,
			Multiline: true,
		},
	}
}

// oauthApp is what signs token requests for one connection.
type oauthApp struct {
	region   region
	clientID string
	keyID    string
	key      *rsa.PrivateKey
	keyPEM   string // as stored
}

// audience is the assertion's aud (and iss): Segment documents it as the
// authorization server, https://oauth2.segment.io (US) or
// https://oauth2.eu1.segmentapis.com (EU), i.e. the token URL without its
// /token route.
func (a *oauthApp) audience() string { return strings.TrimSuffix(a.region.tokenURL, "/token") }

// assertion signs a client assertion: RS256, header kid, iss and aud the
// authorization server, sub the App ID, a fresh jti.
func (a *oauthApp) assertion(now time.Time) (string, error) {
	aud := a.audience()
	claims := struct {
		jwt.RegisteredClaims
		// aud as a plain string, as Segment shows it (jwt-go would write
		// an array); the outer field wins over the embedded one.
		Aud string `json:"aud"`
	}{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    aud,
			Subject:   a.clientID,
			IssuedAt:  jwt.NewNumericDate(now.Add(-clockSkew)),
			ExpiresAt: jwt.NewNumericDate(now.Add(-clockSkew + assertionLifetime)),
			ID:        rand.Text(),
		},
		Aud: aud,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = a.keyID
	s, err := t.SignedString(a.key)
	if err != nil {
		return "", fmt.Errorf("segment: signing the client assertion: %w", err)
	}
	return s, nil
}

// tokenError is a failed token request.
type tokenError struct {
	url    string
	status int // 0: no answer
	err    error
	// retryAfter is a 429's Retry-After, bounded to maxRetryAfter; -1 if
	// the answer named none.
	retryAfter time.Duration
}

func (e *tokenError) Error() string {
	if e.status == 0 {
		return fmt.Sprintf("segment token request to %s: %v", e.url, e.err)
	}
	return fmt.Sprintf("segment token request to %s: HTTP %d: %v", e.url, e.status, e.err)
}

func (e *tokenError) Unwrap() error { return e.err }

// definitive reports whether retrying cannot help: the server refused the
// client or the request (invalid_client, invalid_grant, …).
func (e *tokenError) definitive() bool {
	return e.status >= 400 && e.status < 500 && e.status != http.StatusTooManyRequests && e.status != http.StatusRequestTimeout
}

func (e *tokenError) oauthCode() string {
	var re *oauth2.RetrieveError
	if errors.As(e.err, &re) {
		return re.ErrorCode
	}
	return ""
}

// fetch asks the region's token endpoint for a new access token once.
func (a *oauthApp) fetch(ctx context.Context, hc *http.Client, now time.Time) (*oauth2.Token, error) {
	assertion, err := a.assertion(now)
	if err != nil {
		return nil, err
	}
	form := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {assertionType},
		"client_assertion":      {assertion},
		"scope":                 {Scope},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.region.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, &tokenError{url: a.region.tokenURL, err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "saas_exporter")
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named once, by tokenError
		}
		return nil, &tokenError{url: a.region.tokenURL, err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody))
	if err != nil {
		return nil, &tokenError{url: a.region.tokenURL, status: resp.StatusCode, err: fmt.Errorf("reading the answer: %w", err)}
	}
	if resp.StatusCode != http.StatusOK {
		re := &oauth2.RetrieveError{Response: resp, Body: body}
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if provider.Unmarshal(body, &e) == nil {
			re.ErrorCode, re.ErrorDescription = e.Error, e.Description
		}
		var err error = re
		if re.ErrorCode == "" {
			// RetrieveError would print the whole body.
			err = errors.New(http.StatusText(resp.StatusCode))
		}
		return nil, &tokenError{url: a.region.tokenURL, status: resp.StatusCode, err: err, retryAfter: retryAfter(resp.Header.Get("Retry-After"), now)}
	}
	var t struct {
		AccessToken string  `json:"access_token"`
		TokenType   string  `json:"token_type"`
		ExpiresIn   float64 `json:"expires_in"`
	}
	if err := provider.Unmarshal(body, &t); err != nil || t.AccessToken == "" {
		ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		return nil, &tokenError{url: a.region.tokenURL, status: resp.StatusCode,
			err: fmt.Errorf("the answer (%s, %d bytes) holds no access_token", ct, len(body))}
	}
	if t.TokenType != "" && !strings.EqualFold(t.TokenType, "bearer") {
		return nil, &tokenError{url: a.region.tokenURL, status: resp.StatusCode, err: fmt.Errorf("token type %q is not Bearer", t.TokenType)}
	}
	tok := &oauth2.Token{AccessToken: t.AccessToken, TokenType: "Bearer"}
	if t.ExpiresIn > 0 {
		tok.Expiry = now.Add(time.Duration(t.ExpiresIn * float64(time.Second)))
	}
	return tok, nil
}

// retryAfter reads Retry-After (seconds or an HTTP date) as a wait from
// now, bounded to 0..maxRetryAfter; -1 if v says nothing usable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return -1
	}
	var d time.Duration
	if n, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(n) {
		d = time.Duration(min(max(n, 0), maxRetryAfter.Seconds()) * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return -1
	}
	return min(max(d, 0), maxRetryAfter)
}

// secret is what the connection stores: the key and the current token.
func (a *oauthApp) secret(t *oauth2.Token) map[string]string {
	m := map[string]string{secretPrivateKey: a.keyPEM, secretAccessToken: t.AccessToken}
	if !t.Expiry.IsZero() {
		m[secretTokenExpiry] = t.Expiry.UTC().Format(time.RFC3339Nano)
	}
	return m
}

// tokenFromSecret reads the stored access token (nil if there is none).
func tokenFromSecret(s map[string]string) *oauth2.Token {
	if s[secretAccessToken] == "" {
		return nil
	}
	t := &oauth2.Token{AccessToken: s[secretAccessToken], TokenType: "Bearer"}
	if e, err := time.Parse(time.RFC3339Nano, s[secretTokenExpiry]); err == nil {
		t.Expiry = e
	}
	return t
}

// usable reports whether t still has more than margin left at now.
func usable(t *oauth2.Token, now time.Time, margin time.Duration) bool {
	return t != nil && t.AccessToken != "" && (t.Expiry.IsZero() || now.Add(margin).Before(t.Expiry))
}

// tokenSource hands out the stored access token while it has more than
// renewMargin left, and renews it otherwise: oauth2.ReuseTokenSource's
// idea, but on the scrape's clock (Scrape.Now, not time.Now) and with
// retries within the scrape's deadline.
type tokenSource struct {
	ctx     context.Context
	p       *Provider
	hc      *http.Client
	app     *oauthApp
	now     time.Time
	cur     *oauth2.Token
	renewed bool // a new token was fetched: the caller must store it
}

var _ oauth2.TokenSource = (*tokenSource)(nil)

func (ts *tokenSource) Token() (*oauth2.Token, error) {
	if usable(ts.cur, ts.now, renewMargin) {
		return ts.cur, nil
	}
	return ts.renew()
}

// renew fetches a new token, retrying failures that may pass while the
// deadline allows; a refusal (invalid_client, …) is not retried. A 429
// waits for its Retry-After (bounded); if that does not fit before the
// deadline, renew gives up with a rate-limited error carrying when to try
// again.
func (ts *tokenSource) renew() (*oauth2.Token, error) {
	for attempt := 0; ; attempt++ {
		t, err := ts.app.fetch(ts.ctx, ts.hc, ts.now)
		if err == nil {
			ts.cur, ts.renewed = t, true
			return t, nil
		}
		var te *tokenError
		if !errors.As(err, &te) || te.definitive() || attempt >= len(ts.p.retryDelays) {
			return nil, ts.limited(te, err)
		}
		wait := ts.p.retryDelays[attempt]
		if te.status == http.StatusTooManyRequests && te.retryAfter >= 0 {
			wait = te.retryAfter
		}
		if dl, ok := ts.ctx.Deadline(); ok && time.Until(dl) < wait {
			return nil, ts.limited(te, err)
		}
		if ts.p.sleep(ts.ctx, wait) != nil {
			return nil, ts.limited(te, err)
		}
	}
}

// limited marks a token endpoint's 429 as a rate limit until its
// Retry-After (or a minute if it named none), so the engine waits instead
// of giving up on the connection.
func (ts *tokenSource) limited(te *tokenError, err error) error {
	if te == nil || te.status != http.StatusTooManyRequests {
		return err
	}
	wait := te.retryAfter
	if wait < 0 {
		wait = time.Minute
	}
	return provider.RateLimited(ts.now.Add(wait), err)
}

// parsePrivateKey reads an RSA private key in PEM (PKCS #1 or #8),
// saying what is wrong with anything else.
func parsePrivateKey(text string) (*rsa.PrivateKey, string, error) {
	text = strings.TrimSpace(text)
	// A key pasted from an environment variable or JSON may carry
	// literal \n instead of line breaks.
	if !strings.Contains(text, "\n") && strings.Contains(text, `\n`) {
		text = strings.ReplaceAll(text, `\n`, "\n")
	}
	if text == "" {
		return nil, "", provider.Inputf("private_key", "the private key is empty: paste the PEM file of the key whose public half you uploaded to the OAuth app")
	}
	block, rest := pem.Decode([]byte(text))
	if block == nil {
		return nil, "", provider.Inputf("private_key", "the private key is not in PEM format: paste the whole file, from the -----BEGIN PRIVATE KEY----- line to the -----END line")
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, "", provider.Inputf("private_key", "paste exactly one key: there is more text after the -----END line")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		if block.Headers["Proc-Type"] != "" {
			return nil, "", provider.Inputf("private_key", "the private key is encrypted with a passphrase: decrypt it first (openssl rsa -in key.pem -out plain.pem) and paste the result")
		}
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, "", provider.Inputf("private_key", "the private key is encrypted with a passphrase: decrypt it first (openssl pkcs8 -in key.pem -out plain.pem) and paste the result")
	case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
		return nil, "", provider.Inputf("private_key", "this is a %s, not the private key: paste the private key whose public half you uploaded to the OAuth app", strings.ToLower(block.Type))
	default:
		return nil, "", provider.Inputf("private_key", "a PEM block of type %q is not an RSA private key", block.Type)
	}
	if err != nil {
		return nil, "", provider.Inputf("private_key", "the private key does not parse (%v): paste the whole PEM file unchanged", err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, "", provider.Inputf("private_key", "the private key is not an RSA key: Segment signs client assertions with RS256, so create one with: openssl genrsa -out private.pem 2048")
	}
	return rk, text, nil
}

// checkID checks the App ID or Key ID field.
func checkID(field, label, v string) (string, error) {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		return "", provider.Inputf(field, "%s is empty: copy it from the OAuth app's Overview in Segment", label)
	case len(v) > 256 || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r > '~' }):
		return "", provider.Inputf(field, "%s contains characters Segment ids never have: paste only the id", label)
	}
	return v, nil
}

// appFrom builds the signer from form values (Verify).
func (p *Provider) appFrom(values map[string]string) (*oauthApp, error) {
	r, err := p.regionOf(values["region"])
	if err != nil {
		return nil, err
	}
	clientID, err := checkID("client_id", "the App ID", values["client_id"])
	if err != nil {
		return nil, err
	}
	keyID, err := checkID("key_id", "the Key ID", values["key_id"])
	if err != nil {
		return nil, err
	}
	key, pemText, err := parsePrivateKey(values["private_key"])
	if err != nil {
		return nil, err
	}
	return &oauthApp{region: r, clientID: clientID, keyID: keyID, key: key, keyPEM: pemText}, nil
}

// appOf rebuilds the signer of a stored connection.
func (p *Provider) appOf(c provider.Connection) (*oauthApp, error) {
	r, ok := p.regions[c.Settings[settingRegion]]
	if !ok {
		return nil, fmt.Errorf("segment: the connection has no valid region (%q); reconnect it", c.Settings[settingRegion])
	}
	key, pemText, err := parsePrivateKey(c.Secret[secretPrivateKey])
	if err != nil || c.Settings[settingClientID] == "" || c.Settings[settingKeyID] == "" {
		return nil, errors.New("segment: the stored OAuth connection lacks its App ID, Key ID or a valid private key; reconnect it")
	}
	return &oauthApp{region: r, clientID: c.Settings[settingClientID], keyID: c.Settings[settingKeyID], key: key, keyPEM: pemText}, nil
}

// Verify gets an access token, then reads the workspace with it.
func (m *clientCredentialsMethod) Verify(ctx context.Context, hc *http.Client, values map[string]string) (*provider.Credential, error) {
	app, err := m.p.appFrom(values)
	if err != nil {
		return nil, err
	}
	now := m.p.now()
	tok, err := app.fetch(ctx, hc, now)
	if err != nil {
		var te *tokenError
		if !errors.As(err, &te) || !te.definitive() {
			return nil, fmt.Errorf("could not get an access token from Segment: %w", err)
		}
		// Refused: the app may live in the other region.
		other := *app
		other.region = m.p.otherRegion(app.region)
		if _, oerr := other.fetch(ctx, hc, now); oerr == nil {
			return nil, provider.Inputf("region", "this OAuth app belongs to the %s region: choose region %s and connect again", strings.ToUpper(other.region.name), other.region.name)
		}
		return nil, provider.Inputf("client_id", "Segment refused the OAuth client in region %s (%v). Check the App ID and Key ID, that this private key's public half is uploaded to the app, and that the app has the %s scope.", app.region.name, te, Scope)
	}
	c := &client{hc: hc, apiURL: app.region.apiURL, token: tok.AccessToken, now: now}
	ws, err := c.workspace(ctx)
	if err != nil {
		if st := provider.StatusOf(err); st == http.StatusUnauthorized || st == http.StatusForbidden {
			return nil, provider.Inputf("client_id", "Segment issued an access token but the Public API refused it (%v): give the OAuth app the %s scope", err, Scope)
		}
		return nil, fmt.Errorf("could not read the workspace from Segment at %s: %w", app.region.apiURL, err)
	}
	settings := map[string]string{
		settingRegion: app.region.name, settingWorkspaceSlug: ws.Slug,
		settingClientID: app.clientID, settingKeyID: app.keyID,
	}
	m.p.rememberPeriod(ctx, c, settings)
	return &provider.Credential{
		AccountID:  ws.ID,
		Account:    ws.account(),
		AuthMethod: MethodClientCredentials,
		Settings:   settings,
		Secret:     app.secret(tok),
		Scopes:     []string{Scope},
		// No Expiry: the exporter renews the token by itself, so the
		// connection does not stop working without a person.
	}, nil
}

// renewedCredential is what UpdateCredential stores after a renewal.
// expiry is when the connection stops working without a person: zero
// while renewal works, the access token's expiry while it fails.
func renewedCredential(c provider.Connection, app *oauthApp, t *oauth2.Token, expiry time.Time) *provider.Credential {
	return &provider.Credential{
		AccountID:  c.AccountID,
		Account:    c.Account,
		AuthMethod: c.AuthMethod,
		Settings:   c.Settings,
		Secret:     app.secret(t),
		Scopes:     slices.Clone(c.Scopes),
		Expiry:     expiry,
	}
}
