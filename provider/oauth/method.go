package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"golang.org/x/oauth2"

	"github.com/saas-exporter/saas_exporter/provider"
)

// VerifyFunc checks a newly issued token with the vendor's own API before
// anything is stored, and describes what it grants: Account, AccountID,
// Scopes, MissingScopes and any Settings. The method fills in AuthMethod,
// Secret (the tokens) and Expiry. Problems a person can fix are
// *provider.InputError.
type VerifyFunc func(ctx context.Context, hc *http.Client, tok *oauth2.Token) (*provider.Credential, error)

// Method is the authorization code grant with PKCE (S256) as a
// provider.RedirectMethod. The flow machinery in auth/ supplies the state
// and verifier, binds them to the browser and checks the state is used
// once; Method builds the consent URL, exchanges the code and keeps the
// tokens fresh during collection (see AccessToken).
type Method struct {
	name, title, vendor string
	cfg                 Config
	verify              VerifyFunc
}

// NewMethod returns the method. name is its auth_method label value (e.g.
// "oauth"), title is shown on buttons, vendorTitle names the vendor in
// messages (e.g. "Example Mail").
func NewMethod(name, title, vendorTitle string, cfg Config, verify VerifyFunc) *Method {
	cfg.applyDefaults()
	return &Method{name: name, title: title, vendor: vendorTitle, cfg: cfg, verify: verify}
}

func (m *Method) Name() string  { return m.name }
func (m *Method) Title() string { return m.title }

// Config returns the method's configuration, defaults applied.
func (m *Method) Config() Config { return m.cfg }

// Enabled reports whether a client is registered.
func (m *Method) Enabled() bool {
	return m.cfg.ClientID != "" && m.cfg.AuthURL != "" && m.cfg.TokenURL != "" && m.verify != nil
}

// AuthorizeURL is the consent page URL: response_type=code, client_id,
// redirect_uri, scope, state and the S256 challenge of the flow's verifier.
func (m *Method) AuthorizeURL(f provider.Flow) (string, error) {
	if !m.Enabled() {
		return "", fmt.Errorf("OAuth is not configured (%s)", m.cfg.ConfigKey)
	}
	if f.State == "" || f.Verifier == "" || f.RedirectURL == "" {
		return "", errors.New("the flow has no state, PKCE verifier or redirect URL")
	}
	return m.cfg.oauth2Config(f.RedirectURL).AuthCodeURL(f.State, oauth2.S256ChallengeOption(f.Verifier)), nil
}

// Finish handles the callback: it refuses an error answer or a state that
// is not the flow's, exchanges the code (with the PKCE verifier, over hc),
// has the vendor check the token, and returns the credential to store.
func (m *Method) Finish(ctx context.Context, hc *http.Client, f provider.Flow, q url.Values) (*provider.Credential, error) {
	if e := q.Get("error"); e != "" {
		return nil, m.authorizeError(e, q.Get("error_description"))
	}
	if f.State == "" || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		return nil, provider.Inputf("", "The callback from %s does not carry the state of the connection this browser started (it is missing or forged). Nothing was stored; start again.", m.vendor)
	}
	code := q.Get("code")
	if code == "" {
		return nil, provider.Inputf("", "The callback from %s carries no authorization code, so there is nothing to exchange. Nothing was stored; start again.", m.vendor)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	now := m.cfg.Now()
	tok, err := m.cfg.oauth2Config(f.RedirectURL).Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return nil, m.exchangeError(err)
	}
	if tt := tok.Type(); !strings.EqualFold(tt, "Bearer") {
		return nil, fmt.Errorf("%s issued a token of type %q; only Bearer tokens are supported", m.vendor, clip(tt, 40))
	}
	cred, err := m.verify(ctx, hc, tok)
	if err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, fmt.Errorf("checking the new %s token gave no credential", m.vendor)
	}
	t := fromToken(tok, now, tokens{})
	cred.AuthMethod = m.name
	cred.Secret = t.secret(cred.Secret)
	cred.Settings = t.settings(cred.Settings)
	cred.Expiry = t.expiry(m.cfg.RefreshFailureWindow)
	return cred, nil
}

