package vendorsim

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const sg = "/sendgrid"

func TestSendGridKeysLookReal(t *testing.T) {
	re := regexp.MustCompile(`^SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}$`)
	for _, k := range []string{SendGridKeyAcme, SendGridKeyBeta} {
		if !re.MatchString(k) {
			t.Errorf("%q does not look like a SendGrid key", k)
		}
	}
	if SendGridKeyAcme == SendGridKeyBeta {
		t.Error("keys are equal")
	}
}

func TestSendGridAuth(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	const unauthorized = `{"errors":[{"field":null,"message":"authorization required"}]}`
	for name, hdr := range map[string]string{
		"missing":    "",
		"unknown":    "Bearer SG.xxxxxxxxxxxxxxxxxxxxxx.yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
		"not bearer": "Basic " + SendGridKeyAcme,
		"bare key":   SendGridKeyAcme,
	} {
		a := doHeader(t, ts, sg+"/v3/scopes", hdr)
		if a.Status != 401 || strings.TrimSpace(string(a.Body)) != unauthorized {
			t.Errorf("%s: %d %s, want 401 %s", name, a.Status, a.Body, unauthorized)
		}
	}
	if a := doHeader(t, ts, sg+"/v3/scopes", "bearer "+SendGridKeyAcme); a.Status != 200 {
		t.Errorf("lower-case scheme: %d", a.Status)
	}

	sim.RevokeSendGridKey(SendGridKeyAcme)
	if a := get(t, ts, sg+"/v3/scopes", SendGridKeyAcme); a.Status != 401 || strings.TrimSpace(string(a.Body)) != unauthorized {
		t.Errorf("revoked: %d %s", a.Status, a.Body)
	}
	if a := get(t, ts, sg+"/v3/scopes", SendGridKeyBeta); a.Status != 200 {
		t.Errorf("revoking acme affected beta: %d", a.Status)
	}
	sim.RestoreSendGridKey(SendGridKeyAcme)
	if a := get(t, ts, sg+"/v3/scopes", SendGridKeyAcme); a.Status != 200 {
		t.Errorf("restored: %d", a.Status)
	}
}

func TestSendGridRevokeOverHTTP(t *testing.T) {
	_, ts, _ := newSim(t, Options{})
	form := "key=" + url.QueryEscape(SendGridKeyAcme)
	if a := do(t, ts, "POST", "/_sim/sendgrid/revoke", "", "application/x-www-form-urlencoded", form); a.Status != 200 {
		t.Fatalf("revoke by form: %d %s", a.Status, a.Body)
	}
	if a := get(t, ts, sg+"/v3/scopes", SendGridKeyAcme); a.Status != 401 {
		t.Fatalf("after revoke: %d", a.Status)
	}
	if a := do(t, ts, "POST", "/_sim/sendgrid/restore", "", "application/json", `{"key":"`+SendGridKeyAcme+`"}`); a.Status != 200 {
		t.Fatalf("restore by JSON: %d %s", a.Status, a.Body)
	}
	if a := get(t, ts, sg+"/v3/scopes", SendGridKeyAcme); a.Status != 200 {
		t.Fatalf("after restore: %d", a.Status)
	}
	if a := do(t, ts, "POST", "/_sim/sendgrid/revoke", "", "application/json", `{"key":"`+SendGridKeyBeta+`"}`); a.Status != 200 {
		t.Fatalf("revoke by JSON: %d %s", a.Status, a.Body)
	}
	if a := get(t, ts, sg+"/v3/scopes", SendGridKeyBeta); a.Status != 401 {
		t.Fatalf("beta after revoke: %d", a.Status)
	}

	secret := "SG.realLookingKeyAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	for _, c := range []struct {
		name, ct, body string
		want           int
		says           string
	}{
		{"unknown key", "application/x-www-form-urlencoded", "key=" + url.QueryEscape(secret), 404, "not a SendGrid test key"},
		{"missing key", "application/x-www-form-urlencoded", "", 400, "missing key"},
		{"bad JSON", "application/json", "{", 400, "must be JSON"},
	} {
		a := do(t, ts, "POST", "/_sim/sendgrid/revoke", "", c.ct, c.body)
		if a.Status != c.want || !strings.Contains(string(a.Body), c.says) {
			t.Errorf("%s: %d %s, want %d containing %q", c.name, a.Status, a.Body, c.want, c.says)
		}
		if strings.Contains(string(a.Body), secret) {
			t.Errorf("%s: the answer echoes the key", c.name)
		}
	}
}

