package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/saas-exporter/saas_exporter/store"
)

// prometheusAccept is what Prometheus 3 sends by default: OpenMetrics first.
const prometheusAccept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"

// get serves one /metrics with the given Accept and gzip choice and
// returns the Content-Type and the decoded body. A gzip answer must be a
// single gzip member (Multistream off), as every client expects.
func get(t *testing.T, h http.Handler, accept string, gz bool) (string, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics answered %d", rec.Code)
	}
	body := rec.Body.Bytes()
	if gz {
		if rec.Header().Get("Content-Encoding") != "gzip" {
			t.Fatal("asked for gzip, got no Content-Encoding: gzip")
		}
		br := bytes.NewReader(body)
		zr, err := gzip.NewReader(br)
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatalf("the gzip answer does not decode: %v", err)
		}
		if br.Len() > 0 {
			t.Fatalf("the gzip answer has %d bytes after its first member", br.Len())
		}
	}
	return rec.Header().Get("Content-Type"), string(body)
}

func newExtra() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	// Nothing that changes between scrapes: the bodies are compared.
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "test_events_total", Help: `Events with "quotes".`}))
	return reg
}

// TestContentNegotiation: Prometheus' Accept gets OpenMetrics (counter
// families without _total, # EOF last), a plain client the text format;
// gzip or not, warm or cold, the bodies are the same.
func TestContentNegotiation(t *testing.T) {
	e, _, _, _ := setup(t, "prod", "staging")
	h := e.MetricsHandler(newExtra())
	for _, warm := range []bool{false, true} {
		ct, om := get(t, h, prometheusAccept, true)
		if !strings.HasPrefix(ct, "application/openmetrics-text; version=1.0.0") {
			t.Fatalf("Content-Type %q for Prometheus' Accept, want OpenMetrics 1.0.0", ct)
		}
		if !strings.HasSuffix(om, "\n# EOF\n") || strings.Count(om, "# EOF") != 1 {
			t.Errorf("OpenMetrics body does not end with one # EOF:\n…%s", om[max(0, len(om)-200):])
		}
		for _, want := range []string{
			"# TYPE saas_vendor_requests counter\n", `saas_vendor_requests_total{code="200",vendor="fake"} 2`,
			"# TYPE test_events counter\n", `# HELP test_events Events with \"quotes\".`,
			`saas_fake_used{connection="prod"} 42`, "# TYPE saas_connection_up gauge\n",
		} {
			if !strings.Contains(om, want) {
				t.Errorf("warm=%v: OpenMetrics body lacks %q", warm, want)
			}
		}
		if strings.Contains(om, "# TYPE saas_vendor_requests_total") {
			t.Error("OpenMetrics names a counter family with _total")
		}
		_, omPlain := get(t, h, prometheusAccept, false)
		if omPlain != om {
			t.Errorf("warm=%v: OpenMetrics gzip and plain bodies differ", warm)
		}

		ct, text := get(t, h, "", true)
		if !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Fatalf("Content-Type %q without Accept, want the text format", ct)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		if _, err := p.TextToMetricFamilies(strings.NewReader(text)); err != nil {
			t.Fatalf("text body does not parse: %v", err)
		}
		if strings.Contains(text, "# EOF") || !strings.Contains(text, "# TYPE saas_vendor_requests_total counter\n") {
			t.Error("the text format has OpenMetrics headers")
		}
		_, textPlain := get(t, h, "text/plain", false)
		if textPlain != text {
			t.Errorf("warm=%v: text gzip and plain bodies differ", warm)
		}
	}
}

