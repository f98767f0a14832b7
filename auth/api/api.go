// Package api serves the JSON API (/api/v1/...): HTTP basic auth with
// its cache of checked credentials, JSON bodies and JSON errors. What a
// call does is connect's and who may call is session's; it never imports
// ui (the HTML pages) or a vendor.
package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/saas-exporter/saas_exporter/auth/connect"
	"github.com/saas-exporter/saas_exporter/auth/session"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// Config configures a Handler; every field is set.
type Config struct {
	Connect  *connect.Service
	Sessions *session.Manager
	Store    store.Store
	Log      *slog.Logger
	Now      func() time.Time
}

// Handler serves the API routes.
type Handler struct {
	c     Config
	cache *authCache
}

// New builds a Handler.
func New(c Config) *Handler {
	return &Handler{c: c, cache: newAuthCache(time.Minute)}
}

// Register registers the API's routes on mux.
func (s *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/connections", s.api(s.apiList))
	mux.HandleFunc("POST /api/v1/connections", s.api(s.apiCreate))
	mux.HandleFunc("GET /api/v1/connections/{id}", s.api(s.apiGet))
	mux.HandleFunc("PATCH /api/v1/connections/{id}", s.api(s.apiRename))
	mux.HandleFunc("POST /api/v1/connections/{id}/collect", s.api(s.apiCollect))
	mux.HandleFunc("DELETE /api/v1/connections/{id}", s.api(s.apiDelete))
	mux.HandleFunc("POST /api/v1/connections/{id}/reconnect", s.api(s.apiReconnect))
	mux.HandleFunc("PUT /api/v1/connections/{id}/budget", s.api(s.apiSetBudget))
	mux.HandleFunc("GET /api/v1/invites", s.api(s.apiInvites))
	mux.HandleFunc("POST /api/v1/invites", s.api(s.apiInviteCreate))
	mux.HandleFunc("DELETE /api/v1/invites/{id}", s.api(s.apiInviteRevoke))
	mux.HandleFunc("/api/v1/", s.api(func(w http.ResponseWriter, r *http.Request, _ string) {
		writeJSONError(w, http.StatusNotFound, "no such API endpoint; see the README for GET/POST /api/v1/connections and /api/v1/invites")
	}))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Error is the body of every API error.
type Error struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, Error{Error: msg})
}

func writeFailure(w http.ResponseWriter, err error) {
	f := connect.AsFailure(err)
	writeJSON(w, f.Status, Error{Error: f.Msg, Field: f.Field})
}

// writeConnFailure answers a failed call on connection {id}: 404 if it
// does not exist.
func writeConnFailure(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeJSONError(w, http.StatusNotFound, "no connection with id "+r.PathValue("id"))
		return
	}
	writeFailure(w, err)
}

// authCache remembers recent successful basic-auth checks, so a script
// calling the API in a loop does not pay for bcrypt every time. Keys are
// HMACs of user, password and hash (session.Manager.CredentialKey): the
// cache never holds a password.
type authCache struct {
	mu  sync.Mutex
	ttl time.Duration
	ok  map[string]time.Time
}

func newAuthCache(ttl time.Duration) *authCache {
	return &authCache{ttl: ttl, ok: map[string]time.Time{}}
}

func (c *authCache) hit(key string, now time.Time) bool {
	c.mu.Lock()
	exp, hit := c.ok[key]
	c.mu.Unlock()
	return hit && now.Before(exp)
}

// CachedKeys lists the cache's keys, for tests that check it holds no
// password.
func (s *Handler) CachedKeys() []string {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	ks := make([]string, 0, len(s.cache.ok))
	for k := range s.cache.ok {
		ks = append(ks, k)
	}
	return ks
}

// Authenticated reports cheaply whether r carries basic-auth credentials
// the API accepted within the last minute: no bcrypt, no store call.
func (s *Handler) Authenticated(r *http.Request) bool {
	user, password, ok := r.BasicAuth()
	if !ok || !s.c.Sessions.Known(user) {
		return false
	}
	return s.cache.hit(s.c.Sessions.CredentialKey(user, password), s.c.Now())
}

