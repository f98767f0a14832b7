package sendgrid

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
)

// statsMetrics are the 16 metrics of SendGrid's global stats, exported as
// saas_sendgrid_emails{event=...}.
var statsMetrics = []string{"blocks", "bounce_drops", "bounces", "clicks", "deferred", "delivered", "invalid_emails", "opens",
	"processed", "requests", "spam_report_drops", "spam_reports", "unique_clicks", "unique_opens", "unsubscribe_drops", "unsubscribes"}

// creditFrequencies are the reset_frequency values saas_sendgrid_credits_reset_frequency
// always exports (0 or 1); another value SendGrid sends is exported too.
var creditFrequencies = []string{"monthly", "weekly", "daily"}

var (
	descEmails = provider.NewDesc("sendgrid_emails",
		"Email events in SendGrid's global stats (GET /v3/stats) of the connected account in the period: for a parent account its own mail only, its subusers' is in saas_sendgrid_subuser_emails (UTC days; this_month: month to date; last_month: the previous calendar month).", "event", "period")
	descSubuserEmails = provider.NewDesc("sendgrid_subuser_emails",
		"Email events of one subuser in the period (GET /v3/subusers/stats/sums), for the vendors.sendgrid.max_subusers subusers with the most requests in that period.", "subuser", "event", "period")
	descSubuserCredits = provider.NewDesc("sendgrid_subuser_credits_remaining",
		"Email credits a subuser has left of its own allocation (GET /v3/subusers/{name}/credits), for the subusers with the most requests this month; subusers without a limit are left out.", "subuser")
	descCreditsRemaining = provider.NewDesc("sendgrid_credits_remaining", "Email credits left in the current credit cycle.")
	descCreditsUsed      = provider.NewDesc("sendgrid_credits_used", "Email credits used in the current credit cycle.")
	descCreditsLimit     = provider.NewDesc("sendgrid_credits_limit", "Email credits of the plan for the current credit cycle.")
	descCreditsOverage   = provider.NewDesc("sendgrid_credits_overage", "Emails sent over the plan's credits in the current credit cycle.")
	descCreditsReset     = provider.NewDesc("sendgrid_credits_reset_timestamp_seconds", "When the credits next reset (Unix time, start of the UTC day).")
	descCreditsFrequency = provider.NewDesc("sendgrid_credits_reset_frequency",
		"How often the credits reset (reset_frequency of GET /v3/user/credits); one-hot. The credit cycle need not be the calendar month of the this_month stats.", "frequency")
	descReputation     = provider.NewDesc("sendgrid_reputation_ratio", "Sender reputation, from 0 to 1.")
	descAccountInfo    = provider.NewDesc("sendgrid_account_info", "SendGrid account type; always 1.", "type")
	descTeammates      = provider.NewDesc("sendgrid_teammates", "Teammates (seats) by user type, SSO teammates included.", "user_type")
	descPending        = provider.NewDesc("sendgrid_teammates_pending", "Teammate invitations not accepted yet and not expired.")
	descPendingExpired = provider.NewDesc("sendgrid_teammates_pending_expired", "Teammate invitations past their expiration_date, never accepted (they hold no seat; resending renews them).")
	descAPIKeys        = provider.NewDesc("sendgrid_api_keys", "API keys of the account.")
	descSubusers       = provider.NewDesc("sendgrid_subusers", "Subusers, by whether they are disabled.", "disabled")
)

const (
	// pageSize is what SendGrid allows at most on its paged lists.
	pageSize = 500
	// closedMonthEvery: a closed month's stats are fetched at most this
	// often. Opens, clicks and bounces of the month's last mails still
	// arrive for a while, so they are refreshed, but rarely.
	closedMonthEvery = 6 * time.Hour
	// subuserCreditsEvery: subuser credits cost one call per subuser, so
	// they are fetched at most this often.
	subuserCreditsEvery = 10 * time.Minute
)

