package sendgrid

import (
	"strings"
	"testing"

	"github.com/saas-exporter/saas_exporter/provider"
)

func TestBudgetUnavailableWithoutStatsRead(t *testing.T) {
	var p provider.Budgeted = &Provider{}
	if u := p.BudgetUnit(); u != "emails" {
		t.Errorf("unit %q, want emails", u)
	}
	if why := p.BudgetUnavailable(provider.Connection{MissingScopes: []string{"user.credits.read"}}); why != "" {
		t.Errorf("a key with stats.read cannot compare usage: %q", why)
	}
	why := p.BudgetUnavailable(provider.Connection{MissingScopes: []string{"stats.read", "teammates.read"}})
	if !strings.Contains(why, "stats.read") || !strings.Contains(why, "reconnect") {
		t.Errorf("without stats.read: %q, want the scope named and what to do", why)
	}
}
