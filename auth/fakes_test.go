package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
)

// Secret values the fakes accept or hand out; no response and no log line
// may ever contain one.
const (
	goodKey   = "good-key"
	goodKey2  = "good-key-2" // another account of the same vendor
	badKey    = "bad-key-value"
	leakyKey  = "leaky-key-0123456789" // Verify returns an error that quotes it
	downKey   = "down-key-value"       // Verify fails like an unreachable vendor
	panicKey  = "panic-key-value"      // Verify panics, quoting the key
	authCode  = "secret-code-123"
	tokenPref = "tok-secret-"
	hookToken = "hook-token-value"
)

// --- keyco: a form method with a secret "api_key" ------------------------

type keyProvider struct{}

func (keyProvider) Vendor() string                                  { return "keyco" }
func (keyProvider) Title() string                                   { return "KeyCo" }
func (keyProvider) Methods() []provider.Method                      { return []provider.Method{keyMethod{}} }
func (keyProvider) Collect(context.Context, *provider.Scrape) error { return nil }

// KeyCo bills in credits; without the usage.read scope it cannot tell
// how many were used.
func (keyProvider) BudgetUnit() string { return "credits" }
func (keyProvider) BudgetUnavailable(c provider.Connection) string {
	if slices.Contains(c.MissingScopes, "usage.read") {
		return "the API key lacks the usage.read scope; reconnect with a key that has it"
	}
	return ""
}

type keyMethod struct{}

func (keyMethod) Name() string  { return "api_key" }
func (keyMethod) Title() string { return "API key" }
func (keyMethod) Fields() []provider.Field {
	return []provider.Field{
		{Name: "api_key", Label: "API key", Help: "A restricted key.", Secret: true},
		{Name: "region", Label: "Region", Options: []string{"us", "eu"}},
		{Name: "note", Label: "Note", Optional: true, Multiline: true},
	}
}

func (keyMethod) Verify(ctx context.Context, hc *http.Client, v map[string]string) (*provider.Credential, error) {
	if hc == nil {
		return nil, errors.New("no HTTP client")
	}
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("Verify got a context without deadline")
	}
	var account string
	switch v["api_key"] {
	case goodKey:
		account = "acct-1"
	case goodKey2:
		account = "acct-2"
	case leakyKey:
		return nil, fmt.Errorf("keyco GET /v3/scopes: key %s rejected", v["api_key"])
	case panicKey:
		panic("keyco: cannot handle key " + v["api_key"])
	case downKey:
		return nil, errors.New("keyco GET /v3/scopes: connection refused")
	default:
		return nil, &provider.InputError{Field: "api_key", Message: "KeyCo rejected this API key (HTTP 401): check that you copied the whole key."}
	}
	return &provider.Credential{
		AccountID: account, Account: "KeyCo " + account, AuthMethod: "api_key",
		Secret:        map[string]string{"api_key": v["api_key"]},
		Settings:      map[string]string{"region": v["region"]},
		Scopes:        []string{"stats.read"},
		MissingScopes: []string{"billing.read"},
	}, nil
}

// --- oauthco: a redirect method ------------------------------------------

type consentMode struct {
	mu      sync.Mutex
	account string
	deny    bool
	flows   []provider.Flow // what Finish was given
}

type redirectProvider struct {
	consent    *consentMode
	consentURL string
}

func (p *redirectProvider) Vendor() string { return "oauthco" }
func (p *redirectProvider) Title() string  { return "OAuthCo" }
func (p *redirectProvider) Methods() []provider.Method {
	return []provider.Method{&redirectMethodImpl{p: p, name: "oauth", enabled: true}, &redirectMethodImpl{p: p, name: "legacy", enabled: false}}
}
func (p *redirectProvider) Collect(context.Context, *provider.Scrape) error { return nil }

type redirectMethodImpl struct {
	p       *redirectProvider
	name    string
	enabled bool
}

func (m *redirectMethodImpl) Name() string  { return m.name }
func (m *redirectMethodImpl) Title() string { return "Sign in with OAuthCo" }
func (m *redirectMethodImpl) Enabled() bool { return m.enabled }

