package connect

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

const revokedByVendor = "revoked by the vendor (deauthorize callback)"

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}

// Webhook serves vendor callbacks that no browser sends.
func (s *Service) Webhook(w http.ResponseWriter, r *http.Request) {
	vendor, name := r.PathValue("vendor"), r.PathValue("name")
	p := s.Provider(vendor)
	wh, ok := p.(provider.Webhooks)
	if p == nil || !ok || name == "callback" || name == "start" {
		plain(w, http.StatusNotFound, "no such callback")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	revoked, err := wh.Webhook(r, name)
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, provider.ErrForbidden):
			s.c.Log.Warn("vendor callback refused: not authenticated", "vendor", vendor, "callback", name)
			plain(w, http.StatusForbidden, "forbidden")
		case errors.As(err, &mbe):
			plain(w, http.StatusRequestEntityTooLarge, "request body is larger than 64 KiB")
		default:
			s.c.Log.Warn("vendor callback rejected", "vendor", vendor, "callback", name, "err", err)
			plain(w, http.StatusBadRequest, "bad callback: "+err.Error())
		}
		return
	}
	if len(revoked) > 0 {
		if err := s.revoke(r, p, revoked); err != nil {
			var unconfirmed *unconfirmedError
			if errors.As(err, &unconfirmed) {
				s.c.Log.Warn("vendor revocation not confirmed; the connection stays as it is until the vendor can tell (collection notices a revoked credential by itself)", "vendor", vendor, "err", err)
				plain(w, http.StatusServiceUnavailable, "could not confirm the revocation with the vendor; retry later")
				return
			}
			s.c.Log.Error("recording vendor revocation", "vendor", vendor, "err", err)
			// 503 asks the vendor to retry; the revocation is not lost.
			plain(w, http.StatusServiceUnavailable, "store unavailable; retry later")
			return
		}
	}
	plain(w, http.StatusOK, "ok")
}

// unconfirmedError: the vendor could not say whether access is gone.
type unconfirmedError struct{ err error }

func (e *unconfirmedError) Error() string { return e.err.Error() }

// stillAuthorized asks a RevocationChecker provider whether c's credential
// still works; providers that cannot be replayed are taken at their word.
func (s *Service) stillAuthorized(r *http.Request, p provider.Provider, c store.Connection) (still bool, err error) {
	rc, ok := p.(provider.RevocationChecker)
	if !ok {
		return false, nil
	}
	defer func() {
		if v := recover(); v != nil {
			still, err = false, fmt.Errorf("the %s provider failed unexpectedly: %v", p.Vendor(), v)
		}
	}()
	ctx, cancel := ContextOf(r)
	defer cancel()
	return rc.StillAuthorized(ctx, s.c.Client(p.Vendor()), collector.View(c))
}

func (s *Service) revoke(r *http.Request, p provider.Provider, accountIDs []string) error {
	vendor := p.Vendor()
	ids := map[string]bool{}
	for _, a := range accountIDs {
		if a != "" {
			ids[a] = true
		}
	}
	conns, err := s.c.Store.List(r.Context())
	if err != nil {
		return err
	}
	for _, c := range conns {
		if c.Vendor != vendor || !ids[c.AccountID] || c.State == store.StateRevoked {
			continue
		}
		// A signed callback can be replayed after the account authorized
		// the app again: revoke only what the vendor confirms is gone.
		still, err := s.stillAuthorized(r, p, c)
		if err != nil {
			return &unconfirmedError{fmt.Errorf("connection %s: %w", c.Name, err)}
		}
		if still {
			s.c.Log.Warn("deauthorize callback ignored: the vendor still accepts the connection's credentials, so the callback is stale or replayed", "vendor", vendor, "name", c.Name, "id", c.ID)
			continue
		}
		st := c.Status
		st.State = store.StateRevoked
		st.LastError = revokedByVendor
		st.Updated = s.c.Now()
		if err := s.c.Store.SetStatus(r.Context(), c.ID, st); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue // disconnected meanwhile
			}
			return err
		}
		s.changed(c.ID)
		s.c.Log.Info("connection revoked by the vendor", "vendor", vendor, "name", c.Name, "id", c.ID)
	}
	return nil
}
