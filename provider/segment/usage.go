package segment

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

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
	SourceID            string   `json:"sourceId"`
	PeriodStart         *float64 `json:"periodStart"`
	PeriodEnd           *float64 `json:"periodEnd"`
	Identified          count    `json:"identified"`
	Anonymous           count    `json:"anonymous"`
	AnonymousIdentified count    `json:"anonymousIdentified"`
	NeverIdentified     count    `json:"neverIdentified"`
	APICalls            count    `json:"apiCalls"`
	Timestamp           string   `json:"timestamp"`

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
	each := func(sn *usageSnapshot) error {
		t, err := time.Parse(time.RFC3339, sn.Timestamp)
		if err != nil {
			return fmt.Errorf("data.%s: timestamp %s is not an ISO-8601 time", l.key, quote(sn.Timestamp))
		}
		sn.at = t
		switch b := best[sn.SourceID]; {
		case b == nil:
			cp := *sn // sn is reused for the next item
			best[sn.SourceID] = &cp
		case !t.Before(b.at):
			*b = *sn
		}
		return nil
	}
	var err error
	if count > 0 {
		err = page(ctx, c, l.path, l.key, q, count, "does not parse", each)
	} else {
		err = pages(ctx, c, l.path, l.key, q, "does not parse", each)
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
	guessed    bool      // from settingPeriodStart, not confirmed by an answer yet
}

// learn records the period a snapshot states.
func (p *Provider) learn(connID string, sn *usageSnapshot) {
	start, end, ok := sn.span()
	if !ok || connID == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := p.periods[connID]; !k.guessed && k.start.After(start) {
		return // an older period (last month's section)
	}
	p.periods[connID] = knownPeriod{start: start, end: end}
}

// resolvePeriod returns the start of the workspace's current usage period.
// It sends no call when a period is known: seen on an earlier collection
// (the current one starts where that one ends), or stored with the
// connection when it was connected (settingPeriodStart). Otherwise it asks
// for the 1st of the UTC month; if that answers nothing (a billing cycle
// starting later in the month), it asks for each other day of the last
// month at once, one item each, and takes the latest day that answers. A
// search that finds nothing is repeated at most every reprobeEvery; the
// 1st is asked on every collection.
func (p *Provider) resolvePeriod(ctx context.Context, c *client, conn provider.Connection, now time.Time) (time.Time, error) {
	now = now.UTC()
	connID := conn.ID
	p.mu.Lock()
	k, known := p.periods[connID]
	p.mu.Unlock()
	if known && !k.start.IsZero() {
		for !now.Before(k.end) {
			k.start, k.end = k.end, addMonth(k.end, 1)
		}
		return k.start, nil
	}
	if !known {
		if start, ok := storedPeriod(conn.Settings[settingPeriodStart], now); ok {
			// A guess until an answer states the period: if the usage
			// answer is empty, forgetPeriod makes the next collection search.
			p.mu.Lock()
			p.periods[connID] = knownPeriod{start: start, end: addMonth(start, 1), guessed: true}
			p.mu.Unlock()
			return start, nil
		}
	}
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	if start, ok, err := p.probePeriod(ctx, c, connID, first, now); err != nil || ok {
		return start, err
	}
	if known && now.Sub(k.searched) < reprobeEvery {
		return time.Time{}, fmt.Errorf("segment GET %s: no usage snapshot for period=%s, and a search of the month before %s found no other period start; searching again after %s (an empty answer is not a zero: the last known values stay exported)",
			workspaceMTU.path, first.Format(time.DateOnly), k.searched.Format(time.DateOnly), k.searched.Add(reprobeEvery).Format(time.RFC3339))
	}
	if start, ok, err := p.searchPeriod(ctx, c, connID, now, first); err != nil || ok {
		return start, err
	}
	p.mu.Lock()
	p.periods[connID] = knownPeriod{searched: now}
	p.mu.Unlock()
	return time.Time{}, fmt.Errorf("segment GET %s: no usage snapshot for period=%s (the 1st of the month) nor for any day of the last %d days: the workspace has no usage reported yet, or Segment changed how periods are named; the last known values stay exported",
		workspaceMTU.path, first.Format(time.DateOnly), probeDays)
}

