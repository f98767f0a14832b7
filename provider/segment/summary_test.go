package segment

import (
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/provider/providertest"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// The values are those of testdata/acme.prom (see TestCollectAcme):
// billable 615003 + 1320003 this period, 1148002 + 2464002 the last.
func TestSummaryAcme(t *testing.T) {
	e := newEnv(t, 1000)
	e.p.mtuLimits = map[string]float64{"acme": 2_000_000}
	c := tokenConn("us", vendorsim.SegmentTokenAcme)
	m, _, err := e.collect(t, c, t0)
	if err != nil {
		t.Fatal(err)
	}
	got := providertest.Items(e.p.Summary(c, provider.SamplesOf(m)))
	want := `This period (so far) | Billable MTUs | 1.93501e+06 MTUs |  | 0 | identified + never identified
This period (so far) | API calls | 2.475e+09 calls |  | 0 | 
Last period | Billable MTUs | 3.612e+06 MTUs |  | 0 | identified + never identified
Last period | API calls | 4.62e+09 calls |  | 0 | 
Workspace | Sources | 7  |  | 0 | 
Workspace | Destinations | 8  |  | 0 | 
Workspace | Seats | 5  |  | 0 | Source Admin 1, Source Read-only 1, Workspace Member 1, Workspace Owner 1, other 1
Workspace | Invitations pending | 2  |  | 0 | 
`
	if got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
	// With the workspace's plan configured, billable MTUs get a meter.
	c.Settings[settingWorkspaceSlug] = "acme"
	items := e.p.Summary(c, provider.SamplesOf(m))
	if items[0].Limit != 2_000_000 || items[0].Value != 1_935_006 || items[2].Limit != 2_000_000 {
		t.Errorf("with mtu_limits: %+v", items[:3])
	}
}

func TestMTULimitsConfig(t *testing.T) {
	p := newProvider(t, "mtu_limits:\n  acme: 10000\n")
	if p.mtuLimits["acme"] != 10000 {
		t.Errorf("mtu_limits: %v", p.mtuLimits)
	}
	for _, bad := range []string{"mtu_limits:\n  acme: 0\n", "mtu_limits:\n  acme: -5\n", "mtu_limits:\n  acme: lots\n"} {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(bad), &n); err != nil {
			t.Fatal(err)
		}
		if _, err := New(&n, provider.Env{}); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
