package collector

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/saas-exporter/saas_exporter/provider"
)

// The exporter writes the text exposition format itself: a connection's
// usage is grouped once per collection (groupUsage) and each /metrics
// writes its lines straight from the compact metrics, with the health
// lines. Building every series through a registry on every scrape cost
// most of a scrape's time, and a rendered copy beside the metrics most of
// the memory (see BENCHMARKS.md).

// metricDef is one metric family the engine writes directly.
type metricDef struct {
	name, help, typ  string
	header, omHeader string
}

func def(name, typ, help string) *metricDef {
	return &metricDef{name: name, help: help, typ: typ, header: textHeader(name, typ, help), omHeader: omHeader(name, typ, help)}
}

func textHeader(name, typ, help string) string {
	return fmt.Sprintf("# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

// omHeader is the OpenMetrics family header: a counter's family name has
// no _total (its samples keep it), and HELP escapes quotes too.
func omHeader(name, typ, help string) string {
	if typ == "counter" {
		name = strings.TrimSuffix(name, "_total")
	}
	help = omHelpEscaper.Replace(help)
	return fmt.Sprintf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// usageFamily is one family of a connection's usage: its compact
// metrics, sorted by label values. /metrics writes their lines when it is
// not served from the body cache; no rendered copy is kept beside them.
type usageFamily struct {
	// metrics are the family's samples, a run of the collection's packed
	// samples, their label values in tab; the first one's desc gives the
	// family's name and headers.
	metrics []packedMetric
	tab     *labelTable
	// slow is a family of metrics that are not compact (none a provider
	// can emit today), rendered; see renderSlow.
	slow *slowFamily
}

// slowFamily is a family rendered by expfmt: its headers and sample lines
// in both formats.
type slowFamily struct {
	name, header, omHeader string
	body, omBody           string
}

// name and headers of the family (grouping made every sample agree).
func (f *usageFamily) name() string {
	if f.slow != nil {
		return f.slow.name
	}
	return kindAt(f.metrics[0].kind).info.name
}

func (f *usageFamily) headers() familyHeaders {
	if f.slow != nil {
		return familyHeaders{text: f.slow.header, om: f.slow.omHeader}
	}
	k := kindAt(f.metrics[0].kind)
	return k.info.headers(k.typ)
}

// headers interns family headers: every connection of a vendor has the
// same ones, and 5,000 connections × 50 families of copies add up.
var headers sync.Map // string → string

func intern(s string) string {
	v, _ := headers.LoadOrStore(s, s)
	return v.(string)
}

// typeNames are the TYPE words of the text format and of OpenMetrics.
func typeNames(t dto.MetricType) (text, om string) {
	switch t {
	case dto.MetricType_COUNTER:
		return "counter", "counter"
	case dto.MetricType_GAUGE:
		return "gauge", "gauge"
	}
	return "untyped", "unknown"
}

// familyHeaders are a family's HELP and TYPE lines in both formats.
type familyHeaders struct {
	text, om string
	// omFloat: in OpenMetrics, a counter whose name lacks _total is of
	// type unknown, its values written as expfmt writes them ("1.0").
	omFloat bool
}

// headers returns the family headers of d's metrics of type t, made once.
func (d *descInfo) headers(t dto.MetricType) familyHeaders {
	d.once.Do(func() {
		for i, t := range []dto.MetricType{dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_UNTYPED} {
			text, om := typeNames(t)
			h := familyHeaders{text: intern(textHeader(d.name, text, d.help))}
			if t == dto.MetricType_COUNTER && !strings.HasSuffix(d.name, "_total") {
				om, h.omFloat = "unknown", true
			}
			h.om = intern(omHeader(d.name, om, d.help))
			d.hdrs[i] = h
		}
	})
	switch t {
	case dto.MetricType_COUNTER:
		return d.hdrs[0]
	case dto.MetricType_GAUGE:
		return d.hdrs[1]
	}
	return d.hdrs[2]
}

// groupUsage orders a collection's compact samples into families, by
// name and then label values, and checks them as a pedantic registry
// would: one help, type and label names per family (the first sample
// emitted sets them), no series twice. order lists the samples' indices
// in that order, the ones left out last (named in err); family k is
// order[starts[k]:starts[k+1]].
func groupUsage(ms []compactMetric) (order, starts []int, err error) {
	var errs []error
	first := map[string]int{}
	good := make([]int, 0, len(ms))
	var bad []int
	for i := range ms {
		c := &ms[i]
		name := c.info.name
		f, ok := first[name]
		if !ok {
			first[name] = i
		} else if d := &ms[f]; d.typ != c.typ || (d.info != c.info && (d.info.help != c.info.help || !slices.Equal(d.info.names, c.info.names))) {
			errs = append(errs, fmt.Errorf("metric %s is emitted with two different help texts, types or label names", name))
			bad = append(bad, i)
			continue
		}
		good = append(good, i)
	}
	slices.SortStableFunc(good, func(a, b int) int {
		if c := strings.Compare(ms[a].info.name, ms[b].info.name); c != 0 {
			return c
		}
		return compareLabels(&ms[a], &ms[b])
	})
	kept := good[:0] // series emitted twice are next to each other now
	for _, i := range good {
		if n := len(kept); n > 0 {
			if p := &ms[kept[n-1]]; p.info.name == ms[i].info.name && compareLabels(p, &ms[i]) == 0 {
				errs = append(errs, fmt.Errorf("metric %s{%s} is emitted twice", ms[i].info.name, strings.Join(ms[i].labels(), ",")))
				bad = append(bad, i)
				continue
			}
		}
		kept = append(kept, i)
	}
	for i := range kept {
		if i == 0 || ms[kept[i]].info.name != ms[kept[i-1]].info.name {
			starts = append(starts, i)
		}
	}
	starts = append(starts, len(kept))
	return append(kept, bad...), starts, errors.Join(errs...)
}

// renderSlow renders metrics that are not compact through a pedantic
// registry, as text families.
func renderSlow(ms []prometheus.Metric) ([]usageFamily, error) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(provider.Metrics(ms)); err != nil {
		return nil, err
	}
	mfs, gerr := reg.Gather() // on error, the consistent families are still returned
	out := make([]usageFamily, 0, len(mfs))
	for _, mf := range mfs {
		header, body, err := split(expfmt.MetricFamilyToText, mf)
		if err != nil {
			return out, err
		}
		omHeader, omBody, err := split(func(w io.Writer, mf *dto.MetricFamily) (int, error) { return expfmt.MetricFamilyToOpenMetrics(w, mf) }, mf)
		if err != nil {
			return out, err
		}
		out = append(out, usageFamily{slow: &slowFamily{name: mf.GetName(), header: intern(header), omHeader: intern(omHeader), body: body, omBody: omBody}})
	}
	return out, gerr
}

// split writes mf with write and cuts the family's HELP and TYPE lines
// from its samples.
func split(write func(io.Writer, *dto.MetricFamily) (int, error), mf *dto.MetricFamily) (header, samples string, err error) {
	var buf bytes.Buffer
	if _, err := write(&buf, mf); err != nil {
		return "", "", err
	}
	text := buf.String()
	i := strings.IndexByte(text, '\n')
	j := i + 1 + strings.IndexByte(text[i+1:], '\n')
	return text[:j+1], text[j+1:], nil
}

// exposition gathers families by name, so each family's lines stay
// together whatever connection they come from.
type exposition struct {
	fams map[string]*expoFamily
	line []byte

	// conns writes every connection's samples (health, budget, usage).
	// It runs once to learn their families and add the usage, then once
	// more for each of the other families as writeTo writes it, its lines
	// going straight to the writer: the health lines of 5,000 connections
	// (about 16 MB of text) are never held at once.
	conns     func(*exposition)
	learning  bool
	streaming *metricDef // the family conns is writing; nil: none
	w         io.Writer
	err       error
}

type expoFamily struct {
	header, omHeader string
	body             bytes.Buffer   // exporter-wide samples (requests, store)
	streamed         *metricDef     // written by conns
	usage            []*usageFamily // connections' usage, written line by line
}

func newExposition() *exposition { return &exposition{fams: map[string]*expoFamily{}} }

func (x *exposition) family(name, header, omHeader string) *expoFamily {
	f := x.fams[name]
	if f == nil {
		f = &expoFamily{header: header, omHeader: omHeader}
		x.fams[name] = f
	}
	return f
}

// add appends a usage family's samples (by reference: a collection
// replaces a connection's usage, never changes it).
func (x *exposition) add(rf *usageFamily) {
	if x.streaming != nil {
		return // added while learning
	}
	h := rf.headers()
	f := x.family(rf.name(), h.text, h.om)
	f.usage = append(f.usage, rf)
}

// sample appends one sample of d; labels are name/value pairs in the
// order of their names.
func (x *exposition) sample(d *metricDef, v float64, labels ...string) {
	switch {
	case x.streaming != nil:
		if d == x.streaming && x.err == nil {
			x.line = appendSample(x.line[:0], d, v, labels)
			_, x.err = x.w.Write(x.line)
		}
		return
	case x.learning:
		x.family(d.name, d.header, d.omHeader).streamed = d
		return
	}
	x.line = appendSample(x.line[:0], d, v, labels)
	x.family(d.name, d.header, d.omHeader).body.Write(x.line)
}

// learn runs conns to find the families it writes.
func (x *exposition) learn(conns func(*exposition)) {
	x.conns, x.learning = conns, true
	conns(x)
	x.learning = false
}

// appendSample appends the sample line of d; labels are name/value pairs.
func appendSample(b []byte, d *metricDef, v float64, labels []string) []byte {
	b = append(b, d.name...)
	if len(labels) > 0 {
		b = append(b, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			b = appendLabel(b, i > 0, labels[i], labels[i+1])
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendFloat(b, v)
	return append(b, '\n')
}

// appendLabel appends name="value" (after a comma unless first).
func appendLabel(b []byte, comma bool, name, value string) []byte {
	if comma {
		b = append(b, ',')
	}
	b = append(b, name...)
	b = append(b, '=', '"')
	b = appendEscaped(b, value)
	return append(b, '"')
}

// appendUsage appends the sample line of c in family f.
func appendUsage(b []byte, c *compactMetric, om, omFloat bool) []byte {
	b = append(b, c.info.name...)
	if names := c.info.names; len(names) > 0 {
		b = append(b, '{')
		for i, n := range names {
			b = appendLabel(b, i > 0, n, c.label(i))
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	if om && omFloat {
		b = appendOMFloat(b, c.value)
	} else {
		b = appendFloat(b, c.value)
	}
	return append(b, '\n')
}

// writeTo writes every family, sorted by name, in the text format or
// (om) in OpenMetrics without the closing "# EOF".
func (x *exposition) writeTo(w io.Writer, om bool) error {
	names := make([]string, 0, len(x.fams))
	for n := range x.fams {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f := x.fams[n]
		header := f.header
		if om {
			header = f.omHeader
		}
		if _, err := io.WriteString(w, header); err != nil {
			return err
		}
		if _, err := w.Write(f.body.Bytes()); err != nil {
			return err
		}
		if f.streamed != nil {
			x.streaming, x.w = f.streamed, w
			x.conns(x)
			x.streaming, x.w = nil, nil
			if x.err != nil {
				return x.err
			}
		}
		for _, uf := range f.usage {
			if uf.slow != nil {
				body := uf.slow.body
				if om {
					body = uf.slow.omBody
				}
				if _, err := io.WriteString(w, body); err != nil {
					return err
				}
				continue
			}
			omFloat := uf.headers().omFloat
			for i := range uf.metrics {
				c := uf.metrics[i].view(uf.tab)
				x.line = appendUsage(x.line[:0], &c, om, omFloat)
				if _, err := w.Write(x.line); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// appendEscaped escapes a label value as the text format requires.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '"':
			b = append(b, '\\', '"')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return b
}

// Built once: a Replacer builds its tables on first use.
var (
	helpEscaper   = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	omHelpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string {
	return helpEscaper.Replace(s)
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case v == 0:
		return append(b, '0') // -0 too, as expfmt writes it
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// appendOMFloat writes v as expfmt writes OpenMetrics values: a whole
// number gets ".0".
func appendOMFloat(b []byte, v float64) []byte {
	if v == 0 {
		return append(b, "0.0"...)
	}
	n := len(b)
	b = appendFloat(b, v)
	if math.IsInf(v, 0) || math.IsNaN(v) || bytes.ContainsAny(b[n:], "e.") {
		return b
	}
	return append(b, '.', '0')
}
