// Package vendorsim is a deterministic simulator of the vendor APIs the
// exporter calls. It serves every vendor from one loopback server, each
// under its own path prefix (/sendgrid, ...), with fixed test accounts,
// pagination and faults on demand. Tests use it in-process; people run
// cmd/vendorsim for the demo.
//
// The core (this file and faults.go) never names a vendor: each vendor
// file registers itself from New with Mount and describe.
package vendorsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// Now is the simulator's clock (dates of stats, credit resets, rate
	// limit windows). Default time.Now.
	Now func() time.Time
	// PageSize is the most items the simulator returns in one page of a
	// paginated list, whatever limit the client asks for (Twilio,
	// Segment), or the page size when the client names none (SendGrid,
	// whose spec makes limit the page size). Default 3, so clients
	// always have to paginate.
	PageSize int
	// Logger receives one debug line per vendor call (never a credential)
	// and an info line per fault change. Default: discard.
	Logger *slog.Logger
}

// Server is the simulator. Create it with New; it is safe for concurrent use.
type Server struct {
	now      func() time.Time
	pageSize int
	log      *slog.Logger
	mux      *http.ServeMux

	mu      sync.Mutex
	mounts  []mount // in Mount order
	infos   map[string]*VendorInfo
	faults  map[string]Fault
	calls   map[string]int64 // per vendor
	byRoute map[string]int64 // per "METHOD path"
	state   map[string]any   // per-vendor state, owned by the vendor's file

	closeOnce sync.Once
	closed    chan struct{} // closed by Close: releases hanging calls
}

type mount struct {
	vendor, prefix string
	h              http.Handler
}

// maxRoutes bounds the per-route call table: paths come from clients, and a
// long-running demo must not grow without bound. Further routes count under
// otherRoute.
const (
	maxRoutes  = 1000
	otherRoute = "OTHER"
)

