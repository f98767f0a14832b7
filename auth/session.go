package auth

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const (
	sessionCookie = "saas_session"
	loginCookie   = "saas_login"
	flowCookie    = "saas_flow"
	csrfField     = "csrf"
)

const csrfMessage = "The form expired or was not sent from this site; reload the page and try again."

// dummyHash is compared against when the user is unknown, so a wrong user
// name takes as long as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no such user"), bcrypt.DefaultCost)

func (s *Server) setCookie(w http.ResponseWriter, name, value, path string, expires time.Time) {
	c := &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode}
	if !expires.IsZero() {
		c.Expires = expires
		c.MaxAge = max(1, int(math.Ceil(expires.Sub(s.now()).Seconds())))
	}
	http.SetCookie(w, c)
}

func (s *Server) clearCookie(w http.ResponseWriter, name, path string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
}

// sessionUser returns the logged-in admin and the session token. A
// session that was logged out (recorded in the store, so on every
// replica) is no session; err is a store failure.
func (s *Server) sessionUser(r *http.Request) (user, tok string, err error) {
	c, cerr := r.Cookie(sessionCookie)
	if cerr != nil {
		return "", "", nil
	}
	sess, ok := s.openSession(c.Value)
	if !ok {
		return "", "", nil
	}
	out, err := s.o.Store.Used(r.Context(), loggedOutKey(sess))
	if err != nil || out {
		return "", "", err
	}
	return sess.User, c.Value, nil
}

// adminHandler is a page handler for a logged-in admin; csrf is the token
// its forms must carry.
type adminHandler func(w http.ResponseWriter, r *http.Request, a adminCtx)

type adminCtx struct {
	User string
	CSRF string
}

// admin requires a session; for POST it also parses the (bounded) form and
// checks its CSRF token.
func (s *Server) admin(h adminHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, tok, err := s.sessionUser(r)
		if err != nil {
			s.storeErrorPage(w, err)
			return
		}
		if user == "" {
			next := "/"
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				next = localPath(r.URL.RequestURI())
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if !s.parseForm(w, r) {
				return
			}
			if !s.csrfValid("session", tok, r.PostFormValue(csrfField)) {
				s.errorPage(w, http.StatusForbidden, "Form expired", csrfMessage, "/", "Back to connections")
				return
			}
		}
		h(w, r, adminCtx{User: user, CSRF: s.csrfToken("session", tok)})
	}
}

// parseForm reads a form body of at most maxBody bytes; on failure it
// answers and returns false.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.errorPage(w, http.StatusRequestEntityTooLarge, "Form too large", "The form is larger than 64 KiB, the most this server accepts. Check what was pasted and try again.", "", "")
			return false
		}
		s.errorPage(w, http.StatusBadRequest, "Bad form", "The form could not be read. Reload the page and try again.", "", "")
		return false
	}
	return true
}

type loginData struct {
	base
	Next string
	// Typed is the user name typed into a failed sign-in; not base.User,
	// which would show the page as signed in.
	Typed string
	Hint  string
	Error string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if user, _, _ := s.sessionUser(r); user != "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.renderLogin(w, r, http.StatusOK, next, "", "")
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, next, user, msg string) {
	// The login form is bound to a random cookie, so another site cannot
	// log a browser into an account of its choosing.
	binding := ""
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) >= 16 && len(c.Value) <= 64 {
		binding = c.Value
	} else {
		binding = b64.EncodeToString(randomBytes(16))
		s.setCookie(w, loginCookie, binding, "/login", time.Time{})
	}
	d := loginData{base: base{Title: "Sign in", CSRF: s.csrfToken("login", binding)}, Next: next, Typed: user, Hint: s.o.LoginHint, Error: msg}
	if msg == "" {
		d.Flash = flashText(r.URL.Query().Get("msg"), "")
	}
	s.render(w, status, "login.html", d)
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	next := localPath(r.PostFormValue("next"))
	c, err := r.Cookie(loginCookie)
	if err != nil || !s.csrfValid("login", c.Value, r.PostFormValue(csrfField)) {
		s.errorPage(w, http.StatusForbidden, "Form expired", csrfMessage, "/login?next="+url.QueryEscape(next), "Sign in again")
		return
	}
	ip := s.clientIP(r)
	now := s.now()
	user := r.PostFormValue("user")
	key := throttleKey(user, ip)
	if retry, ok := s.limiter.allowed(key, now); !ok {
		s.tooMany(w, retry, now)
		return
	}
	if !s.checkPassword(user, r.PostFormValue("password")) {
		s.limiter.fail(key, now)
		if _, known := s.o.Admins[user]; !known {
			user = "(unknown user)" // could be a password typed into the wrong field
		}
		s.log.Info("admin sign-in failed", "user", user, "client", ip)
		s.renderLogin(w, r, http.StatusUnauthorized, next, r.PostFormValue("user"), "Wrong user name or password.")
		return
	}
	s.limiter.reset(key)
	s.setCookie(w, sessionCookie, s.newSession(user), "/", now.Add(sessionTTL))
	s.log.Info("admin signed in", "user", user, "client", ip)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) tooMany(w http.ResponseWriter, retry, now time.Time) {
	secs := int(retry.Sub(now).Seconds()) + 1
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	s.errorPage(w, http.StatusTooManyRequests, "Too many attempts",
		fmt.Sprintf("Too many failed sign-ins for this user from your address. Try again in %d seconds (after %s).", secs, retry.UTC().Format("15:04:05 UTC")),
		"/login", "Sign in")
}

