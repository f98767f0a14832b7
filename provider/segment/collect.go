package segment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/saas-exporter/saas_exporter/provider"
)

// mtuKinds are the label values of saas_segment_mtu{kind} and
// saas_segment_source_mtu{kind}. Segment bills identified +
// never_identified: anonymous already holds anonymous_identified and
// never_identified.
var mtuKinds = []string{"identified", "anonymous", "anonymous_identified", "never_identified"}

var (
	descMTU = provider.NewDesc("segment_mtu",
		"Monthly tracked users of a Segment usage period (this_month: so far; last_month: the previous period), by kind, from Segment's latest daily cumulative count. Billable MTUs = identified + never_identified.", "kind", "period")
	descAPICalls = provider.NewDesc("segment_api_calls",
		"API calls of a Segment usage period (this_month: so far; last_month: the previous period), from Segment's latest daily cumulative count.", "period")
	descPeriodStart = provider.NewDesc("segment_period_start_timestamp_seconds",
		"Start of the current Segment usage (billing) period, as a Unix timestamp.")
	descSourceMTU = provider.NewDesc("segment_source_mtu",
		"Monthly tracked users of the current Segment usage period so far, by source and kind (Segment's latest daily cumulative count per source). Billable MTUs = identified + never_identified.", "source_id", "source", "kind")
	descSourceAPICalls = provider.NewDesc("segment_source_api_calls",
		"API calls of the current Segment usage period so far, by source (Segment's latest daily cumulative count per source).", "source_id", "source")
	descSources      = provider.NewDesc("segment_sources", "Sources in the Segment workspace.")
	descDestinations = provider.NewDesc("segment_destinations", "Destinations in the Segment workspace.")
	descWarehouses   = provider.NewDesc("segment_warehouses", "Warehouses connected to the Segment workspace.")
	descUsers        = provider.NewDesc("segment_users", "Users with access to the Segment workspace (seats), by their most privileged role.", "role")
	descInvites      = provider.NewDesc("segment_invites_pending", "Invitations to the Segment workspace not accepted yet.")
)

// pageCount is the most items Segment returns per page (1..1000 since API
// 73.x; the 32.0.5 spec said 200, see vendor-specs/SOURCES.md).
const pageCount = 1000

// maxPages stops a list whose cursors never end.
const maxPages = 10000

// Collect gathers every Segment metric of a connection. GET / comes first
// as the credential check; usage and the lists then run concurrently (the
// engine bounds calls per account), and a failing section does not hide
// the others.
func (p *Provider) Collect(ctx context.Context, s *provider.Scrape) error {
	r, ok := p.regions[s.Conn.Settings[settingRegion]]
	if !ok {
		return fmt.Errorf("segment: the connection has no valid region (%q); reconnect it", s.Conn.Settings[settingRegion])
	}
	c := &client{hc: s.HTTP, apiURL: r.apiURL, now: s.Now}
	oauth := s.Conn.AuthMethod == MethodClientCredentials
	var ts *tokenSource
	if oauth {
		app, err := p.appOf(s.Conn)
		if err != nil {
			return provider.Expired(err)
		}
		ts = &tokenSource{ctx: ctx, p: p, hc: s.HTTP, app: app, now: s.Now, cur: tokenFromSecret(s.Conn.Secret)}
		if err := p.useToken(s, ts, c, false); err != nil {
			return err
		}
	} else {
		c.token = s.Conn.Secret[secretToken]
		if c.token == "" {
			return provider.Revoked(errors.New("segment: the stored connection has no token; reconnect it"))
		}
	}

	// No credential check first: every section's 401 says the same, and
	// waiting for one would add a round trip to every collection.
	err := p.collectSections(ctx, c, s)
	if oauth && hasStatus(err, http.StatusUnauthorized) {
		// The access token was refused before its expiry (revoked in
		// Segment): a new one may work, unless this one is new already.
		if ts.renewed {
			return provider.Expired(fmt.Errorf("segment: a newly issued access token was refused: %w", err))
		}
		if err := p.useToken(s, ts, c, true); err != nil {
			return err
		}
		if err = p.collectSections(ctx, c, s); hasStatus(err, http.StatusUnauthorized) {
			return provider.Expired(fmt.Errorf("segment: a newly issued access token was refused: %w", err))
		}
		return classify(provider.Errors(err), oauth)
	}
	return classify(provider.Errors(err), oauth)
}

// hasStatus reports whether any of err's parts is an HTTP error with status.
func hasStatus(err error, status int) bool {
	for _, e := range provider.Errors(err) {
		if provider.StatusOf(e) == status {
			return true
		}
	}
	return false
}

