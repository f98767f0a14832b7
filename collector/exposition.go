package collector

import (
	"bytes"
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
)

// The exporter writes the text exposition format itself: a connection's
// usage is rendered once per collection (renderUsage) and a warm scrape
// only concatenates it, with the few health lines that change. Building
// every series through a registry on every scrape cost most of a warm
// scrape's time (see BENCHMARKS.md).

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
	help = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(help)
	return fmt.Sprintf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// renderedFamily is one family of a connection's usage, rendered once.
// The text and OpenMetrics formats share the sample lines, except for a
// counter whose name lacks _total (OpenMetrics adds it): omBody is set then.
type renderedFamily struct {
	name     string
	header   string // "# HELP …\n# TYPE …\n", shared by every connection (interned)
	omHeader string // the same in OpenMetrics
	body     string // sample lines
	omBody   string // "" unless the OpenMetrics samples differ
}

// headers interns family headers: every connection of a vendor has the
// same ones, and 5,000 connections × 50 families of copies add up.
var headers sync.Map // string → string

func intern(s string) string {
	v, _ := headers.LoadOrStore(s, s)
	return v.(string)
}

// renderUsage renders a collection's const metrics as text families. A
// pedantic registry checks them (names, label consistency) on the way.
func renderUsage(ms []prometheus.Metric) ([]renderedFamily, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(constMetrics(ms)); err != nil {
		return nil, err
	}
	mfs, gerr := reg.Gather() // on error, the consistent families are still returned
	out := make([]renderedFamily, 0, len(mfs))
	var buf bytes.Buffer
	for _, mf := range mfs {
		buf.Reset()
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			return out, err
		}
		text := buf.String()
		// The first two lines are HELP and TYPE; the rest are samples.
		i := strings.IndexByte(text, '\n')
		j := i + 1 + strings.IndexByte(text[i+1:], '\n')
		typ := strings.ToLower(mf.GetType().String())
		rf := renderedFamily{name: mf.GetName(), header: intern(text[:j+1]),
			omHeader: intern(omHeader(mf.GetName(), typ, mf.GetHelp())), body: text[j+1:]}
		if mf.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(mf.GetName(), "_total") {
			buf.Reset()
			if _, err := expfmt.MetricFamilyToOpenMetrics(&buf, mf); err != nil {
				return out, err
			}
			om := buf.String()
			i := strings.IndexByte(om, '\n')
			j := i + 1 + strings.IndexByte(om[i+1:], '\n')
			rf.omHeader, rf.omBody = intern(om[:j+1]), om[j+1:]
		}
		out = append(out, rf)
	}
	return out, gerr
}

// constMetrics collects a fixed list of metrics (unchecked: no Describe).
type constMetrics []prometheus.Metric

func (c constMetrics) Describe(chan<- *prometheus.Desc) {}
func (c constMetrics) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c {
		ch <- m
	}
}

// exposition gathers families by name, so each family's lines stay
// together whatever connection they come from.
type exposition struct {
	fams map[string]*expoFamily
	line []byte
}

type expoFamily struct {
	header, omHeader string
	body             bytes.Buffer      // samples the engine writes (health)
	usage            []*renderedFamily // connections' rendered samples, not copied
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

// add appends a rendered family's samples (by reference: a collection
// replaces a connection's usage, never changes it).
func (x *exposition) add(rf *renderedFamily) {
	f := x.family(rf.name, rf.header, rf.omHeader)
	f.usage = append(f.usage, rf)
}

// sample appends one sample of d; labels are name/value pairs in the
// order of their names.
func (x *exposition) sample(d *metricDef, v float64, labels ...string) {
	f := x.family(d.name, d.header, d.omHeader)
	b := append(x.line[:0], d.name...)
	if len(labels) > 0 {
		b = append(b, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, labels[i]...)
			b = append(b, '=', '"')
			b = appendEscaped(b, labels[i+1])
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = appendFloat(b, v)
	b = append(b, '\n')
	f.body.Write(b)
	x.line = b
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
		for _, rf := range f.usage {
			body := rf.body
			if om && rf.omBody != "" {
				body = rf.omBody
			}
			if _, err := io.WriteString(w, body); err != nil {
				return err
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

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, +1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
