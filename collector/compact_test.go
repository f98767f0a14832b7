package collector

import (
	"bytes"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/saas-exporter/saas_exporter/provider"
)

// testMetrics covers what rendering must get right: escapes, special and
// whole values, -0, counters with and without _total, const labels,
// several series in one family (sorted by label values), no labels.
func testMetrics() []prometheus.Metric {
	gauge := provider.NewDesc("test_gauge", "A gauge with \\ and \n in its help.", "kind", "period")
	counter := prometheus.NewDesc("saas_test_events_total", "Events.", []string{"connection"}, prometheus.Labels{"fixed": "x"})
	bare := prometheus.NewDesc("saas_test_calls", "Calls \"quoted\".", []string{"connection", "b"}, nil)
	return []prometheus.Metric{
		prometheus.MustNewConstMetric(gauge, prometheus.GaugeValue, 1.5, "prod", "a\"b\\c\nd", "this_month"),
		prometheus.MustNewConstMetric(gauge, prometheus.GaugeValue, math.Copysign(0, -1), "prod", "", "last_month"),
		prometheus.MustNewConstMetric(gauge, prometheus.GaugeValue, math.Inf(1), "prod", "z", "today"),
		prometheus.MustNewConstMetric(gauge, prometheus.GaugeValue, math.NaN(), "prod", "y", "today"),
		prometheus.MustNewConstMetric(gauge, prometheus.GaugeValue, 1e21, "prod", "x", "today"),
		prometheus.MustNewConstMetric(gauge, prometheus.GaugeValue, -1, "prod", "w", "today"),
		prometheus.MustNewConstMetric(counter, prometheus.CounterValue, 42, "prod"),
		prometheus.MustNewConstMetric(bare, prometheus.CounterValue, 3, "prod", "b2"),
		prometheus.MustNewConstMetric(bare, prometheus.CounterValue, 0.25, "prod", "b1"),
		prometheus.MustNewConstMetric(bare, prometheus.CounterValue, 7, "prod", "b0"),
		prometheus.MustNewConstMetric(prometheus.NewDesc("saas_test_untyped", "U.", nil, nil), prometheus.UntypedValue, 7),
	}
}

// written renders groups through an exposition, as /metrics does.
func written(t *testing.T, fams []usageFamily, om bool) string {
	t.Helper()
	x := newExposition()
	for i := range fams {
		x.add(&fams[i])
	}
	var b bytes.Buffer
	if err := x.writeTo(&b, om); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Compacted metrics are written exactly as client_golang's registry and
// expfmt write the const metrics they replace: the text format byte for
// byte; in OpenMetrics, a counter without _total as expfmt writes it, the
// other families with the text format's sample lines.
func TestUsageWrittenAsExpfmtWrites(t *testing.T) {
	orig := testMetrics()
	// Half of them in a section, half outside.
	got := pack(map[string]provider.SectionResult{"s": {Metrics: orig[:5]}}, orig)
	if got.err != nil {
		t.Fatal(got.err)
	}
	kept := got.sectionResults()["s"].Metrics
	latest := got.latest()
	for i, m := range latest {
		if _, ok := m.(*compactMetric); !ok {
			t.Errorf("metric %d was not compacted: %T", i, m)
		}
	}
	fams := got.families
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(provider.Metrics(orig))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text, om bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
			t.Fatal(err)
		}
		var fam bytes.Buffer
		if mf.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(mf.GetName(), "_total") {
			_, err = expfmt.MetricFamilyToOpenMetrics(&fam, mf)
		} else {
			_, err = expfmt.MetricFamilyToText(&fam, mf)
			typ := strings.ToLower(mf.GetType().String())
			if typ == "untyped" {
				typ = "unknown" // OpenMetrics' word
			}
			lines := strings.SplitN(fam.String(), "\n", 3)
			fam.Reset()
			fam.WriteString(omHeader(mf.GetName(), typ, mf.GetHelp()) + lines[2])
		}
		if err != nil {
			t.Fatal(err)
		}
		om.Write(fam.Bytes())
	}
	if got := written(t, fams, false); got != text.String() {
		t.Errorf("text format differs from expfmt's:\n got:\n%s\nwant:\n%s", got, text.String())
	}
	if got := written(t, fams, true); got != om.String() {
		t.Errorf("OpenMetrics differs:\n got:\n%s\nwant:\n%s", got, om.String())
	}

	// The collection's whole result shares the sections' packed metrics
	// (a second copy of every series was most of the heap at 2,000
	// connections): a section's metric is a view of one of the
	// collection's, and a next collection that keeps the section copies
	// them into its own slices.
	for i, m := range kept {
		k := m.(*compactMetric)
		if !slices.ContainsFunc(latest, func(l prometheus.Metric) bool {
			c := l.(*compactMetric)
			return c.tab == k.tab && c.first == k.first && c.info == k.info
		}) {
			t.Errorf("metric %d of the section is a copy, not the collection's packed metric", i)
		}
	}
	gauge := orig[0].Desc()
	extra := prometheus.MustNewConstMetric(gauge, prometheus.GaugeValue, 2, "prod", "x", "yesterday")
	next := pack(map[string]provider.SectionResult{"s": {Metrics: kept}}, append([]prometheus.Metric{extra}, kept...))
	for i, m := range next.sectionResults()["s"].Metrics {
		if m == kept[i] || m.(*compactMetric).tab == kept[i].(*compactMetric).tab {
			t.Errorf("metric %d kept from the previous collection still points into its slices", i)
		}
	}
	if !strings.Contains(written(t, next.families, false), `kind="x",period="yesterday"} 2`) {
		t.Errorf("the next collection lost its own metric:\n%s", written(t, next.families, false))
	}
	// Compacting again changes nothing but the table it is kept in.
	k := kept[0].(*compactMetric)
	again, ok := compactInto(k, newTableBuilder())
	if !ok {
		t.Fatal("a compact metric could not be compacted again")
	}
	if again.info != k.info || again.value != k.value || again.typ != k.typ || !slices.Equal(again.labels(), k.labels()) {
		t.Errorf("a compact metric compacted again has labels %v, value %g; was %v, %g", again.labels(), again.value, k.labels(), k.value)
	}
}

