package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/saas-exporter/saas_exporter/store"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// restart starts the exporter of a stopped stack again on its data
// directory.
func restart(t *testing.T, s *stack) *stack {
	t.Helper()
	return startStack(t, stackOptions{DataDir: filepath.Join(s.Dir, "data"), Sim: s.Sim, SimURL: s.SimURL})
}

// One connection whose stored secret cannot be opened (#13 item 3): the
// exporter starts, that connection is exported as an error with the
// reason, and the others keep working.
func TestDamagedRecordFailsOnlyItsConnection(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	var bad apiConn
	for name, key := range map[string]string{"good": vendorsim.SendGridKeyAcme, "bad": vendorsim.SendGridKeyBeta} {
		var c apiConn
		if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": name, "api_key": key}, &c); code != 201 {
			t.Fatalf("connect %s: %d", name, code)
		}
		if name == "bad" {
			bad = c
		}
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("stop: %d", code)
	}
	db, err := bolt.Open(filepath.Join(s.Dir, "data", store.DefaultBoltFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("connections"))
		var rec map[string]any
		if err := json.Unmarshal(b.Get([]byte(bad.ID)), &rec); err != nil {
			return err
		}
		rec["sealed_secret"] = "AAAA" // not a sealed value
		v, _ := json.Marshal(rec)
		return b.Put([]byte(bad.ID), v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	s = restart(t, s)
	m := s.scrape()
	if got := metricValue(t, m, `saas_scrape_success{connection="good",vendor="sendgrid"}`); got != "1" {
		t.Errorf("the intact connection: scrape_success %s", got)
	}
	if got := metricValue(t, m, `saas_connection_state{connection="bad",state="error",vendor="sendgrid"}`); got != "1" {
		t.Errorf("the damaged connection: state error %s", got)
	}
	if got := metricValue(t, m, `saas_connection_up{connection="bad",vendor="sendgrid"}`); got != "0" {
		t.Errorf("the damaged connection: up %s", got)
	}
	var list []struct {
		Name      string `json:"name"`
		State     string `json:"state"`
		LastError string `json:"last_error"`
	}
	s.api("GET", "/api/v1/connections", nil, &list)
	for _, c := range list {
		if c.Name == "bad" && (c.State != "error" || !strings.Contains(c.LastError, "reconnect")) {
			t.Errorf("API shows the damaged connection as %q: %q", c.State, c.LastError)
		}
	}
	// What the error says to do works: reconnecting replaces the record.
	var rc apiConn
	if code := s.api("POST", "/api/v1/connections/"+bad.ID+"/reconnect", map[string]string{"api_key": vendorsim.SendGridKeyBeta}, &rc); code != 200 {
		t.Fatalf("reconnecting the damaged connection: %d", code)
	}
	m = s.scrape()
	if got := metricValue(t, m, `saas_scrape_success{connection="bad",vendor="sendgrid"}`); got != "1" {
		t.Errorf("the reconnected connection: scrape_success %s", got)
	}
}

// A 0-byte store file beside the key and admin files of an earlier run
// (#13 item 3) starts empty only with a loud error in the log.
func TestEmptyStoreFileIsLoud(t *testing.T) {
	t.Parallel()
	s := startStack(t, stackOptions{})
	if code := s.stop(); code != 0 {
		t.Fatalf("stop: %d", code)
	}
	if err := os.Truncate(filepath.Join(s.Dir, "data", store.DefaultBoltFile), 0); err != nil {
		t.Fatal(err)
	}
	s = restart(t, s)
	if !strings.Contains(s.logs.String(), "EMPTY STORE") {
		t.Errorf("no warning for an emptied store file:\n%s", s.logs.String())
	}
}
