package vendorsim

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// SendGrid test API keys, shaped like real ones ("SG." + 22 + "." + 43
// characters; the 22-character part is the key's api_key_id, as at SendGrid).
const (
	// SendGridKeyAcme: account "acme", type paid, reputation 99.5, every
	// scope the exporter reads, plus mail.send and user.username.read.
	SendGridKeyAcme = "SG.vendorsimAcmeTestKey01.notARealSecretAcmeUseWithVendorsimOnly00001"
	// SendGridKeyBeta: account "beta", type free, reputation 87.25, scopes
	// stats.read, user.account.read and mail.send only.
	SendGridKeyBeta = "SG.vendorsimBetaTestKey02.notARealSecretBetaUseWithVendorsimOnly00002"
	// SendGridKeyEuro: account "euro", pinned to the EU region: it answers
	// only at the EU host (/sendgrid-eu), and the global host refuses it
	// with 401 as it refuses an unknown key. Paid, credits reset weekly,
	// every scope the exporter reads except the subuser ones (it is not a
	// parent account).
	SendGridKeyEuro = "SG.vendorsimEuroTestKey03.notARealSecretEuroUseWithVendorsimOnly00003"
)

// SendGrid regions as the API names them (subusers' region, hosts).
const (
	SendGridRegionGlobal = "global"
	SendGridRegionEU     = "eu"
)

// SendGridRateLimit is the X-RateLimit-Limit the simulator reports: calls
// per key per minute. Running out only shows in X-RateLimit-Remaining (0);
// use the RateLimit fault for 429s, so tests with a frozen clock never
// throttle by accident.
const SendGridRateLimit = 600

// sendGridVendor is the vendor name for faults and call counts.
const sendGridVendor = "sendgrid"

// SendGridTeammate is one item of GET /v3/teammates.
type SendGridTeammate struct {
	Username  string `json:"username"`
	Email     string `json:"email"`
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	UserType  string `json:"user_type"` // owner, admin, teammate
	IsAdmin   bool   `json:"is_admin"`
}

// SendGridPendingTeammate is one item of GET /v3/teammates/pending. The
// answer adds expiration_date: midnight UTC ExpiresInDays days after the
// simulator's today, so 0 or less is an invitation that has expired (the
// spec: an invitation is valid for 7 days unless resent).
type SendGridPendingTeammate struct {
	Email         string   `json:"email"`
	Scopes        []string `json:"scopes"`
	IsAdmin       bool     `json:"is_admin"`
	Token         string   `json:"token"`
	ExpiresInDays int      `json:"-"`
}

// SendGridAPIKey is one item of GET /v3/api_keys.
type SendGridAPIKey struct {
	APIKeyID string `json:"api_key_id"`
	Name     string `json:"name"`
}

// SendGridSubuser is one item of GET /v3/subusers, with the data behind
// its stats (GET /v3/subusers/stats/sums) and credits.
type SendGridSubuser struct {
	Disabled bool   `json:"disabled"`
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Email    string `json:"email"`
	Region   string `json:"region,omitempty"` // global or eu; sent only with include_region=true
	// Credits is what GET /v3/subusers/{name}/credits describes.
	Credits SendGridSubuserCredits `json:"-"`
	// Daily requests are RequestsBase + RequestsStep*day-of-month + month;
	// both 0: the subuser sends nothing.
	RequestsBase, RequestsStep int64 `json:"-"`
}

// SendGridSubuserCredits is a subuser's own credit allocation.
type SendGridSubuserCredits struct {
	// Type: unlimited (no allocation: remain, total, used are null),
	// recurring (Total per ResetFrequency cycle), nonrecurring (Remain
	// left, no cycle; total and used are null).
	Type           string
	ResetFrequency string // monthly, weekly, daily; recurring only
	Total          int64  // recurring
	Remain         int64  // nonrecurring
}

// SendGridAccount is the fixed data behind one test key.
type SendGridAccount struct {
	Name         string
	Type         string // free, paid
	Reputation   float64
	UserID       int64 // GET /v3/user/username (scope user.username.read) answers Name and UserID
	Scopes       []string
	CreditsTotal int64 // credits per cycle; see SendGridCreditsAt
	// ResetFrequency is the credit cycle: monthly (default; resets on the
	// 1st), weekly (on Mondays) or daily.
	ResetFrequency string
	// Region is where the account is pinned: "" or global (the global
	// host answers it), or eu (only the EU host does).
	Region           string
	Teammates        []SendGridTeammate
	PendingTeammates []SendGridPendingTeammate
	APIKeys          []SendGridAPIKey
	Subusers         []SendGridSubuser

	// Daily requests are requestsBase + requestsStep*day-of-month + month.
	requestsBase, requestsStep int64
}

func (a *SendGridAccount) hasScope(scope string) bool { return slices.Contains(a.Scopes, scope) }

