package collector

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/saas-exporter/saas_exporter/store"
)

// deadlineMargin is kept free of the scrape timeout Prometheus announces,
// for encoding and sending the answer.
const deadlineMargin = 500 * time.Millisecond

var descStoreUp = prometheus.NewDesc("saas_exporter_store_up",
	"1 if the exporter could list connections from its store on this scrape.", nil, nil)

// scrape is a prometheus.Collector for one HTTP request. It is unchecked
// (Describe sends nothing) because the set of series depends on what is
// stored and what each vendor allows.
type scrape struct {
	e        *Engine
	ctx      context.Context
	keep     func(store.Connection) bool
	counters bool // include saas_vendor_requests_total and store health
	found    int
}

func (s *scrape) Describe(chan<- *prometheus.Desc) {}

func (s *scrape) Collect(ch chan<- prometheus.Metric) {
	found, storeOK := s.e.collectAll(s.ctx, s.keep, ch)
	s.found = found
	if !s.counters {
		return
	}
	ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, b2f(storeOK))
	for k, v := range s.e.counts.snapshot() {
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, v, k[0], k[1])
	}
}

// Deadline is the time one scrape may take: scrape.timeout, lowered to the
// X-Prometheus-Scrape-Timeout-Seconds Prometheus sends minus a margin.
func (e *Engine) Deadline(r *http.Request) time.Duration {
	d := e.o.Timeout
	if v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
			h := time.Duration(secs * float64(time.Second))
			if h-deadlineMargin > h/2 {
				h -= deadlineMargin
			} else {
				h /= 2
			}
			if h < d {
				d = h
			}
		}
	}
	return d
}

// MetricsHandler serves /metrics: every connection's health and usage, the
// vendor request counters, and what extra gathers (process, build info).
func (e *Engine) MetricsHandler(extra prometheus.Gatherer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), e.Deadline(r))
		defer cancel()
		reg := prometheus.NewRegistry()
		reg.MustRegister(&scrape{e: e, ctx: ctx, counters: true})
		promhttp.HandlerFor(prometheus.Gatherers{extra, reg}, promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError,
		}).ServeHTTP(w, r)
	})
}

// ProbeHandler serves /probe?connection=ID (or name): one connection's
// health and usage in a registry of its own, for the multi-target pattern.
func (e *Engine) ProbeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := r.URL.Query().Get("connection")
		if want == "" {
			http.Error(w, "missing ?connection=ID: name a connection id (see /sd or /api/v1/connections)", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), e.Deadline(r))
		defer cancel()
		// Resolve before collecting, so an unknown id is a clear 404
		// rather than an empty page.
		conns, _ := e.connections(ctx)
		known := false
		for _, c := range conns {
			if c.ID == want || c.Name == want {
				known = true
				break
			}
		}
		if !known {
			http.Error(w, "unknown connection "+strconv.Quote(want)+": list them at /sd or /api/v1/connections", http.StatusNotFound)
			return
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(&scrape{e: e, ctx: ctx, keep: func(c store.Connection) bool { return c.ID == want || c.Name == want }})
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
	})
}

// targetGroup is one entry of Prometheus' http_sd_configs format.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// SDHandler serves /sd: one target per connection, pointing at /probe on
// the address Prometheus used to reach this exporter.
func (e *Engine) SDHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns, err := e.o.Store.List(r.Context())
		if err != nil {
			// Prometheus keeps its previous targets on an error answer.
			http.Error(w, "cannot list connections: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		groups := make([]targetGroup, 0, len(conns))
		for _, c := range conns {
			groups = append(groups, targetGroup{
				Targets: []string{r.Host},
				Labels: map[string]string{
					"__metrics_path__":   "/probe",
					"__param_connection": c.ID,
					"vendor":             c.Vendor,
					"connection":         c.Name,
				},
			})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(groups)
	})
}
