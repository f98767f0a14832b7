package collector

import (
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// View is what a provider sees of stored connection c: identity, settings
// and the opened credential, none of the record's storage fields (state,
// budget, status times). It shares c's maps, as handing over c did.
func View(c store.Connection) provider.Connection {
	return provider.Connection{
		ID:            c.ID,
		Vendor:        c.Vendor,
		Name:          c.Name,
		Account:       c.Account,
		AccountID:     c.AccountID,
		AuthMethod:    c.AuthMethod,
		Settings:      c.Settings,
		Secret:        c.Secret,
		Scopes:        c.Scopes,
		MissingScopes: c.MissingScopes,
		Expiry:        c.Expiry,
	}
}
