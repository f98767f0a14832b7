package provider

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Budgeted is implemented by a provider whose connections are billed in
// one unit a monthly budget can be set in. The generic code learns the
// unit from here and the month-to-date figure from Scrape.MonthToDate;
// it never knows which vendor metric either is.
type Budgeted interface {
	// BudgetUnit is the unit label of saas_budget_monthly and
	// saas_budget_usage_month_to_date for every connection of the
	// vendor, e.g. "usd". Lower case, fixed.
	BudgetUnit() string
	// BudgetUnavailable says, for a person, why connection c cannot
	// report its month-to-date usage (a scope the credential lacks) and
	// what to do; "" if it can.
	BudgetUnavailable(c Connection) string
}

var descMonthToDate = NewDesc("budget_usage_month_to_date",
	"Usage of the connection so far in the current month (the vendor's billing period), in the unit of its budget; compare with saas_budget_monthly.",
	"unit", "vendor")

// MonthToDate reports the connection's usage so far this month in unit
// (the provider's BudgetUnit). Call it where the figure is computed: it
// is a metric of the calling section, so it keeps its last good value
// when the section fails, like the section's other series.
func (s *Scrape) MonthToDate(unit string, v float64) {
	s.Gauge(descMonthToDate, v, unit, s.Conn.Vendor)
}

// MonthToDateOf finds the month-to-date figure among a collection's
// metrics (Scrape.Result), for the engine to tell the API.
func MonthToDateOf(ms []prometheus.Metric) (float64, bool) {
	for _, m := range ms {
		if m.Desc() != descMonthToDate {
			continue
		}
		var pb dto.Metric
		if m.Write(&pb) == nil {
			return pb.GetGauge().GetValue(), true
		}
	}
	return 0, false
}