// probePeriod asks for one item of the period starting on day; ok if
// Segment answered one, with the current period's start.
func (p *Provider) probePeriod(ctx context.Context, c *client, connID string, day, now time.Time) (time.Time, bool, error) {
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

// searchPeriod asks for every day of the last probeDays but skip at once
// (the engine bounds the calls per account) and returns the period of the
// latest day that answered. A failed call fails the search only if no
// later day answered.
func (p *Provider) searchPeriod(ctx context.Context, c *client, connID string, now, skip time.Time) (time.Time, bool, error) {
	type answer struct {
		start time.Time
		ok    bool
		err   error
	}
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	answers := make([]answer, probeDays)
	var wg sync.WaitGroup
	for i := range probeDays {
		day := today.AddDate(0, 0, -i)
		if day.Equal(skip) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := &answers[i]
			defer provider.Recover("segment usage period search", &a.err)
			a.start, a.ok, a.err = p.probePeriod(ctx, c, connID, day, now)
		}()
	}
	wg.Wait()
	for _, a := range answers { // latest day first
		if a.err != nil {
			return time.Time{}, false, a.err
		}
		if a.ok {
			return a.start, true, nil
		}
	}
	return time.Time{}, false, nil
}

// findPeriod looks for the workspace's current usage period start (the
// 1st, then the other days of the last month at once), for Verify to
// store with the connection so that a new process need not search. ok is
// false if nothing answered; a failure is not a reason to refuse the
// connection.
func (p *Provider) findPeriod(ctx context.Context, c *client, now time.Time) (time.Time, bool) {
	now = now.UTC()
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	if start, ok, err := p.probePeriod(ctx, c, "", first, now); err == nil && ok {
		return start, true
	}
	start, ok, err := p.searchPeriod(ctx, c, "", now, first)
	return start, ok && err == nil
}

// storedPeriod reads settingPeriodStart (a date on which a usage period
// started) and returns the start of the period holding now: the same day
// of the month (clamped, see addMonth), months later.
func storedPeriod(v string, now time.Time) (time.Time, bool) {
	t, err := time.Parse(time.DateOnly, v)
	if err != nil || t.After(now) {
		return time.Time{}, false
	}
	start := t
	for n := 1; ; n++ {
		next := addMonth(t, n)
		if next.After(now) {
			return start, true
		}
		start = next
	}
}

// forgetPeriod drops a guessed period that Segment answered nothing for,
// so the next collection searches.
func (p *Provider) forgetPeriod(connID string, period time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := p.periods[connID]; k.guessed && k.start.Equal(period) {
		delete(p.periods, connID)
	}
}

// noSnapshot is the error of an empty usage answer: not a zero.
func noSnapshot(l usageList, period time.Time) error {
	return fmt.Errorf("segment GET %s: no usage snapshot for the period starting %s (period=%s); an empty answer is not a zero, so the last known values stay exported. If this lasts, check that the workspace's billing period starts on that day",
		l.path, period.Format(time.DateOnly), period.Format(time.DateOnly))
}

// mtuCounts parses the four kinds of a snapshot, in mtuKinds order.
func mtuCounts(l usageList, sn *usageSnapshot) ([]float64, error) {
	out := make([]float64, len(mtuKinds))
	for i, c := range []count{sn.Identified, sn.Anonymous, sn.AnonymousIdentified, sn.NeverIdentified} {
		v, err := c.value()
		if err != nil {
			return nil, fmt.Errorf("segment GET %s: %s of %s %w", l.path, mtuKinds[i], sn.Timestamp, err)
		}
		out[i] = v
	}
	return out, nil
}

// latestPair runs latest for two lists of the same period at once.
func (c *client) latestPair(ctx context.Context, a, b usageList, period time.Time) (ma, mb map[string]*usageSnapshot, errA, errB error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer provider.Recover("segment GET "+b.path, &errB)
		mb, errB = c.latest(ctx, b, period, 0)
	}()
	ma, errA = c.latest(ctx, a, period, 0)
	<-done
	return ma, mb, errA, errB
}