// collectSections runs every section at once: usage, the lists, and the
// previous period when due. The usage period is known without a call once
// seen or stored with the connection; then a collection is one round
// trip deep (plus further pages).
func (p *Provider) collectSections(ctx context.Context, c *client, s *provider.Scrape) error {
	sec := func(name string, run func(context.Context, *client, *provider.Scrape) error) provider.Section {
		return provider.Section{Name: name, Run: func(ctx context.Context, s *provider.Scrape) error { return run(ctx, c, s) }}
	}
	period, perr := p.resolvePeriod(ctx, c, s.Conn, s.Now)
	thisMonth := func(ctx context.Context, c *client, s *provider.Scrape) error {
		if perr != nil {
			return perr
		}
		return p.collectWorkspaceUsage(ctx, c, s, period, periodThis)
	}
	secs := []provider.Section{
		sec("usage:"+periodThis, thisMonth),
		sec("sources", func(ctx context.Context, c *client, s *provider.Scrape) error {
			if perr != nil {
				names, err := c.sourceNames(ctx)
				if err != nil {
					return err
				}
				s.Gauge(descSources, float64(len(names)))
				// The usage section reports why; this keeps the
				// per-source series at their last values.
				return errors.New("segment per-source usage: not collected, the usage period is not known (see the workspace usage error)")
			}
			// The names and the usage are asked at once; the names are
			// joined to the usage afterwards.
			var (
				names    map[string]string
				namesErr error
				done     = make(chan struct{})
			)
			go func() {
				defer close(done)
				defer provider.Recover("segment sources", &namesErr)
				names, namesErr = c.sourceNames(ctx)
			}()
			mtu, calls, uerr := fetchSourceUsage(ctx, c, period)
			<-done
			if namesErr != nil {
				return namesErr
			}
			s.Gauge(descSources, float64(len(names)))
			if uerr != nil {
				return uerr
			}
			return emitSourceUsage(s, mtu, calls, names)
		}),
		sec("destinations", countSection("/destinations", "destinations", descDestinations)),
		sec("warehouses", countSection("/warehouses", "warehouses", descWarehouses)),
		sec("users", collectUsers),
		sec("invites", countSection("/invites", "invites", descInvites)),
	}
	// The previous period: its key is in the name, so a new month starts
	// afresh, and Every keeps it to a few calls a day. If the current
	// period is unknown, the last one known is kept.
	prev := time.Time{}
	if perr == nil {
		prev = addMonth(period, -1)
	} else {
		for name := range s.Previous {
			if k, ok := strings.CutPrefix(name, "usage:"+periodLast+":"); ok {
				if t, err := time.Parse(time.DateOnly, k); err == nil && t.After(prev) {
					prev = t
				}
			}
		}
	}
	if !prev.IsZero() {
		secs = append(secs, provider.Section{Name: "usage:" + periodLast + ":" + prev.Format(time.DateOnly), Every: lastMonthEvery,
			Run: func(ctx context.Context, s *provider.Scrape) error {
				return p.collectWorkspaceUsage(ctx, c, s, prev, periodLast)
			}})
	}
	return s.Sections(ctx, secs...)
}

// useToken gets a usable access token into c (renewing when due or when
// force is set) and hands a renewed one to the engine to store. A failed
// renewal is fatal only when the current token cannot be used any more.
func (p *Provider) useToken(s *provider.Scrape, ts *tokenSource, c *client, force bool) error {
	var tok = ts.cur
	var err error
	if force {
		tok, err = ts.renew()
	} else {
		tok, err = ts.Token()
	}
	if err != nil {
		if !force && usable(ts.cur, s.Now, 0) {
			// Not due yet: keep collecting with the current token, and
			// export its expiry: without a successful renewal, that is
			// when the connection stops working.
			p.log.Warn("segment: renewing the OAuth access token failed; using the current one until it expires",
				"connection", s.Conn.Name, "expiry", ts.cur.Expiry, "err", err)
			if !s.Conn.Expiry.Equal(ts.cur.Expiry) {
				s.UpdateCredential(renewedCredential(s.Conn, ts.app, ts.cur, ts.cur.Expiry))
			}
			c.token = ts.cur.AccessToken
			return nil
		}
		var se *provider.StateError
		if errors.As(err, &se) && se.State == "rate_limited" {
			// Segment asked us to wait: not a reason to give up on the
			// connection.
			return provider.RateLimited(se.Until, fmt.Errorf("segment: renewing the OAuth access token was rate limited; trying again after %s: %w", se.Until.UTC().Format(time.RFC3339), err))
		}
		return provider.Expired(fmt.Errorf("segment: the OAuth access token could not be renewed (reconnect if the app, its key or its scope changed): %w", err))
	}
	if ts.renewed || !s.Conn.Expiry.IsZero() {
		s.UpdateCredential(renewedCredential(s.Conn, ts.app, tok, time.Time{}))
	}
	c.token = tok.AccessToken
	return nil
}

// classify joins section errors and tells the engine the state: a refused
// credential beats a rate limit, which beats a plain error.
func classify(errs []error, oauth bool) error {
	if len(errs) == 0 {
		return nil
	}
	err := errors.Join(errs...)
	var until time.Time
	limited := false
	for _, e := range errs {
		if provider.StatusOf(e) == http.StatusUnauthorized {
			if oauth {
				return provider.Expired(err)
			}
			return provider.Revoked(err)
		}
		var se *provider.StateError
		if errors.As(e, &se) && se.State == "rate_limited" {
			limited = true
			if se.Until.After(until) {
				until = se.Until
			}
		}
	}
	if limited {
		return provider.RateLimited(until, err)
	}
	return err
}

