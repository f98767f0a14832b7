package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/saas-exporter/saas_exporter/auth/session"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

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

func nameTaken(name string) *Failure {
	f := Fail(http.StatusConflict, "The name “%s” is already used by another connection; choose another name.", name)
	f.Field = "name"
	return f
}

// ReconnectTarget reads connection id for a reconnect through p. A damaged
// record counts (reconnecting is what replaces it, which Save does); a
// record of another vendor is refused with a Failure, unless not even its
// vendor could be read. Store errors, ErrNotFound among them, come back
// as they are.
func (s *Service) ReconnectTarget(ctx context.Context, p provider.Provider, id string) (store.Connection, error) {
	c, err := s.c.Store.Get(ctx, id)
	if err != nil && !errors.Is(err, store.ErrDamaged) {
		return c, err
	}
	if c.Vendor != p.Vendor() && c.Vendor != "" {
		return c, Fail(http.StatusBadRequest, "Connection “%s” is a %s connection, not %s.", c.Name, c.Vendor, p.Title())
	}
	return c, nil
}

// CheckTarget checks what can be checked before the vendor is contacted.
func (s *Service) CheckTarget(ctx context.Context, p provider.Provider, t Target) error {
	if t.Reconnect != "" {
		_, err := s.ReconnectTarget(ctx, p, t.Reconnect)
		if errors.Is(err, store.ErrNotFound) {
			return Fail(http.StatusNotFound, "There is no connection with id %s (it may have been disconnected). Connect it as a new connection instead.", t.Reconnect)
		}
		return err
	}
	if !ValidName(t.Name) {
		f := Fail(http.StatusBadRequest, "The connection name must be %s.", NameRule)
		if t.Name == "" {
			f.Msg = "A connection name is required (" + NameRule + "), e.g. “prod”."
		}
		f.Field = "name"
		return f
	}
	conns, err := s.c.Store.Matching(ctx, p.Vendor(), "", t.Name)
	if err != nil {
		return err
	}
	if nameConflict(conns, p.Vendor(), t.Name) != nil {
		return nameTaken(t.Name)
	}
	return nil
}

