package providertest

import (
	"context"

	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// Renew is Scrape.Renew for connection id in st, as the engine wires it
// without its in-memory fallback: fn runs under the store's lock on the
// stored connection, and its credential (secret, expiry, settings) is
// saved in the same step.
func Renew(st store.Store, id string) func(context.Context, func(provider.Connection) (*provider.Credential, error)) (provider.Connection, error) {
	return func(ctx context.Context, fn func(provider.Connection) (*provider.Credential, error)) (provider.Connection, error) {
		var out store.Connection
		err := st.UpdateLocked(ctx, id, func(c store.Connection) (*store.Connection, error) {
			out = c
			cred, err := fn(collector.View(c))
			if err != nil || cred == nil {
				return nil, err
			}
			out.Secret, out.Expiry = cred.Secret, cred.Expiry
			if cred.Settings != nil {
				out.Settings = cred.Settings
			}
			return &out, nil
		})
		return collector.View(out), err
	}
}
