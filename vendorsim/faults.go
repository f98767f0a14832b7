package vendorsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Fault is what goes wrong with one vendor's answers. Several fields may
// be set; they apply in this order: Latency first, then the first of Reset,
// Hang, HTML, Status, ErrorBody, RateLimit that is set (or the normal answer), and
// Truncate cuts whatever JSON body results.
type Fault struct {
	// Latency delays every answer (ends early if the client gives up).
	Latency time.Duration
	// Status (500..599) answers every call with this status and the
	// vendor's error shape.
	Status int
	// RateLimit answers 429 with the vendor's rate-limit headers.
	RateLimit bool
	// RetryAfter is when the RateLimit ends, from now. Default 60s.
	RetryAfter time.Duration
	// Hang never answers: the call ends when the client gives up (or
	// Server.Close), and the connection is then dropped.
	Hang bool
	// Truncate cuts JSON bodies in half (Content-Length matches the cut
	// body, so the client sees a complete answer that is not valid JSON).
	Truncate bool
	// HTML answers 200 with an HTML page, as a captive portal or a
	// misconfigured proxy would.
	HTML bool
	// Reset closes the TCP connection without answering.
	Reset bool
	// ErrorBody answers 200 with the vendor's error shape, as a gateway
	// that hides a failure would.
	ErrorBody bool
}

// defaultRetryAfter is used when a RateLimit fault has no RetryAfter.
const defaultRetryAfter = 60 * time.Second

// IsZero reports whether f changes nothing.
func (f Fault) IsZero() bool { return f == Fault{} }

// Validate says what is wrong with f, if anything.
func (f Fault) Validate() error {
	var errs []error
	if f.Latency < 0 {
		errs = append(errs, fmt.Errorf("latency %s is negative", f.Latency))
	}
	if f.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("retry_after %s is negative", f.RetryAfter))
	}
	if f.Status != 0 && (f.Status < 500 || f.Status > 599) {
		errs = append(errs, fmt.Errorf("status %d is not a 5xx; use rate_limit for 429 and the vendor's own controls (e.g. revoke) for 401/403", f.Status))
	}
	return errors.Join(errs...)
}

// faultJSON is Fault on the wire: snake_case keys, durations as strings.
type faultJSON struct {
	Latency    string `json:"latency,omitempty"`
	Status     int    `json:"status,omitempty"`
	RateLimit  bool   `json:"rate_limit,omitempty"`
	RetryAfter string `json:"retry_after,omitempty"`
	Hang       bool   `json:"hang,omitempty"`
	Truncate   bool   `json:"truncate,omitempty"`
	HTML       bool   `json:"html,omitempty"`
	Reset      bool   `json:"reset,omitempty"`
	ErrorBody  bool   `json:"error_body,omitempty"`
}

// MarshalJSON writes f with snake_case keys and durations like "100ms".
func (f Fault) MarshalJSON() ([]byte, error) {
	j := faultJSON{Status: f.Status, RateLimit: f.RateLimit, Hang: f.Hang, Truncate: f.Truncate, HTML: f.HTML, Reset: f.Reset, ErrorBody: f.ErrorBody}
	if f.Latency != 0 {
		j.Latency = f.Latency.String()
	}
	if f.RetryAfter != 0 {
		j.RetryAfter = f.RetryAfter.String()
	}
	return json.Marshal(j)
}

// faultKeys maps a normalised key (lower case, no "_" or "-") to its
// wire name, so "RateLimit", "rate_limit" and "ratelimit" all work.
var faultKeys = map[string]string{
	"latency": "latency", "status": "status", "ratelimit": "rate_limit", "retryafter": "retry_after",
	"hang": "hang", "truncate": "truncate", "html": "html", "reset": "reset", "errorbody": "error_body",
}

