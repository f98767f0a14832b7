package connect

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"

	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// Collections is what the connection page asks of the collection engine
// (collector.Engine). Its history is this process's: on several replicas,
// each shows the attempts it ran itself.
type Collections interface {
	CollectNow(ctx context.Context, id string) (collector.Attempt, error)
	Detail(id string) (collector.Detail, bool)
	Latest(id string) (collector.Latest, bool)
}

// Live returns c with this process's last attempt over its stored status
// when that attempt started after the status was written (the status is
// written behind a collection; another replica, a reconnect or a
// revocation callback may have written a newer one): state, last error and
// last success. At the same instant the store wins: it then holds that
// attempt's status, or a decision taken at that moment. A damaged record
// keeps what the store says of it.
func (s *Service) Live(c store.Connection) store.Connection {
	if s.c.Collections == nil || c.Damaged != "" {
		return c
	}
	l, ok := s.c.Collections.Latest(c.ID)
	if !ok {
		return c
	}
	if l.State != "" && l.At.After(c.Updated) {
		c.State, c.LastError = l.State, l.Error
	}
	if l.LastSuccess.After(c.LastSuccess) {
		c.LastSuccess = l.LastSuccess
	}
	return c
}

// Detail is this process's collection detail of connection id; canCollect
// says whether Collect now is available at all.
func (s *Service) Detail(id string) (d collector.Detail, canCollect bool) {
	if s.c.Collections == nil {
		return d, false
	}
	d, _ = s.c.Collections.Detail(id)
	return d, true
}

// ReconnectOf says how connection c is reconnected: a link to its form
// method, or the redirect method a button starts. Every connection is
// offered it, whatever its state: a rotated key or a moved account is
// fixed in place, keeping the id and the series.
func (s *Service) ReconnectOf(c store.Connection) (link, method string, ok bool) {
	p := s.Provider(c.Vendor)
	if p == nil {
		return "", "", false
	}
	if fm := FormMethod(p, c.AuthMethod); fm != nil {
		return "/connect/" + c.Vendor + "?" + url.Values{"method": {fm.Name()}, "reconnect": {c.ID}}.Encode(), "", true
	}
	if rm := RedirectMethod(p, c.AuthMethod); rm != nil {
		return "", rm.Name(), true
	}
	return "", "", false
}

// SummaryOf asks c's provider what its latest values show.
func (s *Service) SummaryOf(c store.Connection, d collector.Detail) []provider.SummaryItem {
	sp, ok := s.Provider(c.Vendor).(provider.Summarizer)
	if !ok || len(d.Latest) == 0 {
		return nil
	}
	var items []provider.SummaryItem
	func() {
		// A provider's bug must not take the page down.
		defer func() {
			if r := recover(); r != nil {
				s.c.Log.Error("summary failed", "vendor", c.Vendor, "id", c.ID, "panic", r)
				items = nil
			}
		}()
		items = sp.Summary(collector.View(c), provider.SamplesOf(d.Latest))
	}()
	return items
}

// CollectNow runs Collect now and names its outcome: collected,
// rate_limited, needs_reconnect, not_collected or busy; "" when err says
// why nothing could be tried (no such connection, a store failure).
func (s *Service) CollectNow(ctx context.Context, id string) (string, error) {
	if s.c.Collections == nil {
		return "", Fail(http.StatusNotImplemented, "collecting on demand is not available in this exporter")
	}
	_, err := s.c.Collections.CollectNow(ctx, id)
	var nc *collector.NotCollectedError
	switch {
	case err == nil:
		return "collected", nil
	case errors.Is(err, store.ErrNotFound):
		return "", err
	case errors.As(err, &nc):
		switch nc.State {
		case store.StateRateLimited:
			return "rate_limited", err
		case store.StateRevoked, store.StateExpired:
			return "needs_reconnect", err
		}
		if nc.Reason != "" {
			return "not_collected", err
		}
		return "busy", err
	}
	return "", err
}

