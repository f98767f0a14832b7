package vendorsim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// mountDummy adds a vendor without a FaultWriter, to test the generic path.
func mountDummy(sim *Server) {
	sim.Mount("dummy", "/dummy", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"path": r.URL.Path, "filler": strings.Repeat("x", 40)})
	}))
}

// trackedSim serves sim through a wrapper that reports each finished
// handler call on the returned channel, so tests can see that a call held
// by a fault really ended (no leaked goroutine).
func trackedSim(t *testing.T) (*Server, *httptest.Server, <-chan struct{}) {
	t.Helper()
	sim := New(Options{Now: (&fakeClock{t: testNow}).Now})
	done := make(chan struct{}, 16)
	h := sim.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(sim.Close)
	return sim, ts, done
}

func waitReturned(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the handler still runs 10s after the client gave up", what)
	}
}

func TestFaultJSON(t *testing.T) {
	f := Fault{Latency: 150 * time.Millisecond, Status: 502, RateLimit: true, RetryAfter: 30 * time.Second, Hang: true, Truncate: true, HTML: true, Reset: true}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"latency":"150ms","status":502,"rate_limit":true,"retry_after":"30s","hang":true,"truncate":true,"html":true,"reset":true}`
	if string(b) != want {
		t.Errorf("marshal: %s, want %s", b, want)
	}
	var back Fault
	if err := json.Unmarshal(b, &back); err != nil || back != f {
		t.Errorf("round trip: %+v %v", back, err)
	}
	// Go field names work too.
	if err := json.Unmarshal([]byte(`{"Latency":"1s","RateLimit":true,"RetryAfter":"2m"}`), &back); err != nil ||
		back != (Fault{Latency: time.Second, RateLimit: true, RetryAfter: 2 * time.Minute}) {
		t.Errorf("Go names: %+v %v", back, err)
	}
	for in, says := range map[string]string{
		`{"latency":100}`:   `"100ms"`,
		`{"latency":"1x"}`:  "not a duration",
		`{"hang":"yes"}`:    "true or false",
		`{"status":"503"}`:  "HTTP status number",
		`{"slow":true}`:     "unknown fault field \"slow\"; known fields: error_body, hang, html, latency, rate_limit, reset, retry_after, status, truncate",
		`[1]`:               "JSON object",
		`{"retry_after":5}`: "duration string",
	} {
		err := json.Unmarshal([]byte(in), &back)
		if err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v, want an error saying %q", in, err, says)
		}
	}
	for f, says := range map[Fault]string{
		{Status: 404}:                  "not a 5xx",
		{Status: 429}:                  "use rate_limit",
		{Latency: -time.Second}:        "negative",
		{RetryAfter: -time.Nanosecond}: "negative",
	} {
		if err := f.Validate(); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("Validate(%+v) = %v, want %q", f, err, says)
		}
	}
	if err := (Fault{Status: 599}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestFaultControlAPI(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	a := do(t, ts, "PUT", "/_sim/faults/sendgrid", "", "application/json", `{"latency":"10ms","status":503}`)
	if a.Status != 200 {
		t.Fatalf("PUT: %d %s", a.Status, a.Body)
	}
	if got := sim.Faults()["sendgrid"]; got != (Fault{Latency: 10 * time.Millisecond, Status: 503}) {
		t.Errorf("fault set over HTTP: %+v", got)
	}
	if a := get(t, ts, "/_sim/faults", ""); a.Status != 200 || strings.TrimSpace(string(a.Body)) != `{"sendgrid":{"latency":"10ms","status":503}}` {
		t.Errorf("GET faults: %d %s", a.Status, a.Body)
	}
	if a := get(t, ts, sg+"/v3/scopes", SendGridKeyAcme); a.Status != 503 {
		t.Errorf("fault not applied: %d", a.Status)
	}
	if a := do(t, ts, "DELETE", "/_sim/faults/sendgrid", "", "", ""); a.Status != 204 || len(sim.Faults()) != 0 {
		t.Errorf("DELETE one: %d %v", a.Status, sim.Faults())
	}
	sim.SetFault("sendgrid", Fault{HTML: true})
	if a := do(t, ts, "DELETE", "/_sim/faults", "", "", ""); a.Status != 204 || len(sim.Faults()) != 0 {
		t.Errorf("DELETE all: %d %v", a.Status, sim.Faults())
	}
	if a := get(t, ts, sg+"/v3/scopes", SendGridKeyAcme); a.Status != 200 {
		t.Errorf("after clearing: %d", a.Status)
	}
	// An empty fault clears too.
	sim.SetFault("sendgrid", Fault{HTML: true})
	if a := do(t, ts, "PUT", "/_sim/faults/sendgrid", "", "application/json", `{}`); a.Status != 200 || len(sim.Faults()) != 0 {
		t.Errorf("PUT {}: %d %v", a.Status, sim.Faults())
	}

	for _, c := range []struct {
		method, path, body string
		want               int
		says               string
	}{
		{"PUT", "/_sim/faults/nosuch", `{"status":503}`, 404, `unknown vendor \"nosuch\"; mounted vendors: sendgrid`},
		{"PUT", "/_sim/faults/sendgrid", `{"status":404}`, 400, "not a 5xx"},
		{"PUT", "/_sim/faults/sendgrid", `{"latency":"soon"}`, 400, "not a duration"},
		{"PUT", "/_sim/faults/sendgrid", `not json`, 400, "JSON object"},
		{"PUT", "/_sim/faults/sendgrid", `{"bogus":1}`, 400, "unknown fault field"},
		{"DELETE", "/_sim/faults/nosuch", ``, 404, "unknown vendor"},
		{"GET", "/_sim/nothing", ``, 404, "no such control endpoint"},
		{"POST", "/_sim/faults/sendgrid", `{}`, 404, "no such control endpoint POST /_sim/faults/sendgrid"},
	} {
		a := do(t, ts, c.method, c.path, "", "application/json", c.body)
		if a.Status != c.want || !strings.Contains(string(a.Body), c.says) {
			t.Errorf("%s %s %s: %d %s, want %d containing %q", c.method, c.path, c.body, a.Status, a.Body, c.want, c.says)
		}
	}
	if len(sim.Faults()) != 0 {
		t.Errorf("rejected requests changed faults: %v", sim.Faults())
	}
}

