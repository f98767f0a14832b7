package vendorsim

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
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

// SendGridPendingTeammate is one item of GET /v3/teammates/pending (the
// answer adds expiration_date, a few days after the simulator's today).
type SendGridPendingTeammate struct {
	Email   string   `json:"email"`
	Scopes  []string `json:"scopes"`
	IsAdmin bool     `json:"is_admin"`
	Token   string   `json:"token"`
}

// SendGridAPIKey is one item of GET /v3/api_keys.
type SendGridAPIKey struct {
	APIKeyID string `json:"api_key_id"`
	Name     string `json:"name"`
}

// SendGridSubuser is one item of GET /v3/subusers.
type SendGridSubuser struct {
	Disabled bool   `json:"disabled"`
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Email    string `json:"email"`
	Region   string `json:"region,omitempty"` // global or eu; sent only with include_region=true
}

// SendGridAccount is the fixed data behind one test key.
type SendGridAccount struct {
	Name             string
	Type             string // free, paid
	Reputation       float64
	UserID           int64 // GET /v3/user/username (scope user.username.read) answers Name and UserID
	Scopes           []string
	CreditsTotal     int64 // monthly credits; see SendGridCreditsAt
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
			"api_keys.read", "subusers.read", "mail.send", "user.username.read"},
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
		PendingTeammates: []SendGridPendingTeammate{
			{"new-dev@acme.example", []string{"stats.read", "mail.send"}, false, "acmePendingToken0001"},
			{"new-admin@acme.example", []string{}, true, "acmePendingToken0002"},
		},
		APIKeys: []SendGridAPIKey{
			{"vendorsimAcmeTestKey01", "saas_exporter (vendorsim)"},
			{"acmeMailSendKeyId00002", "Mail Send"},
			{"acmeMarketingKeyId0003", "Marketing Campaigns"},
			{"acmeZapierKeyId0000004", "Zapier"},
			{"acmeOldCIKeyId00000005", "Old CI key"},
		},
		Subusers: []SendGridSubuser{
			{false, 1001, "acme-marketing", "marketing@acme.example", "global"},
			{true, 1002, "acme-legacy", "legacy@acme.example", "global"},
			{false, 1003, "acme-eu", "eu@acme.example", "eu"},
			{false, 1004, "acme-transactional", "tx@acme.example", "global"},
			{true, 1005, "acme-trial", "trial@acme.example", "global"},
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

// sendGridMetrics are the 16 metrics of GET /v3/stats, in the spec's order.
var sendGridMetrics = []string{
	"blocks", "bounce_drops", "bounces", "clicks", "deferred", "delivered", "invalid_emails", "opens",
	"processed", "requests", "spam_report_drops", "spam_reports", "unique_clicks", "unique_opens",
	"unsubscribe_drops", "unsubscribes",
}

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
	return a.dayStats(day)
}

func (a *SendGridAccount) dayStats(day time.Time) map[string]int64 {
	day = day.UTC()
	req := a.requestsBase + a.requestsStep*int64(day.Day()) + int64(day.Month())
	m := map[string]int64{
		"requests":          req,
		"bounce_drops":      req / 200,
		"spam_report_drops": req / 1000,
		"unsubscribe_drops": req / 500,
		"invalid_emails":    req / 400,
	}
	proc := req - m["bounce_drops"] - m["spam_report_drops"] - m["unsubscribe_drops"] - m["invalid_emails"]
	m["processed"] = proc
	m["bounces"] = proc / 100
	m["blocks"] = proc / 250
	m["deferred"] = proc / 50
	del := proc - m["bounces"] - m["blocks"]
	m["delivered"] = del
	m["unique_opens"] = del * 35 / 100
	m["opens"] = m["unique_opens"] * 3 / 2
	m["unique_clicks"] = del * 8 / 100
	m["clicks"] = m["unique_clicks"] * 3 / 2
	m["spam_reports"] = del / 2000
	m["unsubscribes"] = del / 800
	return m
}

