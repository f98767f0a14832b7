package main

import (
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// SendGrid's credits endpoint answers 5xx while the rest of the account
// works (#13 item 8): the credits series keep their last values, so
// SaasSendGridCreditsLow (credits_remaining / credits_limit) cannot flap,
// the collection says it failed, and the credits section's collected time
// shows how old its values are while the other sections move on.
func TestSendGridCreditsFailureKeepsCreditsSeries(t *testing.T) {
	var failCredits atomic.Bool
	wrap := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if failCredits.Load() && r.URL.Path == "/sendgrid/v3/user/credits" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"errors":[{"field":null,"message":"service unavailable"}]}`)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	s := startStack(t, stackOptions{SimWrap: wrap})
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "prod", "api_key": vendorsim.SendGridKeyAcme}, nil); code != 201 {
		t.Fatalf("connect: %d", code)
	}
	const (
		remaining = `saas_sendgrid_credits_remaining{connection="prod"}`
		limit     = `saas_sendgrid_credits_limit{connection="prod"}`
		success   = `saas_scrape_success{connection="prod",vendor="sendgrid"}`
		credAt    = `saas_usage_section_collected_timestamp_seconds{connection="prod",section="user.credits.read",vendor="sendgrid"}`
		statsAt   = `saas_usage_section_collected_timestamp_seconds{connection="prod",section="stats.read",vendor="sendgrid"}`
	)
	m := s.scrape()
	wantRemaining, wantLimit, wantCredAt := metricValue(t, m, remaining), metricValue(t, m, limit), metricValue(t, m, credAt)
	if metricValue(t, m, success) != "1" {
		t.Fatalf("before the fault: %s", m)
	}
	failCredits.Store(true)
	lastStats := metricValue(t, m, statsAt)
	for i := 1; i <= 3; i++ {
		// A later second, so a section collected again shows a later time.
		for at := time.Now().Unix(); time.Now().Unix() == at; {
			time.Sleep(20 * time.Millisecond)
		}
		m = s.scrape()
		if got := metricValue(t, m, success); got != "0" {
			t.Errorf("scrape %d with credits failing: scrape_success %s, want 0", i, got)
		}
		if got := metricValue(t, m, remaining); got != wantRemaining {
			t.Errorf("scrape %d: credits_remaining %s, want the last value %s", i, got, wantRemaining)
		}
		if got := metricValue(t, m, limit); got != wantLimit {
			t.Errorf("scrape %d: credits_limit %s, want the last value %s", i, got, wantLimit)
		}
		if got := metricValue(t, m, credAt); got != wantCredAt {
			t.Errorf("scrape %d: credits section collected at %s, want its last success %s", i, got, wantCredAt)
		}
		stats := metricValue(t, m, statsAt)
		if a, _ := strconv.ParseFloat(stats, 64); a <= mustFloat(t, lastStats) {
			t.Errorf("scrape %d: stats section collected at %s, not after %s", i, stats, lastStats)
		}
		lastStats = stats
	}
	promtoolCheck(t, m)
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
