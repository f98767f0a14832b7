package twilio

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/provider/providertest"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// Every Twilio response decoder (account, usage pages, balance, numbers),
// fed arbitrary bodies and statuses: no panic, no auth token in an error.
func FuzzResponses(f *testing.F) {
	srv := providertest.NewCanned(f)
	p, err := build(simConfig(srv.URL))
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"sid":"`+vendorsim.TwilioAccountAcme+`","friendly_name":"x","status":"active","type":"Full"}`), 200)
	f.Add([]byte(`{"usage_records":[{"category":"sms","count":"12","usage":"1.5","usage_unit":"messages","price":"302.85563","price_unit":"usd"}],"next_page_uri":"/2010-04-01/Accounts/AC0/Usage/Records/Today.json?Page=1"}`), 200)
	f.Add([]byte(`{"balance":"-4.20","currency":"EUR"}`), 200)
	f.Add([]byte(`{"code":20003,"message":"Authenticate","status":401}`), 401)
	f.Add([]byte(`{"incoming_phone_numbers":[{}],"next_page_uri":null}`), 200)
	f.Fuzz(func(t *testing.T, b []byte, st int) {
		srv.Set(st, b)
		s := &provider.Scrape{Conn: provider.Connection{Name: "fuzz", AccountID: vendorsim.TwilioAccountAcme, AuthMethod: "connect"},
			HTTP: srv.Client, Now: time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Collect(ctx, s); err != nil && strings.Contains(err.Error(), vendorsim.TwilioOwnerAuthToken) {
			t.Fatalf("error quotes the auth token: %v", err)
		}
	})
}

// The deauthorize callback with arbitrary form, signature and path: no
// panic, and nothing is revoked without Twilio's valid signature.
func FuzzDeauthorize(f *testing.F) {
	p, err := build(simConfig("http://127.0.0.1:1"))
	if err != nil {
		f.Fatal(err)
	}
	good := url.Values{"AccountSid": {vendorsim.TwilioAccountAcme}, "ConnectAppSid": {vendorsim.TwilioConnectAppSid}}
	f.Add(good.Encode(), vendorsim.TwilioSignature(vendorsim.TwilioOwnerAuthToken, externalURL+"/connect/twilio/deauthorize", good), "deauthorize")
	f.Add("AccountSid=AC1", "", "deauthorize")
	f.Add("%%%", "x", "callback")
	f.Fuzz(func(t *testing.T, form, sig, name string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(form))
		r.URL.Path = "/connect/twilio/" + name
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if sig != "" {
			r.Header.Set("X-Twilio-Signature", sig)
		}
		revoked, err := p.(*Provider).Webhook(r, name)
		if err != nil || len(revoked) == 0 {
			return
		}
		vals, _ := url.ParseQuery(form)
		if want := vendorsim.TwilioSignature(vendorsim.TwilioOwnerAuthToken, externalURL+"/connect/twilio/deauthorize", vals); sig != want {
			t.Fatalf("revoked %v without a valid signature (got %q)", revoked, sig)
		}
	})
}