// UnmarshalJSON reads a fault written as by MarshalJSON. Keys may also be
// spelled as the Go field names; unknown keys are an error.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("a fault is a JSON object like {\"status\":503}: %w", err)
	}
	var out Fault
	for k, v := range raw {
		norm := strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(k))
		name, ok := faultKeys[norm]
		if !ok {
			return fmt.Errorf("unknown fault field %q; known fields: %s", k, strings.Join(faultFieldNames(), ", "))
		}
		var err error
		switch name {
		case "latency":
			out.Latency, err = decodeDuration(name, v)
		case "retry_after":
			out.RetryAfter, err = decodeDuration(name, v)
		case "status":
			if err = json.Unmarshal(v, &out.Status); err != nil {
				err = fmt.Errorf("status must be an HTTP status number like 503")
			}
		case "rate_limit":
			err = decodeBool(name, v, &out.RateLimit)
		case "hang":
			err = decodeBool(name, v, &out.Hang)
		case "truncate":
			err = decodeBool(name, v, &out.Truncate)
		case "html":
			err = decodeBool(name, v, &out.HTML)
		case "reset":
			err = decodeBool(name, v, &out.Reset)
		case "error_body":
			err = decodeBool(name, v, &out.ErrorBody)
		}
		if err != nil {
			return err
		}
	}
	*f = out
	return nil
}

func faultFieldNames() []string {
	var names []string
	for _, n := range faultKeys {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func decodeDuration(name string, v json.RawMessage) (time.Duration, error) {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return 0, fmt.Errorf("%s must be a duration string like \"100ms\" or \"2s\"", name)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration like \"100ms\" or \"2s\"", name, s)
	}
	return d, nil
}

func decodeBool(name string, v json.RawMessage, out *bool) error {
	if err := json.Unmarshal(v, out); err != nil {
		return fmt.Errorf("%s must be true or false", name)
	}
	return nil
}

// FaultError is a failed answer a fault asks a vendor to write.
type FaultError struct {
	Status int // a 5xx from Fault.Status, or 429 for Fault.RateLimit
	// RateLimit only: when the limit ends (simulator clock) and how far
	// that is from now.
	Reset      time.Time
	RetryAfter time.Duration
}

// FaultWriter is implemented by a vendor handler passed to Mount to write
// fault answers in the vendor's own error shape and headers.
type FaultWriter interface {
	WriteFault(w http.ResponseWriter, r *http.Request, e FaultError)
}

// SetFault makes vendor's answers fail as f says; a zero f clears it.
// It panics if vendor is not mounted or f is invalid: both are bugs in the
// calling test.
func (s *Server) SetFault(vendor string, f Fault) {
	if err := s.setFault(vendor, f); err != nil {
		panic("vendorsim: " + err.Error())
	}
}

func (s *Server) setFault(vendor string, f Fault) error {
	if !s.isVendor(vendor) {
		return fmt.Errorf("unknown vendor %q; mounted vendors: %s", vendor, strings.Join(s.vendorNames(), ", "))
	}
	if err := f.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	if f.IsZero() {
		delete(s.faults, vendor)
	} else {
		s.faults[vendor] = f
	}
	s.mu.Unlock()
	s.log.Info("fault set", "vendor", vendor, "fault", faultString(f))
	return nil
}

// ClearFaults removes every vendor's fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = map[string]Fault{}
	s.mu.Unlock()
	s.log.Info("faults cleared")
}

// Faults returns the faults currently set, by vendor.
func (s *Server) Faults() map[string]Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Fault, len(s.faults))
	for k, v := range s.faults {
		out[k] = v
	}
	return out
}

func (s *Server) fault(vendor string) Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults[vendor]
}

func faultString(f Fault) string {
	b, _ := f.MarshalJSON()
	return string(b)
}

// maxControlBody bounds what the control API reads of a request.
const maxControlBody = 64 << 10

