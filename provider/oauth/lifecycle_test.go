package oauth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

func wantState(t *testing.T, err error, state string) {
	t.Helper()
	var se *provider.StateError
	switch {
	case state == "" && errors.As(err, &se):
		t.Errorf("want a plain error, got state %s: %v", se.State, err)
	case state == "" && err == nil:
		t.Error("want an error, got none")
	case state != "" && (!errors.As(err, &se) || se.State != state):
		t.Errorf("want state %s, got %v", state, err)
	}
}

func TestFreshTokenIsUsedWithoutRefresh(t *testing.T) {
	a := newAS(t)
	m, _ := newMethod(t, a, nil)
	s := newStored(t, oauthConn("at-old", "rt-old", t0.Add(2*time.Minute)))
	tok, err := m.AccessToken(context.Background(), s.scrape(t0, nil))
	if err != nil || tok != "at-old" || a.count() != 0 {
		t.Errorf("token %q err %v, %d refresh calls", tok, err, a.count())
	}
}

func TestRefreshBeforeExpiryRotatesAndSaves(t *testing.T) {
	a := newAS(t)
	m, _ := newMethod(t, a, nil)
	s := newStored(t, oauthConn("at-old", "rt-old", t0.Add(30*time.Second)))
	cc := &countingClient{}
	tok, err := m.AccessToken(context.Background(), s.scrape(t0, &http.Client{Transport: cc}))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "access-1-xyz" || a.count() != 1 || cc.count() != 1 {
		t.Errorf("token %q, %d refresh calls, %d through the scrape's client", tok, a.count(), cc.count())
	}
	if f := a.lastForm(); f.Get("grant_type") != "refresh_token" || f.Get("refresh_token") != "rt-old" {
		t.Errorf("refresh request %v", f)
	}
	c := s.get()
	if c.Secret[SecretAccessToken] != "access-1-xyz" || c.Secret[SecretRefreshToken] != "refresh-1-xyz" {
		t.Error("the rotated tokens were not saved before use")
	}
	if c.Settings[SettingAccessExpiry] != t0.Add(time.Hour).Format(time.RFC3339) || c.Settings["region"] != "us" || !c.Expiry.IsZero() {
		t.Errorf("after refresh: settings %v expiry %v", c.Settings, c.Expiry)
	}

	// A server that does not rotate keeps the refresh token.
	a.set(func(a *fakeAS) { a.rotate = false })
	if _, err := m.AccessToken(context.Background(), s.scrape(t0.Add(time.Hour), nil)); err != nil {
		t.Fatal(err)
	}
	if c := s.get(); c.Secret[SecretRefreshToken] != "refresh-1-xyz" || c.Secret[SecretAccessToken] != "access-2-xyz" {
		t.Errorf("non-rotating refresh lost the refresh token: %v", keys(c.Secret))
	}
}

func TestRefreshTokenLifetimeIsTheExpiry(t *testing.T) {
	a := newAS(t)
	a.set(func(a *fakeAS) { a.refLife = 7 * 24 * 3600 })
	m, _ := newMethod(t, a, nil)
	s := newStored(t, oauthConn("at-old", "rt-old", t0))
	if _, err := m.AccessToken(context.Background(), s.scrape(t0, nil)); err != nil {
		t.Fatal(err)
	}
	if c := s.get(); !c.Expiry.Equal(t0.Add(7 * 24 * time.Hour)) {
		t.Errorf("expiry %v, want the refresh token's end", c.Expiry)
	}
}

// Another replica refreshed after this scrape read the store: the stored
// token is used and the vendor sees no second refresh.
func TestAnotherReplicaRefreshedAlready(t *testing.T) {
	a := newAS(t)
	m, _ := newMethod(t, a, nil)
	s := newStored(t, oauthConn("at-old", "rt-old", t0.Add(10*time.Second)))
	sc := s.scrape(t0, nil) // read before the other replica's refresh
	s.put(func() (c store.Connection) {
		c = s.get()
		c.Secret[SecretAccessToken], c.Secret[SecretRefreshToken] = "at-other", "rt-other"
		c.Settings[SettingAccessExpiry] = t0.Add(time.Hour).Format(time.RFC3339)
		return c
	}())
	tok, err := m.AccessToken(context.Background(), sc)
	if err != nil || tok != "at-other" || a.count() != 0 {
		t.Errorf("token %q err %v, %d refresh calls", tok, err, a.count())
	}
	// Same after a 401: the stored token is not the rejected one.
	tok, err = m.Rejected(context.Background(), sc, "at-old")
	if err != nil || tok != "at-other" || a.count() != 0 {
		t.Errorf("after 401: token %q err %v, %d refresh calls", tok, err, a.count())
	}
}