var sendGridAccounts = map[string]*SendGridAccount{
	SendGridKeyAcme: {
		Name:       "acme",
		Type:       "paid",
		Reputation: 99.5,
		UserID:     4242001,
		Scopes: []string{"stats.read", "user.credits.read", "user.account.read", "teammates.read",
			"api_keys.read", "subusers.read", "subusers.stats.sums.read", "subusers.credits.read", "mail.send", "user.username.read"},
		CreditsTotal: 50000,
		// Mixed order so every page of 3 holds several user types.
		Teammates: []SendGridTeammate{
			{"acme-owner", "owner@acme.example", "Olivia", "Owner", "owner", true},
			{"acme-dev1", "dev1@acme.example", "Dana", "Dev", "teammate", false},
			{"acme-admin1", "admin1@acme.example", "Ada", "Admin", "admin", true},
			{"acme-dev2", "dev2@acme.example", "Dev", "Two", "teammate", false},
			{"acme-dev3", "dev3@acme.example", "Dev", "Three", "teammate", false},
			{"acme-admin2", "admin2@acme.example", "Alan", "Admin", "admin", true},
			{"acme-support", "support@acme.example", "Sam", "Support", "teammate", false},
		},
		// Two live invitations and one that expired two days ago.
		PendingTeammates: []SendGridPendingTeammate{
			{Email: "new-dev@acme.example", Scopes: []string{"stats.read", "mail.send"}, Token: "acmePendingToken0001", ExpiresInDays: 3},
			{Email: "new-admin@acme.example", Scopes: []string{}, IsAdmin: true, Token: "acmePendingToken0002", ExpiresInDays: 6},
			{Email: "old-contractor@acme.example", Scopes: []string{"stats.read"}, Token: "acmePendingToken0003", ExpiresInDays: -2},
		},
		APIKeys: []SendGridAPIKey{
			{"vendorsimAcmeTestKey01", "saas_exporter (vendorsim)"},
			{"acmeMailSendKeyId00002", "Mail Send"},
			{"acmeMarketingKeyId0003", "Marketing Campaigns"},
			{"acmeZapierKeyId0000004", "Zapier"},
			{"acmeOldCIKeyId00000005", "Old CI key"},
		},
		// acme is a parent: most of its mail goes through subusers, whose
		// stats are not in the parent's GET /v3/stats. By requests:
		// transactional > marketing > eu > legacy = trial (disabled, 0).
		Subusers: []SendGridSubuser{
			{Username: "acme-marketing", ID: 1001, Email: "marketing@acme.example", Region: "global",
				Credits:      SendGridSubuserCredits{Type: "recurring", ResetFrequency: "monthly", Total: 100000},
				RequestsBase: 3000, RequestsStep: 20},
			{Username: "acme-legacy", ID: 1002, Email: "legacy@acme.example", Region: "global", Disabled: true,
				Credits: SendGridSubuserCredits{Type: "nonrecurring", Remain: 500}},
			{Username: "acme-eu", ID: 1003, Email: "eu@acme.example", Region: "eu",
				Credits:      SendGridSubuserCredits{Type: "unlimited"},
				RequestsBase: 800, RequestsStep: 5},
			{Username: "acme-transactional", ID: 1004, Email: "tx@acme.example", Region: "global",
				Credits:      SendGridSubuserCredits{Type: "recurring", ResetFrequency: "weekly", Total: 60000},
				RequestsBase: 5000, RequestsStep: 30},
			{Username: "acme-trial", ID: 1005, Email: "trial@acme.example", Region: "global", Disabled: true,
				Credits: SendGridSubuserCredits{Type: "recurring", ResetFrequency: "daily", Total: 100}},
		},
		requestsBase: 2000, requestsStep: 10,
	},
	SendGridKeyBeta: {
		Name:         "beta",
		Type:         "free",
		Reputation:   87.25,
		UserID:       4242002,
		Scopes:       []string{"stats.read", "user.account.read", "mail.send"},
		CreditsTotal: 4000,
		Teammates: []SendGridTeammate{
			{"beta-owner", "owner@beta.example", "Bea", "Owner", "owner", true},
		},
		PendingTeammates: []SendGridPendingTeammate{},
		APIKeys:          []SendGridAPIKey{{"vendorsimBetaTestKey02", "saas_exporter (vendorsim)"}},
		Subusers:         []SendGridSubuser{},
		requestsBase:     100, requestsStep: 1,
	},
	SendGridKeyEuro: {
		Name:       "euro",
		Type:       "paid",
		Reputation: 97,
		UserID:     4242003,
		Region:     SendGridRegionEU,
		Scopes: []string{"stats.read", "user.credits.read", "user.account.read", "teammates.read",
			"api_keys.read", "mail.send", "user.username.read"},
		CreditsTotal:   10000,
		ResetFrequency: "weekly",
		Teammates: []SendGridTeammate{
			{"euro-owner", "owner@euro.example", "Eva", "Owner", "owner", true},
			{"euro-dev", "dev@euro.example", "Emil", "Dev", "teammate", false},
		},
		PendingTeammates: []SendGridPendingTeammate{
			{Email: "late@euro.example", Scopes: []string{"stats.read"}, Token: "euroPendingToken0001", ExpiresInDays: -5},
		},
		APIKeys:      []SendGridAPIKey{{"vendorsimEuroTestKey03", "saas_exporter (vendorsim)"}},
		Subusers:     []SendGridSubuser{},
		requestsBase: 400, requestsStep: 3,
	},
}

// SendGridAccountFor returns a copy of the data behind a test key (fixed
// or synthetic, see SendGridSyntheticKey).
func SendGridAccountFor(key string) (SendGridAccount, bool) {
	a, ok := sendGridAccount(key)
	if !ok {
		return SendGridAccount{}, false
	}
	c := *a
	c.Scopes = slices.Clone(a.Scopes)
	c.Teammates = slices.Clone(a.Teammates)
	c.PendingTeammates = slices.Clone(a.PendingTeammates)
	for i := range c.PendingTeammates {
		c.PendingTeammates[i].Scopes = slices.Clone(c.PendingTeammates[i].Scopes)
	}
	c.APIKeys = slices.Clone(a.APIKeys)
	c.Subusers = slices.Clone(a.Subusers)
	return c, true
}

