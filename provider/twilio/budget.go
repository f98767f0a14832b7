package twilio

import "github.com/saas-exporter/saas_exporter/provider"

// budgetUnit: a Twilio budget is in US dollars, compared with the
// this_month price of usage category totalprice (the account's total)
// when Twilio prices the account in USD.
const budgetUnit = "usd"

func (p *Provider) BudgetUnit() string                             { return budgetUnit }
func (p *Provider) BudgetUnavailable(c provider.Connection) string { return "" }