// FormValues collects and checks the values of m's fields; get returns a
// submitted value and whether it was present.
func FormValues(m provider.FormMethod, get func(string) string) (map[string]string, error) {
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
				return nil, &Failure{Status: http.StatusBadRequest, Field: f.Name, Msg: fmt.Sprintf("%s must be one of: %s.", label(f), strings.Join(f.Options, ", "))}
			}
		}
		if v == "" && !f.Optional {
			return nil, &Failure{Status: http.StatusBadRequest, Field: f.Name, Msg: fmt.Sprintf("%s (%s) is required.", label(f), f.Name)}
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
func (s *Service) verify(ctx context.Context, p provider.Provider, m provider.FormMethod, values map[string]string) (*provider.Credential, error) {
	red := secretsOf(m, values)
	cred, err := s.guard(p, red, func() (*provider.Credential, error) {
		return m.Verify(ctx, s.c.Client(p.Vendor()), values)
	})
	if err != nil {
		return nil, s.vendorFailure(p, err, red)
	}
	return cred, nil
}

// vendorFailure turns a Verify/Finish error into what a person sees.
func (s *Service) vendorFailure(p provider.Provider, err error, red redactor) *Failure {
	var ie *provider.InputError
	if errors.As(err, &ie) {
		return &Failure{Status: http.StatusBadRequest, Field: ie.Field, Msg: red.apply(ie.Message)}
	}
	msg := red.apply(err.Error())
	s.c.Log.Warn("vendor check failed", "vendor", p.Vendor(), "err", msg)
	return Fail(http.StatusBadGateway, "Could not check the credential with %s: %s. Nothing was stored; try again later.", p.Title(), msg)
}

// Saved is the outcome of Save: the stored connection and what happened
// ("connected", "updated" or "reconnected").
type Saved struct {
	Conn store.Connection
	Kind string
}

// Save stores a verified credential as t says, consumes t's invite, and
// tells OnChange. An existing connection is changed in one store
// transaction on the row as it is then (UpdateLocked), never written back
// from the copy listed here: a connection deleted meanwhile stays deleted.
func (s *Service) Save(ctx context.Context, p provider.Provider, method string, cred *provider.Credential, t Target) (Saved, error) {
	var inv store.Invite
	consumed := false
	for try := 0; ; try++ {
		existing, kind, err := s.decide(ctx, p, cred, t)
		if err != nil {
			return Saved{}, err
		}
		now := s.c.Now()
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
			if inv, err = s.UsableInvite(ctx, t.Invite); err != nil {
				return Saved{}, err
			}
			// The invite is consumed here, after the vendor accepted the
			// credential and the target is known to be writable, so a
			// mistyped key does not burn the link.
			first, err := s.c.Store.UseOnce(ctx, "invite:"+inv.ID, inv.Expires)
			if err != nil {
				return Saved{}, err
			}
			if !first {
				return Saved{}, Fail(http.StatusGone, "This invite was already used. Invite links work once; ask the administrator for a new one.")
			}
			consumed = true
		}
		var c store.Connection
		switch {
		case existing == nil:
			var id string
			if id, err = s.unusedID(ctx); err != nil {
				return Saved{}, err
			}
			c = store.Connection{ID: id, Vendor: p.Vendor(), Name: t.Name, Created: now}
			apply(&c)
			err = s.c.Store.Put(ctx, c)
		case existing.Damaged != "":
			// A damaged record cannot be read under the lock: the new
			// credential replaces it, keeping its id, name (its id if none
			// could be read) and created time.
			c = store.Connection{ID: existing.ID, Vendor: p.Vendor(), Name: existing.Name, Created: existing.Created}
			if c.Created.IsZero() {
				c.Created = now
			}
			apply(&c)
			err = s.c.Store.Put(ctx, c)
		default:
			err = s.c.Store.UpdateLocked(ctx, existing.ID, func(cur store.Connection) (*store.Connection, error) {
				if cur.Vendor != p.Vendor() || (kind == "updated" && cur.AccountID != cred.AccountID) {
					return nil, errChanged // changed since listed: decide again
				}
				apply(&cur)
				c = cur
				return &cur, nil
			})
			switch {
			case (errors.Is(err, store.ErrNotFound) || errors.Is(err, errChanged)) && kind == "reconnected":
				return Saved{}, Fail(http.StatusNotFound, "The connection being reconnected no longer exists (it was disconnected meanwhile). Nothing was stored; connect it as a new connection instead.")
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
			return Saved{}, nameTaken(c.Name)
		case errors.Is(err, store.ErrAccountTaken):
			return Saved{}, Fail(http.StatusConflict, "This %s account (%s) was connected by another request at the same moment. Nothing was stored; reload the connections list.", p.Title(), cred.Account)
		case err != nil:
			return Saved{}, err
		}
		if t.Invite != "" {
			inv.Used = now
			inv.ConnectionID = c.ID
			if err := s.c.Store.PutInvite(ctx, inv); err != nil {
				// UseOnce already makes the link unusable; only the list is stale.
				s.c.Log.Warn("marking invite used", "invite", inv.ID, "err", err)
			}
		}
		s.changed(c.ID)
		s.c.Log.Info("connection "+kind, "vendor", c.Vendor, "name", c.Name, "id", c.ID, "auth_method", c.AuthMethod, "account", c.Account, "invite", t.Invite)
		return Saved{Conn: c, Kind: kind}, nil
	}
}

// errChanged: the connection Save chose was changed by another request
// before it could be written.
var errChanged = errors.New("the connection changed meanwhile")

// decide reads the connections the credential and target could collide
// with (Matching: the store's indexes, not a list of every connection) and
// says what Save writes: an existing connection (reconnected, or the same
// vendor account connected again: updated) or a new one (connected),
// refusing names and accounts already taken.
func (s *Service) decide(ctx context.Context, p provider.Provider, cred *provider.Credential, t Target) (*store.Connection, string, error) {
	sameAccount := func(c *store.Connection) bool {
		return cred.AccountID != "" && c.Vendor == p.Vendor() && c.AccountID == cred.AccountID
	}
	if t.Reconnect != "" {
		existing, err := s.ReconnectTarget(ctx, p, t.Reconnect)
		if errors.Is(err, store.ErrNotFound) {
			return nil, "", Fail(http.StatusNotFound, "The connection being reconnected no longer exists (it was disconnected meanwhile). Nothing was stored; connect it as a new connection instead.")
		}
		if err != nil {
			return nil, "", err
		}
		others, err := s.c.Store.Matching(ctx, p.Vendor(), cred.AccountID, "")
		if err != nil {
			return nil, "", err
		}
		for i := range others {
			if others[i].ID != t.Reconnect && sameAccount(&others[i]) {
				return nil, "", Fail(http.StatusConflict, "This %s account (%s) is already connected as “%s”. Nothing was stored; reconnect or disconnect that connection instead.", p.Title(), cred.Account, others[i].Name)
			}
		}
		return &existing, "reconnected", nil
	}
	conns, err := s.c.Store.Matching(ctx, p.Vendor(), cred.AccountID, t.Name)
	if err != nil {
		return nil, "", err
	}
	for i := range conns {
		if sameAccount(&conns[i]) {
			return &conns[i], "updated", nil
		}
	}
	// Strict now that dedupe is decided, so a doomed Put never consumes
	// an invite.
	for _, o := range conns {
		if o.Name == t.Name {
			return nil, "", nameTaken(t.Name)
		}
	}
	return nil, "connected", nil
}

// unusedID returns a new connection id no stored connection has.
func (s *Service) unusedID(ctx context.Context) (string, error) {
	for {
		id := session.NewID()
		_, err := s.c.Store.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return id, nil
		}
		if err != nil {
			return "", err
		}
	}
}

// guard runs a provider call; a panic or a missing credential becomes an
// error, so a provider bug shows as a page, not a dropped connection.
func (s *Service) guard(p provider.Provider, red redactor, call func() (*provider.Credential, error)) (cred *provider.Credential, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.c.Log.Error("provider panicked", "vendor", p.Vendor(), "panic", red.apply(fmt.Sprint(v)))
			cred, err = nil, fmt.Errorf("the %s provider failed unexpectedly (see the exporter log)", p.Vendor())
		}
	}()
	cred, err = call()
	if err == nil && cred == nil {
		err = fmt.Errorf("the %s provider returned no credential", p.Vendor())
	}
	return cred, err
}

// ConnectForm is the whole form flow: check, verify with the vendor, store.
func (s *Service) ConnectForm(r *http.Request, p provider.Provider, m provider.FormMethod, t Target, get func(string) string) (Saved, error) {
	ctx, cancel := ContextOf(r)
	defer cancel()
	values, err := FormValues(m, get)
	if err != nil {
		return Saved{}, err
	}
	if err := s.CheckTarget(ctx, p, t); err != nil {
		return Saved{}, err
	}
	cred, err := s.verify(ctx, p, m, values)
	if err != nil {
		return Saved{}, err
	}
	return s.Save(ctx, p, m.Name(), cred, t)
}
