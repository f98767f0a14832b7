package segment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
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
func page[T any](ctx context.Context, c *client, path, key string, query url.Values, count int, what string, each func(x *T) error) error {
	return list(ctx, c, path, key, query, count, 1, what, each)
}

// pages fetches a cursor-paged list to its end. each gets every item of
// data.<key> as it is decoded (x is reused: each copies what it keeps);
// after an error, what each was given is to be dropped. what says what
// is wrong when an item does not decode as T ("is not a list of users").
func pages[T any](ctx context.Context, c *client, path, key string, query url.Values, what string, each func(x *T) error) error {
	return list(ctx, c, path, key, query, pageCount, maxPages, what, each)
}

func list[T any](ctx context.Context, c *client, path, key string, query url.Values, count, most int, what string, each func(x *T) error) error {
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
		pg := listPage[T]{key: key, what: what, each: each}
		if err := c.get(ctx, path, q, provider.DecodeFunc(pg.decode)); err != nil {
			return err
		}
		if !pg.found {
			return fmt.Errorf("segment GET %s: the answer has no data.%s", path, key)
		}
		if pg.next == nil || *pg.next == "" {
			return nil
		}
		if *pg.next == cursor {
			return fmt.Errorf("segment GET %s: pagination.next repeats the cursor just used", path)
		}
		cursor = *pg.next
	}
	if most < maxPages {
		return nil // only the first pages were asked for
	}
	return fmt.Errorf("segment GET %s: the list did not end after %d pages", path, maxPages)
}

// listPage decodes one page of a list, {"data":{"<key>":[…],"pagination":
// {"next":…}}}, in one pass: each item straight into T and to each,
// with no slice of the page's items. It reads the answer as the struct
// with "data" and a map under it that it replaced did: "data" in any
// case, the last of duplicate names wins (a second "data" merges into
// the first), a null data is an empty one, other names are skipped.
// One exception: a second data.<key> in one answer is an error, as its
// items were already counted (the old decoding kept the last list).
type listPage[T any] struct {
	key, what string
	each      func(x *T) error

	found bool // data.<key> was there (null counts: no items)
	next  *string
}

func (pg *listPage[T]) decode(dec *jsontext.Decoder) error {
	if ok, err := openObject(dec, "the answer"); !ok {
		return err
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		if !nameIs(name, "data", true) {
			if err := dec.SkipValue(); err != nil {
				return err
			}
			continue
		}
		if err := pg.decodeData(dec); err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

func (pg *listPage[T]) decodeData(dec *jsontext.Decoder) error {
	if ok, err := openObject(dec, "data"); !ok {
		pg.found, pg.next = false, nil
		return err
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		switch {
		case nameIs(name, pg.key, false):
			if pg.found {
				return fmt.Errorf("data.%s appears twice in the answer", pg.key)
			}
			pg.found = true
			if err := pg.decodeItems(dec); err != nil {
				return err
			}
		case nameIs(name, "pagination", false):
			var p struct {
				Next *string `json:"next"`
			}
			if err := provider.UnmarshalDecode(dec, &p); err != nil {
				if provider.IsSyntaxError(err) {
					return err
				}
				return fmt.Errorf("data.pagination does not parse: %w", err)
			}
			pg.next = p.Next
		default:
			if err := dec.SkipValue(); err != nil {
				return err
			}
		}
	}
	_, err := dec.ReadToken()
	return err
}

func (pg *listPage[T]) decodeItems(dec *jsontext.Decoder) error {
	switch k := dec.PeekKind(); k {
	case 'n': // no items
		_, err := dec.ReadToken()
		return err
	case '[':
		if _, err := dec.ReadToken(); err != nil {
			return err
		}
	default:
		if _, err := dec.ReadValue(); err != nil {
			return err
		}
		return fmt.Errorf("data.%s %s: it is %s, not an array", pg.key, pg.what, kindName(k))
	}
	var x, zero T
	for dec.PeekKind() != ']' {
		x = zero // decoding merges into what is there
		if err := provider.UnmarshalDecode(dec, &x); err != nil {
			if provider.IsSyntaxError(err) {
				return err
			}
			return fmt.Errorf("data.%s %s: %w", pg.key, pg.what, err)
		}
		if err := pg.each(&x); err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

// openObject reads the '{' that starts an object. A null is read and
// reported as no object (ok false, no error); any other value is an error
// naming what, after a syntax check of the value.
func openObject(dec *jsontext.Decoder, what string) (ok bool, err error) {
	switch k := dec.PeekKind(); k {
	case '{':
		_, err := dec.ReadToken()
		return err == nil, err
	case 'n':
		_, err := dec.ReadToken()
		return false, err
	default:
		if _, err := dec.ReadValue(); err != nil {
			return false, err
		}
		return false, fmt.Errorf("%s is %s, not an object", what, kindName(k))
	}
}

// nameIs reports whether the quoted object name raw is name: exactly, or
// as strings.EqualFold when fold is set.
func nameIs(raw jsontext.Value, name string, fold bool) bool {
	var buf [64]byte
	s := []byte(raw)
	if len(s) >= 2 && bytes.IndexByte(s, '\\') < 0 {
		s = s[1 : len(s)-1] // no escapes: the text between the quotes
	} else {
		var err error
		if s, err = jsontext.AppendUnquote(buf[:0], raw); err != nil {
			return false // invalid UTF-8: U+FFFD matches none of our names
		}
	}
	if fold {
		return bytes.EqualFold(s, []byte(name))
	}
	return string(s) == name
}

// kindName names a JSON kind in an error.
func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '[':
		return "an array"
	case '{':
		return "an object"
	}
	return "not a JSON value"
}

// countSection counts a list's items into d.
func countSection(path, key string, d *prometheus.Desc) func(context.Context, *client, *provider.Scrape) error {
	return func(ctx context.Context, c *client, s *provider.Scrape) error {
		n := 0
		err := pages(ctx, c, path, key, nil, "is not a list", func(*item) error {
			n++
			return nil
		})
		if err != nil {
			return err
		}
		s.Gauge(d, float64(n))
		return nil
	}
}

// item is any JSON value of a list that is only counted: skipped, not
// decoded (invites are strings, most lists objects).
type item struct{}

func (*item) UnmarshalJSONFrom(dec *jsontext.Decoder) error { return dec.SkipValue() }

// sourceNames lists the workspace's sources: id → name (bounded).
func (c *client) sourceNames(ctx context.Context) (map[string]string, error) {
	names := map[string]string{}
	type source struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	err := pages(ctx, c, "/sources", "sources", nil, "is not a list of sources", func(x *source) error {
		names[x.ID] = provider.Label(x.Name)
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
	type user struct {
		Permissions []struct {
			RoleName string `json:"roleName"`
		} `json:"permissions"`
	}
	err := pages(ctx, c, "/users", "users", nil, "is not a list of users", func(u *user) error {
		best := len(roles) - 1 // other
		for _, perm := range u.Permissions {
			if i, ok := roleRank[strings.ToLower(strings.TrimSpace(perm.RoleName))]; ok && i < best {
				best = i
			}
		}
		counts[best]++
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
