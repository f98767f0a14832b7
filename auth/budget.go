package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// maxBudget bounds a budget: above it the number is a typo, not a plan.
const maxBudget = 1e12

// apiBudget is a connection's budget as the API shows it; nil for a
// vendor that bills in no single unit.
type apiBudget struct {
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

// budgetView is what the page and the API show of c's budget.
func (s *Server) budgetView(c store.Connection) *apiBudget {
	b, ok := s.provider(c.Vendor).(provider.Budgeted)
	if !ok {
		return nil
	}
	v := &apiBudget{Monthly: c.Budget, Unit: b.BudgetUnit(), Comparable: true}
	if why := b.BudgetUnavailable(collector.View(c)); why != "" {
		v.Comparable = false
		v.Warning = "No usage can be compared with this budget: " + why
		return v
	}
	if s.o.MonthToDate != nil {
		mtd, reported, known := s.o.MonthToDate(c.ID)
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

// checkBudget refuses what cannot be a monthly budget; clear says how to
// remove one instead ("send null").
func checkBudget(v float64, clear string) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fail(http.StatusBadRequest, "The budget must be a number such as 500 or 1250.50.")
	case v < 0:
		return fail(http.StatusBadRequest, "The budget must not be negative (got %s); %s to clear it.", fmtBudget(v), clear)
	case v > maxBudget:
		return fail(http.StatusBadRequest, "The budget %s is over the limit of 1e12; check the number.", fmtBudget(v))
	}
	return nil
}

const (
	clearAPI  = "send {\"monthly\": null}"
	clearForm = "leave the field empty"
)

func fmtBudget(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// setBudget sets (v != nil) or clears connection id's budget on the
// current record, under the store's lock, so a concurrent credential
// renewal is not undone.
func (s *Server) setBudget(ctx context.Context, id string, v *float64, user string) (store.Connection, error) {
	var out store.Connection
	err := s.o.Store.UpdateLocked(ctx, id, func(c store.Connection) (*store.Connection, error) {
		if _, ok := s.provider(c.Vendor).(provider.Budgeted); !ok {
			return nil, fail(http.StatusBadRequest, "%s connections are billed in no single unit this exporter knows; a budget cannot be set.", s.title(c.Vendor))
		}
		c.Budget = v
		out = c
		return &c, nil
	})
	if err != nil {
		return out, err
	}
	if s.o.OnEdit != nil {
		s.o.OnEdit(id)
	}
	if v == nil {
		s.log.Info("budget cleared", "vendor", out.Vendor, "name", out.Name, "id", id, "by", user)
	} else {
		s.log.Info("budget set", "vendor", out.Vendor, "name", out.Name, "id", id, "monthly", *v, "by", user)
	}
	return out, nil
}

// apiSetBudget: PUT /api/v1/connections/{id}/budget {"monthly": 500 | null}.
func (s *Server) apiSetBudget(w http.ResponseWriter, r *http.Request, user string) {
	b, err := readBody(w, r) // 415 without a JSON Content-Type
	if err != nil {
		writeFailure(w, err)
		return
	}
	v, err := parseBudgetJSON(b)
	if err != nil {
		writeFailure(w, err)
		return
	}
	c, err := s.setBudget(r.Context(), r.PathValue("id"), v, user)
	if err != nil {
		writeConnFailure(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.toAPIConn(c))
}

// parseBudgetJSON reads {"monthly": number | null}; nil means clear.
func parseBudgetJSON(b []byte) (*float64, error) {
	var obj map[string]json.RawMessage
	if err := decodeStrict(b, &obj); err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		f := fail(http.StatusBadRequest, format, args...)
		f.Field = "monthly"
		return f
	}
	for k := range obj {
		if k != "monthly" {
			return nil, fail(http.StatusBadRequest, "unknown field %q; send {\"monthly\": 500}, or {\"monthly\": null} to clear the budget", k)
		}
	}
	raw, ok := obj["monthly"]
	if !ok {
		return nil, bad("field \"monthly\" is required: send {\"monthly\": 500}, or {\"monthly\": null} to clear the budget")
	}
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return nil, nil
	}
	var v float64
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return nil, bad("\"monthly\" must be a JSON number such as 500, or null to clear the budget (got %s)", clipJSON(raw))
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, bad("\"monthly\" %s is not a usable number; the budget must be between 0 and 1e12", clipJSON(raw))
	}
	if err := checkBudget(v, clearAPI); err != nil {
		f := asFailure(err)
		f.Field = "monthly"
		return nil, f
	}
	return &v, nil
}

func clipJSON(raw []byte) string {
	s := string(raw)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}

// budgetSubmit: the form on the connections page. An empty value or the
// Clear button clears the budget.
func (s *Server) budgetSubmit(w http.ResponseWriter, r *http.Request, a adminCtx) {
	var v *float64
	text := strings.TrimSpace(r.PostFormValue("monthly"))
	if r.PostFormValue("clear") == "" && text != "" {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			s.errorPage(w, http.StatusBadRequest, "Budget not changed", fmt.Sprintf("“%s” is not a number. Enter the monthly budget as a number such as 500 or 1250.50 (no currency sign or thousands separator), or leave it empty to clear it.", clipJSON([]byte(text))), "/", "Back to connections")
			return
		}
		if err := checkBudget(f, clearForm); err != nil {
			s.errorPage(w, http.StatusBadRequest, "Budget not changed", asFailure(err).Msg+" Nothing was changed.", "/", "Back to connections")
			return
		}
		v = &f
	}
	c, err := s.setBudget(r.Context(), r.PathValue("id"), v, a.User)
	if errors.Is(err, store.ErrNotFound) {
		s.errorPage(w, http.StatusNotFound, "No such connection", "This connection does not exist; it may have been disconnected.", "/", "Back to connections")
		return
	}
	if err != nil {
		f := asFailure(err)
		if f.Status == http.StatusBadRequest {
			s.errorPage(w, f.Status, "Budget not changed", f.Msg+" Nothing was changed.", "/", "Back to connections")
			return
		}
		s.storeErrorPage(w, err)
		return
	}
	msg := "budget_set"
	if v == nil {
		msg = "budget_cleared"
	}
	http.Redirect(w, r, "/?msg="+msg+"&name="+url.QueryEscape(c.Name), http.StatusSeeOther)
}
