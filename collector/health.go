package collector

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saas-exporter/saas_exporter/store"
)

// Connection-health metrics: emitted for every stored connection on every
// scrape, whatever the vendor answered, so no series vanishes when it matters.
var (
	connLabels = []string{"vendor", "connection"}

	descInfo = prometheus.NewDesc("saas_connection_info",
		"Stored vendor connection; always 1.", []string{"vendor", "connection", "account", "auth_method"}, nil)
	descUp = prometheus.NewDesc("saas_connection_up",
		"1 if the vendor accepted the connection's credential on the last attempt, 0 otherwise.", connLabels, nil)
	descState = prometheus.NewDesc("saas_connection_state",
		"Connection state: 1 for the current state, 0 for the others.", append(connLabels, "state"), nil)
	descExpiry = prometheus.NewDesc("saas_connection_expiry_timestamp_seconds",
		"When the credential stops working without a person (Unix time); only for credentials that expire.", connLabels, nil)
	descCreated = prometheus.NewDesc("saas_connection_created_timestamp_seconds",
		"When the connection was created (Unix time).", connLabels, nil)
	descLastSuccess = prometheus.NewDesc("saas_connection_last_success_timestamp_seconds",
		"Last successful collection of the connection (Unix time).", connLabels, nil)
	descScopeMissing = prometheus.NewDesc("saas_connection_scope_missing",
		"1 for each recommended scope the credential lacks; metrics needing it are left out.", append(connLabels, "scope"), nil)
	descScrapeSuccess = prometheus.NewDesc("saas_scrape_success",
		"1 if every vendor call of the connection's last collection succeeded. Results are reused for scrape.min_interval and shared by concurrent scrapes.", connLabels, nil)
	descScrapeDuration = prometheus.NewDesc("saas_scrape_duration_seconds",
		"Duration of the connection's last collection from the vendor.", connLabels, nil)
	descCollected = prometheus.NewDesc("saas_usage_collected_timestamp_seconds",
		"When the exposed usage values were fetched from the vendor (Unix time); cache age is time() minus this.", connLabels, nil)
	descRateRemaining = prometheus.NewDesc("saas_vendor_rate_limit_remaining",
		"Vendor API calls left in the current rate-limit window, where the vendor reports it.", connLabels, nil)
	descRequests = prometheus.NewDesc("saas_vendor_requests_total",
		"Vendor API calls made by the exporter, by HTTP status code (\"error\": no response).", []string{"vendor", "code"}, nil)
)

// snapshot is what one scrape exports for one connection.
type snapshot struct {
	conn        store.Connection
	state       string
	up          bool
	success     bool
	attempted   bool // a collection has run since start (duration and success are known)
	duration    time.Duration
	lastSuccess time.Time
	collectedAt time.Time
	missing     []string
	remaining   float64
	usage       []prometheus.Metric
}

func (s *snapshot) emit(ch chan<- prometheus.Metric) {
	v, n := s.conn.Vendor, s.conn.Name
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, v, n, s.conn.Account, s.conn.AuthMethod)
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, b2f(s.up), v, n)
	for _, st := range store.States {
		ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, b2f(st == s.state), v, n, st)
	}
	if !s.conn.Expiry.IsZero() {
		ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue, unix(s.conn.Expiry), v, n)
	}
	if !s.conn.Created.IsZero() {
		ch <- prometheus.MustNewConstMetric(descCreated, prometheus.GaugeValue, unix(s.conn.Created), v, n)
	}
	if !s.lastSuccess.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, unix(s.lastSuccess), v, n)
	}
	for _, sc := range s.missing {
		ch <- prometheus.MustNewConstMetric(descScopeMissing, prometheus.GaugeValue, 1, v, n, sc)
	}
	ch <- prometheus.MustNewConstMetric(descScrapeSuccess, prometheus.GaugeValue, b2f(s.success), v, n)
	if s.attempted {
		ch <- prometheus.MustNewConstMetric(descScrapeDuration, prometheus.GaugeValue, s.duration.Seconds(), v, n)
	}
	if len(s.usage) > 0 && !s.collectedAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(descCollected, prometheus.GaugeValue, unix(s.collectedAt), v, n)
	}
	if !math.IsNaN(s.remaining) {
		ch <- prometheus.MustNewConstMetric(descRateRemaining, prometheus.GaugeValue, s.remaining, v, n)
	}
	for _, m := range s.usage {
		ch <- m
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
