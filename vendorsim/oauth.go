package vendorsim

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The simulator's OAuth 2.0 authorization server for SendGrid accounts
// (authorization code with PKCE S256, refresh-token rotation), mounted at
// /oauth under the vendor name "oauth" (faults, call counts). The consent
// page lets the person choose a SendGrid test account; the access tokens it
// issues work as Bearer credentials on /sendgrid with that account's data.
const (
	// OAuthClientID and OAuthClientSecret are the one registered client.
	OAuthClientID     = "vendorsim-sendgrid-oauth-client"
	OAuthClientSecret = "vendorsim-oauth-client-secret-notARealSecret-0001"
	// DefaultOAuthAccessTokenLifetime is how long access tokens live
	// unless SetOAuthAccessTokenLifetime says otherwise.
	DefaultOAuthAccessTokenLifetime = time.Hour
	// OAuthCodeLifetime is how long an authorization code can be exchanged.
	OAuthCodeLifetime = 10 * time.Minute
)

// oauthVendor is the vendor name for faults and call counts.
const oauthVendor = "oauth"

// oauthCallbackPath is the only redirect path the client registered.
const oauthCallbackPath = "/connect/sendgrid/callback"

// Bounds, so a long-running demo does not grow without limit.
const (
	maxOAuthCodes   = 10000
	maxOAuthTokens  = 20000
	maxGrantHistory = 50
)

// OAuthGrant is one consent (and every token issued under it), for tests
// and people running the demo.
type OAuthGrant struct {
	ID      string
	Account string // SendGrid account name: acme, beta
	Scopes  []string
	Created time.Time
	Revoked bool
	// RefreshToken is the current refresh token; earlier ones were rotated
	// away and using one revokes the grant.
	RefreshToken string
	// RefreshTokens and AccessTokens list what was issued, oldest first
	// (the last 50 of each).
	RefreshTokens []string
	AccessTokens  []string
	// Refreshes counts successful refreshes.
	Refreshes int
}

type oauthCode struct {
	clientID, redirectURI, challenge string
	account                          string
	scopes                           []string
	expires                          time.Time
	used                             bool
	grant                            string // set once exchanged
}

type refreshRec struct {
	grant   string
	current bool
	expires time.Time // zero: never
}

type accessRec struct {
	grant   string
	expires time.Time
}

type oauthServer struct {
	s *Server

	mu             sync.Mutex
	accessLife     time.Duration
	refreshLife    time.Duration // 0: refresh tokens do not expire and the lifetime is not reported
	unavailable    bool
	authorizeError string
	refreshCalls   int64
	exchanges      int64
	seq            int
	codes          map[string]*oauthCode
	grants         map[string]*OAuthGrant
	refresh        map[string]refreshRec
	access         map[string]accessRec
}

func (s *Server) registerOAuth() {
	o := &oauthServer{
		s:          s,
		accessLife: DefaultOAuthAccessTokenLifetime,
		codes:      map[string]*oauthCode{},
		grants:     map[string]*OAuthGrant{},
		refresh:    map[string]refreshRec{},
		access:     map[string]accessRec{},
	}
	s.state[oauthVendor] = o
	s.Mount(oauthVendor, "/oauth", o)
	s.control("GET /_sim/oauth", o.serveSettings)
	s.control("PUT /_sim/oauth", o.serveSettings)
	s.control("POST /_sim/oauth/revoke", o.serveRevoke)
	s.describe(oauthVendor,
		[]Credential{
			{Label: "OAuth client id (SendGrid OAuth app; redirect URIs http://localhost:9888" + oauthCallbackPath + " and http://127.0.0.1:<any port>" + oauthCallbackPath + ")", Value: OAuthClientID},
			{Label: "OAuth client secret", Value: OAuthClientSecret},
		},
		[]string{
			"GET  /oauth/authorize   consent page (choose account acme or beta, Allow or Deny); POST /oauth/token (authorization_code with PKCE S256, refresh_token with rotation)",
			`PUT  /_sim/oauth         JSON {"access_token_lifetime":"1h","refresh_token_lifetime":"720h","token_unavailable":true,"authorize_error":"server_error"}`,
			"GET  /_sim/oauth         settings, refresh calls, code exchanges, grants",
			"POST /_sim/oauth/revoke  form or JSON account=acme: revoke every grant of the account (refresh answers invalid_grant, access tokens 401)",
		},
		nil)
}

