package segment

import "github.com/saas-exporter/saas_exporter/provider"

// billable sums the billable MTU kinds of a period; ok is false unless both are there.
func billable(latest provider.Samples, period string) (float64, bool) {
	id, ok1 := latest.Get("saas_segment_mtu", "kind", "identified", "period", period)
	never, ok2 := latest.Get("saas_segment_mtu", "kind", "never_identified", "period", period)
	return id + never, ok1 && ok2
}

// Summary shows the period's billable MTUs (identified + never_identified;
// a meter against vendors.segment.mtu_limits for the workspace, where
// set) and API calls, the last period's, and the workspace's sources and
// seats.
func (p *Provider) Summary(c provider.Connection, latest provider.Samples) []provider.SummaryItem {
	var out []provider.SummaryItem
	for _, pr := range []struct{ period, group string }{{periodThis, "This period (so far)"}, {periodLast, "Last period"}} {
		if v, ok := billable(latest, pr.period); ok {
			it := provider.SummaryItem{Group: pr.group, Label: "Billable MTUs", Value: v, Unit: "MTUs", Note: "identified + never identified"}
			if lim := p.mtuLimits[c.Settings[settingWorkspaceSlug]]; lim > 0 {
				it.Limit = lim
				it.Note = "identified + never identified, of the plan's MTUs (vendors.segment.mtu_limits)"
			}
			out = append(out, it)
		}
		if v, ok := latest.Get("saas_segment_api_calls", "period", pr.period); ok {
			out = append(out, provider.SummaryItem{Group: pr.group, Label: "API calls", Value: v, Unit: "calls"})
		}
	}
	if v, ok := latest.Get("saas_segment_sources"); ok {
		out = append(out, provider.SummaryItem{Group: "Workspace", Label: "Sources", Value: v})
	}
	if v, ok := latest.Get("saas_segment_destinations"); ok {
		out = append(out, provider.SummaryItem{Group: "Workspace", Label: "Destinations", Value: v})
	}
	if n, parts, ok := latest.Parts("saas_segment_users", "role"); ok {
		out = append(out, provider.SummaryItem{Group: "Workspace", Label: "Seats", Value: n, Note: parts})
	}
	if v, ok := latest.Get("saas_segment_invites_pending"); ok && v > 0 {
		out = append(out, provider.SummaryItem{Group: "Workspace", Label: "Invitations pending", Value: v})
	}
	return out
}
