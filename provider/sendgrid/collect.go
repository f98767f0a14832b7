package sendgrid

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
)

// StatsMetrics are the 16 metrics of SendGrid's global stats, exported as
// saas_sendgrid_emails{event=...}.
var StatsMetrics = []string{"blocks", "bounce_drops", "bounces", "clicks", "deferred", "delivered", "invalid_emails", "opens",
	"processed", "requests", "spam_report_drops", "spam_reports", "unique_clicks", "unique_opens", "unsubscribe_drops", "unsubscribes"}

var (
	descEmails = provider.NewDesc("sendgrid_emails",
		"Email events from SendGrid's global stats in the period (UTC days; this_month: month to date).", "event", "period")
	descCreditsRemaining = provider.NewDesc("sendgrid_credits_remaining", "Email credits left in the current credit period.")
	descCreditsUsed      = provider.NewDesc("sendgrid_credits_used", "Email credits used in the current credit period.")
	descCreditsLimit     = provider.NewDesc("sendgrid_credits_limit", "Email credits of the plan for the current credit period.")
	descCreditsOverage   = provider.NewDesc("sendgrid_credits_overage", "Emails sent over the plan's credits in the current credit period.")
	descCreditsReset     = provider.NewDesc("sendgrid_credits_reset_timestamp_seconds", "When the credits next reset (Unix time, start of the UTC day).")
	descReputation       = provider.NewDesc("sendgrid_reputation_ratio", "Sender reputation, from 0 to 1.")
	descAccountInfo      = provider.NewDesc("sendgrid_account_info", "SendGrid account type; always 1.", "type")
	descTeammates        = provider.NewDesc("sendgrid_teammates", "Teammates (seats) by user type.", "user_type")
	descPending          = provider.NewDesc("sendgrid_teammates_pending", "Teammate invitations not accepted yet.")
	descAPIKeys          = provider.NewDesc("sendgrid_api_keys", "API keys of the account.")
	descSubusers         = provider.NewDesc("sendgrid_subusers", "Subusers, by whether they are disabled.", "disabled")
)

// pageSize is what SendGrid allows at most on its paged lists.
const pageSize = 500

// Collect gathers every metric the key's scopes allow. Sections run
// concurrently (the engine bounds calls per account); a failing section
// does not hide the others.
func (p *Provider) Collect(ctx context.Context, s *provider.Scrape) error {
	c := &client{hc: s.HTTP, apiURL: p.apiURL, key: s.Conn.Secret["api_key"]}
	isOAuth := s.Conn.AuthMethod == oauthMethodName
	var (
		scopes []string
		err    error
	)
	// /v3/scopes doubles as the credential check.
	if isOAuth {
		if scopes, err = p.oauthScopes(ctx, s, c); err != nil {
			return err
		}
	} else {
		if c.key == "" {
			return provider.Revoked(errors.New("sendgrid: the stored connection has no API key; reconnect it"))
		}
		if scopes, err = c.scopes(ctx); err != nil {
			if provider.StatusOf(err) == http.StatusUnauthorized {
				return provider.Revoked(err)
			}
			return err
		}
	}
	s.MissingScopes(missing(scopes))

	type section struct {
		scope string
		run   func(context.Context, *client, *provider.Scrape) error
	}
	sections := []section{
		{"stats.read", collectStats},
		{"user.credits.read", collectCredits},
		{"user.account.read", collectAccount},
		{"teammates.read", collectTeammates},
		{"api_keys.read", collectAPIKeys},
		{"subusers.read", collectSubusers},
	}
	var secs []provider.Section
	for _, sec := range sections {
		if !slices.Contains(scopes, sec.scope) {
			continue // left out; saas_connection_scope_missing says why
		}
		secs = append(secs, provider.Section{Name: sec.scope, Run: func(ctx context.Context, s *provider.Scrape) error { return sec.run(ctx, c, s) }})
	}
	err = s.Sections(ctx, secs...)
	errs := provider.Errors(err)
	for _, e := range errs {
		if provider.StatusOf(e) == http.StatusUnauthorized {
			if isOAuth {
				return midCollection401(err)
			}
			return provider.Revoked(err)
		}
	}
	return err
}

