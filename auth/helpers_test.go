package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/saas-exporter/saas_exporter/auth/connect"
	"github.com/saas-exporter/saas_exporter/auth/session"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

const (
	adminUser = "admin"
	adminPass = "admin-password-42"
)

// adminHash is computed once; MinCost keeps the tests fast.
var adminHash = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte(adminPass), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type env struct {
	t       *testing.T
	srv     *httptest.Server
	s       *Server
	st      *store.Memory
	clk     *fakeClock
	logs    *syncBuffer
	consent *consentMode

	mu        sync.Mutex
	changes   []string
	responses []string // every response of srv: status, headers, body
	logOnly   []string // values allowed in responses but never in logs
}

// newEnv starts the auth server on 127.0.0.1 with the fake providers and a
// fake vendor consent page. At cleanup it checks that no secret reached a
// response or the log.
func newEnv(t *testing.T, mod ...func(*Options)) *env {
	t.Helper()
	e := &env{t: t, st: store.NewMemory(), logs: &syncBuffer{}, consent: &consentMode{account: "acme"}}
	// The memory store expires single-use records by the real clock, so
	// the fake clock starts at the real time and only moves forward.
	e.clk = &fakeClock{t: time.Now()}
	consentSrv := httptest.NewServer(e.consent.handler())
	t.Cleanup(consentSrv.Close)
	mux := http.NewServeMux()
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, r)
		e.record(rec)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	o := Options{
		Store:       e.st,
		Providers:   providers(&redirectProvider{consent: e.consent, consentURL: consentSrv.URL}),
		ExternalURL: "http://" + e.srv.Listener.Addr().String(),
		Admins:      map[string]string{adminUser: adminHash},
		SigningKey:  bytes.Repeat([]byte{7}, 32),
		Logger:      slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:         e.clk.Now,
		OnChange: func(id string) {
			e.mu.Lock()
			e.changes = append(e.changes, id)
			e.mu.Unlock()
		},
	}
	for _, m := range mod {
		m(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	s.Register(mux)
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	t.Cleanup(e.checkNoSecrets)
	return e
}

func providers(rp *redirectProvider) []provider.Provider {
	return []provider.Provider{keyProvider{}, rp, hookProvider{}}
}

func (e *env) record(rec *httptest.ResponseRecorder) {
	var b strings.Builder
	b.WriteString(http.StatusText(rec.Code))
	for k, vs := range rec.Header() {
		b.WriteString("\n" + k + ": " + strings.Join(vs, ", "))
	}
	b.WriteString("\n\n")
	b.Write(rec.Body.Bytes())
	e.mu.Lock()
	e.responses = append(e.responses, b.String())
	e.mu.Unlock()
}

// secretValues may appear in no response and no log line.
var secretValues = []string{goodKey, badKey, leakyKey, downKey, panicKey, authCode, tokenPref, hookToken, adminPass}

// forbidLog adds a value (flow state, invite token) that may be sent to
// the browser but must never be logged.
func (e *env) forbidLog(v string) {
	e.mu.Lock()
	e.logOnly = append(e.logOnly, v)
	e.mu.Unlock()
}

func (e *env) checkNoSecrets() {
	for _, l := range e.leaks() {
		e.t.Error(l)
	}
}

// leaks lists every secret found in a response or the log, and every
// state/token value found in the log.
func (e *env) leaks() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	logs := e.logs.String()
	for _, sec := range secretValues {
		for _, r := range e.responses {
			if strings.Contains(r, sec) {
				out = append(out, fmt.Sprintf("secret %q in a response:\n%s", sec, r))
				break
			}
		}
		if strings.Contains(logs, sec) {
			out = append(out, fmt.Sprintf("secret %q in the log:\n%s", sec, logs))
		}
	}
	for _, v := range e.logOnly {
		if v != "" && strings.Contains(logs, v) {
			out = append(out, fmt.Sprintf("token/state value %q in the log:\n%s", v, logs))
		}
	}
	return out
}

func (e *env) changeCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.changes)
}

// client returns a browser: a cookie jar, redirects not followed.
func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// follower returns a browser that follows redirects.
func (e *env) follower() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

type resp struct {
	*http.Response
	body string
}

func (r resp) location() string { return r.Header.Get("Location") }

func (e *env) do(c *http.Client, method, path string, form url.Values) resp {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	u := path
	if strings.HasPrefix(path, "/") {
		u = e.srv.URL + path
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return e.send(c, req)
}

func (e *env) send(c *http.Client, req *http.Request) resp {
	e.t.Helper()
	r, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return resp{r, string(b)}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", body)
	}
	return m[1]
}

// login signs c in and returns the CSRF token of its session.
func (e *env) login(c *http.Client) string {
	e.t.Helper()
	r := e.do(c, "GET", "/login", nil)
	r = e.do(c, "POST", "/login", url.Values{"csrf": {csrfOf(e.t, r.body)}, "user": {adminUser}, "password": {adminPass}, "next": {"/"}})
	if r.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login: %d %s", r.StatusCode, r.body)
	}
	r = e.do(c, "GET", "/", nil)
	if r.StatusCode != 200 {
		e.t.Fatalf("connections page after login: %d", r.StatusCode)
	}
	return csrfOf(e.t, r.body)
}

// admin returns a signed-in browser and its CSRF token.
func (e *env) admin() (*http.Client, string) {
	c := e.client()
	return c, e.login(c)
}

func (e *env) api(method, path string, body any) resp {
	e.t.Helper()
	return e.apiAs(adminUser, adminPass, method, path, body)
}

func (e *env) apiAs(user, pass, method, path string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	return e.send(e.client(), req)
}

func (e *env) conns() []store.Connection {
	e.t.Helper()
	cs, err := e.st.List(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

func (e *env) connByName(name string) store.Connection {
	e.t.Helper()
	for _, c := range e.conns() {
		if c.Name == name {
			return c
		}
	}
	e.t.Fatalf("no connection %q", name)
	return store.Connection{}
}

func wantStatus(t *testing.T, r resp, want int) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d; body:\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, r.body)
	}
}

func wantBody(t *testing.T, r resp, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(r.body, s) {
			t.Errorf("%s %s: body lacks %q:\n%s", r.Request.Method, r.Request.URL.Path, s, r.body)
		}
	}
}

// connectKey connects keyco through the admin form.
func (e *env) connectKey(c *http.Client, csrf, name, key string) resp {
	e.t.Helper()
	return e.do(c, "POST", "/connect/keyco", url.Values{"csrf": {csrf}, "method": {"api_key"}, "name": {name}, "api_key": {key}, "region": {"eu"}})
}

// changeFirst returns s with its first character replaced by a different
// one, so the result never equals s (a fixed replacement would equal it
// whenever a random s already starts with that character).
func changeFirst(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// Names the black-box tests share with the packages under test.
const (
	flowCookie    = session.FlowCookie
	sessionCookie = session.SessionCookie
	maxBody       = connect.MaxBody
	flowTTL       = connect.FlowTTL
)