// New returns a simulator with every vendor mounted.
func New(o Options) *Server {
	s := &Server{
		now:      o.Now,
		pageSize: o.PageSize,
		log:      o.Logger,
		mux:      http.NewServeMux(),
		infos:    map[string]*VendorInfo{},
		faults:   map[string]Fault{},
		calls:    map[string]int64{},
		byRoute:  map[string]int64{},
		state:    map[string]any{},
		closed:   make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.pageSize <= 0 {
		s.pageSize = 3
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.mux.HandleFunc("GET /{$}", s.serveIndex)
	s.mux.HandleFunc("GET /_sim/faults", s.serveGetFaults)
	s.mux.HandleFunc("PUT /_sim/faults/{vendor}", s.servePutFault)
	s.mux.HandleFunc("DELETE /_sim/faults", s.serveDeleteFaults)
	s.mux.HandleFunc("DELETE /_sim/faults/{vendor}", s.serveDeleteFault)
	s.mux.HandleFunc("GET /_sim/calls", s.serveGetCalls)
	s.mux.HandleFunc("DELETE /_sim/calls", s.serveDeleteCalls)
	s.mux.HandleFunc("/_sim/", func(w http.ResponseWriter, r *http.Request) {
		simError(w, http.StatusNotFound, "no such control endpoint %s %s; the list is on the index page /", r.Method, r.URL.Path)
	})

	// One line per vendor file.
	s.registerSendGrid()
	s.registerTwilio()
	s.registerSegment()
	s.registerOAuth()
	return s
}

// Handler serves every mounted vendor, the control API under /_sim/ and
// the index page at /.
func (s *Server) Handler() http.Handler { return s.mux }

// Close releases calls held by the Hang fault, so an http.Server can shut
// down. The handler keeps serving otherwise.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// Now returns the simulator's current time.
func (s *Server) Now() time.Time { return s.now() }

// PageSize returns the most items one page holds.
func (s *Server) PageSize() int { return s.pageSize }

// Mount serves h under prefix (e.g. "/sendgrid") for vendor: h sees paths
// with the prefix removed. Calls are counted for vendor and the vendor's
// faults apply. A vendor may be mounted under several prefixes. If h
// implements FaultWriter, fault errors use the vendor's error shape.
// Mount panics on a malformed or duplicate prefix: that is a bug in a vendor
// file, not input.
func (s *Server) Mount(vendor, prefix string, h http.Handler) {
	if vendor == "" || !strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") || strings.HasPrefix(prefix, "/_sim") {
		panic(fmt.Sprintf("vendorsim: bad mount %q at %q: want a vendor name and a prefix like /name", vendor, prefix))
	}
	s.mu.Lock()
	for _, m := range s.mounts {
		if m.prefix == prefix {
			s.mu.Unlock()
			panic(fmt.Sprintf("vendorsim: prefix %q mounted twice", prefix))
		}
	}
	s.mounts = append(s.mounts, mount{vendor: vendor, prefix: prefix, h: h})
	if s.infos[vendor] == nil {
		s.infos[vendor] = &VendorInfo{Vendor: vendor}
	}
	s.infos[vendor].Prefixes = append(s.infos[vendor].Prefixes, prefix)
	s.mu.Unlock()
	s.mux.Handle(prefix+"/", s.vendorHandler(vendor, prefix, h))
}

// control registers a vendor-specific control endpoint, e.g.
// "POST /_sim/sendgrid/revoke". Faults never apply to it.
func (s *Server) control(pattern string, h http.HandlerFunc) {
	if !strings.Contains(pattern, " /_sim/") {
		panic(fmt.Sprintf("vendorsim: control pattern %q must be \"METHOD /_sim/...\"", pattern))
	}
	s.mux.HandleFunc(pattern, h)
}

// Credential is a test credential shown on the index page and by
// cmd/vendorsim.
type Credential struct {
	Label string // "API key (account acme, paid, all scopes)"
	Value string
}

// VendorInfo describes a mounted vendor for people running the demo.
type VendorInfo struct {
	Vendor      string
	Prefixes    []string
	Credentials []Credential
	// Controls lists vendor-specific control endpoints, one line each.
	Controls []string
	// Config returns the vendor's section of the exporter configuration
	// (the lines under "vendors:", indented by two spaces) for a simulator
	// reachable at base, e.g. "http://127.0.0.1:9800".
	Config func(base string) string
}

// describe adds what a person needs to use vendor (called by vendor files).
func (s *Server) describe(vendor string, creds []Credential, controls []string, config func(base string) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	vi := s.infos[vendor]
	if vi == nil {
		vi = &VendorInfo{Vendor: vendor}
		s.infos[vendor] = vi
	}
	vi.Credentials = append(vi.Credentials, creds...)
	vi.Controls = append(vi.Controls, controls...)
	if config != nil {
		vi.Config = config
	}
}

// Vendors lists the mounted vendors in mount order.
func (s *Server) Vendors() []VendorInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []VendorInfo
	seen := map[string]bool{}
	for _, m := range s.mounts {
		if seen[m.vendor] {
			continue
		}
		seen[m.vendor] = true
		vi := *s.infos[m.vendor]
		vi.Prefixes = slices.Clone(vi.Prefixes)
		vi.Credentials = slices.Clone(vi.Credentials)
		vi.Controls = slices.Clone(vi.Controls)
		out = append(out, vi)
	}
	return out
}

// ConfigSnippet is the "vendors:" section of an exporter configuration
// pointing every vendor at a simulator reachable at base.
func (s *Server) ConfigSnippet(base string) string {
	base = strings.TrimSuffix(base, "/")
	var b strings.Builder
	b.WriteString("vendors:\n")
	for _, vi := range s.Vendors() {
		if vi.Config == nil {
			continue
		}
		b.WriteString(strings.TrimRight(vi.Config(base), "\n"))
		b.WriteString("\n")
	}
	return b.String()
}

func (s *Server) isVendor(vendor string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.mounts {
		if m.vendor == vendor {
			return true
		}
	}
	return false
}

func (s *Server) vendorNames() []string {
	var names []string
	for _, vi := range s.Vendors() {
		names = append(names, vi.Vendor)
	}
	return names
}

// countCall records one call to vendor.
func (s *Server) countCall(vendor, method, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[vendor]++
	key := method + " " + path
	if _, ok := s.byRoute[key]; !ok && len(s.byRoute) >= maxRoutes {
		key = otherRoute
	}
	s.byRoute[key]++
}

// Calls returns how many calls vendor received (all prefixes, all answers,
// faults included) since New or ResetCalls.
func (s *Server) Calls(vendor string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[vendor]
}

// CallCounts is the answer of GET /_sim/calls.
type CallCounts struct {
	// Vendors counts calls per vendor name.
	Vendors map[string]int64 `json:"vendors"`
	// Routes counts calls per "METHOD path", path as received (with the
	// vendor prefix, without the query), e.g. "GET /sendgrid/v3/scopes".
	Routes map[string]int64 `json:"routes"`
}