// sendGridMetrics are the 16 metrics of GET /v3/stats, in the spec's order
// (which is alphabetical, the order encoding/json gives a map's keys).
var sendGridMetrics = []string{
	"blocks", "bounce_drops", "bounces", "clicks", "deferred", "delivered", "invalid_emails", "opens",
	"processed", "requests", "spam_report_drops", "spam_reports", "unique_clicks", "unique_opens",
	"unsubscribe_drops", "unsubscribes",
}

// Indexes of sgMetrics, in sendGridMetrics' order.
const (
	sgBlocks = iota
	sgBounceDrops
	sgBounces
	sgClicks
	sgDeferred
	sgDelivered
	sgInvalidEmails
	sgOpens
	sgProcessed
	sgRequests
	sgSpamReportDrops
	sgSpamReports
	sgUniqueClicks
	sgUniqueOpens
	sgUnsubscribeDrops
	sgUnsubscribes
	sgMetricCount
)

// sgMetrics are the 16 metrics in sendGridMetrics' order. An array, not a
// map: stats are summed over every day of a range on each call, and maps
// made that the simulator's largest CPU cost.
type sgMetrics [sgMetricCount]int64

// sgMetricsJSON is sgMetrics on the wire: the object a map[string]int64
// gave, every name in sorted order. A struct rather than a MarshalJSON
// method, whose output encoding/json parses again.
type sgMetricsJSON struct {
	Blocks           int64 `json:"blocks"`
	BounceDrops      int64 `json:"bounce_drops"`
	Bounces          int64 `json:"bounces"`
	Clicks           int64 `json:"clicks"`
	Deferred         int64 `json:"deferred"`
	Delivered        int64 `json:"delivered"`
	InvalidEmails    int64 `json:"invalid_emails"`
	Opens            int64 `json:"opens"`
	Processed        int64 `json:"processed"`
	Requests         int64 `json:"requests"`
	SpamReportDrops  int64 `json:"spam_report_drops"`
	SpamReports      int64 `json:"spam_reports"`
	UniqueClicks     int64 `json:"unique_clicks"`
	UniqueOpens      int64 `json:"unique_opens"`
	UnsubscribeDrops int64 `json:"unsubscribe_drops"`
	Unsubscribes     int64 `json:"unsubscribes"`
}

func (m sgMetrics) wire() sgMetricsJSON {
	return sgMetricsJSON{m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10], m[11], m[12], m[13], m[14], m[15]}
}

func (m *sgMetrics) add(o sgMetrics) {
	for i := range m {
		m[i] += o[i]
	}
}

func (m sgMetrics) toMap() map[string]int64 {
	out := make(map[string]int64, len(m))
	for i, name := range sendGridMetrics {
		out[name] = m[i]
	}
	return out
}

// sgMetricIndex is the index of a metric name, or -1.
func sgMetricIndex(name string) int { return slices.Index(sendGridMetrics, name) }

// SendGridMetricNames lists the 16 metrics of GET /v3/stats.
func SendGridMetricNames() []string { return slices.Clone(sendGridMetrics) }

// SendGridDayStats returns the stats of one UTC day for a test key (nil
// for an unknown key). Values are consistent: requests = processed + the
// four drop kinds; delivered = processed - bounces - blocks.
func SendGridDayStats(key string, day time.Time) map[string]int64 {
	a, ok := sendGridAccount(key)
	if !ok {
		return nil
	}
	return a.dayStats(day).toMap()
}

func (a *SendGridAccount) dayStats(day time.Time) sgMetrics {
	return sendGridDay(a.requestsBase, a.requestsStep, day)
}

// sendGridDay is one day's stats for daily requests base + step*day +
// month (all 0 when base and step are).
func sendGridDay(base, step int64, day time.Time) sgMetrics {
	day = day.UTC()
	_, month, dom := day.Date()
	req := base + step*int64(dom) + int64(month)
	if base == 0 && step == 0 {
		req = 0
	}
	var m sgMetrics
	m[sgRequests] = req
	m[sgBounceDrops] = req / 200
	m[sgSpamReportDrops] = req / 1000
	m[sgUnsubscribeDrops] = req / 500
	m[sgInvalidEmails] = req / 400
	proc := req - m[sgBounceDrops] - m[sgSpamReportDrops] - m[sgUnsubscribeDrops] - m[sgInvalidEmails]
	m[sgProcessed] = proc
	m[sgBounces] = proc / 100
	m[sgBlocks] = proc / 250
	m[sgDeferred] = proc / 50
	del := proc - m[sgBounces] - m[sgBlocks]
	m[sgDelivered] = del
	m[sgUniqueOpens] = del * 35 / 100
	m[sgOpens] = m[sgUniqueOpens] * 3 / 2
	m[sgUniqueClicks] = del * 8 / 100
	m[sgClicks] = m[sgUniqueClicks] * 3 / 2
	m[sgSpamReports] = del / 2000
	m[sgUnsubscribes] = del / 800
	return m
}

// SendGridRangeStats sums SendGridDayStats over the UTC days from start to
// end, both included (nil for an unknown key).
func SendGridRangeStats(key string, start, end time.Time) map[string]int64 {
	a, ok := sendGridAccount(key)
	if !ok {
		return nil
	}
	return a.rangeStats(start, end).toMap()
}