// collectWorkspaceUsage emits the workspace's MTUs and API calls of the
// period starting on period, labelled label. Both lists are asked at once.
func (p *Provider) collectWorkspaceUsage(ctx context.Context, c *client, s *provider.Scrape, period time.Time, label string) error {
	best, calls, err, callsErr := c.latestPair(ctx, workspaceMTU, workspaceCalls, period)
	if err != nil {
		return err
	}
	sn := best[""]
	if sn == nil {
		if label == periodThis {
			p.forgetPeriod(s.Conn.ID, period)
		}
		return noSnapshot(workspaceMTU, period)
	}
	p.learn(s.Conn.ID, sn)
	mtu, err := mtuCounts(workspaceMTU, sn)
	if err != nil {
		return err
	}
	for i, k := range mtuKinds {
		s.Gauge(descMTU, mtu[i], k, label)
	}
	if label == periodThis {
		start := period
		if st, _, ok := sn.span(); ok {
			start = st
		}
		s.Gauge(descPeriodStart, float64(start.Unix()))
		s.MonthToDate(budgetUnit, mtu[slices.Index(mtuKinds, "identified")]+mtu[slices.Index(mtuKinds, "never_identified")])
	}

	if callsErr != nil {
		return callsErr
	}
	if sn = calls[""]; sn == nil {
		return noSnapshot(workspaceCalls, period)
	}
	n, err := sn.APICalls.value()
	if err != nil {
		return fmt.Errorf("segment GET %s: apiCalls of %s %w", workspaceCalls.path, sn.Timestamp, err)
	}
	s.Gauge(descAPICalls, n, label)
	return nil
}

// fetchSourceUsage reads each source's latest MTUs and API calls of the
// period starting on period; both lists are asked at once.
func fetchSourceUsage(ctx context.Context, c *client, period time.Time) (mtu, calls map[string]*usageSnapshot, err error) {
	mtu, calls, err, callsErr := c.latestPair(ctx, sourceMTU, sourceCalls, period)
	switch {
	case err != nil:
		return nil, nil, err
	case len(mtu) == 0:
		return nil, nil, noSnapshot(sourceMTU, period)
	case callsErr != nil:
		return nil, nil, callsErr
	case len(calls) == 0:
		return nil, nil, noSnapshot(sourceCalls, period)
	}
	return mtu, calls, nil
}

// emitSourceUsage exports what fetchSourceUsage read; names maps source
// ids to names.
func emitSourceUsage(s *provider.Scrape, mtu, calls map[string]*usageSnapshot, names map[string]string) error {
	for id, sn := range mtu {
		counts, err := mtuCounts(sourceMTU, sn)
		if err != nil {
			return err
		}
		for i, k := range mtuKinds {
			s.Gauge(descSourceMTU, counts[i], provider.Label(id), names[id], k)
		}
	}
	for id, sn := range calls {
		v, err := sn.APICalls.value()
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

// count is one of Segment's bigint counts, parsed as it is decoded (no
// copy of the text is kept); an error is kept, not returned, so that a
// bad count fails only the figure that uses it.
type count struct {
	v   float64
	err error
	set bool
}

func (c *count) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	raw, err := dec.ReadValue()
	if err != nil {
		return err
	}
	c.v, c.err = parseCount(raw)
	c.set = true
	return nil
}

// value is the count, or why there is none.
func (c count) value() (float64, error) {
	if !c.set {
		return parseCount(nil)
	}
	return c.v, c.err
}

// parseCount reads one of Segment's bigint counts, sent as a JSON string
// of decimal digits (a bare JSON integer is accepted too), rounded once
// to the float64 of the sample value (ParseFloat rounds the exact
// decimal correctly, however long).
func parseCount(raw []byte) (float64, error) {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 || string(b) == "null" {
		return 0, fmt.Errorf("is missing")
	}
	if b[0] == '"' {
		if len(b) >= 2 && b[len(b)-1] == '"' && bytes.IndexByte(b, '\\') < 0 {
			b = b[1 : len(b)-1]
		} else {
			var s string
			if err := provider.Unmarshal(b, &s); err != nil {
				return 0, fmt.Errorf("is %s, not a JSON string", quote(string(raw)))
			}
			b = []byte(s)
		}
	}
	if len(b) == 0 || len(b) > 100 || bytes.ContainsFunc(b, func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, fmt.Errorf("is %s, not a whole number", quote(string(b)))
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return 0, fmt.Errorf("is %s, not a whole number", quote(string(b)))
	}
	return f, nil
}

// quote shows a vendor value in an error, bounded.
func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return fmt.Sprintf("%q", s)
}
