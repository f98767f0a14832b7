package segment

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

func oauthValues(region, client, keyID string) map[string]string {
	return map[string]string{"region": region, "client_id": client, "key_id": keyID, "private_key": vendorsim.SegmentOAuthTestPrivateKey}
}

// connect verifies the Acme OAuth app and returns the stored connection.
func (e *env) connect(t *testing.T) provider.Connection {
	t.Helper()
	m := e.p.Methods()[1].(provider.FormMethod)
	cred, err := m.Verify(context.Background(), e.srv.Client(), oauthValues("us", vendorsim.SegmentOAuthClientAcme, vendorsim.SegmentOAuthKeyIDAcme))
	if err != nil {
		t.Fatal(err)
	}
	return provider.Connection{
		ID: "c1", Vendor: vendor, Name: "prod", AuthMethod: cred.AuthMethod, Account: cred.Account, AccountID: cred.AccountID,
		Settings: cred.Settings, Secret: cred.Secret, Scopes: cred.Scopes, Expiry: cred.Expiry,
	}
}

func (e *env) tokenCalls(region string) int64 {
	return e.sim.CallCounts().Routes["POST /segment/oauth/"+region+"/token"]
}

func TestVerifyOAuth(t *testing.T) {
	e := newEnv(t, 3)
	e.sim.SetSegmentTokenLifetime(time.Hour)
	c := e.connect(t)
	if c.AccountID != "AcmeVendorsimWs0000001" || c.Account != "Acme Analytics" || c.AuthMethod != "client_credentials" {
		t.Errorf("connection: %+v", c)
	}
	if c.Settings["region"] != "us" || c.Settings["workspace_slug"] != "acme-analytics" ||
		c.Settings["client_id"] != vendorsim.SegmentOAuthClientAcme || c.Settings["key_id"] != vendorsim.SegmentOAuthKeyIDAcme {
		t.Errorf("settings: %v", c.Settings)
	}
	if c.Secret["private_key"] != strings.TrimSpace(vendorsim.SegmentOAuthTestPrivateKey) || !strings.HasPrefix(c.Secret["access_token"], "vsat_") ||
		c.Secret["access_token_expiry"] != "2026-03-15T13:00:00Z" {
		t.Errorf("secret keys: %v / expiry %q", len(c.Secret), c.Secret["access_token_expiry"])
	}
	// The exporter renews the token itself: the connection has no expiry.
	if !c.Expiry.IsZero() {
		t.Errorf("expiry %s, want none", c.Expiry)
	}
	for k, v := range c.Settings {
		if strings.Contains(v, "PRIVATE KEY") || strings.HasPrefix(v, "vsat_") {
			t.Errorf("secret in setting %s", k)
		}
	}

	// EU app in the EU region; the wrong region gives the hint.
	m := e.p.Methods()[1].(provider.FormMethod)
	verify := func(v map[string]string) (*provider.Credential, error) {
		return m.Verify(context.Background(), e.srv.Client(), v)
	}
	if cred, err := verify(oauthValues("eu", vendorsim.SegmentOAuthClientEuro, vendorsim.SegmentOAuthKeyIDEuro)); err != nil || cred.Account != "Euro Corp" {
		t.Errorf("eu app: %v", err)
	}
	_, err := verify(oauthValues("eu", vendorsim.SegmentOAuthClientAcme, vendorsim.SegmentOAuthKeyIDAcme))
	inputError(t, err, "region", "this OAuth app belongs to the US region")
	_, err = verify(oauthValues("us", vendorsim.SegmentOAuthClientAcme, "some-other-key"))
	inputError(t, err, "client_id", `Segment refused the OAuth client in region us`)
	if err != nil && !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("the vendor's reason is missing: %v", err)
	}

	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}))
	pubDER, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}))
	key := vendorsim.SegmentOAuthTestPrivateKey
	for _, c := range []struct {
		edit        func(map[string]string)
		field, want string
	}{
		{func(v map[string]string) { v["private_key"] = "" }, "private_key", "the private key is empty"},
		{func(v map[string]string) {
			v["private_key"] = "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQC29q9JJqnygKNf"
		}, "private_key", "not in PEM format"},
		{func(v map[string]string) { v["private_key"] = pubPEM }, "private_key", "this is a public key, not the private key"},
		{func(v map[string]string) { v["private_key"] = ecPEM }, "private_key", "not an RSA key"},
		{func(v map[string]string) { v["private_key"] = key + key }, "private_key", "exactly one key"},
		{func(v map[string]string) {
			v["private_key"] = strings.Replace(key, "MIIEvAIBADANBgkqhkiG9w0BAQEFAASC", "MIIEvAIBADANBgkqhkiG9w0BAQEFAASD", 1)
		}, "private_key", "does not parse"},
		{func(v map[string]string) {
			v["private_key"] = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
		}, "private_key", "encrypted with a passphrase"},
		{func(v map[string]string) { v["client_id"] = "" }, "client_id", "the App ID is empty"},
		{func(v map[string]string) { v["key_id"] = "key id with spaces" }, "key_id", "the Key ID contains characters"},
		{func(v map[string]string) { v["region"] = "apac" }, "region", "unknown region"},
	} {
		v := oauthValues("us", vendorsim.SegmentOAuthClientAcme, vendorsim.SegmentOAuthKeyIDAcme)
		c.edit(v)
		_, err := verify(v)
		inputError(t, err, c.field, c.want)
		if err != nil && strings.Contains(err.Error(), "MIIE") {
			t.Errorf("error shows key material: %v", err)
		}
	}
	// A key pasted with literal \n (from an environment variable) works.
	v := oauthValues("us", vendorsim.SegmentOAuthClientAcme, vendorsim.SegmentOAuthKeyIDAcme)
	v["private_key"] = strings.ReplaceAll(strings.TrimSpace(key), "\n", `\n`)
	if _, err := verify(v); err != nil {
		t.Errorf("escaped newlines: %v", err)
	}
	e.sim.SetSegmentOAuthRefuse(true)
	_, err = verify(oauthValues("us", vendorsim.SegmentOAuthClientAcme, vendorsim.SegmentOAuthKeyIDAcme))
	inputError(t, err, "client_id", "Segment refused the OAuth client")
}