// A collection that emits a series twice, or one name with two helps,
// loses those metrics (named in the error) and keeps the others.
func TestGroupUsageRefusesInconsistentMetrics(t *testing.T) {
	a := provider.NewDesc("test_a", "A.", "kind")
	a2 := provider.NewDesc("test_a", "Another help.", "kind")
	b := provider.NewDesc("test_b", "B.", "kind")
	got := pack(nil, []prometheus.Metric{
		prometheus.MustNewConstMetric(a, prometheus.GaugeValue, 1, "prod", "x"),
		prometheus.MustNewConstMetric(a, prometheus.GaugeValue, 2, "prod", "x"),   // twice
		prometheus.MustNewConstMetric(a2, prometheus.GaugeValue, 3, "prod", "y"),  // other help
		prometheus.MustNewConstMetric(a, prometheus.CounterValue, 4, "prod", "z"), // other type
		prometheus.MustNewConstMetric(b, prometheus.GaugeValue, 5, "prod", "x"),
	})
	fams, err := got.families, got.err
	if err == nil || !strings.Contains(err.Error(), "saas_test_a{prod,x} is emitted twice") || !strings.Contains(err.Error(), "two different help texts") {
		t.Errorf("error %v, want the duplicate and the disagreeing help named", err)
	}
	text := written(t, fams, false)
	want := "# HELP saas_test_a A.\n# TYPE saas_test_a gauge\nsaas_test_a{connection=\"prod\",kind=\"x\"} 1\n# HELP saas_test_b B.\n# TYPE saas_test_b gauge\nsaas_test_b{connection=\"prod\",kind=\"x\"} 5\n"
	if text != want {
		t.Errorf("kept:\n%s\nwant:\n%s", text, want)
	}
}

// A metric that is not a plain sample (here one with a timestamp) is not
// compacted; it is written as expfmt writes it, in both formats.
func TestNonCompactMetricsWrittenByExpfmt(t *testing.T) {
	d := provider.NewDesc("test_stamped", "Stamped.", "kind")
	m := prometheus.NewMetricWithTimestamp(time.Unix(1700000000, 0), prometheus.MustNewConstMetric(d, prometheus.GaugeValue, 3, "prod", "x"))
	got := pack(nil, []prometheus.Metric{m})
	if got.err != nil {
		t.Fatal(got.err)
	}
	if got.latest()[0] != m {
		t.Errorf("a stamped metric was compacted: %T", got.latest()[0])
	}
	want := "# HELP saas_test_stamped Stamped.\n# TYPE saas_test_stamped gauge\nsaas_test_stamped{connection=\"prod\",kind=\"x\"} 3 1700000000000\n"
	if text := written(t, got.families, false); text != want {
		t.Errorf("text:\n%s\nwant:\n%s", text, want)
	}
	if om := written(t, got.families, true); !strings.Contains(om, "# TYPE saas_test_stamped gauge\n") || !strings.Contains(om, `saas_test_stamped{connection="prod",kind="x"} 3.0 1.7e+09`) {
		t.Errorf("OpenMetrics:\n%s", om)
	}
}

