package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// Segment tokens in both regions and an OAuth app, through the API.
func TestSegmentEndToEnd(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	var out struct {
		Error string `json:"error"`
	}
	// The EU token on the US region is refused with a hint, nothing stored.
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "segment", "name": "wrong", "token": vendorsim.SegmentTokenEuro, "region": "us"}, &out); code != 400 || !strings.Contains(strings.ToLower(out.Error), "eu") {
		t.Errorf("wrong region: %d %q", code, out.Error)
	}
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "segment", "name": "wrong", "token": vendorsim.SegmentTokenAcme, "region": "mars"}, &out); code != 400 {
		t.Errorf("unknown region: %d %q", code, out.Error)
	}
	// One workspace per connection: connecting a workspace again updates
	// its connection, so the EU workspace is connected through OAuth only.
	for _, c := range []map[string]string{
		{"vendor": "segment", "name": "seg-us", "token": vendorsim.SegmentTokenAcme, "region": "us"},
		{"vendor": "segment", "name": "seg-oauth", "method": "client_credentials", "region": "eu", "client_id": vendorsim.SegmentOAuthClientEuro,
			"key_id": vendorsim.SegmentOAuthKeyIDEuro, "private_key": vendorsim.SegmentOAuthTestPrivateKey},
	} {
		out.Error = ""
		if code := s.api("POST", "/api/v1/connections", c, &out); code != 201 {
			t.Fatalf("connect %s: %d %q", c["name"], code, out.Error)
		}
	}
	if n := len(s.connections()); n != 2 {
		t.Fatalf("%d connections", n)
	}
	m := s.scrape()
	ws, _ := vendorsim.SegmentWorkspaceFor(vendorsim.SegmentTokenAcme)
	for series, want := range map[string]string{
		`saas_segment_sources{connection="seg-us"}`:                                                                          fmt.Sprint(ws.Sources),
		`saas_segment_users{connection="seg-us",role="Workspace Owner"}`:                                                     "1",
		`saas_segment_users{connection="seg-us",role="other"}`:                                                               "1",
		`saas_segment_invites_pending{connection="seg-us"}`:                                                                  fmt.Sprint(len(ws.Invites)),
		`saas_scrape_success{connection="seg-oauth",vendor="segment"}`:                                                       "1",
		`saas_connection_info{account="Euro Corp",auth_method="client_credentials",connection="seg-oauth",vendor="segment"}`: "1",
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}
	mtu := ws.MTUOn(s.Sim.Now())
	for kind, want := range map[string]int64{"identified": mtu.Identified, "anonymous": mtu.Anonymous, "anonymous_identified": mtu.AnonymousIdentified, "never_identified": mtu.NeverIdentified} {
		if got, _ := strconv.ParseFloat(metricValue(t, m, `saas_segment_mtu{connection="seg-us",kind="`+kind+`",period="this_month"}`), 64); got != float64(want) {
			t.Errorf("mtu %s = %v, want %d", kind, got, want)
		}
		metricValue(t, m, `saas_segment_mtu{connection="seg-us",kind="`+kind+`",period="last_month"}`)
	}
	// The EU workspace's periods start on the 10th: found, not zero.
	metricValue(t, m, `saas_segment_mtu{connection="seg-oauth",kind="identified",period="this_month"}`)
	if !strings.Contains(m, `saas_segment_source_api_calls{connection="seg-us",source="Javascript 1",source_id="`) {
		t.Error("no per-source API calls")
	}
	if n := s.Sim.SegmentUnversionedCalls(); n != 0 {
		t.Errorf("%d Segment calls without Accept: application/vnd.segment.v1+json", n)
	}
	// Neither expires without a person: tokens do not, and the exporter
	// renews the OAuth access token itself.
	if strings.Contains(m, `saas_connection_expiry_timestamp_seconds{connection="seg-`) {
		t.Error("an expiry for a connection that does not expire without a person")
	}
	promtoolCheck(t, m)

	// A revoked token turns the connection revoked.
	s.Sim.RevokeSegmentToken(vendorsim.SegmentTokenAcme)
	m = s.scrape()
	if got := metricValue(t, m, `saas_connection_state{connection="seg-us",state="revoked",vendor="segment"}`); got != "1" {
		t.Errorf("revoked: %s", got)
	}
	if strings.Contains(s.logs.String(), vendorsim.SegmentTokenAcme) || strings.Contains(s.logs.String(), "BEGIN PRIVATE KEY") {
		t.Error("a Segment secret reached the log")
	}
}
