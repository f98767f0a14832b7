package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	tempMu   sync.Mutex
	tempDirs []string
)

// mkdirTemp makes a directory removed when the test binary ends (for
// benchmark fleets that outlive one benchmark run).
func mkdirTemp() (string, error) {
	dir, err := os.MkdirTemp("", "saas-bench-fleet-")
	if err == nil {
		tempMu.Lock()
		tempDirs = append(tempDirs, dir)
		tempMu.Unlock()
	}
	return dir, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range tempDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	if got := percentile(ds, 50); got != 5 { // (5+6)/2 rounds down in integer nanoseconds
		t.Errorf("median = %d, want 5", got)
	}
	if got := percentile(ds, 90); got != 9 {
		t.Errorf("p90 = %d, want 9", got)
	}
	if got := percentile(ds[:3], 50); got != 4 {
		t.Errorf("median of 5,1,4 = %d, want 4", got)
	}
	if got := maxDuration(ds); got != 10 {
		t.Errorf("max = %d", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("median of nothing = %d", got)
	}
}

func TestParseScrape(t *testing.T) {
	text := `# HELP saas_scrape_success 1 if ...
# TYPE saas_scrape_success gauge
saas_scrape_success{connection="a",vendor="sendgrid"} 1
saas_scrape_success{connection="b",vendor="sendgrid"} 0
saas_scrape_success{connection="c",vendor="twilio"} 1
saas_vendor_requests_total{code="200",vendor="sendgrid"} 40
saas_vendor_requests_total{code="500",vendor="sendgrid"} 2
saas_scrape_duration_seconds{connection="a",vendor="sendgrid"} 0.25
saas_scrape_duration_seconds{connection="b",vendor="sendgrid"} 0.5
process_resident_memory_bytes 1.2345e+07

go_goroutines 12
`
	st, err := parseScrape(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if st.Series != 9 {
		t.Errorf("series = %d, want 9", st.Series)
	}
	if got := vendorDurations(st); got != "sendgrid 0.38 / 0.50 s" {
		t.Errorf("durations: %q", got)
	}
	if got := st.Success["sendgrid"]; got != [2]int{1, 2} {
		t.Errorf("sendgrid success = %v", got)
	}
	if ok, total := st.succeeded(); ok != 2 || total != 3 {
		t.Errorf("succeeded = %d/%d, want 2/3", ok, total)
	}
	if st.ProcessRSS != 12345000 {
		t.Errorf("rss = %g", st.ProcessRSS)
	}
	if st.Requests["sendgrid"] != 42 {
		t.Errorf("requests = %v", st.Requests)
	}
}

// The plan hands out distinct synthetic accounts round-robin, so every
// connection is its own account at the exporter.
func TestPlan(t *testing.T) {
	p, without := newPlan([]string{"twilio", "nosuchvendor", "sendgrid", "segment"})
	if len(without) != 1 || without[0] != "nosuchvendor" {
		t.Errorf("vendors without synthetic accounts = %v, want [nosuchvendor]", without)
	}
	counts := map[string]int{}
	seen := map[string]bool{}
	for range 10 {
		c, ok := p.next()
		if !ok {
			t.Fatal("plan ran out")
		}
		counts[c.vendor]++
		id := c.twilio + c.fields["api_key"] + c.fields["token"]
		if id == "" || seen[id] {
			t.Errorf("%s credential %q empty or handed out twice: the exporter would update, not add", c.vendor, id)
		}
		seen[id] = true
	}
	if counts["twilio"] != 4 || counts["sendgrid"] != 3 || counts["segment"] != 3 || p.total != 10 {
		t.Errorf("mix = %v (total %d), want twilio 4, sendgrid 3, segment 3", counts, p.total)
	}
	if p.used["twilio"] != 4 {
		t.Errorf("twilio accounts used = %d", p.used["twilio"])
	}
	if c, _ := syntheticCredential("segment", 2); c.fields["region"] != "us" {
		t.Errorf("segment credential %+v: synthetic workspaces are in region us", c)
	}

	none, _ := newPlan([]string{"nosuchvendor"})
	if _, ok := none.next(); ok {
		t.Error("a plan without vendors handed out a credential")
	}
}

// fakeSizes are made-up results for the report and plot code.
func fakeSizes() []sizeResult {
	var out []sizeResult
	for i, n := range []int{10, 100, 1000, 5000} {
		r := sizeResult{
			Connections: n,
			ByVendor:    map[string]int{"sendgrid": n - 3, "twilio": 3},
			Cold:        time.Duration(i+1) * 900 * time.Millisecond,
			ColdStats:   scrapeStats{Series: 51 * n, Success: map[string][2]int{"sendgrid": {n - 3, n - 3}, "twilio": {3, 3}}},
			Mem:         memory{ProcessRSS: float64(20+i*30) * (1 << 20), VmRSS: int64(20+i*30) << 20, VmHWM: int64(25+i*40) << 20},
		}
		for j := range 10 {
			r.Warm = append(r.Warm, time.Duration(n/10+j)*time.Millisecond)
			r.WarmBytes = append(r.WarmBytes, time.Duration(n/20+j)*time.Millisecond)
		}
		r.WarmStats = r.ColdStats
		out = append(out, r)
	}
	return out
}

func TestReportScale(t *testing.T) {
	o, err := parseFlags([]string{"--scale", "10,100,1000,5000"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	rep := &report{Machine: machine{CPUs: 2, Model: "Test CPU", GoVersion: "go1.x", OS: "linux/amd64"}, Command: "go run ./bench --scale 10,100,1000,5000", Options: o, Sizes: fakeSizes(), PlotFile: "bench/scaling.png"}
	var buf bytes.Buffer
	rep.write(&buf)
	out := buf.String()
	for _, want := range []string{
		"2 CPUs (nproc), Test CPU",
		"`go run ./bench --scale 10,100,1000,5000`",
		"| connections | mix | cold scrape s | succeeded | warm median ms | warm p90 ms |",
		"| 1000 | sendgrid 997, twilio 3 | 2.70 | 1000/1000 | 104.5 | 108.0 | 109.0 | 54.5 | 80.0 | 105.0 | 51000 |",
		"Plot: `bench/scaling.png`",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestReportTargets(t *testing.T) {
	o, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	s := fakeSizes()[2] // 1000 connections, warm median 104.5 ms, RSS 80 MiB
	sh := &sharedResult{MinInterval: 2 * time.Second, ByVendor: s.ByVendor,
		Single: map[string]int64{"sendgrid": 3990, "twilio": 15}, Double: map[string]int64{"sendgrid": 3990, "twilio": 15}, Single2: map[string]int64{"sendgrid": 3990, "twilio": 15}}
	rep := &report{Options: o, Sizes: []sizeResult{s}, Shared: sh}
	var buf bytes.Buffer
	rep.write(&buf)
	out := buf.String()
	for _, want := range []string{
		"| 1000 connections cold within 8s, every one succeeding | 2.70 s, 1000/1000 succeeded (mix: sendgrid 997, twilio 3) | **met** |",
		"| warm median < 50 ms | 104.5 ms | **missed** |",
		"| RSS < 100 MiB | 80.0 MiB (peak 105.0 MiB) | **met** |",
		"| 4005 vs 4005 (again: 4005) | **met** |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	sh.Double["sendgrid"]++
	buf.Reset()
	rep.write(&buf)
	if !strings.Contains(buf.String(), "| 4006 vs 4005 (again: 4005) | **missed** |") {
		t.Errorf("one extra vendor call must miss the shared target:\n%s", buf.String())
	}
}

func TestPlot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "scaling.png")
	if err := writePlot(path, fakeSizes(), 8*time.Second); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != plotW || b.Dy() != plotH {
		t.Errorf("size %v", b)
	}
	// Every series and the target lines are drawn in their own colour.
	found := map[string]bool{}
	want := map[string][3]uint8{"cold": {colCold.R, colCold.G, colCold.B}, "warm": {colWarm.R, colWarm.G, colWarm.B},
		"rss": {colRSS.R, colRSS.G, colRSS.B}, "limit": {colLimit.R, colLimit.G, colLimit.B}}
	for y := 0; y < plotH; y++ {
		for x := 0; x < plotW; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			for k, c := range want {
				if uint8(r>>8) == c[0] && uint8(g>>8) == c[1] && uint8(b>>8) == c[2] {
					found[k] = true
				}
			}
		}
	}
	for k := range want {
		if !found[k] {
			t.Errorf("no %s pixels in the plot", k)
		}
	}
	// The x axis is logarithmic: 10, 100 and 1000 are evenly spaced.
	p := panel{xmin: 1, xmax: 4}
	p.r.Max.X = 300
	if d1, d2 := p.px(100)-p.px(10), p.px(1000)-p.px(100); d1 != d2 || d1 != 100 {
		t.Errorf("decades are %d and %d pixels apart, want 100", d1, d2)
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--scale", "100,10"},
		{"--scale", "ten"},
		{"--connections", "0"},
		{"--vendors", ""},
		{"extra"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	o, err := parseFlags([]string{"--vendors", "sendgrid, twilio", "--concurrency", "128"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Vendors, ",") != "sendgrid,twilio" || o.Concurrency != 128 {
		t.Errorf("parsed %+v", o)
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// exporterBinary builds cmd/saas_exporter once for the tests (the Go
// build cache makes this a link step).
func exporterBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := mkdirTemp()
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "saas_exporter")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/saas_exporter")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			// In the error, not t.Logf: only the first caller runs this.
			buildErr = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building the exporter: %v", buildErr)
	}
	return binPath
}

// A tiny run end to end: 5 connections, no latency, every phase.
func TestTinyRun(t *testing.T) {
	bin := exporterBinary(t)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--connections", "5", "--latency", "0", "--scrapes", "3",
		"--shared-min-interval", "200ms", "--exporter-bin", bin}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	s := out.String()
	for _, want := range []string{
		"### 5 connections (sendgrid 2, twilio 2, segment 1)",
		"- Credentials: sendgrid: 2 distinct accounts, n = 1..2 of the simulator's synthetic API keys",
		"- Credentials: twilio: 2 distinct accounts, n = 1..2 of the simulator's synthetic accounts",
		"- Credentials: segment: 1 distinct accounts, n = 1..1 of the simulator's synthetic workspaces",
		"| a. cold | saas_scrape_success 1 | 5 / 5 (",
		"| b. warm | vendor calls during the warm scrapes | 0 |",
		"| 5 connections cold within 8s, every one succeeding |",
		"| two concurrent scrapers make exactly the calls of one per min_interval |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s\nstderr:\n%s", want, s, errOut.String())
		}
	}
	// Sharing one round trip is not a timing matter: both scrapers start
	// after min_interval, and the engine must not call a vendor twice.
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "| two concurrent scrapers make") && !strings.HasSuffix(line, "**met** |") {
			t.Errorf("two scrapers made more vendor calls than one: %s", line)
		}
	}
}

// The scale mode adds connections between sizes and writes the plot.
func TestTinyScale(t *testing.T) {
	bin := exporterBinary(t)
	plot := filepath.Join(t.TempDir(), "scaling.png")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--scale", "2,4", "--latency", "0", "--scrapes", "2",
		"--exporter-bin", bin, "--vendors", "sendgrid", "--plot", plot}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	s := out.String()
	for _, want := range []string{"| 2 | sendgrid 2 |", "| 4 | sendgrid 4 |", " | 2/2 | ", " | 4/4 | "} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if fi, err := os.Stat(plot); err != nil || fi.Size() == 0 {
		t.Errorf("plot not written: %v", err)
	}

	// --replot redraws from the saved results and prints the same table.
	plot2 := filepath.Join(t.TempDir(), "again.png")
	var again bytes.Buffer
	if code := run(context.Background(), []string{"--replot", resultsPath(plot), "--plot", plot2}, &again, &errOut); code != 0 {
		t.Fatalf("--replot: exit %d: %s", code, errOut.String())
	}
	if strings.ReplaceAll(again.String(), plot2, plot) != s {
		t.Errorf("--replot printed\n%s\nwant\n%s", again.String(), s)
	}
	if fi, err := os.Stat(plot2); err != nil || fi.Size() == 0 {
		t.Errorf("--replot wrote no plot: %v", err)
	}
}
