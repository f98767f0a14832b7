package twilio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/saas-exporter/saas_exporter/provider"
)

// accountStatuses are the values of saas_twilio_account_status{status}.
var accountStatuses = []string{"active", "suspended", "closed"}

// period is one Usage Records list and its period label. key names the
// period's instance at t (GMT, as Twilio's periods): a new key is a new
// section, so nothing of the last period is kept in it. prevKey is the
// period before.
type period struct {
	list, label string
	key         func(t time.Time) string
	prevKey     func(t time.Time) string
	// every > 0: a closed period, fetched at most that often.
	every time.Duration
}

// closedEvery is how often a closed month (last_month) is fetched again:
// it barely changes (late-rated usage), so every 6 hours, not on every
// collection.
const closedEvery = 6 * time.Hour

// subaccountEvery is how often each subaccount's spend this month is read
// again: one call per subaccount, so up to max_subaccounts calls, every
// 15 minutes rather than on every collection.
const subaccountEvery = 15 * time.Minute

func day(t time.Time) string   { return t.UTC().Format("2006-01-02") }
func month(t time.Time) string { return t.UTC().Format("2006-01") }
func monthBefore(t time.Time) time.Time {
	u := t.UTC()
	return time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
}

var periods = []period{
	{list: "Today", label: "today", key: day, prevKey: func(t time.Time) string { return day(t.UTC().AddDate(0, 0, -1)) }},
	{list: "ThisMonth", label: "this_month", key: month, prevKey: func(t time.Time) string { return month(monthBefore(t)) }},
	{list: "LastMonth", label: "last_month", key: func(t time.Time) string { return month(monthBefore(t)) }, every: closedEvery},
}

func (pr period) section(what string, t time.Time) string {
	return what + ":" + pr.label + ":" + pr.key(t)
}

var (
	descUsageEvents = provider.NewDesc("twilio_usage_events",
		"Number of usage events (calls, messages, …) in the period by Twilio usage category, including the account's subaccounts (periods in GMT; this_month: month to date; last_month: the previous calendar month). A category with no usage is left out unless it had usage in this or the previous period (then 0); totalprice is always there.",
		"category", "period")
	descUsage = provider.NewDesc("twilio_usage",
		"Billable usage in the period by Twilio usage category, including the account's subaccounts, in the unit named by the unit label (minutes, messages, …).",
		"category", "period", "unit")
	descUsagePrice = provider.NewDesc("twilio_usage_price",
		"Price of the usage in the period by Twilio usage category, in the currency named by the currency label; category totalprice is the account's total including its subaccounts' usage. Categories overlap (calls includes calls-inbound): never sum them.",
		"category", "period", "currency")
	descAccountStatus = provider.NewDesc("twilio_account_status",
		"Twilio account status: 1 for the current one (active, suspended, closed), 0 for the others.",
		"status")
	descAccountInfo = provider.NewDesc("twilio_account_info",
		"The connected Twilio account; always 1. type is Full or Trial; parent_account_sid is the parent's SID for a subaccount, empty for a top-level account; account_sid is the account's own SID.",
		"type", "parent_account_sid", "account_sid")
	descBalance = provider.NewDesc("twilio_balance",
		"Balance of the Twilio account in the currency named by the currency label; absent where Twilio does not let the Connect App read it.",
		"currency")
	descPhoneNumbers = provider.NewDesc("twilio_phone_numbers",
		"Incoming phone numbers of the Twilio account.")
	descSubaccounts = provider.NewDesc("twilio_subaccounts",
		"Subaccounts of the Twilio account by status (all of them, also beyond vendors.twilio.max_subaccounts); absent where Twilio does not let these credentials list them.",
		"status")
	descSubaccountSpend = provider.NewDesc("twilio_subaccount_spend",
		"Total price (totalprice) of one subaccount's own usage in the period, in the currency named by the currency label; included in the parent's totalprice. At most vendors.twilio.max_subaccounts subaccounts, in Twilio's list order.",
		"subaccount_sid", "subaccount", "period", "currency")
)