func TestSendGridScopesAndForbidden(t *testing.T) {
	_, ts, _ := newSim(t, Options{})
	var s struct{ Scopes []string }
	get(t, ts, sg+"/v3/scopes", SendGridKeyAcme).decode(t, &s)
	for _, want := range []string{"stats.read", "user.credits.read", "user.account.read", "teammates.read", "api_keys.read", "subusers.read", "mail.send"} {
		if !slices.Contains(s.Scopes, want) {
			t.Errorf("acme lacks %s: %v", want, s.Scopes)
		}
	}
	get(t, ts, sg+"/v3/scopes", SendGridKeyBeta).decode(t, &s)
	if got := strings.Join(s.Scopes, ","); got != "stats.read,user.account.read,mail.send" {
		t.Errorf("beta scopes %s", got)
	}
	const forbidden = `{"errors":[{"field":null,"message":"access forbidden"}]}`
	for _, p := range []string{"/v3/user/credits", "/v3/teammates", "/v3/teammates/pending", "/v3/api_keys", "/v3/subusers", "/v3/user/username"} {
		if a := get(t, ts, sg+p, SendGridKeyBeta); a.Status != 403 || strings.TrimSpace(string(a.Body)) != forbidden {
			t.Errorf("beta %s: %d %s, want 403 %s", p, a.Status, a.Body, forbidden)
		}
		if a := get(t, ts, sg+p, SendGridKeyAcme); a.Status != 200 {
			t.Errorf("acme %s: %d %s", p, a.Status, a.Body)
		}
	}
	if a := get(t, ts, sg+"/v3/nope", SendGridKeyAcme); a.Status != 404 {
		t.Errorf("unknown path: %d", a.Status)
	}
	if a := do(t, ts, "POST", sg+"/v3/scopes", SendGridKeyAcme, "", ""); a.Status != 405 {
		t.Errorf("POST: %d", a.Status)
	}
}

func TestSendGridAccountAndCredits(t *testing.T) {
	_, ts, clock := newSim(t, Options{})
	var acct struct {
		Type       string
		Reputation float64
	}
	get(t, ts, sg+"/v3/user/account", SendGridKeyAcme).decode(t, &acct)
	if acct.Type != "paid" || acct.Reputation != 99.5 {
		t.Errorf("acme account %+v", acct)
	}
	get(t, ts, sg+"/v3/user/account", SendGridKeyBeta).decode(t, &acct)
	if acct.Type != "free" || acct.Reputation != 87.25 {
		t.Errorf("beta account %+v", acct)
	}
	var user struct {
		Username string
		UserID   int64 `json:"user_id"`
	}
	get(t, ts, sg+"/v3/user/username", SendGridKeyAcme).decode(t, &user)
	if user.Username != "acme" || user.UserID == 0 {
		t.Errorf("username %+v", user)
	}

	// 2026-03-15: used = sum over days 1..15 of 2000 + 10*day + 3.
	want := SendGridCredits{Remain: 18755, Total: 50000, Used: 31245, LastReset: "2026-03-01", NextReset: "2026-04-01", ResetFrequency: "monthly"}
	var c SendGridCredits
	get(t, ts, sg+"/v3/user/credits", SendGridKeyAcme).decode(t, &c)
	if c != want {
		t.Errorf("credits %+v, want %+v", c, want)
	}
	if got, _ := SendGridCreditsAt(SendGridKeyAcme, testNow); got != want {
		t.Errorf("SendGridCreditsAt %+v", got)
	}
	// Late in a month acme runs over; December resets into the next year.
	clock.Set(time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC))
	get(t, ts, sg+"/v3/user/credits", SendGridKeyAcme).decode(t, &c)
	used := int64(31*(2000+12) + 10*31*32/2)
	want = SendGridCredits{Remain: 0, Total: 50000, Overage: used - 50000, Used: used, LastReset: "2026-12-01", NextReset: "2027-01-01", ResetFrequency: "monthly"}
	if c != want {
		t.Errorf("credits on Dec 31 %+v, want %+v", c, want)
	}
}

