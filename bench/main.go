// Command bench measures saas_exporter at scale (issue #7): it starts the
// vendor simulator in-process with added latency on every vendor call,
// builds and starts the exporter as a separate process (so its memory is
// its own), connects N connections through the JSON API, and measures a
// cold scrape, warm scrapes, memory, and whether two concurrent scrapers
// share vendor round trips. It prints Markdown.
//
//	go run ./bench --connections 1000 --latency 100ms
//	go run ./bench --scale 10,100,1000,5000 --latency 100ms
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

// options are the command-line flags.
type options struct {
	Connections     int
	Latency         time.Duration
	Vendors         []string
	PageSize        int
	Scrapes         int
	ExporterURL     string
	ExporterBin     string
	AdminUser       string
	AdminPassword   string
	SimListen       string
	Concurrency     int
	ConnectParallel int
	Scale           []int
	SharedInterval  time.Duration
	MinInterval     time.Duration
	Timeout         time.Duration
	HeaderTimeout   float64
	Plot            string
	Replot          string
	SkipShared      bool
	KeepDir         bool
	ProfileCold     string
	Rest            time.Duration
	ExporterEnv     []string // KEY=VALUE added to the exporter's environment
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var vendors, scale string
	fs.IntVar(&o.Connections, "connections", 1000, "connections to create and scrape")
	fs.DurationVar(&o.Latency, "latency", 100*time.Millisecond, "added to every vendor call by the simulator")
	fs.StringVar(&vendors, "vendors", "sendgrid,twilio,segment", "vendors to connect, round-robin (those the exporter or simulator lack are left out, with a note)")
	fs.IntVar(&o.PageSize, "page-size", 100, "most items per page the simulator returns")
	fs.IntVar(&o.Scrapes, "scrapes", 50, "sequential warm scrapes within min_interval")
	fs.StringVar(&o.ExporterURL, "exporter-url", "", "use a running exporter at this URL instead of building one (it must point at the simulator: see --sim-listen)")
	fs.StringVar(&o.ExporterBin, "exporter-bin", "", "use this exporter binary instead of building ./cmd/saas_exporter")
	fs.StringVar(&o.AdminUser, "admin-user", "bench", "admin user for the JSON API")
	fs.StringVar(&o.AdminPassword, "admin-password", "bench-password", "admin password for the JSON API (with --exporter-url: that exporter's)")
	fs.StringVar(&o.SimListen, "sim-listen", "127.0.0.1:0", "address of the in-process vendor simulator")
	fs.IntVar(&o.Concurrency, "concurrency", 0, "scrape.concurrency of the exporter (0: the exporter's default)")
	fs.IntVar(&o.ConnectParallel, "connect-parallel", 16, "connections created at once through the API")
	fs.StringVar(&scale, "scale", "", "comma-separated sizes, e.g. 10,100,1000,5000: cold and warm scrapes for each, a table and a plot")
	fs.DurationVar(&o.SharedInterval, "shared-min-interval", 2*time.Second, "scrape.min_interval of the exporter restarted for the shared-round-trip phase")
	fs.DurationVar(&o.MinInterval, "min-interval", 30*time.Second, "scrape.min_interval for the cold and warm phases")
	fs.DurationVar(&o.Timeout, "timeout", 8*time.Second, "scrape.timeout")
	fs.Float64Var(&o.HeaderTimeout, "scrape-timeout-header", 10, "X-Prometheus-Scrape-Timeout-Seconds sent with every scrape")
	fs.StringVar(&o.Plot, "plot", "bench/scaling.png", "PNG written by --scale; its results go next to it as .json")
	fs.StringVar(&o.Replot, "replot", "", "only redraw --plot and reprint the table from a .json a --scale run wrote")
	fs.BoolVar(&o.SkipShared, "skip-shared", false, "skip the shared-round-trip phase")
	fs.BoolVar(&o.KeepDir, "keep-dir", false, "keep the temporary directory (config, data, exporter log)")
	fs.DurationVar(&o.Rest, "rest", 0, "wait this long after the warm scrapes before reading the exporter's memory (0: read it at once), e.g. 20s: memory at rest, after a cold scrape's burst")
	fs.StringVar(&o.ProfileCold, "profile-cold", "", "directory for CPU profiles of each cold scrape: the exporter's by perf (perf-N.data), the simulator's and driver's by runtime/pprof (sim-N.pprof)")
	fs.Func("exporter-env", "KEY=VALUE added to the exporter's environment (repeatable), e.g. GOMEMLIMIT=200MiB", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		o.ExporterEnv = append(o.ExporterEnv, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: every option is a flag (see -h)", fs.Arg(0))
	}
	for _, v := range strings.Split(vendors, ",") {
		if v = strings.TrimSpace(v); v != "" {
			o.Vendors = append(o.Vendors, v)
		}
	}
	if len(o.Vendors) == 0 {
		return nil, errors.New("--vendors is empty: name at least one of sendgrid, twilio, segment")
	}
	if scale != "" {
		for _, s := range strings.Split(scale, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("--scale: %q is not a positive number of connections", s)
			}
			if len(o.Scale) > 0 && n <= o.Scale[len(o.Scale)-1] {
				return nil, fmt.Errorf("--scale: sizes must increase (connections are added between sizes), got %s", scale)
			}
			o.Scale = append(o.Scale, n)
		}
	}
	switch {
	case o.Connections <= 0:
		return nil, fmt.Errorf("--connections must be > 0, got %d", o.Connections)
	case o.Latency < 0:
		return nil, fmt.Errorf("--latency must be >= 0, got %s", o.Latency)
	case o.Scrapes <= 0:
		return nil, fmt.Errorf("--scrapes must be > 0, got %d", o.Scrapes)
	case o.ConnectParallel <= 0:
		return nil, fmt.Errorf("--connect-parallel must be > 0, got %d", o.ConnectParallel)
	case o.PageSize <= 0:
		return nil, fmt.Errorf("--page-size must be > 0, got %d", o.PageSize)
	case o.Concurrency < 0:
		return nil, fmt.Errorf("--concurrency must be >= 0, got %d", o.Concurrency)
	case o.SharedInterval <= 0 || o.MinInterval <= 0 || o.Timeout <= 0:
		return nil, errors.New("--shared-min-interval, --min-interval and --timeout must be > 0")
	}
	return o, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	if o.Replot != "" {
		return replot(o, stdout, stderr)
	}
	b, err := newBench(ctx, o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	defer b.close()
	rep := &report{Machine: machineInfo(), Command: commandLine(args), Options: o}
	if len(o.Scale) > 0 {
		err = b.runScale(ctx, rep)
	} else {
		err = b.runSingle(ctx, rep)
	}
	rep.Notes = append(rep.Notes, b.notes...)
	rep.write(stdout)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// commandLine is how this run was started, for the report.
func commandLine(args []string) string {
	parts := []string{"go run ./bench"}
	for _, a := range args {
		if strings.ContainsAny(a, " \t'\"$") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