func (a *SendGridAccount) rangeStats(start, end time.Time) sgMetrics {
	return sendGridRange(a.requestsBase, a.requestsStep, start, end)
}

func sendGridRange(base, step int64, start, end time.Time) sgMetrics {
	var sum sgMetrics
	// UTC days are 24 hours long: Add is AddDate(0, 0, 1) without the
	// calendar arithmetic.
	for d, last := utcDay(start), utcDay(end); !d.After(last); d = d.Add(24 * time.Hour) {
		sum.add(sendGridDay(base, step, d))
	}
	return sum
}

// SendGridSubuserRangeStats sums a subuser's stats over the UTC days from
// start to end, both included (nil for an unknown key or subuser).
func SendGridSubuserRangeStats(key, subuser string, start, end time.Time) map[string]int64 {
	a, ok := sendGridAccount(key)
	if !ok {
		return nil
	}
	for _, su := range a.Subusers {
		if su.Username == subuser {
			return sendGridRange(su.RequestsBase, su.RequestsStep, start, end).toMap()
		}
	}
	return nil
}

// SendGridCredits is the answer of GET /v3/user/credits.
type SendGridCredits struct {
	Remain         int64  `json:"remain"`
	Total          int64  `json:"total"`
	Overage        int64  `json:"overage"`
	Used           int64  `json:"used"`
	LastReset      string `json:"last_reset"`
	NextReset      string `json:"next_reset"`
	ResetFrequency string `json:"reset_frequency"`
}

// SendGridCreditsAt returns a test key's credits at now: credits reset at
// the start of each cycle (UTC; monthly: the 1st, weekly: Monday, daily),
// and used is the cycle's requests so far (today included). Acme (50000
// credits a month) runs into overage late in a month.
func SendGridCreditsAt(key string, now time.Time) (SendGridCredits, bool) {
	a, ok := sendGridAccount(key)
	if !ok {
		return SendGridCredits{}, false
	}
	return a.creditsAt(now), true
}

func (a *SendGridAccount) creditsAt(now time.Time) SendGridCredits {
	freq := a.ResetFrequency
	if freq == "" {
		freq = "monthly"
	}
	today := utcDay(now)
	first, next := creditCycle(today, freq)
	used := a.rangeStats(first, today)[sgRequests]
	return SendGridCredits{
		Remain:         max(a.CreditsTotal-used, 0),
		Total:          a.CreditsTotal,
		Overage:        max(used-a.CreditsTotal, 0),
		Used:           used,
		LastReset:      first.Format(dateLayout),
		NextReset:      next.Format(dateLayout),
		ResetFrequency: freq,
	}
}

// creditCycle returns the first day of today's credit cycle and the first
// day of the next one.
func creditCycle(today time.Time, freq string) (first, next time.Time) {
	switch freq {
	case "weekly":
		first = bucketStart(today, "week")
		return first, first.AddDate(0, 0, 7)
	case "daily":
		return today, today.AddDate(0, 0, 1)
	}
	first = bucketStart(today, "month")
	return first, first.AddDate(0, 1, 0)
}

// sgSubuserCredits is the answer of GET /v3/subusers/{name}/credits;
// null where the credit type has no such value.
type sgSubuserCredits struct {
	Type           string  `json:"type"`
	ResetFrequency *string `json:"reset_frequency"`
	Remain         *int64  `json:"remain"`
	Total          *int64  `json:"total"`
	Used           *int64  `json:"used"`
}

func (su SendGridSubuser) creditsAt(now time.Time) sgSubuserCredits {
	c := su.Credits
	out := sgSubuserCredits{Type: c.Type}
	switch c.Type {
	case "recurring":
		today := utcDay(now)
		first, _ := creditCycle(today, c.ResetFrequency)
		used := sendGridRange(su.RequestsBase, su.RequestsStep, first, today)[sgRequests]
		remain := max(c.Total-used, 0)
		total := c.Total
		freq := c.ResetFrequency
		out.ResetFrequency, out.Remain, out.Total, out.Used = &freq, &remain, &total, &used
	case "nonrecurring":
		remain := c.Remain
		out.Remain = &remain
	}
	return out
}

const dateLayout = "2006-01-02"

func utcDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// sendGrid is the simulated SendGrid API, mounted at /sendgrid.
type sendGrid struct {
	s *Server

	mu      sync.Mutex
	revoked map[string]bool
	windows map[string]*rateWindow // by account name; "" for callers without a valid key
}

type rateWindow struct {
	start time.Time
	used  int
}

func (s *Server) registerSendGrid() {
	g := &sendGrid{s: s, revoked: map[string]bool{}, windows: map[string]*rateWindow{}}
	s.state[sendGridVendor] = g
	s.Mount(sendGridVendor, "/sendgrid", sgHost{g, SendGridRegionGlobal})
	s.Mount(sendGridVendor, "/sendgrid-eu", sgHost{g, SendGridRegionEU})
	s.control("POST /_sim/sendgrid/revoke", g.serveRevoke(true))
	s.control("POST /_sim/sendgrid/restore", g.serveRevoke(false))
	s.describe(sendGridVendor,
		[]Credential{
			{Label: "API key, account acme (paid, reputation 99.5, every scope the exporter reads)", Value: SendGridKeyAcme},
			{Label: "API key, account beta (free, reputation 87.25, scopes stats.read, user.account.read, mail.send)", Value: SendGridKeyBeta},
			{Label: "API key, account euro (EU-pinned: region eu, answered only under /sendgrid-eu; weekly credits)", Value: SendGridKeyEuro},
			{Label: "API key of synthetic account 1, acme-like; any number exist: SG.vendorsimGen + 10 digits + the same padding", Value: SendGridSyntheticKey(1)},
		},
		[]string{
			"POST /_sim/sendgrid/revoke   form or JSON key=<API key>: the key answers 401 until restored",
			"POST /_sim/sendgrid/restore  form or JSON key=<API key>",
		},
		func(base string) string {
			return "  sendgrid:\n    api_url: " + base + "/sendgrid\n    eu_api_url: " + base + "/sendgrid-eu\n" + sendGridOAuthConfig(base)
		})
}

