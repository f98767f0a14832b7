package collector

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
// Its label values are in its collection's labelTable: 4 bytes a value
// instead of a 16-byte string header, and each distinct value once.
type compactMetric struct {
	info  *descInfo
	tab   *labelTable
	first uint32 // its values are tab.val(first+i), i < len(info.names)
	typ   dto.MetricType
	value float64
}

// packedMetric is a compactMetric as a collection keeps it: 16 bytes and
// no pointer, so the GC never scans the samples of thousands of
// connections. Its desc and type are kinds[kind]; its label values are in
// its collection's table (collected.tab).
type packedMetric struct {
	value float64
	first uint32
	kind  uint32
}

// view returns p as a compactMetric (a prometheus.Metric) over tab.
func (p *packedMetric) view(tab *labelTable) compactMetric {
	k := kindAt(p.kind)
	return compactMetric{info: k.info, tab: tab, first: p.first, typ: k.typ, value: p.value}
}

// kindEntry is a desc and a type; kinds holds every one met so far, and
// only grows (a few hundred at most: one per metric and type).
type kindEntry struct {
	info *descInfo
	typ  dto.MetricType
}

var kinds struct {
	mu  sync.Mutex
	tab atomic.Pointer[[]kindEntry] // copied on each addition
}

func kindAt(k uint32) kindEntry { return (*kinds.tab.Load())[k] }

// kind returns the index of d's metrics of type t in kinds.
func (d *descInfo) kind(t dto.MetricType) uint32 {
	i := typeIndex(t)
	d.kindOnce[i].Do(func() {
		kinds.mu.Lock()
		defer kinds.mu.Unlock()
		var tab []kindEntry
		if p := kinds.tab.Load(); p != nil {
			tab = *p
		}
		tab = append(slices.Clip(tab), kindEntry{info: d, typ: t})
		d.kinds[i] = uint32(len(tab) - 1)
		kinds.tab.Store(&tab)
	})
	return d.kinds[i]
}

// typeIndex numbers the types a compactMetric can have.
func typeIndex(t dto.MetricType) int {
	switch t {
	case dto.MetricType_COUNTER:
		return 0
	case dto.MetricType_GAUGE:
		return 1
	}
	return 2
}

// labelTable holds one collection's label values: each distinct value
// once, all in one string (vals), and each sample's values as indices
// into vals, one sample after another (idx). Indices take 2 bytes: a
// collection has a few hundred distinct values, and its samples several
// values each; one with more than 65,536 distinct values takes 4 (wide).
type labelTable struct {
	vals []string
	idx  []uint16
	wide []uint32 // instead of idx, when vals does not fit it
}

func (t *labelTable) val(j int) string {
	if t.wide != nil {
		return t.vals[t.wide[j]]
	}
	return t.vals[t.idx[j]]
}

func (m *compactMetric) label(i int) string { return m.tab.val(int(m.first) + i) }

// labels returns the label values as a slice (for error messages).
func (m *compactMetric) labels() []string {
	out := make([]string, len(m.info.names))
	for i := range out {
		out[i] = m.label(i)
	}
	return out
}

// compareLabels orders samples of one family by their label values.
func compareLabels(a, b *compactMetric) int {
	n, nb := len(a.info.names), len(b.info.names)
	for i := range min(n, nb) {
		if c := strings.Compare(a.label(i), b.label(i)); c != 0 {
			return c
		}
	}
	return n - nb
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
	kindOnce   [3]sync.Once
	kinds      [3]uint32 // by type, as hdrs: the index in kinds
}

var descInfos sync.Map // *prometheus.Desc → *descInfo

