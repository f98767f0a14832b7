package main

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/store/pgtest"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// tokenGate holds the next POST to one token endpoint of the simulator
// until released, so a test can act while a renewal is in flight.
type tokenGate struct {
	path    string
	mu      sync.Mutex
	entered chan struct{}
	release chan struct{}
}

func (g *tokenGate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == g.path {
			g.mu.Lock()
			entered, release := g.entered, g.release
			g.entered, g.release = nil, nil
			g.mu.Unlock()
			if entered != nil {
				close(entered)
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
		}
		h.ServeHTTP(w, r)
	})
}

// arm holds the next call; entered closes when it arrives.
func (g *tokenGate) arm() (entered, release chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.entered, g.release = make(chan struct{}), make(chan struct{})
	return g.entered, g.release
}

func waitClosed(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// scrapeAsync fetches /metrics in the background (the body, or "" on error).
func scrapeAsync(s *stack) chan string {
	out := make(chan string, 1)
	go func() {
		resp, err := http.Get(s.URL + "/metrics")
		if err != nil {
			out <- ""
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out <- string(b)
	}()
	return out
}

// startGatedPair starts two replicas on dsn sharing a simulator whose
// token endpoint at path is gated, with OAuth connection "oauth1" on A.
func startGatedPair(t *testing.T, dsn, path string) (a *oauthStack, b *stack, g *tokenGate) {
	t.Helper()
	shared := haConfig(t, dsn)
	g = &tokenGate{path: path}
	a = startOAuthStack(t, stackOptions{ExtraConfig: shared, SimWrap: g.wrap})
	b = startStack(t, stackOptions{ExtraConfig: shared, Sim: a.Sim, SimURL: a.SimURL})
	return a, b, g
}

// PostgreSQL goes down while an OAuth refresh is in flight (#21 item 1):
// the vendor rotates the refresh token, the store cannot take it. The
// replica keeps collecting with the new tokens from memory, saves them
// once the database is back, and the other replica then refreshes with
// them: no invalid_grant, no expired connection.
func TestHARenewalSurvivesDatabaseRestart(t *testing.T) {
	srv := pgtest.NewServer(t)
	dsn, _ := srv.NewDatabase(t)
	a, b, g := startGatedPair(t, dsn, "/oauth/token")
	a.connect("/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "oauth1", "method": "oauth"}, "acme")
	success := `saas_scrape_success{connection="oauth1",vendor="sendgrid"}`

	a.clock.Add(vendorsim.DefaultOAuthAccessTokenLifetime) // the access token is spent
	entered, release := g.arm()
	scraped := scrapeAsync(a.stack)
	waitClosed(t, entered, "A's refresh to reach the token endpoint")
	srv.StopServer(t) // ends the session holding the row lock
	close(release)
	if got := metricValue(t, <-scraped, success); got != "1" {
		t.Errorf("A's scrape whose refresh the store could not save: scrape_success %s, want 1 (tokens kept in memory)\n%s", got, a.logs.String())
	}
	// While the store is down, A collects again with the tokens it holds.
	a.clock.Add(time.Minute)
	if got := metricValue(t, a.scrape(), success); got != "1" {
		t.Errorf("A's next scrape with the store down: scrape_success %s", got)
	}

	srv.StartServer(t)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(a.logs.String(), "renewed credential saved") {
		if time.Now().After(deadline) {
			t.Fatalf("the renewed credential never reached the store:\n%s", a.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// B reads the store and refreshes with what the vendor issued last.
	for !strings.Contains(b.scrape(), "saas_exporter_store_up 1") {
		if time.Now().After(deadline) {
			t.Fatalf("B never reached the store again:\n%s", b.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := a.Sim.OAuthRefreshCalls()
	a.clock.Add(vendorsim.DefaultOAuthAccessTokenLifetime)
	if got := metricValue(t, b.scrape(), success); got != "1" {
		t.Errorf("B refreshing from the store after the restart: scrape_success %s\n%s", got, b.logs.String())
	}
	if n := a.Sim.OAuthRefreshCalls() - before; n != 1 {
		t.Errorf("%d refresh calls from B, want 1", n)
	}
	for _, gr := range a.Sim.OAuthGrants() {
		if gr.Revoked {
			t.Errorf("grant %s revoked: a spent refresh token was sent", gr.ID)
		}
	}
	if st := a.conns()["oauth1"].State; st != "active" {
		t.Errorf("state after the restart: %s, want active", st)
	}
}

// A replica's refresh holds the row lock while the token endpoint is slow
// (#21 item 7): the other replica, whose access token is due but still
// valid, collects with it instead of failing on the lock, and only one
// refresh reaches the vendor.
func TestHARefreshElsewhereDoesNotFailAValidToken(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	a, b, g := startGatedPair(t, dsn, "/oauth/token")
	a.connect("/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "oauth1", "method": "oauth"}, "acme")
	success := `saas_scrape_success{connection="oauth1",vendor="sendgrid"}`
	up := `saas_connection_up{connection="oauth1",vendor="sendgrid"}`

	// Within the refresh margin, half a minute before the token's end.
	a.clock.Add(vendorsim.DefaultOAuthAccessTokenLifetime - 30*time.Second)
	before := a.Sim.OAuthRefreshCalls()
	entered, release := g.arm()
	scrapedB := scrapeAsync(b)
	waitClosed(t, entered, "B's refresh to reach the token endpoint")
	m := a.scrape()
	close(release)
	if metricValue(t, m, success) != "1" || metricValue(t, m, up) != "1" {
		t.Errorf("A while B's refresh holds the lock: scrape_success %s, up %s; want 1, 1\n%s", metricValue(t, m, success), metricValue(t, m, up), a.logs.String())
	}
	if got := metricValue(t, <-scrapedB, success); got != "1" {
		t.Errorf("B's refreshing scrape: scrape_success %s", got)
	}
	if n := a.Sim.OAuthRefreshCalls() - before; n != 1 {
		t.Errorf("%d refresh calls, want 1", n)
	}
}

// A reconnect acknowledged on one replica while the other's client-
// credentials renewal is in flight (#21 item 4): the renewal, finishing
// after it, does not write the old credential back.
func TestHAReconnectWinsOverRenewalInFlight(t *testing.T) {
	dsn, _ := pgtest.Start(t)
	a, b, g := startGatedPair(t, dsn, "/segment/oauth/eu/token")
	if code := a.api("POST", "/api/v1/connections", map[string]string{"vendor": "segment", "name": "seg", "method": "client_credentials", "region": "eu",
		"client_id": vendorsim.SegmentOAuthClientEuro, "key_id": vendorsim.SegmentOAuthKeyIDEuro, "private_key": vendorsim.SegmentOAuthTestPrivateKey}, nil); code != 201 {
		t.Fatalf("connect: %d", code)
	}
	success := `saas_scrape_success{connection="seg",vendor="segment"}`
	if got := metricValue(t, a.scrape(), success); got != "1" {
		t.Fatalf("before: scrape_success %s", got)
	}

	a.clock.Add(vendorsim.DefaultSegmentTokenLifetime) // A renews on its next scrape
	entered, release := g.arm()
	scraped := scrapeAsync(a.stack)
	waitClosed(t, entered, "A's renewal to reach the token endpoint")
	var out struct {
		Error string `json:"error"`
	}
	if code := b.api("POST", "/api/v1/connections", map[string]string{"vendor": "segment", "name": "seg", "token": vendorsim.SegmentTokenEuro, "region": "eu"}, &out); code != 200 && code != 201 {
		t.Fatalf("reconnect on B: %d %s", code, out.Error)
	}
	close(release)
	<-scraped

	for _, s := range []*stack{b, a.stack} {
		if got := metricValue(t, s.scrape(), success); got != "1" {
			t.Errorf("after the reconnect: scrape_success %s\n%s", got, s.logs.String())
		}
	}
	if st := b.connections()["seg"].State; st != "active" {
		t.Errorf("state after the reconnect: %s, want active", st)
	}
}
