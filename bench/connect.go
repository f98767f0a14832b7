package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// credential is one simulator credential to connect with.
type credential struct {
	vendor string
	label  string            // for errors: "SendGrid synthetic key 12"
	fields map[string]string // JSON API fields besides vendor and name
	twilio string            // Twilio Connect: the AccountSid chosen on the consent page
}

// syntheticCredential is the simulator's synthetic account n of vendor
// (vendorsim/synthetic.go): every n is a distinct account, so the
// exporter, which updates the existing connection when the same account
// is connected again (auth/connect/save.go, Save), stores each as its own.
func syntheticCredential(vendor string, n int) (credential, bool) {
	switch vendor {
	case "sendgrid":
		return credential{vendor: vendor, label: fmt.Sprintf("SendGrid synthetic key %d", n),
			fields: map[string]string{"api_key": vendorsim.SendGridSyntheticKey(n)}}, true
	case "twilio":
		return credential{vendor: vendor, label: fmt.Sprintf("Twilio synthetic account %d", n),
			twilio: vendorsim.TwilioSyntheticAccount(n)}, true
	case "segment":
		return credential{vendor: vendor, label: fmt.Sprintf("Segment synthetic workspace %d", n),
			fields: map[string]string{"token": vendorsim.SegmentSyntheticToken(n), "region": "us"}}, true
	}
	return credential{}, false
}

// syntheticKind says, for the report, what one vendor's synthetic accounts
// are and how they are connected.
var syntheticKind = map[string]string{
	"sendgrid": "synthetic API keys `SendGridSyntheticKey(n)`: paid, the 8 scopes of acme (the exporter reads 6, plus user.username.read, so each key has its own account id), acme-sized lists",
	"twilio":   "synthetic accounts `TwilioSyntheticAccount(n)`: Full, active, balance readable, acme-like usage and 4-9 numbers; each connected through Twilio Connect (API 202, Allow on the simulator's consent page with the account's sid, the exporter's callback)",
	"segment":  "synthetic workspaces `SegmentSyntheticToken(n)`, region us: acme-sized lists and usage",
}

// plan hands out synthetic credentials round-robin over vendors, n = 1, 2,
// ... per vendor.
type plan struct {
	vendors []string
	used    map[string]int // synthetic accounts handed out, by vendor
	rr      int
	total   int
}

// newPlan plans connections for the vendors that have synthetic accounts
// and returns the others.
func newPlan(vendors []string) (*plan, []string) {
	p := &plan{used: map[string]int{}}
	var without []string
	for _, v := range vendors {
		if _, ok := syntheticCredential(v, 1); ok {
			p.vendors = append(p.vendors, v)
		} else {
			without = append(without, v)
		}
	}
	return p, without
}

// next returns the next credential round-robin, or false when there is no
// vendor to connect.
func (p *plan) next() (credential, bool) {
	if len(p.vendors) == 0 {
		return credential{}, false
	}
	v := p.vendors[p.rr%len(p.vendors)]
	p.rr++
	n := p.used[v] + 1
	if n > vendorsim.SyntheticMax {
		return credential{}, false
	}
	c, _ := syntheticCredential(v, n)
	p.used[v] = n
	p.total++
	return c, true
}

// apiPost posts JSON to the exporter's API as the admin.
func (b *bench) apiPost(ctx context.Context, c *http.Client, path string, body any) (int, []byte, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.url+path, bytes.NewReader(raw))
	if err != nil {
		return 0, nil, err
	}
	req.SetBasicAuth(b.o.AdminUser, b.o.AdminPassword)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, out, err
}

// probeVendors asks the exporter's API about each vendor: one it lacks
// answers "unknown vendor". The probe has no name, so nothing is stored.
func (b *bench) probeVendors(ctx context.Context) error {
	var keep []string
	for _, v := range b.vendors {
		code, body, err := b.apiPost(ctx, b.http, "/api/v1/connections", map[string]string{"vendor": v})
		if err != nil {
			return fmt.Errorf("exporter API at %s: %w", b.url, err)
		}
		if code == http.StatusUnauthorized {
			return fmt.Errorf("exporter API at %s refused user %q (401): pass --admin-user and --admin-password", b.url, b.o.AdminUser)
		}
		if strings.Contains(string(body), "unknown vendor") {
			b.note("vendor %s left out: the exporter's API does not know it", v)
			continue
		}
		keep = append(keep, v)
	}
	if len(keep) == 0 {
		return errors.New("no vendor left to benchmark: the exporter supports none of --vendors")
	}
	b.vendors = keep
	return nil
}

// connectResult says what connecting did.
type connectResult struct {
	Took     time.Duration
	ByVendor map[string]int // stored connections by vendor, from the API
	Total    int
}

