package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

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

type apiError struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Error: msg})
}

func writeFailure(w http.ResponseWriter, err error) {
	f := asFailure(err)
	writeJSON(w, f.Status, apiError{Error: f.Msg, Field: f.Field})
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
// HMACs of user, password and hash: the cache never holds a password.
type authCache struct {
	mu  sync.Mutex
	ttl time.Duration
	ok  map[string]time.Time
}

func newAuthCache(ttl time.Duration) *authCache {
	return &authCache{ttl: ttl, ok: map[string]time.Time{}}
}

func (s *Server) apiCredentialsOK(user, password string, now time.Time) bool {
	hash, known := s.o.Admins[user]
	key := string(mac(s.keys.cache, user, password, hash))
	c := s.apiCache
	c.mu.Lock()
	exp, hit := c.ok[key]
	c.mu.Unlock()
	if known && hit && now.Before(exp) {
		return true
	}
	if !s.checkPassword(user, password) {
		return false
	}
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
func (s *Server) api(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, password, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="saas_exporter", charset="UTF-8"`)
			writeJSONError(w, http.StatusUnauthorized, "authentication required: use HTTP basic auth with an admin user")
			return
		}
		key, now := throttleKey(user, s.clientIP(r)), s.now()
		if retry, ok := s.limiter.allowed(key, now); !ok {
			secs := int(retry.Sub(now).Seconds()) + 1
			w.Header().Set("Retry-After", fmt.Sprint(secs))
			writeJSONError(w, http.StatusTooManyRequests, fmt.Sprintf("too many failed sign-ins for this user from your address; retry in %d seconds", secs))
			return
		}
		if !s.apiCredentialsOK(user, password, now) {
			s.limiter.fail(key, now)
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
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fail(http.StatusRequestEntityTooLarge, "request body is larger than 64 KiB")
		}
		return nil, fail(http.StatusBadRequest, "reading the request body failed: %v", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fail(http.StatusBadRequest, "request body is empty; send a JSON object")
	}
	return b, nil
}

// requireJSON refuses a request not declared JSON (see readBody), also
// for a write that takes no body: a page on another site could send it.
func requireJSON(r *http.Request) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return fail(http.StatusUnsupportedMediaType, "send the body as JSON with Content-Type: application/json")
	}
	return nil
}

func jsonFailure(err error) *failure {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fail(http.StatusBadRequest, "request body is not valid JSON (at byte %d): %v", se.Offset, err)
	case errors.As(err, &te):
		if te.Field != "" {
			return fail(http.StatusBadRequest, "field %q must be a %s", te.Field, te.Type)
		}
		return fail(http.StatusBadRequest, "request body must be a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fail(http.StatusBadRequest, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return fail(http.StatusBadRequest, "request body is not valid JSON: %v", err)
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown keys.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonFailure(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fail(http.StatusBadRequest, "request body has data after the JSON object")
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
		return nil, fail(http.StatusBadRequest, "request body must be a JSON object")
	}
	obj := make(map[string]string, len(raw))
	for k, v := range raw {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			f := fail(http.StatusBadRequest, "field %q must be a string", k)
			f.Field = k
			return nil, f
		}
		obj[k] = s
	}
	return obj, nil
}

type apiConnection struct {
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
	Budget        *apiBudget        `json:"budget"`
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
func toAPI(c store.Connection) apiConnection {
	settings := c.Settings
	if settings == nil {
		settings = map[string]string{}
	}
	return apiConnection{
		ID: c.ID, Vendor: c.Vendor, Name: c.Name, Account: c.Account, AccountID: c.AccountID, AuthMethod: c.AuthMethod,
		State: c.State, Created: c.Created.UTC(), Expiry: timePtr(c.Expiry), LastSuccess: timePtr(c.LastSuccess), LastError: c.LastError,
		Scopes: nonNil(c.Scopes), MissingScopes: nonNil(c.MissingScopes), Settings: settings,
	}
}

// toAPIConn is toAPI with the connection's budget.
func (s *Server) toAPIConn(c store.Connection) apiConnection {
	a := toAPI(c)
	a.Budget = s.budgetView(c)
	return a
}

func (s *Server) apiList(w http.ResponseWriter, r *http.Request, _ string) {
	conns, err := s.o.Store.List(r.Context())
	if err != nil {
		writeFailure(w, err)
		return
	}
	out := make([]apiConnection, 0, len(conns))
	for _, c := range conns {
		out = append(out, s.toAPIConn(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiDelete(w http.ResponseWriter, r *http.Request, user string) {
	_, err := s.disconnect(r, r.PathValue("id"), user)
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

func (s *Server) apiCreate(w http.ResponseWriter, r *http.Request, _ string) {
	obj, err := readObject(w, r)
	if err != nil {
		writeFailure(w, err)
		return
	}
	vendor, name, method := take(obj, "vendor"), take(obj, "name"), take(obj, "method")
	if vendor == "" {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "vendor is required (known: " + s.vendorList() + ")", Field: "vendor"})
		return
	}
	p := s.provider(vendor)
	if p == nil {
		writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("unknown vendor %q (known: %s)", vendor, s.vendorList()), Field: "vendor"})
		return
	}
	s.apiConnect(w, r, p, target{Name: name}, method, obj)
}

func (s *Server) apiReconnect(w http.ResponseWriter, r *http.Request, _ string) {
	obj, err := readObject(w, r)
	if err != nil {
		writeFailure(w, err)
		return
	}
	c, err := s.o.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeConnFailure(w, r, err)
		return
	}
	// A script may send the same body as for create; only matching values are accepted.
	if v, ok := obj["vendor"]; ok && v != c.Vendor {
		writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("connection %s is a %s connection; leave vendor out to reconnect it", c.ID, c.Vendor), Field: "vendor"})
		return
	}
	if v, ok := obj["name"]; ok && v != c.Name {
		writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("connection %s is called %q; a reconnect keeps the name, leave name out", c.ID, c.Name), Field: "name"})
		return
	}
	delete(obj, "vendor")
	delete(obj, "name")
	p := s.provider(c.Vendor)
	if p == nil {
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("vendor %q of this connection is not supported by this exporter (known: %s)", c.Vendor, s.vendorList()))
		return
	}
	s.apiConnect(w, r, p, target{Reconnect: c.ID}, take(obj, "method"), obj)
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
func (s *Server) apiConnect(w http.ResponseWriter, r *http.Request, p provider.Provider, t target, method string, obj map[string]string) {
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
					writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("method %q of %s is not configured on this exporter (available: %s)", method, p.Vendor(), methodNames(p)), Field: "method"})
					return
				}
				rm = m
			}
		}
		if fm == nil && rm == nil {
			writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("unknown method %q for %s (available: %s)", method, p.Vendor(), methodNames(p)), Field: "method"})
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
			rm = redirectMethod(p, "")
		}
		if fm == nil && rm == nil {
			// No redirect method: the first form method's error names what is missing.
			fm = formMethod(p, "")
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
			writeJSON(w, http.StatusBadRequest, apiError{Error: msg, Field: keys[0]})
			return
		}
		ctx, cancel := s.contextOf(r)
		defer cancel()
		if err := s.checkTarget(ctx, p, t); err != nil {
			writeFailure(w, err)
			return
		}
		u, err := s.startFlow(w, p, rm, t)
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
			writeJSON(w, http.StatusBadRequest, apiError{Error: msg, Field: k})
			return
		}
	}
	res, err := s.connectForm(r, p, fm, t, func(k string) string { return obj[k] })
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

type apiInvite struct {
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

func (s *Server) toAPIInvite(inv store.Invite) apiInvite {
	a := apiInvite{ID: inv.ID, Vendor: inv.Vendor, Name: inv.Name, Status: s.inviteStatus(inv), Created: inv.Created.UTC(), Expires: inv.Expires.UTC(),
		Used: timePtr(inv.Used), Revoked: inv.Revoked, ConnectionID: inv.ConnectionID}
	if a.Status == "pending" {
		a.URL = s.inviteURL(inv.ID)
	}
	return a
}

func (s *Server) apiInvites(w http.ResponseWriter, r *http.Request, _ string) {
	invs, err := s.o.Store.ListInvites(r.Context())
	if err != nil {
		writeFailure(w, err)
		return
	}
	out := make([]apiInvite, 0, len(invs))
	for _, inv := range invs {
		out = append(out, s.toAPIInvite(inv))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiInviteCreate(w http.ResponseWriter, r *http.Request, _ string) {
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
			writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf("expires_in %q is not a duration such as \"72h\"", req.ExpiresIn), Field: "expires_in"})
			return
		}
	}
	inv, err := s.createInvite(r.Context(), req.Vendor, req.Name, req.ConnectionID, ttl)
	if err != nil {
		writeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.toAPIInvite(inv))
}

func (s *Server) apiInviteRevoke(w http.ResponseWriter, r *http.Request, _ string) {
	if _, err := s.revokeInvite(r.Context(), r.PathValue("id")); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeJSONError(w, http.StatusNotFound, "no invite with id "+r.PathValue("id"))
			return
		}
		writeFailure(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
