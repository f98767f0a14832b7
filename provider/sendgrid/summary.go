package sendgrid

import (
	"strconv"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
)

// Summary shows this month's delivered emails and bounces, the credits of
// the current cycle (a meter of used against the plan), the sender
// reputation and the seats.
func (p *Provider) Summary(_ provider.Connection, latest provider.Samples) []provider.SummaryItem {
	var out []provider.SummaryItem
	for _, ev := range []struct{ event, label string }{{"delivered", "Delivered"}, {"bounces", "Bounces"}} {
		for _, pr := range []struct{ period, label string }{{"today", " today"}, {"this_month", " this month"}} {
			if v, ok := latest.Get("saas_sendgrid_emails", "event", ev.event, "period", pr.period); ok {
				out = append(out, provider.SummaryItem{Group: "Emails", Label: ev.label + pr.label, Value: v, Unit: "emails"})
			}
		}
	}
	remaining, okR := latest.Get("saas_sendgrid_credits_remaining")
	used, okU := latest.Get("saas_sendgrid_credits_used")
	limit, okL := latest.Get("saas_sendgrid_credits_limit")
	if okR {
		it := provider.SummaryItem{Group: "Credits this cycle", Label: "Credits left", Value: remaining, Unit: "credits"}
		for _, f := range latest.All("saas_sendgrid_credits_reset_frequency") {
			if f.Value == 1 {
				it.Note = f.Labels["frequency"] + " cycle"
			}
		}
		if at, ok := latest.Get("saas_sendgrid_credits_reset_timestamp_seconds"); ok && at > 0 {
			if it.Note != "" {
				it.Note += ", "
			}
			it.Note += "resets " + time.Unix(int64(at), 0).UTC().Format("2006-01-02")
		}
		out = append(out, it)
	}
	if okU {
		it := provider.SummaryItem{Group: "Credits this cycle", Label: "Credits used", Value: used, Unit: "credits"}
		if okL && limit > 0 {
			it.Limit = limit
			it.Note = "of the plan's credits this cycle"
		}
		out = append(out, it)
	}
	if v, ok := latest.Get("saas_sendgrid_credits_overage"); ok && v > 0 {
		out = append(out, provider.SummaryItem{Group: "Credits this cycle", Label: "Over the plan", Value: v, Unit: "emails"})
	}
	if v, ok := latest.Get("saas_sendgrid_reputation_ratio"); ok {
		out = append(out, provider.SummaryItem{Group: "Account", Label: "Reputation", Value: v * 100, Unit: "%", Limit: 100})
	}
	if n, parts, ok := latest.Parts("saas_sendgrid_teammates", "user_type"); ok {
		out = append(out, provider.SummaryItem{Group: "Account", Label: "Seats", Value: n, Note: parts})
	}
	if n, ok := latest.Sum("saas_sendgrid_subusers"); ok && n > 0 {
		it := provider.SummaryItem{Group: "Account", Label: "Subusers", Value: n}
		if d, _ := latest.Get("saas_sendgrid_subusers", "disabled", "true"); d > 0 {
			it.Note = strconv.FormatFloat(d, 'f', -1, 64) + " disabled"
		}
		out = append(out, it)
	}
	if v, ok := latest.Get("saas_sendgrid_teammates_pending"); ok && v > 0 {
		out = append(out, provider.SummaryItem{Group: "Account", Label: "Invitations pending", Value: v})
	}
	return out
}
