package main

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// A SendGrid connection made with OAuth (sign-in) is collected cold in
// at most two round trips too: its scopes are known from connecting, so
// /v3/scopes goes out with the other calls, not before them.
func TestColdCollectionRoundTripsSendGridOAuth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		toPresent()
		r := newDepthRig(t, 0)
		r.connectOAuth(t, "acme")
		r.restart(t, time.Hour, newInProcess(r.sim.Handler()))
		r.sim.SetFault("sendgrid", vendorsim.Fault{Latency: depthLatency})
		r.sim.ResetCalls()
		start := time.Now()
		body := r.scrape(t)
		rounds := float64(time.Since(start)) / float64(depthLatency)
		if !strings.Contains(body, `saas_scrape_success{connection="sendgrid-oauth",vendor="sendgrid"} 1`) {
			t.Fatalf("the cold collection did not succeed:\n%s", grepLines(body, "sendgrid-oauth"))
		}
		t.Logf("%.0f round trips, %d calls: %v", rounds, r.sim.Calls("sendgrid"), r.sim.CallCounts().Routes)
		if rounds > 2 {
			t.Errorf("a cold SendGrid OAuth collection waited for %.0f round trips, want at most 2", rounds)
		}
		time.Sleep(time.Hour) // lets client timers fire before the bubble ends
	})
}

// connectOAuth runs the SendGrid sign-in against the simulator's OAuth
// server (consent for account, Allow) and stores the connection as the
// API does.
func (r *depthRig) connectOAuth(t *testing.T, account string) {
	t.Helper()
	var m provider.RedirectMethod
	for _, x := range provider.Find(r.providers, "sendgrid").Methods() {
		if rm, ok := x.(provider.RedirectMethod); ok && rm.Name() == "oauth" && rm.Enabled() {
			m = rm
		}
	}
	if m == nil {
		t.Fatal("the simulator's configuration enables no SendGrid OAuth method")
	}
	flow := provider.Flow{State: "state-0123456789", Verifier: "verifier-0123456789abcdefghijklmnopqrstuvwxyz", RedirectURL: "http://127.0.0.1:9888/connect/sendgrid/callback"}
	u, err := m.AuthorizeURL(flow)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: newInProcess(r.sim.Handler()), CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := url.Values{"account": {account}, "decision": {"allow"}}
	for _, f := range regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`).FindAllStringSubmatch(string(page), -1) {
		form.Set(f[1], html.UnescapeString(f[2]))
	}
	au, _ := url.Parse(u)
	resp, err = hc.PostForm(au.Scheme+"://"+au.Host+au.Path, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("consent answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cred, err := m.Finish(context.Background(), r.client("sendgrid"), flow, loc.Query())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c := store.Connection{ID: "sendgrid-oauth", Vendor: "sendgrid", Name: "sendgrid-oauth", AuthMethod: cred.AuthMethod, AccountID: cred.AccountID,
		Account: cred.Account, Secret: cred.Secret, Settings: cred.Settings, Scopes: cred.Scopes, MissingScopes: cred.MissingScopes,
		Expiry: cred.Expiry, Created: now, Status: store.Status{State: store.StateActive, Updated: now}}
	if err := r.store.Put(context.Background(), c); err != nil {
		t.Fatal(err)
	}
}
