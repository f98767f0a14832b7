package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/oauth2"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// Where an OAuth connection keeps its tokens: secrets in Credential.Secret,
// times (RFC 3339, UTC) in Credential.Settings.
const (
	SecretAccessToken    = "access_token"
	SecretRefreshToken   = "refresh_token"
	SettingAccessExpiry  = "access_token_expiry"
	SettingRefreshExpiry = "refresh_token_expiry"
	// SettingFailingSince is when refreshing started failing (network,
	// 5xx); absent while refresh works.
	SettingFailingSince = "refresh_failing_since"
)

// renewLockWait bounds the wait for another replica's refresh while the
// current access token is still valid.
const renewLockWait = time.Second

// refreshAttempts: a refresh failing with a network error or 5xx is tried
// this many times in one scrape, waiting Config.RetryBackoff, then twice
// that, while the scrape's deadline allows.
const refreshAttempts = 3

// tokens is what a connection holds of its OAuth grant.
type tokens struct {
	access, refresh                           string
	accessExpiry, refreshExpiry, failingSince time.Time
}

func tokensOf(c provider.Connection) tokens {
	return tokens{
		access:        c.Secret[SecretAccessToken],
		refresh:       c.Secret[SecretRefreshToken],
		accessExpiry:  parseTime(c.Settings[SettingAccessExpiry]),
		refreshExpiry: parseTime(c.Settings[SettingRefreshExpiry]),
		failingSince:  parseTime(c.Settings[SettingFailingSince]),
	}
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// fromToken reads a token answer received at now. prev is the grant before
// a refresh: a refresh token that did not rotate keeps its known expiry.
func fromToken(tok *oauth2.Token, now time.Time, prev tokens) tokens {
	t := tokens{access: tok.AccessToken, refresh: tok.RefreshToken}
	switch {
	case tok.ExpiresIn > 0:
		t.accessExpiry = now.Add(time.Duration(tok.ExpiresIn) * time.Second)
	case !tok.Expiry.IsZero():
		t.accessExpiry = tok.Expiry // the library's clock; only for non-JSON answers
	}
	if secs, ok := extraSeconds(tok, "refresh_token_expires_in", "refresh_expires_in"); ok {
		t.refreshExpiry = now.Add(time.Duration(secs) * time.Second)
	} else if t.refresh == prev.refresh {
		t.refreshExpiry = prev.refreshExpiry
	}
	return t
}

// extraSeconds reads a positive number of seconds from the first of keys
// present in the token answer (JSON number or string).
func extraSeconds(tok *oauth2.Token, keys ...string) (int64, bool) {
	for _, k := range keys {
		var n int64
		switch v := tok.Extra(k).(type) {
		case float64:
			n = int64(v)
		case json.Number:
			n, _ = v.Int64()
		case string:
			n, _ = strconv.ParseInt(v, 10, 64)
		default:
			continue
		}
		if n > 0 {
			return n, true
		}
	}
	return 0, false
}

// expiresWithin reports whether the access token is gone by now+d.
func (t tokens) expiresWithin(now time.Time, d time.Duration) bool {
	return !t.accessExpiry.IsZero() && !now.Add(d).Before(t.accessExpiry)
}

// expiry is when the connection stops working without a person: the
// refresh token's end (zero if unknown) while refreshing works; while it
// fails, the earliest of the access token's end, the refresh token's end
// and the end of the failure window.
func (t tokens) expiry(window time.Duration) time.Time {
	if t.failingSince.IsZero() {
		return t.refreshExpiry
	}
	e := t.failingSince.Add(window)
	for _, x := range []time.Time{t.accessExpiry, t.refreshExpiry} {
		if !x.IsZero() && x.Before(e) {
			e = x
		}
	}
	return e
}

func (t tokens) secret(base map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	set(out, SecretAccessToken, t.access)
	set(out, SecretRefreshToken, t.refresh)
	return out
}

func (t tokens) settings(base map[string]string) map[string]string {
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range map[string]time.Time{SettingAccessExpiry: t.accessExpiry, SettingRefreshExpiry: t.refreshExpiry, SettingFailingSince: t.failingSince} {
		if v.IsZero() {
			delete(out, k)
		} else {
			out[k] = v.UTC().Format(time.RFC3339)
		}
	}
	return out
}

func set(m map[string]string, k, v string) {
	if v == "" {
		delete(m, k)
	} else {
		m[k] = v
	}
}

// credential is c with t's tokens, for Scrape.Renew: identity and scopes
// stay as stored.
func (t tokens) credential(c provider.Connection, window time.Duration) *provider.Credential {
	return &provider.Credential{
		AuthMethod: c.AuthMethod,
		Secret:     t.secret(c.Secret),
		Settings:   t.settings(c.Settings),
		Expiry:     t.expiry(window),
	}
}

// AccessToken returns the access token to call the vendor with for the
// scrape's connection. A token that expires within the margin (judged by
// s.Now) is refreshed first, under s.Renew, so one replica refreshes and
// the rotated tokens are stored before use. Errors are ready for the
// engine: provider.Expired when a person must reconnect (refresh refused
// with invalid_grant, or failing for longer than the failure window), a
// plain error while refreshing fails and no valid token is left.
func (m *Method) AccessToken(ctx context.Context, s *provider.Scrape) (string, error) {
	t := tokensOf(s.Conn)
	if t.access == "" && t.refresh == "" {
		return "", provider.Expired(fmt.Errorf("the stored %s connection has no OAuth tokens; reconnect it", m.vendor))
	}
	if t.access != "" && !t.expiresWithin(s.Now, m.cfg.RefreshMargin) {
		return t.access, nil
	}
	return m.renew(ctx, s, "")
}

// Rejected is called once when the vendor answered 401 to token: it
// refreshes (unless another replica already did) and returns the token to
// retry with. Errors are as for AccessToken.
func (m *Method) Rejected(ctx context.Context, s *provider.Scrape, token string) (string, error) {
	return m.renew(ctx, s, token)
}

// renew refreshes the connection's tokens under the store lock. rejected
// is a token the vendor refused ("" if none).
func (m *Method) renew(ctx context.Context, s *provider.Scrape, rejected string) (string, error) {
	now := s.Now
	window := m.cfg.RefreshFailureWindow
	var (
		use     string // token to call the vendor with
		failure error  // refresh failed (not for good)
		since   time.Time
	)
	var fnErr error
	fn := func(c provider.Connection) (cred *provider.Credential, err error) {
		defer func() { fnErr = err }()
		use, failure, since = "", nil, time.Time{}
		if c.AuthMethod != s.Conn.AuthMethod {
			return nil, errors.New("the connection was reconnected with another method during this collection; the next scrape uses it")
		}
		t := tokensOf(c)
		// Another replica may have refreshed since this scrape read the store.
		if t.access != "" && t.access != rejected && !t.expiresWithin(now, m.cfg.RefreshMargin) {
			use = t.access
			return nil, nil
		}
		if t.refresh == "" {
			return nil, provider.Expired(fmt.Errorf("the %s access token ran out and there is no refresh token; reconnect the connection", m.vendor))
		}
		tok, err := m.refresh(ctx, s.HTTP, t.refresh)
		if err == nil {
			nt := fromToken(tok, now, t)
			use = nt.access
			m.cfg.Logger.Debug("access token refreshed", "connection", c.Name, "id", c.ID, "expires", nt.accessExpiry, "rotated", nt.refresh != t.refresh)
			return nt.credential(c, window), nil
		}
		msg := describeRefreshError(err)
		if isInvalidGrant(err) {
			// Nothing is saved: a person reconnects, and the old tokens
			// stay for the record.
			return nil, provider.Expired(fmt.Errorf("%s refused the refresh token (%s): access was revoked or ran out; reconnect the connection", m.vendor, msg))
		}
		since = t.failingSince
		if since.IsZero() || since.After(now) {
			since = now
		}
		if now.Sub(since) > window {
			return nil, provider.Expired(fmt.Errorf("refreshing the %s access token has failed since %s, longer than the refresh failure window (%s): %s; reconnect the connection", m.vendor, since.UTC().Format(time.RFC3339), window, msg))
		}
		failure = errors.New(msg)
		if t.access != "" && t.access != rejected && (t.accessExpiry.IsZero() || now.Before(t.accessExpiry)) {
			use = t.access
		}
		if since.Equal(t.failingSince) {
			return nil, nil // already recorded
		}
		t.failingSince = since
		return t.credential(c, window), nil
	}
	if s.Renew != nil {
		rctx := ctx
		cur := tokensOf(s.Conn)
		valid := cur.access != "" && cur.access != rejected && (cur.accessExpiry.IsZero() || now.Before(cur.accessExpiry))
		if valid {
			// Due (within the margin) but still valid: if another replica
			// holds the lock, it is refreshing; use the current token
			// rather than wait out the scrape for it.
			rctx = store.WithLockWait(ctx, renewLockWait)
		}
		if _, err := s.Renew(rctx, fn); err != nil {
			if valid && errors.Is(err, store.ErrLocked) {
				m.cfg.Logger.Debug("another replica is refreshing the access token; using the current one meanwhile", "connection", s.Conn.Name, "id", s.Conn.ID, "expires", cur.accessExpiry)
				return cur.access, nil
			}
			if err != fnErr && use != "" && failure == nil {
				// The vendor rotated the tokens but the store did not keep them.
				return "", fmt.Errorf("saving the refreshed %s tokens failed (if the refresh token rotated, the connection needs a reconnect): %w", m.vendor, err)
			}
			return "", err
		}
	} else {
		// No store lock (a bare Scrape in tests): save through the engine.
		cred, err := fn(s.Conn)
		if err != nil {
			return "", err
		}
		if cred != nil {
			s.UpdateCredential(cred)
		}
	}
	if failure != nil {
		until := since.Add(window).UTC().Format(time.RFC3339)
		if use != "" {
			m.cfg.Logger.Warn("refreshing the access token failed; using the current one while it lasts", "connection", s.Conn.Name, "id", s.Conn.ID, "failing_since", since, "expired_after", until, "err", failure)
			return use, nil
		}
		return "", fmt.Errorf("refreshing the %s access token failed (failing since %s; the connection is marked expired if this lasts past %s): %w", m.vendor, since.UTC().Format(time.RFC3339), until, failure)
	}
	if use == "" {
		return "", fmt.Errorf("refreshing the %s access token gave no token", m.vendor)
	}
	return use, nil
}

// refresh runs the refresh_token grant over hc, retrying network errors
// and 5xx while the deadline allows.
func (m *Method) refresh(ctx context.Context, hc *http.Client, refreshToken string) (*oauth2.Token, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	cctx := context.WithValue(ctx, oauth2.HTTPClient, hc)
	conf := m.cfg.oauth2Config("")
	wait := m.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		tok, err := conf.TokenSource(cctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
		if err == nil {
			if tt := tok.Type(); tt != "Bearer" {
				return nil, fmt.Errorf("the token endpoint issued a token of type %q; only Bearer tokens are supported", clip(tt, 40))
			}
			return tok, nil
		}
		if attempt >= refreshAttempts || !retryable(err) || ctx.Err() != nil {
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < 2*wait {
			return nil, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
		wait *= 2
	}
}

func isInvalidGrant(err error) bool {
	var re *oauth2.RetrieveError
	return errors.As(err, &re) && re.ErrorCode == "invalid_grant"
}

// retryable: network errors, 5xx, 429 and the server's own "try later".
// Other OAuth errors (invalid_client, ...) need a person; they still count
// toward the failure window, since fixing the configuration heals them.
func retryable(err error) bool {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	st := 0
	if re.Response != nil {
		st = re.Response.StatusCode
	}
	return st >= 500 || st == http.StatusTooManyRequests || re.ErrorCode == "temporarily_unavailable" || re.ErrorCode == "server_error"
}

// describeRefreshError says what the token endpoint answered, without its
// raw body or any URL parameter.
func describeRefreshError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		st := 0
		if re.Response != nil {
			st = re.Response.StatusCode
		}
		msg := fmt.Sprintf("token endpoint answered HTTP %d", st)
		if re.ErrorCode != "" {
			msg += ": " + clip(re.ErrorCode, 64)
			if d := clip(re.ErrorDescription, 200); d != "" {
				msg += " (" + d + ")"
			}
		}
		return msg
	}
	return "token endpoint: " + cleanErr(err).Error()
}
