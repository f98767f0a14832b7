package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/store/pgtest"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// haConfig is the part of the configuration every replica shares: the
// PostgreSQL store and the secret key (credentials and cookies).
func haConfig(t *testing.T, dsn string) string {
	t.Helper()
	key, err := store.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "secret.key")
	if err := os.WriteFile(f, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "secret_key_file: " + f + "\nstore:\n  postgres:\n    dsn: " + dsn + "\n"
}

// Two replicas on one database serve the same connections: what one
// creates, revokes or deletes, the other shows on its next scrape.
func TestHAReplicasShareConnections(t *testing.T) {
	t.Parallel()
	dsn, _ := pgtest.Start(t)
	shared := haConfig(t, dsn)
	a := startStack(t, stackOptions{ExtraConfig: shared})
	b := startStack(t, stackOptions{ExtraConfig: shared, Sim: a.Sim, SimURL: a.SimURL})

	var c apiConn
	if code := a.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "prod", "api_key": vendorsim.SendGridKeyAcme}, &c); code != 201 {
		t.Fatalf("create on A: %d", code)
	}
	if _, ok := b.connections()["prod"]; !ok {
		t.Fatal("B does not list the connection A created")
	}
	if got := metricValue(t, b.scrape(), `saas_sendgrid_api_keys{connection="prod"}`); got != "5" {
		t.Errorf("B collects it: %s", got)
	}

	// A Twilio Connect flow started on A finishes on B: the Connect App
	// now sends the browser back to B (the last one registered), and the
	// flow cookie signed by A is accepted there.
	fc := newAPIFlowClient()
	resp := consentTwilio(t, fc, a.startFlow(fc, map[string]string{"vendor": "twilio", "name": "tw"}), vendorsim.TwilioAccountAcme, "allow")
	resp.Body.Close()
	if !strings.HasPrefix(resp.Request.URL.String(), b.URL) {
		t.Fatalf("flow ended at %s, want replica B %s", resp.Request.URL, b.URL)
	}
	if tw, ok := a.connections()["tw"]; !ok || tw.State != "active" {
		t.Fatalf("flow started on A, finished on B: %+v", a.connections())
	}

	// Twilio's deauthorize callback reaches B; A sees the revocation.
	if d, err := a.Sim.DeauthorizeTwilioAccount(context.Background(), vendorsim.TwilioAccountAcme); err != nil || d.Status >= 300 {
		t.Fatalf("deauthorize: %v %+v", err, d)
	}
	if got := metricValue(t, a.scrape(), `saas_connection_state{connection="tw",state="revoked",vendor="twilio"}`); got != "1" {
		t.Errorf("A after B's revocation: %s", got)
	}

	// Deleted on B, gone from A.
	if code := b.api("DELETE", "/api/v1/connections/"+c.ID, nil, nil); code != 204 {
		t.Fatalf("delete on B: %d", code)
	}
	if strings.Contains(a.scrape(), `connection="prod"`) {
		t.Error("A still exports the connection B deleted")
	}
}

