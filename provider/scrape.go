package provider

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// NewDesc describes a usage metric saas_<name>. Every usage metric carries
// the "connection" label first; Scrape.Gauge fills it in.
func NewDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("saas_"+name, help, append([]string{"connection"}, labels...), nil)
}

// MaxLabelLen bounds every label value that comes from a vendor, in
// characters: a Prometheus label_value_length_limit would otherwise fail
// the whole scrape over one vendor's odd answer.
const MaxLabelLen = 128

// Label makes vendor text safe as a label value: invalid UTF-8 is
// replaced, and a value longer than MaxLabelLen characters is cut, "…"
// and 8 hex digits of a hash of the whole value marking the cut, so two
// long values that begin alike stay two series. Scrape applies it to
// every label a provider emits.
func Label(v string) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	if utf8.RuneCountInString(v) <= MaxLabelLen {
		return v
	}
	h := fnv.New32a()
	h.Write([]byte(v))
	return fmt.Sprintf("%s…%08x", string([]rune(v)[:MaxLabelLen-9]), h.Sum32())
}

// Scrape is one collection of one connection. Providers emit metrics through
// it; the engine owns everything else (deadline, HTTP accounting, state).
type Scrape struct {
	Conn Connection
	// HTTP is the client to call the vendor with: it counts requests by
	// status, records rate-limit headers and has a timeout.
	HTTP *http.Client
	Now  time.Time
	// Renew serialises a credential renewal across every replica sharing
	// the store: fn gets the freshest stored connection (another replica
	// may have renewed it already) and returns the renewed credential, or
	// nil if the stored one is still good. What fn returns is saved before
	// Renew returns, so a rotated refresh token is never lost or used
	// twice. Renew returns the connection as stored afterwards.
	Renew func(ctx context.Context, fn func(c Connection) (*Credential, error)) (Connection, error)
	// Previous holds each section's last kept result (set by the engine;
	// a section may read its own, e.g. to keep a series at 0 that existed
	// earlier in the same period).
	Previous map[string]SectionResult

	parent     *Scrape // a section's Scrape reports scopes and credentials to its collection's
	sections   map[string]SectionResult
	mu         sync.Mutex
	alloc      emitted
	metrics    []prometheus.Metric
	missing    []string
	scopesSeen bool
	updated    *Credential
}

// Gauge emits a gauge for this connection; labels follow the desc's labels
// after "connection".
func (s *Scrape) Gauge(d *prometheus.Desc, v float64, labels ...string) {
	s.emit(d, prometheus.GaugeValue, v, labels)
}

// Counter emits a counter (a vendor's own running total).
func (s *Scrape) Counter(d *prometheus.Desc, v float64, labels ...string) {
	s.emit(d, prometheus.CounterValue, v, labels)
}

func (s *Scrape) emit(d *prometheus.Desc, t prometheus.ValueType, v float64, labels []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, values := s.alloc.next(len(labels) + 1)
	values = append(values, s.Conn.Name)
	for _, l := range labels {
		values = append(values, Label(l)) // vendor text: bounded, valid UTF-8
	}
	check(d, t, v, values)
	*m = Emitted{desc: d, typ: t, value: v, labels: values}
	s.metrics = append(s.metrics, m)
}

// MissingScopes reports the recommended scopes the credential lacks, as
// learnt on this collection (the metrics needing them are left out). A
// provider that cannot tell this time does not call it, and the previous
// list stays.
func (s *Scrape) MissingScopes(scopes []string) {
	if s.parent != nil {
		s.parent.MissingScopes(scopes)
		return
	}
	s.mu.Lock()
	s.missing = append([]string{}, scopes...)
	s.scopesSeen = true
	s.mu.Unlock()
}

// UpdateCredential stores a renewed credential (refreshed token). The
// engine saves it before the scrape result is published.
func (s *Scrape) UpdateCredential(c *Credential) {
	if s.parent != nil {
		s.parent.UpdateCredential(c)
		return
	}
	s.mu.Lock()
	s.updated = c
	s.mu.Unlock()
}

// Result hands the engine what the provider reported. missingScopes is nil
// if the provider did not learn them on this collection.
func (s *Scrape) Result() (metrics []prometheus.Metric, missingScopes []string, updated *Credential) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.scopesSeen {
		missingScopes = s.missing
	}
	metrics = s.metrics
	if len(s.sections) > 0 {
		metrics = append([]prometheus.Metric{}, s.metrics...)
		for _, r := range s.sections {
			metrics = append(metrics, r.Metrics...)
		}
	}
	return metrics, missingScopes, s.updated
}

