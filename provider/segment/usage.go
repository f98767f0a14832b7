package segment

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
)

// How the usage figures are computed (README, "Segment usage"):
// Segment's /usage/…/daily lists answer one snapshot per day of a usage
// period, and each is cumulative ("daily cumulative MTU counts"): it
// counts every user or call since the period began. So the exporter takes
// the snapshot with the latest timestamp, never a sum.
//
// The period parameter is "the start of the usage month". The exporter
// sends the start of the workspace's current usage period: the 1st of the
// UTC month until it has seen the workspace's own period (a snapshot's
// periodStart/periodEnd); see resolvePeriod. An answer with no snapshot
// is an error, never a zero.

// Label values of period.
const (
	periodThis = "this_month"
	periodLast = "last_month"
)

// lastMonthEvery: a closed period's figures barely change, so the
// previous period is fetched at most this often.
const lastMonthEvery = 4 * time.Hour

// reprobeEvery: after a search found no usage period, the next search
// waits this long (each search costs up to probeDays calls).
const reprobeEvery = 6 * time.Hour

// probeDays: a usage period is a month, so its start is among the last
// 31 days.
const probeDays = 31

// maxLabelLen bounds a label value taken from vendor text (a source name).
const maxLabelLen = provider.MaxLabelLen

// usageSnapshot is one daily item of any of the four usage lists.
type usageSnapshot struct {
	SourceID            string          `json:"sourceId"`
	PeriodStart         *float64        `json:"periodStart"`
	PeriodEnd           *float64        `json:"periodEnd"`
	Identified          json.RawMessage `json:"identified"`
	Anonymous           json.RawMessage `json:"anonymous"`
	AnonymousIdentified json.RawMessage `json:"anonymousIdentified"`
	NeverIdentified     json.RawMessage `json:"neverIdentified"`
	APICalls            json.RawMessage `json:"apiCalls"`
	Timestamp           string          `json:"timestamp"`

	at time.Time
}

// usageList is one of the four usage endpoints.
type usageList struct{ path, key string }

var (
	workspaceMTU   = usageList{"/usage/mtu/daily", "dailyWorkspaceMTUUsage"}
	workspaceCalls = usageList{"/usage/api-calls/daily", "dailyWorkspaceAPICallsUsage"}
	sourceMTU      = usageList{"/usage/mtu/sources/daily", "dailyPerSourceMTUUsage"}
	sourceCalls    = usageList{"/usage/api-calls/sources/daily", "dailyPerSourceAPICallsUsage"}
)

// latest fetches every daily snapshot (all pages, or only the first of
// count items if count > 0) of the period starting on period and returns
// the latest one per source id ("" for workspace lists). None is not an
// error here; callers decide.
func (c *client) latest(ctx context.Context, l usageList, period time.Time, count int) (map[string]*usageSnapshot, error) {
	best := map[string]*usageSnapshot{}
	q := url.Values{"period": {period.Format(time.DateOnly)}}
	each := func(items json.RawMessage) error {
		var snaps []usageSnapshot
		if err := json.Unmarshal(items, &snaps); err != nil {
			return fmt.Errorf("data.%s does not parse: %v", l.key, err)
		}
		for i := range snaps {
			sn := &snaps[i]
			t, err := time.Parse(time.RFC3339, sn.Timestamp)
			if err != nil {
				return fmt.Errorf("data.%s: timestamp %s is not an ISO-8601 time", l.key, quote(sn.Timestamp))
			}
			sn.at = t
			if b := best[sn.SourceID]; b == nil || !t.Before(b.at) {
				best[sn.SourceID] = sn
			}
		}
		return nil
	}
	var err error
	if count > 0 {
		err = c.page(ctx, l.path, l.key, q, count, each)
	} else {
		err = c.pages(ctx, l.path, l.key, q, each)
	}
	return best, err
}

// span is a usage period as a snapshot states it.
func (sn *usageSnapshot) span() (start, end time.Time, ok bool) {
	if sn.PeriodStart == nil || sn.PeriodEnd == nil || *sn.PeriodStart <= 0 || *sn.PeriodEnd <= *sn.PeriodStart {
		return start, end, false
	}
	return unixTime(*sn.PeriodStart), unixTime(*sn.PeriodEnd), true
}

