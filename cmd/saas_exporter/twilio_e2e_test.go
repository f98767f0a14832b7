package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// apiFlowClient is a script's client: basic auth on API calls and a cookie
// jar that carries the flow cookie through the vendor's consent page.
type apiFlowClient struct {
	*http.Client
	visited []string
}

func newAPIFlowClient() *apiFlowClient {
	jar, _ := cookiejar.New(nil)
	c := &apiFlowClient{}
	c.Client = &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		c.visited = append(c.visited, req.URL.String())
		return nil
	}}
	return c
}

// startFlow asks the API for a redirect flow and returns the authorize URL.
func (s *stack) startFlow(c *apiFlowClient, body map[string]string) string {
	s.t.Helper()
	b, _ := json.Marshal(body)
	return s.postFlow(c, "/api/v1/connections", b)
}

// postFlow POSTs body to an API route that starts a redirect flow and
// returns the authorize URL of its 202 answer.
func (s *stack) postFlow(c *apiFlowClient, path string, b []byte) string {
	s.t.Helper()
	req, _ := http.NewRequest("POST", s.URL+path, bytes.NewReader(b))
	req.SetBasicAuth(testAdmin, testPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AuthorizeURL string `json:"authorize_url"`
		Error        string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 202 || out.AuthorizeURL == "" {
		s.t.Fatalf("POST %s: %d %q", path, resp.StatusCode, out.Error)
	}
	return out.AuthorizeURL
}

var formActionRE = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)

