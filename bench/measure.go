package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// scrapeStats is what one /metrics answer says.
type scrapeStats struct {
	Series     int               // sample lines
	Success    map[string][2]int // by vendor: saas_scrape_success 1, all
	ProcessRSS float64           // process_resident_memory_bytes
	// GoMem: the exporter's go_memstats_* gauges that explain its RSS
	// (heap in use and allocated, stacks, heap idle and released).
	GoMem    map[string]float64
	Requests map[string]float64 // saas_vendor_requests_total by vendor
	// Durations: saas_scrape_duration_seconds by vendor (sum, count, max).
	Durations map[string][3]float64
}

func (s scrapeStats) succeeded() (ok, total int) {
	for _, v := range s.Success {
		ok += v[0]
		total += v[1]
	}
	return ok, total
}

// parseScrape reads the Prometheus text format line by line; only the
// few series the benchmark needs are decoded.
func parseScrape(r io.Reader) (scrapeStats, error) {
	st := scrapeStats{Success: map[string][2]int{}, Requests: map[string]float64{}, Durations: map[string][3]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 256<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		st.Series++
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		series, value := line[:sp], line[sp+1:]
		switch {
		case strings.HasPrefix(series, "saas_scrape_success{"):
			v := labelValue(series, "vendor")
			c := st.Success[v]
			if value == "1" {
				c[0]++
			}
			c[1]++
			st.Success[v] = c
		case strings.HasPrefix(series, "saas_vendor_requests_total{"):
			f, _ := strconv.ParseFloat(value, 64)
			st.Requests[labelValue(series, "vendor")] += f
		case strings.HasPrefix(series, "saas_scrape_duration_seconds{"):
			f, err := strconv.ParseFloat(value, 64)
			if err != nil {
				continue
			}
			v := labelValue(series, "vendor")
			d := st.Durations[v]
			d[0] += f
			d[1]++
			d[2] = math.Max(d[2], f)
			st.Durations[v] = d
		case series == "process_resident_memory_bytes":
			st.ProcessRSS, _ = strconv.ParseFloat(value, 64)
		case strings.HasPrefix(series, "go_memstats_") && strings.HasSuffix(series, "_bytes"):
			if st.GoMem == nil {
				st.GoMem = map[string]float64{}
			}
			st.GoMem[strings.TrimSuffix(strings.TrimPrefix(series, "go_memstats_"), "_bytes")], _ = strconv.ParseFloat(value, 64)
		}
	}
	return st, sc.Err()
}

// labelValue finds name="value" in a series; label values here never
// hold quotes (vendor names).
func labelValue(series, name string) string {
	i := strings.Index(series, name+`="`)
	if i < 0 {
		return ""
	}
	rest := series[i+len(name)+2:]
	if j := strings.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return ""
}

// prometheusAccept is Prometheus 3's default Accept header: OpenMetrics
// first. The sample lines parseScrape reads are the same in both formats.
const prometheusAccept = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"

// scrape GETs /metrics as Prometheus does (with its Accept and timeout
// headers, and gzip) and returns how long the whole answer took, parsed.
func (b *bench) scrape(ctx context.Context) (time.Duration, scrapeStats, error) {
	d, _, st, err := b.scrapeTimed(ctx)
	return d, st, err
}

