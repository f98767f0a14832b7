package oauth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/config"
)

func decodeSection(t *testing.T, y string) (Section, error) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(y), &n); err != nil {
		t.Fatal(err)
	}
	var s Section
	err := config.Decode(&n, &s)
	return s, err
}

func TestSectionConfig(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("  from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := decodeSection(t, "client_id: abc\nclient_secret_file: "+secretFile+"\nauth_url: https://x.example/authorize\ntoken_url: https://x.example/token\nrefresh_failure_window: 12h\n")
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Config("oauth", []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientSecret != "from-file" || c.RefreshFailureWindow != 12*time.Hour || strings.Join(c.Scopes, " ") != "a b" {
		t.Errorf("config: secret %q window %s scopes %v", c.ClientSecret, c.RefreshFailureWindow, c.Scopes)
	}
	m := NewMethod("oauth", "t", "V", c, (&verified{}).verify)
	if got := m.Config(); got.RefreshMargin != DefaultRefreshMargin || got.AuthStyle != oauth2.AuthStyleInHeader {
		t.Errorf("defaults: margin %s style %v", got.RefreshMargin, got.AuthStyle)
	}
	s.RefreshFailureWindow = 0
	c, _ = s.Config("oauth", nil)
	if NewMethod("oauth", "t", "V", c, nil).Config().RefreshFailureWindow != 96*time.Hour {
		t.Error("refresh_failure_window default is not 96h")
	}

	for _, tc := range []struct{ yaml, want string }{
		{"client_secret: s\nauth_url: https://x/a\ntoken_url: https://x/t\n", "oauth.client_id is required"},
		{"client_id: a\nauth_url: https://x/a\ntoken_url: https://x/t\n", "set client_secret or client_secret_file"},
		{"client_id: a\nclient_secret: s\nclient_secret_file: /f\nauth_url: https://x/a\ntoken_url: https://x/t\n", "not both"},
		{"client_id: a\nclient_secret_file: /nonexistent/secret\nauth_url: https://x/a\ntoken_url: https://x/t\n", "oauth.client_secret_file"},
		{"client_id: a\nclient_secret: s\ntoken_url: https://x/t\n", "oauth.auth_url is required"},
		{"client_id: a\nclient_secret: s\nauth_url: ftp://x/a\ntoken_url: https://x/t\n", "oauth.auth_url: must be an absolute http(s) URL"},
		{"client_id: a\nclient_secret: s\nauth_url: https://x/a\ntoken_url: /token\n", "oauth.token_url: must be an absolute http(s) URL"},
		{"client_id: a\nclient_secret: s\nauth_url: https://x/a\ntoken_url: https://x/t\nscopes: [\"a b\"]\n", "is not a scope"},
		{"client_id: a\nclient_secret: s\nauth_url: https://x/a\ntoken_url: https://x/t\nrefresh_failure_window: -1h\n", "must be positive"},
	} {
		s, err := decodeSection(t, tc.yaml)
		if err == nil {
			_, err = s.Config("oauth", nil)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "from-file") {
			t.Errorf("secret in error: %v", err)
		}
	}
	if _, err := decodeSection(t, "client_idd: a\n"); err == nil || !strings.Contains(err.Error(), `unknown key "client_idd"`) {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := decodeSection(t, "refresh_failure_window: soon\n"); err == nil {
		t.Error("a bad duration was accepted")
	}
}
