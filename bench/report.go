package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// machine describes where the benchmark ran.
type machine struct {
	CPUs      int
	Model     string
	GoVersion string
	OS        string
}

func machineInfo() machine {
	m := machine{CPUs: runtime.NumCPU(), Model: "unknown", GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	return m
}

// report is everything one run prints.
type report struct {
	Machine  machine
	Command  string
	Options  *options
	Sizes    []sizeResult
	Shared   *sharedResult
	Plan     []string
	PlotFile string
	Notes    []string
}

func ms(d time.Duration) string  { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
func sec(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

func yesNo(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**missed**"
}

func (r *report) write(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "## saas_exporter benchmark\n\n")
	fmt.Fprintf(w, "- Machine: %d CPUs (nproc), %s, %s, %s\n", r.Machine.CPUs, r.Machine.Model, r.Machine.OS, r.Machine.GoVersion)
	fmt.Fprintf(w, "- Command: `%s`\n", r.Command)
	conc := "exporter default"
	if o.Concurrency > 0 {
		conc = fmt.Sprint(o.Concurrency)
	}
	fmt.Fprintf(w, "- Simulator: +%s on every vendor call, page size %d. Exporter: scrape.timeout %s, min_interval %s, concurrency %s; scrapes send X-Prometheus-Scrape-Timeout-Seconds: %g and accept gzip\n",
		o.Latency, o.PageSize, o.Timeout, o.MinInterval, conc, o.HeaderTimeout)
	if len(o.ExporterEnv) > 0 {
		fmt.Fprintf(w, "- Exporter environment: %s\n", strings.Join(o.ExporterEnv, " "))
	}
	for _, p := range r.Plan {
		fmt.Fprintf(w, "- Credentials: %s\n", p)
	}
	fmt.Fprintln(w)
	if len(r.Options.Scale) > 0 {
		r.writeScale(w)
	} else if len(r.Sizes) > 0 {
		r.writeSingle(w, r.Sizes[0])
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(w, "Notes:\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
		fmt.Fprintln(w)
	}
}

func vendorSuccess(st scrapeStats) string {
	keys := make([]string, 0, len(st.Success))
	for k := range st.Success {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d/%d", k, st.Success[k][0], st.Success[k][1]))
	}
	return strings.Join(parts, ", ")
}

func vendorDurations(st scrapeStats) string {
	keys := make([]string, 0, len(st.Durations))
	for k := range st.Durations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		d := st.Durations[k]
		if d[1] > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f / %.2f s", k, d[0]/d[1], d[2]))
		}
	}
	return strings.Join(parts, ", ")
}

func (r *report) writeSingle(w io.Writer, s sizeResult) {
	o := r.Options
	ok, total := s.coldOK()
	fmt.Fprintf(w, "### %d connections (%s)\n\n", s.Connections, mixString(s.ByVendor))
	fmt.Fprintf(w, "| phase | measure | value |\n| --- | --- | --- |\n")
	fmt.Fprintf(w, "| connect | %d connections through the JSON API, %d at once | %s s |\n", s.Connections, o.ConnectParallel, sec(s.ConnectTook))
	if s.ConnectMem.VmRSS > 0 {
		fmt.Fprintf(w, "| connect | RSS of the exporter that served the API (VmRSS / VmHWM) | %.1f / %.1f MiB |\n", mib(float64(s.ConnectMem.VmRSS)), mib(float64(s.ConnectMem.VmHWM)))
	}
	fmt.Fprintf(w, "| a. cold | one scrape, fresh exporter process | %s s |\n", sec(s.Cold))
	fmt.Fprintf(w, "| a. cold | saas_scrape_success 1 | %d / %d (%s) |\n", ok, total, vendorSuccess(s.ColdStats))
	fmt.Fprintf(w, "| a. cold | one connection's collection (saas_scrape_duration_seconds): mean / max by vendor | %s |\n", vendorDurations(s.ColdStats))
	fmt.Fprintf(w, "| a. cold | vendor calls | %d (%.2f per connection) |\n", sumCalls(s.ColdCalls), float64(sumCalls(s.ColdCalls))/float64(max(total, 1)))
	fmt.Fprintf(w, "| a. cold | series in the answer | %d |\n", s.ColdStats.Series)
	if s.Settle > 0 {
		fmt.Fprintf(w, "| a. cold | more scrapes until every connection was collected | %d in %s s |\n", s.Settle, sec(s.SettleTook))
	}
	if s.ColdCPU > 0 {
		fmt.Fprintf(w, "| a. cold | CPU during the cold scrape: exporter / simulator and driver | %s / %s s |\n", sec(s.ColdCPU), sec(s.ColdSimCPU))
	}
	fmt.Fprintf(w, "| b. warm | %d sequential scrapes: median / p90 / max | %s / %s / %s ms |\n", len(s.Warm), ms(percentile(s.Warm, 50)), ms(percentile(s.Warm, 90)), ms(maxDuration(s.Warm)))
	fmt.Fprintf(w, "| b. warm | the same, to the last byte as sent (gzip; before this client decompresses and parses): median / p90 | %s / %s ms |\n", ms(percentile(s.WarmBytes, 50)), ms(percentile(s.WarmBytes, 90)))
	fmt.Fprintf(w, "| b. warm | vendor calls during the warm scrapes | %d |\n", s.WarmCalls)
	fmt.Fprintf(w, "| b. warm | series in the answer | %d |\n", s.WarmStats.Series)
	fmt.Fprintf(w, "| b. memory | process_resident_memory_bytes | %.1f MiB |\n", mib(s.Mem.ProcessRSS))
	if s.Mem.VmRSS > 0 {
		fmt.Fprintf(w, "| b. memory | /proc VmRSS / VmHWM (peak) | %.1f / %.1f MiB |\n", mib(float64(s.Mem.VmRSS)), mib(float64(s.Mem.VmHWM)))
	}
	sh := r.Shared
	if sh != nil {
		n := 0
		for _, k := range sh.ByVendor {
			n += k
		}
		per := func(m map[string]int64) string {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var parts []string
			for _, k := range keys {
				parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
			}
			return fmt.Sprintf("%d calls, %.2f per connection (%s)", sumCalls(m), float64(sumCalls(m))/float64(max(n, 1)), strings.Join(parts, ", "))
		}
		fmt.Fprintf(w, "| c. shared | min_interval %s, one scraper | %s |\n", sh.MinInterval, per(sh.Single))
		fmt.Fprintf(w, "| c. shared | two concurrent scrapers | %s |\n", per(sh.Double))
		fmt.Fprintf(w, "| c. shared | two concurrent scrapers: durations, succeeded | %s s (%d/%d), %s s (%d/%d) |\n",
			sec(sh.DoubleTook[0]), sh.DoubleOK[0][0], sh.DoubleOK[0][1], sec(sh.DoubleTook[1]), sh.DoubleOK[1][0], sh.DoubleOK[1][1])
		fmt.Fprintf(w, "| c. shared | one scraper again | %s |\n", per(sh.Single2))
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "| target | measured | |\n| --- | --- | --- |\n")
	cold := ok == total && total == s.Connections && s.Cold < o.Timeout
	fmt.Fprintf(w, "| %d connections cold within %s, every one succeeding | %s s, %d/%d succeeded (mix: %s) | %s |\n",
		s.Connections, o.Timeout, sec(s.Cold), ok, total, mixString(s.ByVendor), yesNo(cold))
	med := percentile(s.Warm, 50)
	fmt.Fprintf(w, "| warm median < 50 ms | %s ms | %s |\n", ms(med), yesNo(med < 50*time.Millisecond))
	rss := s.Mem.rss()
	fmt.Fprintf(w, "| RSS < 100 MiB | %.1f MiB (peak %.1f MiB) | %s |\n", mib(float64(rss)), mib(float64(s.Mem.VmHWM)), yesNo(rss > 0 && rss < 100<<20))
	if sh != nil {
		fmt.Fprintf(w, "| two concurrent scrapers make exactly the calls of one per min_interval | %d vs %d (again: %d) | %s |\n",
			sumCalls(sh.Double), sumCalls(sh.Single), sumCalls(sh.Single2), yesNo(sh.equal()))
	}
	fmt.Fprintln(w)
}

func (r *report) writeScale(w io.Writer) {
	fmt.Fprintf(w, "| connections | mix | cold scrape s | succeeded | warm median ms | warm p90 ms | warm max ms | warm to the last byte sent, median ms | RSS MiB | peak RSS MiB | series |\n")
	fmt.Fprintf(w, "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range r.Sizes {
		ok, total := s.coldOK()
		fmt.Fprintf(w, "| %d | %s | %s | %d/%d | %s | %s | %s | %s | %.1f | %.1f | %d |\n",
			s.Connections, mixString(s.ByVendor), sec(s.Cold), ok, total,
			ms(percentile(s.Warm, 50)), ms(percentile(s.Warm, 90)), ms(maxDuration(s.Warm)), ms(percentile(s.WarmBytes, 50)),
			mib(float64(s.Mem.rss())), mib(float64(s.Mem.VmHWM)), s.WarmStats.Series)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| connections | connect s (added since the previous size) | vendor calls, cold (per connection) | CPU s during the cold scrape: exporter / simulator and driver | more scrapes until all were collected (s) | vendor calls, warm |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range r.Sizes {
		fmt.Fprintf(w, "| %d | %s | %d (%.1f) | %s / %s | %d (%s) | %d |\n", s.Connections, sec(s.ConnectTook), sumCalls(s.ColdCalls),
			float64(sumCalls(s.ColdCalls))/float64(max(s.Connections, 1)), sec(s.ColdCPU), sec(s.ColdSimCPU), s.Settle, sec(s.SettleTook), s.WarmCalls)
	}
	fmt.Fprintln(w)
	if r.PlotFile != "" {
		fmt.Fprintf(w, "Plot: `%s`\n\n", r.PlotFile)
	}
}
