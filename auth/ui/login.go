package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/connect"
	"github.com/saas-exporter/saas_exporter/auth/session"
)

// adminHandler is a page handler for a logged-in admin; csrf is the token
// its forms must carry.
type adminHandler func(w http.ResponseWriter, r *http.Request, a adminCtx)

type adminCtx struct {
	User string
	CSRF string
}

// admin requires a session; for POST it also parses the (bounded) form and
// checks its CSRF token.
func (s *Pages) admin(h adminHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, tok, err := s.c.Sessions.User(r)
		if err != nil {
			s.storeErrorPage(w, err)
			return
		}
		if user == "" {
			next := "/"
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				next = session.LocalPath(r.URL.RequestURI())
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if !s.parseForm(w, r) {
				return
			}
			if !s.c.Sessions.CSRFValid("session", tok, r.PostFormValue(session.CSRFField)) {
				s.errorPage(w, http.StatusForbidden, "Form expired", session.CSRFMessage, "/", "Back to connections")
				return
			}
		}
		h(w, r, adminCtx{User: user, CSRF: s.c.Sessions.CSRFToken("session", tok)})
	}
}

// parseForm reads a form body of at most connect.MaxBody bytes; on failure it
// answers and returns false.
func (s *Pages) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, connect.MaxBody)
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

func (s *Pages) loginPage(w http.ResponseWriter, r *http.Request) {
	next := session.LocalPath(r.URL.Query().Get("next"))
	if user, _, _ := s.c.Sessions.User(r); user != "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.renderLogin(w, r, http.StatusOK, next, "", "")
}

func (s *Pages) renderLogin(w http.ResponseWriter, r *http.Request, status int, next, user, msg string) {
	// The login form is bound to a random cookie, so another site cannot
	// log a browser into an account of its choosing.
	binding := ""
	if c, err := r.Cookie(session.LoginCookie); err == nil && len(c.Value) >= 16 && len(c.Value) <= 64 {
		binding = c.Value
	} else {
		binding = session.RandomToken(16)
		s.c.Sessions.SetCookie(w, session.LoginCookie, binding, "/login", time.Time{})
	}
	d := loginData{base: base{Title: "Sign in", CSRF: s.c.Sessions.CSRFToken("login", binding)}, Next: next, Typed: user, Hint: s.c.LoginHint, Error: msg}
	if msg == "" {
		d.Flash = flashText(r.URL.Query().Get("msg"), "")
	}
	s.render(w, status, "login.html", d)
}

func (s *Pages) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	next := session.LocalPath(r.PostFormValue("next"))
	c, err := r.Cookie(session.LoginCookie)
	if err != nil || !s.c.Sessions.CSRFValid("login", c.Value, r.PostFormValue(session.CSRFField)) {
		s.errorPage(w, http.StatusForbidden, "Form expired", session.CSRFMessage, "/login?next="+url.QueryEscape(next), "Sign in again")
		return
	}
	ip := s.c.Sessions.ClientIP(r)
	now := s.c.Now()
	user := r.PostFormValue("user")
	key := session.ThrottleKey(user, ip)
	if retry, ok := s.c.Sessions.Limiter().Allowed(key, now); !ok {
		s.tooMany(w, retry, now)
		return
	}
	if !s.c.Sessions.CheckPassword(user, r.PostFormValue("password")) {
		s.c.Sessions.Limiter().Fail(key, now)
		if !s.c.Sessions.Known(user) {
			user = "(unknown user)" // could be a password typed into the wrong field
		}
		s.c.Log.Info("admin sign-in failed", "user", user, "client", ip)
		s.renderLogin(w, r, http.StatusUnauthorized, next, r.PostFormValue("user"), "Wrong user name or password.")
		return
	}
	s.c.Sessions.Limiter().Reset(key)
	s.c.Sessions.SetCookie(w, session.SessionCookie, s.c.Sessions.NewSession(user), "/", now.Add(session.TTL))
	s.c.Log.Info("admin signed in", "user", user, "client", ip)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Pages) tooMany(w http.ResponseWriter, retry, now time.Time) {
	secs := int(retry.Sub(now).Seconds()) + 1
	w.Header().Set("Retry-After", fmt.Sprint(secs))
	s.errorPage(w, http.StatusTooManyRequests, "Too many attempts",
		fmt.Sprintf("Too many failed sign-ins for this user from your address. Try again in %d seconds (after %s).", secs, retry.UTC().Format("15:04:05 UTC")),
		"/login", "Sign in")
}

func (s *Pages) logout(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	user, tok, _ := s.c.Sessions.User(r)
	if user != "" && !s.c.Sessions.CSRFValid("session", tok, r.PostFormValue(session.CSRFField)) {
		s.errorPage(w, http.StatusForbidden, "Form expired", session.CSRFMessage, "/", "Back to connections")
		return
	}
	s.c.Sessions.ClearCookie(w, session.SessionCookie, "/")
	if user != "" {
		// The cookie is signed, not stored: a copy saved before logout
		// would keep working until it expires unless the store says it ended.
		if err := s.c.Sessions.End(r.Context(), tok); err != nil {
			s.c.Log.Error("recording a logout", "user", user, "err", err)
			f := connect.AsFailure(err)
			s.errorPage(w, f.Status, "Sign-out not recorded", "This browser is signed out, but the server could not record it: "+f.Msg+" Copies of the session cookie stay valid until it expires; sign in and out again once the store works.", "/login", "Sign in")
			return
		}
		s.c.Log.Info("admin signed out", "user", user)
	}
	http.Redirect(w, r, "/login?msg=logged_out", http.StatusSeeOther)
}
