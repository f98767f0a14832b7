package sendgrid

import (
	"context"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/provider/providertest"
)

// Every SendGrid response decoder, fed arbitrary bodies and statuses: no
// panic, and no error that quotes the key.
func FuzzResponses(f *testing.F) {
	srv := providertest.NewCanned(f)
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("api_url: "+srv.URL+"\neu_api_url: "+srv.URL+"\n"), &n); err != nil {
		f.Fatal(err)
	}
	p, err := New(&n, provider.Env{})
	if err != nil {
		f.Fatal(err)
	}
	const key = "SG.fuzzKeyNeverInErrors.abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	f.Add([]byte(`{"scopes":["stats.read","user.credits.read","user.account.read","teammates.read","api_keys.read","subusers.read","subusers.stats.sums.read","subusers.credits.read"]}`), 200)
	f.Add([]byte(`{"date":"2026-03-01","stats":[{"name":"a\xff","type":"subuser","metrics":{"requests":3}},{"name":null,"metrics":null}]}`), 200)
	f.Add([]byte(`{"type":"unlimited","remain":null,"total":null,"used":null,"reset_frequency":null}`), 200)
	f.Add([]byte(`{"result":[{"email":"x","expiration_date":1773000000},{"expiration_date":"soon"}]}`), 200)
	f.Add([]byte(`[{"date":"2026-03-15","stats":[{"metrics":{"requests":1}}]}]`), 200)
	f.Add([]byte(`{"remain":1,"total":"x","next_reset":"2026-13-45"}`), 200)
	f.Add([]byte(`{"errors":[{"field":null,"message":"authorization required"}]}`), 401)
	f.Add([]byte(`<html>`), 200)
	f.Add([]byte(`{"result":[{"user_type":"owner"}],"results":null}`), 200)
	f.Fuzz(func(t *testing.T, b []byte, st int) {
		srv.Set(st, b)
		s := &provider.Scrape{Conn: provider.Connection{Name: "fuzz", Secret: map[string]string{"api_key": key}},
			HTTP: srv.Client, Now: time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Collect(ctx, s); err != nil && strings.Contains(err.Error(), key) {
			t.Fatalf("error quotes the key: %v", err)
		}
		m := p.Methods()[0].(provider.FormMethod)
		if _, err := m.Verify(ctx, srv.Client, map[string]string{"api_key": key}); err != nil && strings.Contains(err.Error(), key) {
			t.Fatalf("verify error quotes the key: %v", err)
		}
	})
}
