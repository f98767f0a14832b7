package main

// Round trips of one cold collection (issue #17): the longest chain of
// vendor calls that wait for each other. The simulator adds the same
// latency to every call and everything runs in a synctest bubble, where
// the fake clock moves only while every goroutine waits: a collection's
// fake duration is exactly (round trips) × latency, whatever the machine's
// load. No wall-clock threshold is involved.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/provider/segment"
	"github.com/saas-exporter/saas_exporter/provider/sendgrid"
	"github.com/saas-exporter/saas_exporter/provider/twilio"
	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

const depthLatency = 100 * time.Millisecond

// inProcess serves every request with the simulator's handler, in the
// caller's goroutine: no sockets, so the whole exchange stays inside the
// bubble. It records the most calls that were in flight at once.
type inProcess struct {
	h        http.Handler
	inFlight *atomic.Int64
	most     *atomic.Int64
}

func newInProcess(h http.Handler) inProcess {
	return inProcess{h: h, inFlight: new(atomic.Int64), most: new(atomic.Int64)}
}

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	n := t.inFlight.Add(1)
	defer t.inFlight.Add(-1)
	for m := t.most.Load(); n > m && !t.most.CompareAndSwap(m, n); m = t.most.Load() {
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}

// depthRig is an engine over a bolt store and the three providers, all
// pointed at an in-process simulator.
type depthRig struct {
	sim       *vendorsim.Server
	store     store.Store
	engine    *collector.Engine
	providers []provider.Provider
	client    func(vendor string) *http.Client
}

func newDepthRig(t testing.TB, vendorConcurrency int) *depthRig {
	t.Helper()
	sim := vendorsim.New(vendorsim.Options{PageSize: 100})
	ps := freshProviders(t, sim)
	st := store.NewMemory()
	eng := collector.New(collector.Options{Store: st, Providers: ps, Timeout: 8 * time.Second,
		MinInterval: time.Hour, VendorConcurrency: vendorConcurrency, Transport: newInProcess(sim.Handler())})
	t.Cleanup(func() { eng.Close(); sim.Close() })
	return &depthRig{sim: sim, store: st, engine: eng, providers: ps, client: eng.Client}
}

// eachVendor runs f for each vendor in a synctest bubble, with one
// connection (synthetic account 1) stored through the vendor's connect
// check.
func eachVendor(t *testing.T, f func(t *testing.T, r *depthRig, vendor string)) {
	for _, vendor := range []string{"sendgrid", "twilio", "segment"} {
		t.Run(vendor, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				toPresent()
				r := newDepthRig(t, 0)
				r.connect(t, vendor, 1)
				f(t, r, vendor)
				// Lets client timers (SDK timeouts) fire before the bubble ends.
				time.Sleep(time.Hour)
			})
		})
	}
}

// connect stores synthetic account n of vendor, verified as the API does.
func (r *depthRig) connect(t testing.TB, vendor string, n int) {
	t.Helper()
	ctx := context.Background()
	var (
		cred *provider.Credential
		err  error
	)
	p := provider.Find(r.providers, vendor)
	switch vendor {
	case "twilio":
		sid := vendorsim.TwilioSyntheticAccount(n)
		if err := r.sim.AuthorizeTwilioAccount(sid); err != nil {
			t.Fatal(err)
		}
		cred = &provider.Credential{AccountID: sid, Account: sid, AuthMethod: "connect", Secret: map[string]string{}}
	case "sendgrid":
		cred, err = p.Methods()[0].(provider.FormMethod).Verify(ctx, r.client(vendor), map[string]string{"api_key": vendorsim.SendGridSyntheticKey(n)})
	case "segment":
		cred, err = p.Methods()[0].(provider.FormMethod).Verify(ctx, r.client(vendor), map[string]string{"token": vendorsim.SegmentSyntheticToken(n), "region": "us"})
	}
	if err != nil {
		t.Fatalf("verifying %s account %d: %v", vendor, n, err)
	}
	now := time.Now()
	c := store.Connection{ID: fmt.Sprintf("%s-%d", vendor, n), Vendor: vendor, Name: fmt.Sprintf("%s-%d", vendor, n),
		AuthMethod: cred.AuthMethod, AccountID: cred.AccountID, Account: cred.Account, Secret: cred.Secret,
		Settings: cred.Settings, Scopes: cred.Scopes, MissingScopes: cred.MissingScopes, Expiry: cred.Expiry,
		Created: now, Status: store.Status{State: store.StateActive, Updated: now}}
	if err := r.store.Put(ctx, c); err != nil {
		t.Fatal(err)
	}
}

// toPresent moves the bubble's clock (which starts in 2000) to a fixed
// day of 2026: vendors send reset times as Unix seconds, and before 2001
// those look like a number of seconds from now.
func toPresent() {
	time.Sleep(time.Until(time.Date(2026, 11, 17, 9, 30, 0, 0, time.UTC)))
}

// restart replaces the engine and the providers, as a new process would
// (nothing learnt in memory), with the given min_interval and transport.
func (r *depthRig) restart(t *testing.T, minInterval time.Duration, tr http.RoundTripper) {
	t.Helper()
	r.engine.Close()
	r.providers = freshProviders(t, r.sim)
	r.engine = collector.New(collector.Options{Store: r.store, Providers: r.providers, Timeout: 8 * time.Second,
		MinInterval: minInterval, Transport: tr})
	t.Cleanup(r.engine.Close)
}