// checkPassword compares with bcrypt; an unknown user costs the same time.
func (s *Server) checkPassword(user, password string) bool {
	hash, ok := s.o.Admins[user]
	if !ok || user == "" {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	user, tok, _ := s.sessionUser(r)
	if user != "" && !s.csrfValid("session", tok, r.PostFormValue(csrfField)) {
		s.errorPage(w, http.StatusForbidden, "Form expired", csrfMessage, "/", "Back to connections")
		return
	}
	s.clearCookie(w, sessionCookie, "/")
	if user != "" {
		// The cookie is signed, not stored: a copy saved before logout
		// would keep working until it expires unless the store says it ended.
		sess, _ := s.openSession(tok)
		if _, err := s.o.Store.UseOnce(r.Context(), loggedOutKey(sess), time.Unix(sess.Expires, 0).Add(time.Minute)); err != nil {
			s.log.Error("recording a logout", "user", user, "err", err)
			f := asFailure(err)
			s.errorPage(w, f.Status, "Sign-out not recorded", "This browser is signed out, but the server could not record it: "+f.Msg+" Copies of the session cookie stay valid until it expires; sign in and out again once the store works.", "/login", "Sign in")
			return
		}
		s.log.Info("admin signed out", "user", user)
	}
	http.Redirect(w, r, "/login?msg=logged_out", http.StatusSeeOther)
}

// clientIP is the TCP peer, or, when the peer is a trusted proxy, the
// right-most address of X-Forwarded-For that is not a trusted proxy (the
// left part of the header is whatever the client sent). From any other
// peer the header is ignored: a client could set it to dodge the throttle.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.trusted(host) {
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
		if !s.trusted(host) {
			break
		}
	}
	return host
}

func (s *Server) trusted(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.o.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// throttleKey is what failed sign-ins are counted by: the user name tried
// and the client, so wrong passwords from one client never lock out
// another client, nor another user.
func throttleKey(user, client string) string {
	return user + "\x00" + client
}

// limiter counts failed sign-ins per client address in a sliding window.
type limiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	fails  map[string][]time.Time
}

const maxTrackedClients = 10000

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, fails: map[string][]time.Time{}}
}

func (l *limiter) recent(ip string, now time.Time) []time.Time {
	fs := l.fails[ip]
	i := 0
	for i < len(fs) && !fs[i].After(now.Add(-l.window)) {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(l.fails, ip)
		return nil
	}
	l.fails[ip] = fs
	return fs
}

// allowed reports whether ip may try again, and if not, from when.
func (l *limiter) allowed(ip string, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fs := l.recent(ip, now)
	if len(fs) >= l.max {
		return fs[len(fs)-l.max].Add(l.window), false
	}
	return time.Time{}, true
}

func (l *limiter) fail(ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) >= maxTrackedClients {
		for k := range l.fails {
			l.recent(k, now)
		}
		// Still full: forget arbitrary clients rather than grow without bound.
		for k := range l.fails {
			if len(l.fails) < maxTrackedClients {
				break
			}
			delete(l.fails, k)
		}
	}
	fs := append(l.recent(ip, now), now)
	if len(fs) > l.max {
		fs = fs[len(fs)-l.max:]
	}
	l.fails[ip] = fs
}

func (l *limiter) reset(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, ip)
}

// Authenticated reports cheaply whether r comes from a signed-in admin: a
// signed, unexpired session cookie, or basic-auth credentials the API
// accepted within the last minute. No bcrypt and no store call, so it can
// run before a request is admitted (see the cap on unauthenticated requests).
func (s *Server) Authenticated(r *http.Request) bool {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if _, ok := s.openSession(c.Value); ok {
			return true
		}
	}
	user, password, ok := r.BasicAuth()
	if !ok {
		return false
	}
	hash, known := s.o.Admins[user]
	if !known {
		return false
	}
	key := string(mac(s.keys.cache, user, password, hash))
	s.apiCache.mu.Lock()
	exp, hit := s.apiCache.ok[key]
	s.apiCache.mu.Unlock()
	return hit && s.now().Before(exp)
}
