package collector

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saas-exporter/saas_exporter/provider"
)

// Kept sections' metrics render exactly as the const metrics they replace.
func TestCompactMetricsRenderTheSame(t *testing.T) {
	gauge := provider.NewDesc("test_gauge", "A gauge.", "kind", "period")
	counter := prometheus.NewDesc("saas_test_events_total", "Events.", []string{"connection"}, prometheus.Labels{"fixed": "x"})
	orig := []prometheus.Metric{
		prometheus.MustNewConstMetric(gauge, prometheus.GaugeValue, 1.5, "prod", "a\"b\\c\nd", "this_month"),
		prometheus.MustNewConstMetric(gauge, prometheus.GaugeValue, -0, "prod", "", "last_month"),
		prometheus.MustNewConstMetric(counter, prometheus.CounterValue, 42, "prod"),
		prometheus.MustNewConstMetric(prometheus.NewDesc("saas_test_untyped", "U.", nil, nil), prometheus.UntypedValue, 7),
	}
	memo := map[prometheus.Metric]prometheus.Metric{}
	kept := compactSections(map[string]provider.SectionResult{"s": {Metrics: orig}}, memo)["s"].Metrics
	for i, m := range kept {
		if _, ok := m.(*compactMetric); !ok {
			t.Errorf("metric %d was not compacted: %T", i, m)
		}
	}
	// The collection's whole result shares the sections' compact metrics
	// (a second copy of every series was most of the heap at 2,000
	// connections).
	extra := prometheus.MustNewConstMetric(gauge, prometheus.GaugeValue, 2, "prod", "x", "today")
	all := compactAll(append([]prometheus.Metric{extra}, orig...), memo)
	if _, ok := all[0].(*compactMetric); !ok {
		t.Errorf("a metric outside the sections was not compacted: %T", all[0])
	}
	for i, m := range all[1:] {
		if m != kept[i] {
			t.Errorf("metric %d of the result is a copy, not the section's compact metric", i)
		}
	}
	a, err := renderUsage(orig)
	if err != nil {
		t.Fatal(err)
	}
	b, err := renderUsage(kept)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("%d families from const metrics, %d from compacted", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("family %s renders differently:\n%q\n%q", a[i].name, a[i].body, b[i].body)
		}
	}
	// Compacting again changes nothing.
	if again := compactOf(kept[0]); again != kept[0] {
		t.Error("a compact metric was compacted again")
	}
}
