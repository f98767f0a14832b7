package collector

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
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
	return e.exposition(snaps, storeOK, counters).writeTo(w, false)
}

// exposition gathers the snapshots' samples and, with counters, the
// exporter-wide series.
func (e *Engine) exposition(snaps []*snapshot, storeOK, counters bool) *exposition {
	x := newExposition()
	x.learn(func(x *exposition) {
		for _, s := range snaps {
			s.write(x)
			e.writeBudget(x, s.conn)
		}
	})
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
	return x
}

// bodyCache keeps the last gzipped /metrics body of the connections
// (without the process metrics), in each format. It is valid while the
// engine's generation is unchanged: nothing was collected, recorded,
// forgotten or listed differently, and no vendor call was made. A warm
// scrape then sends bytes it already has instead of writing and
// compressing every series again. Only the compressed form is kept (a
// tenth of the text); an uncompressed answer is written afresh.
type bodyCache struct {
	mu    sync.Mutex
	gen   uint64
	parts [2]*cachedPart // text, OpenMetrics
}

// cachedPart is one format's body as DEFLATE blocks ended by a sync flush
// (so more blocks can follow), with the CRC-32 and length of the text.
type cachedPart struct {
	deflate blockBuffer
	crc     uint32
	size    int
}

// blockBuffer keeps what is written in blocks of blockSize bytes. A
// bytes.Buffer doubles as it grows: the compressed body of 5,000
// connections (about 12 MB) held up to twice that, and copied it each
// time, at the end of a cold scrape when the heap is at its largest.
type blockBuffer struct {
	blocks [][]byte
}

// Blocks double from minBlock to maxBlock: a small body wastes little,
// and a large one is made of blocks above 32 KiB, each a span of its own,
// given back whole when the part is replaced.
const (
	minBlock = 4 << 10
	maxBlock = 256 << 10
)

func (b *blockBuffer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := len(b.blocks) - 1
		if k < 0 || len(b.blocks[k]) == cap(b.blocks[k]) {
			size := minBlock
			if k >= 0 {
				size = min(2*cap(b.blocks[k]), maxBlock)
			}
			b.blocks = append(b.blocks, make([]byte, 0, size))
			k++
		}
		c := min(len(p), cap(b.blocks[k])-len(b.blocks[k]))
		b.blocks[k] = append(b.blocks[k], p[:c]...)
		p = p[c:]
	}
	return n, nil
}

// WriteTo writes the blocks in order.
func (b *blockBuffer) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, blk := range b.blocks {
		m, err := w.Write(blk)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// crcWriter counts and checksums what goes through it.
type crcWriter struct {
	w    io.Writer
	crc  uint32
	size int
}

func (c *crcWriter) Write(p []byte) (int, error) {
	c.crc = crc32.Update(c.crc, crc32.IEEETable, p)
	c.size += len(p)
	return c.w.Write(p)
}

// asyncWriter hands what is written to another goroutine in chunks, so
// writing the lines and compressing them run at once: at 5,000
// connections each takes about a quarter of a second of CPU, after the
// last collection and before the answer.
type asyncWriter struct {
	buf  []byte
	full chan []byte // chunks to write, in order
	free chan []byte // chunks written, to fill again
	done chan struct{}
	err  error // of w; read after done
}

const (
	asyncChunk  = 64 << 10
	asyncChunks = 3
)

func newAsyncWriter(w io.Writer) *asyncWriter {
	a := &asyncWriter{full: make(chan []byte, asyncChunks), free: make(chan []byte, asyncChunks+1), done: make(chan struct{})}
	for range asyncChunks {
		a.free <- make([]byte, 0, asyncChunk)
	}
	a.buf = make([]byte, 0, asyncChunk)
	go func() {
		defer close(a.done)
		for b := range a.full {
			if a.err == nil {
				_, a.err = w.Write(b)
			}
			a.free <- b[:0]
		}
	}()
	return a
}

// Write never fails: an error of the underlying writer is Close's.
func (a *asyncWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(a.buf) == cap(a.buf) {
			a.full <- a.buf
			a.buf = <-a.free
		}
		c := copy(a.buf[len(a.buf):cap(a.buf)], p)
		a.buf, p = a.buf[:len(a.buf)+c], p[c:]
	}
	return n, nil
}

// Close writes what is left and waits until everything is written.
func (a *asyncWriter) Close() error {
	if len(a.buf) > 0 {
		a.full <- a.buf
	}
	close(a.full)
	<-a.done
	return a.err
}

