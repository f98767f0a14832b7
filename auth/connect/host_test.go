package connect

import (
	"net/http"
	"net/url"
	"testing"
)

func TestWrongHostRules(t *testing.T) {
	for _, c := range []struct {
		external, host string
		proxied, wrong bool
	}{
		{"http://127.0.0.1:9888", "127.0.0.1:9888", false, false},
		{"http://127.0.0.1:9888", "localhost:9888", false, true},
		{"http://localhost:9888", "127.0.0.1:9888", false, true},
		{"http://localhost:9888", "localhost:9889", false, true},
		{"http://LocalHost:9888", "localhost:9888", false, false},
		{"https://exporter.example.com", "exporter.example.com:443", false, false},
		{"https://exporter.example.com", "exporter.example.com", false, false},
		{"https://exporter.example.com", "127.0.0.1:9888", false, false}, // a proxy on the same machine
		{"https://exporter.example.com", "10.0.0.5:9888", true, false},   // a proxy elsewhere
		{"https://exporter.example.com", "10.0.0.5:9888", false, true},
		{"http://127.0.0.1:9888", "[::1]:9888", false, true},
	} {
		s := &Service{c: Config{ExternalURL: c.external}, external: mustURL(t, c.external)}
		r, _ := http.NewRequest("GET", "http://"+c.host+"/x?y=1", nil)
		r.Host = c.host
		if c.proxied {
			r.Header.Set("X-Forwarded-For", "192.0.2.1")
		}
		got := s.WrongHost(r)
		if (got != "") != c.wrong {
			t.Errorf("external_url %s, Host %s, proxied %v: wrongHost %q, want wrong=%v", c.external, c.host, c.proxied, got, c.wrong)
		}
		if c.wrong && got != c.external+"/x?y=1" {
			t.Errorf("external_url %s, Host %s: link %q", c.external, c.host, got)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