// Rename changes a connection's name (its connection label).
func (s *Service) Rename(ctx context.Context, id, name, user string) (store.Connection, error) {
	if !ValidName(name) {
		f := Fail(http.StatusBadRequest, "The connection name must be %s.", NameRule)
		if name == "" {
			f.Msg = "A new name is required (" + NameRule + ")."
		}
		f.Field = "name"
		return store.Connection{}, f
	}
	var out store.Connection
	old := ""
	err := s.c.Store.UpdateLocked(ctx, id, func(c store.Connection) (*store.Connection, error) {
		old = c.Name
		out = c
		if c.Name == name {
			return nil, nil
		}
		out.Name = name
		return &out, nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return out, err
	case errors.Is(err, store.ErrNameTaken):
		return out, nameTaken(name)
	case err != nil:
		return out, err
	}
	if old != name {
		s.changed(id)
		s.c.Log.Info("connection renamed", "vendor", out.Vendor, "id", id, "from", old, "to", name, "by", user)
	}
	return out, nil
}

// Disconnect deletes a connection and its credential.
func (s *Service) Disconnect(ctx context.Context, id, user string) (store.Connection, error) {
	c, err := s.c.Store.Get(ctx, id)
	if err != nil {
		return c, err
	}
	if err := s.c.Store.Delete(ctx, id); err != nil {
		return c, err
	}
	s.changed(id)
	s.c.Log.Info("connection disconnected", "vendor", c.Vendor, "name", c.Name, "id", c.ID, "by", user)
	return c, nil
}

// maxBudget bounds a budget: above it the number is a typo, not a plan.
const maxBudget = 1e12

// Budget is a connection's budget as the page and the API show it; nil
// for a vendor that bills in no single unit. Its JSON is the API's.
type Budget struct {
	Monthly *float64 `json:"monthly"`
	Unit    string   `json:"unit"`
	// Comparable is false when the connection cannot report its usage in
	// Unit (Warning says why): a budget is kept but nothing is compared.
	Comparable bool   `json:"comparable"`
	Warning    string `json:"warning,omitempty"`
	// MonthToDate is the usage so far this month in Unit, as this
	// replica last collected it; absent before that.
	MonthToDate *float64 `json:"month_to_date,omitempty"`
}

// BudgetView is what the page and the API show of c's budget.
func (s *Service) BudgetView(c store.Connection) *Budget {
	b, ok := s.Provider(c.Vendor).(provider.Budgeted)
	if !ok {
		return nil
	}
	v := &Budget{Monthly: c.Budget, Unit: b.BudgetUnit(), Comparable: true}
	if why := b.BudgetUnavailable(collector.View(c)); why != "" {
		v.Comparable = false
		v.Warning = "No usage can be compared with this budget: " + why
		return v
	}
	if s.c.MonthToDate != nil {
		mtd, reported, known := s.c.MonthToDate(c.ID)
		switch {
		case reported:
			v.MonthToDate = &mtd
		case known:
			// The provider could not say in advance (a currency only the
			// collection learns).
			v.Comparable = false
			v.Warning = "No usage can be compared with this budget: the last collection reported no usage this month in " + v.Unit + " (the vendor bills this account in another unit or currency, or its usage could not be read: see the last error)"
		}
	}
	return v
}

// CheckBudget refuses what cannot be a monthly budget; clear says how to
// remove one instead (ClearAPI, ClearForm).
func CheckBudget(v float64, clear string) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return Fail(http.StatusBadRequest, "The budget must be a number such as 500 or 1250.50.")
	case v < 0:
		return Fail(http.StatusBadRequest, "The budget must not be negative (got %s); %s to clear it.", FmtBudget(v), clear)
	case v > maxBudget:
		return Fail(http.StatusBadRequest, "The budget %s is over the limit of 1e12; check the number.", FmtBudget(v))
	}
	return nil
}

// How to clear a budget, in the API and in the page's form.
const (
	ClearAPI  = "send {\"monthly\": null}"
	ClearForm = "leave the field empty"
)

// FmtBudget shows a budget as typed: no exponent, no padding.
func FmtBudget(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// ClipInput bounds a typed value quoted back in a message.
func ClipInput(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// SetBudget sets (v != nil) or clears connection id's budget on the
// current record, under the store's lock, so a concurrent credential
// renewal is not undone.
func (s *Service) SetBudget(ctx context.Context, id string, v *float64, user string) (store.Connection, error) {
	var out store.Connection
	err := s.c.Store.UpdateLocked(ctx, id, func(c store.Connection) (*store.Connection, error) {
		if _, ok := s.Provider(c.Vendor).(provider.Budgeted); !ok {
			return nil, Fail(http.StatusBadRequest, "%s connections are billed in no single unit this exporter knows; a budget cannot be set.", s.Title(c.Vendor))
		}
		c.Budget = v
		out = c
		return &c, nil
	})
	if err != nil {
		return out, err
	}
	if s.c.OnEdit != nil {
		s.c.OnEdit(id)
	}
	if v == nil {
		s.c.Log.Info("budget cleared", "vendor", out.Vendor, "name", out.Name, "id", id, "by", user)
	} else {
		s.c.Log.Info("budget set", "vendor", out.Vendor, "name", out.Name, "id", id, "monthly", *v, "by", user)
	}
	return out, nil
}
