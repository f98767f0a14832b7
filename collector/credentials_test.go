package collector

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// hookStore wraps a store; hooks run before the wrapped call.
type hookStore struct {
	store.Store
	mu sync.Mutex
	// beforeStatus runs once, after Get or before SetStatus (the status
	// writer's calls).
	beforeStatus func(id string)
	// saveErr, when set, fails UpdateLocked after fn ran: the write did
	// not reach the store (a database restart).
	saveErr error
	// hang, when set, makes UpdateLocked wait for the channel or ctx.
	hang chan struct{}
}

// Get runs the hook after reading: a read-then-write sees the old status.
func (h *hookStore) Get(ctx context.Context, id string) (store.Connection, error) {
	c, err := h.Store.Get(ctx, id)
	h.runBeforeStatus(id)
	return c, err
}

func (h *hookStore) SetStatus(ctx context.Context, id string, s store.Status) error {
	h.runBeforeStatus(id)
	return h.Store.SetStatus(ctx, id, s)
}

func (h *hookStore) runBeforeStatus(id string) {
	h.mu.Lock()
	f := h.beforeStatus
	h.beforeStatus = nil
	h.mu.Unlock()
	if f != nil {
		f(id)
	}
}

func (h *hookStore) set(f func(h *hookStore)) {
	h.mu.Lock()
	f(h)
	h.mu.Unlock()
}

func (h *hookStore) UpdateLocked(ctx context.Context, id string, fn func(store.Connection) (*store.Connection, error)) error {
	saveErr, err := h.wait(ctx)
	if err != nil {
		return err
	}
	if saveErr == nil {
		return h.Store.UpdateLocked(ctx, id, fn)
	}
	c, err := h.Store.Get(ctx, id)
	if err != nil {
		return err
	}
	if _, err := fn(c); err != nil {
		return err
	}
	return saveErr
}

func (h *hookStore) SetSecret(ctx context.Context, id string, secret map[string]string, expiry time.Time) error {
	saveErr, err := h.wait(ctx)
	if err != nil {
		return err
	}
	if saveErr != nil {
		return saveErr
	}
	return h.Store.SetSecret(ctx, id, secret, expiry)
}

// wait holds a write while hang is set (or until ctx ends) and returns
// the failure to give it.
func (h *hookStore) wait(ctx context.Context) (saveErr, err error) {
	h.mu.Lock()
	saveErr, hang := h.saveErr, h.hang
	h.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return nil, fmt.Errorf("store: writing connection: %w", ctx.Err())
		}
	}
	return saveErr, nil
}

func hookedSetup(t *testing.T, names ...string) (*Engine, *hookStore, *clock) {
	t.Helper()
	e, _, mem, clk := setup(t, names...)
	h := &hookStore{Store: mem}
	e.o.Store = h
	e.status.st = h
	e.creds.st = h
	return e, h, clk
}

// A Twilio deauthorize lands after the collection that started before it
// finished, just before its status is written: the revocation stays.
func TestStatusWriteKeepsNewerStatus(t *testing.T) {
	e, h, clk := hookedSetup(t, "prod")
	e.providers["fake"] = &renewingProvider{} // any provider that succeeds
	h.set(func(h *hookStore) {
		h.beforeStatus = func(id string) {
			st := store.Status{State: store.StateRevoked, LastError: "deauthorized by the vendor", Updated: clk.now().Add(time.Second)}
			if err := h.Store.SetStatus(context.Background(), id, st); err != nil {
				t.Error(err)
			}
		}
	})
	gather(t, scrapeOf(e, nil))
	e.status.close() // flush
	c, err := h.Store.Get(context.Background(), "id0")
	if err != nil {
		t.Fatal(err)
	}
	if c.State != store.StateRevoked {
		t.Errorf("stored state after a deauthorize raced the status write: %q (%q), want revoked", c.State, c.LastError)
	}
}

// rotatingVendor is an authorization server whose refresh tokens rotate:
// a spent one is refused (invalid_grant).
type rotatingVendor struct {
	mu      sync.Mutex
	current int
	issued  atomic.Int64
}

func (v *rotatingVendor) refresh(rt string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if rt != fmt.Sprintf("rt-%d", v.current) {
		return "", fmt.Errorf("invalid_grant: refresh token %s was already used", rt)
	}
	v.current++
	v.issued.Add(1)
	return fmt.Sprintf("rt-%d", v.current), nil
}

// rotatingProvider renews through Scrape.Renew on every collection, as
// an OAuth connection whose access token is due does.
type rotatingProvider struct{ v *rotatingVendor }

func (p *rotatingProvider) Vendor() string             { return "fake" }
func (p *rotatingProvider) Title() string              { return "Fake" }
func (p *rotatingProvider) Methods() []provider.Method { return nil }
func (p *rotatingProvider) Collect(ctx context.Context, s *provider.Scrape) error {
	c, err := s.Renew(ctx, func(cur provider.Connection) (*provider.Credential, error) {
		next, err := p.v.refresh(cur.Secret["refresh_token"])
		if err != nil {
			return nil, provider.Expired(err)
		}
		return &provider.Credential{Secret: map[string]string{"refresh_token": next}}, nil
	})
	if err != nil {
		return err
	}
	if c.Secret["refresh_token"] == "" {
		return errors.New("no token returned")
	}
	return nil
}

func useRefreshToken(t *testing.T, st store.Store, id, rt string) {
	t.Helper()
	if err := st.SetSecret(context.Background(), id, map[string]string{"refresh_token": rt}, time.Time{}); err != nil {
		t.Fatal(err)
	}
}

