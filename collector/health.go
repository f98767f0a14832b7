package collector

import (
	"math"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// Connection-health metrics: written for every stored connection on every
// scrape, whatever the vendor answered, so no series vanishes when it matters.
var (
	mInfo = def("saas_connection_info", "gauge",
		"Stored vendor connection; always 1.")
	mUp = def("saas_connection_up", "gauge",
		"1 if the vendor accepted the connection's credential on the last attempt, 0 otherwise.")
	mState = def("saas_connection_state", "gauge",
		"Connection state: 1 for the current state, 0 for the others.")
	mExpiry = def("saas_connection_expiry_timestamp_seconds", "gauge",
		"When the credential stops working without a person (Unix time); only for credentials that expire.")
	mCreated = def("saas_connection_created_timestamp_seconds", "gauge",
		"When the connection was created (Unix time).")
	mLastSuccess = def("saas_connection_last_success_timestamp_seconds", "gauge",
		"Last successful collection of the connection (Unix time).")
	mScopeMissing = def("saas_connection_scope_missing", "gauge",
		"1 for each recommended scope the credential lacks; metrics needing it are left out.")
	mScrapeSuccess = def("saas_scrape_success", "gauge",
		"1 if every vendor call of the connection's last collection succeeded. Results are reused for scrape.min_interval and shared by concurrent scrapes.")
	mScrapeDuration = def("saas_scrape_duration_seconds", "gauge",
		"Duration of the connection's last collection from the vendor.")
	mCollected = def("saas_usage_collected_timestamp_seconds", "gauge",
		"When the exposed usage values were fetched from the vendor (Unix time); cache age is time() minus this.")
	mSectionCollected = def("saas_usage_section_collected_timestamp_seconds", "gauge",
		"When each part (section) of the connection's usage was last collected completely (Unix time). A section whose calls fail keeps exporting its last values; this shows their age.")
	mRateRemaining = def("saas_vendor_rate_limit_remaining", "gauge",
		"Vendor API calls left in the current rate-limit window, where the vendor reports it.")
	mRequests = def("saas_vendor_requests_total", "counter",
		"Vendor API calls made by the exporter, by HTTP status code (\"error\": no response).")
	mStoreUp = def("saas_exporter_store_up", "gauge",
		"1 if the exporter could list connections from its store on this scrape.")
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
	usage       []usageFamily
	sections    []packedSection // of the last collection that ran sections
}

// write adds the connection's health samples and its last usage to x.
func (s *snapshot) write(x *exposition) {
	v, n := s.conn.Vendor, s.conn.Name
	x.sample(mInfo, 1, "account", provider.Label(s.conn.Account), "auth_method", s.conn.AuthMethod, "connection", n, "vendor", v)
	x.sample(mUp, b2f(s.up), "connection", n, "vendor", v)
	for st := range store.States() {
		x.sample(mState, b2f(st == s.state), "connection", n, "state", st, "vendor", v)
	}
	if !s.conn.Expiry.IsZero() {
		x.sample(mExpiry, unix(s.conn.Expiry), "connection", n, "vendor", v)
	}
	if !s.conn.Created.IsZero() {
		x.sample(mCreated, unix(s.conn.Created), "connection", n, "vendor", v)
	}
	if !s.lastSuccess.IsZero() {
		x.sample(mLastSuccess, unix(s.lastSuccess), "connection", n, "vendor", v)
	}
	for _, sc := range s.missing {
		x.sample(mScopeMissing, 1, "connection", n, "scope", sc, "vendor", v)
	}
	x.sample(mScrapeSuccess, b2f(s.success), "connection", n, "vendor", v)
	if s.attempted {
		x.sample(mScrapeDuration, s.duration.Seconds(), "connection", n, "vendor", v)
	}
	if len(s.usage) > 0 && !s.collectedAt.IsZero() {
		x.sample(mCollected, unix(s.collectedAt), "connection", n, "vendor", v)
	}
	for _, sec := range s.sections {
		if sec.at != 0 {
			x.sample(mSectionCollected, float64(sec.at)/1e9, "connection", n, "section", provider.Label(sec.name), "vendor", v)
		}
	}
	if !math.IsNaN(s.remaining) {
		x.sample(mRateRemaining, s.remaining, "connection", n, "vendor", v)
	}
	for i := range s.usage {
		x.add(&s.usage[i])
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
