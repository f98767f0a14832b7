package connect

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/saas-exporter/saas_exporter/auth/session"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// InviteURL is the link an invitee opens.
func (s *Service) InviteURL(id string) string {
	return s.c.ExternalURL + "/invite/" + s.c.Sessions.InviteToken(id)
}

// InviteStatus is pending, used, expired or revoked.
func (s *Service) InviteStatus(inv store.Invite) string {
	switch {
	case inv.Revoked:
		return "revoked"
	case !inv.Used.IsZero():
		return "used"
	case !s.c.Now().Before(inv.Expires):
		return "expired"
	}
	return "pending"
}

// inviteProblem says why inv cannot be used, or returns nil.
func (s *Service) inviteProblem(inv store.Invite) *Failure {
	switch s.InviteStatus(inv) {
	case "revoked":
		return Fail(http.StatusGone, "This invite was revoked by an administrator. Ask them for a new link.")
	case "used":
		return Fail(http.StatusGone, "This invite was already used on %s. Invite links work once; ask the administrator for a new link if you need to connect again.", inv.Used.UTC().Format("2006-01-02 15:04 UTC"))
	case "expired":
		return Fail(http.StatusGone, "This invite expired on %s. Ask the administrator for a new link.", inv.Expires.UTC().Format("2006-01-02 15:04 UTC"))
	}
	return nil
}

// UsableInvite loads an invite and checks that it can still be used.
func (s *Service) UsableInvite(ctx context.Context, id string) (store.Invite, error) {
	inv, err := s.c.Store.GetInvite(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return inv, Fail(http.StatusNotFound, "This invite does not exist (it may have been deleted). Ask the administrator for a new link.")
	}
	if err != nil {
		return inv, err
	}
	if f := s.inviteProblem(inv); f != nil {
		return inv, f
	}
	return inv, nil
}

// ResolveInvite checks an invite token from a URL.
func (s *Service) ResolveInvite(ctx context.Context, tok string) (store.Invite, provider.Provider, error) {
	id, ok := s.c.Sessions.InviteID(tok)
	if !ok {
		return store.Invite{}, nil, Fail(http.StatusForbidden, "This invite link is not valid: it was changed or cut off. Check that you copied the whole link, or ask the administrator for a new one.")
	}
	inv, err := s.UsableInvite(ctx, id)
	if err != nil {
		return inv, nil, err
	}
	p := s.Provider(inv.Vendor)
	if p == nil {
		return inv, nil, Fail(http.StatusNotFound, "This invite is for a vendor this exporter no longer supports. Ask the administrator for a new link.")
	}
	return inv, p, nil
}

// CreateInvite makes an invite for a new connection (name) or to reconnect
// an existing one (connID).
func (s *Service) CreateInvite(ctx context.Context, vendor, name, connID string, ttl time.Duration) (store.Invite, error) {
	if connID != "" {
		c, err := s.c.Store.Get(ctx, connID)
		if errors.Is(err, store.ErrNotFound) {
			return store.Invite{}, Fail(http.StatusNotFound, "There is no connection with id %s.", connID)
		}
		if err != nil {
			return store.Invite{}, err
		}
		if vendor != "" && vendor != c.Vendor {
			return store.Invite{}, Fail(http.StatusBadRequest, "Connection %s is a %s connection, not %s.", connID, c.Vendor, vendor)
		}
		if name != "" && name != c.Name {
			return store.Invite{}, Fail(http.StatusBadRequest, "Connection %s is called “%s”; leave the name out to reconnect it.", connID, c.Name)
		}
		vendor, name = c.Vendor, c.Name
	}
	if vendor == "" {
		return store.Invite{}, Fail(http.StatusBadRequest, "vendor is required (known: %s).", s.VendorList())
	}
	p := s.Provider(vendor)
	if p == nil {
		return store.Invite{}, Fail(http.StatusBadRequest, "Unknown vendor “%s” (known: %s).", vendor, s.VendorList())
	}
	if !Usable(p) {
		return store.Invite{}, Fail(http.StatusBadRequest, "%s has no sign-in method configured, so an invite could not be used.", p.Title())
	}
	if ttl == 0 {
		ttl = s.c.InviteTTL
	}
	if ttl < time.Minute || ttl > maxInviteTTL {
		return store.Invite{}, Fail(http.StatusBadRequest, "expires_in must be between 1m and %s.", maxInviteTTL)
	}
	if connID == "" {
		if err := s.CheckTarget(ctx, p, Target{Name: name}); err != nil {
			return store.Invite{}, err
		}
	}
	now := s.c.Now()
	inv := store.Invite{ID: session.NewID(), Vendor: vendor, Name: name, Created: now, Expires: now.Add(ttl), ConnectionID: connID}
	if err := s.c.Store.PutInvite(ctx, inv); err != nil {
		return store.Invite{}, err
	}
	s.c.Log.Info("invite created", "vendor", vendor, "name", name, "invite", inv.ID, "reconnect", connID, "expires", inv.Expires)
	return inv, nil
}

// RevokeInvite makes an invite's link unusable.
func (s *Service) RevokeInvite(ctx context.Context, id string) (store.Invite, error) {
	inv, err := s.c.Store.GetInvite(ctx, id)
	if err != nil {
		return inv, err
	}
	inv.Revoked = true
	if err := s.c.Store.PutInvite(ctx, inv); err != nil {
		return inv, err
	}
	s.c.Log.Info("invite revoked", "vendor", inv.Vendor, "name", inv.Name, "invite", inv.ID)
	return inv, nil
}

// InviteDoneURL is where an invitee lands; it says when the credential
// went to an account that was already connected under another name.
func InviteDoneURL(res Saved) string {
	if res.Kind == "updated" {
		return "/invite/done?msg=updated&name=" + url.QueryEscape(res.Conn.Name)
	}
	return "/invite/done"
}