func (m *redirectMethodImpl) AuthorizeURL(f provider.Flow) (string, error) {
	sum := sha256.Sum256([]byte(f.Verifier))
	q := url.Values{"state": {f.State}, "redirect_uri": {f.RedirectURL}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}}
	return m.p.consentURL + "/authorize?" + q.Encode(), nil
}

func (m *redirectMethodImpl) Finish(ctx context.Context, hc *http.Client, f provider.Flow, q url.Values) (*provider.Credential, error) {
	m.p.consent.mu.Lock()
	m.p.consent.flows = append(m.p.consent.flows, f)
	m.p.consent.mu.Unlock()
	if q.Get("code") != authCode {
		return nil, &provider.InputError{Message: "OAuthCo did not send a valid authorization code."}
	}
	acct := q.Get("account")
	if acct == "" {
		return nil, &provider.InputError{Message: "OAuthCo did not say which account was connected."}
	}
	return &provider.Credential{
		AccountID: acct, Account: "OAuthCo " + acct, AuthMethod: m.name,
		Secret: map[string]string{"access_token": tokenPref + acct, "refresh_token": tokenPref + "refresh-" + acct},
		Scopes: []string{"read"}, Expiry: time.Now().Add(time.Hour),
	}, nil
}

// consentHandler plays the vendor's consent page: it sends the browser
// back to the redirect URL with a code, or with an error when denying.
func (c *consentMode) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		c.mu.Lock()
		account, deny := c.account, c.deny
		c.mu.Unlock()
		back := url.Values{"state": {q.Get("state")}}
		if deny {
			back.Set("error", "access_denied")
			back.Set("error_description", "<b>The user said no</b>")
		} else {
			back.Set("code", authCode)
			back.Set("account", account)
		}
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+back.Encode(), http.StatusFound)
	})
}

// --- hookco: a form method plus vendor webhooks ---------------------------

type hookProvider struct{}

func (hookProvider) Vendor() string                                  { return "hookco" }
func (hookProvider) Title() string                                   { return "HookCo" }
func (hookProvider) Methods() []provider.Method                      { return []provider.Method{hookMethod{}} }
func (hookProvider) Collect(context.Context, *provider.Scrape) error { return nil }

func (hookProvider) Webhook(r *http.Request, name string) ([]string, error) {
	if name != "deauthorize" {
		return nil, fmt.Errorf("no callback called %q", name)
	}
	if r.Header.Get("X-Signature") != "valid" {
		return nil, provider.ErrForbidden
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	acct := r.PostFormValue("AccountSid")
	if acct == "" {
		return nil, errors.New("AccountSid is missing")
	}
	return []string{acct}, nil
}

type hookMethod struct{}

func (hookMethod) Name() string  { return "token" }
func (hookMethod) Title() string { return "Token" }
func (hookMethod) Fields() []provider.Field {
	return []provider.Field{{Name: "token", Label: "Token", Secret: true}, {Name: "account", Label: "Account SID"}}
}

func (hookMethod) Verify(ctx context.Context, hc *http.Client, v map[string]string) (*provider.Credential, error) {
	if v["token"] != hookToken {
		return nil, &provider.InputError{Field: "token", Message: "HookCo rejected the token."}
	}
	if !strings.HasPrefix(v["account"], "AC") {
		return nil, &provider.InputError{Field: "account", Message: "An Account SID starts with AC."}
	}
	return &provider.Credential{AccountID: v["account"], Account: v["account"], AuthMethod: "token", Secret: map[string]string{"token": v["token"]}}, nil
}

var _ provider.Webhooks = hookProvider{}

// mixedProvider offers a form method and a redirect method.
type mixedProvider struct{ rp *redirectProvider }

func (mixedProvider) Vendor() string { return "mixed" }
func (mixedProvider) Title() string  { return "Mixed" }
func (m mixedProvider) Methods() []provider.Method {
	return []provider.Method{keyMethod{}, &redirectMethodImpl{p: m.rp, name: "oauth", enabled: true}}
}
func (mixedProvider) Collect(context.Context, *provider.Scrape) error { return nil }
