package twilio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/saas-exporter/saas_exporter/provider"
)

// AccountStatuses are the values of saas_twilio_account_status{status}.
var AccountStatuses = []string{"active", "suspended", "closed"}

// Periods maps the Usage Records list to the period label.
var periods = []struct{ list, label string }{{"Today", "today"}, {"ThisMonth", "this_month"}}

var (
	descUsageEvents = provider.NewDesc("twilio_usage_events",
		"Number of usage events (calls, messages, …) in the period by Twilio usage category (periods in GMT; this_month: month to date). Categories with no usage are left out, except totalprice.",
		"category", "period")
	descUsage = provider.NewDesc("twilio_usage",
		"Billable usage in the period by Twilio usage category, in the unit named by the unit label (minutes, messages, …).",
		"category", "period", "unit")
	descUsagePrice = provider.NewDesc("twilio_usage_price",
		"Price of the usage in the period by Twilio usage category, in the currency named by the currency label; category totalprice is the account's total.",
		"category", "period", "currency")
	descAccountStatus = provider.NewDesc("twilio_account_status",
		"Twilio account status: 1 for the current one (active, suspended, closed), 0 for the others.",
		"status")
	descBalance = provider.NewDesc("twilio_balance",
		"Balance of the Twilio account in the currency named by the currency label; absent where Twilio does not let the Connect App read it.",
		"currency")
	descPhoneNumbers = provider.NewDesc("twilio_phone_numbers",
		"Incoming phone numbers of the Twilio account.")
)

// Collect reads one connected account: the account itself (the credential
// check), then usage, balance and phone numbers concurrently (the engine
// bounds calls per account). A failing section does not hide the others.
func (p *Provider) Collect(ctx context.Context, s *provider.Scrape) error {
	sid := s.Conn.AccountID
	if !accountSidRe.MatchString(sid) {
		return errors.New("twilio: the stored connection has no valid Account SID; reconnect it")
	}
	if p.authToken == "" {
		return errors.New("twilio: vendors.twilio.auth_token is not configured; the Connect App owner's auth token is needed to read connected accounts")
	}
	c := p.client(s.HTTP, sid)
	acct, err := c.fetchAccount(ctx)
	if err != nil {
		return revokedIf(err)
	}
	for _, st := range AccountStatuses {
		v := 0.0
		if st == acct.Status {
			v = 1
		}
		s.Gauge(descAccountStatus, v, st)
	}

	sec := func(name string, run func(context.Context, *client, *provider.Scrape) error) provider.Section {
		return provider.Section{Name: name, Run: func(ctx context.Context, s *provider.Scrape) error { return run(ctx, c, s) }}
	}
	secs := []provider.Section{sec("balance", collectBalance), sec("phone_numbers", collectPhoneNumbers)}
	for _, per := range periods {
		secs = append(secs, sec("usage_"+per.label, func(ctx context.Context, c *client, s *provider.Scrape) error {
			return collectUsage(ctx, c, s, per.list, per.label)
		}))
	}
	return revokedIf(s.Sections(ctx, secs...))
}

// revokedIf marks err revoked when Twilio refused the credential: 401 with
// code 20003 ("Authenticate"), which is what a deauthorized Connect App
// gets.
func revokedIf(err error) error {
	if err == nil {
		return nil
	}
	var he *provider.HTTPError
	check := func(e error) bool {
		return errors.As(e, &he) && he.Status == http.StatusUnauthorized && he.Code == "20003"
	}
	if check(err) {
		return provider.Revoked(err)
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if check(e) {
				return provider.Revoked(err)
			}
		}
	}
	return err
}

// decimal is one of Twilio's numbers, which arrive as JSON strings
// ("2192.84855") or, in places, as numbers. It keeps float64 precision.
type decimal struct {
	v   float64
	ok  bool   // a value was present
	bad string // the text, when it is not a number
}

func (d *decimal) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	text := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &text); err != nil {
			return err
		}
		text = strings.TrimSpace(text)
		if text == "" {
			return nil
		}
	}
	v, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		d.bad = text
		return nil
	}
	d.v, d.ok = v, true
	return nil
}

type usageRecord struct {
	Category  string  `json:"category"`
	Count     decimal `json:"count"`
	Usage     decimal `json:"usage"`
	UsageUnit string  `json:"usage_unit"`
	Price     decimal `json:"price"`
	PriceUnit string  `json:"price_unit"`
}

