package provider

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// NewDesc describes a usage metric saas_<name>. Every usage metric carries
// the "connection" label first; Scrape.Gauge fills it in.
func NewDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("saas_"+name, help, append([]string{"connection"}, labels...), nil)
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

	mu         sync.Mutex
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
	m := prometheus.MustNewConstMetric(d, t, v, append([]string{s.Conn.Name}, labels...)...)
	s.mu.Lock()
	s.metrics = append(s.metrics, m)
	s.mu.Unlock()
}

// MissingScopes reports the recommended scopes the credential lacks, as
// learnt on this collection (the metrics needing them are left out). A
// provider that cannot tell this time does not call it, and the previous
// list stays.
func (s *Scrape) MissingScopes(scopes []string) {
	s.mu.Lock()
	s.missing = append([]string{}, scopes...)
	s.scopesSeen = true
	s.mu.Unlock()
}

// UpdateCredential stores a renewed credential (refreshed token). The
// engine saves it before the scrape result is published.
func (s *Scrape) UpdateCredential(c *Credential) {
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
	return s.metrics, missingScopes, s.updated
}
