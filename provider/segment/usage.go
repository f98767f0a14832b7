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

// How the month-to-date figures are computed (README, "Segment usage"):
// Segment's /usage/mtu/daily and /usage/api-calls/daily answer one
// snapshot per day of a usage period, and each snapshot is cumulative
// ("daily cumulative MTU counts"): it already counts every user or call
// since the period began. So the exporter takes the snapshot with the
// latest timestamp, not a sum. It asks for period = the 1st of the current
// UTC month; if the snapshots say that period has ended (periodEnd <= now,
// a billing cycle starting later in the month), it asks once more with
// period = that periodEnd, the start of the current period.

// usageSnapshot is one daily item of either usage list.
type usageSnapshot struct {
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

// latest fetches every daily snapshot of the period holding period and
// returns the one with the latest timestamp (nil: no snapshot yet).
func (c *client) latest(ctx context.Context, path, key string, period time.Time) (*usageSnapshot, error) {
	var best *usageSnapshot
	err := c.pages(ctx, path, key, url.Values{"period": {period.Format("2006-01-02")}}, func(items json.RawMessage) error {
		var snaps []usageSnapshot
		if err := json.Unmarshal(items, &snaps); err != nil {
			return fmt.Errorf("data.%s does not parse: %v", key, err)
		}
		for i := range snaps {
			sn := &snaps[i]
			t, err := time.Parse(time.RFC3339, sn.Timestamp)
			if err != nil {
				return fmt.Errorf("data.%s: timestamp %s is not an ISO-8601 time", key, quote(sn.Timestamp))
			}
			sn.at = t
			if best == nil || !t.Before(best.at) {
				best = sn
			}
		}
		return nil
	})
	return best, err
}

func collectUsage(ctx context.Context, c *client, s *provider.Scrape) error {
	const mtuPath, mtuKey = "/usage/mtu/daily", "dailyWorkspaceMTUUsage"
	now := s.Now.UTC()
	period := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	snap, err := c.latest(ctx, mtuPath, mtuKey, period)
	if err != nil {
		return err
	}
	if snap != nil && snap.PeriodEnd != nil && *snap.PeriodEnd > 0 {
		if end := unixTime(*snap.PeriodEnd); !now.Before(end) {
			period = time.Date(end.Year(), end.Month(), end.Day(), 0, 0, 0, 0, time.UTC)
			if snap, err = c.latest(ctx, mtuPath, mtuKey, period); err != nil {
				return err
			}
		}
	}
	start := period
	mtu := make([]float64, len(MTUKinds))
	if snap != nil {
		if snap.PeriodStart != nil && *snap.PeriodStart > 0 {
			start = unixTime(*snap.PeriodStart)
		}
		for i, raw := range []json.RawMessage{snap.Identified, snap.Anonymous, snap.AnonymousIdentified, snap.NeverIdentified} {
			if mtu[i], err = parseCount(raw); err != nil {
				return fmt.Errorf("segment GET %s: %s of %s %w", mtuPath, MTUKinds[i], snap.Timestamp, err)
			}
		}
	}
	for i, k := range MTUKinds {
		s.Gauge(descMTU, mtu[i], k)
	}
	s.MonthToDate(budgetUnit, mtu[slices.Index(MTUKinds, "identified")]+mtu[slices.Index(MTUKinds, "never_identified")])
	s.Gauge(descPeriodStart, float64(start.Unix()))

	const callsPath, callsKey = "/usage/api-calls/daily", "dailyWorkspaceAPICallsUsage"
	snap, err = c.latest(ctx, callsPath, callsKey, period)
	if err != nil {
		return err
	}
	calls := 0.0
	if snap != nil {
		if calls, err = parseCount(snap.APICalls); err != nil {
			return fmt.Errorf("segment GET %s: apiCalls of %s %w", callsPath, snap.Timestamp, err)
		}
	}
	s.Gauge(descAPICalls, calls)
	return nil
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
