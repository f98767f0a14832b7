package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/store/pgtest"
	"github.com/saas-exporter/saas_exporter/store/storetest"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// faultClient never waits for ever: a request that hangs on a broken store
// fails the test instead of the test binary's timeout.
var faultClient = &http.Client{Timeout: 15 * time.Second}

type answer struct {
	code int
	body string
	took time.Duration
	err  error
}

// call sends one request (as the test admin when body or method ask for
// the API) without calling t.Fatal, so goroutines may use it.
func (s *stack) call(method, path string, body any) answer {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL+path, r)
	if strings.HasPrefix(path, "/api/") {
		req.SetBasicAuth(testAdmin, testPassword)
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := faultClient.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, body: string(b), took: time.Since(start)}
}

// holdLock runs stmt in a transaction of its own and keeps it open (so its
// locks are held) until the returned function is called.
func holdLock(t *testing.T, dsn, stmt string, args ...any) func() {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, stmt, args...); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			tx.Rollback(ctx)
			conn.Close(ctx)
		})
	}
	t.Cleanup(release)
	return release
}

// A locked, frozen or crashed database: every replica still answers its
// scrapes in time from the last known list, the connection keeps its
// vendor's verdict (up, active, collected), the store's trouble shows as
// saas_exporter_store_up 0 only, and /-/ready answers 503 within a second.
// Afterwards everything recovers without a restart.
func TestHAStoreFaultsAreNotVendorFaults(t *testing.T) {
	srv := pgtest.NewServer(t)
	dsn, _ := srv.NewDatabase(t)
	shared := haConfig(t, dsn) + "    call_timeout: 500ms\n"
	a := startStack(t, stackOptions{ExtraConfig: shared})
	b := startStack(t, stackOptions{ExtraConfig: shared, Sim: a.Sim, SimURL: a.SimURL})
	if code := a.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "prod", "api_key": vendorsim.SendGridKeyAcme}, nil); code != 201 {
		t.Fatalf("create: %d", code)
	}
	for _, s := range []*stack{a, b} {
		if got := metricValue(t, s.scrape(), "saas_exporter_store_up"); got != "1" {
			t.Fatalf("before the faults: store_up %s", got)
		}
	}

	var release func()
	faults := []struct {
		name       string
		start, end func()
	}{
		{"LOCK TABLE connections IN ACCESS EXCLUSIVE MODE", func() {
			release = holdLock(t, dsn, "LOCK TABLE connections IN ACCESS EXCLUSIVE MODE")
		}, func() { release() }},
		{"SIGSTOP", func() { srv.Freeze(t) }, func() { srv.Thaw(t) }},
		{"pg_ctl stop -m immediate", func() { srv.Crash(t) }, func() { srv.StartServer(t) }},
	}
	for _, f := range faults {
		began := time.Now()
		f.start()
		// Both replicas, all three routes at once: a route that waits for
		// the store cannot hide behind another's wait.
		answers := map[string]*answer{}
		var wg sync.WaitGroup
		for _, name := range []string{"A", "B"} {
			s := map[string]*stack{"A": a, "B": b}[name]
			for _, path := range []string{"/metrics", "/-/ready", "/sd"} {
				r := &answer{}
				answers[name+path] = r
				wg.Add(1)
				go func() { defer wg.Done(); *r = s.call("GET", path, nil) }()
			}
		}
		wg.Wait()
		for _, name := range []string{"A", "B"} {
			m := answers[name+"/metrics"]
			if m.err != nil || m.code != 200 {
				t.Errorf("%s, replica %s: /metrics: %d %v", f.name, name, m.code, m.err)
				continue
			}
			for series, want := range map[string]string{
				"saas_exporter_store_up":                                                    "0",
				`saas_connection_up{connection="prod",vendor="sendgrid"}`:                   "1",
				`saas_scrape_success{connection="prod",vendor="sendgrid"}`:                  "1",
				`saas_connection_state{connection="prod",state="active",vendor="sendgrid"}`: "1",
				`saas_connection_state{connection="prod",state="error",vendor="sendgrid"}`:  "0",
			} {
				if got := metricValue(t, m.body, series); got != want {
					t.Errorf("%s, replica %s: %s = %s, want %s (scrape took %s)", f.name, name, series, got, want, m.took)
				}
			}
			if r := answers[name+"/-/ready"]; r.code != 503 || r.took > 1500*time.Millisecond {
				t.Errorf("%s, replica %s: /-/ready answered %d (%v) after %s, want 503 within a second", f.name, name, r.code, r.err, r.took)
			}
			if sd := answers[name+"/sd"]; sd.code != 503 {
				t.Errorf("%s, replica %s: /sd answered %d (%v) after %s, want 503 (Prometheus keeps its targets)", f.name, name, sd.code, sd.err, sd.took)
			}
		}
		f.end()
		for name, s := range map[string]*stack{"A": a, "B": b} {
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(s.scrape(), "saas_exporter_store_up 1") {
				if time.Now().After(deadline) {
					t.Fatalf("after %s, replica %s did not recover:\n%s", f.name, name, s.logs.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
			if r := s.call("GET", "/-/ready", nil); r.code != 200 {
				t.Errorf("after %s, replica %s: /-/ready %d %s", f.name, name, r.code, r.body)
			}
		}
		t.Logf("%s: %s", f.name, time.Since(began))
	}
	for name, s := range map[string]*stack{"A": a, "B": b} {
		for _, blame := range []string{"raise scrape.concurrency", "context deadline exceeded"} {
			if strings.Contains(s.logs.String(), blame) {
				t.Errorf("replica %s blamed a connection (%q):\n%s", name, blame, s.logs.String())
			}
		}
	}
}

// An acknowledged DELETE on one replica is never undone by a reconnect of
// the same connection, or a connect of the same account under another
// name, racing it on another replica (started within one write's time).
func TestHADeleteStaysDeleted(t *testing.T) {
	t.Parallel()
	dsn, _ := pgtest.Start(t)
	shared := haConfig(t, dsn)
	a := startStack(t, stackOptions{ExtraConfig: shared})
	b := startStack(t, stackOptions{ExtraConfig: shared, Sim: a.Sim, SimURL: a.SimURL})
	// Many other connections make a listing take a few milliseconds, as in
	// a real deployment: that is the window a racing write has.
	pg := openShared(t, shared, dsn)
	for i := 0; i < 300; i++ {
		f := storetest.Sample(fmt.Sprintf("filler%03d", i), fmt.Sprintf("filler%03d", i))
		f.State = store.StateRevoked // never collected
		if err := pg.Put(context.Background(), f); err != nil {
			t.Fatal(err)
		}
	}
	// The DELETE lands anywhere within one write's time.
	var took time.Duration
	for i := 0; i < 5; i++ {
		var c apiConn
		a.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "probe", "api_key": vendorsim.SendGridKeyAcme}, &c)
		took += a.call("POST", "/api/v1/connections/"+c.ID+"/reconnect", map[string]string{"api_key": vendorsim.SendGridKeyAcme}).took
		a.api("DELETE", "/api/v1/connections/"+c.ID, nil, nil)
	}
	spread := took / 5
	const rounds = 40
	for _, kind := range []string{"reconnect", "connect under another name"} {
		resurrected, deleted := 0, 0
		for i := 0; i < rounds; i++ {
			var c apiConn
			name := fmt.Sprintf("c%d", i)
			if code := a.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": name, "api_key": vendorsim.SendGridKeyAcme}, &c); code != 201 {
				t.Fatalf("create %s: %d", name, code)
			}
			var wg sync.WaitGroup
			var write, del answer
			wg.Add(2)
			go func() {
				defer wg.Done()
				if kind == "reconnect" {
					write = a.call("POST", "/api/v1/connections/"+c.ID+"/reconnect", map[string]string{"api_key": vendorsim.SendGridKeyAcme})
				} else {
					write = a.call("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": name + "-again", "api_key": vendorsim.SendGridKeyAcme})
				}
			}()
			go func() {
				defer wg.Done()
				time.Sleep(rand.N(spread))
				del = b.call("DELETE", "/api/v1/connections/"+c.ID, nil)
			}()
			wg.Wait()
			if write.err != nil || del.err != nil {
				t.Fatalf("round %d: %v %v", i, write.err, del.err)
			}
			if del.code != 204 {
				t.Fatalf("round %d: DELETE answered %d %s", i, del.code, del.body)
			}
			deleted++
			for _, s := range []*stack{a, b} {
				if got := s.call("GET", "/api/v1/connections/"+c.ID, nil); got.code != 404 {
					resurrected++
					t.Errorf("%s, round %d: the connection deleted with 204 is back (GET %d) after the racing write answered %d %s", kind, i, got.code, write.code, write.body)
					break
				}
			}
			// Clean slate for the next round: the account is connected once.
			var all []apiConn
			a.api("GET", "/api/v1/connections", nil, &all)
			for _, o := range all {
				if !strings.HasPrefix(o.Name, "filler") {
					a.api("DELETE", "/api/v1/connections/"+o.ID, nil, nil)
				}
			}
		}
		t.Logf("%s: %d of %d acknowledged deletes undone", kind, resurrected, deleted)
	}
}

