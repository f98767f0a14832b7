package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/saas-exporter/saas_exporter/internal/citest"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

const (
	testAdmin    = "admin"
	testPassword = "correct horse battery staple"
)

// stack is a vendor simulator and an exporter, both on loopback, started
// the way a person starts them (the exporter through run, with flags and
// a config file).
type stack struct {
	t      *testing.T
	Sim    *vendorsim.Server
	SimURL string
	URL    string // exporter base URL
	Dir    string // config and data dir
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan int
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stackOptions tune startStack.
type stackOptions struct {
	ExtraConfig string // appended YAML (top-level keys)
	MinInterval string // default 1ms: every scrape calls the vendor
	SimOptions  vendorsim.Options
	// Sim shares a running simulator (a second replica); nil starts one.
	Sim    *vendorsim.Server
	SimURL string
	// SimWrap, if set, wraps the simulator's handler (a gate on one
	// endpoint); only when startStack starts the simulator.
	SimWrap func(http.Handler) http.Handler
	// DataDir reuses a data directory (a restart); empty: a fresh one.
	DataDir string
	// Args are extra command-line flags (--web.config.file=…).
	Args []string
	// Now is the exporter's clock; nil is time.Now.
	Now func() time.Time
	// Sections replaces vendorSections (the OAuth stack's sendgrid block).
	Sections []func(simURL, exporterURL string) string
	// Limits shortens the admission bounds; Admission receives the gate.
	Limits    limitOptions
	Admission func(*admission)
}

// vendorConfig returns the vendors: section pointing every vendor at the
// simulator, one entry of sections per vendor.
func vendorConfig(sections []func(simURL, exporterURL string) string, simURL, exporterURL string) string {
	var b strings.Builder
	b.WriteString("vendors:\n")
	for _, f := range sections {
		b.WriteString(f(simURL, exporterURL))
	}
	return b.String()
}

// vendorSections: one function per vendor, returning its indented section.
// Read only: tests run in parallel; a test wanting others passes
// stackOptions.Sections.
var vendorSections = []func(simURL, exporterURL string) string{
	func(sim, _ string) string {
		return "  sendgrid:\n    api_url: " + sim + "/sendgrid\n    eu_api_url: " + sim + "/sendgrid-eu\n"
	},
	func(sim, _ string) string {
		return "  twilio:\n    connect_app_sid: " + vendorsim.TwilioConnectAppSid + "\n    account_sid: " + vendorsim.TwilioOwnerAccountSid +
			"\n    auth_token: " + vendorsim.TwilioOwnerAuthToken + "\n    api_url: " + sim + "/twilio\n    authorize_url: " + sim + "/twilio-www/authorize\n"
	},
	func(sim, _ string) string {
		return "  segment:\n    api_url: " + sim + "/segment/us\n    eu_api_url: " + sim + "/segment/eu\n    token_url: " + sim +
			"/segment/oauth/us/token\n    eu_token_url: " + sim + "/segment/oauth/eu/token\n"
	},
}

func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	sim, simURL := o.Sim, o.SimURL
	if sim == nil {
		sim = vendorsim.New(o.SimOptions)
		var h http.Handler = sim.Handler()
		if o.SimWrap != nil {
			h = o.SimWrap(h)
		}
		simSrv := httptest.NewServer(h)
		t.Cleanup(func() { sim.Close(); simSrv.Close() })
		simURL = simSrv.URL
	}

	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if o.DataDir == "" {
		o.DataDir = filepath.Join(dir, "data")
	}
	if o.MinInterval == "" {
		o.MinInterval = "1ms"
	}
	if o.Sections == nil {
		o.Sections = vendorSections
	}
	// The exporter's port must be known before its config is written
	// (external_url): reserve one. Between the reservation and the
	// exporter's listen another test may take it; then start again on
	// another port (only then: any other failure ends the test).
	for attempt := 1; ; attempt++ {
		s, code := startOnFreePort(t, o, sim, simURL, dir, hash)
		if s != nil {
			t.Cleanup(func() { s.stop() })
			return s
		}
		if attempt == 3 || !strings.Contains(code, "cannot listen") {
			t.Fatal(code)
		}
	}
}