// The store fails to take a rotated refresh token (database restart):
// the collection goes on with it from memory, the next collections never
// send the spent one, and the token reaches the store once it is back.
func TestRenewedCredentialSurvivesStoreFailure(t *testing.T) {
	e, h, clk := hookedSetup(t, "prod")
	v := &rotatingVendor{}
	e.providers["fake"] = &rotatingProvider{v: v}
	useRefreshToken(t, h.Store, "id0", "rt-0")
	down := errors.New("store: PostgreSQL: saving connection: unexpected EOF")
	h.set(func(h *hookStore) { h.saveErr = down })
	for i := 0; i < 3; i++ {
		got := gather(t, scrapeOf(e, nil))
		if got[`saas_scrape_success{connection="prod",vendor="fake"}`] != 1 || got[`saas_connection_up{connection="prod",vendor="fake"}`] != 1 {
			t.Fatalf("scrape %d with the store refusing writes: %v", i+1, got)
		}
		clk.add(time.Minute)
	}
	if n := v.issued.Load(); n != 3 {
		t.Errorf("%d refreshes accepted, want 3 (a spent token was sent)", n)
	}
	h.set(func(h *hookStore) { h.saveErr = nil })
	e.Close() // waits for the background save
	c, _ := h.Store.Get(context.Background(), "id0")
	if got := c.Secret["refresh_token"]; got != "rt-3" {
		t.Errorf("stored refresh token after the store came back: %q, want rt-3", got)
	}
}

// updatingProvider renews without the store lock (a client-credentials
// grant) and hands the new secret to the engine; reconnect, if set, runs
// while the renewal is in flight.
type updatingProvider struct{ reconnect func() }

func (p *updatingProvider) Vendor() string             { return "fake" }
func (p *updatingProvider) Title() string              { return "Fake" }
func (p *updatingProvider) Methods() []provider.Method { return nil }
func (p *updatingProvider) Collect(ctx context.Context, s *provider.Scrape) error {
	if p.reconnect != nil {
		p.reconnect()
	}
	s.UpdateCredential(&provider.Credential{Secret: map[string]string{"key": "renewed-" + s.Conn.Secret["key"]}, Expiry: s.Now.Add(time.Hour)})
	return nil
}

// A reconnect acknowledged while a renewal of the old credential is in
// flight is never overwritten by it.
func TestRenewalDoesNotOverwriteReconnect(t *testing.T) {
	e, h, _ := hookedSetup(t, "prod")
	p := &updatingProvider{}
	e.providers["fake"] = p
	p.reconnect = func() {
		c, err := h.Store.Get(context.Background(), "id0")
		if err != nil {
			t.Error(err)
			return
		}
		c.Secret = map[string]string{"key": "from-reconnect"}
		if err := h.Store.Put(context.Background(), c); err != nil {
			t.Error(err)
		}
	}
	gather(t, scrapeOf(e, nil))
	c, _ := h.Store.Get(context.Background(), "id0")
	if got := c.Secret["key"]; got != "from-reconnect" {
		t.Errorf("secret after a reconnect during a renewal: %q, want the reconnect's", got)
	}
	// Without a reconnect the renewal is saved.
	p.reconnect = nil
	e.Forget("id0")
	gather(t, scrapeOf(e, nil))
	if c, _ := h.Store.Get(context.Background(), "id0"); c.Secret["key"] != "renewed-from-reconnect" {
		t.Errorf("renewal not saved: %q", c.Secret["key"])
	}
}

// A hung store does not hold the collection forever, and shutdown waits
// for the renewed credential to be saved.
func TestHungStoreSaveIsBoundedAndFlushedOnClose(t *testing.T) {
	e, h, _ := hookedSetup(t, "prod")
	e.creds.saveTry = 50 * time.Millisecond
	e.providers["fake"] = &updatingProvider{}
	hang := make(chan struct{})
	h.set(func(h *hookStore) { h.hang = hang })
	got := gather(t, scrapeOf(e, nil))
	if got[`saas_scrape_success{connection="prod",vendor="fake"}`] != 1 {
		t.Errorf("scrape with a hung store: %v", got)
	}
	close(hang)
	h.set(func(h *hookStore) { h.hang = nil })
	e.Close()
	if c, _ := h.Store.Get(context.Background(), "id0"); c.Secret["key"] != "renewed-secret-prod" {
		t.Errorf("after Close: stored secret %q, want the renewed one", c.Secret["key"])
	}
}

// panicStore panics in UpdateLocked: engine code outside the provider.
type panicStore struct{ store.Store }

func (panicStore) UpdateLocked(context.Context, string, func(store.Connection) (*store.Connection, error)) error {
	panic("store bug")
}

// A panic in a collection outside the provider's own code (here the store,
// saving a renewed credential) fails that connection, not the process.
func TestPanicOutsideProviderFailsOnlyTheConnection(t *testing.T) {
	e, _, mem, _ := setup(t, "prod")
	ps := panicStore{mem}
	e.o.Store, e.creds.st = ps, ps
	e.providers["fake"] = &updatingProvider{}
	got := gather(t, scrapeOf(e, nil))
	if got[`saas_scrape_success{connection="prod",vendor="fake"}`] != 0 || got[`saas_connection_state{connection="prod",state="error",vendor="fake"}`] != 1 {
		t.Errorf("after a panic saving the credential: %v", got)
	}
}
