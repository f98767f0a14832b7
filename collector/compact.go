package collector

import (
	"errors"
	"slices"
	"strings"
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
	once       sync.Once
	hdrs       [3]familyHeaders // by type: counter, gauge, untyped (headers)
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
	if reg.Register(provider.Metrics{m}) != nil {
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

// collected is one collection's metrics, packed: every compact sample
// of the collection (its sections', kept ones included, and the rest) is
// copied into one slice, sorted by family and label values, the label
// values into another, and their text into one string. The sections, the
// page's latest values and
// the families all point into them. Three allocations a collection
// instead of two a series: less memory, and no small long-lived objects left
// scattered among a collection's garbage. A previous collection's
// samples are copied too, so nothing keeps its slices alive.
type collected struct {
	sections map[string]provider.SectionResult // nil if the provider ran none
	latest   []prometheus.Metric               // every metric, sections' included
	families []usageFamily
	err      error // metrics groupUsage left out, and why
}

// pack builds a collection's collected from its sections and all its
// metrics (all includes the sections').
func pack(secs map[string]provider.SectionResult, all []prometheus.Metric) collected {
	var (
		tmp   []compactMetric // the compact samples, in input order
		at    = make(map[prometheus.Metric]int, len(all))
		slow  []prometheus.Metric
		nvals int
	)
	for _, m := range all {
		if _, ok := at[m]; ok {
			continue
		}
		c, ok := compactOf(m).(*compactMetric)
		if !ok {
			at[m] = -1
			slow = append(slow, m)
			continue
		}
		at[m] = len(tmp)
		tmp = append(tmp, *c)
		nvals += len(c.values)
	}
	order, fams, err := groupUsage(tmp)
	// The label values' text, each distinct value once, in one string:
	// the vendor's decoded JSON they came from is garbage after this, and
	// small strings kept from it would pin its memory.
	var text strings.Builder
	offset := map[string]int{}
	for i := range tmp {
		for _, v := range tmp[i].values {
			if _, ok := offset[v]; !ok {
				offset[v] = text.Len()
				text.WriteString(v)
			}
		}
	}
	arena := text.String()
	// One slice for the samples, one for their label values.
	slab := make([]compactMetric, len(tmp))
	vals := make([]string, 0, nvals)
	pos := make([]int, len(tmp)) // input index → slab index
	for i, j := range order {
		c := tmp[j]
		n := len(vals)
		for _, v := range c.values {
			o := offset[v]
			vals = append(vals, arena[o:o+len(v)])
		}
		c.values = vals[n:len(vals):len(vals)]
		slab[i] = c
		pos[j] = i
	}
	for i := range fams {
		fams[i].metrics = slab[fams[i].from:fams[i].to]
	}
	if len(slow) > 0 {
		sf, serr := renderSlow(slow)
		fams = append(fams, sf...)
		err = errors.Join(err, serr)
	}
	ref := func(m prometheus.Metric) prometheus.Metric {
		if i := at[m]; i >= 0 {
			return &slab[pos[i]]
		}
		return m
	}
	out := collected{families: fams, err: err, latest: make([]prometheus.Metric, 0, len(all))}
	for _, m := range all {
		out.latest = append(out.latest, ref(m))
	}
	if secs != nil {
		out.sections = make(map[string]provider.SectionResult, len(secs))
		for name, r := range secs {
			ms := make([]prometheus.Metric, len(r.Metrics))
			for i, m := range r.Metrics {
				if _, ok := at[m]; !ok { // not among all: compact it alone
					at[m] = -1
					if c, ok := compactOf(m).(*compactMetric); ok {
						ms[i] = c
						continue
					}
				}
				ms[i] = ref(m)
			}
			out.sections[name] = provider.SectionResult{Metrics: ms, At: r.At}
		}
	}
	return out
}
