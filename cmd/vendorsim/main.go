// Command vendorsim serves fake vendor APIs on loopback for the
// saas_exporter demo and manual testing. See the index page it prints.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/saas-exporter/saas_exporter/vendorsim"
)

func main() {
	// Graceful shutdown on SIGINT/SIGTERM.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, new(usageError)):
		os.Exit(2) // the flag package already said what was wrong
	default:
		fmt.Fprintln(os.Stderr, "vendorsim:", err)
		os.Exit(1)
	}
}

// usageError is a command-line error the flag package has printed.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// run serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vendorsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("listen-address", "127.0.0.1:9800", "address to listen on (keep it on loopback: the simulator has no authentication)")
	pageSize := fs.Int("page-size", 3, "most items per page of a paginated vendor list")
	latency := fs.Duration("latency", 0, "delay added to every vendor answer, e.g. 200ms (set as a fault: DELETE /_sim/faults removes it)")
	verbose := fs.Bool("verbose", false, "log every vendor call")
	twilioExporter := fs.String("twilio-exporter-url", vendorsim.DefaultTwilioExporterURL, "the exporter's external_url: the Twilio Connect App sends browsers back to URL/connect/twilio/callback and deauthorize callbacks to URL/connect/twilio/deauthorize")
	twilioDropState := fs.Bool("twilio-drop-state", false, "leave state out of the Twilio consent page's redirect back (Twilio does not document passing it through)")
	segmentTokenLifetime := fs.Duration("segment-token-lifetime", vendorsim.DefaultSegmentTokenLifetime, "lifetime of the Segment OAuth access tokens the simulator issues, e.g. 15m to watch the exporter renew them")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q; see --help", fs.Args())
	}
	if *pageSize < 1 {
		return fmt.Errorf("--page-size must be at least 1, got %d", *pageSize)
	}
	if *latency < 0 {
		return fmt.Errorf("--latency must not be negative, got %s", *latency)
	}
	if *segmentTokenLifetime <= 0 {
		return fmt.Errorf("--segment-token-lifetime must be positive, got %s", *segmentTokenLifetime)
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	sim := vendorsim.New(vendorsim.Options{PageSize: *pageSize, Logger: logger})
	tw := strings.TrimRight(*twilioExporter, "/")
	if err := sim.SetTwilioConnectApp(tw+"/connect/twilio/callback", tw+"/connect/twilio/deauthorize"); err != nil {
		return fmt.Errorf("--twilio-exporter-url: %w", err)
	}
	sim.SetTwilioDropState(*twilioDropState)
	sim.SetSegmentTokenLifetime(*segmentTokenLifetime)
	if *latency > 0 {
		for _, v := range sim.Vendors() {
			sim.SetFault(v.Vendor, vendorsim.Fault{Latency: *latency})
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("cannot listen on %s (is another vendorsim running? pick another --listen-address): %w", *addr, err)
	}
	base := "http://" + ln.Addr().String()
	printBanner(stdout, sim, base)

	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sim.Close() // release calls held by a Hang fault
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// printBanner writes the banner in one Write, so a reader never sees
// part of it.
func printBanner(out io.Writer, sim *vendorsim.Server, base string) {
	w := &strings.Builder{}
	fmt.Fprintf(w, "vendorsim listening on %s (index page with test credentials and controls: %s/)\n\n", base, base)
	for _, v := range sim.Vendors() {
		var urls []string
		for _, p := range v.Prefixes {
			urls = append(urls, base+p)
		}
		fmt.Fprintf(w, "%s: %s\n", v.Vendor, strings.Join(urls, " "))
		for _, c := range v.Credentials {
			fmt.Fprintf(w, "  %s:\n    %s\n", c.Label, c.Value)
		}
		for _, c := range v.Controls {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
	fmt.Fprintf(w, "\nFaults: curl -X PUT %s/_sim/faults/VENDOR -d '{\"status\":503}'; clear: curl -X DELETE %s/_sim/faults\n", base, base)
	fmt.Fprintf(w, "\nPaste into the exporter's configuration:\n\n%s\n", sim.ConfigSnippet(base))
	_, _ = io.WriteString(out, w.String())
}