func (s *Server) servePutFault(w http.ResponseWriter, r *http.Request) {
	vendor := r.PathValue("vendor")
	if !s.isVendor(vendor) {
		simError(w, http.StatusNotFound, "unknown vendor %q; mounted vendors: %s", vendor, strings.Join(s.vendorNames(), ", "))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
	if err != nil {
		simError(w, http.StatusBadRequest, "reading the fault: %v", err)
		return
	}
	var f Fault
	if err := f.UnmarshalJSON(body); err != nil {
		simError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if err := s.setFault(vendor, f); err != nil {
		simError(w, http.StatusBadRequest, "%v", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]Fault{vendor: f})
}

func (s *Server) serveGetFaults(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Faults())
}

func (s *Server) serveDeleteFaults(w http.ResponseWriter, r *http.Request) {
	s.ClearFaults()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) serveDeleteFault(w http.ResponseWriter, r *http.Request) {
	vendor := r.PathValue("vendor")
	if err := s.setFault(vendor, Fault{}); err != nil {
		simError(w, http.StatusNotFound, "%v", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// vendorHandler counts calls to one mount, applies the vendor's fault and
// hands the rest to h with the prefix removed.
func (s *Server) vendorHandler(vendor, prefix string, h http.Handler) http.Handler {
	fw, _ := h.(FaultWriter)
	inner := http.StripPrefix(prefix, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveFaulty(vendor, fw, h, w, r)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.countCall(vendor, r.Method, r.URL.Path)
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			// Nobody reads the call's log line: skip what it needs.
			inner.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		defer func() {
			// Path only: a query string is client input and could hold anything.
			s.log.Debug("vendor call", "vendor", vendor, "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
		}()
		inner.ServeHTTP(rec, r)
	})
}

func (s *Server) serveFaulty(vendor string, fw FaultWriter, h http.Handler, w http.ResponseWriter, r *http.Request) {
	f := s.fault(vendor)
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return // the client is gone; nobody reads an answer
		case <-s.closed:
			t.Stop()
		}
	}
	switch {
	case f.Reset:
		resetConn(w)
		return
	case f.Hang:
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
		// Drop the connection: an empty 200 after a hang would look like
		// an answer.
		panic(http.ErrAbortHandler)
	}
	if f.Truncate {
		bw := &bufferWriter{header: http.Header{}}
		defer bw.flushTruncated(w)
		w = bw
	}
	switch {
	case f.HTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, htmlFaultPage)
	case f.Status != 0:
		s.writeFault(fw, w, r, FaultError{Status: f.Status})
	case f.ErrorBody:
		// The vendor's 500 error body, sent with 200.
		s.writeFault(fw, &statusOverride{ResponseWriter: w, status: http.StatusOK}, r, FaultError{Status: http.StatusInternalServerError})
	case f.RateLimit:
		ra := f.RetryAfter
		if ra == 0 {
			ra = defaultRetryAfter
		}
		s.writeFault(fw, w, r, FaultError{Status: http.StatusTooManyRequests, Reset: s.now().Add(ra), RetryAfter: ra})
	default:
		h.ServeHTTP(w, r)
	}
}

// statusOverride writes every answer with one status.
type statusOverride struct {
	http.ResponseWriter
	status int
}

func (s *statusOverride) WriteHeader(int) { s.ResponseWriter.WriteHeader(s.status) }

// writeFault uses the vendor's error shape, or a generic one.
func (s *Server) writeFault(fw FaultWriter, w http.ResponseWriter, r *http.Request, e FaultError) {
	if fw != nil {
		fw.WriteFault(w, r, e)
		return
	}
	if e.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, e.Status, map[string]string{"error": http.StatusText(e.Status)})
}

// resetConn closes the client's TCP connection without an answer; with
// SO_LINGER 0 the client sees a reset rather than a clean close.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // cannot hijack (HTTP/2): abort the stream instead
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

const htmlFaultPage = `<!doctype html>
<html><head><title>Just a moment...</title></head>
<body><h1>Checking your browser before accessing the API</h1>
<p>vendorsim HTML fault: this page stands in for a proxy or captive portal answering instead of the vendor.</p>
</body></html>
`

// bufferWriter holds an answer so Truncate can cut it.
type bufferWriter struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func (b *bufferWriter) Header() http.Header { return b.header }

func (b *bufferWriter) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}

func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.buf.Write(p)
}

func (b *bufferWriter) flushTruncated(w http.ResponseWriter) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	body := b.buf.Bytes()
	if isJSON(b.header.Get("Content-Type")) {
		body = body[:len(body)/2]
	}
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(b.status)
	w.Write(body)
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// statusRecorder remembers the status for the log line. Unwrap keeps
// http.ResponseController (Hijack, Flush) working through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