func (s *Handler) apiCredentialsOK(user, password string, now time.Time) bool {
	key := s.c.Sessions.CredentialKey(user, password)
	if s.c.Sessions.Known(user) && s.cache.hit(key, now) {
		return true
	}
	if !s.c.Sessions.CheckPassword(user, password) {
		return false
	}
	c := s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.ok {
		if !now.Before(e) {
			delete(c.ok, k)
		}
	}
	if len(c.ok) < 1000 {
		c.ok[key] = now.Add(c.ttl)
	}
	return true
}

type apiHandler func(w http.ResponseWriter, r *http.Request, user string)

// api requires HTTP basic auth with an admin user.
func (s *Handler) api(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, password, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="saas_exporter", charset="UTF-8"`)
			writeJSONError(w, http.StatusUnauthorized, "authentication required: use HTTP basic auth with an admin user")
			return
		}
		key, now := session.ThrottleKey(user, s.c.Sessions.ClientIP(r)), s.c.Now()
		limiter := s.c.Sessions.Limiter()
		if retry, ok := limiter.Allowed(key, now); !ok {
			secs := int(retry.Sub(now).Seconds()) + 1
			w.Header().Set("Retry-After", fmt.Sprint(secs))
			writeJSONError(w, http.StatusTooManyRequests, fmt.Sprintf("too many failed sign-ins for this user from your address; retry in %d seconds", secs))
			return
		}
		if !s.apiCredentialsOK(user, password, now) {
			limiter.Fail(key, now)
			w.Header().Set("WWW-Authenticate", `Basic realm="saas_exporter", charset="UTF-8"`)
			writeJSONError(w, http.StatusUnauthorized, "wrong user name or password")
			return
		}
		h(w, r, user)
	}
}

// readBody reads a bounded JSON body. Content-Type must say JSON, and a
// missing one is refused too: a page on another site can make a browser
// with cached basic-auth credentials POST a body without a type (a Blob)
// or with a form or text type, but a JSON type needs a CORS preflight,
// which the exporter never grants.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if err := requireJSON(r); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, connect.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, connect.Fail(http.StatusRequestEntityTooLarge, "request body is larger than 64 KiB")
		}
		return nil, connect.Fail(http.StatusBadRequest, "reading the request body failed: %v", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, connect.Fail(http.StatusBadRequest, "request body is empty; send a JSON object")
	}
	return b, nil
}

// requireJSON refuses a request not declared JSON (see readBody), also
// for a write that takes no body: a page on another site could send it.
func requireJSON(r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return connect.Fail(http.StatusUnsupportedMediaType, "send the body as JSON with Content-Type: application/json")
	}
	return nil
}

func jsonFailure(err error) *connect.Failure {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return connect.Fail(http.StatusBadRequest, "request body is not valid JSON (at byte %d): %v", se.Offset, err)
	case errors.As(err, &te):
		if te.Field != "" {
			return connect.Fail(http.StatusBadRequest, "field %q must be a %s", te.Field, te.Type)
		}
		return connect.Fail(http.StatusBadRequest, "request body must be a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return connect.Fail(http.StatusBadRequest, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return connect.Fail(http.StatusBadRequest, "request body is not valid JSON: %v", err)
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown keys.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonFailure(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return connect.Fail(http.StatusBadRequest, "request body has data after the JSON object")
	}
	return nil
}

// readObject reads a JSON object whose values are all strings.
func readObject(w http.ResponseWriter, r *http.Request) (map[string]string, error) {
	b, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := decodeStrict(b, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return nil, connect.Fail(http.StatusBadRequest, "request body must be a JSON object")
	}
	obj := make(map[string]string, len(raw))
	for k, v := range raw {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			f := connect.Fail(http.StatusBadRequest, "field %q must be a string", k)
			f.Field = k
			return nil, f
		}
		obj[k] = s
	}
	return obj, nil
}

// Connection is a connection as the API shows it: everything but its secret.
type Connection struct {
	ID            string            `json:"id"`
	Vendor        string            `json:"vendor"`
	Name          string            `json:"name"`
	Account       string            `json:"account"`
	AccountID     string            `json:"account_id"`
	AuthMethod    string            `json:"auth_method"`
	State         string            `json:"state"`
	Created       time.Time         `json:"created"`
	Expiry        *time.Time        `json:"expiry"`
	LastSuccess   *time.Time        `json:"last_success"`
	LastError     string            `json:"last_error"`
	Scopes        []string          `json:"scopes"`
	MissingScopes []string          `json:"missing_scopes"`
	Settings      map[string]string `json:"settings"`
	Budget        *connect.Budget   `json:"budget"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// toAPI lists what a connection may show: everything but its secret.
func toAPI(c store.Connection) Connection {
	settings := c.Settings
	if settings == nil {
		settings = map[string]string{}
	}
	return Connection{
		ID: c.ID, Vendor: c.Vendor, Name: c.Name, Account: c.Account, AccountID: c.AccountID, AuthMethod: c.AuthMethod,
		State: c.State, Created: c.Created.UTC(), Expiry: timePtr(c.Expiry), LastSuccess: timePtr(c.LastSuccess), LastError: c.LastError,
		Scopes: nonNil(c.Scopes), MissingScopes: nonNil(c.MissingScopes), Settings: settings,
	}
}

// toAPIConn is toAPI with the connection's budget.
func (s *Handler) toAPIConn(c store.Connection) Connection {
	a := toAPI(c)
	a.Budget = s.c.Connect.BudgetView(c)
	return a
}

func (s *Handler) apiList(w http.ResponseWriter, r *http.Request, _ string) {
	conns, err := s.c.Store.List(r.Context())
	if err != nil {
		writeFailure(w, err)
		return
	}
	out := make([]Connection, 0, len(conns))
	// The stored status: what every replica shares (the detail shows this
	// replica's newer attempt).
	for _, c := range conns {
		out = append(out, s.toAPIConn(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Handler) apiDelete(w http.ResponseWriter, r *http.Request, user string) {
	_, err := s.c.Connect.Disconnect(r.Context(), r.PathValue("id"), user)
	if err != nil {
		writeConnFailure(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func take(obj map[string]string, k string) string {
	v := obj[k]
	delete(obj, k)
	return v
}

func (s *Handler) apiCreate(w http.ResponseWriter, r *http.Request, _ string) {
	obj, err := readObject(w, r)
	if err != nil {
		writeFailure(w, err)
		return
	}
	vendor, name, method := take(obj, "vendor"), take(obj, "name"), take(obj, "method")
	if vendor == "" {
		writeJSON(w, http.StatusBadRequest, Error{Error: "vendor is required (known: " + s.c.Connect.VendorList() + ")", Field: "vendor"})
		return
	}
	p := s.c.Connect.Provider(vendor)
	if p == nil {
		writeJSON(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("unknown vendor %q (known: %s)", vendor, s.c.Connect.VendorList()), Field: "vendor"})
		return
	}
	s.apiConnect(w, r, p, connect.Target{Name: name}, method, obj)
}

func (s *Handler) apiReconnect(w http.ResponseWriter, r *http.Request, _ string) {
	obj, err := readObject(w, r)
	if err != nil {
		writeFailure(w, err)
		return
	}
	c, err := s.c.Store.Get(r.Context(), r.PathValue("id"))
	damaged := errors.Is(err, store.ErrDamaged)
	if err != nil && !damaged {
		writeConnFailure(w, r, err)
		return
	}
	if damaged && c.Vendor == "" {
		// Reconnecting is what a damaged record needs; if not even its
		// vendor could be read, the request names it.
		if c.Vendor = obj["vendor"]; c.Vendor == "" {
			writeJSON(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("connection %s cannot be read (its stored record is damaged): give its vendor to reconnect it", c.ID), Field: "vendor"})
			return
		}
	}
	// A script may send the same body as for create; only matching values are accepted.
	if v, ok := obj["vendor"]; ok && v != c.Vendor {
		writeJSON(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("connection %s is a %s connection; leave vendor out to reconnect it", c.ID, c.Vendor), Field: "vendor"})
		return
	}
	if v, ok := obj["name"]; ok && v != c.Name {
		writeJSON(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("connection %s is called %q; a reconnect keeps the name, leave name out", c.ID, c.Name), Field: "name"})
		return
	}
	delete(obj, "vendor")
	delete(obj, "name")
	p := s.c.Connect.Provider(c.Vendor)
	if p == nil {
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("vendor %q of this connection is not supported by this exporter (known: %s)", c.Vendor, s.c.Connect.VendorList()))
		return
	}
	s.apiConnect(w, r, p, connect.Target{Reconnect: c.ID}, take(obj, "method"), obj)
}

// hasFields reports whether obj looks meant for m: it has a value for
// every required field.
func hasFields(m provider.FormMethod, obj map[string]string) bool {
	present := false
	for _, f := range m.Fields() {
		v := strings.TrimSpace(obj[f.Name])
		present = present || v != ""
		if v == "" && !f.Optional && len(f.Options) == 0 {
			return false
		}
	}
	return present
}

// closestField finds the form method field of p that key most likely
// means, or returns nil.
func closestField(p provider.Provider, key string) (provider.FormMethod, string) {
	for _, m := range p.Methods() {
		if fm, ok := m.(provider.FormMethod); ok {
			if f := closest(key, fm); f != "" {
				return fm, f
			}
		}
	}
	return nil, ""
}

// closest returns the field of m that key is a misspelling of: the same
// but for case, '_', '-' and '.', or at most two letters off; "" if none.
func closest(key string, m provider.FormMethod) string {
	norm := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '_' || r == '-' || r == '.' || r == ' ' {
				return -1
			}
			return unicode.ToLower(r)
		}, s)
	}
	k := norm(key)
	best, bestD := "", 3
	for _, f := range m.Fields() {
		if d := editDistance(k, norm(f.Name)); d < bestD && d < len([]rune(k)) {
			best, bestD = f.Name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur := make([]int, len(rb)+1)
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(rb)]
}

