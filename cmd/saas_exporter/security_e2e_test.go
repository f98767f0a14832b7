package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/store/pgtest"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// Issue #12 item 10: after a key rotation (a new key first in
// secret_key_file), a pending invite link still opens and can be used.
func TestInviteSurvivesKeyRotation(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	oldKey, _ := store.GenerateKey()
	newKey, _ := store.GenerateKey()
	if err := os.WriteFile(keyFile, []byte(oldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := "secret_key_file: " + keyFile + "\n"
	s := startStack(t, stackOptions{DataDir: data, ExtraConfig: extra})
	var inv struct {
		URL string `json:"url"`
	}
	if code := s.api("POST", "/api/v1/invites", map[string]string{"vendor": "sendgrid", "name": "later"}, &inv); code != http.StatusCreated {
		t.Fatalf("create invite: %d", code)
	}
	u, err := url.Parse(inv.URL)
	if err != nil || !strings.HasPrefix(u.Path, "/invite/") {
		t.Fatalf("invite URL %q", inv.URL)
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exporter exited with %d", code)
	}

	if err := os.WriteFile(keyFile, []byte(newKey+"\n"+oldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = startStack(t, stackOptions{DataDir: data, ExtraConfig: extra})
	code, page := s.get(u.Path)
	if code != http.StatusOK || !strings.Contains(page, "Connect SendGrid") {
		t.Fatalf("pending invite after a key rotation: %d\n%s", code, page)
	}
}

// connectTwilio connects a simulated Twilio account through the Connect
// flow, as a script does, and returns the connection.
func (s *stack) connectTwilio(name, account string) apiConn {
	s.t.Helper()
	c := newAPIFlowClient()
	resp := consentTwilio(s.t, c, s.startFlow(c, map[string]string{"vendor": "twilio", "name": name}), account, "allow")
	resp.Body.Close()
	conn, ok := s.connections()[name]
	if !ok || conn.State != "active" {
		s.t.Fatalf("connect %s: %+v", name, s.connections())
	}
	return conn
}

// deauthorizeCall sends a deauthorize callback as Twilio would with method
// and signature sig (computed by the caller).
func (s *stack) deauthorizeCall(method, rawQuery string, form url.Values, sig string) int {
	s.t.Helper()
	u := s.URL + "/connect/twilio/deauthorize"
	var req *http.Request
	if method == http.MethodGet {
		req, _ = http.NewRequest(method, u+"?"+rawQuery, nil)
	} else {
		req, _ = http.NewRequest(method, u, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("X-Twilio-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Issue #14 item 5: the deauthorize callback by GET (the Connect App's
// DeauthorizeCallbackMethod) and by POST, each signed as Twilio signs it;
// forged signatures of both kinds are refused.
func TestTwilioDeauthorizeByGETAndPOST(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	s.connectTwilio("tw-acme", vendorsim.TwilioAccountAcme)
	s.connectTwilio("tw-beta", vendorsim.TwilioAccountBeta)
	cb := s.URL + "/connect/twilio/deauthorize"
	form := url.Values{"AccountSid": {vendorsim.TwilioAccountAcme}, "ConnectAppSid": {vendorsim.TwilioConnectAppSid}}
	q := form.Encode()
	for name, call := range map[string]func() int{
		// A POST signature sent with GET, and a GET signature sent as POST.
		"GET with the POST signature": func() int {
			return s.deauthorizeCall("GET", q, nil, vendorsim.TwilioSignature(vendorsim.TwilioOwnerAuthToken, cb, form))
		},
		"GET signed without its query": func() int {
			return s.deauthorizeCall("GET", q, nil, vendorsim.TwilioSignature(vendorsim.TwilioOwnerAuthToken, cb, nil))
		},
		"GET with another token": func() int {
			return s.deauthorizeCall("GET", q, nil, vendorsim.TwilioSignature("0123456789abcdef0123456789abcdef", cb+"?"+q, nil))
		},
		"GET with a changed query": func() int {
			other := url.Values{"AccountSid": {vendorsim.TwilioAccountBeta}, "ConnectAppSid": {vendorsim.TwilioConnectAppSid}}.Encode()
			return s.deauthorizeCall("GET", other, nil, vendorsim.TwilioSignature(vendorsim.TwilioOwnerAuthToken, cb+"?"+q, nil))
		},
		"POST with the GET signature": func() int {
			return s.deauthorizeCall("POST", "", form, vendorsim.TwilioSignature(vendorsim.TwilioOwnerAuthToken, cb+"?"+q, nil))
		},
		"POST with another token": func() int {
			return s.deauthorizeCall("POST", "", form, vendorsim.TwilioSignature("0123456789abcdef0123456789abcdef", cb, form))
		},
		"GET unsigned": func() int { return s.deauthorizeCall("GET", q, nil, "") },
	} {
		if code := call(); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, code)
		}
	}
	for n, c := range s.connections() {
		if c.State != "active" {
			t.Fatalf("a forged callback changed %s: %+v", n, c)
		}
	}

	// Twilio's own GET callback revokes acme, and only acme.
	if err := s.Sim.SetTwilioDeauthorizeMethod(http.MethodGet); err != nil {
		t.Fatal(err)
	}
	d, err := s.Sim.DeauthorizeTwilioAccount(context.Background(), vendorsim.TwilioAccountAcme)
	if err != nil || d.Status != http.StatusOK {
		t.Fatalf("GET deauthorize: %v %+v", err, d)
	}
	if cs := s.connections(); cs["tw-acme"].State != "revoked" || cs["tw-beta"].State != "active" {
		t.Errorf("after the GET callback: acme %s, beta %s", cs["tw-acme"].State, cs["tw-beta"].State)
	}
	// And its POST callback revokes beta.
	if err := s.Sim.SetTwilioDeauthorizeMethod(http.MethodPost); err != nil {
		t.Fatal(err)
	}
	d, err = s.Sim.DeauthorizeTwilioAccount(context.Background(), vendorsim.TwilioAccountBeta)
	if err != nil || d.Status != http.StatusOK {
		t.Fatalf("POST deauthorize: %v %+v", err, d)
	}
	if st := s.connections()["tw-beta"].State; st != "revoked" {
		t.Errorf("after the POST callback: beta %s", st)
	}
}

// Issue #12 item 7: Twilio's signature has no timestamp. A deauthorize
// callback recorded earlier and replayed after the account authorized the
// app again is ignored (and logged): Twilio still accepts the connection.
func TestTwilioDeauthorizeReplayIgnored(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	conn := s.connectTwilio("tw-acme", vendorsim.TwilioAccountAcme)
	cb := s.URL + "/connect/twilio/deauthorize"
	form := url.Values{"AccountSid": {vendorsim.TwilioAccountAcme}, "ConnectAppSid": {vendorsim.TwilioConnectAppSid}}
	q := form.Encode()
	// What an eavesdropper recorded of a genuine deauthorization, by POST
	// and by GET: exactly what Twilio sent.
	postSig := vendorsim.TwilioSignature(vendorsim.TwilioOwnerAuthToken, cb, form)
	getSig := vendorsim.TwilioSignature(vendorsim.TwilioOwnerAuthToken, cb+"?"+q, nil)
	d, err := s.Sim.DeauthorizeTwilioAccount(context.Background(), vendorsim.TwilioAccountAcme)
	if err != nil || d.Status != http.StatusOK || s.connections()["tw-acme"].State != "revoked" {
		t.Fatalf("genuine deauthorize: %v %+v %+v", err, d, s.connections()["tw-acme"])
	}

	// The customer authorizes the app again (Reconnect).
	c := newAPIFlowClient()
	consentTwilio(t, c, s.startReconnect(c, conn.ID), vendorsim.TwilioAccountAcme, "allow").Body.Close()
	if st := s.connections()["tw-acme"].State; st != "active" {
		t.Fatalf("after reconnect: %s", st)
	}

	// Replays, by either method, are authentic but stale: ignored.
	if code := s.deauthorizeCall("POST", "", form, postSig); code != http.StatusOK {
		t.Errorf("replayed POST: %d", code)
	}
	if code := s.deauthorizeCall("GET", q, nil, getSig); code != http.StatusOK {
		t.Errorf("replayed GET: %d", code)
	}
	if st := s.connections()["tw-acme"].State; st != "active" {
		t.Fatalf("a replayed deauthorize callback revoked the re-authorized connection: %s", st)
	}
	if !strings.Contains(s.logs.String(), "deauthorize callback ignored") {
		t.Errorf("the stale callback was not logged:\n%s", s.logs.String())
	}
	if m := s.scrape(); metricValue(t, m, `saas_connection_up{connection="tw-acme",vendor="twilio"}`) != "1" {
		t.Error("down after a replayed callback")
	}
}

// Issue #12 item 1: anyone (no credentials needed) can send a tiny
// X-Prometheus-Scrape-Timeout-Seconds. Its answer may show the slow
// connection unfinished, but Prometheus' next scrape, the store and the
// UI see the collection's real outcome.
func TestTinyScrapeTimeoutMarksNothingDown(t *testing.T) {
	s := startStack(t, stackOptions{MinInterval: "1m"})
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "sg", "api_key": vendorsim.SendGridKeyAcme}, nil); code != http.StatusCreated {
		t.Fatalf("connect: %d", code)
	}
	// Slower than the attacker's deadline, well within scrape.timeout (5s).
	s.Sim.SetFault("sendgrid", vendorsim.Fault{Latency: 600 * time.Millisecond})
	for _, tiny := range []string{"0.000001", "0.6"} {
		s.scrapeWithTimeout(t, tiny)
	}
	m, _ := s.scrapeWithTimeout(t, "10")
	for series, want := range map[string]string{
		`saas_connection_up{connection="sg",vendor="sendgrid"}`:                   "1",
		`saas_scrape_success{connection="sg",vendor="sendgrid"}`:                  "1",
		`saas_connection_state{connection="sg",state="active",vendor="sendgrid"}`: "1",
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("Prometheus' scrape after the attack: %s = %s, want %s", series, got, want)
		}
	}
	if c := s.connections()["sg"]; c.State != "active" {
		t.Errorf("stored after the attack: %+v", c)
	}
	var list []struct {
		Name      string `json:"name"`
		LastError string `json:"last_error"`
	}
	s.api("GET", "/api/v1/connections", nil, &list)
	for _, c := range list {
		if c.LastError != "" {
			t.Errorf("%s: stored last_error %q", c.Name, c.LastError)
		}
	}
}

// slowPost opens a connection and starts a POST whose body never arrives
// (one byte of the 60000 announced), as in the slow-body attack.
func slowPost(t *testing.T, base, path string) net.Conn {
	t.Helper()
	u, _ := url.Parse(base)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 60000\r\n\r\nu", path, u.Host)
	return conn
}

// Issue #12 item 8: a body sent a byte at a time holds a connection no
// longer than the body timeout, on every route with a body; and requests
// from clients that are not signed in are capped, while /metrics and a
// signed-in admin still get through.
func TestSlowBodiesAreBounded(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{Limits: limitOptions{bodyTimeout: 300 * time.Millisecond}})
	for _, path := range []string{"/login", "/api/v1/connections", "/connect/twilio/deauthorize", "/invite/x.y"} {
		conn := slowPost(t, s.URL, path)
		// The server gives up on the body and closes the connection; a
		// generous client-side bound makes the old server fail here.
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, err := io.ReadAll(conn)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("POST %s: the connection was still open after 15s of a stalled body", path)
		}
	}
}

func TestUnauthenticatedRequestsCapped(t *testing.T) {
	t.Parallel()
	var gate *admission
	s := startStack(t, stackOptions{Limits: limitOptions{bodyTimeout: time.Minute, maxUnauthenticated: 2}, Admission: func(a *admission) { gate = a }})
	admin := s.browser() // signed in before the attack
	for i := 0; i < 2; i++ {
		slowPost(t, s.URL, "/login")
	}
	// Both stalled requests hold their slots once the server has read
	// their headers; wait for that rather than for a guessed time.
	for deadline := time.Now().Add(30 * time.Second); gate.held() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the two stalled requests hold %d slots after 30s, want 2", gate.held())
		}
	}
	resp, err := http.PostForm(s.URL+"/login", url.Values{"user": {"x"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a third unauthenticated request got %d (Retry-After %q) while two stalled ones held the cap; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code, _ := s.get("/metrics"); code != http.StatusOK {
		t.Errorf("/metrics under the cap: %d", code)
	}
	if code, _ := s.get("/-/healthy"); code != http.StatusOK {
		t.Errorf("/-/healthy under the cap: %d", code)
	}
	resp, err = admin.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/" {
		t.Errorf("a signed-in admin under the cap: %d at %s", resp.StatusCode, resp.Request.URL)
	}
}

// Issue #12 item 4: 20 parallel connects of one account through the API
// leave one connection: one 201, the others 200 (updated), never a
// duplicate that would count the account's usage twice.
func TestParallelConnectsOfOneAccount(t *testing.T) {
	t.Parallel()
	t.Run("bbolt", func(t *testing.T) { parallelConnects(t, startStack(t, stackOptions{})) })
	t.Run("PostgreSQL, two replicas", func(t *testing.T) {
		dsn, _ := pgtest.Start(t)
		shared := haConfig(t, dsn)
		a := startStack(t, stackOptions{ExtraConfig: shared})
		b := startStack(t, stackOptions{ExtraConfig: shared, Sim: a.Sim, SimURL: a.SimURL})
		parallelConnects(t, a, b)
	})
}

// parallelConnects connects one SendGrid account 20 times at once, spread
// over the replicas.
func parallelConnects(t *testing.T, replicas ...*stack) {
	s := replicas[0]
	const n = 20
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			codes <- replicas[i%len(replicas)].api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": fmt.Sprintf("sg-%02d", i), "api_key": vendorsim.SendGridKeyAcme}, nil)
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusCreated] != 1 || count[http.StatusOK] != n-1 {
		t.Errorf("answers %v, want one 201 and %d 200", count, n-1)
	}
	if cs := s.connections(); len(cs) != 1 {
		t.Errorf("%d connections for one account: %v", len(cs), cs)
	}
}

// startReconnect asks the API to reconnect connection id through its
// redirect flow and returns the authorize URL.
func (s *stack) startReconnect(c *apiFlowClient, id string) string {
	return s.postFlow(c, "/api/v1/connections/"+id+"/reconnect", []byte("{}"))
}
