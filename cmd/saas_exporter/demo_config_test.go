package main

import (
	"os"
	"strings"
	"testing"

	"github.com/saas-exporter/saas_exporter/config"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// config.demo.yaml points every vendor at the simulator exactly as the
// simulator says, and config.example.yaml is valid: both are what people
// run first.
func TestShippedConfigs(t *testing.T) {
	b, err := os.ReadFile("../../config.demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := vendorsim.New(vendorsim.Options{}).ConfigSnippet("http://127.0.0.1:9800")
	if !strings.HasSuffix(string(b), want) {
		t.Errorf("config.demo.yaml must end with the simulator's snippet:\n%s", want)
	}
	for _, f := range []string{"../../config.demo.yaml", "../../config.example.yaml"} {
		c, err := config.Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if _, err := provider.Build(vendors, c.Vendors, provider.Env{ExternalURL: c.ExternalURL, BaseDir: c.BaseDir}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
