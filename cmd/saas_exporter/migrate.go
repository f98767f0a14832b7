package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/saas-exporter/saas_exporter/config"
	"github.com/saas-exporter/saas_exporter/store"
)

// migrateStores implements `saas_exporter store migrate --from … --to …`.
// A location is bbolt:PATH or postgres:DSN; a bare "postgres" (or
// "bbolt") takes the DSN (or data_dir file) from the configuration, so a
// password need not appear on a command line.
func migrateStores(ctx context.Context, cfg *config.Config, from, to string, force bool, stdout io.Writer, log *slog.Logger) error {
	kr, err := store.LoadKeyring(cfg.SecretKeyFile, os.Getenv(store.SecretKeyEnv), cfg.DataDir, log)
	if err != nil {
		return err
	}
	src, err := openLocation(ctx, cfg, from, kr, log)
	if err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	defer src.Close()
	dst, err := openLocation(ctx, cfg, to, kr, log)
	if err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	defer dst.Close()
	rep, err := store.MigrateWith(ctx, src, dst, store.MigrateOptions{
		Force: force,
		From:  describeLocation(cfg, from),
		Key:   kr.Derive("saas_exporter migrate fingerprints v1"),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "copied and verified %d connections and %d invites", rep.Connections, rep.Invites)
	if rep.Extra > 0 {
		fmt.Fprintf(stdout, "; the destination also holds %d connections the source does not", rep.Extra)
	}
	fmt.Fprintln(stdout)
	return nil
}

func openLocation(ctx context.Context, cfg *config.Config, loc string, kr *store.Keyring, log *slog.Logger) (store.Store, error) {
	kind, arg, _ := strings.Cut(loc, ":")
	switch kind {
	case "bbolt":
		if arg == "" {
			arg = cfg.DataDir + "/" + store.DefaultBoltFile
		}
		if _, err := os.Stat(arg); err != nil {
			return nil, fmt.Errorf("bbolt store %s: %w", arg, err)
		}
		return store.OpenBolt(arg, kr)
	case "postgres":
		if arg == "" {
			if cfg.Store.Postgres == nil {
				return nil, fmt.Errorf("postgres without a DSN: write postgres:DSN, or set store.postgres.dsn in the configuration")
			}
			arg = cfg.Store.Postgres.DSN
		}
		return store.OpenPostgres(ctx, arg, kr, log)
	default:
		return nil, fmt.Errorf("%q: want bbolt:PATH or postgres:DSN", loc)
	}
}

// describeLocation names a source for the migration record without a
// DSN (which may hold a password).
func describeLocation(cfg *config.Config, loc string) string {
	kind, arg, _ := strings.Cut(loc, ":")
	switch {
	case kind == "bbolt" && arg == "":
		return "bbolt " + cfg.DataDir + "/" + store.DefaultBoltFile
	case kind == "bbolt":
		return "bbolt " + arg
	}
	return kind
}