// Collect gathers every metric the key's scopes allow. Sections run
// concurrently (the engine bounds calls per account); a failing section
// keeps its last values and does not hide the others.
func (p *Provider) Collect(ctx context.Context, s *provider.Scrape) error {
	region, err := regionOf(s.Conn.Settings[settingRegion])
	if err != nil {
		return fmt.Errorf("sendgrid: the connection's region is not one of %s; reconnect it", strings.Join(regionNames, ", "))
	}
	c := p.client(s.HTTP, region, s.Conn.Secret["api_key"])
	isOAuth := s.Conn.AuthMethod == oauthMethodName
	var (
		scopes []string
		secs   []provider.Section
		tok    string // an OAuth connection's access token
		asked  bool   // /v3/scopes accepted the credential first
	)
	if isOAuth {
		if p.oauth == nil {
			return errors.New("sendgrid: this connection uses OAuth, but vendors.sendgrid.oauth is no longer configured; configure it again, or reconnect with an API key")
		}
		if tok, err = p.oauth.AccessToken(ctx, s); err != nil {
			return err
		}
		c.key = tok
	} else if c.key == "" {
		return provider.Revoked(errors.New("sendgrid: the stored connection has no API key; reconnect it"))
	}
	k := p.known.get(s.Conn)
	scopes = k.scopes
	if len(scopes) == 0 {
		// Nothing stored (a connection from before scopes were kept):
		// ask first, so the sections are chosen right.
		if scopes, err = p.askScopes(ctx, s, c, tok); err != nil {
			return err
		}
		asked = true
	} else {
		// Any section's 401 is the credential check; /v3/scopes runs
		// alongside, at most every scopeCheckEvery (scopecheck.go).
		secs = append(secs, p.scopeCheck(c, k))
	}

	lastMonth := monthKey(s.Now)
	type section struct {
		name   string
		scopes []string
		every  time.Duration
		run    func(context.Context, *client, *provider.Scrape) error
	}
	sections := []section{
		{"stats.read", []string{"stats.read"}, 0, collectStats},
		// The month key in the name starts the closed month afresh when
		// the month turns.
		{"stats.read:last_month:" + lastMonth, []string{"stats.read"}, closedMonthEvery, collectStatsLastMonth},
		{"user.credits.read", []string{"user.credits.read"}, 0, collectCredits},
		{"user.account.read", []string{"user.account.read"}, 0, collectAccount},
		{"teammates.read", []string{"teammates.read"}, 0, p.collectTeammates},
		{"api_keys.read", []string{"api_keys.read"}, 0, collectAPIKeys},
		{"subusers.read", []string{"subusers.read"}, 0, p.collectSubusers},
	}
	if p.maxSubusers > 0 {
		sums := []string{"subusers.read", "subusers.stats.sums.read"}
		sections = append(sections,
			section{"subusers.stats", sums, 0, p.collectSubuserStats},
			section{"subusers.stats:last_month:" + lastMonth, sums, closedMonthEvery, p.collectSubuserStatsLastMonth},
			section{"subusers.credits", append(sums, "subusers.credits.read"), subuserCreditsEvery, p.collectSubuserCredits},
		)
	}
	for _, sec := range sections {
		if !hasAll(scopes, sec.scopes) {
			continue // left out; saas_connection_scope_missing says why
		}
		run := func(ctx context.Context, s *provider.Scrape) error { return sec.run(ctx, c, s) }
		secs = append(secs, provider.Section{Name: sec.name, Every: sec.every, Run: p.lostScope(sec.scopes, run)})
	}
	err = s.Sections(ctx, secs...)
	if !has401(err) {
		return err
	}
	if !isOAuth {
		return provider.Revoked(err)
	}
	if asked {
		return midCollection401(err)
	}
	// SendGrid refused an access token before its expiry (the grant was
	// revoked, or another replica rotated it): refresh it and check it as
	// the first call would have, then collect again with the new one.
	if _, err := p.askScopes(ctx, s, c, tok); err != nil {
		return err
	}
	if secs[0].Name == scopeSection {
		secs = secs[1:] // just asked
	}
	if err = s.Sections(ctx, secs...); has401(err) {
		return midCollection401(err)
	}
	return err
}

// has401 reports whether a call of err was refused with 401.
func has401(err error) bool {
	for _, e := range provider.Errors(err) {
		if provider.StatusOf(e) == http.StatusUnauthorized {
			return true
		}
	}
	return false
}

func hasAll(granted, want []string) bool {
	for _, w := range want {
		if !slices.Contains(granted, w) {
			return false
		}
	}
	return true
}

const dayLayout = "2006-01-02"

// monthKey names the month before now's (UTC), e.g. "2026-02".
func monthKey(now time.Time) string {
	first, _ := lastMonthRange(now)
	return first.Format("2006-01")
}

// lastMonthRange is the first and last day of the month before now's (UTC).
func lastMonthRange(now time.Time) (first, last time.Time) {
	now = now.UTC()
	thisFirst := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	return thisFirst.AddDate(0, -1, 0), thisFirst.AddDate(0, 0, -1)
}

// period is a named date range of the stats endpoints (UTC days).
type period struct {
	name, start, end, agg string
}