// A write to a connection another session holds locked (a replica's
// refresh, here an explicit SELECT … FOR UPDATE) answers 503 with the
// reason within the store's call timeout; other connections stay writable,
// and once the lock is gone the write goes through.
func TestHAWriteOnLockedRowIsBounded(t *testing.T) {
	// Not parallel: "locked" or "no answer" is decided by the call timeout,
	// which a busy machine can miss.
	dsn, _ := pgtest.Start(t)
	shared := haConfig(t, dsn) + "    call_timeout: 1s\n"
	a := startStack(t, stackOptions{ExtraConfig: shared})
	b := startStack(t, stackOptions{ExtraConfig: shared, Sim: a.Sim, SimURL: a.SimURL})
	var c apiConn
	if code := a.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "prod", "api_key": vendorsim.SendGridKeyAcme}, &c); code != 201 {
		t.Fatalf("create: %d", code)
	}
	release := holdLock(t, dsn, "SELECT 1 FROM connections WHERE id = $1 FOR UPDATE", c.ID)

	writes := map[string]func() answer{
		"DELETE on B": func() answer { return b.call("DELETE", "/api/v1/connections/"+c.ID, nil) },
		"reconnect on A": func() answer {
			return a.call("POST", "/api/v1/connections/"+c.ID+"/reconnect", map[string]string{"api_key": vendorsim.SendGridKeyAcme})
		},
	}
	for what, write := range writes {
		done := make(chan answer, 1)
		go func() { done <- write() }()
		select {
		case got := <-done:
			if got.code != 503 || !strings.Contains(got.body, "locked by another replica") {
				t.Errorf("%s of a locked connection: %d %s (%v) after %s, want 503 naming the lock", what, got.code, got.body, got.err, got.took)
			}
		case <-time.After(8 * time.Second):
			t.Errorf("%s of a locked connection: no answer within 8s", what)
			release()
			<-done
		}
	}
	if code := b.api("POST", "/api/v1/connections", map[string]string{"vendor": "segment", "name": "seg", "token": vendorsim.SegmentTokenAcme, "region": "us"}, nil); code != 201 {
		t.Errorf("creating another connection while one row is locked: %d", code)
	}
	release()
	if code := b.api("DELETE", "/api/v1/connections/"+c.ID, nil, nil); code != 204 {
		t.Errorf("DELETE after the lock is gone: %d", code)
	}
	if code := a.api("GET", "/api/v1/connections/"+c.ID, nil, nil); code != 404 {
		t.Errorf("after the DELETE: GET %d", code)
	}
}