// The assertion is what Segment documents: RS256, kid, iss = aud = the
// authorization server (a JSON string), sub = App ID, a short life and a
// fresh jti.
func TestAssertion(t *testing.T) {
	p, _ := New(nil, provider.Env{})
	key, pemText, err := parsePrivateKey(vendorsim.SegmentOAuthTestPrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	app := &oauthApp{region: p.(*Provider).regions["eu"], clientID: "app1", keyID: "kid1", key: key, keyPEM: pemText}
	s1, err := app.assertion(t0)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := app.assertion(t0)
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(s1, claims, func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(func() time.Time { return t0 }))
	if err != nil {
		t.Fatal(err)
	}
	const aud = "https://oauth2.eu1.segmentapis.com"
	if tok.Header["kid"] != "kid1" || claims["iss"] != aud || claims["aud"] != aud || claims["sub"] != "app1" ||
		claims["exp"] != float64(t0.Add(45*time.Second).Unix()) || claims["jti"] == "" {
		t.Errorf("assertion: %v %v", tok.Header, claims)
	}
	// iat is 5 s in the past, so a token server whose clock is behind
	// does not see it issued in the future; it still lives < 60 s.
	if iat, exp := claims["iat"].(float64), claims["exp"].(float64); iat != float64(t0.Add(-5*time.Second).Unix()) || exp-iat >= 60 {
		t.Errorf("iat %v exp %v, want iat %d and a life under 60 s", iat, exp, t0.Add(-5*time.Second).Unix())
	}
	c2 := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(s2, c2); err != nil || c2["jti"] == claims["jti"] {
		t.Errorf("jti repeats: %v", err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(s1, ".")[1])
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil || !strings.HasPrefix(string(raw["aud"]), `"`) {
		t.Errorf("aud is not a plain string: %s", raw["aud"])
	}
}

// TestOAuthRenewal: with a fake clock, the token is reused while it has
// more than renewMargin left, renewed after that (the new token and the
// moved expiry go to UpdateCredential), and renewed again once that one
// runs low.
func TestOAuthRenewal(t *testing.T) {
	e := newEnv(t, 1000)
	e.sim.SetSegmentTokenLifetime(time.Hour)
	c := e.connect(t) // token valid until t0+1h
	first := c.Secret["access_token"]
	if n := e.tokenCalls("us"); n != 1 {
		t.Fatalf("%d token calls after Verify", n)
	}

	m, updated, err := e.collect(t, c, t0.Add(30*time.Minute))
	if err != nil || updated != nil || e.tokenCalls("us") != 1 {
		t.Fatalf("30 min in: err %v, updated %v, %d token calls", err, updated != nil, e.tokenCalls("us"))
	}
	compareGolden(t, m, "testdata/acme.prom")

	// 55 minutes in, 5 minutes left: renewed before use.
	at := t0.Add(55 * time.Minute)
	_, updated, err = e.collect(t, c, at)
	if err != nil {
		t.Fatal(err)
	}
	if updated == nil || e.tokenCalls("us") != 2 {
		t.Fatalf("not renewed (%d token calls)", e.tokenCalls("us"))
	}
	second := updated.Secret["access_token"]
	if second == "" || second == first || !updated.Expiry.IsZero() ||
		updated.Secret["private_key"] != c.Secret["private_key"] || updated.Secret["access_token_expiry"] != "2026-03-15T13:55:00Z" {
		t.Errorf("renewed credential: expiry %s, %d secret keys, new token %v", updated.Expiry, len(updated.Secret), second != first)
	}
	if updated.AccountID != c.AccountID || updated.AuthMethod != c.AuthMethod || updated.Settings["client_id"] != c.Settings["client_id"] {
		t.Errorf("renewed credential lost fields: %+v", updated)
	}

	// The engine stores it; the next scrapes use it.
	c.Secret, c.Expiry = updated.Secret, updated.Expiry
	if _, updated, err := e.collect(t, c, t0.Add(70*time.Minute)); err != nil || updated != nil || e.tokenCalls("us") != 2 {
		t.Errorf("70 min: err %v, renewed %v", err, updated != nil)
	}
	// The first token has expired; the API refuses it, the stored one works.
	if a := e.srvGet(t, "/segment/us/", first); a != http.StatusUnauthorized {
		t.Errorf("first token after its expiry: %d", a)
	}
	// Long after expiry: renewed again.
	if _, updated, err := e.collect(t, c, t0.Add(5*time.Hour)); err != nil || updated == nil || updated.Secret["access_token_expiry"] != "2026-03-15T18:00:00Z" {
		t.Errorf("5 h: err %v, renewed %v", err, updated != nil)
	}
}

func (e *env) srvGet(t *testing.T, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A refused renewal: while the token still works it is used (no state
// change) and its expiry becomes the connection's (the expiry metric
// warns); once it has expired, the state is expired.
func TestOAuthRenewalRefused(t *testing.T) {
	e := newEnv(t, 1000)
	e.sim.SetSegmentTokenLifetime(time.Hour)
	c := e.connect(t)
	e.sim.SetSegmentOAuthRefuse(true)
	_, updated, err := e.collect(t, c, t0.Add(55*time.Minute))
	if err != nil || updated == nil || !updated.Expiry.Equal(t0.Add(time.Hour)) || updated.Secret["access_token"] != c.Secret["access_token"] {
		t.Fatalf("still valid: err %v, updated %+v", err, updated)
	}
	c.Expiry = updated.Expiry
	if n := e.tokenCalls("us"); n != 2 {
		t.Errorf("%d token calls: a refusal is not retried", n)
	}
	_, updated, err = e.collect(t, c, t0.Add(61*time.Minute))
	if stateOf(err) != "expired" || updated != nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("want expired with the vendor's reason, got %v", err)
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), c.Secret["access_token"]) {
		t.Error("secret in error")
	}
}

// A token endpoint that keeps failing (503) is retried within the
// deadline, then the connection is expired once the token has run out.
func TestOAuthRenewalRetries(t *testing.T) {
	e := newEnv(t, 1000)
	c := e.connect(t)
	var calls atomic.Int64
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	us := e.p.regions["us"]
	us.tokenURL = down.URL + "/token"
	e.p.regions["us"] = us
	_, _, err := e.collect(t, c, t0.Add(25*time.Hour))
	if stateOf(err) != "expired" || !strings.Contains(err.Error(), "HTTP 503") || strings.Contains(err.Error(), "upstream unavailable") {
		t.Fatalf("want expired after retries, got %v", err)
	}
	if n := calls.Load(); n != int64(1+len(e.p.retryDelays)) {
		t.Errorf("%d token requests, want %d", n, 1+len(e.p.retryDelays))
	}
	// A deadline too close for the next wait stops the retries early.
	calls.Store(0)
	e.p.retryDelays = []time.Duration{time.Hour}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := &provider.Scrape{Conn: c, HTTP: e.srv.Client(), Now: t0.Add(25 * time.Hour)}
	if err := e.p.Collect(ctx, s); stateOf(err) != "expired" || calls.Load() != 1 {
		t.Errorf("deadline: %v after %d calls", err, calls.Load())
	}
}

// An access token revoked in Segment before its expiry: one renewal and
// a retry; if that fails too, expired.
func TestOAuthAccessTokenRevoked(t *testing.T) {
	e := newEnv(t, 1000)
	c := e.connect(t)
	e.sim.RevokeSegmentToken(c.Secret["access_token"])
	m, updated, err := e.collect(t, c, t0.Add(time.Minute))
	if err != nil || updated == nil || updated.Secret["access_token"] == c.Secret["access_token"] {
		t.Fatalf("want a renewal and success, got err %v, updated %v", err, updated != nil)
	}
	compareGolden(t, m, "testdata/acme.prom")

	e.sim.SetSegmentOAuthRefuse(true)
	_, _, err = e.collect(t, c, t0.Add(2*time.Minute))
	if stateOf(err) != "expired" || !strings.Contains(err.Error(), "could not be renewed") {
		t.Errorf("refused renewal after 401: %v", err)
	}
	// Even the whole workspace revoked: the new token is refused as well.
	e.sim.SetSegmentOAuthRefuse(false)
	e.sim.RevokeSegmentToken(vendorsim.SegmentTokenAcme)
	_, _, err = e.collect(t, c, t0.Add(3*time.Minute))
	if stateOf(err) != "expired" || !strings.Contains(err.Error(), "newly issued access token was refused") {
		t.Errorf("new token refused: %v", err)
	}
}

func TestOAuthBrokenConnection(t *testing.T) {
	e := newEnv(t, 1000)
	c := e.connect(t)
	c.Secret = map[string]string{"access_token": c.Secret["access_token"]}
	if _, _, err := e.collect(t, c, t0); stateOf(err) != "expired" || !strings.Contains(err.Error(), "reconnect") {
		t.Errorf("no key: %v", err)
	}
}

func TestTokenEndpointAnswers(t *testing.T) {
	key, pemText, _ := parsePrivateKey(vendorsim.SegmentOAuthTestPrivateKey)
	for _, c := range []struct {
		status     int
		body, want string
		definitive bool
	}{
		{200, `{"access_token":"","token_type":"Bearer"}`, "holds no access_token", false},
		{200, `{"access_token":"x","token_type":"mac"}`, `token type "mac" is not Bearer`, false},
		{200, `<html>`, "holds no access_token", false},
		{400, `{"error":"invalid_grant","error_description":"nope"}`, `HTTP 400: oauth2: "invalid_grant" "nope"`, true},
		{401, `plain text`, "HTTP 401: Unauthorized", true},
		{429, `{"error":"slow_down"}`, "HTTP 429", false},
		{500, `{"error":"server_error"}`, "HTTP 500", false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(c.status)
			w.Write([]byte(c.body))
		}))
		app := &oauthApp{region: region{name: "us", tokenURL: srv.URL + "/token"}, clientID: "a", keyID: "k", key: key, keyPEM: pemText}
		_, err := app.fetch(context.Background(), srv.Client(), t0)
		srv.Close()
		var te *tokenError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), c.want) || te.definitive() != c.definitive {
			t.Errorf("%d %s: %v (definitive %v)", c.status, c.body, err, te != nil && te.definitive())
		}
	}
	// No expires_in: the token never expires as far as we know.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.FormValue("scope") != Scope || r.FormValue("grant_type") != "client_credentials" || r.FormValue("client_assertion") == "" {
			http.Error(w, `{"error":"invalid_request"}`, 400)
			return
		}
		w.Write([]byte(`{"access_token":"tok","token_type":"bearer"}`))
	}))
	defer srv.Close()
	app := &oauthApp{region: region{name: "us", tokenURL: srv.URL + "/token"}, clientID: "a", keyID: "k", key: key, keyPEM: pemText}
	tok, err := app.fetch(context.Background(), srv.Client(), t0)
	if err != nil || tok.AccessToken != "tok" || !tok.Expiry.IsZero() {
		t.Errorf("no expires_in: %v %+v", err, tok)
	}
	if s := app.secret(tok); len(s) != 2 || tokenFromSecret(s).AccessToken != "tok" || !usable(tokenFromSecret(s), t0.AddDate(10, 0, 0), renewMargin) {
		t.Errorf("round trip without expiry: %v", s)
	}
}