// startOnFreePort is one attempt of startStack: the running stack, or nil
// and why it did not start.
func startOnFreePort(t *testing.T, o stackOptions, sim *vendorsim.Server, simURL, dir string, hash []byte) (*stack, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	url := "http://" + addr
	// The Connect App registered at the simulated Twilio points at this exporter.
	if err := sim.SetTwilioConnectApp(url+"/connect/twilio/callback", url+"/connect/twilio/deauthorize"); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf("external_url: %s\ndata_dir: %s\nadmins:\n  %s: %q\nscrape:\n  timeout: 5s\n  min_interval: %s\n%s%s",
		url, o.DataDir, testAdmin, hash, o.MinInterval, vendorConfig(o.Sections, simURL, url), o.ExtraConfig)
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	s := &stack{t: t, Sim: sim, SimURL: simURL, URL: url, Dir: dir, logs: &syncBuffer{}, done: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	ready := make(chan string, 1)
	go func() {
		args := append([]string{"--config.file=" + cfgFile, "--web.listen-address=" + addr, "--log.level=debug"}, o.Args...)
		s.done <- run(ctx, args, io.Discard, s.logs, hooks{ready: func(a string) { ready <- a }, now: o.Now, limits: o.Limits, admission: o.Admission})
	}()
	select {
	case <-ready:
		return s, ""
	case code := <-s.done:
		cancel()
		return nil, fmt.Sprintf("exporter exited with %d before listening:\n%s", code, s.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("exporter did not start:\n%s", s.logs.String())
		return nil, ""
	}
}

// stop shuts the exporter down as SIGTERM does and returns its exit code.
func (s *stack) stop() int {
	if s.cancel == nil {
		return 0
	}
	s.cancel()
	s.cancel = nil
	select {
	case code := <-s.done:
		return code
	case <-time.After(40 * time.Second):
		s.t.Fatal("exporter did not stop")
		return -1
	}
}

// api calls the JSON API as the test admin and decodes the answer.
func (s *stack) api(method, path string, body any, out any) int {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL+path, r)
	req.SetBasicAuth(testAdmin, testPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// get fetches a path and returns status and body.
func (s *stack) get(path string) (int, string) {
	s.t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape returns /metrics as text.
func (s *stack) scrape() string {
	s.t.Helper()
	code, body := s.get("/metrics")
	if code != 200 {
		s.t.Fatalf("/metrics: %d %s", code, body)
	}
	return body
}

// browser is an HTTP client with a cookie jar, logged in to the UI.
func (s *stack) browser() *http.Client {
	s.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(s.URL + "/login")
	if err != nil {
		s.t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := formValue(string(page), "csrf")
	resp, err = c.PostForm(s.URL+"/login", map[string][]string{"user": {testAdmin}, "username": {testAdmin}, "password": {testPassword}, "csrf": {csrf}})
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path == "/login" {
		s.t.Fatalf("login failed: %d", resp.StatusCode)
	}
	return c
}

// formValue finds <input name="NAME" value="..."> in a page.
func formValue(page, name string) string {
	i := strings.Index(page, `name="`+name+`"`)
	if i < 0 {
		return ""
	}
	rest := page[i:]
	j := strings.Index(rest, `value="`)
	if j < 0 {
		return ""
	}
	rest = rest[j+len(`value="`):]
	return rest[:strings.Index(rest, `"`)]
}

// metricValue finds one sample line "name{labels} value" in a scrape.
func metricValue(t *testing.T, scrape, series string) string {
	t.Helper()
	for _, line := range strings.Split(scrape, "\n") {
		if strings.HasPrefix(line, series+" ") {
			return strings.TrimPrefix(line, series+" ")
		}
	}
	t.Fatalf("series %s not in scrape", series)
	return ""
}

// toolPackages names the apt package that installs each external tool.
var toolPackages = map[string]string{"promtool": "prometheus", "prometheus": "prometheus", "chromium": "chromium"}

// requireTool finds an external tool; under CI (CI=true or CI=1) its
// absence fails the test instead of skipping it.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		citest.Missing(t, fmt.Sprintf("%s is not installed (not on PATH): install it with apt-get install %s; .ci/run does", name, toolPackages[name]))
	}
	return p
}

// promtoolCheck runs `promtool check metrics` on a scrape.
func promtoolCheck(t *testing.T, scrape string) {
	t.Helper()
	promtool := requireTool(t, "promtool")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
