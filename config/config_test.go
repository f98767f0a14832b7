package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(""))
	if err != nil {
		t.Fatal(err)
	}
	if c.ExternalURL != DefaultExternalURL || c.DataDir != DefaultDataDir {
		t.Errorf("defaults: %q %q", c.ExternalURL, c.DataDir)
	}
	if c.Scrape.Timeout != 8*time.Second || c.Scrape.MinInterval != 30*time.Second || c.Invites.DefaultTTL != 72*time.Hour {
		t.Errorf("scrape defaults: %+v %+v", c.Scrape, c.Invites)
	}
	if c.Scrape.Concurrency != 256 || c.Scrape.VendorConcurrency != 0 {
		t.Errorf("concurrency defaults: %+v", c.Scrape)
	}
	if c.Store.Postgres != nil || len(c.Admins) != 0 || c.SecretKeyFile != "" {
		t.Errorf("store, admins or secret_key_file set by default: %+v", c)
	}
}

// The defaults the README's configuration table documents are the ones
// the code applies.
func TestDefaultsMatchREADME(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\| `([^`]+)` \\|").FindAllStringSubmatch(string(b), -1) {
		documented[m[1]] = m[2]
	}
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	for key, got := range map[string]any{
		"external_url":              c.ExternalURL,
		"data_dir":                  c.DataDir,
		"scrape.timeout":            c.Scrape.Timeout,
		"scrape.min_interval":       c.Scrape.MinInterval,
		"scrape.concurrency":        c.Scrape.Concurrency,
		"scrape.vendor_concurrency": c.Scrape.VendorConcurrency,
		"invites.default_ttl":       c.Invites.DefaultTTL,
	} {
		doc, ok := documented[key]
		if !ok {
			t.Errorf("the README's configuration table has no default for %s", key)
			continue
		}
		if d, isDur := got.(time.Duration); isDur {
			if dd, err := time.ParseDuration(doc); err != nil || dd != d {
				t.Errorf("%s: the README says %s, the code applies %s", key, doc, d)
			}
		} else if fmt.Sprint(got) != doc {
			t.Errorf("%s: the README says %s, the code applies %v", key, doc, got)
		}
	}
}

func TestFullConfig(t *testing.T) {
	t.Setenv("TEST_TWILIO_TOKEN", "tok123")
	c, err := Parse([]byte(`
external_url: https://exporter.example.com/
data_dir: /var/lib/saas
admins:
  admin: "$2y$10$abcdefghijklmnopqrstuuJ0123456789abcdefghijklmnopqrstu"
scrape:
  timeout: 5s
  min_interval: 1m
  concurrency: 8