// CallCounts returns a copy of the call counters.
func (s *Server) CallCounts() CallCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := CallCounts{Vendors: map[string]int64{}, Routes: map[string]int64{}}
	for k, v := range s.calls {
		c.Vendors[k] = v
	}
	for k, v := range s.byRoute {
		c.Routes[k] = v
	}
	return c
}

// ResetCalls sets every call counter to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int64{}
	s.byRoute = map[string]int64{}
}

func (s *Server) serveGetCalls(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.CallCounts())
}

func (s *Server) serveDeleteCalls(w http.ResponseWriter, r *http.Request) {
	s.ResetCalls()
	w.WriteHeader(http.StatusNoContent)
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := getJSONBuffer()
	defer putJSONBuffer(buf)
	// Encode writes what json.Marshal returns, and a newline.
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		// Only our own fixed types are encoded here; this is a bug.
		http.Error(w, "vendorsim: encoding answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSONBytes(w, status, buf.Bytes())
}

// jsonBuffers recycles the buffers answers are encoded in: a new one per
// answer (tens of kilobytes for usage lists) was a large share of the
// simulator's allocations, hence of its garbage collection.
var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getJSONBuffer() *bytes.Buffer { return jsonBuffers.Get().(*bytes.Buffer) }

func putJSONBuffer(buf *bytes.Buffer) {
	if buf.Cap() > 1<<20 {
		return // rare and large: let it go
	}
	buf.Reset()
	jsonBuffers.Put(buf)
}

// appendJSON appends v as json.Marshal encodes it.
func appendJSON(buf *bytes.Buffer, v any) error {
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		return err
	}
	buf.Truncate(buf.Len() - 1) // Encode's newline
	return nil
}

// writeJSONBytes answers b, JSON ending in a newline, with status.
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// simError answers a control API error: {"error": "..."}.
func simError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

var indexTmpl = template.Must(template.New("index").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>vendorsim</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}code,pre{background:#f3f3f3;padding:0 .2em}td{padding:.2em .6em;vertical-align:top}</style>
</head><body>
<h1>vendorsim</h1>
<p>Deterministic fake vendor APIs for saas_exporter. Nothing here is a real account or a real secret.</p>
{{if .Exporter}}<p>The exporter these redirects go back to: <a href="{{.Exporter}}/">{{.Exporter}}/</a>. Open its UI at exactly this address (its <code>external_url</code>): opened at another host (127.0.0.1 instead of localhost), the browser comes back without its cookies and connecting fails.</p>{{end}}
<h2>Vendors</h2>
{{range .Vendors}}<h3>{{.Vendor}}</h3>
<p>Base URL{{if gt (len .Prefixes) 1}}s{{end}}: {{range .Prefixes}}<code>{{$.Base}}{{.}}</code> {{end}}</p>
{{if .Credentials}}<table>{{range .Credentials}}<tr><td>{{.Label}}</td><td><code>{{.Value}}</code></td></tr>{{end}}</table>{{end}}
{{if .Controls}}<ul>{{range .Controls}}<li><code>{{.}}</code></li>{{end}}</ul>{{end}}
{{end}}
<h2>Exporter configuration</h2>
<pre>{{.Config}}</pre>
<h2>Control API</h2>
<ul>
<li><code>PUT /_sim/faults/{vendor}</code> with JSON, e.g. <code>{"latency":"2s"}</code>, <code>{"status":503}</code>, <code>{"rate_limit":true,"retry_after":"30s"}</code>, <code>{"hang":true}</code>, <code>{"truncate":true}</code>, <code>{"html":true}</code>, <code>{"reset":true}</code></li>
<li><code>GET /_sim/faults</code>, <code>DELETE /_sim/faults</code> (all vendors), <code>DELETE /_sim/faults/{vendor}</code></li>
<li><code>GET /_sim/calls</code> (calls per vendor and per route), <code>DELETE /_sim/calls</code></li>
</ul>
<p>Example: <code>curl -X PUT {{.Base}}/_sim/faults/{{.FirstVendor}} -d '{"status":503}'</code></p>
</body></html>
`))

func (s *Server) serveIndex(w http.ResponseWriter, r *http.Request) {
	base := "http://" + r.Host
	vendors := s.Vendors()
	first := "vendor"
	if len(vendors) > 0 {
		first = vendors[0].Vendor
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	err := indexTmpl.Execute(w, map[string]any{
		"Base":        base,
		"Vendors":     vendors,
		"Config":      s.ConfigSnippet(base),
		"FirstVendor": first,
		"Exporter":    s.twilioExporterURL(),
	})
	if err != nil {
		s.log.Warn("rendering index page", "err", err)
	}
}
