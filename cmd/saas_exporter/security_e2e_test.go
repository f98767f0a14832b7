package main

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/saas-exporter/saas_exporter/store"
)

// Issue #12 item 10: after a key rotation (a new key first in
// secret_key_file), a pending invite link still opens and can be used.
func TestInviteSurvivesKeyRotation(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	keyFile := filepath.Join(t.TempDir(), "secret.key")
	oldKey, _ := store.GenerateKey()
	newKey, _ := store.GenerateKey()
	if err := os.WriteFile(keyFile, []byte(oldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	extra := "secret_key_file: " + keyFile + "\n"
	s := startStack(t, stackOptions{DataDir: data, ExtraConfig: extra})
	var inv struct {
		URL string `json:"url"`
	}
	if code := s.api("POST", "/api/v1/invites", map[string]string{"vendor": "sendgrid", "name": "later"}, &inv); code != http.StatusCreated {
		t.Fatalf("create invite: %d", code)
	}
	u, err := url.Parse(inv.URL)
	if err != nil || !strings.HasPrefix(u.Path, "/invite/") {
		t.Fatalf("invite URL %q", inv.URL)
	}
	if code := s.stop(); code != 0 {
		t.Fatalf("exporter exited with %d", code)
	}

	if err := os.WriteFile(keyFile, []byte(newKey+"\n"+oldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = startStack(t, stackOptions{DataDir: data, ExtraConfig: extra})
	code, page := s.get(u.Path)
	if code != http.StatusOK || !strings.Contains(page, "Connect SendGrid") {
		t.Fatalf("pending invite after a key rotation: %d\n%s", code, page)
	}
}