vendors:
  twilio:
    auth_token: ${TEST_TWILIO_TOKEN}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ExternalURL != "https://exporter.example.com" {
		t.Errorf("external_url not trimmed: %q", c.ExternalURL)
	}
	if c.Scrape.Timeout != 5*time.Second || c.Scrape.MinInterval != time.Minute || c.Scrape.Concurrency != 8 {
		t.Errorf("scrape: %+v", c.Scrape)
	}
	if !strings.HasPrefix(c.Admins["admin"], "$2y$10$abc") {
		t.Errorf("bcrypt hash was mangled by env expansion: %q", c.Admins["admin"])
	}
	n := c.Vendors["twilio"]
	var tw struct {
		AuthToken string `yaml:"auth_token"`
	}
	if err := Decode(&n, &tw); err != nil {
		t.Fatal(err)
	}
	if tw.AuthToken != "tok123" {
		t.Errorf("env not expanded in vendor section: %q", tw.AuthToken)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top key", "external_url: http://x:1\nbogus: 1\n", []string{`line 2`, `unknown key "bogus"`, "at the top level", "external_url"}},
		{"unknown nested key", "scrape:\n  timeout: 5s\n  timout: 5s\n", []string{`line 3`, `unknown key "timout"`, "in scrape", "known keys: timeout, min_interval"}},
		{"negative timeout", "scrape:\n  timeout: -1s\n", []string{`scrape.timeout: must be > 0, got "-1s"`}},
		{"bad duration", "scrape:\n  timeout: soon\n", []string{"line 2", "duration"}},
		{"bad external url", "external_url: localhost:9888\n", []string{"external_url: must be an absolute http(s) URL"}},
		{"external url with query", "external_url: http://a/?x=1\n", []string{"must not have a query"}},
		{"external url with path", "external_url: https://host/exporter\n", []string{"must not have a path"}},
		{"plain password", "admins:\n  bob: hunter2\n", []string{"admins.bob: must be a bcrypt hash"}},
		{"missing env", "external_url: ${SAAS_TEST_SURELY_UNSET}\n", []string{"line 1", "environment variable SAAS_TEST_SURELY_UNSET is not set"}},
		{"invalid yaml", "scrape: [\n", []string{"invalid YAML"}},
		{"postgres without dsn", "store:\n  postgres: {}\n", []string{"store.postgres: set dsn or dsn_file"}},
		{"negative concurrency", "scrape:\n  concurrency: -2\n", []string{"scrape.concurrency: must be > 0, got -2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDecodeVendorUnknownKey(t *testing.T) {
	c, err := Parse([]byte("vendors:\n  sendgrid:\n    api_url: http://x\n    apiurl: http://y\n"))
	if err != nil {
		t.Fatal(err)
	}
	var sg struct {
		APIURL string `yaml:"api_url"`
	}
	n := c.Vendors["sendgrid"]
	err = Decode(&n, &sg)
	if err == nil || !strings.Contains(err.Error(), `line 4: unknown key "apiurl"`) {
		t.Fatalf("got %v", err)
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "tok")
	if err := os.WriteFile(f, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := ReadSecret("", f, "vendors.twilio.auth_token"); err != nil || v != "s3cret" {
		t.Errorf("from file: %q %v", v, err)
	}
	if _, err := ReadSecret("a", f, "vendors.twilio.auth_token"); err == nil || !strings.Contains(err.Error(), "either auth_token or auth_token_file") {
		t.Errorf("both set: %v", err)
	}
	_, err := ReadSecret("", filepath.Join(dir, "missing"), "vendors.twilio.auth_token")
	if err == nil || !strings.Contains(err.Error(), "vendors.twilio.auth_token_file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestLoadRelativePaths(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(p, []byte("data_dir: ./d\nsecret_key_file: k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != filepath.Join(dir, "d") || c.SecretKeyFile != filepath.Join(dir, "k") {
		t.Errorf("paths: %q %q", c.DataDir, c.SecretKeyFile)
	}
	if _, err := Load(filepath.Join(dir, "nope.yml")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestBaseURL(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"", "https://api.example.com", ""},
		{"http://127.0.0.1:9800/sim/", "http://127.0.0.1:9800/sim", ""},
		{"api.example.com", "", `vendors.x.api_url: must be an absolute http(s) URL such as https://api.example.com, got "api.example.com"`},
		{"ftp://x", "", "must be an absolute http(s) URL"},
		{"https://x/?a=1", "", "must not carry a query, fragment or user info"},
		{"https://u:p@x", "", "must not carry a query, fragment or user info"},
	} {
		got, err := BaseURL("vendors.x.api_url", c.in, "https://api.example.com")
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("BaseURL(%q) = %q, %v; want %q, %q", c.in, got, err, c.want, c.err)
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	c, err := Parse([]byte("web:\n  trusted_proxies: [10.0.0.0/8, 192.168.1.7, '::1', 172.16.5.9/12]\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.Web.Proxies {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "10.0.0.0/8 192.168.1.7/32 ::1/128 172.16.0.0/12" {
		t.Errorf("parsed %v", got)
	}
	_, err = Parse([]byte("web:\n  trusted_proxies: [lb.example.com]\n"))
	if err == nil || !strings.Contains(err.Error(), `web.trusted_proxies: "lb.example.com" is not an IP address or CIDR range`) {
		t.Errorf("a host name: %v", err)
	}
}

// A relative dsn_file is read from the config file's directory, not the
// working directory.
func TestLoadRelativeDSNFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dsn"), []byte("postgres://u@db/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(p, []byte("store:\n  postgres:\n    dsn_file: dsn\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // elsewhere
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Store.Postgres.DSN != "postgres://u@db/x" {
		t.Errorf("dsn from a relative dsn_file: %q", c.Store.Postgres.DSN)
	}
}

// scrape.min_interval: 0 means "never reuse"; only a missing key gets 30s.
func TestMinIntervalZero(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"scrape:\n  min_interval: 0s\n": 0,
		"scrape:\n  timeout: 5s\n":      30 * time.Second,
		"scrape:\n":                     30 * time.Second,
		"":                              30 * time.Second,
		"scrape:\n  min_interval: 5s\n": 5 * time.Second,
	} {
		c, err := Parse([]byte(in))
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if c.Scrape.MinInterval != want {
			t.Errorf("%q: min_interval %v, want %v", in, c.Scrape.MinInterval, want)
		}
	}
	if _, err := Parse([]byte("scrape:\n  min_interval: -1s\n")); err == nil {
		t.Error("negative min_interval accepted")
	}
}
