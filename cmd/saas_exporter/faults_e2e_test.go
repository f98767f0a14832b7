package main

import (
	"io"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// scrapeWithTimeout scrapes as Prometheus does with scrape_timeout d.
func (s *stack) scrapeWithTimeout(t *testing.T, d string) (string, time.Duration) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+"/metrics", nil)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", d)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	return string(b), time.Since(start)
}

// One vendor misbehaving in every way: the scrape still answers within
// Prometheus' timeout, only that vendor's connection fails, the others are
// intact, and no goroutine is left behind.
func TestVendorFaultsAreContained(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "sg", "api_key": vendorsim.SendGridKeyAcme}, nil)
	s.api("POST", "/api/v1/connections", map[string]string{"vendor": "segment", "name": "seg", "token": vendorsim.SegmentTokenAcme, "region": "us"}, nil)
	fc := newAPIFlowClient()
	resp := consentTwilio(t, fc, s.startFlow(fc, map[string]string{"vendor": "twilio", "name": "tw"}), vendorsim.TwilioAccountAcme, "allow")
	resp.Body.Close()
	if n := len(s.connections()); n != 3 {
		t.Fatalf("%d connections", n)
	}
	s.scrapeWithTimeout(t, "2")
	baseline := ownGoroutines()

	for _, tc := range []struct {
		name  string
		fault vendorsim.Fault
	}{
		{"hangs", vendorsim.Fault{Hang: true}},
		{"slower than the deadline", vendorsim.Fault{Latency: 5 * time.Second}},
		{"5xx", vendorsim.Fault{Status: 503}},
		{"truncated JSON", vendorsim.Fault{Truncate: true}},
		{"HTML instead of JSON", vendorsim.Fault{HTML: true}},
		{"200 with an error body", vendorsim.Fault{ErrorBody: true}},
		{"connection reset", vendorsim.Fault{Reset: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.Sim.SetFault("sendgrid", tc.fault)
			defer s.Sim.ClearFaults()
			m, took := s.scrapeWithTimeout(t, "2")
			// Prometheus drops an answer later than its scrape_timeout.
			if took >= 2*time.Second {
				t.Errorf("the scrape took %s, longer than Prometheus' 2s timeout", took)
			}
			for series, want := range map[string]string{
				`saas_scrape_success{connection="sg",vendor="sendgrid"}`:                  "0",
				`saas_scrape_success{connection="seg",vendor="segment"}`:                  "1",
				`saas_scrape_success{connection="tw",vendor="twilio"}`:                    "1",
				`saas_connection_state{connection="sg",state="error",vendor="sendgrid"}`:  "1",
				`saas_connection_state{connection="seg",state="active",vendor="segment"}`: "1",
			} {
				if got := metricValue(t, m, series); got != want {
					t.Errorf("%s = %s, want %s", series, got, want)
				}
			}
			// Last known usage stays, with its age.
			metricValue(t, m, `saas_sendgrid_api_keys{connection="sg"}`)
			promtoolCheck(t, m)
		})
	}

	// Recovery, and no goroutine left behind by hung or slow calls.
	time.Sleep(10 * time.Millisecond)
	m, _ := s.scrapeWithTimeout(t, "2")
	if got := metricValue(t, m, `saas_scrape_success{connection="sg",vendor="sendgrid"}`); got != "1" {
		t.Errorf("after the faults: %s", got)
	}
	// Collections run to scrape.timeout (5s) whoever asked; after that
	// nothing of ours may be left running. Idle keep-alive connections
	// (client and server side) run no code of this module and are not
	// counted; a call still waiting for a vendor is.
	var leaked []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		leaked = extraGoroutines(baseline, ownGoroutines())
		if len(leaked) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(leaked) > 0 {
		t.Errorf("%d goroutines running this module's code were left behind by the faults:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	}
}

// ownGoroutines returns the stacks of the goroutines that run code of this
// module (exporter, simulator, test) or wait for an HTTP answer, keyed by
// what they were started as (entry function and creator): what a goroutine
// is doing right now changes, what it is does not.
func ownGoroutines() map[string][]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string][]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "saas_exporter/") && !strings.Contains(g, "(*persistConn).roundTrip") {
			continue
		}
		var entry, creator string
		for _, line := range strings.Split(g, "\n")[1:] { // [0] is "goroutine N [state]:"
			switch {
			case line == "" || line[0] == '\t': // file:line
			case strings.HasPrefix(line, "created by "):
				creator, _, _ = strings.Cut(line, " in goroutine ")
			default:
				entry = line[:max(0, strings.LastIndex(line, "("))] // without arguments
			}
		}
		key := entry + " " + creator
		out[key] = append(out[key], g)
	}
	return out
}

// extraGoroutines returns the stacks of goroutines in now beyond the count
// of the same kind in before.
func extraGoroutines(before, now map[string][]string) []string {
	var extra []string
	for sig, gs := range now {
		if n := len(gs) - len(before[sig]); n > 0 {
			extra = append(extra, gs[len(gs)-n:]...)
		}
	}
	sort.Strings(extra)
	return extra
}
