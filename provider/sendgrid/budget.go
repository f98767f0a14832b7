package sendgrid

import (
	"slices"

	"github.com/saas-exporter/saas_exporter/provider"
)

// budgetUnit: a SendGrid budget is in emails, compared with this month's
// requests from the global stats (stats.read).
const budgetUnit = "emails"

func (p *Provider) BudgetUnit() string { return budgetUnit }

func (p *Provider) BudgetUnavailable(c provider.Connection) string {
	if slices.Contains(c.MissingScopes, "stats.read") {
		return "the credential lacks the stats.read scope, so this month's email requests cannot be read; reconnect with a key (or consent) that grants stats.read"
	}
	return ""
}