func (s *Server) sendGrid() *sendGrid { return s.state[sendGridVendor].(*sendGrid) }

// RevokeSendGridKey makes key answer 401 until RestoreSendGridKey.
func (s *Server) RevokeSendGridKey(key string) { s.sendGrid().setRevoked(key, true) }

// RestoreSendGridKey undoes RevokeSendGridKey.
func (s *Server) RestoreSendGridKey(key string) { s.sendGrid().setRevoked(key, false) }

func (g *sendGrid) setRevoked(key string, revoked bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if revoked {
		g.revoked[key] = true
	} else {
		delete(g.revoked, key)
	}
}

func (g *sendGrid) serveRevoke(revoke bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxControlBody)
		var key string
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
			var in struct {
				Key string `json:"key"`
			}
			b, err := io.ReadAll(r.Body)
			if err == nil {
				err = json.Unmarshal(b, &in)
			}
			if err != nil {
				simError(w, http.StatusBadRequest, "the body must be JSON like {\"key\":\"SG....\"}: %v", err)
				return
			}
			key = in.Key
		} else {
			if err := r.ParseForm(); err != nil {
				simError(w, http.StatusBadRequest, "reading the form: %v", err)
				return
			}
			key = r.Form.Get("key")
		}
		key = strings.TrimSpace(key)
		if key == "" {
			simError(w, http.StatusBadRequest, "missing key: send form field key=<API key> or JSON {\"key\":\"...\"}")
			return
		}
		a, ok := sendGridAccount(key)
		if !ok {
			// Never echo the key: whatever was pasted may be a real one.
			simError(w, http.StatusNotFound, "not a SendGrid test key of this simulator; the test keys are listed on the index page /")
			return
		}
		g.setRevoked(key, revoke)
		writeJSON(w, http.StatusOK, map[string]any{"vendor": sendGridVendor, "account": a.Name, "revoked": revoke})
	}
}

// sgField is the "field" of a SendGrid error: null or a parameter name.
type sgField = *string

type sgErrorItem struct {
	Field   sgField `json:"field"`
	Message string  `json:"message"`
}

// sgError answers SendGrid's error shape {"errors":[{"field":..,"message":..}]}.
func sgError(w http.ResponseWriter, status int, field, message string) {
	var f sgField
	if field != "" {
		f = &field
	}
	writeJSON(w, status, map[string][]sgErrorItem{"errors": {{Field: f, Message: message}}})
}

// WriteFault answers a fault in SendGrid's shape: 429 with X-RateLimit-*
// (Remaining 0, Reset when the fault says), 5xx with the error body.
func (g *sendGrid) WriteFault(w http.ResponseWriter, r *http.Request, e FaultError) {
	if e.Status == http.StatusTooManyRequests {
		h := w.Header()
		h.Set("X-RateLimit-Limit", strconv.Itoa(SendGridRateLimit))
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", strconv.FormatInt(ceilUnix(e.Reset), 10))
		sgError(w, e.Status, "", "too many requests")
		return
	}
	a, _ := g.authenticate(r)
	g.rateHeaders(w, a)
	// No "field" here: the specs' 500 answers (scopes example, api_keys
	// GlobalError500 schema) carry only a message.
	writeJSON(w, e.Status, map[string][]map[string]string{
		"errors": {{"message": strings.ToLower(http.StatusText(e.Status))}},
	})
}

func ceilUnix(t time.Time) int64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return sec
}

// authenticate returns the account of the request's bearer key, or nil
// with a reason for the 401 (missing, malformed, unknown or revoked key).
func (g *sendGrid) authenticate(r *http.Request) (*SendGridAccount, string) {
	h := r.Header.Get("Authorization")
	scheme, key, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, "missing or non-Bearer Authorization header"
	}
	key = strings.TrimSpace(key)
	a, ok := sendGridAccount(key)
	if !ok {
		// An access token from the simulator's OAuth server (oauth.go).
		if a, why := g.oauthAccount(key); a != nil || why != "" {
			return a, why
		}
		return nil, "unknown key"
	}
	g.mu.Lock()
	revoked := g.revoked[key]
	g.mu.Unlock()
	if revoked {
		return nil, "revoked key"
	}
	return a, ""
}

// rateHeaders counts a call in the caller's minute window and sets
// SendGrid's X-RateLimit-* headers.
func (g *sendGrid) rateHeaders(w http.ResponseWriter, a *SendGridAccount) {
	name := ""
	if a != nil {
		name = a.Name
	}
	start := g.s.now().UTC().Truncate(time.Minute)
	g.mu.Lock()
	win := g.windows[name]
	if win == nil || !win.start.Equal(start) {
		win = &rateWindow{start: start}
		g.windows[name] = win
	}
	win.used++
	remaining := max(SendGridRateLimit-win.used, 0)
	g.mu.Unlock()
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(SendGridRateLimit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(start.Add(time.Minute).Unix(), 10))
}