func fieldNames(m provider.FormMethod) string {
	var ns []string
	for _, f := range m.Fields() {
		ns = append(ns, f.Name)
	}
	return strings.Join(ns, ", ")
}

// apiConnect connects p with the method named (or chosen from the fields
// present): a form method is verified and stored (201/200), a redirect
// method answers 202 with the URL to follow and sets the flow cookie.
func (s *Handler) apiConnect(w http.ResponseWriter, r *http.Request, p provider.Provider, t connect.Target, method string, obj map[string]string) {
	var fm provider.FormMethod
	var rm provider.RedirectMethod
	if method != "" {
		for _, m := range p.Methods() {
			if m.Name() != method {
				continue
			}
			switch m := m.(type) {
			case provider.FormMethod:
				fm = m
			case provider.RedirectMethod:
				if !m.Enabled() {
					writeJSON(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("method %q of %s is not configured on this exporter (available: %s)", method, p.Vendor(), connect.MethodNames(p)), Field: "method"})
					return
				}
				rm = m
			}
		}
		if fm == nil && rm == nil {
			writeJSON(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("unknown method %q for %s (available: %s)", method, p.Vendor(), connect.MethodNames(p)), Field: "method"})
			return
		}
	} else {
		for _, m := range p.Methods() {
			if m, ok := m.(provider.FormMethod); ok && hasFields(m, obj) {
				fm = m
				break
			}
		}
		if fm == nil {
			rm = connect.RedirectMethod(p, "")
		}
		if fm == nil && rm == nil {
			// No redirect method: the first form method's error names what is missing.
			fm = connect.FormMethod(p, "")
		}
		if fm == nil && rm == nil {
			writeJSONError(w, http.StatusBadRequest, p.Title()+" has no sign-in method configured on this exporter")
			return
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if rm != nil {
		if len(keys) > 0 {
			msg := fmt.Sprintf("unknown field %q: method %q of %s takes no fields", keys[0], rm.Name(), p.Vendor())
			if m, f := closestField(p, keys[0]); m != nil {
				msg = fmt.Sprintf("unknown field %q: did you mean %q (method %q of %s)?", keys[0], f, m.Name(), p.Vendor())
			}
			writeJSON(w, http.StatusBadRequest, Error{Error: msg, Field: keys[0]})
			return
		}
		ctx, cancel := connect.ContextOf(r)
		defer cancel()
		if err := s.c.Connect.CheckTarget(ctx, p, t); err != nil {
			writeFailure(w, err)
			return
		}
		u, err := s.c.Connect.StartFlow(w, p, rm, t)
		if err != nil {
			writeFailure(w, err)
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"authorize_url": u, "method": rm.Name()})
		return
	}
	known := map[string]bool{}
	for _, f := range fm.Fields() {
		known[f.Name] = true
	}
	for _, k := range keys {
		if !known[k] {
			msg := fmt.Sprintf("unknown field %q for method %q of %s (fields: vendor, name, method, %s)", k, fm.Name(), p.Vendor(), fieldNames(fm))
			if f := closest(k, fm); f != "" {
				msg = fmt.Sprintf("unknown field %q for method %q of %s: did you mean %q?", k, fm.Name(), p.Vendor(), f)
			}
			writeJSON(w, http.StatusBadRequest, Error{Error: msg, Field: k})
			return
		}
	}
	res, err := s.c.Connect.ConnectForm(r, p, fm, t, func(k string) string { return obj[k] })
	if err != nil {
		writeFailure(w, err)
		return
	}
	status := http.StatusOK
	if res.Kind == "connected" {
		status = http.StatusCreated
	}
	writeJSON(w, status, s.toAPIConn(res.Conn))
}