func currentPeriods(now time.Time) []period {
	now = now.UTC()
	today := now.Format(dayLayout)
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).Format(dayLayout)
	return []period{{"today", today, today, "day"}, {"this_month", first, today, "month"}}
}

func lastMonthPeriod(now time.Time) period {
	first, last := lastMonthRange(now)
	return period{"last_month", first.Format(dayLayout), last.Format(dayLayout), "month"}
}

type statsDay struct {
	Date  string `json:"date"`
	Stats []struct {
		Metrics map[string]float64 `json:"metrics"`
	} `json:"stats"`
}

// emails reads GET /v3/stats over q, emits every metric (0 where the
// answer has none) and returns the sums.
func emails(ctx context.Context, c *client, s *provider.Scrape, q period) (map[string]float64, error) {
	var days []statsDay
	if err := c.get(ctx, "/v3/stats", map[string]string{"start_date": q.start, "end_date": q.end, "aggregated_by": q.agg}, &days); err != nil {
		return nil, err
	}
	sum := map[string]float64{}
	for _, d := range days {
		for _, st := range d.Stats {
			for k, v := range st.Metrics {
				sum[k] += v
			}
		}
	}
	for _, m := range statsMetrics {
		s.Gauge(descEmails, sum[m], m, q.name)
	}
	return sum, nil
}

// collectStats asks for today and this month at once.
func collectStats(ctx context.Context, c *client, s *provider.Scrape) error {
	qs := currentPeriods(s.Now)
	return parallel(len(qs), func(i int) error {
		sum, err := emails(ctx, c, s, qs[i])
		if err == nil && qs[i].name == "this_month" {
			s.MonthToDate(budgetUnit, sum["requests"])
		}
		return err
	})
}

