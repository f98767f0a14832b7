package twilio

import (
	"cmp"
	"slices"

	"github.com/saas-exporter/saas_exporter/provider"
)

// breakdown are the usage categories that do not overlap (each a separate
// product holding its parts): the same set the Twilio dashboard uses.
var breakdown = []string{"calls", "sms", "mms", "phonenumbers", "recordings", "transcriptions"}

// topCategories is how many categories the connection page lists.
const topCategories = 5

const (
	mPrice   = "saas_twilio_usage_price"
	mBalance = "saas_twilio_balance"
)

// Summary shows the spend today, this month and last month, this month's
// top categories (of the non-overlapping set, plus the rest as "other")
// and the balance, with a meter of the balance against last month's spend.
func (p *Provider) Summary(_ provider.Connection, latest provider.Samples) []provider.SummaryItem {
	var out []provider.SummaryItem
	spend := map[string]provider.Sample{}
	for _, pr := range []struct{ period, label string }{{"today", "Today"}, {"this_month", "This month"}, {"last_month", "Last month"}} {
		for _, s := range latest.All(mPrice, "category", "totalprice", "period", pr.period) {
			spend[pr.period] = s
			out = append(out, provider.SummaryItem{Group: "Spend (subaccounts included)", Label: pr.label, Value: s.Value, Unit: s.Labels["currency"]})
			break
		}
	}
	if total, ok := spend["this_month"]; ok && total.Value > 0 {
		cur := total.Labels["currency"]
		var cats []provider.SummaryItem
		rest := total.Value
		for _, c := range breakdown {
			v, ok := latest.Get(mPrice, "category", c, "period", "this_month", "currency", cur)
			if !ok || v <= 0 {
				continue
			}
			rest -= v
			cats = append(cats, provider.SummaryItem{Label: c, Value: v, Unit: cur, Limit: total.Value})
		}
		// Rounding leaves cents; only a real remainder is shown.
		if rest > total.Value/1000 {
			cats = append(cats, provider.SummaryItem{Label: "other", Value: rest, Unit: cur, Limit: total.Value})
		}
		slices.SortStableFunc(cats, func(a, b provider.SummaryItem) int { return cmp.Compare(b.Value, a.Value) })
		for i := range cats[:min(len(cats), topCategories)] {
			cats[i].Group = "Top categories this month"
			cats[i].Note = "share of this month's spend"
			out = append(out, cats[i])
		}
	}
	for _, b := range latest.All(mBalance) {
		it := provider.SummaryItem{Group: "Balance", Label: "Balance", Value: b.Value, Unit: b.Labels["currency"]}
		if last, ok := spend["last_month"]; ok && last.Value > 0 && last.Labels["currency"] == b.Labels["currency"] && b.Value >= 0 {
			it.Limit = last.Value
			it.Note = "against last month's spend: a full bar covers a month like the last one"
		}
		out = append(out, it)
		break
	}
	return out
}