type statsEntry struct {
	Date  string
	Stats []struct{ Metrics map[string]int64 }
}

func TestSendGridStats(t *testing.T) {
	_, ts, _ := newSim(t, Options{})
	stats := func(key, query string) []statsEntry {
		t.Helper()
		a := get(t, ts, sg+"/v3/stats?"+query, key)
		if a.Status != 200 {
			t.Fatalf("stats?%s: %d %s", query, a.Status, a.Body)
		}
		var out []statsEntry
		a.decode(t, &out)
		return out
	}
	day := func(s string) time.Time {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	metrics := func(e statsEntry) map[string]int64 {
		t.Helper()
		if len(e.Stats) != 1 {
			t.Fatalf("%s: %d stats, want 1", e.Date, len(e.Stats))
		}
		return e.Stats[0].Metrics
	}

	days := stats(SendGridKeyAcme, "start_date=2026-03-01&end_date=2026-03-10&aggregated_by=day")
	if len(days) != 10 {
		t.Fatalf("%d days, want 10", len(days))
	}
	for i, e := range days {
		d := time.Date(2026, 3, 1+i, 0, 0, 0, 0, time.UTC)
		if e.Date != d.Format(time.DateOnly) {
			t.Errorf("entry %d dated %s", i, e.Date)
		}
		m := metrics(e)
		if fmt.Sprint(m) != fmt.Sprint(SendGridDayStats(SendGridKeyAcme, d)) {
			t.Errorf("%s: %v, want %v", e.Date, m, SendGridDayStats(SendGridKeyAcme, d))
		}
		if len(m) != 16 {
			t.Errorf("%s: %d metrics, want 16", e.Date, len(m))
		}
		for _, n := range SendGridMetricNames() {
			if _, ok := m[n]; !ok {
				t.Errorf("%s: no %s", e.Date, n)
			}
		}
		if m["requests"] != 2000+10*int64(1+i)+3 {
			t.Errorf("%s: requests %d", e.Date, m["requests"])
		}
		if m["requests"] != m["processed"]+m["bounce_drops"]+m["spam_report_drops"]+m["unsubscribe_drops"]+m["invalid_emails"] ||
			m["delivered"] != m["processed"]-m["bounces"]-m["blocks"] || m["delivered"] > m["requests"] ||
			m["unique_opens"] > m["opens"] || m["unique_clicks"] > m["clicks"] {
			t.Errorf("%s: inconsistent %v", e.Date, m)
		}
	}
	if a, b := SendGridDayStats(SendGridKeyAcme, testNow), SendGridDayStats(SendGridKeyBeta, testNow); a["requests"] == b["requests"] {
		t.Error("accounts have the same numbers")
	}

	// Months across a boundary: each bucket dated by its first day in range.
	months := stats(SendGridKeyBeta, "start_date=2026-01-20&end_date=2026-03-05&aggregated_by=month")
	wantMonths := []struct{ date, from, to string }{
		{"2026-01-20", "2026-01-20", "2026-01-31"},
		{"2026-02-01", "2026-02-01", "2026-02-28"},
		{"2026-03-01", "2026-03-01", "2026-03-05"},
	}
	if len(months) != len(wantMonths) {
		t.Fatalf("%d month buckets, want %d", len(months), len(wantMonths))
	}
	for i, w := range wantMonths {
		if months[i].Date != w.date || fmt.Sprint(metrics(months[i])) != fmt.Sprint(SendGridRangeStats(SendGridKeyBeta, day(w.from), day(w.to))) {
			t.Errorf("month %d: %s %v, want %s = days %s..%s", i, months[i].Date, metrics(months[i]), w.date, w.from, w.to)
		}
	}

	// 2026-03-04 is a Wednesday; weeks start on Monday.
	weeks := stats(SendGridKeyAcme, "start_date=2026-03-04&end_date=2026-03-15&aggregated_by=week")
	if len(weeks) != 2 || weeks[0].Date != "2026-03-04" || weeks[1].Date != "2026-03-09" ||
		metrics(weeks[1])["requests"] != SendGridRangeStats(SendGridKeyAcme, day("2026-03-09"), day("2026-03-15"))["requests"] {
		t.Errorf("weeks: %+v", weeks)
	}

	// No end_date: up to today (testNow); a future end_date is cut at today.
	for _, q := range []string{"start_date=2026-03-14", "start_date=2026-03-14&end_date=2026-04-30"} {
		if got := stats(SendGridKeyAcme, q); len(got) != 2 || got[1].Date != "2026-03-15" {
			t.Errorf("%s: %+v", q, got)
		}
	}
	// limit/offset apply to buckets when given.
	if got := stats(SendGridKeyAcme, "start_date=2026-03-01&end_date=2026-03-10&limit=2&offset=3"); len(got) != 2 || got[0].Date != "2026-03-04" {
		t.Errorf("limit/offset: %+v", got)
	}
	// Not capped by the page size: clients read stats in one call.
	if got := stats(SendGridKeyAcme, "start_date=2026-03-01"); len(got) != 15 {
		t.Errorf("%d days for March 1..15", len(got))
	}

	for q, field := range map[string]string{
		"":                      "start_date",
		"start_date=2026-3-1":   "start_date",
		"start_date=yesterday":  "start_date",
		"start_date=2026-03-16": "start_date", // future
		"start_date=2026-03-10&end_date=2026-03-09": "end_date",
		"start_date=2026-03-10&end_date=2026-02-30": "end_date",
		"start_date=2026-03-10&aggregated_by=year":  "aggregated_by",
		"start_date=2026-03-10&limit=-1":            "limit",
		"start_date=2026-03-10&offset=x":            "offset",
		"start_date=1990-01-01&end_date=2026-03-01": "start_date", // too long
	} {
		a := get(t, ts, sg+"/v3/stats?"+q, SendGridKeyAcme)
		if a.Status != 400 || !strings.Contains(string(a.Body), `"field":"`+field+`"`) {
			t.Errorf("stats?%s: %d %s, want 400 on field %s", q, a.Status, a.Body, field)
		}
	}
}

// TestSendGridPagination: limit is the page size (the spec), so a page
// shorter than the limit is the last one; the simulator's PageSize is the
// page size of GET /v3/subusers when the client names no limit.
func TestSendGridPagination(t *testing.T) {
	for _, size := range []int{1, 3, 5, 7} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			_, ts, _ := newSim(t, Options{PageSize: size})

			var teammates []SendGridTeammate
			calls := 0
			for offset := 0; ; {
				var r struct{ Result []SendGridTeammate }
				get(t, ts, fmt.Sprintf("%s/v3/teammates?limit=%d&offset=%d", sg, size, offset), SendGridKeyAcme).decode(t, &r)
				calls++
				if len(r.Result) > size {
					t.Fatalf("page of %d teammates, limit %d", len(r.Result), size)
				}
				teammates = append(teammates, r.Result...)
				offset += len(r.Result)
				if len(r.Result) < size {
					break
				}
			}
			if want := 7/size + 1; calls != want {
				t.Errorf("%d calls for 7 teammates with limit %d, want %d", calls, size, want)
			}
			byType := map[string]int{}
			for _, tm := range teammates {
				byType[tm.UserType]++
			}
			if len(teammates) != 7 || byType["owner"] != 1 || byType["admin"] != 2 || byType["teammate"] != 4 {
				t.Errorf("teammates by type %v (of %d)", byType, len(teammates))
			}

			var subusers []SendGridSubuser
			for offset := 0; ; {
				var r []SendGridSubuser
				get(t, ts, fmt.Sprintf("%s/v3/subusers?offset=%d", sg, offset), SendGridKeyAcme).decode(t, &r)
				if len(r) > size {
					t.Fatalf("page of %d subusers, default page size %d", len(r), size)
				}
				subusers = append(subusers, r...)
				offset += len(r)
				if len(r) < size {
					break
				}
			}
			disabled := 0
			for _, s := range subusers {
				if s.Disabled {
					disabled++
				}
				if s.Region != "" {
					t.Errorf("region sent without include_region: %+v", s)
				}
			}
			if len(subusers) != 5 || disabled != 2 {
				t.Errorf("%d subusers, %d disabled; want 5, 2", len(subusers), disabled)
			}

			// Not paged in the spec: one answer holds everything.
			var pending struct {
				Result []struct {
					Email          string
					Token          string
					ExpirationDate int64 `json:"expiration_date"`
				}
			}
			get(t, ts, sg+"/v3/teammates/pending", SendGridKeyAcme).decode(t, &pending)
			if len(pending.Result) != 3 || pending.Result[0].ExpirationDate <= testNow.Unix() || pending.Result[2].ExpirationDate > testNow.Unix() {
				t.Errorf("pending %+v, want 3 with the last one expired", pending.Result)
			}
			var keys struct{ Result []SendGridAPIKey }
			get(t, ts, sg+"/v3/api_keys", SendGridKeyAcme).decode(t, &keys)
			if len(keys.Result) != 5 {
				t.Errorf("%d api keys, want 5", len(keys.Result))
			}
		})
	}
}