// scrape serves one /metrics and returns the body.
func (r *depthRig) scrape(t *testing.T) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	rec := httptest.NewRecorder()
	r.engine.MetricsHandler(prometheus.NewRegistry()).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics answered %d", rec.Code)
	}
	return rec.Body.String()
}

// TestColdCollectionRoundTrips: a fresh process's first collection of one
// connection of each vendor waits for at most two vendor round trips, and
// collects every section (saas_scrape_success 1).
func TestColdCollectionRoundTrips(t *testing.T) {
	eachVendor(t, func(t *testing.T, r *depthRig, vendor string) {
		// A fresh engine, as after a restart: nothing learnt in memory.
		r.restart(t, time.Hour, newInProcess(r.sim.Handler()))
		r.sim.SetFault(vendor, vendorsim.Fault{Latency: depthLatency})
		r.sim.ResetCalls()
		start := time.Now()
		body := r.scrape(t)
		rounds := float64(time.Since(start)) / float64(depthLatency)
		if !strings.Contains(body, `saas_scrape_success{connection="`+vendor+`-1",vendor="`+vendor+`"} 1`) {
			t.Fatalf("the cold collection did not succeed:\n%s", grepLines(body, vendor+"-1"))
		}
		t.Logf("%s: %.0f round trips, %d calls: %v", vendor, rounds, r.sim.Calls(vendor), r.sim.CallCounts().Routes)
		if rounds > 2 {
			t.Errorf("a cold %s collection waited for %.0f round trips of %d calls, want at most 2", vendor, rounds, r.sim.Calls(vendor))
		}
	})
}

// freshProviders builds the providers again: no memory of earlier
// collections (Segment's known periods, SendGrid's last scope check).
func freshProviders(t testing.TB, sim *vendorsim.Server) []provider.Provider {
	t.Helper()
	var cfg struct {
		Vendors map[string]yaml.Node `yaml:"vendors"`
	}
	if err := yaml.Unmarshal([]byte(sim.ConfigSnippet("http://sim.test")), &cfg); err != nil {
		t.Fatal(err)
	}
	ps, err := provider.Build([]provider.Factory{sendgrid.Factory(), twilio.Factory(), segment.Factory()}, cfg.Vendors, provider.Env{ExternalURL: "http://exporter.test"})
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func grepLines(body string, words ...string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

// TestCallBoundHonoured: however wide a collection gets, one account never
// has more calls in flight than its provider's documented bound. A Segment
// connection with no stored period searches 31 days at once, so its
// bound is reached, not only respected.
func TestCallBoundHonoured(t *testing.T) {
	eachVendor(t, func(t *testing.T, r *depthRig, vendor string) {
		if vendor == "segment" {
			forgetStoredPeriod(t, r.store, vendor+"-1")
		}
		tr := newInProcess(r.sim.Handler())
		r.restart(t, time.Hour, tr)
		r.sim.SetFault(vendor, vendorsim.Fault{Latency: depthLatency})
		r.scrape(t)
		bound := provider.Find(r.providers, vendor).(provider.CallBound).MaxConcurrentCalls()
		t.Logf("%s: at most %d calls in flight, bound %d", vendor, tr.most.Load(), bound)
		if tr.most.Load() > int64(bound) {
			t.Errorf("%d calls in flight to one %s account, bound %d", tr.most.Load(), vendor, bound)
		}
		if vendor == "segment" && tr.most.Load() != int64(bound) {
			t.Errorf("the period search had %d calls in flight, want the bound %d", tr.most.Load(), bound)
		}
	})
}

func forgetStoredPeriod(t *testing.T, st store.Store, id string) {
	t.Helper()
	c, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if c.Settings["usage_period_start"] == "" {
		t.Fatal("connecting stored no usage_period_start")
	}
	delete(c.Settings, "usage_period_start")
	if err := st.Put(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}

// TestRateLimitBacksOff: the simulator's rate-limit fault (429 with the
// vendor's headers, 60 s) makes the connection rate_limited; no call goes
// to that vendor until the reset, even with scrapes after min_interval,
// and collection resumes after it.
func TestRateLimitBacksOff(t *testing.T) {
	eachVendor(t, func(t *testing.T, r *depthRig, vendor string) {
		r.restart(t, 5*time.Second, newInProcess(r.sim.Handler()))
		r.sim.SetFault(vendor, vendorsim.Fault{RateLimit: true, RetryAfter: time.Minute})
		r.sim.ResetCalls()
		body := r.scrape(t)
		state := `saas_connection_state{connection="` + vendor + `-1",state="rate_limited",vendor="` + vendor + `"} 1`
		if !strings.Contains(body, state) {
			t.Fatalf("after 429s the connection is not rate_limited:\n%s", grepLines(body, vendor+"-1"))
		}
		limited := r.sim.Calls(vendor)
		if limited == 0 {
			t.Fatal("no call reached the simulator")
		}
		for range 5 { // 50 s: min_interval passes 10 times, the limit does not
			time.Sleep(10 * time.Second)
			r.scrape(t)
		}
		if got := r.sim.Calls(vendor); got != limited {
			t.Errorf("%d calls during the rate limit, want none", got-limited)
		}
		r.sim.ClearFaults()
		time.Sleep(15 * time.Second) // past the 60 s reset
		body = r.scrape(t)
		if r.sim.Calls(vendor) == limited {
			t.Error("no call after the rate limit ended")
		}
		if !strings.Contains(body, `saas_scrape_success{connection="`+vendor+`-1",vendor="`+vendor+`"} 1`) {
			t.Errorf("not collected after the rate limit:\n%s", grepLines(body, vendor+"-1"))
		}
	})
}
