package provider

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Summarizer is implemented by providers that say what a person reads on a
// connection's page: the latest collected values, labelled, with a meter
// where a value has a limit. The page code knows no vendor; it only draws
// what Summary returns.
type Summarizer interface {
	// Summary turns the connection's latest collected metrics into items,
	// in the order they are shown. latest may be empty (nothing collected
	// yet, or a section failed): leave out what is not there, never show a
	// missing value as 0.
	Summary(c Connection, latest Samples) []SummaryItem
}

// SummaryItem is one labelled value on a connection's page.
type SummaryItem struct {
	Group string  `json:"group"` // heading the item sits under, e.g. "Spend"
	Label string  `json:"label"` // e.g. "This month"
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"` // "USD", "emails", "%": shown after the value
	// Text, when set, is shown instead of the formatted value (a word or a
	// list); Value then only sizes a meter.
	Text string `json:"text,omitempty"`
	// Limit > 0 draws a meter of Value against Limit.
	Limit float64 `json:"limit,omitempty"`
	// Note is a short line under the value (what the meter compares).
	Note string `json:"note,omitempty"`
}

// Sample is one series of a collected metric, without its connection label.
type Sample struct {
	Name   string // full metric name, e.g. "saas_sendgrid_credits_used"
	Labels map[string]string
	Value  float64
}

// Samples are a connection's latest collected series.
type Samples []Sample

// SamplesOf converts collected metrics, ordered by name and labels so a
// summary built from them is stable.
func SamplesOf(ms []prometheus.Metric) Samples {
	if len(ms) == 0 {
		return nil
	}
	reg := prometheus.NewRegistry()
	if reg.Register(Metrics(ms)) != nil {
		return nil
	}
	mfs, _ := reg.Gather() // on error, the consistent families still come back
	var out Samples
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			s := Sample{Name: mf.GetName(), Labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				if l.GetName() != "connection" {
					s.Labels[l.GetName()] = l.GetValue()
				}
			}
			var ok bool
			if s.Value, ok = sampleValue(m); !ok {
				continue
			}
			out = append(out, s)
		}
	}
	return out
}

// sampleValue is a gauge's, counter's or untyped sample's value; false
// for other kinds.
func sampleValue(m *dto.Metric) (float64, bool) {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Untyped != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// Metrics is a collector of a fixed list of metrics (unchecked: it
// describes nothing), to gather or test what a collection emitted.
type Metrics []prometheus.Metric

func (u Metrics) Describe(chan<- *prometheus.Desc) {}
func (u Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, m := range u {
		ch <- m
	}
}

// Get returns the value of the series of name whose labels include match
// (label, value pairs).
func (ss Samples) Get(name string, match ...string) (float64, bool) {
	for _, s := range ss.All(name, match...) {
		return s.Value, true
	}
	return 0, false
}

// All returns the series of name whose labels include match (label, value pairs).
func (ss Samples) All(name string, match ...string) []Sample {
	var out []Sample
next:
	for _, s := range ss {
		if s.Name != name {
			continue
		}
		for i := 0; i+1 < len(match); i += 2 {
			if s.Labels[match[i]] != match[i+1] {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// Sum adds the values of every series of name whose labels include match;
// ok is false if there is none.
func (ss Samples) Sum(name string, match ...string) (sum float64, ok bool) {
	for _, s := range ss.All(name, match...) {
		sum, ok = sum+s.Value, true
	}
	return sum, ok
}

// Parts sums the series of name and lists them by the value of label
// ("admin 2, teammate 3"), for a total with its breakdown; ok is false if
// there is no series.
func (ss Samples) Parts(name, label string) (total float64, parts string, ok bool) {
	for _, s := range ss.All(name) {
		if ok {
			parts += ", "
		}
		total, ok = total+s.Value, true
		parts += s.Labels[label] + " " + strconv.FormatFloat(s.Value, 'f', -1, 64)
	}
	return total, parts, ok
}
