// Command saas_exporter exposes usage and connection health of SaaS
// vendor accounts (Twilio, SendGrid, Segment) to Prometheus.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/saas-exporter/saas_exporter/config"
)

const program = "saas_exporter"

// Version is set at build time (-ldflags "-X github.com/prometheus/common/version.Version=…");
// a plain go build reports "dev" and the module's VCS revision if known.
func init() {
	if version.Version == "" {
		version.Version = "dev"
	}
	if version.Revision == "" {
		version.Revision = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					version.Revision = s.Value
				}
			}
		}
	}
}

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, hooks{setMemoryLimit: debug.SetMemoryLimit}))
}

// hooks are what an in-process caller (a test) may give run.
type hooks struct {
	// ready, if set, receives the first listen address.
	ready func(addr string)
	// now is the exporter's clock; nil is time.Now. End-to-end tests pass a
	// fake one to run expiry and refresh scenarios without waiting.
	now func() time.Time
	// limits shortens the admission bounds (zero: the defaults);
	// admission, if set, receives the gate (tests watch its slots).
	limits    limitOptions
	admission func(*admission)
	// setMemoryLimit, if set, is given the soft memory limit derived from
	// the container's (main passes debug.SetMemoryLimit; in-process tests
	// leave the test binary's alone).
	setMemoryLimit func(int64) int64
}

// run is main without the process around it, so tests can start the
// exporter in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, h hooks) int {
	app := kingpin.New(program, "Prometheus exporter for SaaS vendor usage and connection health (Twilio, SendGrid, Segment).")
	app.Writer(stdout)
	app.ErrorWriter(stderr)
	configFile := app.Flag("config.file", "Configuration file (YAML).").Default("saas_exporter.yml").String()
	app.Command("serve", "Run the exporter (the default).").Default()
	migrateCmd := app.Command("store", "Store maintenance.").Command("migrate", "Copy every connection and invite from one store to another, then verify the copy. Stop the exporters first. Running it again finishes an interrupted run; it refuses to overwrite what changed in the destination since (see --force).")
	migrateFrom := migrateCmd.Flag("from", "Source: bbolt:PATH, or bbolt for data_dir's file.").Required().String()
	migrateTo := migrateCmd.Flag("to", "Destination: postgres:DSN, or postgres for store.postgres from the configuration.").Required().String()
	migrateForce := migrateCmd.Flag("force", "Overwrite records that changed in the destination since the last migration (the refusal lists them).").Bool()
	webFlags := kingpinflag.AddFlags(app, ":9888")
	logCfg := &promslog.Config{Writer: stderr}
	promslogflag.AddFlags(app, logCfg)
	app.Version(version.Print(program))
	app.HelpFlag.Short('h')
	exited := false
	app.Terminate(func(int) { exited = true })
	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v (see --help)\n", program, err)
		return 2
	}
	if exited { // --help or --version
		return 0
	}
	logger := promslog.New(logCfg)

	cfg, err := config.Load(*configFile)
	if err != nil {
		logger.Error("invalid configuration", "err", err)
		return 1
	}
	if cmd == migrateCmd.FullCommand() {
		if err := migrateStores(ctx, cfg, *migrateFrom, *migrateTo, *migrateForce, stdout, logger); err != nil {
			logger.Error("store migrate failed", "err", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if h.setMemoryLimit != nil {
		setMemoryLimit(logger, "/", os.Getenv, h.setMemoryLimit)
	}

	now := h.now
	if now == nil {
		now = time.Now
	}
	a, err := newApp(ctx, cfg, logger, now)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	defer a.close()

	var listeners []net.Listener
	for _, addr := range *webFlags.WebListenAddresses {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			logger.Error("cannot listen", "address", addr, "err", err)
			return 1
		}
		listeners = append(listeners, l)
	}
	if a.generated != nil {
		// Whatever can still stop the start (serveWeb's checks) comes first.
		if p := *webFlags.WebConfigFile; p != "" {
			err := web.Validate(p)
			if err == nil {
				_, err = readWebConfig(p)
			}
			if err != nil {
				logger.Error("cannot start: --web.config.file "+p, "err", err)
				return 1
			}
		}
		if err := a.generated.save(logger); err != nil {
			logger.Error("cannot start", "err", err)
			return 1
		}
	}
	gate := newAdmission(a.handler(), a.auth.Authenticated, h.limits)
	if h.admission != nil {
		h.admission(gate)
	}
	srv := &http.Server{
		Handler:           gate,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	logger.Info("starting "+program, version.Slog()...)
	logger.Info("listening", "address", listeners[0].Addr().String(), "ui", cfg.ExternalURL+"/", "metrics", cfg.ExternalURL+"/metrics")
	if h.ready != nil {
		h.ready(listeners[0].Addr().String())
	}

	go trimMemory(ctx, trimEvery, debug.FreeOSMemory)
	errc := make(chan error, 1)
	go func() { errc <- serveWeb(listeners, srv, *webFlags.WebConfigFile, logger) }()
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("server failed", "err", err)
			return 1
		}
	case <-ctx.Done():
		logger.Info("shutting down: waiting for in-flight requests")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			logger.Warn("shutdown did not finish cleanly", "err", err)
		}
	}
	logger.Info("stopped")
	return 0
}
