package auth

import (
	"errors"
	"net/http"

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

// webhook serves vendor callbacks that no browser sends.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	vendor, name := r.PathValue("vendor"), r.PathValue("name")
	p := s.provider(vendor)
	wh, ok := p.(provider.Webhooks)
	if p == nil || !ok || name == "callback" || name == "start" {
		plain(w, http.StatusNotFound, "no such callback")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	revoked, err := wh.Webhook(r, name)
	if err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, provider.ErrForbidden):
			s.log.Warn("vendor callback refused: not authenticated", "vendor", vendor, "callback", name)
			plain(w, http.StatusForbidden, "forbidden")
		case errors.As(err, &mbe):
			plain(w, http.StatusRequestEntityTooLarge, "request body is larger than 64 KiB")
		default:
			s.log.Warn("vendor callback rejected", "vendor", vendor, "callback", name, "err", err)
			plain(w, http.StatusBadRequest, "bad callback: "+err.Error())
		}
		return
	}
	if len(revoked) > 0 {
		if err := s.revoke(r, vendor, revoked); err != nil {
			s.log.Error("recording vendor revocation", "vendor", vendor, "err", err)
			// 503 asks the vendor to retry; the revocation is not lost.
			plain(w, http.StatusServiceUnavailable, "store unavailable; retry later")
			return
		}
	}
	plain(w, http.StatusOK, "ok")
}

func (s *Server) revoke(r *http.Request, vendor string, accountIDs []string) error {
	ids := map[string]bool{}
	for _, a := range accountIDs {
		if a != "" {
			ids[a] = true
		}
	}
	conns, err := s.o.Store.List(r.Context())
	if err != nil {
		return err
	}
	for _, c := range conns {
		if c.Vendor != vendor || !ids[c.AccountID] {
			continue
		}
		st := c.Status
		st.State = store.StateRevoked
		st.LastError = revokedByVendor
		st.Updated = s.now()
		if err := s.o.Store.SetStatus(r.Context(), c.ID, st); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue // disconnected meanwhile
			}
			return err
		}
		s.changed(c.ID)
		s.log.Info("connection revoked by the vendor", "vendor", vendor, "name", c.Name, "id", c.ID)
	}
	return nil
}