// sendGridOAuthConfig is the oauth block of the exporter's SendGrid section.
func sendGridOAuthConfig(base string) string {
	return "    oauth:\n" +
		"      client_id: " + OAuthClientID + "\n" +
		"      client_secret: " + OAuthClientSecret + "\n" +
		"      auth_url: " + base + "/oauth/authorize\n" +
		"      token_url: " + base + "/oauth/token\n"
}

func (s *Server) oauth() *oauthServer { return s.state[oauthVendor].(*oauthServer) }

// SetOAuthAccessTokenLifetime sets the lifetime of access tokens issued
// from now on (d <= 0: DefaultOAuthAccessTokenLifetime).
func (s *Server) SetOAuthAccessTokenLifetime(d time.Duration) {
	if d <= 0 {
		d = DefaultOAuthAccessTokenLifetime
	}
	o := s.oauth()
	o.mu.Lock()
	o.accessLife = d
	o.mu.Unlock()
}

// SetOAuthRefreshTokenLifetime makes refresh tokens issued from now on
// expire after d and reports it as refresh_token_expires_in; 0 (the
// default): they never expire and the answer does not say.
func (s *Server) SetOAuthRefreshTokenLifetime(d time.Duration) {
	o := s.oauth()
	o.mu.Lock()
	o.refreshLife = max(d, 0)
	o.mu.Unlock()
}

// SetOAuthTokenUnavailable makes the token endpoint answer 503
// temporarily_unavailable (requests still count), or stops it.
func (s *Server) SetOAuthTokenUnavailable(on bool) {
	o := s.oauth()
	o.mu.Lock()
	o.unavailable = on
	o.mu.Unlock()
}

// SetOAuthAuthorizeError makes the consent page send the browser back
// with this RFC 6749 error (e.g. "server_error") instead of asking; "" stops it.
func (s *Server) SetOAuthAuthorizeError(code string) {
	o := s.oauth()
	o.mu.Lock()
	o.authorizeError = code
	o.mu.Unlock()
}

// RevokeOAuthGrants revokes every grant of a SendGrid account (as when its
// admin removes the app): refreshing answers invalid_grant and its access
// tokens answer 401. It returns how many grants it revoked.
func (s *Server) RevokeOAuthGrants(account string) int {
	o := s.oauth()
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, g := range o.grants {
		if g.Account == account && !g.Revoked {
			g.Revoked = true
			n++
		}
	}
	return n
}

// OAuthRefreshCalls counts refresh_token requests that reached the token
// endpoint, whatever the answer (faults set with SetFault answer before
// the endpoint and are not counted).
func (s *Server) OAuthRefreshCalls() int64 {
	o := s.oauth()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.refreshCalls
}

// OAuthCodeExchanges counts authorization_code requests that reached the
// token endpoint, whatever the answer.
func (s *Server) OAuthCodeExchanges() int64 {
	o := s.oauth()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.exchanges
}

