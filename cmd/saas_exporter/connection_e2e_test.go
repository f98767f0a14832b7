package main

import (
	"strings"
	"testing"

	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// The connection's JSON (#18 item 6) through the real engine: Collect now
// inside min_interval, the provider's summary with its meter, the attempt
// history, and renames with their refusals.
func TestConnectionAPIEndToEnd(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{MinInterval: "1h"})
	var sg, beta apiConn
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "sg-acme", "api_key": vendorsim.SendGridKeyAcme}, &sg); code != 201 {
		t.Fatalf("connect: %d", code)
	}
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "sg-beta", "api_key": vendorsim.SendGridKeyBeta}, &beta); code != 201 {
		t.Fatalf("connect beta: %d", code)
	}
	type item struct {
		Group, Label string
		Value, Limit float64
	}
	type detail struct {
		ID          string
		Name        string
		State       string
		CollectedAt *string `json:"collected_at"`
		Summary     []item
		History     []struct {
			Outcome  string
			Duration float64 `json:"duration_seconds"`
			Error    string
		}
	}
	var d detail
	if code := s.api("GET", "/api/v1/connections/"+sg.ID, nil, &d); code != 200 || len(d.Summary) != 0 || len(d.History) != 0 || d.CollectedAt != nil {
		t.Fatalf("before any collection: %d %+v", code, d)
	}
	s.scrape() // collects once; min_interval (1h) then holds
	for i := 1; i <= 2; i++ {
		if code := s.api("POST", "/api/v1/connections/"+sg.ID+"/collect", map[string]string{}, &d); code != 200 {
			t.Fatalf("collect now %d: %d", i, code)
		}
		if len(d.History) != 1+i || d.History[0].Outcome != "success" || d.State != "active" || d.CollectedAt == nil {
			t.Fatalf("after collect now %d: %+v", i, d)
		}
	}
	var credits *item
	for i := range d.Summary {
		if d.Summary[i].Label == "Credits used" {
			credits = &d.Summary[i]
		}
	}
	if credits == nil || credits.Limit != 50000 || credits.Value <= 0 {
		t.Errorf("credits item: %+v in %+v", credits, d.Summary)
	}

	// Renames: taken, against the rule, unknown id, then one that works.
	var e struct{ Error, Field string }
	if code := s.api("PATCH", "/api/v1/connections/"+sg.ID, map[string]string{"name": "sg-beta"}, &e); code != 409 || e.Field != "name" {
		t.Errorf("taken name: %d %+v", code, e)
	}
	if code := s.api("PATCH", "/api/v1/connections/"+sg.ID, map[string]string{"name": "sg acme"}, &e); code != 400 || e.Field != "name" {
		t.Errorf("bad name: %d %+v", code, e)
	}
	if code := s.api("PATCH", "/api/v1/connections/0000000000000000", map[string]string{"name": "x"}, nil); code != 404 {
		t.Errorf("unknown id: %d", code)
	}
	if code := s.api("GET", "/api/v1/connections/0000000000000000", nil, nil); code != 404 {
		t.Errorf("unknown id: %d", code)
	}
	if c := s.connections(); c["sg-acme"].ID != sg.ID || c["sg-beta"].ID != beta.ID {
		t.Fatalf("a refused rename changed something: %+v", c)
	}
	if code := s.api("PATCH", "/api/v1/connections/"+sg.ID, map[string]string{"name": "sg-prod"}, &d); code != 200 || d.Name != "sg-prod" || d.ID != sg.ID {
		t.Fatalf("rename: %d %+v", code, d)
	}
	scrape := s.scrape()
	metricValue(t, scrape, `saas_connection_up{connection="sg-prod",vendor="sendgrid"}`)
	metricValue(t, scrape, `saas_sendgrid_credits_limit{connection="sg-prod"}`)
	if strings.Contains(scrape, `connection="sg-acme"`) {
		t.Error("the old name is still exported after the rename")
	}
}
