package vendorsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

// benchNow is the simulator's clock in the call-cost benchmark: mid-month,
// so stats ranges span many days, as in the bench's runs.
var benchNow = time.Date(2026, 11, 17, 9, 30, 0, 0, time.UTC)

// coldCalls are the calls one cold collection of synthetic account n makes
// of each vendor (as bench/depth_test.go's TestColdCollectionRoundTrips
// logs them: SendGrid 19, Twilio 7, Segment 11), with dates as of now.
func coldCalls(n int, now time.Time) []*http.Request {
	today := utcDay(now)
	monthStart := bucketStart(today, "month")
	lastStart, lastEnd := monthStart.AddDate(0, -1, 0), monthStart.AddDate(0, 0, -1)
	d := func(t time.Time) string { return t.Format(dateLayout) }
	sums := func(from, to time.Time) string {
		return "/v3/subusers/stats/sums?end_date=" + d(to) + "&limit=50&offset=0&sort_by_direction=desc&sort_by_metric=requests&start_date=" + d(from)
	}
	var reqs []*http.Request
	add := func(path, auth, accept string) {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set("Authorization", auth)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		reqs = append(reqs, r)
	}

	sg := "Bearer " + SendGridSyntheticKey(n)
	a := sendGridSynthetic(n)
	for _, p := range []string{
		"/v3/scopes", "/v3/user/account", "/v3/user/credits", "/v3/teammates/pending", "/v3/api_keys?limit=500",
		"/v3/subusers?limit=500&offset=0", "/v3/teammates?limit=500&offset=0",
		"/v3/stats?aggregated_by=month&end_date=" + d(today) + "&start_date=" + d(monthStart),
		"/v3/stats?aggregated_by=month&end_date=" + d(lastEnd) + "&start_date=" + d(lastStart),
		"/v3/stats?aggregated_by=day&end_date=" + d(today) + "&start_date=" + d(today),
		sums(monthStart, today), sums(monthStart, today), sums(lastStart, lastEnd), sums(today, today),
	} {
		add("/sendgrid"+p, sg, "application/json")
	}
	for _, su := range a.Subusers {
		add("/sendgrid/v3/subusers/"+su.Username+"/credits", sg, "application/json")
	}

	sid := TwilioSyntheticAccount(n)
	tw := "/twilio/2010-04-01/Accounts"
	twAuth := "Basic " + basicAuth(sid, TwilioOwnerAuthToken)
	for _, p := range []string{
		".json?PageSize=1000",
		"/" + sid + "/Usage/Records/Today.json?IncludeSubaccounts=true&PageSize=1000",
		"/" + sid + "/Usage/Records/ThisMonth.json?IncludeSubaccounts=true&PageSize=1000",
		"/" + sid + "/Usage/Records/LastMonth.json?IncludeSubaccounts=true&PageSize=1000",
		"/" + sid + "/IncomingPhoneNumbers.json?PageSize=1000",
	} {
		add(tw+p, twAuth, "application/json")
	}
	add(tw+"/"+sid+"/Balance.json", twAuth, "")
	add(tw+"/"+sid+".json", twAuth, "")

	seg := "Bearer " + SegmentSyntheticToken(n)
	ws := segmentSynthetic(n)
	this, _ := ws.PeriodOf(now)
	last := this.AddDate(0, -1, 0)
	for _, p := range []string{
		"/usage/api-calls/daily?pagination.count=1000&period=" + d(last),
		"/usage/mtu/daily?pagination.count=1000&period=" + d(this),
		"/usage/api-calls/daily?pagination.count=1000&period=" + d(this),
		"/usage/mtu/daily?pagination.count=1000&period=" + d(last),
		"/usage/mtu/sources/daily?pagination.count=1000&period=" + d(this),
		"/usage/api-calls/sources/daily?pagination.count=1000&period=" + d(this),
		"/destinations?pagination.count=1000", "/warehouses?pagination.count=1000", "/users?pagination.count=1000",
		"/invites?pagination.count=1000", "/sources?pagination.count=1000",
	} {
		add("/segment/us"+p, seg, segmentV1)
	}
	return reqs
}

func basicAuth(user, pass string) string {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")[len("Basic "):]
}