// OAuthGrants returns copies of every grant, oldest first.
func (s *Server) OAuthGrants() []OAuthGrant {
	o := s.oauth()
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]OAuthGrant, 0, len(o.grants))
	for _, g := range o.grants {
		c := *g
		c.Scopes = slices.Clone(g.Scopes)
		c.RefreshTokens = slices.Clone(g.RefreshTokens)
		c.AccessTokens = slices.Clone(g.AccessTokens)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// sendGridAccountByName finds a SendGrid test account by its name.
func sendGridAccountByName(name string) *SendGridAccount {
	for _, a := range sendGridAccounts {
		if a.Name == name {
			return a
		}
	}
	return nil
}

func sendGridAccountNames() []string {
	var out []string
	for _, a := range sendGridAccounts {
		out = append(out, a.Name)
	}
	sort.Strings(out)
	return out
}

// knownScopes is every scope some test account has.
func knownScopes() map[string]bool {
	out := map[string]bool{}
	for _, a := range sendGridAccounts {
		for _, s := range a.Scopes {
			out[s] = true
		}
	}
	return out
}

// oauthAccount returns the SendGrid account behind a live access token,
// with the scopes the grant holds; nil and a reason otherwise ("" if the
// token is not an access token of this simulator).
func (g *sendGrid) oauthAccount(token string) (*SendGridAccount, string) {
	o := g.s.oauth()
	o.mu.Lock()
	defer o.mu.Unlock()
	rec, ok := o.access[token]
	if !ok {
		return nil, ""
	}
	gr := o.grants[rec.grant]
	switch {
	case gr == nil || gr.Revoked:
		return nil, "revoked OAuth grant"
	case !g.s.now().Before(rec.expires):
		return nil, "expired access token"
	}
	a := sendGridAccountByName(gr.Account)
	if a == nil {
		return nil, "unknown account"
	}
	c := *a
	c.Scopes = slices.Clone(gr.Scopes)
	return &c, ""
}

// --- HTTP ---------------------------------------------------------------------

func (o *oauthServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/authorize":
		switch r.Method {
		case http.MethodGet:
			o.serveAuthorize(w, r, r.URL.Query(), false)
		case http.MethodPost:
			r.Body = http.MaxBytesReader(w, r.Body, maxControlBody)
			if err := r.ParseForm(); err != nil {
				o.page(w, http.StatusBadRequest, "Bad request", "The consent form does not parse.")
				return
			}
			o.serveAuthorize(w, r, r.PostForm, true)
		default:
			w.Header().Set("Allow", "GET, POST")
			o.page(w, http.StatusMethodNotAllowed, "Method not allowed", "The authorization endpoint takes GET (and POST from its consent form).")
		}
	case "/token":
		o.serveToken(w, r)
	default:
		writeOAuthError(w, http.StatusNotFound, "invalid_request", "no such endpoint; the authorization server has /oauth/authorize and /oauth/token")
	}
}

// WriteFault answers a fault in OAuth's error shape.
func (o *oauthServer) WriteFault(w http.ResponseWriter, r *http.Request, e FaultError) {
	if e.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
		writeOAuthError(w, e.Status, "temporarily_unavailable", "too many requests")
		return
	}
	writeOAuthError(w, e.Status, "server_error", strings.ToLower(http.StatusText(e.Status)))
}