// Invite is an invite as the API shows it; URL only while it can be used.
type Invite struct {
	ID           string     `json:"id"`
	Vendor       string     `json:"vendor"`
	Name         string     `json:"name"`
	Status       string     `json:"status"`
	Created      time.Time  `json:"created"`
	Expires      time.Time  `json:"expires"`
	Used         *time.Time `json:"used"`
	Revoked      bool       `json:"revoked"`
	ConnectionID string     `json:"connection_id,omitempty"`
	URL          string     `json:"url,omitempty"`
}

func (s *Handler) toAPIInvite(inv store.Invite) Invite {
	a := Invite{ID: inv.ID, Vendor: inv.Vendor, Name: inv.Name, Status: s.c.Connect.InviteStatus(inv), Created: inv.Created.UTC(), Expires: inv.Expires.UTC(),
		Used: timePtr(inv.Used), Revoked: inv.Revoked, ConnectionID: inv.ConnectionID}
	if a.Status == "pending" {
		a.URL = s.c.Connect.InviteURL(inv.ID)
	}
	return a
}

func (s *Handler) apiInvites(w http.ResponseWriter, r *http.Request, _ string) {
	invs, err := s.c.Store.ListInvites(r.Context())
	if err != nil {
		writeFailure(w, err)
		return
	}
	out := make([]Invite, 0, len(invs))
	for _, inv := range invs {
		out = append(out, s.toAPIInvite(inv))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Handler) apiInviteCreate(w http.ResponseWriter, r *http.Request, _ string) {
	b, err := readBody(w, r)
	if err != nil {
		writeFailure(w, err)
		return
	}
	var req struct {
		Vendor       string `json:"vendor"`
		Name         string `json:"name"`
		ExpiresIn    string `json:"expires_in"`
		ConnectionID string `json:"connection_id"`
	}
	if err := decodeStrict(b, &req); err != nil {
		writeFailure(w, err)
		return
	}
	var ttl time.Duration
	if req.ExpiresIn != "" {
		if ttl, err = time.ParseDuration(req.ExpiresIn); err != nil {
			writeJSON(w, http.StatusBadRequest, Error{Error: fmt.Sprintf("expires_in %q is not a duration such as \"72h\"", req.ExpiresIn), Field: "expires_in"})
			return
		}
	}
	inv, err := s.c.Connect.CreateInvite(r.Context(), req.Vendor, req.Name, req.ConnectionID, ttl)
	if err != nil {
		writeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.toAPIInvite(inv))
}

func (s *Handler) apiInviteRevoke(w http.ResponseWriter, r *http.Request, _ string) {
	if _, err := s.c.Connect.RevokeInvite(r.Context(), r.PathValue("id")); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeJSONError(w, http.StatusNotFound, "no invite with id "+r.PathValue("id"))
			return
		}
		writeFailure(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
