package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/saas-exporter/saas_exporter/collector"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/provider/providertest"
	"github.com/saas-exporter/saas_exporter/store"
)

const (
	clientID     = "client-1"
	clientSecret = "client-secret-must-never-show"
	redirectURL  = "http://127.0.0.1:9888/connect/example/callback"
)

var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// fakeAS is a token endpoint whose answers the test sets.
type fakeAS struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// Answer for the next calls: HTTP status and OAuth error ("" = success).
	status  int
	errCode string
	desc    string
	html    bool  // 200 with an HTML page
	life    int64 // expires_in of issued access tokens
	refLife int64 // refresh_token_expires_in (0: not sent)
	rotate  bool  // issue a new refresh token on refresh
	calls   int
	forms   []url.Values
	issued  int
}

func newAS(t *testing.T) *fakeAS {
	a := &fakeAS{t: t, life: 3600, rotate: true}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeAS) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if err := r.ParseForm(); err != nil {
		a.t.Errorf("token request form: %v", err)
	}
	a.forms = append(a.forms, r.PostForm)
	if u, p, ok := r.BasicAuth(); !ok || u != clientID || p != clientSecret {
		a.t.Errorf("client authentication: basic auth %v %q", ok, u)
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case a.html:
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html>portal</html>")
		return
	case a.errCode != "" || a.status >= 400:
		st := a.status
		if st == 0 {
			st = 400
		}
		w.WriteHeader(st)
		if a.errCode != "" {
			json.NewEncoder(w).Encode(map[string]string{"error": a.errCode, "error_description": a.desc})
		}
		return
	}
	a.issued++
	out := map[string]any{"access_token": fmt.Sprintf("access-%d-xyz", a.issued), "token_type": "bearer", "expires_in": a.life}
	if r.PostForm.Get("grant_type") == "authorization_code" || a.rotate {
		out["refresh_token"] = fmt.Sprintf("refresh-%d-xyz", a.issued)
	}
	if a.refLife > 0 {
		out["refresh_token_expires_in"] = a.refLife
	}
	json.NewEncoder(w).Encode(out)
}

func (a *fakeAS) set(f func(a *fakeAS)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}

func (a *fakeAS) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

func (a *fakeAS) lastForm() url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.forms) == 0 {
		return nil
	}
	return a.forms[len(a.forms)-1]
}

// verified records what the vendor check saw.
type verified struct {
	mu     sync.Mutex
	tokens []string
	hc     *http.Client
}

func (v *verified) verify(ctx context.Context, hc *http.Client, tok *oauth2.Token) (*provider.Credential, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.tokens = append(v.tokens, tok.AccessToken)
	v.hc = hc
	return &provider.Credential{Account: "acct", AccountID: "42", Scopes: []string{"read"}, Settings: map[string]string{"region": "us"}}, nil
}

func newMethod(t *testing.T, a *fakeAS, now func() time.Time) (*Method, *verified) {
	t.Helper()
	v := &verified{}
	cfg := Config{ClientID: clientID, ClientSecret: clientSecret, AuthURL: "https://vendor.example/authorize", TokenURL: a.srv.URL + "/token",
		Scopes: []string{"read", "stats"}, ConfigKey: "vendors.example.oauth", Now: now,
		RetryBackoff: time.Millisecond} // tests must not wait; how many attempts are made is what they check
	return NewMethod("oauth", "Example sign-in", "Example", cfg, v.verify), v
}

// countingClient is an HTTP client that counts its requests, to show the
// method uses the client it is given.
type countingClient struct {
	mu sync.Mutex
	n  int
}

func (c *countingClient) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingClient) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// stored is a connection in a memory store with Scrape.Renew wired as the
// engine wires it (fn's credential applied and saved under the lock).
type stored struct {
	t  *testing.T
	st *store.Memory
	id string
}

func newStored(t *testing.T, c store.Connection) *stored {
	t.Helper()
	st := store.NewMemory()
	c.ID, c.Vendor, c.Name = "c1", "example", "prod"
	if c.AuthMethod == "" {
		c.AuthMethod = "oauth"
	}
	if err := st.Put(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return &stored{t: t, st: st, id: c.ID}
}

func (s *stored) get() store.Connection {
	s.t.Helper()
	c, err := s.st.Get(context.Background(), s.id)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

func (s *stored) put(c store.Connection) {
	s.t.Helper()
	if err := s.st.Put(context.Background(), c); err != nil {
		s.t.Fatal(err)
	}
}

// scrape is a Scrape of the stored connection at now, as the engine builds it.
func (s *stored) scrape(now time.Time, hc *http.Client) *provider.Scrape {
	return &provider.Scrape{Conn: collector.View(s.get()), HTTP: hc, Now: now, Renew: providertest.Renew(s.st, s.id)}
}

// oauthConn is a stored OAuth connection whose access token expires at exp.
func oauthConn(access, refresh string, exp time.Time) store.Connection {
	return store.Connection{
		Secret:   map[string]string{SecretAccessToken: access, SecretRefreshToken: refresh},
		Settings: map[string]string{SettingAccessExpiry: exp.Format(time.RFC3339), "region": "us"},
	}
}