type statsDay struct {
	Date  string `json:"date"`
	Stats []struct {
		Metrics map[string]float64 `json:"metrics"`
	} `json:"stats"`
}

func collectStats(ctx context.Context, c *client, s *provider.Scrape) error {
	now := s.Now.UTC()
	today := now.Format("2006-01-02")
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).Format("2006-01-02")
	for _, q := range []struct {
		period, start, agg string
	}{{"today", today, "day"}, {"this_month", first, "month"}} {
		var days []statsDay
		if err := c.get(ctx, "/v3/stats", map[string]string{"start_date": q.start, "end_date": today, "aggregated_by": q.agg}, &days); err != nil {
			return err
		}
		sum := map[string]float64{}
		for _, d := range days {
			for _, st := range d.Stats {
				for k, v := range st.Metrics {
					sum[k] += v
				}
			}
		}
		for _, m := range StatsMetrics {
			s.Gauge(descEmails, sum[m], m, q.period)
		}
		if q.period == "this_month" {
			s.MonthToDate(budgetUnit, sum["requests"])
		}
	}
	return nil
}

func collectCredits(ctx context.Context, c *client, s *provider.Scrape) error {
	var r struct {
		Remain    float64 `json:"remain"`
		Total     float64 `json:"total"`
		Overage   float64 `json:"overage"`
		Used      float64 `json:"used"`
		NextReset string  `json:"next_reset"`
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
	return nil
}

func collectAccount(ctx context.Context, c *client, s *provider.Scrape) error {
	var r struct {
		Type       string  `json:"type"`
		Reputation float64 `json:"reputation"`
	}
	if err := c.get(ctx, "/v3/user/account", nil, &r); err != nil {
		return err
	}
	if r.Type != "" {
		s.Gauge(descAccountInfo, 1, r.Type)
	}
	s.Gauge(descReputation, r.Reputation/100)
	return nil
}

// pages fetches an offset-paged list until a short or empty page. fetch
// returns how many items the page held.
func pages(ctx context.Context, fetch func(ctx context.Context, offset int) (int, error)) error {
	for offset, guard := 0, 0; guard < 10000; guard++ {
		n, err := fetch(ctx, offset)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		offset += n
	}
	return fmt.Errorf("sendgrid: a list did not end after 10000 pages")
}

func pageQuery(offset int) map[string]string {
	return map[string]string{"limit": strconv.Itoa(pageSize), "offset": strconv.Itoa(offset)}
}

func collectTeammates(ctx context.Context, c *client, s *provider.Scrape) error {
	byType := map[string]float64{"owner": 0, "admin": 0, "teammate": 0}
	err := pages(ctx, func(ctx context.Context, offset int) (int, error) {
		var r struct {
			Result []struct {
				UserType string `json:"user_type"`
			} `json:"result"`
			Results []struct {
				UserType string `json:"user_type"`
			} `json:"results"` // the spec's example spelling
		}
		if err := c.get(ctx, "/v3/teammates", pageQuery(offset), &r); err != nil {
			return 0, err
		}
		items := append(r.Result, r.Results...)
		for _, t := range items {
			if t.UserType != "" {
				byType[t.UserType]++
			}
		}
		return len(items), nil
	})
	if err != nil {
		return err
	}
	// Pending invitations are not paged by the API: one answer holds them all.
	var pending struct {
		Result []struct{ Email string } `json:"result"`
	}
	if err := c.get(ctx, "/v3/teammates/pending", nil, &pending); err != nil {
		return err
	}
	for t, n := range byType {
		s.Gauge(descTeammates, n, t)
	}
	s.Gauge(descPending, float64(len(pending.Result)))
	return nil
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

func collectSubusers(ctx context.Context, c *client, s *provider.Scrape) error {
	counts := map[bool]float64{false: 0, true: 0}
	err := pages(ctx, func(ctx context.Context, offset int) (int, error) {
		var r []struct {
			Disabled bool `json:"disabled"`
		}
		if err := c.get(ctx, "/v3/subusers", pageQuery(offset), &r); err != nil {
			return 0, err
		}
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
