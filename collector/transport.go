package collector

import (
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// defaultRateLimitWait is how long to leave a connection alone after a 429
// that named no reset time.
const defaultRateLimitWait = 60 * time.Second

// maxRateLimitWait caps every rate-limit wait, whatever the vendor said: a
// bogus header (a timestamp in milliseconds, a reset years away) must not
// park a connection until a restart.
const maxRateLimitWait = time.Hour

// callRecorder sees every vendor call of one collection: it counts
// requests by status, bounds concurrent calls to one account, and records
// what the vendor said about rate limits.
type callRecorder struct {
	base   http.RoundTripper
	vendor string
	counts *requestCounter
	sem    chan struct{} // nil: unbounded
	now    func() time.Time

	mu        sync.Mutex
	accepted  int       // 2xx answers: the vendor accepted the credential
	failed    int       // non-2xx answers and transport errors
	limited   bool      // saw a 429
	until     time.Time // no call before this (from a 429)
	remaining float64   // last X-RateLimit-Remaining, NaN if never seen
}

func newCallRecorder(base http.RoundTripper, vendor string, counts *requestCounter, limit int, now func() time.Time) *callRecorder {
	r := &callRecorder{base: base, vendor: vendor, counts: counts, now: now, remaining: math.NaN()}
	if limit > 0 {
		r.sem = make(chan struct{}, limit)
	}
	return r
}

// maxRetries bounds retries of one idempotent call after a 5xx or a
// transport error; a retry happens only if it fits in the deadline.
const maxRetries = 2

func (r *callRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		start := time.Now()
		resp, err := r.once(req)
		if attempt >= maxRetries || !retryable(req, resp, err) {
			return resp, err
		}
		// Jittered exponential backoff: 100ms, 200ms (±50%).
		wait := time.Duration(float64(100*time.Millisecond<<attempt) * (0.5 + rand.Float64()))
		if dl, ok := req.Context().Deadline(); !ok || time.Until(dl) < wait+2*time.Since(start) {
			return resp, err // another try would not finish in time
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			return nil, req.Context().Err()
		}
	}
}

// retryable: only idempotent calls, only failures a retry can fix.
func retryable(req *http.Request, resp *http.Response, err error) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if err != nil {
		return req.Context().Err() == nil
	}
	switch resp.StatusCode {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (r *callRecorder) once(req *http.Request) (*http.Response, error) {
	if r.sem != nil {
		select {
		case r.sem <- struct{}{}:
			defer func() { <-r.sem }()
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
	}
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		r.counts.inc(r.vendor, "error")
		r.mu.Lock()
		r.failed++
		r.mu.Unlock()
		return nil, err
	}
	r.counts.inc(r.vendor, strconv.Itoa(resp.StatusCode))
	r.mu.Lock()
	defer r.mu.Unlock()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		r.accepted++
	} else {
		r.failed++
	}
	if v, err := strconv.ParseFloat(resp.Header.Get("X-RateLimit-Remaining"), 64); err == nil {
		r.remaining = v
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		r.limited = true
		until := resetTime(resp.Header, r.now())
		if until.After(r.until) {
			r.until = until
		}
	}
	return resp, nil
}

// resetTime reads when a rate limit ends from Retry-After (seconds or an
// HTTP date) or X-RateLimit-Reset (unix seconds, seconds from now, or an
// RFC 5322 date, as vendors differ).
func resetTime(h http.Header, now time.Time) time.Time {
	if t, ok := parseWhen(h.Get("Retry-After"), now); ok {
		return t
	}
	if t, ok := parseWhen(h.Get("X-RateLimit-Reset"), now); ok {
		return t
	}
	return now.Add(defaultRateLimitWait)
}

func parseWhen(v string, now time.Time) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
		if n > 1e12 { // an absolute unix time in milliseconds
			return time.UnixMilli(int64(n)), true
		}
		if n > 1e9 { // an absolute unix time
			return time.Unix(int64(n), 0), true
		}
		return now.Add(time.Duration(n * float64(time.Second))), true
	}
	for _, layout := range []string{http.TimeFormat, time.RFC1123Z, time.RFC1123, time.RFC850, time.ANSIC, time.RFC3339} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// requestCounter backs saas_vendor_requests_total. It is a plain map, not
// a metric vector, so Collect can emit it as const metrics.
type requestCounter struct {
	mu      sync.Mutex
	n       map[[2]string]float64
	changed func() // called after every count (nil: nothing)
}

func (c *requestCounter) inc(vendor, code string) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[[2]string]float64{}
	}
	c.n[[2]string{vendor, code}]++
	c.mu.Unlock()
	if c.changed != nil {
		c.changed()
	}
}

func (c *requestCounter) snapshot() map[[2]string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[[2]string]float64, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}