// openShared opens the replicas' database directly, with their key.
func openShared(t *testing.T, shared, dsn string) *store.Postgres {
	t.Helper()
	_, rest, _ := strings.Cut(shared, "secret_key_file: ")
	file, _, _ := strings.Cut(rest, "\n")
	kr, err := store.LoadKeyring(file, "", t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := store.OpenPostgres(context.Background(), dsn, kr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	return pg
}

// startReplica runs one exporter on the shared configuration until it
// listens (then stops it) or gives up, and returns its exit code and log.
func startReplica(t *testing.T, shared string) (int, string) {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "config.yml")
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("external_url: http://127.0.0.1:9888\ndata_dir: %s\nadmins:\n  %s: %q\n%s", filepath.Join(dir, "data"), testAdmin, hash, shared)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var logs syncBuffer
	code := run(ctx, []string{"--config.file=" + cfgFile, "--web.listen-address=127.0.0.1:0"}, io.Discard, &logs, hooks{ready: func(string) { cancel() }})
	return code, logs.String()
}

// A schema changed by hand stops every replica at start, naming what is
// wrong, instead of one that starts and then answers 503.
func TestHASchemaCheckedAtStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ damage, want string }{
		{"ALTER TABLE connections RENAME COLUMN record TO rec", "column connections.record (jsonb) is missing"},
		{"ALTER TABLE invites ALTER COLUMN record TYPE text", "column invites.record is text, want jsonb"},
		{"DROP INDEX connections_name_key", "index connections_name_key is missing"},
		{"DROP TABLE use_once", "table use_once is missing"},
		{"DROP TABLE schema_migrations", "schema_migrations table is missing or empty"},
		{"DELETE FROM schema_migrations", "schema_migrations table is missing or empty"},
	} {
		dsn, _ := pgtest.Start(t)
		shared := haConfig(t, dsn)
		pg := openShared(t, shared, dsn)
		if err := pg.Put(context.Background(), storetest.Sample("a", "prod")); err != nil {
			t.Fatal(err)
		}
		pg.Close()
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(context.Background(), tc.damage); err != nil {
			t.Fatalf("%s: %v", tc.damage, err)
		}
		conn.Close(context.Background())
		for _, replica := range []string{"A", "B"} {
			code, logs := startReplica(t, shared)
			if code == 0 || !strings.Contains(logs, tc.want) {
				t.Errorf("after %s, replica %s: exit %d, want a refusal naming %q:\n%s", tc.damage, replica, code, tc.want, logs)
			}
		}
	}
}
