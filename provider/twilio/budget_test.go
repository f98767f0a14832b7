package twilio

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// The budget is in USD: an account Twilio prices in another currency
// reports no month-to-date figure rather than a number in the wrong unit.
func TestBudgetMonthToDateOnlyInUSD(t *testing.T) {
	var _ provider.Budgeted = (*Provider)(nil)
	f := newFixture(t, vendorsim.Options{})
	f.authorize(t, vendorsim.TwilioAccountGamma)
	m, err := f.collect(t, context.Background(), vendorsim.TwilioAccountGamma)
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m, "saas_budget_usage_month_to_date"); n != 0 {
		t.Errorf("a EUR account exports %d month-to-date series in usd", n)
	}
	if n := testutil.CollectAndCount(m, "saas_twilio_usage_price"); n == 0 {
		t.Error("the EUR account's prices are missing: the test proves nothing")
	}
}