// Collect reads one connected account: the account itself (status, and
// the credential check: any section's 401 20003 says revoked), usage,
// balance, phone numbers and subaccounts, all at once (the engine bounds
// the calls per account, see MaxConcurrentCalls). The subaccount list is
// fetched once per collection and shared; a failing section does not
// hide the others. A cold collection is two round trips deep: the
// subaccounts' spend needs their list.
func (p *Provider) Collect(ctx context.Context, s *provider.Scrape) error {
	sid := s.Conn.AccountID
	if !accountSidRe.MatchString(sid) {
		return errors.New("twilio: the stored connection has no valid Account SID; reconnect it")
	}
	if p.authToken == "" {
		return errors.New("twilio: vendors.twilio.auth_token is not configured; the Connect App owner's auth token is needed to read connected accounts")
	}
	c := p.client(s.HTTP, sid)
	c.subs = shareOnce(func() (subsList, error) {
		subs, refused, err := listSubaccounts(ctx, c)
		return subsList{subs, refused}, err
	})

	sec := func(name string, every time.Duration, run func(context.Context, *client, *provider.Scrape) error) provider.Section {
		return provider.Section{Name: name, Every: every, Run: func(ctx context.Context, s *provider.Scrape) error { return run(ctx, c, s) }}
	}
	secs := []provider.Section{sec("account", 0, collectAccount), sec("balance", 0, collectBalance), sec("phone_numbers", 0, collectPhoneNumbers)}
	for _, pr := range periods {
		secs = append(secs, sec(pr.section("usage", s.Now), pr.every, func(ctx context.Context, c *client, s *provider.Scrape) error {
			return collectUsage(ctx, c, s, pr)
		}))
	}
	secs = append(secs, sec("subaccounts", 0, collectSubaccountCounts))
	for _, pr := range periods[1:] {
		every := max(pr.every, subaccountEvery)
		secs = append(secs, sec(pr.section("subaccount_spend", s.Now), every, func(ctx context.Context, c *client, s *provider.Scrape) error {
			return p.collectSubaccountSpend(ctx, c, s, pr)
		}))
	}
	return revokedIf(s.Sections(ctx, secs...))
}

// MaxConcurrentCalls: Twilio limits each account's concurrent REST calls
// (error 20429, "too many concurrent requests"; the support article on
// 429s gives 100 by default). The account is shared with the customer's
// own traffic, so the exporter stays far below: 16, about one cold
// collection's calls at once.
func (p *Provider) MaxConcurrentCalls() int { return maxConcurrentCalls }

const maxConcurrentCalls = 16

// collectAccount exports the account's status and type.
func collectAccount(ctx context.Context, c *client, s *provider.Scrape) error {
	acct, err := c.fetchAccount(ctx)
	if err != nil {
		return err
	}
	for _, st := range accountStatuses {
		v := 0.0
		if st == acct.Status {
			v = 1
		}
		s.Gauge(descAccountStatus, v, st)
	}
	s.Gauge(descAccountInfo, 1, accountType(acct.Type), provider.Label(acct.parent()), c.sid)
	return nil
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

func (d *decimal) UnmarshalJSON(b []byte) error { return d.parse(b) }

// UnmarshalJSONFrom reads the value in place (encoding/json/v2 would
// copy it for UnmarshalJSON); a usage page holds three per record.
func (d *decimal) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	b, err := dec.ReadValue()
	if err != nil {
		return err
	}
	return d.parse(b)
}

func (d *decimal) parse(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	text := b
	if len(b) > 0 && b[0] == '"' {
		if len(b) >= 2 && b[len(b)-1] == '"' && bytes.IndexByte(b, '\\') < 0 {
			text = b[1 : len(b)-1]
		} else {
			var s string
			if err := provider.Unmarshal(b, &s); err != nil {
				return err
			}
			text = []byte(s)
		}
		text = bytes.TrimSpace(text)
		if len(text) == 0 {
			return nil
		}
	}
	v, err := strconv.ParseFloat(string(text), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		d.bad = string(text)
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

// fetchUsage reads Usage/Records/{list}.json of c's account, every page.
func fetchUsage(ctx context.Context, c *client, list string, q url.Values) ([]usageRecord, error) {
	q.Set("PageSize", strconv.Itoa(pageSize))
	first := "/2010-04-01/Accounts/" + c.sid + "/Usage/Records/" + list + ".json?" + q.Encode()
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
	return records, err
}

// collectUsage reads the account's usage in period pr, its subaccounts'
// included (IncludeSubaccounts=true, Twilio's default, sent explicitly so
// the figure's meaning does not rest on a default).
func collectUsage(ctx context.Context, c *client, s *provider.Scrape, pr period) error {
	records, err := fetchUsage(ctx, c, pr.list, url.Values{"IncludeSubaccounts": {"true"}})
	if err != nil {
		return err
	}
	// Categories that had usage in this period or the one before stay, at
	// 0, until this period ends: a series that vanishes at midnight or on
	// the 1st breaks rate(), increase() and "spend today" panels. A closed
	// period is what it is.
	var keep map[string]bool
	if pr.every == 0 {
		keep = usedCategories(s.Previous[pr.section("usage", s.Now)], false)
		for cat := range usedCategories(s.Previous["usage:"+pr.label+":"+pr.prevKey(s.Now)], true) {
			keep[cat] = true
		}
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
				bad = append(bad, fmt.Sprintf("%s %s %q", clip(r.Category), d.name, clip(d.v.bad)))
			}
		}
		cat := provider.Label(r.Category)
		// Twilio lists every category it has, most of them unused:
		// leave those out, but keep the total and the ones kept above.
		if r.Category != "totalprice" && !keep[cat] && r.Count.v == 0 && r.Usage.v == 0 && r.Price.v == 0 {
			continue
		}
		if r.Count.ok {
			s.Gauge(descUsageEvents, r.Count.v, cat, pr.label)
		}
		if r.Usage.ok {
			s.Gauge(descUsage, r.Usage.v, cat, pr.label, provider.Label(r.UsageUnit))
		}
		if r.Price.ok {
			s.Gauge(descUsagePrice, r.Price.v, cat, pr.label, provider.Label(strings.ToUpper(r.PriceUnit)))
		}
		if r.Price.ok && r.Category == "totalprice" && pr.label == "this_month" && strings.EqualFold(r.PriceUnit, budgetUnit) {
			s.MonthToDate(budgetUnit, r.Price.v)
		}
	}
	if len(bad) > 0 {
		if len(bad) > 5 {
			bad = append(bad[:5], fmt.Sprintf("and %d more", len(bad)-5))
		}
		return fmt.Errorf("%s: usage records (%s) with values that are not numbers, left out: %s", vendor, pr.list, strings.Join(bad, ", "))
	}
	return nil
}