// allowedRedirect: the client registered http://localhost:9888 and any
// loopback port, with the SendGrid callback path and nothing else.
func allowedRedirect(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Path != oauthCallbackPath {
		return false
	}
	if u.Host == "localhost:9888" {
		return true
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host != "127.0.0.1" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n < 65536
}

// authzRequest is a checked authorization request.
type authzRequest struct {
	RedirectURI, State, Challenge string
	Scopes                        []string // requested; nil: the account's
}

// serveAuthorize checks an authorization request (RFC 6749 §4.1.1, RFC
// 7636) and shows the consent page, or (decided) handles its answer.
// Errors about the client or redirect URI are shown here; every other one
// goes back to the client.
func (o *oauthServer) serveAuthorize(w http.ResponseWriter, r *http.Request, q url.Values, decided bool) {
	if q.Get("client_id") != OAuthClientID {
		o.page(w, http.StatusBadRequest, "Unknown client", "client_id is not a client registered with this authorization server, so the browser is not sent back anywhere.")
		return
	}
	ar := authzRequest{RedirectURI: q.Get("redirect_uri"), State: q.Get("state"), Challenge: q.Get("code_challenge")}
	if !allowedRedirect(ar.RedirectURI) {
		o.page(w, http.StatusBadRequest, "Redirect URI not registered",
			"redirect_uri is not registered for this client, so the browser is not sent back to it. Registered: http://localhost:9888"+oauthCallbackPath+" and http://127.0.0.1:<any port>"+oauthCallbackPath+" (the exporter's external_url plus the callback path).")
		return
	}
	back := func(params url.Values) {
		u, _ := url.Parse(ar.RedirectURI)
		if ar.State != "" {
			params.Set("state", ar.State)
		}
		u.RawQuery = params.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	fail := func(code, desc string) {
		back(url.Values{"error": {code}, "error_description": {desc}})
	}
	o.mu.Lock()
	forced := o.authorizeError
	o.mu.Unlock()
	if forced != "" {
		fail(forced, "the simulator was told to answer "+forced)
		return
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "response_type must be code")
		return
	}
	switch {
	case ar.Challenge == "":
		fail("invalid_request", "PKCE is required: send code_challenge and code_challenge_method=S256")
		return
	case q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "code_challenge_method must be S256")
		return
	case !validChallenge(ar.Challenge):
		fail("invalid_request", "code_challenge must be 43 base64url characters (the S256 hash of the verifier)")
		return
	}
	if sc := strings.Fields(q.Get("scope")); len(sc) > 0 {
		known := knownScopes()
		for _, s := range sc {
			if !known[s] {
				fail("invalid_scope", "unknown scope "+clipText(s, 40))
				return
			}
		}
		ar.Scopes = sc
	}
	if !decided {
		o.consentPage(w, q, ar)
		return
	}
	if q.Get("decision") != "allow" {
		fail("access_denied", "the user denied access")
		return
	}
	acct := sendGridAccountByName(q.Get("account"))
	if acct == nil {
		o.page(w, http.StatusBadRequest, "Choose an account", "Choose one of the accounts ("+strings.Join(sendGridAccountNames(), ", ")+") and press Allow again.")
		return
	}
	granted := acct.Scopes
	if ar.Scopes != nil {
		granted = nil
		for _, s := range ar.Scopes {
			if acct.hasScope(s) && !slices.Contains(granted, s) {
				granted = append(granted, s)
			}
		}
	}
	code := o.newCode(&oauthCode{clientID: OAuthClientID, redirectURI: ar.RedirectURI, challenge: ar.Challenge, account: acct.Name, scopes: slices.Clone(granted)})
	back(url.Values{"code": {code}})
}

func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil
}