// connectionsPart is /metrics' compressed body of the connections in one
// format, from the cache when nothing changed since it was made.
func (e *Engine) connectionsPart(ctx context.Context, om bool) *cachedPart {
	f := 0
	if om {
		f = 1
	}
	g0 := e.gen.Load()
	snaps, storeOK := e.collectAll(ctx, nil)
	e.cache.mu.Lock()
	if e.cache.gen == g0 && e.gen.Load() == g0 && e.cache.parts[f] != nil {
		p := e.cache.parts[f]
		e.cache.mu.Unlock()
		return p
	}
	e.cache.mu.Unlock()
	p := &cachedPart{}
	fw := flateWriters.Get().(*flate.Writer)
	fw.Reset(&p.deflate)
	cw := &crcWriter{w: fw}
	x := e.exposition(snaps, storeOK, true)
	func() {
		aw := newAsyncWriter(cw)
		defer aw.Close()      // its goroutine ends even if writing panics
		_ = x.writeTo(aw, om) // a blockBuffer does not fail
	}()
	_ = fw.Flush() // byte-aligned, not final: the process metrics follow
	flateWriters.Put(fw)
	p.crc, p.size = cw.crc, cw.size
	e.cache.mu.Lock()
	if e.gen.Load() == g0 { // nothing changed while it was written
		if e.cache.gen != g0 {
			e.cache.gen, e.cache.parts = g0, [2]*cachedPart{}
		}
		e.cache.parts[f] = p
	}
	e.cache.mu.Unlock()
	return p
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
// vendor request counters, and what extra gathers (process, build info),
// in the text format or OpenMetrics as the client asks.
func (e *Engine) MetricsHandler(extra prometheus.Gatherer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), e.Deadline(r))
		defer cancel()
		om := wantsOpenMetrics(r)
		var part *cachedPart
		if acceptsGzip(r) {
			part = e.connectionsPart(ctx, om)
		}
		// The process metrics change on every scrape: written afresh.
		var tail bytes.Buffer
		mfs, err := extra.Gather()
		if err != nil {
			e.o.Logger.Warn("gathering process metrics", "err", err)
		}
		for _, mf := range mfs {
			if om {
				_, err = expfmt.MetricFamilyToOpenMetrics(&tail, mf)
			} else {
				_, err = expfmt.MetricFamilyToText(&tail, mf)
			}
			if err != nil {
				e.o.Logger.Warn("encoding process metrics", "metric", mf.GetName(), "err", err)
			}
		}
		if om {
			tail.WriteString("# EOF\n")
		}
		setContentType(w, om)
		if part == nil {
			bw := bufio.NewWriterSize(w, 64<<10)
			snaps, storeOK := e.collectAll(ctx, nil)
			if err := e.exposition(snaps, storeOK, true).writeTo(bw, om); err == nil {
				_, _ = bw.Write(tail.Bytes())
				_ = bw.Flush()
			}
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		if err := writeGzip(w, part, tail.Bytes()); err != nil {
			e.o.Logger.Debug("writing metrics", "err", err)
		}
	})
}

// gzipHeader is a gzip member header: no name, no time, unknown OS.
var gzipHeader = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// writeGzip writes one gzip member holding part then tail: part's cached
// DEFLATE blocks, tail compressed now as the final block(s), and the
// CRC-32 and length of both. The blocks of tail refer to nothing before
// them, so the stream decodes as one.
func writeGzip(w io.Writer, part *cachedPart, tail []byte) error {
	crc := part.crc
	var b bytes.Buffer
	b.Grow(len(tail)/4 + 64)
	fw := flateWriters.Get().(*flate.Writer)
	fw.Reset(&b)
	_, _ = fw.Write(tail)
	_ = fw.Close()
	flateWriters.Put(fw)
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], crc32.Update(crc, crc32.IEEETable, tail))
	binary.LittleEndian.PutUint32(trailer[4:], uint32(part.size+len(tail)))
	if _, err := w.Write(gzipHeader); err != nil {
		return err
	}
	if _, err := part.deflate.WriteTo(w); err != nil {
		return err
	}
	for _, p := range [][]byte{b.Bytes(), trailer[:]} {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

var flateWriters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(io.Discard, flate.BestSpeed)
	return w
}}

// wantsOpenMetrics: the client prefers OpenMetrics to the text format
// (Prometheus asks for it first). Protobuf is not served: a client asking
// only for it gets the text format, which Prometheus also reads.
func wantsOpenMetrics(r *http.Request) bool {
	return expfmt.NegotiateIncludingOpenMetrics(r.Header).FormatType() == expfmt.TypeOpenMetrics
}

func setContentType(w http.ResponseWriter, om bool) {
	if om {
		w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeOpenMetrics)))
		return
	}
	w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
}

func acceptsGzip(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept-Encoding"), "gzip")
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
		om := wantsOpenMetrics(r)
		e.serve(w, r, om, func(out io.Writer) error {
			snaps, storeOK := e.collectAll(ctx, keep)
			if err := e.exposition(snaps, storeOK, false).writeTo(out, om); err != nil {
				return err
			}
			if om {
				_, err := io.WriteString(out, "# EOF\n")
				return err
			}
			return nil
		})
	})
}

var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return w
}}

// serve answers in the text format or OpenMetrics, gzipped (fastest
// level) when the client accepts it. A write error means the client went
// away.
func (e *Engine) serve(w http.ResponseWriter, r *http.Request, om bool, write func(io.Writer) error) {
	setContentType(w, om)
	var out io.Writer = w
	if acceptsGzip(r) {
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