// consentTwilio answers the simulated Twilio consent page for account.
func consentTwilio(t *testing.T, c *apiFlowClient, authorizeURL, account, decision string) *http.Response {
	t.Helper()
	resp, err := c.Get(authorizeURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := formActionRE.FindStringSubmatch(string(page))
	if m == nil {
		t.Fatalf("no consent form at %s: %s", authorizeURL, page)
	}
	action, _ := url.Parse(authorizeURL)
	action, _ = action.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
	c.visited = nil
	resp, err = c.PostForm(action.String(), url.Values{"state": {formValue(string(page), "state")}, "account_sid": {account}, "decision": {decision}})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func (s *stack) connections() map[string]apiConn {
	var list []apiConn
	s.api("GET", "/api/v1/connections", nil, &list)
	out := map[string]apiConn{}
	for _, c := range list {
		out[c.Name] = c
	}
	return out
}

// The whole Twilio Connect flow, through the API the way a script does it.
func TestTwilioConnectEndToEnd(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	c := newAPIFlowClient()
	authURL := s.startFlow(c, map[string]string{"vendor": "twilio", "name": "tw-acme"})
	if !strings.HasPrefix(authURL, s.SimURL+"/twilio-www/authorize/"+vendorsim.TwilioConnectAppSid+"?state=") {
		t.Fatalf("authorize URL %s", authURL)
	}
	resp := consentTwilio(t, c, authURL, vendorsim.TwilioAccountAcme, "allow")
	resp.Body.Close()
	var callback string
	for _, u := range c.visited {
		if strings.Contains(u, "/connect/twilio/callback") {
			callback = u
		}
	}
	if callback == "" || !strings.Contains(callback, "AccountSid="+vendorsim.TwilioAccountAcme) {
		t.Fatalf("redirects: %v", c.visited)
	}
	if strings.Contains(resp.Request.URL.String(), "AccountSid") {
		t.Errorf("the AccountSid stayed in the address bar: %s", resp.Request.URL)
	}
	conn, ok := s.connections()["tw-acme"]
	if !ok || conn.State != "active" || conn.Vendor != "twilio" {
		t.Fatalf("stored: %+v", s.connections())
	}

	m := s.scrape()
	for series, want := range map[string]string{
		`saas_connection_up{connection="tw-acme",vendor="twilio"}`:                   "1",
		`saas_twilio_account_status{connection="tw-acme",status="active"}`:           "1",
		`saas_twilio_phone_numbers{connection="tw-acme"}`:                            "7",
		`saas_scrape_success{connection="tw-acme",vendor="twilio"}`:                  "1",
		`saas_connection_state{connection="tw-acme",state="active",vendor="twilio"}`: "1",
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
	if !strings.Contains(m, `saas_twilio_usage_price{category="totalprice",connection="tw-acme",currency="USD",period="this_month"}`) {
		t.Error("no totalprice for this month")
	}
	promtoolCheck(t, m)

	// Replaying the callback is refused and changes nothing.
	resp, err := c.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("replayed callback: %d %s", resp.StatusCode, body)
	}
	// A callback this browser never started is refused.
	stranger := newAPIFlowClient()
	resp, err = stranger.Get(s.URL + "/connect/twilio/callback?AccountSid=" + vendorsim.TwilioAccountBeta)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("forged callback: %d", resp.StatusCode)
	}
	if n := len(s.connections()); n != 1 {
		t.Errorf("%d connections after replay and forgery, want 1", n)
	}

	// Denial shows a plain message and stores nothing.
	c2 := newAPIFlowClient()
	resp = consentTwilio(t, c2, s.startFlow(c2, map[string]string{"vendor": "twilio", "name": "tw-denied"}), vendorsim.TwilioAccountBeta, "deny")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "unauthorized_client") && !strings.Contains(strings.ToLower(string(body)), "not granted") && !strings.Contains(strings.ToLower(string(body)), "denied") {
		t.Errorf("denied: %d %s", resp.StatusCode, body)
	}
	if _, ok := s.connections()["tw-denied"]; ok {
		t.Error("a denied flow stored a connection")
	}

	// A deauthorize callback with a bad signature is refused and changes nothing.
	form := url.Values{"AccountSid": {vendorsim.TwilioAccountAcme}, "ConnectAppSid": {vendorsim.TwilioConnectAppSid}}
	req, _ := http.NewRequest("POST", s.URL+"/connect/twilio/deauthorize", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", "bm90IGEgc2lnbmF0dXJl")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || s.connections()["tw-acme"].State != "active" {
		t.Errorf("bad signature: %d, state %s", resp.StatusCode, s.connections()["tw-acme"].State)
	}

	// Twilio's signed deauthorize callback revokes it; the series stay.
	d, err := s.Sim.DeauthorizeTwilioAccount(context.Background(), vendorsim.TwilioAccountAcme)
	if err != nil || d.Status >= 300 {
		t.Fatalf("deauthorize: %v %+v", err, d)
	}
	if st := s.connections()["tw-acme"].State; st != "revoked" {
		t.Errorf("after deauthorize: state %s", st)
	}
	m = s.scrape()
	if got := metricValue(t, m, `saas_connection_state{connection="tw-acme",state="revoked",vendor="twilio"}`); got != "1" {
		t.Errorf("revoked series: %s", got)
	}
	if got := metricValue(t, m, `saas_connection_up{connection="tw-acme",vendor="twilio"}`); got != "0" {
		t.Errorf("up after revocation: %s", got)
	}
	metricValue(t, m, `saas_twilio_phone_numbers{connection="tw-acme"}`) // last known usage kept

	// Reconnect runs the flow again and keeps the id.
	c3 := newAPIFlowClient()
	resp = consentTwilio(t, c3, s.startReconnect(c3, conn.ID), vendorsim.TwilioAccountAcme, "allow")
	resp.Body.Close()
	after := s.connections()["tw-acme"]
	if after.ID != conn.ID || after.State != "active" {
		t.Errorf("after reconnect: %+v (id before %s)", after, conn.ID)
	}
	m = s.scrape()
	if got := metricValue(t, m, `saas_connection_up{connection="tw-acme",vendor="twilio"}`); got != "1" {
		t.Errorf("up after reconnect: %s", got)
	}
}