// knownPeriod is what the provider has learnt of a workspace's usage
// periods, by connection id.
type knownPeriod struct {
	start, end time.Time // the latest period seen; end may be a guess (start + 1 month)
	searched   time.Time // a search found nothing at this time
}

// learn records the period a snapshot states.
func (p *Provider) learn(connID string, sn *usageSnapshot) {
	start, end, ok := sn.span()
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := p.periods[connID]; k.start.After(start) {
		return // an older period (last month's section)
	}
	p.periods[connID] = knownPeriod{start: start, end: end}
}

// resolvePeriod returns the start of the workspace's current usage period.
// It sends no call when a period was seen before: the current one starts
// where that one ends. Otherwise it asks for the 1st of the UTC month;
// if that answers nothing (a billing cycle starting later in the month),
// it tries each day of the last month, latest first, one item each, and
// stops at the first answer. A search that finds nothing is repeated at
// most every reprobeEvery; the 1st is asked on every collection.
func (p *Provider) resolvePeriod(ctx context.Context, c *client, connID string, now time.Time) (time.Time, error) {
	now = now.UTC()
	p.mu.Lock()
	k, known := p.periods[connID]
	p.mu.Unlock()
	if known && !k.start.IsZero() {
		for !now.Before(k.end) {
			k.start, k.end = k.end, addMonth(k.end, 1)
		}
		return k.start, nil
	}
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	try := func(day time.Time) (time.Time, bool, error) {
		best, err := c.latest(ctx, workspaceMTU, day, 1)
		if err != nil {
			return time.Time{}, false, err
		}
		sn := best[""]
		if sn == nil {
			return time.Time{}, false, nil
		}
		p.learn(connID, sn)
		start, end, ok := sn.span()
		if !ok {
			return day, true, nil
		}
		if !now.Before(end) {
			return end, true, nil // that period has ended: the current one starts at its end
		}
		return start, true, nil
	}
	if start, ok, err := try(first); err != nil || ok {
		return start, err
	}
	if known && now.Sub(k.searched) < reprobeEvery {
		return time.Time{}, fmt.Errorf("segment GET %s: no usage snapshot for period=%s, and a search of the month before %s found no other period start; searching again after %s (an empty answer is not a zero: the last known values stay exported)",
			workspaceMTU.path, first.Format(time.DateOnly), k.searched.Format(time.DateOnly), k.searched.Add(reprobeEvery).Format(time.RFC3339))
	}
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	for i := range probeDays {
		day := today.AddDate(0, 0, -i)
		if day.Equal(first) {
			continue
		}
		if start, ok, err := try(day); err != nil || ok {
			return start, err
		}
	}
	p.mu.Lock()
	p.periods[connID] = knownPeriod{searched: now}
	p.mu.Unlock()
	return time.Time{}, fmt.Errorf("segment GET %s: no usage snapshot for period=%s (the 1st of the month) nor for any day of the last %d days: the workspace has no usage reported yet, or Segment changed how periods are named; the last known values stay exported",
		workspaceMTU.path, first.Format(time.DateOnly), probeDays)
}

// noSnapshot is the error of an empty usage answer: not a zero.
func noSnapshot(l usageList, period time.Time) error {
	return fmt.Errorf("segment GET %s: no usage snapshot for the period starting %s (period=%s); an empty answer is not a zero, so the last known values stay exported. If this lasts, check that the workspace's billing period starts on that day",
		l.path, period.Format(time.DateOnly), period.Format(time.DateOnly))
}

// mtuCounts parses the four kinds of a snapshot, in MTUKinds order.
func mtuCounts(l usageList, sn *usageSnapshot) ([]float64, error) {
	out := make([]float64, len(MTUKinds))
	for i, raw := range []json.RawMessage{sn.Identified, sn.Anonymous, sn.AnonymousIdentified, sn.NeverIdentified} {
		v, err := parseCount(raw)
		if err != nil {
			return nil, fmt.Errorf("segment GET %s: %s of %s %w", l.path, MTUKinds[i], sn.Timestamp, err)
		}
		out[i] = v
	}
	return out, nil
}

