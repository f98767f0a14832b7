package twilio

import (
	"context"
	"strings"
	"testing"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/provider/providertest"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// The acme values are those of testdata/acme.prom; the non-overlapping
// categories add up to totalprice, so there is no "other".
func TestSummaryAcme(t *testing.T) {
	f := newFixture(t, vendorsim.Options{})
	f.authorize(t, vendorsim.TwilioAccountAcme)
	m, err := f.collect(t, context.Background(), vendorsim.TwilioAccountAcme)
	if err != nil {
		t.Fatal(err)
	}
	got := providertest.Items(f.p.Summary(provider.Connection{}, provider.SamplesOf(m)))
	want := `Spend (subaccounts included) | Today | 67.5853 USD |  | 0 | 
Spend (subaccounts included) | This month | 798.453 USD |  | 0 | 
Spend (subaccounts included) | Last month | 1870.57 USD |  | 0 | 
Top categories this month | calls | 445.824 USD |  | 798.453 | share of this month's spend
Top categories this month | sms | 338.703 USD |  | 798.453 | share of this month's spend
Top categories this month | phonenumbers | 8.05 USD |  | 798.453 | share of this month's spend
Top categories this month | recordings | 5.8764 USD |  | 798.453 | share of this month's spend
Balance | Balance | 1523.41 USD |  | 1870.57 | against last month's spend: a full bar covers a month like the last one
`
	if got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
}

// Nothing collected: nothing shown (no zeros), and a category outside the
// non-overlapping set counts as other.
func TestSummaryPartial(t *testing.T) {
	p := &Provider{}
	if items := p.Summary(provider.Connection{}, nil); len(items) != 0 {
		t.Errorf("empty: %+v", items)
	}
	ss := provider.Samples{
		{Name: mPrice, Labels: map[string]string{"category": "totalprice", "period": "this_month", "currency": "EUR"}, Value: 10},
		{Name: mPrice, Labels: map[string]string{"category": "sms", "period": "this_month", "currency": "EUR"}, Value: 4},
		{Name: mPrice, Labels: map[string]string{"category": "sms-outbound", "period": "this_month", "currency": "EUR"}, Value: 4},
		{Name: mBalance, Labels: map[string]string{"currency": "EUR"}, Value: 3},
	}
	got := providertest.Items(p.Summary(provider.Connection{}, ss))
	want := `Spend (subaccounts included) | This month | 10 EUR |  | 0 | 
Top categories this month | other | 6 EUR |  | 10 | share of this month's spend
Top categories this month | sms | 4 EUR |  | 10 | share of this month's spend
Balance | Balance | 3 EUR |  | 0 | 
`
	if got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
	if strings.Contains(got, "Last month") {
		t.Error("a missing period was shown")
	}
}
