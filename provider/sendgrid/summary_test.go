package sendgrid

import (
	"testing"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/provider/providertest"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// The values are those of testdata/acme.prom.
func TestSummaryAcme(t *testing.T) {
	_, p := newSim(t)
	m, _, err := collect(t, p, vendorsim.SendGridKeyAcme)
	if err != nil {
		t.Fatal(err)
	}
	got := providertest.Items(p.Summary(provider.Connection{}, provider.SamplesOf(m)))
	want := `Emails | Delivered today | 2103 emails |  | 0 | 
Emails | Delivered this month | 30508 emails |  | 0 | 
Emails | Bounces today | 21 emails |  | 0 | 
Emails | Bounces this month | 303 emails |  | 0 | 
Credits this cycle | Credits left | 18755 credits |  | 0 | monthly cycle, resets 2026-04-01
Credits this cycle | Credits used | 31245 credits |  | 50000 | of the plan's credits this cycle
Account | Reputation | 99.5 % |  | 100 | 
Account | Seats | 7  |  | 0 | admin 2, owner 1, teammate 4
Account | Subusers | 5  |  | 0 | 2 disabled
Account | Invitations pending | 2  |  | 0 | 
`
	if got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
}

// The limited key reads stats and account only: the rest is left out, not 0.
func TestSummaryLimitedKey(t *testing.T) {
	_, p := newSim(t)
	m, _, _ := collect(t, p, vendorsim.SendGridKeyBeta)
	items := p.Summary(provider.Connection{}, provider.SamplesOf(m))
	if len(items) == 0 {
		t.Fatal("nothing shown")
	}
	for _, it := range items {
		if it.Group == "Credits this cycle" || it.Label == "Seats" {
			t.Errorf("shown without its data: %+v", it)
		}
	}
}