// scrapeTimed is scrape that also says when the answer's last byte
// arrived, still compressed as sent: the exporter's part of a scrape. The
// rest (decompressing, parsing) is the scraper's own work, which a
// Prometheus does as well.
func (b *bench) scrapeTimed(ctx context.Context) (took, lastByte time.Duration, _ scrapeStats, _ error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/metrics", nil)
	if err != nil {
		return 0, 0, scrapeStats{}, err
	}
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(b.o.HeaderTimeout, 'f', -1, 64))
	req.Header.Set("Accept", prometheusAccept)
	// Set by hand, so the transport hands over the bytes as sent.
	req.Header.Set("Accept-Encoding", "gzip")
	start := time.Now()
	resp, err := b.http.Do(req)
	if err != nil {
		return 0, 0, scrapeStats{}, fmt.Errorf("GET /metrics: %w", err)
	}
	defer resp.Body.Close()
	raw, rerr := io.ReadAll(resp.Body)
	lastByte = time.Since(start)
	var body io.Reader = bytes.NewReader(raw)
	if resp.Header.Get("Content-Encoding") == "gzip" && rerr == nil {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return time.Since(start), lastByte, scrapeStats{}, fmt.Errorf("reading /metrics: %w", err)
		}
		body = zr
	}
	st, perr := parseScrape(body)
	took = time.Since(start)
	if resp.StatusCode != http.StatusOK {
		return took, lastByte, st, fmt.Errorf("GET /metrics answered %d", resp.StatusCode)
	}
	if err := errors.Join(rerr, perr); err != nil {
		return took, lastByte, st, fmt.Errorf("reading /metrics: %w", err)
	}
	return took, lastByte, st, nil
}

// sizeResult is the cold and warm measurement of one number of connections.
type sizeResult struct {
	Connections int
	ByVendor    map[string]int
	ConnectTook time.Duration
	ConnectMem  memory // the exporter that served the connects, after them

	Cold      time.Duration
	ColdStats scrapeStats
	ColdCalls map[string]int64 // vendor calls the cold scrape made
	// CPU used during the cold scrape by the exporter and by the bench
	// process (the simulator answering, the driver); 0 if unknown.
	ColdCPU, ColdSimCPU time.Duration

	// Settle is how many scrapes after the cold one it took until every
	// connection had been collected (at most maxSettle), in SettleTook.
	Settle     int
	SettleTook time.Duration

	Warm      []time.Duration
	WarmBytes []time.Duration // the same scrapes to their last byte, before parsing
	WarmCalls int64           // vendor calls during warm scrapes (0 when results are reused)
	WarmSpan  time.Duration   // from the cold scrape's start to the last warm scrape's end
	WarmStats scrapeStats     // the last warm scrape
	Mem       memory          // after the warm scrapes
}

func (r sizeResult) coldOK() (ok, total int) { return r.ColdStats.succeeded() }

// percentile is the nearest-rank percentile of durations (p in 0..100).
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if p == 50 && len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	if k < 0 {
		k = 0
	}
	if k >= len(s) {
		k = len(s) - 1
	}
	return s[k]
}