// connectUpTo creates connections until n exist, with bounded parallelism.
func (b *bench) connectUpTo(ctx context.Context, n int) (connectResult, error) {
	var res connectResult
	have := b.plan.total
	type job struct {
		name string
		cred credential
	}
	jobs := make(chan job)
	var (
		mu   sync.Mutex
		errs []error
	)
	start := time.Now()
	var wg sync.WaitGroup
	for range b.o.ConnectParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := b.connectOne(ctx, j.name, j.cred); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("connecting %s (%s): %w", j.name, j.cred.label, err))
					mu.Unlock()
				}
			}
		}()
	}
	for i := have; i < n; i++ {
		c, ok := b.plan.next()
		if !ok {
			mu.Lock()
			errs = append(errs, fmt.Errorf("no synthetic account left for connection %d (vendors %s)", i+1, strings.Join(b.plan.vendors, ",")))
			mu.Unlock()
			break
		}
		select {
		case jobs <- job{name: fmt.Sprintf("prod-%04d", i+1), cred: c}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		if (i+1)%500 == 0 {
			b.logf("connecting: %d/%d (%s)", i+1, n, time.Since(start).Round(time.Second))
		}
	}
	close(jobs)
	wg.Wait()
	res.Took = time.Since(start)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("%d of %d connections failed; first: %w", len(errs), n-have, errs[0])
	}
	byVendor, err := b.listConnections(ctx)
	if err != nil {
		return res, err
	}
	res.ByVendor = byVendor
	for _, k := range byVendor {
		res.Total += k
	}
	if res.Total != n {
		return res, fmt.Errorf("the exporter lists %d connections after connecting %d (by vendor: %v)", res.Total, n, byVendor)
	}
	return res, nil
}

func (b *bench) connectOne(ctx context.Context, name string, c credential) error {
	if c.vendor == "twilio" {
		return b.connectTwilio(ctx, name, c.twilio)
	}
	body := map[string]string{"vendor": c.vendor, "name": name}
	for k, v := range c.fields {
		body[k] = v
	}
	code, out, err := b.apiPost(ctx, b.http, "/api/v1/connections", body)
	if err != nil {
		return err
	}
	if code != http.StatusCreated {
		return fmt.Errorf("POST /api/v1/connections answered %d (want 201 Created): %s", code, bytes.TrimSpace(out))
	}
	return nil
}

// connectTwilio runs Twilio Connect as a browser does: the API answers
// 202 with the consent URL and a flow cookie; Allow on the simulator's
// consent page sends the browser to the exporter's callback.
func (b *bench) connectTwilio(ctx context.Context, name, accountSid string) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: b.http.Timeout, Transport: b.http.Transport}
	code, out, err := b.apiPost(ctx, c, "/api/v1/connections", map[string]string{"vendor": "twilio", "name": name})
	if err != nil {
		return err
	}
	if code != http.StatusAccepted {
		return fmt.Errorf("POST /api/v1/connections answered %d (want 202 with authorize_url): %s", code, bytes.TrimSpace(out))
	}
	var r struct {
		AuthorizeURL string `json:"authorize_url"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.AuthorizeURL == "" {
		return fmt.Errorf("no authorize_url in %s", bytes.TrimSpace(out))
	}
	u, err := url.Parse(r.AuthorizeURL)
	if err != nil {
		return err
	}
	form := url.Values{"state": {u.Query().Get("state")}, "account_sid": {accountSid}, "decision": {"allow"}}
	u.RawQuery = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var callbackStatus int
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > 10 {
			return errors.New("too many redirects")
		}
		// The exporter's answer to the callback is what tells success.
		if strings.HasSuffix(via[len(via)-1].URL.Path, "/connect/twilio/callback") {
			callbackStatus = req.Response.StatusCode
		}
		return nil
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	page, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if callbackStatus == 0 {
		callbackStatus = resp.StatusCode
	}
	if callbackStatus >= 400 {
		return fmt.Errorf("the Twilio Connect callback answered %d: %.300s", callbackStatus, page)
	}
	return nil
}

// listConnections counts stored connections by vendor.
func (b *bench) listConnections(ctx context.Context) (map[string]int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/api/v1/connections", nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(b.o.AdminUser, b.o.AdminPassword)
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET /api/v1/connections answered %d: %s", resp.StatusCode, body)
	}
	var conns []struct {
		Vendor string `json:"vendor"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&conns); err != nil {
		return nil, fmt.Errorf("GET /api/v1/connections: %w", err)
	}
	out := map[string]int{}
	for _, c := range conns {
		out[c.Vendor]++
	}
	return out, nil
}

// mixString is "sendgrid 995, twilio 3, segment 2".
func mixString(by map[string]int) string {
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if by[keys[i]] != by[keys[j]] {
			return by[keys[i]] > by[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, by[k])
	}
	return strings.Join(parts, ", ")
}
