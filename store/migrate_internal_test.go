package store

import (
	"reflect"
	"testing"
	"time"
)

// TestMigrateComparesEveryField fails when a field is added to Connection,
// Status or Invite, so that connDiff and sameInvite are updated with it.
func TestMigrateComparesEveryField(t *testing.T) {
	for _, c := range []struct {
		typ  reflect.Type
		want int
	}{
		{reflect.TypeFor[Connection](), 15},
		{reflect.TypeFor[Status](), 4},
		{reflect.TypeFor[Invite](), 8},
	} {
		if n := c.typ.NumField(); n != c.want {
			t.Errorf("%s has %d fields, migrate.go compares %d: add the new ones to connDiff / sameInvite", c.typ.Name(), n, c.want)
		}
	}

	// Each field, changed alone, is noticed.
	budget := 500.0
	base := Connection{
		Budget: &budget,
		ID:     "c", Vendor: "v", Name: "n", Account: "a", AccountID: "ai", AuthMethod: "m",
		Settings: map[string]string{"s": "1"}, Secret: map[string]string{"k": "1"},
		Scopes: []string{"x"}, MissingScopes: []string{"y"},
		Created: time.Unix(1, 0), Expiry: time.Unix(2, 0),
		Status: Status{State: StateActive, LastSuccess: time.Unix(3, 0), LastError: "e", Updated: time.Unix(4, 0)},
	}
	if d := connDiff(base, base.Clone()); d != "" {
		t.Errorf("connDiff of a clone = %q", d)
	}
	// Empty and nil, and the same instant in another zone, are the same.
	a, b := base.Clone(), base.Clone()
	a.Settings, b.Settings = nil, map[string]string{}
	b.Created = b.Created.In(time.FixedZone("X", 3600))
	if d := connDiff(a, b); d != "" {
		t.Errorf("connDiff(nil vs empty map, same instant) = %q", d)
	}
	changes := map[string]func(*Connection){
		"id": func(c *Connection) { c.ID = "z" }, "vendor": func(c *Connection) { c.Vendor = "z" },
		"name": func(c *Connection) { c.Name = "z" }, "account": func(c *Connection) { c.Account = "z" },
		"account_id": func(c *Connection) { c.AccountID = "z" }, "auth_method": func(c *Connection) { c.AuthMethod = "z" },
		"settings": func(c *Connection) { c.Settings["s"] = "2" }, "secret": func(c *Connection) { c.Secret["k"] = "2" },
		"scopes": func(c *Connection) { c.Scopes = nil }, "missing_scopes": func(c *Connection) { c.MissingScopes[0] = "z" },
		"created": func(c *Connection) { c.Created = c.Created.Add(1) }, "expiry": func(c *Connection) { c.Expiry = time.Time{} },
		"state": func(c *Connection) { c.State = StateError }, "last_success": func(c *Connection) { c.LastSuccess = time.Time{} },
		"last_error": func(c *Connection) { c.LastError = "" }, "damaged": func(c *Connection) { c.Damaged = "z" }, "updated": func(c *Connection) { c.Updated = c.Updated.Add(time.Second) },
		"budget_monthly": func(c *Connection) { *c.Budget = 0 },
	}
	for field, change := range changes {
		c := base.Clone()
		change(&c)
		if d := connDiff(base, c); d != field {
			t.Errorf("changing %s: connDiff = %q", field, d)
		}
	}

	inv := Invite{ID: "i", Vendor: "v", Name: "n", Created: time.Unix(1, 0), Expires: time.Unix(2, 0), Used: time.Unix(3, 0), Revoked: true, ConnectionID: "c"}
	if !sameInvite(inv, inv) {
		t.Error("sameInvite(x, x) = false")
	}
	for _, change := range []func(*Invite){
		func(i *Invite) { i.ID = "z" }, func(i *Invite) { i.Vendor = "z" }, func(i *Invite) { i.Name = "z" },
		func(i *Invite) { i.Created = time.Time{} }, func(i *Invite) { i.Expires = time.Time{} },
		func(i *Invite) { i.Used = time.Time{} }, func(i *Invite) { i.Revoked = false }, func(i *Invite) { i.ConnectionID = "" },
	} {
		other := inv
		change(&other)
		if sameInvite(inv, other) {
			t.Errorf("sameInvite missed a change: %+v", other)
		}
	}
}