func TestRejectedTokenIsRefreshedOnce(t *testing.T) {
	a := newAS(t)
	m, _ := newMethod(t, a, nil)
	s := newStored(t, oauthConn("at-old", "rt-old", t0.Add(time.Hour)))
	tok, err := m.Rejected(context.Background(), s.scrape(t0, nil), "at-old")
	if err != nil || tok != "access-1-xyz" || a.count() != 1 {
		t.Errorf("token %q err %v, %d refresh calls", tok, err, a.count())
	}
}

func TestInvalidGrantExpiresAndKeepsTheTokens(t *testing.T) {
	a := newAS(t)
	a.set(func(a *fakeAS) { a.errCode, a.desc = "invalid_grant", "grant revoked" })
	m, _ := newMethod(t, a, nil)
	s := newStored(t, oauthConn("at-old", "rt-old", t0.Add(-time.Minute)))
	before := s.get()
	_, err := m.AccessToken(context.Background(), s.scrape(t0, nil))
	wantState(t, err, "expired")
	if err == nil || !strings.Contains(err.Error(), "invalid_grant (grant revoked)") || !strings.Contains(err.Error(), "reconnect") {
		t.Errorf("message: %v", err)
	}
	if a.count() != 1 {
		t.Errorf("invalid_grant was retried: %d calls", a.count())
	}
	if c := s.get(); c.Secret[SecretRefreshToken] != before.Secret[SecretRefreshToken] || c.Settings[SettingFailingSince] != "" {
		t.Errorf("invalid_grant changed the stored connection: %v", c.Settings)
	}
}

func TestRefreshFailureWindow(t *testing.T) {
	a := newAS(t)
	a.set(func(a *fakeAS) { a.errCode, a.status = "temporarily_unavailable", 503 })
	m, _ := newMethod(t, a, nil)
	exp := t0.Add(40 * time.Second)
	s := newStored(t, oauthConn("at-old", "rt-old", exp))

	// Failing, the current token still valid: used, failure recorded,
	// expiry = the access token's end; retried within the scrape.
	tok, err := m.AccessToken(context.Background(), s.scrape(t0, nil))
	if err != nil || tok != "at-old" {
		t.Fatalf("within the window with a valid token: %q %v", tok, err)
	}
	if a.count() != refreshAttempts {
		t.Errorf("%d refresh attempts, want %d", a.count(), refreshAttempts)
	}
	c := s.get()
	if c.Settings[SettingFailingSince] != t0.Format(time.RFC3339) || !c.Expiry.Equal(exp) {
		t.Errorf("failing: settings %v expiry %v", c.Settings, c.Expiry)
	}

	// The token ran out, still within the window: an error, not expired;
	// the first failure time stays.
	_, err = m.AccessToken(context.Background(), s.scrape(t0.Add(time.Hour), nil))
	wantState(t, err, "")
	if err == nil || !strings.Contains(err.Error(), "failing since "+t0.Format(time.RFC3339)) || !strings.Contains(err.Error(), "HTTP 503: temporarily_unavailable") {
		t.Errorf("message: %v", err)
	}
	if got := s.get().Settings[SettingFailingSince]; got != t0.Format(time.RFC3339) {
		t.Errorf("failing since moved to %s", got)
	}

	// Past the window: expired.
	_, err = m.AccessToken(context.Background(), s.scrape(t0.Add(96*time.Hour+time.Second), nil))
	wantState(t, err, "expired")
	if err == nil || !strings.Contains(err.Error(), "refresh failure window (96h0m0s)") {
		t.Errorf("message: %v", err)
	}

	// Recovery within the window clears the failure.
	a.set(func(a *fakeAS) { a.errCode, a.status = "", 0 })
	tok, err = m.AccessToken(context.Background(), s.scrape(t0.Add(2*time.Hour), nil))
	if err != nil || tok == "at-old" {
		t.Fatalf("recovery: %q %v", tok, err)
	}
	if c := s.get(); c.Settings[SettingFailingSince] != "" || !c.Expiry.IsZero() {
		t.Errorf("after recovery: settings %v expiry %v", c.Settings, c.Expiry)
	}
}

func TestClientErrorsAreNotRetriedButCountTowardTheWindow(t *testing.T) {
	a := newAS(t)
	a.set(func(a *fakeAS) { a.errCode, a.status = "invalid_client", 401 })
	m, _ := newMethod(t, a, nil)
	s := newStored(t, oauthConn("at-old", "rt-old", t0.Add(-time.Second)))
	_, err := m.AccessToken(context.Background(), s.scrape(t0, nil))
	wantState(t, err, "")
	if a.count() != 1 || s.get().Settings[SettingFailingSince] == "" {
		t.Errorf("%d calls; failing since %q", a.count(), s.get().Settings[SettingFailingSince])
	}
}