type sgRoute struct {
	scope string // "" = any valid key
	serve func(g *sendGrid, w http.ResponseWriter, r *http.Request, a *SendGridAccount)
}

var sendGridRoutes = map[string]sgRoute{
	"/v3/scopes":              {"", (*sendGrid).serveScopes},
	"/v3/stats":               {"stats.read", (*sendGrid).serveStats},
	"/v3/user/credits":        {"user.credits.read", (*sendGrid).serveCredits},
	"/v3/user/account":        {"user.account.read", (*sendGrid).serveAccount},
	"/v3/user/username":       {"user.username.read", (*sendGrid).serveUsername},
	"/v3/teammates":           {"teammates.read", (*sendGrid).serveTeammates},
	"/v3/teammates/pending":   {"teammates.read", (*sendGrid).servePending},
	"/v3/api_keys":            {"api_keys.read", (*sendGrid).serveAPIKeys},
	"/v3/subusers":            {"subusers.read", (*sendGrid).serveSubusers},
	"/v3/subusers/stats/sums": {"subusers.stats.sums.read", (*sendGrid).serveSubuserSums},
}

// sgSubuserCreditsRoute is GET /v3/subusers/{subuser_name}/credits.
var sgSubuserCreditsRoute = sgRoute{"subusers.credits.read", (*sendGrid).serveSubuserCredits}

// routeOf finds the route of path; name is the {subuser_name} of a
// subuser route.
func routeOf(path string) (route sgRoute, name string, ok bool) {
	if route, ok := sendGridRoutes[path]; ok {
		return route, "", true
	}
	if rest, ok := strings.CutPrefix(path, "/v3/subusers/"); ok {
		if name, ok := strings.CutSuffix(rest, "/credits"); ok && name != "" && !strings.Contains(name, "/") {
			return sgSubuserCreditsRoute, name, true
		}
	}
	return sgRoute{}, "", false
}

// sgHost is one of SendGrid's hosts: global (api.sendgrid.com) or eu
// (api.eu.sendgrid.com). Each answers only the keys of its region.
type sgHost struct {
	g      *sendGrid
	region string
}

func (h sgHost) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.g.serve(w, r, h.region) }

// WriteFault answers faults in SendGrid's shape on both hosts.
func (h sgHost) WriteFault(w http.ResponseWriter, r *http.Request, e FaultError) {
	h.g.WriteFault(w, r, e)
}

// regionOf is where an account is pinned.
func (a *SendGridAccount) regionOf() string {
	if a.Region == "" {
		return SendGridRegionGlobal
	}
	return a.Region
}

// serve answers a call to the host of region. A key pinned to the other
// region gets the same 401 as an unknown key: SendGrid's docs say only
// that EU accounts use api.eu.sendgrid.com, not what the global host
// answers them, and a 401 is the answer no client can take for data.
func (g *sendGrid) serve(w http.ResponseWriter, r *http.Request, region string) {
	a, why := g.authenticate(r)
	if a != nil && a.regionOf() != region {
		a, why = nil, "key of region "+a.regionOf()+" at the "+region+" host"
	}
	g.rateHeaders(w, a)
	if a == nil {
		g.s.log.Debug("sendgrid 401", "reason", why)
		sgError(w, http.StatusUnauthorized, "", "authorization required")
		return
	}
	// on-behalf-of (a parent calling as one of its subusers) is not
	// modelled: answering the parent's data instead would pass silently.
	if r.Header.Get("On-Behalf-Of") != "" {
		sgError(w, http.StatusBadRequest, "on-behalf-of", "the simulator does not model on-behalf-of; call without it")
		return
	}
	route, name, ok := routeOf(r.URL.Path)
	if !ok {
		sgError(w, http.StatusNotFound, "", "not found")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		sgError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		return
	}
	if route.scope != "" && !a.hasScope(route.scope) {
		sgError(w, http.StatusForbidden, "", "access forbidden")
		return
	}
	if name != "" {
		r.SetPathValue("subuser_name", name)
	}
	route.serve(g, w, r, a)
}

// Answers are structs, not maps: encoding/json sorts a map's keys on
// every call, a struct's fields are ordered once. Fields are declared in
// sorted order, so the bytes are those a map gave (TestAnswersMatchGolden).

func (g *sendGrid) serveScopes(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	writeJSON(w, http.StatusOK, struct {
		Scopes []string `json:"scopes"`
	}{a.Scopes})
}

func (g *sendGrid) serveAccount(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	writeJSON(w, http.StatusOK, struct {
		Reputation float64 `json:"reputation"`
		Type       string  `json:"type"`
	}{a.Reputation, a.Type})
}

func (g *sendGrid) serveUsername(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	writeJSON(w, http.StatusOK, struct {
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
	}{a.UserID, a.Name})
}

// sgResult is the {"result": [...]} envelope of list answers.
type sgResult[T any] struct {
	Result []T `json:"result"`
}

func (g *sendGrid) serveCredits(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	writeJSON(w, http.StatusOK, a.creditsAt(g.s.now()))
}

// maxStatsDays bounds a stats range, so one call cannot build a huge answer.
const maxStatsDays = 3660

