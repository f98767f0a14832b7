package auth

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/saas-exporter/saas_exporter/auth/connect"
	"github.com/saas-exporter/saas_exporter/store"
)

// fuzzServer is an auth server with the fake providers, no network.
func fuzzServer(f *testing.F) (*Server, http.Handler) {
	s, err := New(Options{
		Store:       store.NewMemory(),
		Providers:   providers(&redirectProvider{consent: &consentMode{account: "acme"}, consentURL: "http://127.0.0.1:1"}),
		ExternalURL: "http://127.0.0.1:9888",
		Admins:      map[string]string{adminUser: adminHash},
		SigningKey:  bytes.Repeat([]byte{7}, 32),
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux)
	return s, mux
}

// Callbacks and webhooks with arbitrary query, cookie and body never panic
// and never answer 5xx (except 503 for a store outage, not possible here).
func FuzzCallbackAndWebhook(f *testing.F) {
	s, h := fuzzServer(f)
	sealed := s.connect.SealFlow(connect.FlowState{Vendor: "oauthco", Method: "oauth", State: "st", Verifier: "v"})
	f.Add("oauthco", "state=st&code=x&account=a", sealed, "AccountSid=AC1")
	f.Add("oauthco", "error=access_denied&error_description=%3Cscript%3E", "", "")
	f.Add("hookco", "", "garbage", "a=%zz")
	f.Add("nope", "state=", sealed, strings.Repeat("x=1&", 100))
	f.Fuzz(func(t *testing.T, vendor, query, cookie, body string) {
		if strings.ContainsAny(vendor, "/?#% \t\r\n") || vendor == "" {
			return
		}
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = "/connect/" + vendor + "/callback"
		req.URL.RawQuery = query
		req.Header.Set("Cookie", flowCookie+"="+cookie)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("callback %q %q: %d", vendor, query, rec.Code)
		}
		req = httptest.NewRequest("POST", "/", strings.NewReader(body))
		req.URL.Path = "/connect/" + vendor + "/deauthorize"
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("webhook %q %q: %d", vendor, body, rec.Code)
		}
	})
}