// usedCategories returns the categories of a section's usage series;
// with nonZero, only those with a value other than 0.
func usedCategories(r provider.SectionResult, nonZero bool) map[string]bool {
	return labelValues(r, nil, "category", nonZero)
}

// labelValues returns the values of label l in a section's series of desc
// (nil: the usage descs); with nonZero, only of series other than 0.
func labelValues(r provider.SectionResult, desc *prometheus.Desc, l string, nonZero bool) map[string]bool {
	out := map[string]bool{}
	for _, m := range r.Metrics {
		d := m.Desc()
		if desc != nil && d != desc || desc == nil && d != descUsageEvents && d != descUsage && d != descUsagePrice {
			continue
		}
		if v, val, ok := provider.LabelValue(m, l); ok && (!nonZero || val != 0) {
			out[v] = true
		}
	}
	return out
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

type accountsPage struct {
	NextPageURI *string   `json:"next_page_uri"`
	Accounts    []account `json:"accounts"`
}

// listSubaccounts reads GET Accounts.json, every page: the accounts
// "belonging to the account used to make the request". The docs do not
// say whether the account itself is listed; it is left out either way.
// refused: Twilio does not let these credentials list accounts (401 or
// 403), a property of the account, not a failure.
func listSubaccounts(ctx context.Context, c *client) (subs []account, refused bool, err error) {
	first := "/2010-04-01/Accounts.json?" + url.Values{"PageSize": {strconv.Itoa(pageSize)}}.Encode()
	err = c.list(ctx, first, func(ctx context.Context, uri string) (string, error) {
		var pg accountsPage
		if err := c.get(ctx, uri, &pg); err != nil {
			return "", err
		}
		for _, a := range pg.Accounts {
			if !strings.EqualFold(a.Sid, c.user) {
				subs = append(subs, a)
			}
		}
		if pg.NextPageURI == nil {
			return "", nil
		}
		return *pg.NextPageURI, nil
	})
	if st := provider.StatusOf(err); st == http.StatusUnauthorized || st == http.StatusForbidden {
		return nil, true, nil
	}
	return subs, false, err
}

// subsList is listSubaccounts' answer, shared by a collection's sections.
type subsList struct {
	subs    []account
	refused bool
}

// shareOnce runs f once for every caller. Unlike sync.OnceValues the
// others wait on a channel, which synctest (the round-trip test) counts as
// durably blocked. A panic in f is the first caller's; the others get an
// error.
func shareOnce(f func() (subsList, error)) func() (subsList, error) {
	var (
		mu      sync.Mutex
		started bool
		done    = make(chan struct{})
		v       subsList
		err     = fmt.Errorf("%s: listing the subaccounts failed", vendor)
	)
	return func() (subsList, error) {
		mu.Lock()
		first := !started
		started = true
		mu.Unlock()
		if first {
			defer close(done)
			v, err = f()
			return v, err
		}
		<-done
		return v, err
	}
}

// subaccounts lists the subaccounts once per collection (c.subs), or
// itself for a client made outside Collect.
func (c *client) subaccounts(ctx context.Context) ([]account, bool, error) {
	if c.subs == nil {
		return listSubaccounts(ctx, c)
	}
	l, err := c.subs()
	return l.subs, l.refused, err
}

// accountType keeps saas_twilio_account_info{type} to Twilio's documented
// account types; anything else is "other".
func accountType(t string) string {
	switch t {
	case "Full", "Trial":
		return t
	}
	return "other"
}

// collectSubaccountCounts exports the subaccounts by status; nothing
// where Twilio refuses the listing.
func collectSubaccountCounts(ctx context.Context, c *client, s *provider.Scrape) error {
	subs, refused, err := c.subaccounts(ctx)
	if err != nil || refused {
		return err
	}
	n := map[string]int{}
	for _, a := range subs {
		n[provider.Label(a.Status)]++
	}
	for _, st := range accountStatuses {
		s.Gauge(descSubaccounts, float64(n[st]), st)
		delete(n, st)
	}
	other := 0
	for _, k := range n { // statuses Twilio has not documented
		other += k
	}
	if other > 0 {
		s.Gauge(descSubaccounts, float64(other), "other")
	}
	return nil
}

// collectSubaccountSpend exports each subaccount's own totalprice in
// period pr (IncludeSubaccounts=false), for at most max_subaccounts of
// them in Twilio's list order; nothing where Twilio refuses the listing.
// Subaccounts this section has no value for yet go first, so a first
// collection cut short by the deadline is completed by the next ones.
func (p *Provider) collectSubaccountSpend(ctx context.Context, c *client, s *provider.Scrape, pr period) error {
	subs, refused, err := c.subaccounts(ctx)
	if err != nil || refused {
		return err
	}
	subs = missingFirst(subs[:min(len(subs), p.maxSubaccounts)],
		labelValues(s.Previous[pr.section("subaccount_spend", s.Now)], descSubaccountSpend, "subaccount_sid", false))
	// A few workers take the subaccounts in that order (the engine bounds
	// the calls per account anyway).
	errs := make([]error, len(subs))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next int
	)
	for range min(spendWorkers, len(subs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= len(subs) || ctx.Err() != nil {
					return
				}
				func() {
					defer provider.Recover("twilio subaccount spend", &errs[i])
					errs[i] = subaccountSpend(ctx, c.subaccount(subs[i].Sid), s, subs[i], pr)
				}()
			}
		}()
	}
	wg.Wait()
	if len(subs) > 0 && ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("%s: subaccount spend (%s) not finished: %w", vendor, pr.label, ctx.Err()))
	}
	var failed []error
	for _, e := range errs {
		if e != nil {
			failed = append(failed, e)
		}
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return failed[0]
	}
	return fmt.Errorf("%w (and %d more subaccounts failed)", failed[0], len(failed)-1)
}