type sgStatsEntry struct {
	Date  string    `json:"date"`
	Stats []sgStats `json:"stats"`
}

type sgStats struct {
	Metrics sgMetricsJSON `json:"metrics"`
}

// statsRange reads start_date (required) and end_date (default today;
// cut at today, where data ends) of a stats call; on bad input it answers
// 400 and returns ok=false.
func (g *sendGrid) statsRange(w http.ResponseWriter, q url.Values) (start, end time.Time, ok bool) {
	today := utcDay(g.s.now())
	startS := q.Get("start_date")
	if startS == "" {
		sgError(w, http.StatusBadRequest, "start_date", "missing required argument")
		return start, end, false
	}
	var err error
	if start, err = time.Parse(dateLayout, startS); err != nil {
		sgError(w, http.StatusBadRequest, "start_date", "invalid date, expected YYYY-MM-DD")
		return start, end, false
	}
	if start.After(today) {
		sgError(w, http.StatusBadRequest, "start_date", "start_date must not be in the future")
		return start, end, false
	}
	end = today
	if s := q.Get("end_date"); s != "" {
		if end, err = time.Parse(dateLayout, s); err != nil {
			sgError(w, http.StatusBadRequest, "end_date", "invalid date, expected YYYY-MM-DD")
			return start, end, false
		}
		if end.Before(start) {
			sgError(w, http.StatusBadRequest, "end_date", "end_date must not be before start_date")
			return start, end, false
		}
		if end.After(today) {
			end = today
		}
	}
	if end.Sub(start) > maxStatsDays*24*time.Hour {
		sgError(w, http.StatusBadRequest, "start_date", fmt.Sprintf("date range longer than %d days", maxStatsDays))
		return start, end, false
	}
	return start, end, true
}

// serveStats answers GET /v3/stats. Buckets of aggregated_by=week (weeks
// start on Monday) and month are dated by their first day inside the
// range. End dates after today are cut at today (no data yet). limit and
// offset (documented for this endpoint) apply to the buckets when given;
// the page size cap does not, since clients read stats in one call.
func (g *sendGrid) serveStats(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	q := r.URL.Query()
	start, end, ok := g.statsRange(w, q)
	if !ok {
		return
	}
	agg := q.Get("aggregated_by")
	switch agg {
	case "":
		agg = "day"
	case "day", "week", "month":
	default:
		sgError(w, http.StatusBadRequest, "aggregated_by", "aggregated_by must be one of day, week, month")
		return
	}
	limit, hasLimit, ok := intParam(w, q, "limit", -1)
	if !ok {
		return
	}
	offset, _, ok := intParam(w, q, "offset", -1)
	if !ok {
		return
	}

	out := []sgStatsEntry{}
	var sums []sgMetrics // out[i]'s
	var curKey time.Time
	for d := start; !d.After(end); d = d.Add(24 * time.Hour) { // UTC days
		key := bucketStart(d, agg)
		if len(out) == 0 || !key.Equal(curKey) {
			out = append(out, sgStatsEntry{Date: d.Format(dateLayout)})
			sums = append(sums, sgMetrics{})
			curKey = key
		}
		sums[len(sums)-1].add(a.dayStats(d))
	}
	for i := range out {
		out[i].Stats = []sgStats{{sums[i].wire()}}
	}
	out = out[min(offset, len(out)):]
	if hasLimit && limit > 0 {
		out = out[:min(limit, len(out))]
	}
	writeJSON(w, http.StatusOK, out)
}

// bucketStart is the first day of d's bucket (it may lie before the range).
func bucketStart(d time.Time, agg string) time.Time {
	switch agg {
	case "week":
		back := (int(d.Weekday()) + 6) % 7 // days since Monday
		return d.AddDate(0, 0, -back)
	case "month":
		return time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return d
}

// intParam reads a non-negative integer query parameter (at most max if
// max >= 0); on bad input it answers 400 and returns ok=false.
func intParam(w http.ResponseWriter, q map[string][]string, name string, maxV int) (v int, present, ok bool) {
	vals := q[name]
	if len(vals) == 0 || vals[0] == "" {
		return 0, false, true
	}
	n, err := strconv.Atoi(vals[0])
	if err != nil || n < 0 {
		sgError(w, http.StatusBadRequest, name, name+" must be a non-negative integer")
		return 0, true, false
	}
	if maxV >= 0 && n > maxV {
		sgError(w, http.StatusBadRequest, name, fmt.Sprintf("%s must be at most %d", name, maxV))
		return 0, true, false
	}
	return n, true, true
}

// page returns items[offset:offset+limit], limit being the client's (at
// most maxLimit if >= 0) or def when absent or 0. As the spec says, limit
// is the page size: a page shorter than it is the last one. The
// simulator's PageSize is the default page size of endpoints whose spec
// names none (GET /v3/subusers).
func page[T any](w http.ResponseWriter, r *http.Request, items []T, def, maxLimit int) ([]T, bool) {
	q := r.URL.Query()
	limit, _, ok := intParam(w, q, "limit", maxLimit)
	if !ok {
		return nil, false
	}
	offset, _, ok := intParam(w, q, "offset", -1)
	if !ok {
		return nil, false
	}
	if limit == 0 {
		limit = def
	}
	items = items[min(offset, len(items)):]
	return slices.Clone(items[:min(limit, len(items))]), true
}

// serveTeammates: the spec's schema names the array "result" (its example
// says "results"); the simulator sends "result".
func (g *sendGrid) serveTeammates(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	items, ok := page(w, r, a.Teammates, 500, 500)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, sgResult[SendGridTeammate]{items})
}