func TestSendGridListParameters(t *testing.T) {
	_, ts, _ := newSim(t, Options{})
	var r struct{ Result []SendGridTeammate }
	get(t, ts, sg+"/v3/teammates?limit=2&offset=1", SendGridKeyAcme).decode(t, &r)
	if len(r.Result) != 2 || r.Result[0].Username != "acme-dev1" {
		t.Errorf("limit=2 offset=1: %+v", r.Result)
	}
	var keys struct{ Result []SendGridAPIKey }
	get(t, ts, sg+"/v3/api_keys?limit=2", SendGridKeyAcme).decode(t, &keys)
	if len(keys.Result) != 2 || keys.Result[0].APIKeyID != strings.Split(SendGridKeyAcme, ".")[1] {
		t.Errorf("api_keys limit=2: %+v", keys.Result)
	}
	var subs []map[string]any
	get(t, ts, sg+"/v3/subusers?region=eu&include_region=true", SendGridKeyAcme).decode(t, &subs)
	if len(subs) != 1 || subs[0]["region"] != "eu" || subs[0]["username"] != "acme-eu" {
		t.Errorf("eu subusers: %v", subs)
	}
	get(t, ts, sg+"/v3/subusers?username=acme-legacy", SendGridKeyAcme).decode(t, &subs)
	if len(subs) != 1 || subs[0]["disabled"] != true {
		t.Errorf("by username: %v", subs)
	}
	for _, q := range []string{
		"/v3/teammates?limit=501", "/v3/teammates?limit=-1", "/v3/teammates?offset=-3", "/v3/teammates?offset=a",
		"/v3/subusers?region=mars", "/v3/subusers?include_region=maybe", "/v3/subusers?limit=x", "/v3/api_keys?limit=two",
	} {
		if a := get(t, ts, sg+q, SendGridKeyAcme); a.Status != 400 || !strings.Contains(string(a.Body), `"message"`) {
			t.Errorf("%s: %d %s, want 400", q, a.Status, a.Body)
		}
	}
}