// TestWarmBodyCacheFollowsChanges: a cached body is served only while
// nothing changed; a collection, a Forget or a changed list shows at once.
func TestWarmBodyCacheFollowsChanges(t *testing.T) {
	e, v, st, clk := setup(t, "prod")
	h := e.MetricsHandler(prometheus.NewRegistry())
	_, first := get(t, h, "", true)
	_, again := get(t, h, "", true)
	if again != first {
		t.Fatal("two warm scrapes differ")
	}
	// A new collection (min_interval passed) with another value.
	v.set("secret-prod", http.StatusForbidden, nil)
	clk.add(31 * time.Second)
	_, after := get(t, h, "", false)
	if !strings.Contains(after, `saas_scrape_success{connection="prod",vendor="fake"} 0`) {
		t.Errorf("a failed collection does not show:\n%s", grepText(after, "saas_scrape_success"))
	}
	// A connection added to the store shows once the list is read again.
	if err := st.Put(context.Background(), store.Connection{ID: "new", Vendor: "fake", Name: "added", Secret: map[string]string{"key": "k"},
		Status: store.Status{State: store.StateActive}}); err != nil {
		t.Fatal(err)
	}
	e.Forget("new")
	_, listed := get(t, h, "", true)
	if !strings.Contains(listed, `connection="added"`) {
		t.Error("a connection added to the store does not show after Forget")
	}
}

func grepText(body, word string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestBlockBuffer: what is written comes back whole and in order, in
// blocks that never exceed maxBlock, whatever the sizes of the writes.
func TestBlockBuffer(t *testing.T) {
	var want bytes.Buffer
	var b blockBuffer
	for i := range 2000 {
		p := bytes.Repeat([]byte{byte(i)}, (i*7919)%3001)
		want.Write(p)
		if n, err := b.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
		}
	}
	var got bytes.Buffer
	if n, err := b.WriteTo(&got); err != nil || n != int64(want.Len()) {
		t.Fatalf("WriteTo = %d, %v; want %d bytes", n, err, want.Len())
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatal("the bytes read back differ from the bytes written")
	}
	for i, blk := range b.blocks {
		if cap(blk) > maxBlock || (i < len(b.blocks)-1 && len(blk) != cap(blk)) {
			t.Fatalf("block %d: %d of %d bytes used (at most %d, full unless last)", i, len(blk), cap(blk), maxBlock)
		}
	}
}

// TestHealthLinesStreamed: the connections' health lines go straight to
// the writer as each family is written, and are not held beside the
// connections while the exposition is assembled.
func TestHealthLinesStreamed(t *testing.T) {
	e, _, _, _ := setup(t, "a", "b", "c")
	snaps, storeOK := e.collectAll(context.Background(), nil)
	x := e.exposition(snaps, storeOK, true)
	up := x.fams["saas_connection_up"]
	if up == nil || up.streamed != mUp {
		t.Fatalf("saas_connection_up is not written by the connections' pass: %+v", up)
	}
	for name, f := range x.fams {
		if f.streamed != nil && f.body.Len() > 0 {
			t.Errorf("%s holds %d bytes of lines before it is written", name, f.body.Len())
		}
	}
	var out bytes.Buffer
	if err := x.writeTo(&out, false); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		if line := `saas_connection_up{connection="` + n + `",vendor="fake"} 1`; !strings.Contains(out.String(), line+"\n") {
			t.Errorf("the exposition lacks %s:\n%s", line, out.String())
		}
	}
}

// TestAsyncWriter: everything written reaches the writer whole and in
// order once Close returns, whatever the sizes of the writes, and the
// writer's error is Close's.
func TestAsyncWriter(t *testing.T) {
	var want, got bytes.Buffer
	a := newAsyncWriter(&got)
	for i := range 300 {
		p := bytes.Repeat([]byte{byte(i)}, (i*7919)%(3*asyncChunk/2))
		want.Write(p)
		if n, err := a.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("%d bytes arrived, %d written, or not in order", got.Len(), want.Len())
	}
	failing := newAsyncWriter(errWriter{})
	_, _ = failing.Write(make([]byte, 3*asyncChunk))
	if err := failing.Close(); err == nil {
		t.Error("Close did not return the writer's error")
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