// parallel runs f(0..n-1) at once (the engine bounds the calls per
// account) and returns the first error by index.
func parallel(n int, f func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer provider.Recover("sendgrid", &errs[i])
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func collectStatsLastMonth(ctx context.Context, c *client, s *provider.Scrape) error {
	_, err := emails(ctx, c, s, lastMonthPeriod(s.Now))
	return err
}

func collectCredits(ctx context.Context, c *client, s *provider.Scrape) error {
	var r struct {
		Remain         float64 `json:"remain"`
		Total          float64 `json:"total"`
		Overage        float64 `json:"overage"`
		Used           float64 `json:"used"`
		NextReset      string  `json:"next_reset"`
		ResetFrequency string  `json:"reset_frequency"`
	}
	if err := c.get(ctx, "/v3/user/credits", nil, &r); err != nil {
		return err
	}
	s.Gauge(descCreditsRemaining, r.Remain)
	s.Gauge(descCreditsUsed, r.Used)
	s.Gauge(descCreditsLimit, r.Total)
	s.Gauge(descCreditsOverage, r.Overage)
	if t, ok := dateOf(r.NextReset); ok {
		s.Gauge(descCreditsReset, float64(t.Unix()))
	}
	freq := provider.Label(strings.ToLower(strings.TrimSpace(r.ResetFrequency)))
	for _, f := range creditFrequencies {
		s.Gauge(descCreditsFrequency, boolValue(f == freq), f)
	}
	if freq != "" && !slices.Contains(creditFrequencies, freq) {
		s.Gauge(descCreditsFrequency, 1, freq)
	}
	return nil
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func collectAccount(ctx context.Context, c *client, s *provider.Scrape) error {
	var r struct {
		Type       string  `json:"type"`
		Reputation float64 `json:"reputation"`
	}
	if err := c.get(ctx, "/v3/user/account", nil, &r); err != nil {
		return err
	}
	// SendGrid documents two account types; anything else is "other", so
	// the label's values stay a known set.
	switch t := strings.ToLower(strings.TrimSpace(r.Type)); t {
	case "":
	case "free", "paid":
		s.Gauge(descAccountInfo, 1, t)
	default:
		s.Gauge(descAccountInfo, 1, "other")
	}
	s.Gauge(descReputation, r.Reputation/100)
	return nil
}

// pages fetches an offset-paged list, limit items a page. SendGrid's limit
// is the page size, so a page shorter than it is the last one. The API
// does not tell the total, so after a full first page the next pageWave
// pages are asked at once, and again while they all come back full: a
// long list costs a round trip per pageWave pages, not per page. fetch
// may run concurrently (callers guard what it adds to) and returns how
// many items its page held; a page past the end holds none.
func pages(ctx context.Context, limit int, fetch func(ctx context.Context, offset, limit int) (int, error)) error {
	n, err := fetch(ctx, 0, limit)
	if err != nil || n < limit {
		return err
	}
	for offset := limit; offset < 10000*limit; offset += pageWave * limit {
		counts := make([]int, pageWave)
		err := parallel(pageWave, func(i int) error {
			var err error
			counts[i], err = fetch(ctx, offset+i*limit, limit)
			return err
		})
		if err != nil {
			return err
		}
		if slices.ContainsFunc(counts, func(n int) bool { return n < limit }) {
			return nil
		}
	}
	return fmt.Errorf("sendgrid: a list did not end after 10000 pages")
}

// pageWave is how many further pages of a list are asked at once.
const pageWave = 4

func pageQuery(offset, limit int) map[string]string {
	return map[string]string{"limit": strconv.Itoa(limit), "offset": strconv.Itoa(offset)}
}

// collectTeammates counts teammates by user type. SSO teammates are not
// listed apart: SendGrid's docs say they are read with this same API, so
// they are counted here.
func (p *Provider) collectTeammates(ctx context.Context, c *client, s *provider.Scrape) error {
	byType := map[string]float64{"owner": 0, "admin": 0, "teammate": 0}
	var mu sync.Mutex
	// Pending invitations are not paged by the API: one answer holds them
	// all. They are asked with the first page.
	var pending struct {
		Result []struct {
			ExpirationDate float64 `json:"expiration_date"` // Unix seconds; 0 if absent
		} `json:"result"`
	}
	err := parallel(2, func(i int) error {
		if i == 1 {
			return c.get(ctx, "/v3/teammates/pending", nil, &pending)
		}
		return p.teammatePages(ctx, c, &mu, byType)
	})
	if err != nil {
		return err
	}
	live, expired := 0, 0
	now := float64(s.Now.Unix())
	for _, p := range pending.Result {
		// Without an expiration_date an invitation counts as live.
		if p.ExpirationDate > 0 && p.ExpirationDate <= now {
			expired++
		} else {
			live++
		}
	}
	for t, n := range byType {
		s.Gauge(descTeammates, n, t)
	}
	s.Gauge(descPending, float64(live))
	s.Gauge(descPendingExpired, float64(expired))
	return nil
}

// teammatePages counts every page of /v3/teammates into byType (under mu).
func (p *Provider) teammatePages(ctx context.Context, c *client, mu *sync.Mutex, byType map[string]float64) error {
	return pages(ctx, p.pageSize, func(ctx context.Context, offset, limit int) (int, error) {
		var r struct {
			Result []struct {
				UserType string `json:"user_type"`
			} `json:"result"`
			Results []struct {
				UserType string `json:"user_type"`
			} `json:"results"` // the spec's example spelling
		}
		if err := c.get(ctx, "/v3/teammates", pageQuery(offset, limit), &r); err != nil {
			return 0, err
		}
		items := append(r.Result, r.Results...)
		mu.Lock()
		defer mu.Unlock()
		for _, t := range items {
			if ut := provider.Label(t.UserType); ut != "" {
				byType[ut]++
			}
		}
		return len(items), nil
	})
}

// collectAPIKeys: the API documents a limit but no offset, so one call
// with the largest limit is all there is.
func collectAPIKeys(ctx context.Context, c *client, s *provider.Scrape) error {
	var r struct {
		Result []struct {
			ID string `json:"api_key_id"`
		} `json:"result"`
	}
	if err := c.get(ctx, "/v3/api_keys", map[string]string{"limit": strconv.Itoa(pageSize)}, &r); err != nil {
		return err
	}
	s.Gauge(descAPIKeys, float64(len(r.Result)))
	return nil
}

func (p *Provider) collectSubusers(ctx context.Context, c *client, s *provider.Scrape) error {
	counts := map[bool]float64{false: 0, true: 0}
	var mu sync.Mutex
	err := pages(ctx, p.pageSize, func(ctx context.Context, offset, limit int) (int, error) {
		var r []struct {
			Disabled bool `json:"disabled"`
		}
		if err := c.get(ctx, "/v3/subusers", pageQuery(offset, limit), &r); err != nil {
			return 0, err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, u := range r {
			counts[u.Disabled]++
		}
		return len(r), nil
	})
	if err != nil {
		return err
	}
	s.Gauge(descSubusers, counts[false], "false")
	s.Gauge(descSubusers, counts[true], "true")
	return nil
}

// subuserSum is one subuser's totals over a period.
type subuserSum struct {
	name    string // as SendGrid spells it (for calls)
	label   string // bounded, for the subuser label
	metrics map[string]float64
}

// topMemo shares a collection's GET /v3/subusers/stats/sums of one
// period: the subuser stats and the subuser credits sections both want
// this month's top subusers, and run at once.
type topMemo struct {
	mu    sync.Mutex
	calls map[period]*topCall
}

type topCall struct {
	done chan struct{}
	top  []subuserSum // read only once done
	err  error
}

// topSubusers returns the maxSubusers subusers with the most requests in
// q, asked once per collection (c).
func (p *Provider) topSubusers(ctx context.Context, c *client, q period) ([]subuserSum, error) {
	c.tops.mu.Lock()
	call := c.tops.calls[q]
	if call == nil {
		if c.tops.calls == nil {
			c.tops.calls = map[period]*topCall{}
		}
		call = &topCall{done: make(chan struct{})}
		c.tops.calls[q] = call
		c.tops.mu.Unlock()
		func() {
			defer close(call.done)
			defer provider.Recover("sendgrid GET /v3/subusers/stats/sums", &call.err)
			call.top, call.err = p.askTopSubusers(ctx, c, q)
		}()
		if call.err != nil {
			// Those waiting share the failure; a later attempt (after
			// a token refresh) asks again.
			c.tops.mu.Lock()
			delete(c.tops.calls, q)
			c.tops.mu.Unlock()
		}
		return call.top, call.err
	}
	c.tops.mu.Unlock()
	select {
	case <-call.done:
		return call.top, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// askTopSubusers reads GET /v3/subusers/stats/sums over q: the maxSubusers
// subusers with the most requests, most first. SendGrid sorts and cuts
// (one call); names that are empty or equal once bounded are left out.
func (p *Provider) askTopSubusers(ctx context.Context, c *client, q period) ([]subuserSum, error) {
	var r struct {
		Stats []struct {
			Name    string             `json:"name"`
			Metrics map[string]float64 `json:"metrics"`
		} `json:"stats"`
	}
	err := c.get(ctx, "/v3/subusers/stats/sums", map[string]string{
		"start_date": q.start, "end_date": q.end, "sort_by_metric": "requests", "sort_by_direction": "desc",
		"limit": strconv.Itoa(p.maxSubusers), "offset": "0",
	}, &r)
	if err != nil {
		return nil, err
	}
	var out []subuserSum
	seen := map[string]bool{}
	for _, st := range r.Stats {
		if len(out) == p.maxSubusers {
			break // a server that ignores limit still yields the bound
		}
		l := provider.Label(st.Name)
		if l == "" || seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, subuserSum{name: st.Name, label: l, metrics: st.Metrics})
	}
	return out, nil
}

func (p *Provider) subuserEmails(ctx context.Context, c *client, s *provider.Scrape, q period) error {
	top, err := p.topSubusers(ctx, c, q)
	if err != nil {
		return err
	}
	for _, su := range top {
		for _, m := range statsMetrics {
			s.Gauge(descSubuserEmails, su.metrics[m], su.label, m, q.name)
		}
	}
	return nil
}

// collectSubuserStats asks for today and this month at once.
func (p *Provider) collectSubuserStats(ctx context.Context, c *client, s *provider.Scrape) error {
	qs := currentPeriods(s.Now)
	return parallel(len(qs), func(i int) error { return p.subuserEmails(ctx, c, s, qs[i]) })
}

func (p *Provider) collectSubuserStatsLastMonth(ctx context.Context, c *client, s *provider.Scrape) error {
	return p.subuserEmails(ctx, c, s, lastMonthPeriod(s.Now))
}

// collectSubuserCredits reads the credits of this month's top subusers,
// one call each, all at once (the engine bounds them per account).
func (p *Provider) collectSubuserCredits(ctx context.Context, c *client, s *provider.Scrape) error {
	top, err := p.topSubusers(ctx, c, currentPeriods(s.Now)[1])
	if err != nil {
		return err
	}
	// All at once: the engine bounds the calls in flight per account
	// (MaxConcurrentCalls), so a few subusers take one round trip.
	var (
		wg   sync.WaitGroup
		errs = make([]error, len(top))
	)
	for i, su := range top {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer provider.Recover("sendgrid subuser credits", &errs[i])
			var r struct {
				Type   string   `json:"type"`
				Remain *float64 `json:"remain"` // null: unlimited
			}
			if err := c.get(ctx, "/v3/subusers/"+url.PathEscape(su.name)+"/credits", nil, &r); err != nil {
				errs[i] = err
				return
			}
			if r.Remain != nil {
				s.Gauge(descSubuserCredits, *r.Remain, su.label)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