// page fetches the first page of count items of a list.
func (c *client) page(ctx context.Context, path, key string, query url.Values, count int, each func(items json.RawMessage) error) error {
	return c.list(ctx, path, key, query, count, 1, each)
}

// pages fetches a cursor-paged list to its end; each gets the raw items
// array of one page (data.<key>).
func (c *client) pages(ctx context.Context, path, key string, query url.Values, each func(items json.RawMessage) error) error {
	return c.list(ctx, path, key, query, pageCount, maxPages, each)
}

func (c *client) list(ctx context.Context, path, key string, query url.Values, count, most int, each func(items json.RawMessage) error) error {
	cursor := ""
	for range most {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("pagination.count", strconv.Itoa(count))
		if cursor != "" {
			q.Set("pagination.cursor", cursor)
		}
		var r struct {
			Data map[string]json.RawMessage `json:"data"`
		}
		if err := c.get(ctx, path, q, &r); err != nil {
			return err
		}
		items, ok := r.Data[key]
		if !ok {
			return fmt.Errorf("segment GET %s: the answer has no data.%s", path, key)
		}
		if err := each(items); err != nil {
			return fmt.Errorf("segment GET %s: %w", path, err)
		}
		var pg struct {
			Next *string `json:"next"`
		}
		if raw, ok := r.Data["pagination"]; ok {
			if err := json.Unmarshal(raw, &pg); err != nil {
				return fmt.Errorf("segment GET %s: data.pagination does not parse: %v", path, err)
			}
		}
		if pg.Next == nil || *pg.Next == "" {
			return nil
		}
		if *pg.Next == cursor {
			return fmt.Errorf("segment GET %s: pagination.next repeats the cursor just used", path)
		}
		cursor = *pg.Next
	}
	if most < maxPages {
		return nil // only the first pages were asked for
	}
	return fmt.Errorf("segment GET %s: the list did not end after %d pages", path, maxPages)
}

// countSection counts a list's items into d.
func countSection(path, key string, d *prometheus.Desc) func(context.Context, *client, *provider.Scrape) error {
	return func(ctx context.Context, c *client, s *provider.Scrape) error {
		n := 0
		err := c.pages(ctx, path, key, nil, func(items json.RawMessage) error {
			var xs []json.RawMessage
			if err := json.Unmarshal(items, &xs); err != nil {
				return fmt.Errorf("data.%s is not a list: %v", key, err)
			}
			n += len(xs)
			return nil
		})
		if err != nil {
			return err
		}
		s.Gauge(d, float64(n))
		return nil
	}
}

// sourceNames lists the workspace's sources: id → name (bounded).
func (c *client) sourceNames(ctx context.Context) (map[string]string, error) {
	names := map[string]string{}
	err := c.pages(ctx, "/sources", "sources", nil, func(items json.RawMessage) error {
		var xs []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}
		if err := json.Unmarshal(items, &xs); err != nil {
			return fmt.Errorf("data.sources is not a list of sources: %v", err)
		}
		for _, x := range xs {
			names[x.ID] = provider.Label(x.Name)
		}
		return nil
	})
	return names, err
}

// roles are the role label values, most privileged first: Segment's
// documented roles (docs: Access Management → Roles). A user counts once,
// under the first of these among their permissions; a user with none of
// them (a role Segment added later, or no permission) counts as "other".
var roles = []string{
	"Workspace Owner",
	"Source Admin", "Source Read-only",
	"Warehouse Admin", "Warehouse Read-only",
	"Function Admin", "Function Read-only",
	"Engage Admin", "Engage User", "Engage Read-only",
	"Unify and Engage Admin", "Unify Read-only", "Identity Admin",
	"Tracking Plan Admin", "Tracking Plan Read-only",
	"End User Privacy Admin",
	"Workspace Member",
	roleOther,
}

const roleOther = "other"

// roleRank maps a lowercased role name to its index in roles; "Functions
// Admin" is the docs' other spelling of "Function Admin".
var roleRank = func() map[string]int {
	m := map[string]int{}
	for i, r := range roles {
		m[strings.ToLower(r)] = i
	}
	m["functions admin"], m["functions read-only"] = m["function admin"], m["function read-only"]
	return m
}()

// collectUsers counts seats by role.
func collectUsers(ctx context.Context, c *client, s *provider.Scrape) error {
	counts := make([]int, len(roles))
	err := c.pages(ctx, "/users", "users", nil, func(items json.RawMessage) error {
		var users []struct {
			Permissions []struct {
				RoleName string `json:"roleName"`
			} `json:"permissions"`
		}
		if err := json.Unmarshal(items, &users); err != nil {
			return fmt.Errorf("data.users is not a list of users: %v", err)
		}
		for _, u := range users {
			best := len(roles) - 1 // other
			for _, perm := range u.Permissions {
				if i, ok := roleRank[strings.ToLower(strings.TrimSpace(perm.RoleName))]; ok && i < best {
					best = i
				}
			}
			counts[best]++
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, n := range counts {
		if n > 0 {
			s.Gauge(descUsers, float64(n), roles[i])
		}
	}
	return nil
}
