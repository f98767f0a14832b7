package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// failure is an outcome a person can act on; pages and the API show Msg
// with Status.
type failure struct {
	Status int
	Field  string
	Msg    string
	Detail string // vendor-provided text, shown as plain text
}

func (f *failure) Error() string { return f.Msg }

func fail(status int, format string, args ...any) *failure {
	return &failure{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// asFailure turns any error into a failure; errors that are not already
// one are store problems.
func asFailure(err error) *failure {
	var f *failure
	if errors.As(err, &f) {
		return f
	}
	if errors.Is(err, store.ErrUnavailable) {
		return fail(http.StatusServiceUnavailable, "The connection store is unavailable: %v. Try again; check the exporter log and saas_exporter_store_up if it persists.", err)
	}
	return fail(http.StatusServiceUnavailable, "The connection store failed: %v. Nothing was changed; try again, and check the exporter log if it persists.", err)
}

// target says what a successful flow writes.
type target struct {
	Name      string // name of a new connection
	Reconnect string // id of the connection whose credential is replaced
	Invite    string // id of the invite the flow consumes
}

// redactor removes known secret values from text shown or logged.
type redactor []string

func (r *redactor) add(vs ...string) {
	for _, v := range vs {
		if len(strings.TrimSpace(v)) >= 4 {
			*r = append(*r, v)
		}
	}
}

func (r redactor) apply(s string) string {
	// Longest first, so a secret containing another is removed whole.
	vs := append([]string(nil), r...)
	sort.Slice(vs, func(i, j int) bool { return len(vs[i]) > len(vs[j]) })
	for _, v := range vs {
		s = strings.ReplaceAll(s, v, "[redacted]")
	}
	return s
}

// nameConflict returns the connection that makes name unusable for a new
// connection of vendor. A same-vendor connection with an account id is not
// a conflict yet: connecting its account again updates it.
func nameConflict(conns []store.Connection, vendor, name string) *store.Connection {
	for i := range conns {
		c := &conns[i]
		if c.Name == name && (c.Vendor != vendor || c.AccountID == "") {
			return c
		}
	}
	return nil
}

func nameTaken(name string) *failure {
	f := fail(http.StatusConflict, "The name “%s” is already used by another connection; choose another name.", name)
	f.Field = "name"
	return f
}

// checkTarget checks what can be checked before the vendor is contacted.
func (s *Server) checkTarget(ctx context.Context, p provider.Provider, t target) error {
	if t.Reconnect != "" {
		c, err := s.o.Store.Get(ctx, t.Reconnect)
		if errors.Is(err, store.ErrNotFound) {
			return fail(http.StatusNotFound, "There is no connection with id %s (it may have been disconnected). Connect it as a new connection instead.", t.Reconnect)
		}
		if err != nil {
			return err
		}
		if c.Vendor != p.Vendor() {
			return fail(http.StatusBadRequest, "Connection “%s” is a %s connection, not %s.", c.Name, c.Vendor, p.Title())
		}
		return nil
	}
	if !nameRE.MatchString(t.Name) {
		f := fail(http.StatusBadRequest, "The connection name must be %s.", nameRule)
		if t.Name == "" {
			f.Msg = "A connection name is required (" + nameRule + "), e.g. “prod”."
		}
		f.Field = "name"
		return f
	}
	conns, err := s.o.Store.List(ctx)
	if err != nil {
		return err
	}
	if nameConflict(conns, p.Vendor(), t.Name) != nil {
		return nameTaken(t.Name)
	}
	return nil
}

// formValues collects and checks the values of m's fields; get returns a
// submitted value and whether it was present.
func formValues(m provider.FormMethod, get func(string) string) (map[string]string, error) {
	values := map[string]string{}
	for _, f := range m.Fields() {
		v := strings.TrimSpace(get(f.Name))
		if len(f.Options) > 0 {
			if v == "" {
				v = f.Options[0]
			}
			ok := false
			for _, o := range f.Options {
				ok = ok || o == v
			}
			if !ok {
				return nil, &failure{Status: http.StatusBadRequest, Field: f.Name, Msg: fmt.Sprintf("%s must be one of: %s.", label(f), strings.Join(f.Options, ", "))}
			}
		}
		if v == "" && !f.Optional {
			return nil, &failure{Status: http.StatusBadRequest, Field: f.Name, Msg: fmt.Sprintf("%s (%s) is required.", label(f), f.Name)}
		}
		if v != "" {
			values[f.Name] = v
		}
	}
	return values, nil
}

func label(f provider.Field) string {
	if f.Label != "" {
		return f.Label
	}
	return f.Name
}

// secretsOf lists the secret values among a form method's values.
func secretsOf(m provider.FormMethod, values map[string]string) redactor {
	var r redactor
	for _, f := range m.Fields() {
		if f.Secret {
			r.add(values[f.Name])
		}
	}
	return r
}

// verify runs the vendor check of a form method.
func (s *Server) verify(ctx context.Context, p provider.Provider, m provider.FormMethod, values map[string]string) (*provider.Credential, error) {
	red := secretsOf(m, values)
	cred, err := s.guard(p, red, func() (*provider.Credential, error) {
		return m.Verify(ctx, s.client(p.Vendor()), values)
	})
	if err != nil {
		return nil, s.vendorFailure(p, err, red)
	}
	return cred, nil
}

// vendorFailure turns a Verify/Finish error into what a person sees.
func (s *Server) vendorFailure(p provider.Provider, err error, red redactor) *failure {
	var ie *provider.InputError
	if errors.As(err, &ie) {
		return &failure{Status: http.StatusBadRequest, Field: ie.Field, Msg: red.apply(ie.Message)}
	}
	msg := red.apply(err.Error())
	s.log.Warn("vendor check failed", "vendor", p.Vendor(), "err", msg)
	return fail(http.StatusBadGateway, "Could not check the credential with %s: %s. Nothing was stored; try again later.", p.Title(), msg)
}

// saved is the outcome of save: the stored connection and what happened
// ("connected", "updated" or "reconnected").
type saved struct {
	Conn store.Connection
	Kind string
}

// save stores a verified credential as t says, consumes t's invite, and
// tells OnChange. An existing connection is changed in one store
// transaction on the row as it is then (UpdateLocked), never written back
// from the copy listed here: a connection deleted meanwhile stays deleted.
func (s *Server) save(ctx context.Context, p provider.Provider, method string, cred *provider.Credential, t target) (saved, error) {
	var inv store.Invite
	consumed := false
	for try := 0; ; try++ {
		existing, kind, conns, err := s.decide(ctx, p, cred, t)
		if err != nil {
			return saved{}, err
		}
		now := s.now()
		apply := func(c *store.Connection) {
			c.Account = cred.Account
			c.AccountID = cred.AccountID
			c.AuthMethod = cred.AuthMethod
			if c.AuthMethod == "" {
				c.AuthMethod = method
			}
			c.Settings = cred.Settings
			c.Secret = cred.Secret
			c.Scopes = cred.Scopes
			c.MissingScopes = cred.MissingScopes
			c.Expiry = cred.Expiry
			c.Status = store.Status{State: store.StateActive, LastSuccess: c.LastSuccess, Updated: now}
		}
		if t.Invite != "" && !consumed {
			if inv, err = s.usableInvite(ctx, t.Invite); err != nil {
				return saved{}, err
			}
			// The invite is consumed here, after the vendor accepted the
			// credential and the target is known to be writable, so a
			// mistyped key does not burn the link.
			first, err := s.o.Store.UseOnce(ctx, "invite:"+inv.ID, inv.Expires)
			if err != nil {
				return saved{}, err
			}
			if !first {
				return saved{}, fail(http.StatusGone, "This invite was already used. Invite links work once; ask the administrator for a new one.")
			}
			consumed = true
		}
		var c store.Connection
		if existing == nil {
			c = store.Connection{ID: s.unusedID(conns), Vendor: p.Vendor(), Name: t.Name, Created: now}
			apply(&c)
			err = s.o.Store.Put(ctx, c)
		} else {
			err = s.o.Store.UpdateLocked(ctx, existing.ID, func(cur store.Connection) (*store.Connection, error) {
				if cur.Vendor != p.Vendor() || (kind == "updated" && cur.AccountID != cred.AccountID) {
					return nil, errChanged // changed since listed: decide again
				}
				apply(&cur)
				c = cur
				return &cur, nil
			})
			switch {
			case (errors.Is(err, store.ErrNotFound) || errors.Is(err, errChanged)) && kind == "reconnected":
				return saved{}, fail(http.StatusNotFound, "The connection being reconnected no longer exists (it was disconnected meanwhile). Nothing was stored; connect it as a new connection instead.")
			case (errors.Is(err, store.ErrNotFound) || errors.Is(err, errChanged)) && try < 2:
				continue // the matching connection went away: decide again
			}
		}
		// A concurrent connect of the same account (or name) won the
		// store's uniqueness check: decide again against what it stored,
		// so the account is updated rather than connected twice.
		if (errors.Is(err, store.ErrAccountTaken) || errors.Is(err, store.ErrNameTaken)) && try < 2 {
			continue
		}
		switch {
		case errors.Is(err, store.ErrNameTaken):
			return saved{}, nameTaken(c.Name)
		case errors.Is(err, store.ErrAccountTaken):
			return saved{}, fail(http.StatusConflict, "This %s account (%s) was connected by another request at the same moment. Nothing was stored; reload the connections list.", p.Title(), cred.Account)
		case err != nil:
			return saved{}, err
		}
		if t.Invite != "" {
			inv.Used = now
			inv.ConnectionID = c.ID
			if err := s.o.Store.PutInvite(ctx, inv); err != nil {
				// UseOnce already makes the link unusable; only the list is stale.
				s.log.Warn("marking invite used", "invite", inv.ID, "err", err)
			}
		}
		s.changed(c.ID)
		s.log.Info("connection "+kind, "vendor", c.Vendor, "name", c.Name, "id", c.ID, "auth_method", c.AuthMethod, "account", c.Account, "invite", t.Invite)
		return saved{Conn: c, Kind: kind}, nil
	}
}

// errChanged: the connection save chose was changed by another request
// before it could be written.
var errChanged = errors.New("the connection changed meanwhile")

// decide lists the store and says what save writes: an existing connection
// (reconnected, or the same vendor account connected again: updated) or a
// new one (connected), refusing names and accounts already taken.
func (s *Server) decide(ctx context.Context, p provider.Provider, cred *provider.Credential, t target) (*store.Connection, string, []store.Connection, error) {
	conns, err := s.o.Store.List(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	var existing *store.Connection
	kind := "connected"
	sameAccount := func(c *store.Connection) bool {
		return cred.AccountID != "" && c.Vendor == p.Vendor() && c.AccountID == cred.AccountID
	}
	if t.Reconnect != "" {
		kind = "reconnected"
		for i := range conns {
			if conns[i].ID == t.Reconnect {
				existing = &conns[i]
			}
		}
		if existing == nil {
			return nil, "", nil, fail(http.StatusNotFound, "The connection being reconnected no longer exists (it was disconnected meanwhile). Nothing was stored; connect it as a new connection instead.")
		}
		if existing.Vendor != p.Vendor() {
			return nil, "", nil, fail(http.StatusBadRequest, "Connection “%s” is a %s connection, not %s.", existing.Name, existing.Vendor, p.Title())
		}
		for i := range conns {
			if conns[i].ID != t.Reconnect && sameAccount(&conns[i]) {
				return nil, "", nil, fail(http.StatusConflict, "This %s account (%s) is already connected as “%s”. Nothing was stored; reconnect or disconnect that connection instead.", p.Title(), cred.Account, conns[i].Name)
			}
		}
		return existing, kind, conns, nil
	}
	for i := range conns {
		if sameAccount(&conns[i]) {
			return &conns[i], "updated", conns, nil
		}
	}
	// Strict now that dedupe is decided, so a doomed Put never consumes
	// an invite.
	for _, o := range conns {
		if o.Name == t.Name {
			return nil, "", nil, nameTaken(t.Name)
		}
	}
	return nil, kind, conns, nil
}

func (s *Server) unusedID(conns []store.Connection) string {
	for {
		id := newID()
		clash := false
		for _, c := range conns {
			clash = clash || c.ID == id
		}
		if !clash {
			return id
		}
	}
}

// guard runs a provider call; a panic or a missing credential becomes an
// error, so a provider bug shows as a page, not a dropped connection.
func (s *Server) guard(p provider.Provider, red redactor, call func() (*provider.Credential, error)) (cred *provider.Credential, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("provider panicked", "vendor", p.Vendor(), "panic", red.apply(fmt.Sprint(v)))
			cred, err = nil, fmt.Errorf("the %s provider failed unexpectedly (see the exporter log)", p.Vendor())
		}
	}()
	cred, err = call()
	if err == nil && cred == nil {
		err = fmt.Errorf("the %s provider returned no credential", p.Vendor())
	}
	return cred, err
}