func clipText(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

var oauthConsentTmpl = template.Must(template.New("consent").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Authorize saas_exporter — vendorsim SendGrid</title>
<style>body{font-family:sans-serif;max-width:36em;margin:2em auto}label{display:block;margin:.3em 0}button{margin-right:1em}</style>
</head><body>
<h1>Authorize saas_exporter</h1>
<p>The application <strong>saas_exporter</strong> asks for access to a SendGrid account (vendorsim: no real account).</p>
<p>Scopes: {{if .Scopes}}{{range .Scopes}}<code>{{.}}</code> {{end}}{{else}}all of the account's{{end}}</p>
<p>It will send you back to <code>{{.RedirectURI}}</code>.</p>
<form method="post" action="/oauth/authorize">
{{range .Hidden}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<fieldset><legend>Account</legend>
{{range $i, $a := .Accounts}}<label><input type="radio" name="account" value="{{$a}}"{{if eq $i 0}} checked{{end}}> {{$a}}</label>
{{end}}</fieldset>
<p><button type="submit" name="decision" value="allow">Allow</button><button type="submit" name="decision" value="deny">Deny</button></p>
</form>
</body></html>
`))

type oauthHidden struct{ Name, Value string }

func (o *oauthServer) consentPage(w http.ResponseWriter, q url.Values, ar authzRequest) {
	var hidden []oauthHidden
	for _, k := range []string{"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"} {
		if q.Has(k) {
			hidden = append(hidden, oauthHidden{k, q.Get(k)})
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	err := oauthConsentTmpl.Execute(w, map[string]any{"Scopes": ar.Scopes, "RedirectURI": ar.RedirectURI, "Hidden": hidden, "Accounts": sendGridAccountNames()})
	if err != nil {
		o.s.log.Warn("rendering the consent page", "err", err)
	}
}

var oauthPageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Title}} — vendorsim OAuth</title></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p></body></html>
`))

// page answers an HTML page for errors that must not go back to the client.
func (o *oauthServer) page(w http.ResponseWriter, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	oauthPageTmpl.Execute(w, map[string]string{"Title": title, "Message": msg})
}

func randomToken(prefix string) string {
	b := make([]byte, 24)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func (o *oauthServer) newCode(c *oauthCode) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.s.now()
	c.expires = now.Add(OAuthCodeLifetime)
	if len(o.codes) >= maxOAuthCodes {
		for k, v := range o.codes {
			if !now.Before(v.expires) {
				delete(o.codes, k)
			}
		}
		for k := range o.codes {
			if len(o.codes) < maxOAuthCodes {
				break
			}
			delete(o.codes, k)
		}
	}
	code := randomToken("vsoc_")
	o.codes[code] = c
	return code
}

// clientAuth checks the client's credentials (RFC 6749 §2.3.1: HTTP basic
// with form-encoded id and secret, or both in the body). It answers the
// error itself and returns false when they are missing or wrong.
func (o *oauthServer) clientAuth(w http.ResponseWriter, r *http.Request) bool {
	id, secret, basic := r.BasicAuth()
	if basic {
		if r.PostForm.Has("client_secret") {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "use one client authentication method: HTTP basic or client_secret in the body, not both")
			return false
		}
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			id, secret = "", ""
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" || id != OAuthClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(OAuthClientSecret)) != 1 {
		if basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="vendorsim oauth"`)
		}
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return false
	}
	return true
}

func (o *oauthServer) serveToken(w http.ResponseWriter, r *http.Request) {
	f, ok := tokenForm(w, r)
	if !ok {
		return
	}
	grant := f.Get("grant_type")
	o.mu.Lock()
	switch grant {
	case "refresh_token":
		o.refreshCalls++
	case "authorization_code":
		o.exchanges++
	}
	unavailable := o.unavailable
	o.mu.Unlock()
	if unavailable {
		w.Header().Set("Retry-After", "30")
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the token endpoint is down for maintenance (simulated)")
		return
	}
	if !o.clientAuth(w, r) {
		return
	}
	switch grant {
	case "authorization_code":
		o.exchangeCode(w, f)
	case "refresh_token":
		o.refreshGrant(w, f)
	case "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "grant_type is missing")
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
	}
}

func (o *oauthServer) exchangeCode(w http.ResponseWriter, f url.Values) {
	code, verifier := f.Get("code"), f.Get("code_verifier")
	if code == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "code is missing")
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.s.now()
	c, ok := o.codes[code]
	switch {
	case !ok:
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "unknown authorization code")
		return
	case c.used:
		// A replayed code may be stolen: revoke what it gave (RFC 6749 §4.1.2).
		if g := o.grants[c.grant]; g != nil {
			g.Revoked = true
		}
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the authorization code was already used; the tokens issued for it are revoked")
		return
	}
	c.used = true // one presentation, whatever its outcome
	switch {
	case !now.Before(c.expires):
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the authorization code expired")
		return
	case f.Get("redirect_uri") != c.redirectURI:
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
		return
	case verifier == "" || len(verifier) < 43 || len(verifier) > 128:
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed: code_verifier is missing or not 43 to 128 characters")
		return
	}
	sum := sha256.Sum256([]byte(verifier))
	if subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.challenge)) != 1 {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed: code_verifier does not match the code_challenge")
		return
	}
	o.seq++
	g := &OAuthGrant{ID: fmt.Sprintf("grant-%06d", o.seq), Account: c.account, Scopes: slices.Clone(c.scopes), Created: now}
	o.grants[g.ID] = g
	c.grant = g.ID
	o.issueLocked(w, g, now)
}

func (o *oauthServer) refreshGrant(w http.ResponseWriter, f url.Values) {
	rt := f.Get("refresh_token")
	if rt == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is missing")
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.s.now()
	rec, ok := o.refresh[rt]
	g := o.grants[rec.grant]
	switch {
	case !ok || g == nil:
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "unknown refresh token")
		return
	case g.Revoked:
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the grant was revoked")
		return
	case !rec.current:
		// Reuse of a rotated refresh token: someone else may hold it.
		g.Revoked = true
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token was already used (rotated); the grant is revoked")
		return
	case !rec.expires.IsZero() && !now.Before(rec.expires):
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token expired")
		return
	}
	if sc := strings.Fields(f.Get("scope")); len(sc) > 0 {
		for _, s := range sc {
			if !slices.Contains(g.Scopes, s) {
				writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "a refresh may only narrow the granted scopes; not granted: "+clipText(s, 40))
				return
			}
		}
	}
	rec.current = false
	o.refresh[rt] = rec
	g.Refreshes++
	o.issueLocked(w, g, now)
}

// issueLocked issues an access token and a new refresh token for g and
// answers them (RFC 6749 §5.1).
func (o *oauthServer) issueLocked(w http.ResponseWriter, g *OAuthGrant, now time.Time) {
	o.pruneLocked(now)
	at, rt := randomToken("vsoa_"), randomToken("vsor_")
	o.access[at] = accessRec{grant: g.ID, expires: now.Add(o.accessLife)}
	rr := refreshRec{grant: g.ID, current: true}
	if o.refreshLife > 0 {
		rr.expires = now.Add(o.refreshLife)
	}
	o.refresh[rt] = rr
	g.RefreshToken = rt
	g.RefreshTokens = appendBounded(g.RefreshTokens, rt)
	g.AccessTokens = appendBounded(g.AccessTokens, at)
	out := map[string]any{
		"access_token":  at,
		"token_type":    "Bearer",
		"expires_in":    int64(o.accessLife / time.Second),
		"refresh_token": rt,
		"scope":         strings.Join(g.Scopes, " "),
	}
	if o.refreshLife > 0 {
		out["refresh_token_expires_in"] = int64(o.refreshLife / time.Second)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, out)
}

func appendBounded(list []string, v string) []string {
	list = append(list, v)
	if len(list) > maxGrantHistory {
		list = slices.Clone(list[len(list)-maxGrantHistory:])
	}
	return list
}

// pruneLocked drops expired access tokens and the refresh tokens of
// revoked grants once the tables are full; then rotated-away refresh
// tokens (losing only their reuse detection).
func (o *oauthServer) pruneLocked(now time.Time) {
	if len(o.access) >= maxOAuthTokens {
		for k, a := range o.access {
			if !now.Before(a.expires) || o.grants[a.grant] == nil || o.grants[a.grant].Revoked {
				delete(o.access, k)
			}
		}
	}
	if len(o.refresh) >= maxOAuthTokens {
		for k, r := range o.refresh {
			if g := o.grants[r.grant]; g == nil || g.Revoked || !r.current {
				delete(o.refresh, k)
			}
		}
	}
	for k := range o.access {
		if len(o.access) < maxOAuthTokens {
			break
		}
		delete(o.access, k)
	}
	for k := range o.refresh {
		if len(o.refresh) < maxOAuthTokens {
			break
		}
		delete(o.refresh, k)
	}
}

// --- control API ---------------------------------------------------------------

// oauthSettings is the body of GET/PUT /_sim/oauth.
type oauthSettings struct {
	AccessTokenLifetime  string `json:"access_token_lifetime"`
	RefreshTokenLifetime string `json:"refresh_token_lifetime"`
	TokenUnavailable     bool   `json:"token_unavailable"`
	AuthorizeError       string `json:"authorize_error"`
	// Read only.
	RefreshCalls  int64 `json:"refresh_calls"`
	CodeExchanges int64 `json:"code_exchanges"`
	Grants        int   `json:"grants"`
}

func (o *oauthServer) serveSettings(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
		if err != nil {
			simError(w, http.StatusBadRequest, "reading the body: %v", err)
			return
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			simError(w, http.StatusBadRequest, `the body must be JSON like {"access_token_lifetime":"1h"}: %v`, err)
			return
		}
		o.mu.Lock()
		access, refresh, unavailable, authzErr := o.accessLife, o.refreshLife, o.unavailable, o.authorizeError
		o.mu.Unlock()
		for k, v := range raw {
			switch k {
			case "access_token_lifetime":
				d, err := decodeDuration(k, v)
				if err != nil || d <= 0 {
					simError(w, http.StatusBadRequest, `access_token_lifetime must be a positive duration like "1h" or "10m"`)
					return
				}
				access = d
			case "refresh_token_lifetime":
				d, err := decodeDuration(k, v)
				if err != nil || d < 0 {
					simError(w, http.StatusBadRequest, `refresh_token_lifetime must be a duration like "720h", or "0s" for refresh tokens that never expire`)
					return
				}
				refresh = d
			case "token_unavailable":
				if err := decodeBool(k, v, &unavailable); err != nil {
					simError(w, http.StatusBadRequest, "%v", err)
					return
				}
			case "authorize_error":
				if err := json.Unmarshal(v, &authzErr); err != nil || strings.ContainsAny(authzErr, " \"\\") {
					simError(w, http.StatusBadRequest, `authorize_error must be an RFC 6749 error code like "server_error", or "" to stop`)
					return
				}
			case "refresh_calls", "code_exchanges", "grants":
				simError(w, http.StatusBadRequest, "%s is read only", k)
				return
			default:
				simError(w, http.StatusBadRequest, "unknown field %q; known fields: access_token_lifetime, authorize_error, refresh_token_lifetime, token_unavailable", k)
				return
			}
		}
		o.mu.Lock()
		o.accessLife, o.refreshLife, o.unavailable, o.authorizeError = access, refresh, unavailable, authzErr
		o.mu.Unlock()
		o.s.log.Info("oauth settings", "access_token_lifetime", access, "refresh_token_lifetime", refresh, "token_unavailable", unavailable, "authorize_error", authzErr)
	}
	o.mu.Lock()
	out := oauthSettings{
		AccessTokenLifetime: o.accessLife.String(), RefreshTokenLifetime: o.refreshLife.String(),
		TokenUnavailable: o.unavailable, AuthorizeError: o.authorizeError,
		RefreshCalls: o.refreshCalls, CodeExchanges: o.exchanges, Grants: len(o.grants),
	}
	o.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (o *oauthServer) serveRevoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxControlBody)
	var account string
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		var in struct {
			Account string `json:"account"`
		}
		b, err := io.ReadAll(r.Body)
		if err == nil {
			err = json.Unmarshal(b, &in)
		}
		if err != nil {
			simError(w, http.StatusBadRequest, `the body must be JSON like {"account":"acme"}: %v`, err)
			return
		}
		account = in.Account
	} else {
		if err := r.ParseForm(); err != nil {
			simError(w, http.StatusBadRequest, "reading the form: %v", err)
			return
		}
		account = r.Form.Get("account")
	}
	account = strings.TrimSpace(account)
	if sendGridAccountByName(account) == nil {
		simError(w, http.StatusBadRequest, "account must be one of %s", strings.Join(sendGridAccountNames(), ", "))
		return
	}
	n := o.s.RevokeOAuthGrants(account)
	writeJSON(w, http.StatusOK, map[string]any{"account": account, "revoked": n})
}
