package segment

import (
	"context"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/provider/providertest"
)

// Every Segment response decoder (workspace, usage pages, lists, errors
// with msBeforeNext), fed arbitrary bodies and statuses: no panic, no
// token in an error.
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
	const token = "sgp_fuzzTokenNeverInErrors0000000000000000000000000000000000000001"
	f.Add([]byte(`{"data":{"workspace":{"id":"w","name":"n","slug":"s"}}}`), 200)
	f.Add([]byte(`{"data":{"dailyPerSourceMTUUsage":[],"dailyWorkspaceMTUUsage":[{"periodStart":"2026-03-01","periodEnd":"2026-04-01","identified":"18446744073709551615","anonymous":"x"}],"pagination":{"current":"a","next":"a"}}}`), 200)
	f.Add([]byte(`{"data":{"sources":[{}],"pagination":{"current":"MA==","next":"MQ==","totalEntries":3}}}`), 200)
	f.Add([]byte(`{"errors":[{"type":"rate-limit","message":"slow down"}],"msBeforeNext":1e300}`), 429)
	f.Add([]byte(`{"errors":[{"type":"unauthorized","message":"Unauthorized"}]}`), 401)
	f.Fuzz(func(t *testing.T, b []byte, st int) {
		srv.Set(st, b)
		s := &provider.Scrape{Conn: provider.Connection{Name: "fuzz", AuthMethod: MethodToken,
			Settings: map[string]string{"region": "us"}, Secret: map[string]string{"token": token}},
			HTTP: srv.Client, Now: time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Collect(ctx, s); err != nil && strings.Contains(err.Error(), token) {
			t.Fatalf("error quotes the token: %v", err)
		}
	})
}