// Section is one independent part of a collection: one endpoint, or a few
// calls that only make sense together. Sections run concurrently (the
// engine bounds the calls per vendor account), and each keeps its own last
// good metrics: a section that fails, or is not due, exports what it
// collected last instead of dropping its series.
type Section struct {
	// Name identifies the section from one collection to the next. Put
	// whatever makes old values wrong into it (a closed month's key,
	// "last_month:2026-11"): a renamed section starts afresh.
	Name string
	// Every > 0 runs the section at most that often after a success
	// (closed periods barely change); 0 runs it on every collection.
	Every time.Duration
	// Run collects the section, emitting through its own Scrape.
	Run func(ctx context.Context, s *Scrape) error
}

// SectionResult is what the engine keeps of a section between collections.
type SectionResult struct {
	Metrics []prometheus.Metric
	// At is the start of the section's last complete collection; zero if
	// it never completed.
	At time.Time
}

// overlay returns base with every series of top replacing its namesake.
func overlay(base, top []prometheus.Metric) []prometheus.Metric {
	if len(base) == 0 {
		return top
	}
	seen := make(map[string]bool, len(top))
	for _, m := range top {
		seen[seriesKey(m)] = true
	}
	out := append([]prometheus.Metric{}, top...)
	for _, m := range base {
		if !seen[seriesKey(m)] {
			out = append(out, m)
		}
	}
	return out
}

func seriesKey(m prometheus.Metric) string {
	var pb dto.Metric
	_ = m.Write(&pb) // const metrics cannot fail
	var b strings.Builder
	b.WriteString(m.Desc().String())
	for _, l := range pb.GetLabel() {
		b.WriteString("\xff" + l.GetName() + "=" + l.GetValue())
	}
	return b.String()
}

// PanicError is a panic recovered in a collection. The engine logs Stack;
// the connection's last_error shows only Error().
type PanicError struct {
	Where string
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("%s failed unexpectedly (a bug; please report it with the log's stack trace): %v", e.Where, e.Value)
}

// Recover turns a panic into *PanicError in *err. Use as
// `defer provider.Recover("sendgrid credits", &err)` in any goroutine a
// collection starts; an unrecovered panic there would end the process.
func Recover(where string, err *error) {
	if r := recover(); r != nil {
		*err = &PanicError{Where: where, Value: r, Stack: debug.Stack()}
	}
}

// Sections runs secs concurrently and waits for them. A section that
// fails keeps the metrics of its last success; a section not listed in
// this call is gone (scope lost, period closed). It returns every
// section's error, joined.
func (s *Scrape) Sections(ctx context.Context, secs ...Section) error {
	var (
		wg   sync.WaitGroup
		errs = make([]error, len(secs))
	)
	s.mu.Lock()
	if s.sections == nil {
		s.sections = map[string]SectionResult{}
	}
	s.mu.Unlock()
	for i, sec := range secs {
		prev, had := s.Previous[sec.Name]
		if had && sec.Every > 0 && !prev.At.IsZero() && s.Now.Sub(prev.At) < sec.Every {
			s.keep(sec.Name, prev)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			child := &Scrape{Conn: s.Conn, HTTP: s.HTTP, Now: s.Now, Renew: s.Renew, Previous: s.Previous, parent: s}
			err := runSection(ctx, sec, child)
			child.mu.Lock()
			res := SectionResult{Metrics: child.metrics, At: s.Now}
			child.mu.Unlock()
			if err != nil {
				errs[i] = err
				// What it emitted before failing is exported; the series it
				// did not reach keep their last good value.
				res = SectionResult{Metrics: overlay(prev.Metrics, res.Metrics), At: prev.At}
			}
			s.keep(sec.Name, res)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func runSection(ctx context.Context, sec Section, s *Scrape) (err error) {
	defer Recover("section "+sec.Name, &err)
	return sec.Run(ctx, s)
}

func (s *Scrape) keep(name string, r SectionResult) {
	s.mu.Lock()
	s.sections[name] = r
	s.mu.Unlock()
}

// SectionResults is what each section of this collection holds (collected
// now or kept), for the engine to pass back as Previous next time; nil if
// the provider ran no sections (it failed before them).
func (s *Scrape) SectionResults() map[string]SectionResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sections
}