// PostgreSQL restarted under a running exporter: scrapes still answer and
// say the store is down, then recover without restarting the exporter.
func TestHAPostgresRestart(t *testing.T) {
	t.Parallel()
	srv := pgtest.NewServer(t)
	dsn, _ := srv.NewDatabase(t)
	s := startStack(t, stackOptions{ExtraConfig: haConfig(t, dsn)})
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "prod", "api_key": vendorsim.SendGridKeyAcme}, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	s.scrape()

	srv.StopServer(t)
	m := s.scrape()
	if got := metricValue(t, m, "saas_exporter_store_up"); got != "0" {
		t.Errorf("store down: saas_exporter_store_up %s", got)
	}
	// The health series stay, from the last list.
	metricValue(t, m, `saas_connection_up{connection="prod",vendor="sendgrid"}`)
	if code, _ := s.get("/-/ready"); code != 503 {
		t.Errorf("/-/ready with the store down: %d", code)
	}
	if code, _ := s.get("/-/healthy"); code != 200 {
		t.Errorf("/-/healthy with the store down: %d", code)
	}

	srv.StartServer(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		m = s.scrape()
		if strings.Contains(m, "saas_exporter_store_up 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after restart:\n%s", s.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := metricValue(t, m, `saas_scrape_success{connection="prod",vendor="sendgrid"}`); got != "1" {
		t.Errorf("after recovery: scrape_success %s", got)
	}
	if code, _ := s.get("/-/ready"); code != 200 {
		t.Errorf("/-/ready after recovery: %d", code)
	}
	if strings.Contains(s.logs.String(), "password=") {
		t.Error("a DSN password reached the log")
	}
}

// `saas_exporter store migrate` copies a bbolt store into PostgreSQL, twice.
func TestStoreMigrateCommand(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "prod", "api_key": vendorsim.SendGridKeyAcme}, nil)
	s.api("POST", "/api/v1/connections", map[string]string{"vendor": "segment", "name": "seg", "token": vendorsim.SegmentTokenAcme, "region": "us"}, nil)
	if code := s.stop(); code != 0 {
		t.Fatalf("stop: %d", code)
	}
	dsn, _ := pgtest.Start(t)
	cfgFile := filepath.Join(s.Dir, "config.yml")
	for i := 0; i < 2; i++ {
		var out, errb strings.Builder
		code := run(context.Background(), []string{"--config.file=" + cfgFile, "store", "migrate", "--from=bbolt", "--to=postgres:" + dsn}, &out, &errb, hooks{})
		if code != 0 || !strings.Contains(out.String(), "copied and verified 2 connections") {
			t.Fatalf("migrate run %d: %d %q %s", i+1, code, out.String(), errb.String())
		}
	}
	kr, err := store.LoadKeyring("", "", filepath.Join(s.Dir, "data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := store.OpenPostgres(context.Background(), dsn, kr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	conns, _ := pg.List(context.Background())
	if len(conns) != 2 || conns[0].Secret["api_key"] != vendorsim.SendGridKeyAcme {
		t.Errorf("in PostgreSQL: %d connections", len(conns))
	}
	var out, errb strings.Builder
	if code := run(context.Background(), []string{"--config.file=" + cfgFile, "store", "migrate", "--from=bbolt:/nonexistent", "--to=postgres:" + dsn}, &out, &errb, hooks{}); code == 0 || !strings.Contains(errb.String(), "nonexistent") {
		t.Errorf("missing source: %d %s", code, errb.String())
	}
}

// Two replicas on one database share an OAuth connection whose access
// token expires: however the scrapes interleave, exactly one refresh call
// reaches the authorization server, and both keep collecting.
func TestHAOneRefreshAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn, _ := pgtest.Start(t)
	shared := haConfig(t, dsn)
	a := startOAuthStack(t, stackOptions{ExtraConfig: shared})
	// Same configuration, clock and simulator: a second replica.
	b := a.replica(stackOptions{ExtraConfig: shared})
	a.connect("/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "oauth1", "method": "oauth"}, "acme")
	for _, s := range []*stack{a.stack, b} {
		if got := metricValue(t, s.scrape(), `saas_scrape_success{connection="oauth1",vendor="sendgrid"}`); got != "1" {
			t.Fatalf("before expiry: scrape_success %s", got)
		}
	}
	for round := 1; round <= 3; round++ {
		before := a.Sim.OAuthRefreshCalls()
		a.clock.Add(vendorsim.DefaultOAuthAccessTokenLifetime) // past the access token's end
		results := make(chan string, 4)
		for _, s := range []*stack{a.stack, b, a.stack, b} {
			go func(s *stack) {
				code, body := s.get("/metrics")
				if code != 200 {
					results <- fmt.Sprintf("status %d", code)
					return
				}
				for _, line := range strings.Split(body, "\n") {
					if strings.HasPrefix(line, `saas_scrape_success{connection="oauth1",vendor="sendgrid"} `) {
						results <- strings.TrimPrefix(line, `saas_scrape_success{connection="oauth1",vendor="sendgrid"} `)
						return
					}
				}
				results <- "missing"
			}(s)
		}
		for i := 0; i < 4; i++ {
			if r := <-results; r != "1" {
				t.Errorf("round %d: a replica's scrape_success = %s", round, r)
			}
		}
		if n := a.Sim.OAuthRefreshCalls() - before; n != 1 {
			t.Errorf("round %d: %d refresh calls reached the simulator, want exactly 1", round, n)
		}
	}
	if st := a.conns()["oauth1"].State; st != "active" {
		t.Errorf("after the refreshes: state %s", st)
	}
}
