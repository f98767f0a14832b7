package collector

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/saas-exporter/saas_exporter/store"
)

// deadlineMargin is kept free of the scrape timeout Prometheus announces,
// for encoding and sending the answer.
const deadlineMargin = 500 * time.Millisecond

// expose collects the connections keep accepts and writes them in the
// text format; counters adds the exporter-wide series (vendor requests,
// store health) that /probe leaves out.
func (e *Engine) expose(ctx context.Context, w io.Writer, keep func(store.Connection) bool, counters bool) error {
	snaps, storeOK := e.collectAll(ctx, keep)
	x := newExposition()
	for _, s := range snaps {
		s.write(x)
		e.writeBudget(x, s.conn)
	}
	if counters {
		x.sample(mStoreUp, b2f(storeOK))
		counts := e.counts.snapshot()
		keys := make([][2]string, 0, len(counts))
		for k := range counts {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+" "+a[1], b[0]+" "+b[1]) })
		for _, k := range keys {
			x.sample(mRequests, counts[k], "code", k[1], "vendor", k[0])
		}
	}
	return x.writeTo(w)
}

// minScrapeTimeout is the least X-Prometheus-Scrape-Timeout-Seconds taken
// at its word; anything shorter (anyone can send the header) counts as this.
const minScrapeTimeout = time.Second

// Deadline is the time one scrape may take: scrape.timeout, lowered to the
// X-Prometheus-Scrape-Timeout-Seconds Prometheus sends (at least
// minScrapeTimeout) minus a margin. It bounds the answer only: each
// connection's collection runs to scrape.timeout whoever asked.
func (e *Engine) Deadline(r *http.Request) time.Duration {
	d := e.o.Timeout
	if v := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); v != "" {
		if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
			h := max(time.Duration(secs*float64(time.Second)), minScrapeTimeout)
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
		e.serveText(w, r, func(out io.Writer) error {
			if err := e.expose(ctx, out, nil, true); err != nil {
				return err
			}
			mfs, err := extra.Gather()
			if err != nil {
				e.o.Logger.Warn("gathering process metrics", "err", err)
			}
			for _, mf := range mfs {
				if _, err := expfmt.MetricFamilyToText(out, mf); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// ProbeHandler serves /probe?connection=ID (or name): one connection's
// health and usage, for the multi-target pattern.
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
		keep := func(c store.Connection) bool { return c.ID == want || c.Name == want }
		if !slices.ContainsFunc(conns, keep) {
			http.Error(w, "unknown connection "+strconv.Quote(want)+": list them at /sd or /api/v1/connections", http.StatusNotFound)
			return
		}
		e.serveText(w, r, func(out io.Writer) error { return e.expose(ctx, out, keep, false) })
	})
}

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

// serveText answers in the Prometheus text format, gzipped (fastest level)
// when the client accepts it. A write error means the client went away.
func (e *Engine) serveText(w http.ResponseWriter, r *http.Request, write func(io.Writer) error) {
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	var out io.Writer = w
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzipWriters.Get().(*gzip.Writer)
		gz.Reset(w)
		defer func() {
			gz.Close()
			gzipWriters.Put(gz)
		}()
		out = gz
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	if err := write(bw); err != nil {
		e.o.Logger.Debug("writing metrics", "err", err)
		return
	}
	bw.Flush()
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
		// The list the scrapes use: a poll opens no secret while it is
		// fresh, and a slow store costs at most the call timeout.
		ctx, cancel := context.WithTimeout(r.Context(), e.o.Timeout)
		defer cancel()
		conns, ok := e.connections(ctx)
		if !ok {
			// Prometheus keeps its previous targets on an error answer.
			http.Error(w, "cannot list connections: the store is unavailable (see saas_exporter_store_up and the exporter log)", http.StatusServiceUnavailable)
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
