package segment

import "github.com/saas-exporter/saas_exporter/provider"

// budgetUnit: a Segment budget is in MTUs, compared with the billable
// MTUs of the current usage period: identified users plus anonymous ids
// never identified (users identified later count once, as identified).
const budgetUnit = "mtu"

func (p *Provider) BudgetUnit() string                             { return budgetUnit }
func (p *Provider) BudgetUnavailable(c provider.Connection) string { return "" }
