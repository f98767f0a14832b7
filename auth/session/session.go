// Package session owns who is signed in: the admins' credentials check,
// session and login cookies, CSRF tokens, the sign-in throttle, the client
// address behind trusted proxies, and the keys of every signed token. It
// imports only store (logouts are recorded there); never a page, the API,
// a provider or a vendor.
package session

import (
	"context"
	"errors"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/saas-exporter/saas_exporter/store"
)

// Cookie and form field names.
const (
	SessionCookie = "saas_session"
	LoginCookie   = "saas_login"
	FlowCookie    = "saas_flow"
	CSRFField     = "csrf"
)

// TTL is the lifetime of a session.
const TTL = 12 * time.Hour

// CSRFMessage is what a person sees when a form's CSRF token is refused.
const CSRFMessage = "The form expired or was not sent from this site; reload the page and try again."

// dummyHash is compared against when the user is unknown, so a wrong user
// name takes as long as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no such user"), bcrypt.DefaultCost)

// Config configures a Manager.
type Config struct {
	Store  store.Store
	Admins map[string]string // user → bcrypt hash
	// SigningKey (at least 32 bytes) keys every token's HMAC;
	// PreviousSigningKeys only verify invite links.
	SigningKey          []byte
	PreviousSigningKeys [][]byte
	Secure              bool // https: Secure cookies
	Now                 func() time.Time
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client.
	TrustedProxies []netip.Prefix
}

// Manager checks credentials and issues and checks sessions and tokens.
type Manager struct {
	c       Config
	keys    keys
	limiter *Limiter
}

// New builds a Manager; the keys must be at least 32 bytes.
func New(c Config) (*Manager, error) {
	if len(c.SigningKey) < 32 {
		return nil, errors.New("session: the signing key must be at least 32 bytes")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	m := &Manager{c: c, keys: deriveKeys(c.SigningKey), limiter: newLimiter(5, time.Minute)}
	for _, k := range c.PreviousSigningKeys {
		if len(k) < 32 {
			return nil, errors.New("session: a previous signing key must be at least 32 bytes")
		}
		m.keys.oldInvite = append(m.keys.oldInvite, derive(k, "invite"))
	}
	return m, nil
}

// Limiter is the sign-in throttle shared by the login form and the API.
func (m *Manager) Limiter() *Limiter { return m.limiter }

// SetCookie sets an HttpOnly, SameSite=Lax cookie; a zero expires makes a
// browser-session cookie.
func (m *Manager) SetCookie(w http.ResponseWriter, name, value, path string, expires time.Time) {
	c := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true, Secure: m.c.Secure, SameSite: http.SameSiteLaxMode}
	if !expires.IsZero() {
		c.Expires = expires
		c.MaxAge = max(1, int(math.Ceil(expires.Sub(m.c.Now()).Seconds())))
	}
	http.SetCookie(w, c)
}

// ClearCookie removes a cookie set by SetCookie.
func (m *Manager) ClearCookie(w http.ResponseWriter, name, path string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1, HttpOnly: true, Secure: m.c.Secure, SameSite: http.SameSiteLaxMode})
}

// User returns the logged-in admin and the session token. A session that
// was logged out (recorded in the store, so on every replica) is no
// session; err is a store failure.
func (m *Manager) User(r *http.Request) (user, tok string, err error) {
	c, cerr := r.Cookie(SessionCookie)
	if cerr != nil {
		return "", "", nil
	}
	sess, ok := m.open(c.Value)
	if !ok {
		return "", "", nil
	}
	out, err := m.c.Store.Used(r.Context(), loggedOutKey(sess))
	if err != nil || out {
		return "", "", err
	}
	return sess.User, c.Value, nil
}

// End records that session tok was logged out. The cookie is signed, not
// stored: a copy saved before logout would keep working until it expires
// unless the store says it ended.
func (m *Manager) End(ctx context.Context, tok string) error {
	sess, _ := m.open(tok)
	_, err := m.c.Store.UseOnce(ctx, loggedOutKey(sess), time.Unix(sess.Expires, 0).Add(time.Minute))
	return err
}

// Known reports whether user is a configured admin.
func (m *Manager) Known(user string) bool {
	_, ok := m.c.Admins[user]
	return ok
}

// CheckPassword compares with bcrypt; an unknown user costs the same time.
func (m *Manager) CheckPassword(user, password string) bool {
	hash, ok := m.c.Admins[user]
	if !ok || user == "" {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// CredentialKey is an HMAC of user, password and the user's hash: what a
// cache of checked credentials may hold instead of the password. It
// changes when the admin's hash does.
func (m *Manager) CredentialKey(user, password string) string {
	return string(mac(m.keys.cache, user, password, m.c.Admins[user]))
}

// Authenticated reports cheaply whether r carries a signed, unexpired
// session cookie (no store call: logouts are not looked up).
func (m *Manager) Authenticated(r *http.Request) bool {
	if c, err := r.Cookie(SessionCookie); err == nil {
		if _, ok := m.open(c.Value); ok {
			return true
		}
	}
	return false
}

// ClientIP is the TCP peer, or, when the peer is a trusted proxy, the
// right-most address of X-Forwarded-For that is not a trusted proxy (the
// left part of the header is whatever the client sent). From any other
// peer the header is ignored: a client could set it to dodge the throttle.
func (m *Manager) ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !m.trusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		a, err := netip.ParseAddr(hop)
		if err != nil {
			break // garbage: the last address that could be trusted wins
		}
		host = a.Unmap().String()
		if !m.trusted(host) {
			break
		}
	}
	return host
}

func (m *Manager) trusted(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range m.c.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// LocalPath returns next if it is a path on this site, else "/": where a
// sign-in may send the browser afterwards.
func LocalPath(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}