// A series emitted through Scrape is compacted without its label pairs
// into what the const metric it stands for compacts into: the desc's
// labels reordered by name, const labels among them.
func TestEmittedCompactsAsConstMetric(t *testing.T) {
	descs := []*prometheus.Desc{
		prometheus.NewDesc("saas_test_order", "Order.", []string{"connection", "zeta", "alpha"}, prometheus.Labels{"middle": "m", "aaa": "first"}),
		provider.NewDesc("test_plain", "Plain.", "kind"),
		provider.NewDesc("test_conn_only", "Connection only."),
	}
	s := &provider.Scrape{Conn: provider.Connection{Name: "prod"}}
	var want []prometheus.Metric
	for i, d := range descs {
		labels := []string{"z-value", "a-value"}[:2-i]
		s.Gauge(d, float64(i)+0.5, labels...)
		want = append(want, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(i)+0.5, append([]string{"prod"}, labels...)...))
	}
	s.Counter(descs[1], 3, "k")
	want = append(want, prometheus.MustNewConstMetric(descs[1], prometheus.CounterValue, 3, "prod", "k"))
	got, _, _ := s.Result()
	b, bw := newTableBuilder(), newTableBuilder()
	for i, m := range got {
		if _, ok := m.(*provider.Emitted); !ok {
			t.Fatalf("Scrape emitted a %T, not *provider.Emitted: this test checks nothing", m)
		}
		c, ok := compactInto(m, b)
		w, okw := compactInto(want[i], bw)
		if !ok || !okw {
			t.Fatalf("metric %d not compacted (%v, %v)", i, ok, okw)
		}
		if c.info != w.info || c.typ != w.typ || c.value != w.value || !slices.Equal(c.labels(), w.labels()) {
			t.Errorf("metric %d compacts to %v %v %g, want %v %v %g", i, c.labels(), c.typ, c.value, w.labels(), w.typ, w.value)
		}
	}
}

// provider.LabelValue reads a kept sample's labels and value without
// writing it out, and says what Write says.
func TestCompactLabelValueAsWritten(t *testing.T) {
	got := pack(nil, testMetrics())
	for _, m := range got.latest() {
		c, ok := m.(*compactMetric)
		if !ok {
			continue
		}
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		want := pb.GetGauge().GetValue() + pb.GetCounter().GetValue() + pb.GetUntyped().GetValue()
		for _, lp := range pb.GetLabel() {
			v, val, ok := provider.LabelValue(c, lp.GetName())
			if !ok || v != lp.GetValue() || !(val == want || math.IsNaN(val) && math.IsNaN(want)) {
				t.Errorf("%s: LabelValue(%q) = %q %g %v; Write gives %q %g", c.info.name, lp.GetName(), v, val, ok, lp.GetValue(), want)
			}
		}
		if _, _, ok := provider.LabelValue(c, "no_such_label"); ok {
			t.Errorf("%s: a label it does not have was found", c.info.name)
		}
	}
}

// TestPackedMetricHoldsNoPointer: the kept samples of thousands of
// connections are never scanned by the GC, and stay 16 bytes each.
func TestPackedMetricHoldsNoPointer(t *testing.T) {
	typ := reflect.TypeFor[packedMetric]()
	for i := range typ.NumField() {
		switch f := typ.Field(i); f.Type.Kind() {
		case reflect.Float64, reflect.Uint32:
		default:
			t.Errorf("packedMetric.%s is a %s: a kept sample holds numbers only", f.Name, f.Type)
		}
	}
	if typ.Size() != 16 {
		t.Errorf("packedMetric is %d bytes, want 16", typ.Size())
	}
}

// TestWideLabelTable: a collection with more distinct label values than
// 2-byte indices can tell apart keeps 4-byte ones, and every sample keeps
// its own values either way.
func TestWideLabelTable(t *testing.T) {
	d := provider.NewDesc("test_wide", "Many values.", "item", "period")
	for _, n := range []int{10, 70000} {
		ms := make([]prometheus.Metric, n)
		for i := range ms {
			ms[i] = prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(i), "prod", "item-"+strconv.Itoa(i), "today")
		}
		got := pack(nil, ms)
		if got.err != nil {
			t.Fatal(got.err)
		}
		if wide := got.tab.wide != nil; wide != (n > 1<<16) || (got.tab.idx == nil) == (n <= 1<<16) {
			t.Errorf("%d values: wide indices %v, 2-byte indices %d", n, wide, len(got.tab.idx))
		}
		for _, m := range got.latest() {
			item, v, _ := provider.LabelValue(m, "item")
			period, _, _ := provider.LabelValue(m, "period")
			if want := "item-" + strconv.FormatFloat(v, 'f', -1, 64); item != want || period != "today" {
				t.Fatalf("%d values: the sample of value %v has item=%q period=%q, want %q and today", n, v, item, period, want)
			}
		}
	}
}