// servePending: the spec documents no limit/offset here, so the whole
// list comes in one answer.
func (g *sendGrid) servePending(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	type pending struct {
		SendGridPendingTeammate
		ExpirationDate int64 `json:"expiration_date"`
	}
	out := []pending{}
	today := utcDay(g.s.now())
	for _, p := range a.PendingTeammates {
		out = append(out, pending{p, today.AddDate(0, 0, p.ExpiresInDays).Unix()})
	}
	writeJSON(w, http.StatusOK, sgResult[pending]{out})
}

// serveAPIKeys: the spec documents limit but no offset, so there is no
// way to page; limit truncates the list and the page size cap does not
// apply.
func (g *sendGrid) serveAPIKeys(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	limit, has, ok := intParam(w, r.URL.Query(), "limit", -1)
	if !ok {
		return
	}
	items := a.APIKeys
	if has && limit > 0 {
		items = items[:min(limit, len(items))]
	}
	writeJSON(w, http.StatusOK, sgResult[SendGridAPIKey]{items})
}

// serveSubusers answers a bare JSON array, filtered by username (exact)
// and region; region is in each item only with include_region=true.
func (g *sendGrid) serveSubusers(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	q := r.URL.Query()
	region := q.Get("region")
	switch region {
	case "", "all", "global", "eu":
	default:
		sgError(w, http.StatusBadRequest, "region", "region must be one of all, global, eu")
		return
	}
	includeRegion := false
	if s := q.Get("include_region"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			sgError(w, http.StatusBadRequest, "include_region", "include_region must be true or false")
			return
		}
		includeRegion = b
	}
	username := q.Get("username")
	var matched []SendGridSubuser
	for _, su := range a.Subusers {
		if username != "" && su.Username != username {
			continue
		}
		if region != "" && region != "all" && su.Region != region {
			continue
		}
		matched = append(matched, su)
	}
	items, ok := page(w, r, matched, g.s.pageSize, -1)
	if !ok {
		return
	}
	type item struct {
		Disabled bool    `json:"disabled"`
		Email    string  `json:"email"`
		ID       int64   `json:"id"`
		Region   *string `json:"region,omitempty"` // only with include_region=true
		Username string  `json:"username"`
	}
	out := make([]item, 0, len(items))
	for _, su := range items {
		it := item{Disabled: su.Disabled, Email: su.Email, ID: su.ID, Username: su.Username}
		if includeRegion {
			it.Region = &su.Region
		}
		out = append(out, it)
	}
	writeJSON(w, http.StatusOK, out)
}

// serveSubuserSums answers GET /v3/subusers/stats/sums: every subuser's
// totals over the range (disabled ones too), sorted by sort_by_metric
// (default delivered) in sort_by_direction (default desc; ties by
// username), then limit (default 5, as the spec says) and offset. The
// parent's own mail is not in it, as the subusers' is not in the parent's
// GET /v3/stats. aggregated_by is checked and otherwise ignored: a sum has
// no buckets.
func (g *sendGrid) serveSubuserSums(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	q := r.URL.Query()
	start, end, ok := g.statsRange(w, q)
	if !ok {
		return
	}
	switch q.Get("aggregated_by") {
	case "", "day", "week", "month":
	default:
		sgError(w, http.StatusBadRequest, "aggregated_by", "aggregated_by must be one of day, week, month")
		return
	}
	metric := q.Get("sort_by_metric")
	if metric == "" {
		metric = "delivered"
	}
	mi := sgMetricIndex(metric)
	if mi < 0 {
		sgError(w, http.StatusBadRequest, "sort_by_metric", "sort_by_metric must be one stats metric, such as requests")
		return
	}
	dir := q.Get("sort_by_direction")
	switch dir {
	case "":
		dir = "desc"
	case "desc", "asc":
	default:
		sgError(w, http.StatusBadRequest, "sort_by_direction", "sort_by_direction must be desc or asc")
		return
	}
	type entry struct {
		Metrics sgMetricsJSON `json:"metrics"`
		Name    string        `json:"name"`
		Type    string        `json:"type"`
		sortBy  int64
	}
	all := make([]entry, 0, len(a.Subusers))
	for _, su := range a.Subusers {
		m := sendGridRange(su.RequestsBase, su.RequestsStep, start, end)
		all = append(all, entry{m.wire(), su.Username, "subuser", m[mi]})
	}
	slices.SortFunc(all, func(x, y entry) int {
		c := x.sortBy - y.sortBy
		if dir == "desc" {
			c = -c
		}
		switch {
		case c < 0:
			return -1
		case c > 0:
			return 1
		}
		return strings.Compare(x.Name, y.Name)
	})
	items, ok := page(w, r, all, 5, -1)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Date  string  `json:"date"`
		Stats []entry `json:"stats"`
	}{start.Format(dateLayout), items})
}

// serveSubuserCredits answers GET /v3/subusers/{subuser_name}/credits; an
// unknown subuser gets the spec's 400 "No user found".
func (g *sendGrid) serveSubuserCredits(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	name := r.PathValue("subuser_name")
	for _, su := range a.Subusers {
		if su.Username == name {
			writeJSON(w, http.StatusOK, su.creditsAt(g.s.now()))
			return
		}
	}
	sgError(w, http.StatusBadRequest, "", "No user found")
}
