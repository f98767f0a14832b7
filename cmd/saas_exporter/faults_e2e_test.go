package main

import (
	"io"
	"net/http"
	"runtime"
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
	baseline, _ := ourGoroutines()

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
	// nothing of ours may be left running.
	deadline := time.Now().Add(15 * time.Second)
	n, stacks := ourGoroutines()
	for n > baseline && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		n, stacks = ourGoroutines()
	}
	if n > baseline {
		t.Errorf("goroutines running our code: %d after the faults, %d before\n%s", n, baseline, strings.Join(stacks, "\n\n"))
	}
}

// ourGoroutines counts the goroutines with a frame of this module (the
// exporter, the simulator): idle keep-alive connections of net/http do
// not count, a collection or a vendor call left hanging does.
func ourGoroutines() (int, []string) {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var ours []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "github.com/saas-exporter/saas_exporter/") && !strings.Contains(g, "runtime.Stack") {
			ours = append(ours, g)
		}
	}
	return len(ours), ours
}
