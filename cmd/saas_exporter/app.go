package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/saas-exporter/saas_exporter/auth"
	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/config"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/provider/segment"
	"github.com/saas-exporter/saas_exporter/provider/sendgrid"
	"github.com/saas-exporter/saas_exporter/provider/twilio"
	"github.com/saas-exporter/saas_exporter/store"
)

// vendors is the list of supported vendors: adding one is adding its
// provider package and a line here.
var vendors = []provider.Factory{
	sendgrid.Factory(),
	twilio.Factory(),
	segment.Factory(),
}

// readyTimeout bounds /-/ready, so a probe gets an answer within a second
// whatever the store does.
const readyTimeout = 800 * time.Millisecond

// app is the wired exporter.
type app struct {
	cfg    *config.Config
	log    *slog.Logger
	store  store.Store
	engine *collector.Engine
	auth   *auth.Server
	extra  *prometheus.Registry
	// generated is an admin password generated at this start, saved and
	// shown once the exporter listens.
	generated *generatedAdmin
}

// newApp wires the exporter. now is its clock (time.Now outside tests):
// passed in, not global, so end-to-end tests with a fake clock can run in
// parallel with the others.
func newApp(ctx context.Context, cfg *config.Config, log *slog.Logger, now func() time.Time) (*app, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	// Before anything is generated: does data_dir hold an earlier run?
	earlier := earlierRun(cfg.DataDir)
	kr, err := store.LoadKeyring(cfg.SecretKeyFile, os.Getenv("SAAS_EXPORTER_SECRET_KEY"), cfg.DataDir, log)
	if err != nil {
		return nil, err
	}
	providers, err := provider.Build(vendors, cfg.Vendors, provider.Env{ExternalURL: cfg.ExternalURL, Logger: log, BaseDir: cfg.BaseDir, Now: now})
	if err != nil {
		return nil, err
	}
	admins, generated, err := ensureAdmin(cfg, log)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg, kr, log, earlier)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, log: log, store: st, generated: generated}
	hint := ""
	if len(cfg.Admins) == 0 {
		hint = generatedLoginHint
	}
	a.engine = collector.New(collector.Options{
		Store:             st,
		Providers:         providers,
		Timeout:           cfg.Scrape.Timeout,
		MinInterval:       cfg.Scrape.MinInterval,
		Concurrency:       cfg.Scrape.Concurrency,
		VendorConcurrency: cfg.Scrape.VendorConcurrency,
		Logger:            log,
		Now:               now,
	})
	signing := kr.DeriveAll("saas_exporter cookies v1")
	a.auth, err = auth.New(auth.Options{
		Store:       st,
		Providers:   providers,
		ExternalURL: cfg.ExternalURL,
		Admins:      admins,
		SigningKey:  signing[0],
		// Invite links outlive a key rotation; sessions and flows may not.
		PreviousSigningKeys: signing[1:],
		Client:              a.engine.Client,
		Logger:              log,
		OnChange:            a.engine.Forget,
		OnEdit:              func(string) { a.engine.Relist() },
		MonthToDate:         a.engine.MonthToDate,
		Collections:         a.engine,
		InviteTTL:           cfg.Invites.DefaultTTL,
		LoginHint:           hint,
		Now:                 now,
	})
	if err != nil {
		a.close()
		return nil, err
	}
	a.extra = prometheus.NewRegistry()
	a.extra.MustRegister(
		versioncollector.NewCollector("saas_exporter"),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return a, nil
}

// openStore opens the configured backend: PostgreSQL for several replicas,
// otherwise the embedded bbolt file in data_dir.
func openStore(ctx context.Context, cfg *config.Config, kr *store.Keyring, log *slog.Logger, earlier []string) (store.Store, error) {
	st, err := openBackend(ctx, cfg, kr, log, earlier)
	if err != nil {
		return nil, err
	}
	// A store filled by an unfinished `store migrate` looks valid but may
	// hold any part of the source.
	if err := store.CheckMigration(ctx, st); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

func openBackend(ctx context.Context, cfg *config.Config, kr *store.Keyring, log *slog.Logger, earlier []string) (store.Store, error) {
	if pg := cfg.Store.Postgres; pg != nil {
		st, err := store.OpenPostgres(ctx, pg.DSN, kr, log)
		if err != nil {
			return nil, err
		}
		st.SetCallTimeout(pg.CallTimeout)
		log.Info("store: PostgreSQL", "database", st.Where(), "call_timeout", st.CallTimeout())
		return st, nil
	}
	path := filepath.Join(cfg.DataDir, store.DefaultBoltFile)
	if fi, err := os.Stat(path); (err != nil || fi.Size() == 0) && len(earlier) > 0 {
		// bbolt starts an empty store from a missing or 0-byte file.
		log.Error("STARTING WITH AN EMPTY STORE although data_dir holds files of an earlier run: the store file is missing or empty. If connections existed, stop the exporter and restore the store file from a backup",
			"file", path, "found", strings.Join(earlier, ", "))
	}
	st, err := store.OpenBolt(path, kr)
	if err != nil {
		return nil, err
	}
	log.Info("store: embedded", "file", path)
	return st, nil
}

func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	// promhttp_metric_handler_requests_total and _in_flight, as a
	// promhttp.Handler would export them.
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(a.extra, a.engine.MetricsHandler(a.extra)))
	mux.Handle("GET /probe", a.engine.ProbeHandler())
	mux.Handle("GET /sd", a.engine.SDHandler())
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		// The store answering is enough; no record is read, no secret opened.
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		// Answer at the deadline even if the store's driver takes longer
		// to give up (a frozen server does not confirm a cancellation).
		done := make(chan error, 1)
		go func() { done <- a.store.Ping(ctx) }()
		var err error
		select {
		case err = <-done:
		case <-ctx.Done():
		}
		if err != nil || ctx.Err() != nil {
			if err == nil || ctx.Err() != nil {
				err = fmt.Errorf("no answer within %s", readyTimeout)
			}
			http.Error(w, "store not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Ready")
	})
	a.auth.Register(mux)
	return mux
}

func (a *app) close() {
	if a.engine != nil {
		a.engine.Close()
	}
	if err := a.store.Close(); err != nil {
		a.log.Warn("closing the store", "err", err)
	}
}

// earlierRun lists the files in dataDir that an earlier run created.
func earlierRun(dataDir string) []string {
	var found []string
	for _, f := range []string{store.DefaultKeyFile, generatedAdminFile} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err == nil {
			found = append(found, f)
		}
	}
	return found
}
