package collector

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/saas-exporter/saas_exporter/provider"
)

// Each section's last metrics are kept between collections (a failing
// section exports them again). As const metrics they cost about 350 bytes
// a series (a label pair object per label); 5,000 connections of a few
// hundred series each made that most of the exporter's memory. They are
// kept as compactMetric instead: the label values only, the names shared
// by every series of a metric. They are still prometheus.Metric, so the
// providers' Previous and the next rendering read them unchanged.

// compactMetric is a gauge, counter or untyped sample without timestamp.
type compactMetric struct {
	desc   *prometheus.Desc
	names  []string // sorted, shared by every series of desc
	values []string
	value  float64
	typ    dto.MetricType
}

func (m *compactMetric) Desc() *prometheus.Desc { return m.desc }

func (m *compactMetric) Write(pb *dto.Metric) error {
	pb.Label = make([]*dto.LabelPair, len(m.names))
	for i := range m.names {
		pb.Label[i] = &dto.LabelPair{Name: &m.names[i], Value: &m.values[i]}
	}
	v := m.value
	switch m.typ {
	case dto.MetricType_COUNTER:
		pb.Counter = &dto.Counter{Value: &v}
	case dto.MetricType_GAUGE:
		pb.Gauge = &dto.Gauge{Value: &v}
	default:
		pb.Untyped = &dto.Untyped{Value: &v}
	}
	return nil
}

// labelNames interns the label names of each desc.
var labelNames sync.Map // *prometheus.Desc → []string

// compactOf returns m as a compactMetric, or m itself if it carries more
// than a plain sample (a histogram, a timestamp, an exemplar).
func compactOf(m prometheus.Metric) prometheus.Metric {
	if _, ok := m.(*compactMetric); ok {
		return m
	}
	var pb dto.Metric
	if m.Write(&pb) != nil || pb.TimestampMs != nil {
		return m
	}
	c := &compactMetric{desc: m.Desc(), values: make([]string, len(pb.Label))}
	switch {
	case pb.Gauge != nil:
		c.typ, c.value = dto.MetricType_GAUGE, pb.Gauge.GetValue()
	case pb.Counter != nil && pb.Counter.Exemplar == nil && pb.Counter.CreatedTimestamp == nil:
		c.typ, c.value = dto.MetricType_COUNTER, pb.Counter.GetValue()
	case pb.Untyped != nil:
		c.typ, c.value = dto.MetricType_UNTYPED, pb.Untyped.GetValue()
	default:
		return m
	}
	names := make([]string, len(pb.Label))
	for i, l := range pb.Label {
		names[i], c.values[i] = l.GetName(), l.GetValue()
	}
	c.names = names
	if v, _ := labelNames.LoadOrStore(c.desc, names); slices.Equal(v.([]string), names) {
		c.names = v.([]string)
	}
	return c
}

// compactSections returns secs with every metric compacted; memo maps
// each metric given to its compact form, so that the collection's whole
// result (Detail's Latest) shares them instead of keeping a second copy.
func compactSections(secs map[string]provider.SectionResult, memo map[prometheus.Metric]prometheus.Metric) map[string]provider.SectionResult {
	out := make(map[string]provider.SectionResult, len(secs))
	for name, r := range secs {
		ms := make([]prometheus.Metric, len(r.Metrics))
		for i, m := range r.Metrics {
			ms[i] = compactOf(m)
			memo[m] = ms[i]
		}
		out[name] = provider.SectionResult{Metrics: ms, At: r.At}
	}
	return out
}

// compactAll returns ms compacted, reusing memo's compact forms.
func compactAll(ms []prometheus.Metric, memo map[prometheus.Metric]prometheus.Metric) []prometheus.Metric {
	out := make([]prometheus.Metric, len(ms))
	for i, m := range ms {
		if c, ok := memo[m]; ok {
			out[i] = c
		} else {
			out[i] = compactOf(m)
		}
	}
	return out
}
