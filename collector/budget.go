package collector

import (
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

var mBudget = def("saas_budget_monthly", "gauge",
	"Monthly budget of the connection, in the unit its vendor bills it in (set with PUT /api/v1/connections/{id}/budget); absent without a budget.")

// writeBudget adds the connection's budget, read from the store with the
// connection itself, so it shows on every replica and whatever the vendor
// answers.
func (e *Engine) writeBudget(x *exposition, c store.Connection) {
	if c.Budget == nil {
		return
	}
	b, ok := e.providers[c.Vendor].(provider.Budgeted)
	if !ok {
		return // no unit to state it in; the API refuses to set one
	}
	x.sample(mBudget, *c.Budget, "connection", c.Name, "unit", b.BudgetUnit(), "vendor", c.Vendor)
}

// Relist makes the next scrape read the connection list afresh (a
// setting such as the budget changed) without calling the vendor again.
func (e *Engine) Relist() {
	e.mu.Lock()
	e.listDirty = true
	e.mu.Unlock()
}

// MonthToDate tells what this replica's last collection of connection id
// reported as its month-to-date usage: known is false before a collection
// with usage, reported false if that collection had no such figure.
func (e *Engine) MonthToDate(id string) (v float64, reported, known bool) {
	ent := e.known(id)
	if ent == nil {
		return 0, false, false
	}
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if ent.collectedAt.IsZero() {
		return 0, false, false
	}
	return ent.monthToDate, ent.hasMonthToDate, true
}
