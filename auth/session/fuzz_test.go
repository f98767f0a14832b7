package session

import (
	"bytes"
	"strings"
	"testing"

	"github.com/saas-exporter/saas_exporter/store"
)

// fuzzManager is a Manager with a fixed key and no admins.
func fuzzManager(f *testing.F) *Manager {
	m, err := New(Config{Store: store.NewMemory(), SigningKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		f.Fatal(err)
	}
	return m
}

// Invite tokens: garbage never panics and is never accepted; a real
// token round-trips.
func FuzzInviteToken(f *testing.F) {
	m := fuzzManager(f)
	good := m.InviteToken("0123456789abcdef")
	f.Add(good)
	f.Add("")
	f.Add("0123456789abcdef.")
	f.Add(strings.Repeat("a", 5000))
	f.Fuzz(func(t *testing.T, tok string) {
		id, ok := m.InviteID(tok)
		if ok && tok != m.InviteToken(id) {
			t.Fatalf("accepted a token that is not the signed form of its id: %q", tok)
		}
	})
}