// SendGridRangeStats sums SendGridDayStats over the UTC days from start to
// end, both included (nil for an unknown key).
func SendGridRangeStats(key string, start, end time.Time) map[string]int64 {
	a, ok := sendGridAccount(key)
	if !ok {
		return nil
	}
	return a.rangeStats(start, end)
}

func (a *SendGridAccount) rangeStats(start, end time.Time) map[string]int64 {
	sum := map[string]int64{}
	for _, n := range sendGridMetrics {
		sum[n] = 0
	}
	for d := utcDay(start); !d.After(utcDay(end)); d = d.AddDate(0, 0, 1) {
		for k, v := range a.dayStats(d) {
			sum[k] += v
		}
	}
	return sum
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

// SendGridCreditsAt returns a test key's credits at now: credits reset on
// the 1st of each month (UTC), and used is the month's requests so far
// (today included). Acme (50000 credits) runs into overage late in a month.
func SendGridCreditsAt(key string, now time.Time) (SendGridCredits, bool) {
	a, ok := sendGridAccount(key)
	if !ok {
		return SendGridCredits{}, false
	}
	return a.creditsAt(now), true
}

func (a *SendGridAccount) creditsAt(now time.Time) SendGridCredits {
	today := utcDay(now)
	first := time.Date(today.Year(), today.Month(), 1, 0, 0, 0, 0, time.UTC)
	used := a.rangeStats(first, today)["requests"]
	return SendGridCredits{
		Remain:         max(a.CreditsTotal-used, 0),
		Total:          a.CreditsTotal,
		Overage:        max(used-a.CreditsTotal, 0),
		Used:           used,
		LastReset:      first.Format(dateLayout),
		NextReset:      first.AddDate(0, 1, 0).Format(dateLayout),
		ResetFrequency: "monthly",
	}
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
	s.Mount(sendGridVendor, "/sendgrid", g)
	s.control("POST /_sim/sendgrid/revoke", g.serveRevoke(true))
	s.control("POST /_sim/sendgrid/restore", g.serveRevoke(false))
	s.describe(sendGridVendor,
		[]Credential{
			{Label: "API key, account acme (paid, reputation 99.5, every scope the exporter reads)", Value: SendGridKeyAcme},
			{Label: "API key, account beta (free, reputation 87.25, scopes stats.read, user.account.read, mail.send)", Value: SendGridKeyBeta},
			{Label: "API key of synthetic account 1, acme-like; any number exist: SG.vendorsimGen + 10 digits + the same padding", Value: SendGridSyntheticKey(1)},
		},
		[]string{
			"POST /_sim/sendgrid/revoke   form or JSON key=<API key>: the key answers 401 until restored",
			"POST /_sim/sendgrid/restore  form or JSON key=<API key>",
		},
		func(base string) string {
			return "  sendgrid:\n    api_url: " + base + "/sendgrid\n" + sendGridOAuthConfig(base)
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
	"/v3/scopes":            {"", (*sendGrid).serveScopes},
	"/v3/stats":             {"stats.read", (*sendGrid).serveStats},
	"/v3/user/credits":      {"user.credits.read", (*sendGrid).serveCredits},
	"/v3/user/account":      {"user.account.read", (*sendGrid).serveAccount},
	"/v3/user/username":     {"user.username.read", (*sendGrid).serveUsername},
	"/v3/teammates":         {"teammates.read", (*sendGrid).serveTeammates},
	"/v3/teammates/pending": {"teammates.read", (*sendGrid).servePending},
	"/v3/api_keys":          {"api_keys.read", (*sendGrid).serveAPIKeys},
	"/v3/subusers":          {"subusers.read", (*sendGrid).serveSubusers},
}

func (g *sendGrid) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, why := g.authenticate(r)
	g.rateHeaders(w, a)
	if a == nil {
		g.s.log.Debug("sendgrid 401", "reason", why)
		sgError(w, http.StatusUnauthorized, "", "authorization required")
		return
	}
	route, ok := sendGridRoutes[r.URL.Path]
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
	route.serve(g, w, r, a)
}

func (g *sendGrid) serveScopes(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	writeJSON(w, http.StatusOK, map[string][]string{"scopes": a.Scopes})
}

func (g *sendGrid) serveAccount(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	writeJSON(w, http.StatusOK, map[string]any{"type": a.Type, "reputation": a.Reputation})
}

func (g *sendGrid) serveUsername(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	writeJSON(w, http.StatusOK, map[string]any{"username": a.Name, "user_id": a.UserID})
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
	Metrics map[string]int64 `json:"metrics"`
}

// serveStats answers GET /v3/stats. Buckets of aggregated_by=week (weeks
// start on Monday) and month are dated by their first day inside the
// range. End dates after today are cut at today (no data yet). limit and
// offset (documented for this endpoint) apply to the buckets when given;
// the page size cap does not, since clients read stats in one call.
func (g *sendGrid) serveStats(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	q := r.URL.Query()
	today := utcDay(g.s.now())
	startS := q.Get("start_date")
	if startS == "" {
		sgError(w, http.StatusBadRequest, "start_date", "missing required argument")
		return
	}
	start, err := time.Parse(dateLayout, startS)
	if err != nil {
		sgError(w, http.StatusBadRequest, "start_date", "invalid date, expected YYYY-MM-DD")
		return
	}
	if start.After(today) {
		sgError(w, http.StatusBadRequest, "start_date", "start_date must not be in the future")
		return
	}
	end := today
	if s := q.Get("end_date"); s != "" {
		if end, err = time.Parse(dateLayout, s); err != nil {
			sgError(w, http.StatusBadRequest, "end_date", "invalid date, expected YYYY-MM-DD")
			return
		}
		if end.Before(start) {
			sgError(w, http.StatusBadRequest, "end_date", "end_date must not be before start_date")
			return
		}
		if end.After(today) {
			end = today
		}
	}
	if end.Sub(start) > maxStatsDays*24*time.Hour {
		sgError(w, http.StatusBadRequest, "start_date", fmt.Sprintf("date range longer than %d days", maxStatsDays))
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
	var cur *sgStatsEntry
	var curKey time.Time
	for d := start; !d.After(end); d = d.AddDate(0, 0, 1) {
		key := bucketStart(d, agg)
		if cur == nil || !key.Equal(curKey) {
			out = append(out, sgStatsEntry{Date: d.Format(dateLayout)})
			cur = &out[len(out)-1]
			cur.Stats = []sgStats{{Metrics: map[string]int64{}}}
			curKey = key
		}
		for k, v := range a.dayStats(d) {
			cur.Stats[0].Metrics[k] += v
		}
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

// page returns items[offset:offset+n] where n is the client's limit (or
// def when absent or 0), never more than the simulator's page size: a
// client must keep asking with offset += len(page) until a page is empty.
func page[T any](g *sendGrid, w http.ResponseWriter, r *http.Request, items []T, def, maxLimit int) ([]T, bool) {
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
	limit = min(limit, g.s.pageSize)
	items = items[min(offset, len(items)):]
	return slices.Clone(items[:min(limit, len(items))]), true
}

// serveTeammates: the spec's schema names the array "result" (its example
// says "results"); the simulator sends "result".
func (g *sendGrid) serveTeammates(w http.ResponseWriter, r *http.Request, a *SendGridAccount) {
	items, ok := page(g, w, r, a.Teammates, 500, 500)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": items})
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
	for i, p := range a.PendingTeammates {
		out = append(out, pending{p, today.AddDate(0, 0, 3+i).Unix()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": out})
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
	writeJSON(w, http.StatusOK, map[string]any{"result": items})
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
	items, ok := page(g, w, r, matched, g.s.pageSize, -1)
	if !ok {
		return
	}
	out := make([]map[string]any, 0, len(items))
	for _, su := range items {
		m := map[string]any{"disabled": su.Disabled, "id": su.ID, "username": su.Username, "email": su.Email}
		if includeRegion {
			m["region"] = su.Region
		}
		out = append(out, m)
	}
	writeJSON(w, http.StatusOK, out)
}