// spendWorkers is how many subaccounts' spend is read at once.
const spendWorkers = 4

// missingFirst orders subs so that those without a value (not in have)
// come first, otherwise keeping Twilio's order.
func missingFirst(subs []account, have map[string]bool) []account {
	out := slices.Clone(subs)
	slices.SortStableFunc(out, func(a, b account) int {
		switch {
		case have[a.Sid] == have[b.Sid]:
			return 0
		case have[b.Sid]:
			return -1
		}
		return 1
	})
	return out
}

// subaccountSpend exports one subaccount's totalprice in pr. Twilio
// refusing it (401, 403, 404: these credentials may list the subaccount
// but not read it) leaves it out without failing; this is not the
// connection's own credential failing, so never a revocation.
func subaccountSpend(ctx context.Context, c *client, s *provider.Scrape, a account, pr period) error {
	if !accountSidRe.MatchString(a.Sid) {
		return fmt.Errorf("%s: the account list has a subaccount without a valid SID (%q)", vendor, clip(a.Sid))
	}
	records, err := fetchUsage(ctx, c, pr.list, url.Values{"Category": {"totalprice"}, "IncludeSubaccounts": {"false"}})
	switch provider.StatusOf(err) {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return nil
	}
	if err != nil {
		return fmt.Errorf("subaccount %s: %w", a.Sid, err) // never a 401: see above
	}
	for _, r := range records {
		if r.Category != "totalprice" {
			continue
		}
		if !r.Price.ok {
			return fmt.Errorf("%s: subaccount %s: totalprice of %s has no price (%q)", vendor, a.Sid, pr.list, clip(r.Price.bad))
		}
		s.Gauge(descSubaccountSpend, r.Price.v, a.Sid, provider.Label(a.FriendlyName), pr.label, provider.Label(strings.ToUpper(r.PriceUnit)))
		return nil
	}
	// An empty answer is not a zero.
	return fmt.Errorf("%s: subaccount %s: Usage Records %s has no totalprice record", vendor, a.Sid, pr.list)
}
