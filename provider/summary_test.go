package provider

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestSamplesOf(t *testing.T) {
	d := NewDesc("x_total_things", "Things.", "kind")
	ms := []prometheus.Metric{
		prometheus.MustNewConstMetric(d, prometheus.GaugeValue, 2, "prod", "b"),
		prometheus.MustNewConstMetric(d, prometheus.GaugeValue, 3, "prod", "a"),
		prometheus.MustNewConstMetric(NewDesc("y", "Y."), prometheus.CounterValue, 5, "prod"),
	}
	ss := SamplesOf(ms)
	if len(ss) != 3 {
		t.Fatalf("samples: %+v", ss)
	}
	if v, ok := ss.Get("saas_x_total_things", "kind", "a"); !ok || v != 3 {
		t.Errorf("get a: %v %v", v, ok)
	}
	if _, ok := ss.Get("saas_x_total_things", "kind", "c"); ok {
		t.Error("a missing series was found")
	}
	if _, ok := ss[0].Labels["connection"]; ok {
		t.Error("the connection label was kept")
	}
	if n, parts, ok := ss.Parts("saas_x_total_things", "kind"); !ok || n != 5 || parts != "a 3, b 2" {
		t.Errorf("parts: %v %q %v", n, parts, ok)
	}
	if v, ok := ss.Get("saas_y"); !ok || v != 5 {
		t.Errorf("counter: %v %v", v, ok)
	}
	if SamplesOf(nil) != nil {
		t.Error("no metrics: want no samples")
	}
}