func TestSetFaultPanicsOnBugs(t *testing.T) {
	sim := New(Options{})
	for name, f := range map[string]func(){
		"unknown vendor": func() { sim.SetFault("sendgird", Fault{Status: 500}) },
		"invalid fault":  func() { sim.SetFault("sendgrid", Fault{Status: 200}) },
		"bad prefix":     func() { sim.Mount("x", "x/", http.NotFoundHandler()) },
		"control prefix": func() { sim.Mount("x", "/_sim/x", http.NotFoundHandler()) },
		"duplicate":      func() { sim.Mount("x", "/sendgrid", http.NotFoundHandler()) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestFaultStatus(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	mountDummy(sim)
	sim.SetFault("sendgrid", Fault{Status: 503})
	a := get(t, ts, sg+"/v3/scopes", SendGridKeyAcme)
	if a.Status != 503 || strings.TrimSpace(string(a.Body)) != `{"errors":[{"message":"service unavailable"}]}` {
		t.Errorf("sendgrid 503: %d %s", a.Status, a.Body)
	}
	if a.Header.Get("X-RateLimit-Remaining") == "" {
		t.Error("no rate-limit headers on a 5xx")
	}
	// Faults are per vendor.
	if a := get(t, ts, "/dummy/x", ""); a.Status != 200 {
		t.Errorf("dummy affected by a sendgrid fault: %d", a.Status)
	}
	sim.SetFault("dummy", Fault{Status: 500})
	a = get(t, ts, "/dummy/x", "")
	if a.Status != 500 || strings.TrimSpace(string(a.Body)) != `{"error":"Internal Server Error"}` {
		t.Errorf("dummy 500 (generic shape): %d %s", a.Status, a.Body)
	}
}

func TestFaultRateLimit(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	mountDummy(sim)
	for _, c := range []struct {
		retry time.Duration
		reset time.Time
	}{{0, testNow.Add(60 * time.Second)}, {5 * time.Second, testNow.Add(5 * time.Second)}, {1500 * time.Millisecond, testNow.Add(2 * time.Second)}} {
		sim.SetFault("sendgrid", Fault{RateLimit: true, RetryAfter: c.retry})
		a := get(t, ts, sg+"/v3/stats?start_date=2026-03-01", SendGridKeyAcme)
		if a.Status != 429 || strings.TrimSpace(string(a.Body)) != `{"errors":[{"field":null,"message":"too many requests"}]}` {
			t.Errorf("retry %s: %d %s", c.retry, a.Status, a.Body)
		}
		if a.Header.Get("X-RateLimit-Limit") != "600" || a.Header.Get("X-RateLimit-Remaining") != "0" ||
			a.Header.Get("X-RateLimit-Reset") != strconv.FormatInt(c.reset.Unix(), 10) {
			t.Errorf("retry %s: headers %v, want reset %d", c.retry, a.Header, c.reset.Unix())
		}
	}
	sim.SetFault("dummy", Fault{RateLimit: true, RetryAfter: 7 * time.Second})
	if a := get(t, ts, "/dummy/x", ""); a.Status != 429 || a.Header.Get("Retry-After") != "7" {
		t.Errorf("dummy 429: %d Retry-After=%q", a.Status, a.Header.Get("Retry-After"))
	}
}

func TestFaultLatency(t *testing.T) {
	sim, ts, done := trackedSim(t)
	const latency = 30 * time.Millisecond
	sim.SetFault("sendgrid", Fault{Latency: latency})
	start := time.Now()
	if a := get(t, ts, sg+"/v3/scopes", SendGridKeyAcme); a.Status != 200 {
		t.Fatalf("with latency: %d", a.Status)
	}
	// A lower bound only: a timer never fires early.
	if el := time.Since(start); el < latency {
		t.Errorf("answered after %s, latency %s", el, latency)
	}
	waitReturned(t, done, "latency")

	// A client that gives up ends the wait.
	sim.SetFault("sendgrid", Fault{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+sg+"/v3/scopes", nil)
	if resp, err := ts.Client().Do(req); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("want the client's deadline, got %v", err)
	}
	waitReturned(t, done, "latency after cancel")
}

func TestFaultHang(t *testing.T) {
	sim, ts, done := trackedSim(t)
	sim.SetFault("sendgrid", Fault{Hang: true})

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+sg+"/v3/scopes", nil)
		resp, err := ts.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitCalls(t, sim, "sendgrid", 1)
	select {
	case err := <-errc:
		t.Fatalf("a hanging call answered: %v", err)
	default:
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("want the client's cancel, got %v", err)
	}
	waitReturned(t, done, "hang after cancel")

	// Close releases a hanging call by dropping its connection.
	go func() {
		resp, err := ts.Client().Get(ts.URL + sg + "/v3/scopes")
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitCalls(t, sim, "sendgrid", 2)
	sim.Close()
	if err := <-errc; err == nil {
		t.Error("a hang released by Close looked like an answer")
	}
	waitReturned(t, done, "hang after Close")
}

// waitCalls waits until vendor has received n calls.
func waitCalls(t *testing.T, sim *Server, vendor string, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for sim.Calls(vendor) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s received %d calls, want %d", vendor, sim.Calls(vendor), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFaultTruncate(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	const path = sg + "/v3/teammates"
	whole := get(t, ts, path, SendGridKeyAcme)
	sim.SetFault("sendgrid", Fault{Truncate: true})
	cut := get(t, ts, path, SendGridKeyAcme)
	if cut.Status != 200 || string(cut.Body) != string(whole.Body[:len(whole.Body)/2]) {
		t.Errorf("truncated body %q, want the first half of %q", cut.Body, whole.Body)
	}
	if cut.Header.Get("Content-Length") != strconv.Itoa(len(cut.Body)) {
		t.Errorf("Content-Length %s for %d bytes", cut.Header.Get("Content-Length"), len(cut.Body))
	}
	if json.Valid(cut.Body) {
		t.Error("truncated body is still valid JSON")
	}
	// Error bodies are cut too.
	sim.SetFault("sendgrid", Fault{Truncate: true, Status: 500})
	if a := get(t, ts, path, SendGridKeyAcme); a.Status != 500 || json.Valid(a.Body) || len(a.Body) == 0 {
		t.Errorf("truncated 500: %d %q", a.Status, a.Body)
	}
}

func TestFaultHTML(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	sim.SetFault("sendgrid", Fault{HTML: true})
	a := get(t, ts, sg+"/v3/scopes", SendGridKeyAcme)
	if a.Status != 200 || a.Header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.HasPrefix(string(a.Body), "<!doctype html>") {
		t.Errorf("HTML fault: %d %s %q", a.Status, a.Header.Get("Content-Type"), a.Body)
	}
}

func TestFaultReset(t *testing.T) {
	sim, ts, done := trackedSim(t)
	sim.SetFault("sendgrid", Fault{Reset: true})
	// No keep-alive: Go's transport retries a request that fails on a
	// reused connection, which would hide one reset.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(ts.URL + sg + "/v3/scopes")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("reset connection answered %d %q", resp.StatusCode, body)
	}
	waitReturned(t, done, "reset")
	if n := sim.Calls("sendgrid"); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

// Faults apply to vendor prefixes only: the control API and the index page
// keep working whatever a vendor does.
func TestFaultsSpareControlRoutes(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	for _, f := range []Fault{{Hang: true}, {Reset: true}, {Status: 500}, {HTML: true}, {Truncate: true}, {Latency: time.Hour}, {RateLimit: true}} {
		sim.SetFault("sendgrid", f)
		for _, p := range []string{"/", "/_sim/calls", "/_sim/faults"} {
			if a := get(t, ts, p, ""); a.Status != 200 {
				t.Errorf("fault %+v: GET %s = %d", f, p, a.Status)
			}
		}
		if a := do(t, ts, "POST", "/_sim/sendgrid/revoke", "", "application/json", `{"key":"`+SendGridKeyBeta+`"}`); a.Status != 200 {
			t.Errorf("fault %+v: revoke = %d %s", f, a.Status, a.Body)
		}
	}
	if n := sim.Calls("sendgrid"); n != 0 {
		t.Errorf("control calls counted as vendor calls: %d", n)
	}
}

func TestCalls(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	mountDummy(sim)
	get(t, ts, sg+"/v3/scopes", SendGridKeyAcme)
	get(t, ts, sg+"/v3/scopes?x=1", "")
	get(t, ts, sg+"/v3/stats?start_date=2026-03-01", SendGridKeyAcme)
	sim.SetFault("sendgrid", Fault{Status: 502})
	get(t, ts, sg+"/v3/scopes", SendGridKeyAcme) // faulted calls count
	get(t, ts, "/dummy/a", "")
	get(t, ts, "/_sim/calls", "")
	get(t, ts, "/", "")

	if sim.Calls("sendgrid") != 4 || sim.Calls("dummy") != 1 || sim.Calls("nosuch") != 0 {
		t.Errorf("calls sendgrid=%d dummy=%d", sim.Calls("sendgrid"), sim.Calls("dummy"))
	}
	var c CallCounts
	get(t, ts, "/_sim/calls", "").decode(t, &c)
	want := CallCounts{
		Vendors: map[string]int64{"sendgrid": 4, "dummy": 1},
		Routes:  map[string]int64{"GET /sendgrid/v3/scopes": 3, "GET /sendgrid/v3/stats": 1, "GET /dummy/a": 1},
	}
	if b1, b2 := mustJSON(t, c), mustJSON(t, want); b1 != b2 {
		t.Errorf("GET /_sim/calls = %s, want %s", b1, b2)
	}
	if b1, b2 := mustJSON(t, sim.CallCounts()), mustJSON(t, want); b1 != b2 {
		t.Errorf("CallCounts() = %s, want %s", b1, b2)
	}
	sim.ResetCalls()
	if sim.Calls("sendgrid") != 0 || len(sim.CallCounts().Routes) != 0 {
		t.Error("ResetCalls left counts")
	}
	get(t, ts, "/dummy/b", "")
	if a := do(t, ts, "DELETE", "/_sim/calls", "", "", ""); a.Status != 204 || sim.Calls("dummy") != 0 {
		t.Errorf("DELETE /_sim/calls: %d, dummy=%d", a.Status, sim.Calls("dummy"))
	}
}

func TestCallRoutesBounded(t *testing.T) {
	sim := New(Options{})
	for i := range maxRoutes + 50 {
		sim.countCall("sendgrid", "GET", "/sendgrid/"+strconv.Itoa(i))
	}
	c := sim.CallCounts()
	if len(c.Routes) != maxRoutes+1 || c.Routes[otherRoute] != 50 || c.Vendors["sendgrid"] != maxRoutes+50 {
		t.Errorf("%d routes, other=%d, vendor=%d", len(c.Routes), c.Routes[otherRoute], c.Vendors["sendgrid"])
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestIndexPageAndVendors(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	a := get(t, ts, "/", "")
	body := string(a.Body)
	for _, want := range []string{
		ts.URL + "/sendgrid", SendGridKeyAcme, SendGridKeyBeta, "api_url: " + ts.URL + "/sendgrid",
		"PUT /_sim/faults/{vendor}", "GET /_sim/calls", "POST /_sim/sendgrid/revoke",
		// The exporter, at its external_url (not 127.0.0.1).
		`<a href="` + DefaultTwilioExporterURL + `/">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("index page lacks %q", want)
		}
	}
	if a.Status != 200 || !strings.HasPrefix(a.Header.Get("Content-Type"), "text/html") {
		t.Errorf("index: %d %s", a.Status, a.Header.Get("Content-Type"))
	}
	if a := get(t, ts, "/nothing-here", ""); a.Status != 404 {
		t.Errorf("unknown top-level path: %d", a.Status)
	}
	// Other vendors are mounted too; SendGrid's entry is checked here.
	var sg *VendorInfo
	for _, v := range sim.Vendors() {
		if v.Vendor == "sendgrid" {
			sg = &v
		}
	}
	if sg == nil || len(sg.Prefixes) != 2 || len(sg.Credentials) != 4 { // global and EU hosts; acme, beta, euro, a synthetic example
		t.Errorf("Vendors() sendgrid = %+v", sg)
	}
	const wantCfg = "  sendgrid:\n    api_url: http://127.0.0.1:9800/sendgrid\n    eu_api_url: http://127.0.0.1:9800/sendgrid-eu\n"
	if got := sim.ConfigSnippet("http://127.0.0.1:9800/"); !strings.HasPrefix(got, "vendors:\n") || !strings.Contains(got, wantCfg) {
		t.Errorf("ConfigSnippet = %q, want it to contain %q", got, wantCfg)
	}
}
