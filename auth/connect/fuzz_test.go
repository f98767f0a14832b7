package connect

import (
	"bytes"
	"testing"

	"github.com/saas-exporter/saas_exporter/auth/session"
	"github.com/saas-exporter/saas_exporter/store"
)

// Flow cookies: anything but a sealed cookie is refused, without panics.
func FuzzFlowCookie(f *testing.F) {
	m, err := session.New(session.Config{Store: store.NewMemory(), SigningKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(Config{Store: store.NewMemory(), ExternalURL: "http://127.0.0.1:9888", Sessions: m})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s.SealFlow(FlowState{Vendor: "oauthco", State: "st"}))
	f.Add("")
	f.Add("%%%")
	f.Fuzz(func(t *testing.T, v string) {
		_, _ = s.OpenFlow(v)
	})
}