type usagePage struct {
	NextPageURI  *string       `json:"next_page_uri"`
	UsageRecords []usageRecord `json:"usage_records"`
}

// collectUsage reads Usage/Records/{list}.json, every page.
func collectUsage(ctx context.Context, c *client, s *provider.Scrape, list, period string) error {
	first := "/2010-04-01/Accounts/" + c.sid + "/Usage/Records/" + list + ".json?" + url.Values{"PageSize": {strconv.Itoa(pageSize)}}.Encode()
	var records []usageRecord
	err := c.list(ctx, first, func(ctx context.Context, uri string) (string, error) {
		var pg usagePage
		if err := c.get(ctx, uri, &pg); err != nil {
			return "", err
		}
		records = append(records, pg.UsageRecords...)
		if pg.NextPageURI == nil {
			return "", nil
		}
		return *pg.NextPageURI, nil
	})
	if err != nil {
		return err
	}
	var bad []string
	seen := map[string]bool{}
	for _, r := range records {
		if r.Category == "" || seen[r.Category] {
			continue // one series per category; Twilio lists each once
		}
		seen[r.Category] = true
		for _, d := range []struct {
			name string
			v    decimal
		}{{"count", r.Count}, {"usage", r.Usage}, {"price", r.Price}} {
			if d.v.bad != "" {
				bad = append(bad, fmt.Sprintf("%s %s %q", r.Category, d.name, clip(d.v.bad)))
			}
		}
		// Twilio lists every category it has, most of them unused:
		// leave those out, but keep the total.
		if r.Category != "totalprice" && r.Count.v == 0 && r.Usage.v == 0 && r.Price.v == 0 {
			continue
		}
		if r.Count.ok {
			s.Gauge(descUsageEvents, r.Count.v, r.Category, period)
		}
		if r.Usage.ok {
			s.Gauge(descUsage, r.Usage.v, r.Category, period, r.UsageUnit)
		}
		if r.Price.ok {
			s.Gauge(descUsagePrice, r.Price.v, r.Category, period, strings.ToUpper(r.PriceUnit))
		}
		if r.Price.ok && r.Category == "totalprice" && period == "this_month" && strings.EqualFold(r.PriceUnit, budgetUnit) {
			s.MonthToDate(budgetUnit, r.Price.v)
		}
	}
	if len(bad) > 0 {
		if len(bad) > 5 {
			bad = append(bad[:5], fmt.Sprintf("and %d more", len(bad)-5))
		}
		return fmt.Errorf("%s: usage records (%s) with values that are not numbers, left out: %s", vendor, list, strings.Join(bad, ", "))
	}
	return nil
}

func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

// collectBalance: Twilio lets only some accounts' balance be read (not,
// for example, a subaccount's); 401, 403 and 404 here leave the metric out
// without failing the connection.
func collectBalance(ctx context.Context, c *client, s *provider.Scrape) error {
	bal, cur, err := c.fetchBalance(ctx)
	if err != nil {
		switch provider.StatusOf(err) {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
			return nil
		}
		return err
	}
	var d decimal
	if err := d.UnmarshalJSON([]byte(strconv.Quote(bal))); err != nil || !d.ok {
		if bal == "" {
			return nil // "Child accounts do not contain balance information"
		}
		return fmt.Errorf("%s: balance %q is not a number", vendor, clip(bal))
	}
	s.Gauge(descBalance, d.v, strings.ToUpper(cur))
	return nil
}

type numbersPage struct {
	NextPageURI *string    `json:"next_page_uri"`
	Numbers     []struct{} `json:"incoming_phone_numbers"`
}

func collectPhoneNumbers(ctx context.Context, c *client, s *provider.Scrape) error {
	first := "/2010-04-01/Accounts/" + c.sid + "/IncomingPhoneNumbers.json?" + url.Values{"PageSize": {strconv.Itoa(pageSize)}}.Encode()
	n := 0
	err := c.list(ctx, first, func(ctx context.Context, uri string) (string, error) {
		var pg numbersPage
		if err := c.get(ctx, uri, &pg); err != nil {
			return "", err
		}
		n += len(pg.Numbers)
		if pg.NextPageURI == nil {
			return "", nil
		}
		return *pg.NextPageURI, nil
	})
	if err != nil {
		return err
	}
	s.Gauge(descPhoneNumbers, float64(n))
	return nil
}