// collectWorkspaceUsage emits the workspace's MTUs and API calls of the
// period starting on period, labelled label.
func (p *Provider) collectWorkspaceUsage(ctx context.Context, c *client, s *provider.Scrape, period time.Time, label string) error {
	best, err := c.latest(ctx, workspaceMTU, period, 0)
	if err != nil {
		return err
	}
	sn := best[""]
	if sn == nil {
		return noSnapshot(workspaceMTU, period)
	}
	p.learn(s.Conn.ID, sn)
	mtu, err := mtuCounts(workspaceMTU, sn)
	if err != nil {
		return err
	}
	for i, k := range MTUKinds {
		s.Gauge(descMTU, mtu[i], k, label)
	}
	if label == periodThis {
		start := period
		if st, _, ok := sn.span(); ok {
			start = st
		}
		s.Gauge(descPeriodStart, float64(start.Unix()))
		s.MonthToDate(budgetUnit, mtu[slices.Index(MTUKinds, "identified")]+mtu[slices.Index(MTUKinds, "never_identified")])
	}

	best, err = c.latest(ctx, workspaceCalls, period, 0)
	if err != nil {
		return err
	}
	if sn = best[""]; sn == nil {
		return noSnapshot(workspaceCalls, period)
	}
	calls, err := parseCount(sn.APICalls)
	if err != nil {
		return fmt.Errorf("segment GET %s: apiCalls of %s %w", workspaceCalls.path, sn.Timestamp, err)
	}
	s.Gauge(descAPICalls, calls, label)
	return nil
}

// collectSourceUsage emits each source's MTUs and API calls of the period
// starting on period; names maps source ids to names.
func collectSourceUsage(ctx context.Context, c *client, s *provider.Scrape, period time.Time, names map[string]string) error {
	mtu, err := c.latest(ctx, sourceMTU, period, 0)
	if err != nil {
		return err
	}
	if len(mtu) == 0 {
		return noSnapshot(sourceMTU, period)
	}
	calls, err := c.latest(ctx, sourceCalls, period, 0)
	if err != nil {
		return err
	}
	if len(calls) == 0 {
		return noSnapshot(sourceCalls, period)
	}
	for id, sn := range mtu {
		counts, err := mtuCounts(sourceMTU, sn)
		if err != nil {
			return err
		}
		for i, k := range MTUKinds {
			s.Gauge(descSourceMTU, counts[i], provider.Label(id), names[id], k)
		}
	}
	for id, sn := range calls {
		v, err := parseCount(sn.APICalls)
		if err != nil {
			return fmt.Errorf("segment GET %s: apiCalls of source %s on %s %w", sourceCalls.path, quote(id), sn.Timestamp, err)
		}
		s.Gauge(descSourceAPICalls, v, provider.Label(id), names[id])
	}
	return nil
}

// boundLabel makes vendor text a safe label value: valid UTF-8, at most
// maxLabelLen characters ("…" marks a cut).

// addMonth moves t by n months, keeping the day of the month where it
// exists and the month's last day otherwise (January 31 + 1 is February
// 28), where time.AddDate would spill into the month after.
func addMonth(t time.Time, n int) time.Time {
	first := time.Date(t.Year(), t.Month()+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(t.Day(), last)-1)
}

func unixTime(sec float64) time.Time {
	whole, frac := math.Modf(sec)
	return time.Unix(int64(whole), int64(frac*1e9)).UTC()
}

// parseCount reads one of Segment's bigint counts, sent as a JSON string
// of decimal digits (a bare JSON integer is accepted too). It is parsed
// exactly, then rounded once to the float64 of the sample value.
func parseCount(raw json.RawMessage) (float64, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, fmt.Errorf("is missing")
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, fmt.Errorf("is %s, not a JSON string", quote(string(raw)))
		}
	}
	if s == "" || len(s) > 100 || strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, fmt.Errorf("is %s, not a whole number", quote(s))
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return 0, fmt.Errorf("is %s, not a whole number", quote(s))
	}
	f, _ := new(big.Float).SetInt(n).Float64()
	return f, nil
}

// quote shows a vendor value in an error, bounded.
func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return fmt.Sprintf("%q", s)
}