// infoOf returns d's descInfo; labels are the label pairs of a metric of
// d. Name and help come from gathering that one metric (a Desc does not
// export them); false if it does not gather or its label names differ.
func infoOf(m prometheus.Metric, labels []*dto.LabelPair) (*descInfo, bool) {
	d := m.Desc()
	if v, ok := descInfos.Load(d); ok {
		di := v.(*descInfo)
		return di, sameNames(di.names, labels)
	}
	reg := prometheus.NewPedanticRegistry()
	if reg.Register(provider.Metrics{m}) != nil {
		return nil, false
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 {
		return nil, false
	}
	names := make([]string, len(labels))
	for i, l := range labels {
		names[i] = l.GetName()
	}
	v, _ := descInfos.LoadOrStore(d, &descInfo{desc: d, name: mfs[0].GetName(), help: mfs[0].GetHelp(), names: names})
	di := v.(*descInfo)
	return di, sameNames(di.names, labels)
}

func sameNames(names []string, labels []*dto.LabelPair) bool {
	if len(names) != len(labels) {
		return false
	}
	for i, l := range labels {
		if names[i] != l.GetName() {
			return false
		}
	}
	return true
}

func (m *compactMetric) Desc() *prometheus.Desc { return m.info.desc }

// LabelValue and Value answer provider.LabelValue without a Write.
func (m *compactMetric) LabelValue(name string) (string, bool) {
	for i, n := range m.info.names {
		if n == name {
			return m.label(i), true
		}
	}
	return "", false
}

func (m *compactMetric) Value() float64 { return m.value }

func (m *compactMetric) Write(pb *dto.Metric) error {
	names := m.info.names
	pb.Label = make([]*dto.LabelPair, len(names))
	for i := range names {
		v := m.label(i)
		pb.Label[i] = &dto.LabelPair{Name: &names[i], Value: &v}
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

// tableBuilder fills one labelTable (its indices wide until seal).
type tableBuilder struct {
	tab *labelTable
	at  map[string]uint32
}

// next is the index the next sample's first value will have.
func (b *tableBuilder) next() uint32 { return uint32(len(b.tab.wide)) }

func newTableBuilder() *tableBuilder {
	return &tableBuilder{tab: &labelTable{}, at: map[string]uint32{}}
}

func (b *tableBuilder) add(v string) {
	i, ok := b.at[v]
	if !ok {
		i = uint32(len(b.tab.vals))
		b.at[v] = i
		b.tab.vals = append(b.tab.vals, v)
	}
	b.tab.wide = append(b.tab.wide, i)
}

// seal copies the distinct values into one string, so that no small
// string kept from the vendor's decoded JSON pins its memory, and trims
// the slices to their length.
func (b *tableBuilder) seal() {
	arena := joinText(textChunks, b.tab.vals)
	vals := valueChunks.make(len(b.tab.vals))
	o := 0
	for i, v := range b.tab.vals {
		vals[i] = arena[o : o+len(v)]
		o += len(v)
	}
	b.tab.vals = vals
	if wide := b.tab.wide; len(vals) <= 1<<16 {
		b.tab.idx, b.tab.wide = shortIndexChunks.make(len(wide)), nil
		for i, v := range wide {
			b.tab.idx[i] = uint16(v)
		}
	} else {
		b.tab.wide = indexChunks.make(len(wide))
		copy(b.tab.wide, wide)
	}
	b.at = nil
}

// compactInto returns m as a compactMetric whose label values are added
// to b; false if m carries more than a plain sample (a histogram, a
// timestamp, an exemplar). A compactMetric of another collection is
// copied into b's table.
func compactInto(m prometheus.Metric, b *tableBuilder) (compactMetric, bool) {
	if c, ok := m.(*compactMetric); ok {
		out := *c
		out.tab, out.first = b.tab, b.next()
		for i := range c.info.names {
			b.add(c.label(i))
		}
		return out, true
	}
	if e, ok := m.(*provider.Emitted); ok {
		if c, ok := compactEmitted(e, b); ok {
			return c, true
		}
	}
	var pb dto.Metric
	if m.Write(&pb) != nil || pb.TimestampMs != nil {
		return compactMetric{}, false
	}
	var c compactMetric
	switch {
	case pb.Gauge != nil:
		c.typ, c.value = dto.MetricType_GAUGE, pb.Gauge.GetValue()
	case pb.Counter != nil && pb.Counter.Exemplar == nil && pb.Counter.CreatedTimestamp == nil:
		c.typ, c.value = dto.MetricType_COUNTER, pb.Counter.GetValue()
	case pb.Untyped != nil:
		c.typ, c.value = dto.MetricType_UNTYPED, pb.Untyped.GetValue()
	default:
		return compactMetric{}, false
	}
	info, ok := infoOf(m, pb.Label)
	if !ok {
		return compactMetric{}, false
	}
	c.info, c.tab, c.first = info, b.tab, b.next()
	for _, l := range pb.Label {
		b.add(l.GetValue())
	}
	return c, true
}

// emittedLayout maps an Emitted's label values (the desc's order) to its
// compact form's (sorted by name, const labels among them): sorted label
// j is values[src[j]], or consts[j] where src[j] < 0.
type emittedLayout struct {
	info   *descInfo
	nvals  int
	src    []int
	consts []string
}

var emittedLayouts sync.Map // *prometheus.Desc → *emittedLayout

// compactEmitted compacts e without building its label pairs; false if
// its desc's layout cannot be learnt (compactInto then writes it).
func compactEmitted(e *provider.Emitted, b *tableBuilder) (compactMetric, bool) {
	var c compactMetric
	switch e.ValueType() {
	case prometheus.GaugeValue:
		c.typ = dto.MetricType_GAUGE
	case prometheus.CounterValue:
		c.typ = dto.MetricType_COUNTER
	case prometheus.UntypedValue:
		c.typ = dto.MetricType_UNTYPED
	default:
		return c, false
	}
	vals := e.LabelValues()
	l := layoutOf(e.Desc(), len(vals))
	if l == nil {
		return c, false
	}
	c.info, c.tab, c.first, c.value = l.info, b.tab, b.next(), e.Value()
	for j, k := range l.src {
		if k >= 0 {
			b.add(vals[k])
		} else {
			b.add(l.consts[j])
		}
	}
	return c, true
}

// layoutOf learns d's layout once, from a const metric whose label values
// are markers that tell each sorted pair's source.
func layoutOf(d *prometheus.Desc, nvals int) *emittedLayout {
	if v, ok := emittedLayouts.Load(d); ok {
		if l := v.(*emittedLayout); l.nvals == nvals {
			return l
		}
		return nil
	}
	markers := make([]string, nvals)
	for i := range markers {
		markers[i] = "\x00saas_exporter_label_" + strconv.Itoa(i)
	}
	m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, 0, markers...)
	if err != nil {
		return nil
	}
	var pb dto.Metric
	if m.Write(&pb) != nil {
		return nil
	}
	info, ok := infoOf(m, pb.Label)
	if !ok {
		return nil
	}
	l := &emittedLayout{info: info, nvals: nvals, src: make([]int, len(pb.Label)), consts: make([]string, len(pb.Label))}
	used := 0
	for j, p := range pb.Label {
		l.src[j] = slices.Index(markers, p.GetValue())
		if l.src[j] >= 0 {
			used++
		} else {
			l.consts[j] = p.GetValue()
		}
	}
	if used != nvals {
		return nil
	}
	v, _ := emittedLayouts.LoadOrStore(d, l)
	return v.(*emittedLayout)
}

// collected is one collection's metrics, packed: every compact sample of
// the collection (its sections', kept ones included, and the rest) in one
// slice sorted by family and label values, their label values in one
// table, the others (not compact) beside them. The families, the
// sections (kept as indices) and the page's latest values all point into
// them. A few allocations a collection instead of several a series:
// less memory, and no small long-lived objects left scattered among a
// collection's garbage. A previous collection's samples are copied too,
// so nothing keeps its slices alive.
type collected struct {
	slab     []packedMetric      // the collection's (nall), then section-only ones
	tab      *labelTable         // the label values of slab
	others   []prometheus.Metric // not compact: the collection's (nslow), then section-only ones
	nall     int
	nslow    int
	sections []packedSection // by name; nil if the provider ran none
	refs     []int32         // the sections' metrics
	families []usageFamily
	err      error // metrics groupUsage left out, and why
}

// packedSection is a section's metrics as indices, refs[start:start+n]
// of its collection: r ≥ 0 is slab[r], r < 0 is others[-r-1]. at is when
// it completed (Unix nanoseconds; 0: never).
type packedSection struct {
	name     string
	at       int64
	start, n uint32
}

func (s *packedSection) time() time.Time {
	if s.at == 0 {
		return time.Time{}
	}
	return time.Unix(0, s.at)
}

// ref returns metric r; a packed one is viewed in views[0], and views
// advanced past it (one allocation for many).
func (c *collected) ref(r int32, views *[]compactMetric) prometheus.Metric {
	if r >= 0 {
		v := &(*views)[0]
		*v = c.slab[r].view(c.tab)
		*views = (*views)[1:]
		return v
	}
	return c.others[-r-1]
}

// empty: the collection produced no metric.
func (c *collected) empty() bool { return c == nil || c.nall+c.nslow == 0 }

// latest returns every metric of the collection, sections' included.
func (c *collected) latest() []prometheus.Metric {
	if c.empty() {
		return nil
	}
	out := make([]prometheus.Metric, 0, c.nall+c.nslow)
	views := make([]compactMetric, c.nall)
	for i := range views {
		views[i] = c.slab[i].view(c.tab)
		out = append(out, &views[i])
	}
	return append(out, c.others[:c.nslow]...)
}

// sectionList returns the sections, by name; nil without any.
func (c *collected) sectionList() []packedSection {
	if c == nil {
		return nil
	}
	return c.sections
}

// sectionResults returns the sections as providers read them (Previous).
func (c *collected) sectionResults() map[string]provider.SectionResult {
	if c == nil || c.sections == nil {
		return nil
	}
	out := make(map[string]provider.SectionResult, len(c.sections))
	for _, s := range c.sections {
		refs := c.refs[s.start : s.start+s.n]
		ms := make([]prometheus.Metric, len(refs))
		views := make([]compactMetric, len(refs))
		for i, r := range refs {
			ms[i] = c.ref(r, &views)
		}
		out[s.name] = provider.SectionResult{Metrics: ms, At: s.time()}
	}
	return out
}

// pack builds a collection's collected from its sections and all its
// metrics (all includes the sections').
func pack(secs map[string]provider.SectionResult, all []prometheus.Metric) *collected {
	var (
		b   = newTableBuilder()
		tmp = make([]compactMetric, 0, len(all)) // the compact samples, in input order
		at  = make(map[prometheus.Metric]int, len(all))
		out = &collected{}
	)
	add := func(m prometheus.Metric) {
		if _, ok := at[m]; ok {
			return
		}
		if c, ok := compactInto(m, b); ok {
			at[m] = len(tmp)
			tmp = append(tmp, c)
			return
		}
		at[m] = -1 - len(out.others)
		out.others = append(out.others, m)
	}
	for _, m := range all {
		add(m)
	}
	out.nall, out.nslow = len(tmp), len(out.others)
	// Section metrics not among all (none a provider emits today) are
	// kept after them, not written.
	for _, r := range secs {
		for _, m := range r.Metrics {
			add(m)
		}
	}
	b.seal()
	order, starts, err := groupUsage(tmp[:out.nall])
	out.slab, out.tab = slabChunks.make(len(tmp)), b.tab
	pos := make([]int32, len(tmp)) // input index → slab index
	for i := range tmp {
		j := i
		if i < len(order) {
			j = order[i]
		}
		t := &tmp[j]
		out.slab[i] = packedMetric{value: t.value, first: t.first, kind: t.info.kind(t.typ)}
		pos[j] = int32(i)
	}
	fams := familyChunks.make(len(starts) - 1)
	for k := range fams {
		fams[k].metrics = out.slab[starts[k]:starts[k+1]:starts[k+1]]
		fams[k].tab = b.tab
	}
	if out.nslow > 0 {
		sf, serr := renderSlow(out.others[:out.nslow])
		fams = append(fams, sf...)
		err = errors.Join(err, serr)
	}
	out.families, out.err = fams, err
	if secs != nil {
		n := 0
		for _, r := range secs {
			n += len(r.Metrics)
		}
		out.sections, out.refs = sectionChunks.make(len(secs))[:0], refChunks.make(n)[:0]
		for name, r := range secs {
			sec := packedSection{name: name, start: uint32(len(out.refs)), n: uint32(len(r.Metrics))}
			if !r.At.IsZero() {
				sec.at = r.At.UnixNano()
			}
			for _, m := range r.Metrics {
				if a := at[m]; a >= 0 {
					out.refs = append(out.refs, pos[a])
				} else {
					out.refs = append(out.refs, int32(a))
				}
			}
			out.sections = append(out.sections, sec)
		}
		slices.SortFunc(out.sections, func(a, b packedSection) int { return strings.Compare(a.name, b.name) })
	}
	return out
}