// authorizeError explains an error answer of the authorization endpoint
// (RFC 6749 §4.1.2.1).
func (m *Method) authorizeError(code, desc string) error {
	code = clip(code, 64)
	var msg string
	switch code {
	case "access_denied":
		msg = fmt.Sprintf("Access was denied on %s's consent page (access_denied). Nothing was stored; start again and allow access, or invite the account's admin to do it.", m.vendor)
	case "invalid_request":
		msg = fmt.Sprintf("%s refused the authorization request as malformed (invalid_request). Nothing was stored; check auth_url and client_id in %s.", m.vendor, m.cfg.ConfigKey)
	case "unauthorized_client":
		msg = fmt.Sprintf("%s does not allow this OAuth client to request an authorization code (unauthorized_client). Nothing was stored; check the app registration at %s and client_id in %s.", m.vendor, m.vendor, m.cfg.ConfigKey)
	case "unsupported_response_type":
		msg = fmt.Sprintf("%s's authorization server does not support the authorization code flow (unsupported_response_type). Nothing was stored; check auth_url in %s.", m.vendor, m.cfg.ConfigKey)
	case "invalid_scope":
		msg = fmt.Sprintf("%s refused the requested scopes %s (invalid_scope). Nothing was stored; check scopes in %s.", m.vendor, strings.Join(m.cfg.Scopes, " "), m.cfg.ConfigKey)
	case "server_error":
		msg = fmt.Sprintf("%s's authorization server failed (server_error). Nothing was stored; try again later.", m.vendor)
	case "temporarily_unavailable":
		msg = fmt.Sprintf("%s's authorization server is temporarily unavailable (temporarily_unavailable). Nothing was stored; try again in a few minutes.", m.vendor)
	default:
		msg = fmt.Sprintf("%s did not grant access and reported the error %q. Nothing was stored; start again.", m.vendor, code)
	}
	return &provider.InputError{Message: msg + said(m.vendor, desc)}
}

// exchangeError explains a failed code exchange (RFC 6749 §5.2). Errors a
// person must act on are InputErrors; 5xx and network problems are not.
func (m *Method) exchangeError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return fmt.Errorf("exchanging the authorization code with %s: %v", m.vendor, cleanErr(err))
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	var msg string
	switch code := clip(re.ErrorCode, 64); code {
	case "invalid_grant":
		msg = fmt.Sprintf("%s refused the authorization code (invalid_grant): it expired, was already used, was issued for another redirect URL, or the PKCE check failed. Nothing was stored; start again.", m.vendor)
	case "invalid_client":
		msg = fmt.Sprintf("%s did not accept the exporter's OAuth client (invalid_client). Nothing was stored; check client_id and client_secret in %s.", m.vendor, m.cfg.ConfigKey)
	case "unauthorized_client":
		msg = fmt.Sprintf("%s does not allow this OAuth client to use the authorization code grant (unauthorized_client). Nothing was stored; check the app registration and client_id in %s.", m.vendor, m.cfg.ConfigKey)
	case "unsupported_grant_type":
		msg = fmt.Sprintf("%s's token endpoint does not support the authorization code grant (unsupported_grant_type). Nothing was stored; check token_url in %s.", m.vendor, m.cfg.ConfigKey)
	case "invalid_scope":
		msg = fmt.Sprintf("%s refused the requested scopes (invalid_scope). Nothing was stored; check scopes in %s.", m.vendor, m.cfg.ConfigKey)
	case "invalid_request":
		msg = fmt.Sprintf("%s refused the token request as malformed (invalid_request). Nothing was stored; check token_url in %s.", m.vendor, m.cfg.ConfigKey)
	case "":
		return fmt.Errorf("%s's token endpoint answered HTTP %d without an OAuth error", m.vendor, status)
	case "server_error", "temporarily_unavailable":
		return fmt.Errorf("%s's token endpoint answered HTTP %d (%s)%s", m.vendor, status, code, said(m.vendor, re.ErrorDescription))
	default:
		msg = fmt.Sprintf("%s's token endpoint refused the authorization code with the error %q. Nothing was stored; start again.", m.vendor, code)
	}
	return &provider.InputError{Message: msg + said(m.vendor, re.ErrorDescription)}
}

// said quotes a vendor's error_description (untrusted text: clipped;
// pages escape it).
func said(vendor, desc string) string {
	desc = strings.TrimSpace(clip(desc, 300))
	if desc == "" {
		return ""
	}
	return fmt.Sprintf(" %s said: “%s”", vendor, desc)
}

// clip bounds vendor-provided text and drops control characters.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// cleanErr drops the URL from a *url.Error: the message stays, and no
// URL ever carries a parameter into a message.
func cleanErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, hostOf(ue.URL), ue.Err)
	}
	return err
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "the token endpoint"
	}
	return u.Scheme + "://" + u.Host + u.Path
}
