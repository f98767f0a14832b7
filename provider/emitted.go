package provider

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Emitted is one series a provider emitted through Scrape: what
// prometheus.MustNewConstMetric holds, without the label pairs it builds.
// Building those pairs was 40% of the bytes a cold collection allocated;
// the engine dropped them at once to keep the values only (collector's
// compact form). The first series of each desc (and any series whose
// label count differs from it) is built with MustNewConstMetric, so a bad
// desc or label count panics in the provider as before; Write builds the
// const metric when something reads the series.
type Emitted struct {
	desc   *prometheus.Desc
	typ    prometheus.ValueType
	value  float64
	labels []string // the desc's variable labels' values, in its order
}

func (m *Emitted) Desc() *prometheus.Desc { return m.desc }

func (m *Emitted) Write(pb *dto.Metric) error {
	return prometheus.MustNewConstMetric(m.desc, m.typ, m.value, m.labels...).Write(pb)
}

// LabelValues are the values of the desc's variable labels, in its order
// ("connection" first). The caller must not change them.
func (m *Emitted) LabelValues() []string { return m.labels }

// ValueType is the series' type (gauge, counter or untyped).
func (m *Emitted) ValueType() prometheus.ValueType { return m.typ }

// Value is the series' value.
func (m *Emitted) Value() float64 { return m.value }

// checkedDescs maps a desc whose series MustNewConstMetric accepted to
// the number of label values it took.
var checkedDescs sync.Map // *prometheus.Desc → int

// check panics, as MustNewConstMetric does, if d cannot take values.
func check(d *prometheus.Desc, t prometheus.ValueType, v float64, values []string) {
	if n, ok := checkedDescs.Load(d); ok && n.(int) == len(values) {
		return
	}
	prometheus.MustNewConstMetric(d, t, v, values...)
	checkedDescs.Store(d, len(values))
}

// emitted hands out Emitted records and label value slices from blocks,
// a few allocations a collection instead of two a series. Nothing here is
// kept past the collection: the engine copies what it keeps.
// Blocks double from 4 records up to 64, so a section of three series
// does not take a block sized for hundreds.
type emitted struct {
	free []Emitted
	strs []string
	n    int // records handed out
}

func (a *emitted) next(nlabels int) (*Emitted, []string) {
	if len(a.free) == 0 {
		a.free = make([]Emitted, min(max(a.n, 4), 64))
	}
	a.n++
	m := &a.free[0]
	a.free = a.free[1:]
	if len(a.strs) < nlabels {
		a.strs = make([]string, (len(a.free)+1)*nlabels)
	}
	vals := a.strs[:0:nlabels]
	a.strs = a.strs[nlabels:]
	return m, vals
}

// LabelValue returns m's value of label name and m's sample value (gauge,
// counter or untyped); ok is false if m has no such label or cannot be
// written. The samples the engine keeps between collections (Previous)
// answer without writing themselves out: a provider that reads a label
// of each previous series does not build every series' label pairs.
func LabelValue(m prometheus.Metric, name string) (value string, v float64, ok bool) {
	if s, is := m.(interface {
		LabelValue(string) (string, bool)
		Value() float64
	}); is {
		value, ok = s.LabelValue(name)
		return value, s.Value(), ok
	}
	var pb dto.Metric
	if m.Write(&pb) != nil {
		return "", 0, false
	}
	v, _ = sampleValue(&pb)
	for _, lp := range pb.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue(), v, true
		}
	}
	return "", v, false
}