// BenchmarkSyntheticCalls measures the simulator's CPU for the calls of
// one cold collection of a connection of each vendor (37 calls), a new
// synthetic account each iteration, as a cold scrape of many connections
// makes them. ns/op divided by 37 is the cost of one call. cpu-ns/op is
// the process's CPU time (garbage collection included) per iteration:
// steadier than ns/op when another process shares the cores.
func BenchmarkSyntheticCalls(b *testing.B) {
	sim := New(Options{PageSize: 100, Now: func() time.Time { return benchNow }})
	defer sim.Close()
	h := sim.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := range b.N {
		n := 1 + i%1_000_000
		if err := sim.AuthorizeTwilioAccount(TwilioSyntheticAccount(n)); err != nil {
			b.Fatal(err)
		}
		for _, r := range coldCalls(n, benchNow) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				b.Fatalf("%s: %d %s", r.URL, rec.Code, rec.Body)
			}
		}
	}
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// TestColdCallsAnswer keeps the benchmark's call list honest: every call
// answers 200, and there are as many as a cold collection makes.
func TestColdCallsAnswer(t *testing.T) {
	sim := New(Options{PageSize: 100, Now: func() time.Time { return benchNow }})
	defer sim.Close()
	for _, n := range []int{0, 1, 2, 5, 12345} {
		if err := sim.AuthorizeTwilioAccount(TwilioSyntheticAccount(n)); err != nil {
			t.Fatal(err)
		}
		reqs := coldCalls(n, benchNow)
		if want := 14 + len(sendGridSynthetic(n).Subusers) + 7 + 11; len(reqs) != want {
			t.Errorf("account %d: %d calls, want %d", n, len(reqs), want)
		}
		for _, r := range reqs {
			rec := httptest.NewRecorder()
			sim.Handler().ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				t.Errorf("account %d: %s: %d %s", n, r.URL, rec.Code, rec.Body)
			}
		}
	}
}

// TestSyntheticCache: a memoized synthetic account is the one its number
// builds, also after another number took its slot and back.
func TestSyntheticCache(t *testing.T) {
	for _, n := range []int{0, 1, 7, synthSlots - 1, synthSlots, synthSlots + 7, 3*synthSlots + 1, SyntheticMax} {
		for range 2 { // the first call builds, the second finds it cached
			a, _ := sendGridAccount(SendGridSyntheticKey(n))
			if !reflect.DeepEqual(a, sendGridSynthetic(n)) || a.Name != fmt.Sprintf("vendorsim-gen-%d", n) {
				t.Errorf("SendGrid account %d: got %s", n, a.Name)
			}
			ws, _ := segmentWorkspace(SegmentSyntheticToken(n))
			if !reflect.DeepEqual(ws, segmentSynthetic(n)) || ws.ID != fmt.Sprintf("GenVendorsim%010d", n) {
				t.Errorf("Segment workspace %d: got %s", n, ws.ID)
			}
			tw := twilioAccount(TwilioSyntheticAccount(n))
			if !reflect.DeepEqual(tw, twilioSynthetic(n)) || tw.Sid != TwilioSyntheticAccount(n) {
				t.Errorf("Twilio account %d: got %s", n, tw.Sid)
			}
		}
	}
	// Numbers sharing a slot, in turn.
	for _, n := range []int{5, 5 + synthSlots, 5, 5 + 2*synthSlots, 5 + synthSlots} {
		if a, _ := sendGridAccount(SendGridSyntheticKey(n)); a.UserID != int64(10_000_000_000+n) {
			t.Errorf("account %d: user id %d", n, a.UserID)
		}
	}
}

// TestSyntheticCacheConcurrent: callers racing on one slot each get their
// own account (run with -race).
func TestSyntheticCacheConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				n := 11 + (g+i)%3*synthSlots
				if a, _ := sendGridAccount(SendGridSyntheticKey(n)); a.UserID != int64(10_000_000_000+n) {
					t.Errorf("account %d: user id %d", n, a.UserID)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestSendGridMetricsWire: each index of sgMetrics goes out under its
// name in sendGridMetrics, and the names are in the order encoding/json
// gives a map's keys.
func TestSendGridMetricsWire(t *testing.T) {
	if !slices.IsSorted(sendGridMetrics) || len(sendGridMetrics) != sgMetricCount {
		t.Fatalf("sendGridMetrics must hold the %d names in sorted order: %v", sgMetricCount, sendGridMetrics)
	}
	for i, name := range sendGridMetrics {
		var m sgMetrics
		m[i] = 7
		b, err := json.Marshal(m.wire())
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]int64
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{}
		for _, n := range sendGridMetrics {
			want[n] = 0
		}
		want[name] = 7
		if !reflect.DeepEqual(got, want) {
			t.Errorf("index %d (%s): %s", i, name, b)
		}
		if mb, _ := json.Marshal(m.toMap()); string(mb) != string(b) {
			t.Errorf("index %d: %s, a map gives %s", i, b, mb)
		}
	}
}
