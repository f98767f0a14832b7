package provider

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// What Scrape emits reads exactly as the const metric it stands for:
// labels sorted by name with the desc's const labels, type and value.
func TestEmittedWritesAsConstMetric(t *testing.T) {
	d := prometheus.NewDesc("saas_test_emitted", "Test.", []string{"connection", "zeta", "alpha"}, prometheus.Labels{"middle": "m"})
	s := &Scrape{Conn: Connection{Name: "prod"}}
	for i := range 100 { // more than one block of records
		s.Gauge(d, float64(i), fmt.Sprint("z", i), fmt.Sprint("a", i))
	}
	s.Counter(d, 7.5, "z", "a")
	ms, _, _ := s.Result()
	if len(ms) != 101 {
		t.Fatalf("%d metrics, want 101", len(ms))
	}
	for i, m := range ms {
		want := prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(i), "prod", fmt.Sprint("z", i), fmt.Sprint("a", i))
		if i == 100 {
			want = prometheus.MustNewConstMetric(d, prometheus.CounterValue, 7.5, "prod", "z", "a")
		}
		var got, exp dto.Metric
		if err := m.Write(&got); err != nil {
			t.Fatal(err)
		}
		_ = want.Write(&exp)
		if m.Desc() != d || !proto.Equal(&got, &exp) {
			t.Fatalf("metric %d writes %v, want %v", i, &got, &exp)
		}
	}
}

// A wrong label count panics on every emit, not only a desc's first: the
// check MustNewConstMetric made is still made.
func TestEmitPanicsOnWrongLabelCount(t *testing.T) {
	d := NewDesc("test_counted", "Test.", "kind")
	s := &Scrape{Conn: Connection{Name: "prod"}}
	s.Gauge(d, 1, "x")
	for _, labels := range [][]string{nil, {"x", "y"}} {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), "inconsistent label cardinality") {
					t.Errorf("emit with %d labels: recovered %v, want MustNewConstMetric's panic", len(labels), r)
				}
			}()
			s.Gauge(d, 1, labels...)
		}()
	}
	if ms, _, _ := s.Result(); len(ms) != 1 {
		t.Errorf("%d metrics kept, want the one good one", len(ms))
	}
}

// LabelValue reads any metric: one that cannot answer by itself is
// written out.
func TestLabelValueWritesOthers(t *testing.T) {
	d := prometheus.NewDesc("saas_test_lv", "Test.", []string{"connection", "kind"}, prometheus.Labels{"fixed": "f"})
	s := &Scrape{Conn: Connection{Name: "prod"}}
	s.Gauge(d, 2.5, "x")
	ms, _, _ := s.Result()
	for _, m := range []prometheus.Metric{ms[0], prometheus.MustNewConstMetric(d, prometheus.CounterValue, 2.5, "prod", "x")} {
		for name, want := range map[string]string{"connection": "prod", "kind": "x", "fixed": "f"} {
			if v, val, ok := LabelValue(m, name); !ok || v != want || val != 2.5 {
				t.Errorf("%T: LabelValue(%q) = %q %g %v, want %q 2.5", m, name, v, val, ok, want)
			}
		}
		if _, _, ok := LabelValue(m, "other"); ok {
			t.Errorf("%T: a label it does not have was found", m)
		}
	}
}