func TestUnreachableTokenEndpoint(t *testing.T) {
	a := newAS(t)
	m, _ := newMethod(t, a, nil)
	a.srv.Close()
	s := newStored(t, oauthConn("at-old", "rt-old", t0.Add(-time.Second)))
	_, err := m.AccessToken(context.Background(), s.scrape(t0, nil))
	wantState(t, err, "")
	if err == nil || !strings.Contains(err.Error(), "token endpoint: Post "+a.srv.URL+"/token") {
		t.Errorf("message: %v", err)
	}
}

func TestNoTokensOrNoRefreshToken(t *testing.T) {
	a := newAS(t)
	m, _ := newMethod(t, a, nil)
	s := newStored(t, oauthConn("", "", t0))
	_, err := m.AccessToken(context.Background(), s.scrape(t0, nil))
	wantState(t, err, "expired")
	s = newStored(t, oauthConn("at-old", "", t0))
	_, err = m.AccessToken(context.Background(), s.scrape(t0, nil))
	wantState(t, err, "expired")
	if a.count() != 0 {
		t.Error("refreshed without a refresh token")
	}
}

func TestReconnectedMeanwhile(t *testing.T) {
	a := newAS(t)
	m, _ := newMethod(t, a, nil)
	s := newStored(t, oauthConn("at-old", "rt-old", t0))
	sc := s.scrape(t0, nil)
	c := s.get()
	c.AuthMethod, c.Secret = "api_key", map[string]string{"api_key": "k"}
	s.put(c)
	_, err := m.AccessToken(context.Background(), sc)
	wantState(t, err, "")
	if a.count() != 0 || s.get().Secret["api_key"] != "k" {
		t.Error("refreshed or changed a connection reconnected with another method")
	}
}

func TestWithoutRenewTheEngineSaves(t *testing.T) {
	a := newAS(t)
	m, _ := newMethod(t, a, nil)
	c := oauthConn("at-old", "rt-old", t0)
	c.AuthMethod = "oauth"
	sc := &provider.Scrape{Conn: collector.View(c), Now: t0}
	tok, err := m.AccessToken(context.Background(), sc)
	if err != nil {
		t.Fatal(err)
	}
	_, _, updated := sc.Result()
	if updated == nil || updated.Secret[SecretAccessToken] != tok || updated.Secret[SecretRefreshToken] != "refresh-1-xyz" {
		t.Errorf("updated credential %v", updated)
	}
}

// No token value reaches an error message.
func TestErrorsNeverCarryTokens(t *testing.T) {
	a := newAS(t)
	m, _ := newMethod(t, a, nil)
	for _, setup := range []func(*fakeAS){
		func(a *fakeAS) { a.errCode, a.desc = "invalid_grant", "" },
		func(a *fakeAS) { a.errCode, a.status = "server_error", 500 },
		func(a *fakeAS) { a.html = true },
	} {
		a.set(func(a *fakeAS) { a.errCode, a.desc, a.status, a.html = "", "", 0, false; setup(a) })
		s := newStored(t, oauthConn("at-secret-1234", "rt-secret-5678", t0))
		_, err := m.AccessToken(context.Background(), s.scrape(t0, nil))
		if err == nil || strings.Contains(err.Error(), "secret-") || strings.Contains(err.Error(), clientSecret) {
			t.Errorf("error %v", err)
		}
	}
}

// Another replica holds the connection's lock while it refreshes: a scrape
// whose token is due but still valid uses it instead of waiting out its
// deadline for the lock, and does not refresh itself.
func TestLockHeldByAnotherRefreshUsesTheValidToken(t *testing.T) {
	a := newAS(t)
	m, _ := newMethod(t, a, nil)
	s := newStored(t, oauthConn("at-old", "rt-old", t0.Add(30*time.Second)))
	entered, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		held <- s.st.UpdateLocked(context.Background(), s.id, func(store.Connection) (*store.Connection, error) {
			close(entered)
			<-release
			return nil, nil
		})
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tok, err := m.AccessToken(ctx, s.scrape(t0, nil))
	close(release)
	if err != nil || tok != "at-old" || a.count() != 0 {
		t.Errorf("token %q err %v, %d refresh calls; want the current token, no refresh", tok, err, a.count())
	}
	if err := <-held; err != nil {
		t.Fatal(err)
	}
}