func TestSendGridRateLimitHeaders(t *testing.T) {
	_, ts, clock := newSim(t, Options{})
	check := func(key string, remaining int, reset time.Time) {
		t.Helper()
		a := get(t, ts, sg+"/v3/scopes", key)
		h := a.Header
		if h.Get("X-RateLimit-Limit") != strconv.Itoa(SendGridRateLimit) ||
			h.Get("X-RateLimit-Remaining") != strconv.Itoa(remaining) ||
			h.Get("X-RateLimit-Reset") != strconv.FormatInt(reset.Unix(), 10) {
			t.Errorf("headers limit=%s remaining=%s reset=%s, want %d %d %d", h.Get("X-RateLimit-Limit"),
				h.Get("X-RateLimit-Remaining"), h.Get("X-RateLimit-Reset"), SendGridRateLimit, remaining, reset.Unix())
		}
	}
	nextMinute := testNow.Truncate(time.Minute).Add(time.Minute)
	check(SendGridKeyAcme, 599, nextMinute)
	check(SendGridKeyAcme, 598, nextMinute)
	check(SendGridKeyBeta, 599, nextMinute) // per key
	check("", 599, nextMinute)              // 401 answers carry them too
	clock.Set(testNow.Add(time.Minute))
	check(SendGridKeyAcme, 599, nextMinute.Add(time.Minute))

	// Running out shows in the headers but never throttles by itself.
	for range SendGridRateLimit {
		get(t, ts, sg+"/v3/scopes", SendGridKeyBeta)
	}
	if a := get(t, ts, sg+"/v3/scopes", SendGridKeyBeta); a.Status != 200 || a.Header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("exhausted window: %d remaining=%s", a.Status, a.Header.Get("X-RateLimit-Remaining"))
	}
}

