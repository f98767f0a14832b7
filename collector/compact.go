package collector

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/saas-exporter/saas_exporter/provider"
)

// A collection's metrics are kept until the next one: each section's
// (a failing section exports them again), the page's latest values, and
// what /metrics writes. As const metrics they cost about 350 bytes a
// series (a label pair object per label); 5,000 connections of a few
// hundred series each made that most of the exporter's memory. They are
// kept as compactMetric instead: the label values only, the names and
// help shared by every series of a metric, and nothing else (no rendered
// copy: /metrics writes the lines from them). They are still
// prometheus.Metric, so the providers' Previous reads them unchanged.

// compactMetric is a gauge, counter or untyped sample without timestamp.
type compactMetric struct {
	info   *descInfo
	values []string // in the order of info.names
	value  float64
	typ    dto.MetricType
}

// descInfo is what rendering needs of a desc, found once per desc: the
// family's name and help, and its label names in the order Write gives
// them (sorted), shared by every series of the desc.
type descInfo struct {
	desc       *prometheus.Desc
	name, help string
	names      []string
}

var descInfos sync.Map // *prometheus.Desc → *descInfo

// infoOf returns d's descInfo; names are the label names of a metric of d.
// Name and help come from gathering that one metric (a Desc does not
// export them); false if it does not gather.
func infoOf(m prometheus.Metric, names []string) (*descInfo, bool) {
	d := m.Desc()
	if v, ok := descInfos.Load(d); ok {
		di := v.(*descInfo)
		return di, slices.Equal(di.names, names)
	}
	reg := prometheus.NewPedanticRegistry()
	if reg.Register(constMetrics{m}) != nil {
		return nil, false
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		return nil, false
	}
	v, _ := descInfos.LoadOrStore(d, &descInfo{desc: d, name: mfs[0].GetName(), help: mfs[0].GetHelp(), names: names})
	di := v.(*descInfo)
	return di, slices.Equal(di.names, names)
}

func (m *compactMetric) Desc() *prometheus.Desc { return m.info.desc }

func (m *compactMetric) Write(pb *dto.Metric) error {
	names := m.info.names
	pb.Label = make([]*dto.LabelPair, len(names))
	for i := range names {
		pb.Label[i] = &dto.LabelPair{Name: &names[i], Value: &m.values[i]}
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
	c := &compactMetric{values: make([]string, len(pb.Label))}
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
	info, ok := infoOf(m, names)
	if !ok {
		return m
	}
	c.info = info
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