func maxDuration(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func callsByVendor(b *bench) map[string]int64 {
	return b.sim.CallCounts().Vendors
}

func sumCalls(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// maxSettle bounds the scrapes made after the cold one to collect every
// connection before the warm ones.
const maxSettle = 10

// measureColdWarm runs phase a (one cold scrape) and phase b (warm
// scrapes within min_interval, then memory).
func (b *bench) measureColdWarm(ctx context.Context, r *sizeResult) error {
	b.sim.ResetCalls()
	expCPU, simCPU := b.cpu()
	stopProfile, err := b.profileCold(r.Connections)
	if err != nil {
		return err
	}
	coldStart := time.Now()
	d, st, err := b.scrape(ctx)
	stopProfile()
	if err != nil {
		return fmt.Errorf("cold scrape: %w", err)
	}
	r.Cold, r.ColdStats, r.ColdCalls = d, st, callsByVendor(b)
	if e, s := b.cpu(); e > 0 {
		r.ColdCPU, r.ColdSimCPU = e-expCPU, s-simCPU
	}
	ok, total := st.succeeded()
	b.logf("%d connections: cold scrape %s, %d/%d succeeded, %d vendor calls, CPU exporter %s simulator+driver %s", r.Connections, d.Round(time.Millisecond), ok, total, sumCalls(r.ColdCalls), r.ColdCPU, r.ColdSimCPU)

	// Connections the cold scrape did not finish are collected by the
	// next scrapes; warm scrapes are measured once every one has been
	// (else a "warm" scrape would be another cold one).
	settleStart := time.Now()
	for still := 0; ok < total && r.Settle < maxSettle && still < 2; {
		_, st, err := b.scrape(ctx)
		if err != nil {
			return fmt.Errorf("settling scrape %d: %w", r.Settle+1, err)
		}
		r.Settle++
		before := ok
		if ok, total = st.succeeded(); ok == before {
			still++ // failed ones are retried only after min_interval
		} else {
			still = 0
		}
	}
	if r.Settle > 0 {
		r.SettleTook = time.Since(settleStart)
		b.logf("%d connections: %d more scrapes in %s collected %d/%d", r.Connections, r.Settle, r.SettleTook.Round(time.Millisecond), ok, total)
		if ok < total {
			b.note("%d connections: %d of %d not collected successfully after %d more scrapes (failed ones are tried again after min_interval; see the exporter's log)", r.Connections, total-ok, total, r.Settle)
		}
	}

	b.sim.ResetCalls()
	for i := 0; i < b.o.Scrapes; i++ {
		// Warm means within min_interval of the cold scrape: stop before
		// a scrape could run past it (at least one scrape is made).
		if i > 0 && time.Since(coldStart)+2*r.Warm[i-1] >= b.o.MinInterval {
			b.note("%d connections: %d of %d warm scrapes made; more would have run past min_interval %s", r.Connections, i, b.o.Scrapes, b.o.MinInterval)
			break
		}
		d, last, st, err := b.scrapeTimed(ctx)
		if err != nil {
			return fmt.Errorf("warm scrape %d: %w", i+1, err)
		}
		r.Warm = append(r.Warm, d)
		r.WarmBytes = append(r.WarmBytes, last)
		r.WarmStats = st
	}
	r.WarmSpan = time.Since(coldStart)
	r.WarmCalls = sumCalls(callsByVendor(b))
	if b.o.Rest > 0 {
		// Memory at rest: the exporter has had time to give back what
		// the cold scrape's burst no longer needs.
		time.Sleep(b.o.Rest)
		if _, st, err := b.scrape(ctx); err == nil {
			r.WarmStats.ProcessRSS, r.WarmStats.GoMem = st.ProcessRSS, st.GoMem
		}
	}
	r.Mem = b.memoryNow(r.WarmStats.ProcessRSS)
	b.logf("%d connections: warm median %s p90 %s max %s (to the last byte: median %s), RSS %.1f MiB", r.Connections,
		percentile(r.Warm, 50).Round(time.Microsecond), percentile(r.Warm, 90).Round(time.Microsecond),
		maxDuration(r.Warm).Round(time.Microsecond), percentile(r.WarmBytes, 50).Round(time.Microsecond), mib(float64(r.Mem.rss())))
	if g := r.WarmStats.GoMem; g != nil {
		b.logf("%d connections: Go memory MiB: heap in use %.1f (allocated %.1f), stacks %.1f, heap idle %.1f (released %.1f), from the OS %.1f", r.Connections,
			mib(g["heap_inuse"]), mib(g["heap_alloc"]), mib(g["stack_inuse"]), mib(g["heap_idle"]), mib(g["heap_released"]), mib(g["sys"]))
	}
	if r.WarmSpan >= b.o.MinInterval {
		b.note("%d connections: the warm scrapes ended %s after the cold scrape began, past min_interval %s, so the last ones may have called vendors (%d calls)", r.Connections, r.WarmSpan.Round(time.Millisecond), b.o.MinInterval, r.WarmCalls)
	}
	return nil
}

// rss prefers the kernel's number; the exporter's own metric otherwise.
func (m memory) rss() int64 {
	if m.VmRSS > 0 {
		return m.VmRSS
	}
	return int64(m.ProcessRSS)
}

func mib(bytes float64) float64 { return bytes / (1 << 20) }

// sharedResult is phase c: vendor calls of one scraper and of two
// concurrent scrapers, each after min_interval has passed.
type sharedResult struct {
	MinInterval time.Duration
	ByVendor    map[string]int
	Single      map[string]int64
	Double      map[string]int64
	Single2     map[string]int64
	SingleTook  time.Duration
	DoubleTook  [2]time.Duration
	DoubleOK    [2][2]int // per scraper: succeeded, total
}

func (s sharedResult) equal() bool {
	if sumCalls(s.Single) == 0 {
		return false
	}
	for _, m := range []map[string]int64{s.Double, s.Single2} {
		if len(m) != len(s.Single) {
			return false
		}
		for k, v := range s.Single {
			if m[k] != v {
				return false
			}
		}
	}
	return true
}

// measureShared runs phase c. In managed mode the exporter is restarted
// with a short min_interval; with --exporter-url the phase waits out
// --min-interval between scrapes.
func (b *bench) measureShared(ctx context.Context, byVendor map[string]int) (sharedResult, error) {
	res := sharedResult{ByVendor: byVendor, MinInterval: b.o.MinInterval}
	if b.proc != nil {
		res.MinInterval = b.o.SharedInterval
		if err := b.startExporter(ctx, res.MinInterval); err != nil {
			return res, err
		}
	}
	wait := func(since time.Time) error {
		d := time.Until(since.Add(res.MinInterval + min(res.MinInterval/4, 500*time.Millisecond)))
		if d <= 0 {
			return nil
		}
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// In managed mode the fresh process has no result yet, and its first
	// collection also reads what is read only now and then (closed
	// periods, provider.Section.Every): one scrape first, so every round
	// measured below is a steady one. With an external exporter the warm
	// phase's results must age first.
	last := time.Now()
	if b.proc != nil {
		if _, _, err := b.scrape(ctx); err != nil {
			return res, err
		}
		last = time.Now()
	}
	if err := wait(last); err != nil {
		return res, err
	}
	// Each round waits min_interval after the previous one ended: a
	// connection collected late in a long scrape is fresh until then.
	single := func() (map[string]int64, time.Duration, error) {
		b.sim.ResetCalls()
		d, _, err := b.scrape(ctx)
		last = time.Now()
		return callsByVendor(b), d, err
	}
	var err error
	if res.Single, res.SingleTook, err = single(); err != nil {
		return res, err
	}
	if err := wait(last); err != nil {
		return res, err
	}
	b.sim.ResetCalls()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, st, err := b.scrape(ctx)
			res.DoubleTook[i], errs[i] = d, err
			res.DoubleOK[i][0], res.DoubleOK[i][1] = st.succeeded()
		}()
	}
	wg.Wait()
	last = time.Now()
	res.Double = callsByVendor(b)
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	if err := wait(last); err != nil {
		return res, err
	}
	if res.Single2, _, err = single(); err != nil {
		return res, err
	}
	b.logf("shared round trips: one scraper %d calls, two concurrent scrapers %d calls, one scraper again %d calls",
		sumCalls(res.Single), sumCalls(res.Double), sumCalls(res.Single2))
	return res, nil
}

// runSingle is the default run: connect, restart, cold, warm, shared.
func (b *bench) runSingle(ctx context.Context, rep *report) error {
	r := sizeResult{Connections: b.o.Connections}
	if err := b.connectSize(ctx, &r); err != nil {
		return err
	}
	if err := b.measureColdWarm(ctx, &r); err != nil {
		rep.Sizes = append(rep.Sizes, r)
		return err
	}
	rep.Sizes = append(rep.Sizes, r)
	rep.Plan = b.planSummary()
	if b.o.SkipShared {
		return nil
	}
	sh, err := b.measureShared(ctx, r.ByVendor)
	rep.Shared = &sh
	return err
}

// connectSize connects up to r.Connections and, in managed mode, restarts
// the exporter so the cold scrape and memory belong to a fresh process
// (as after a deploy) rather than one that just served the API.
func (b *bench) connectSize(ctx context.Context, r *sizeResult) error {
	b.logf("connecting %d connections (vendors %s, %d at once)", r.Connections, strings.Join(b.vendors, ","), b.o.ConnectParallel)
	cr, err := b.connectUpTo(ctx, r.Connections)
	r.ConnectTook, r.ByVendor = cr.Took, cr.ByVendor
	if err != nil {
		return err
	}
	b.logf("connected %d in %s: %s", cr.Total, cr.Took.Round(time.Millisecond), mixString(cr.ByVendor))
	r.ConnectMem = b.memoryNow(0)
	if b.proc != nil {
		return b.startExporter(ctx, b.o.MinInterval)
	}
	return nil
}

// runScale runs cold and warm for every size, adding connections between
// sizes, then draws the plot.
func (b *bench) runScale(ctx context.Context, rep *report) error {
	for _, n := range b.o.Scale {
		r := sizeResult{Connections: n}
		if err := b.connectSize(ctx, &r); err != nil {
			return err
		}
		err := b.measureColdWarm(ctx, &r)
		rep.Sizes = append(rep.Sizes, r)
		if err != nil {
			return err
		}
	}
	rep.Plan = b.planSummary()
	if b.o.Plot != "" {
		if err := writePlot(b.o.Plot, rep.Sizes, b.o.Timeout); err != nil {
			return fmt.Errorf("writing the plot: %w", err)
		}
		rep.PlotFile = b.o.Plot
		if err := writeResults(resultsPath(b.o.Plot), rep, b.notes); err != nil {
			return fmt.Errorf("writing the results: %w", err)
		}
		b.logf("wrote %s and %s", b.o.Plot, resultsPath(b.o.Plot))
	}
	return nil
}

// resultsPath is where a scale run keeps its numbers: next to the plot.
func resultsPath(plot string) string {
	return strings.TrimSuffix(plot, filepath.Ext(plot)) + ".json"
}

// savedRun is what --replot reads back.
type savedRun struct {
	Machine machine
	Command string
	Options *options
	Sizes   []sizeResult
	Plan    []string
	Notes   []string
}

func writeResults(path string, rep *report, notes []string) error {
	b, err := json.MarshalIndent(savedRun{Machine: rep.Machine, Command: rep.Command, Options: rep.Options,
		Sizes: rep.Sizes, Plan: rep.Plan, Notes: notes}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// replot redraws the plot and reprints the scale table from saved results.
func replot(o *options, stdout, stderr io.Writer) int {
	raw, err := os.ReadFile(o.Replot)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	var run savedRun
	if err := json.Unmarshal(raw, &run); err != nil {
		fmt.Fprintf(stderr, "bench: %s is not a results file of a --scale run: %v\n", o.Replot, err)
		return 1
	}
	if len(run.Sizes) == 0 || run.Options == nil || len(run.Options.Scale) == 0 {
		fmt.Fprintf(stderr, "bench: %s holds no --scale results\n", o.Replot)
		return 1
	}
	if err := writePlot(o.Plot, run.Sizes, run.Options.Timeout); err != nil {
		fmt.Fprintf(stderr, "bench: writing the plot: %v\n", err)
		return 1
	}
	rep := &report{Machine: run.Machine, Command: run.Command, Options: run.Options, Sizes: run.Sizes, Plan: run.Plan, Notes: run.Notes, PlotFile: o.Plot}
	rep.write(stdout)
	return 0
}

// planSummary says which simulator credentials back the connections.
func (b *bench) planSummary() []string {
	var out []string
	for _, v := range b.vendors {
		if n := b.plan.used[v]; n > 0 {
			out = append(out, fmt.Sprintf("%s: %d distinct accounts, n = 1..%d of the simulator's %s", v, n, n, syntheticKind[v]))
		}
	}
	return out
}