func TestSendGridAccountForIsACopy(t *testing.T) {
	a, ok := SendGridAccountFor(SendGridKeyAcme)
	if !ok || a.Name != "acme" || len(a.Teammates) != 7 || len(a.PendingTeammates) != 3 || len(a.APIKeys) != 5 || len(a.Subusers) != 5 {
		t.Fatalf("acme fixture %+v", a)
	}
	a.Scopes[0] = "changed"
	a.Teammates[0].UserType = "changed"
	b, _ := SendGridAccountFor(SendGridKeyAcme)
	if b.Scopes[0] == "changed" || b.Teammates[0].UserType == "changed" {
		t.Error("SendGridAccountFor shares its slices with the simulator")
	}
	if _, ok := SendGridAccountFor("SG.nope"); ok {
		t.Error("unknown key found")
	}
	if SendGridDayStats("SG.nope", testNow) != nil || SendGridRangeStats("SG.nope", testNow, testNow) != nil {
		t.Error("stats for an unknown key")
	}
}

// TestSendGridSubuserSums: every subuser's totals, ranked by the asked
// metric; the parent's own stats do not include them.
func TestSendGridSubuserSums(t *testing.T) {
	_, ts, _ := newSim(t, Options{})
	type sums struct {
		Date  string
		Stats []struct {
			Name    string
			Type    string
			Metrics map[string]int64
		}
	}
	var r sums
	get(t, ts, sg+"/v3/subusers/stats/sums?start_date=2026-02-01&end_date=2026-02-28&sort_by_metric=requests&limit=50", SendGridKeyAcme).decode(t, &r)
	var names []string
	for _, s := range r.Stats {
		names = append(names, s.Name)
		want := SendGridSubuserRangeStats(SendGridKeyAcme, s.Name, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC))
		if s.Type != "subuser" || s.Metrics["requests"] != want["requests"] || s.Metrics["delivered"] != want["delivered"] {
			t.Errorf("%s: %+v, want %v", s.Name, s, want)
		}
	}
	if got := strings.Join(names, ","); r.Date != "2026-02-01" || got != "acme-transactional,acme-marketing,acme-eu,acme-legacy,acme-trial" {
		t.Errorf("date %s, order %s", r.Date, got)
	}
	// Defaults: sorted by delivered, 5 at most; limit and offset page.
	get(t, ts, sg+"/v3/subusers/stats/sums?start_date=2026-03-01&sort_by_direction=asc&limit=2&offset=3", SendGridKeyAcme).decode(t, &r)
	if len(r.Stats) != 2 || r.Stats[0].Name != "acme-marketing" || r.Stats[1].Name != "acme-transactional" {
		t.Errorf("ascending page: %+v", r.Stats)
	}
	// The parent's /v3/stats are its own mail: less than one subuser's.
	var parent []struct {
		Stats []struct{ Metrics map[string]int64 }
	}
	get(t, ts, sg+"/v3/stats?start_date=2026-02-01&end_date=2026-02-28&aggregated_by=month", SendGridKeyAcme).decode(t, &parent)
	if len(parent) != 1 || parent[0].Stats[0].Metrics["requests"] != SendGridRangeStats(SendGridKeyAcme, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC))["requests"] {
		t.Errorf("parent stats %+v", parent)
	}
	if a := get(t, ts, sg+"/v3/subusers/stats/sums?start_date=2026-03-01", SendGridKeyBeta); a.Status != 403 {
		t.Errorf("beta without the scope: %d", a.Status)
	}
}

func TestSendGridSubuserCredits(t *testing.T) {
	_, ts, _ := newSim(t, Options{}) // Sunday 2026-03-15
	type credits struct {
		Type           string
		ResetFrequency *string `json:"reset_frequency"`
		Remain, Total  *int64
		Used           *int64
	}
	var c credits
	get(t, ts, sg+"/v3/subusers/acme-transactional/credits", SendGridKeyAcme).decode(t, &c)
	week := SendGridSubuserRangeStats(SendGridKeyAcme, "acme-transactional", time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC), testNow)["requests"]
	if c.Type != "recurring" || *c.ResetFrequency != "weekly" || *c.Total != 60000 || *c.Used != week || *c.Remain != 60000-week {
		t.Errorf("weekly credits %+v (week's requests %d)", c, week)
	}
	c = credits{}
	get(t, ts, sg+"/v3/subusers/acme-eu/credits", SendGridKeyAcme).decode(t, &c)
	if c.Type != "unlimited" || c.Remain != nil || c.Total != nil || c.Used != nil || c.ResetFrequency != nil {
		t.Errorf("unlimited credits %+v", c)
	}
	get(t, ts, sg+"/v3/subusers/acme-legacy/credits", SendGridKeyAcme).decode(t, &c)
	if c.Type != "nonrecurring" || c.Remain == nil || *c.Remain != 500 || c.Total != nil {
		t.Errorf("nonrecurring credits %+v", c)
	}
	if a := get(t, ts, sg+"/v3/subusers/nobody/credits", SendGridKeyAcme); a.Status != 400 || !strings.Contains(string(a.Body), "No user found") {
		t.Errorf("unknown subuser: %d %s", a.Status, a.Body)
	}
}

// TestSendGridRegions: each host answers only its region's keys.
func TestSendGridRegions(t *testing.T) {
	_, ts, _ := newSim(t, Options{})
	for _, c := range []struct {
		prefix, key string
		want        int
	}{
		{"/sendgrid", SendGridKeyAcme, 200},
		{"/sendgrid-eu", SendGridKeyEuro, 200},
		{"/sendgrid", SendGridKeyEuro, 401},
		{"/sendgrid-eu", SendGridKeyAcme, 401},
		{"/sendgrid-eu", SendGridKeyBeta, 401},
	} {
		if a := get(t, ts, c.prefix+"/v3/scopes", c.key); a.Status != c.want {
			t.Errorf("%s with %s: %d, want %d", c.prefix, c.key[:25], a.Status, c.want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/sendgrid/v3/user/credits", nil)
	req.Header.Set("Authorization", "Bearer "+SendGridKeyAcme)
	req.Header.Set("On-Behalf-Of", "acme-marketing")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Errorf("on-behalf-of answered as if modelled: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	var cr SendGridCredits
	get(t, ts, "/sendgrid-eu/v3/user/credits", SendGridKeyEuro).decode(t, &cr)
	// testNow is Sunday 2026-03-15: the week began on Monday the 9th.
	if cr.ResetFrequency != "weekly" || cr.LastReset != "2026-03-09" || cr.NextReset != "2026-03-16" {
		t.Errorf("weekly credits %+v", cr)
	}
}
