package vendorsim

import (
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Segment test Public API tokens, shaped like real ones ("sgp_" + 64
// characters). A token belongs to one region: the other region answers 401.
const (
	// SegmentTokenAcme: region us, workspace "Acme Analytics"
	// (acme-analytics), usage periods start on the 1st of each month.
	SegmentTokenAcme = "sgp_vendorsimAcmeUSTestToken0000notARealSecretUseWithVendorsimOnly1"
	// SegmentTokenEuro: region eu, workspace "Euro Corp" (euro-corp), usage
	// periods start on the 10th of each month.
	SegmentTokenEuro = "sgp_vendorsimEuroEUTestToken0000notARealSecretUseWithVendorsimOnly2"
)

// Segment test OAuth apps (client credentials with a private_key_jwt
// assertion). Both use SegmentOAuthTestPrivateKey.
const (
	// SegmentOAuthClientAcme is the App ID of an OAuth app of the Acme
	// workspace, region us.
	SegmentOAuthClientAcme = "vendorsimAcmeOAuthApp01"
	// SegmentOAuthKeyIDAcme is the Key ID of its public key.
	SegmentOAuthKeyIDAcme = "vendorsim-acme-key-1"
	// SegmentOAuthClientEuro is the App ID of an OAuth app of the Euro Corp
	// workspace, region eu.
	SegmentOAuthClientEuro = "vendorsimEuroOAuthApp02"
	// SegmentOAuthKeyIDEuro is the Key ID of its public key.
	SegmentOAuthKeyIDEuro = "vendorsim-euro-key-1"
	// SegmentOAuthScope is the scope of the Public API.
	SegmentOAuthScope = "public_api:read_write"
)

// SegmentOAuthTestPrivateKey is the RSA key (PKCS #8 PEM) whose public half
// the simulator registered for both test OAuth apps. It is published here
// on purpose: it opens nothing but this simulator.
const SegmentOAuthTestPrivateKey = `-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQC29q9JJqnygKNf
G2FgUzGp0gMLsC+XjF84eYLfHtc2GK2DgR/rKrKU0BR4E3mj+jGKqROkReZouCxk
NTc7pcSNRgZINxLl21yNbCa6+4bB5dw9F+xZ1yBPg2XJpFOqf4ACzUG+KtCb94lP
jNdwppWvZGisiVw7jEVpryYpRnU2NrT2WRV2t/2dWeVl++qXizTWXyht3XOSpUpI
f4dD6/9rkmYBME1g0GTT4milJf0NtwN1m7XSvYkwfGmbPmZ54Hm/NxgFvTnFzuvX
9hSYpULjscrxR4dPIm9SzRmkJxJzDj1dGmd26Qw8WEm1ATRcqyiagZw3qSVFTfZJ
TJJfPRUvAgMBAAECgf9D5Ucm3jIyy4nUwVRhan4Dhuuaasc+ddjgHDd0lP1IFeBN
7Jzrp+ydTJpL9O4u66l2y0d+rnHSaoYOqbDVca5+vn2WTtm0crLlyDyXJr/bNHGG
Olp6/FoBJ8GeElz56FaYs5Kx/zFqr3FFE/7ezvK9I4W0gUS41FTt4xFGP98/PmvZ
ROfPrd9oJqqj5CcGD+CK42e/d4Lr8AtiL76sYknC9kyowfbGjdjPGA5Zl2gFGoYE
DXAxXM+XrjggMfBQ56K2rFlM6JUkXkLw9ytw78a1jwAFOtVbK7K60sNK4pPpcp4f
mJfYiFo66xFg2L4csoar9S93in+hi3DS1icrk4kCgYEA91qikhl7gzRzjsjtD36A
xBn8kIFhXXbuS4ysr/T15k00EWGfVng4jknGPN/IjEJnAFj12u9qkOCNF1vuWV4Q
0nQNmVtYB+tlv/sIvm5LNkG4YmVeJj75YfaKcmNNKPeC8SFZtRzRm+gCckPBTHmn
vCA2h8Str81bstSAx7N3NmsCgYEAvVvfmLSWQZald4NNZMI7NoRtg1iea0sCif6R
0kvrbENro8qHM3NSysg/kPmD0tobWQWJrxxzS/hhAe1aqAaswJMWdqcBzgL256kd
ivbdgXX0zWLe/nk+drkrxJVWOC1T+doqjiEpxIFqmKoRxPditu+O1VNh86hVxoGF
yqcc5U0CgYEAiOZw88uGwKdXDb/G9LxfKCn5z0DMUp5wZQAG05wQPNad6sDNH16K
brYGMcrphDd8KoUSDYpUwLqHXFZVJMEbLl9s52PW5Qsz1X1q6XrBxdW55zuTUDeq
br21AnpTSkky/6IltEeu+0r9j6BQa7MpUsXBaINCXfqate9HF0AMyuECgYEAqyT7
bYhiebtPqDobXCMU44xDcsBIxo6QJ+rXHywRBtPU2L/2/LCRtsfQdBagZ5VLvGT9
8TAUoShHfTdqhY0q3A7U8b62Kd2SDQVTt0KyJw1Wib9/7p3kr+diwJV8zN9jE+J0
LeuZVYrmrj6gOtag+NiBzxtC37dYd0afhu8Ndc0CgYBES3gLtsBpaDxuAe7b14y4
SVTo4x3SsOeZ19VdSeXUHgCrc8SZSAV+BP/kcrYEjI7lJ5DMTvlZVFyMREAeZOIc
XxqpONTk8eiOCvzl+t4UK3oshiqIwoK3A9ZbcunMRk8R8dcfpd0nVadJxFAtCb7L
0aFYMVuJwzaPaKkcjq35Vw==
-----END PRIVATE KEY-----
`

// SegmentRateLimit is the requests per token per minute the simulator
// reports in X-RateLimit-Remaining. Running out only shows in the header;
// use the RateLimit fault for 429s, so tests with a frozen clock never
// throttle by accident.
const SegmentRateLimit = 600

// DefaultSegmentTokenLifetime is how long an OAuth access token lives
// unless SetSegmentTokenLifetime says otherwise (Segment's shortest
// setting is one day).
const DefaultSegmentTokenLifetime = 24 * time.Hour

// Segment's page size limits: PaginationInput.count is 1..1000 since API
// 73.x (1..200 in the 32.0.5 spec file; see SOURCES.md).
const segmentMaxCount = 1000

const segmentVendor = "segment"

// segmentRegions are the regions the simulator serves, each at
// /segment/{region} with its token endpoint at /segment/oauth/{region}/token.
var segmentRegions = []string{"us", "eu"}

// SegmentWorkspace is the fixed data behind one test token.
type SegmentWorkspace struct {
	ID, Name, Slug string
	Region         string // us or eu
	// BillingDay is the day of the month (UTC) usage periods start on.
	BillingDay int
	// Numbers of list items.
	Sources, Destinations, Warehouses, Users int
	Invites                                  []string // pending invitations (emails)

	// Daily increments of the cumulative usage counts: on the n-th day of
	// a period (n = 1 on its first day) a count is PerDay*n + the month
	// number (1..12) of the period's start. Anonymous is not set: it is
	// anonymous_identified + never_identified, as in Segment's model
	// (an anonymous id is either later identified or never).
	IdentifiedPerDay, AnonymousIdentifiedPerDay, NeverIdentifiedPerDay int64
	APICallsPerDay                                                     int64
}

var segmentWorkspaces = map[string]*SegmentWorkspace{
	SegmentTokenAcme: {
		ID: "AcmeVendorsimWs0000001", Name: "Acme Analytics", Slug: "acme-analytics", Region: "us",
		BillingDay: 1,
		Sources:    7, Destinations: 8, Warehouses: 4, Users: 5,
		Invites:          []string{"new-analyst@acme.example", "contractor@acme.example"},
		IdentifiedPerDay: 41000, AnonymousIdentifiedPerDay: 7500, NeverIdentifiedPerDay: 88000,
		// Large enough that a period's total passes 2^31.
		APICallsPerDay: 165000000,
	},
	SegmentTokenEuro: {
		ID: "EuroVendorsimWs0000002", Name: "Euro Corp", Slug: "euro-corp", Region: "eu",
		BillingDay: 10,
		Sources:    4, Destinations: 2, Warehouses: 0, Users: 3,
		Invites:          []string{"dpo@euro.example"},
		IdentifiedPerDay: 2000, AnonymousIdentifiedPerDay: 300, NeverIdentifiedPerDay: 4700,
		APICallsPerDay: 1200000,
	},
}

// segmentOAuthApp is a registered OAuth app.
type segmentOAuthApp struct {
	ClientID, KeyID, Token string // Token: the workspace's test token
}

var segmentOAuthApps = map[string]segmentOAuthApp{
	SegmentOAuthClientAcme: {SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, SegmentTokenAcme},
	SegmentOAuthClientEuro: {SegmentOAuthClientEuro, SegmentOAuthKeyIDEuro, SegmentTokenEuro},
}

// segmentPublicKey is the public half of SegmentOAuthTestPrivateKey.
var segmentPublicKey = func() *rsa.PublicKey {
	k, err := jwt.ParseRSAPrivateKeyFromPEM([]byte(SegmentOAuthTestPrivateKey))
	if err != nil {
		panic("vendorsim: the embedded Segment test key does not parse: " + err.Error())
	}
	return &k.PublicKey
}()

// SegmentWorkspaceFor returns a copy of the data behind a test token
// (fixed or synthetic, see SegmentSyntheticToken).
func SegmentWorkspaceFor(token string) (SegmentWorkspace, bool) {
	w, ok := segmentWorkspace(token)
	if !ok {
		return SegmentWorkspace{}, false
	}
	c := *w
	c.Invites = slices.Clone(w.Invites)
	return c, true
}

// PeriodOf returns the usage period holding t: from its first day
// (inclusive, 00:00 UTC on BillingDay) to the next period's first day.
func (w SegmentWorkspace) PeriodOf(t time.Time) (start, end time.Time) {
	d := utcDay(t)
	start = time.Date(d.Year(), d.Month(), w.BillingDay, 0, 0, 0, 0, time.UTC)
	if d.Before(start) {
		start = start.AddDate(0, -1, 0)
	}
	return start, start.AddDate(0, 1, 0)
}

// SegmentMTU is one daily cumulative MTU snapshot.
type SegmentMTU struct {
	Identified, Anonymous, AnonymousIdentified, NeverIdentified int64
}

// Billable is what Segment bills: distinct user ids plus anonymous ids
// never tied to one.
func (m SegmentMTU) Billable() int64 { return m.Identified + m.NeverIdentified }

// MTUOn returns the cumulative MTU counts of day's period up to and
// including day.
func (w SegmentWorkspace) MTUOn(day time.Time) SegmentMTU {
	n, mo := w.dayOfPeriod(day)
	m := SegmentMTU{Identified: w.IdentifiedPerDay*n + mo, AnonymousIdentified: w.AnonymousIdentifiedPerDay*n + mo, NeverIdentified: w.NeverIdentifiedPerDay*n + mo}
	m.Anonymous = m.AnonymousIdentified + m.NeverIdentified
	return m
}

// SourceMTUOn returns source i's cumulative MTU counts of day's period up
// to and including day. The sources' counts add up to the workspace's
// (MTUOn): the simulator's assumption, which the issue asks for. In
// Segment a user seen by two sources is one workspace MTU, so there the
// sources' sum can exceed the workspace's.
func (w SegmentWorkspace) SourceMTUOn(i int, day time.Time) SegmentMTU {
	n, mo := w.dayOfPeriod(day)
	return w.sourceShares(i).mtu(i, n, mo)
}

// segmentShares are one source's shares of the workspace's daily
// increments (sourceShare). An answer listing every source for every day
// computes them once per source, not once per item.
type segmentShares struct {
	identified, anonymousIdentified, neverIdentified, apiCalls int64
}

func (w SegmentWorkspace) sourceShares(i int) segmentShares {
	return segmentShares{
		identified:          w.sourceShare(i, w.IdentifiedPerDay),
		anonymousIdentified: w.sourceShare(i, w.AnonymousIdentifiedPerDay),
		neverIdentified:     w.sourceShare(i, w.NeverIdentifiedPerDay),
		apiCalls:            w.sourceShare(i, w.APICallsPerDay),
	}
}

// mtu is source i's cumulative MTU counts on day n of a period that
// starts in month mo (see SourceMTUOn).
func (sh segmentShares) mtu(i int, n, mo int64) SegmentMTU {
	off := sourceOffset(i, mo)
	m := SegmentMTU{
		Identified:          sh.identified*n + off,
		AnonymousIdentified: sh.anonymousIdentified*n + off,
		NeverIdentified:     sh.neverIdentified*n + off,
	}
	m.Anonymous = m.AnonymousIdentified + m.NeverIdentified
	return m
}

// apiCallsOn is source i's cumulative API calls on day n of a period that
// starts in month mo (see SourceAPICallsOn).
func (sh segmentShares) apiCallsOn(i int, n, mo int64) int64 {
	return sh.apiCalls*n + sourceOffset(i, mo)
}

// APICallsOn returns the cumulative API calls of day's period up to and
// including day: the sum of the sources' (SourceAPICallsOn).
func (w SegmentWorkspace) APICallsOn(day time.Time) int64 {
	n, m := w.dayOfPeriod(day)
	return w.APICallsPerDay*n + m
}

// SourceAPICallsOn returns source i's cumulative API calls of day's
// period up to and including day.
func (w SegmentWorkspace) SourceAPICallsOn(i int, day time.Time) int64 {
	n, mo := w.dayOfPeriod(day)
	return w.sourceShares(i).apiCallsOn(i, n, mo)
}

// sourceShare splits a daily increment among the sources by weight i+1;
// source 0 takes the rounding remainder, so the shares add up exactly.
func (w SegmentWorkspace) sourceShare(i int, perDay int64) int64 {
	if w.Sources <= 1 {
		return perDay
	}
	total := int64(w.Sources * (w.Sources + 1) / 2)
	if i > 0 {
		return perDay * int64(i+1) / total
	}
	rest := perDay
	for j := 1; j < w.Sources; j++ {
		rest -= perDay * int64(j+1) / total
	}
	return rest
}

// sourceOffset: the month number goes to source 0 only.
func sourceOffset(i int, month int64) int64 {
	if i == 0 {
		return month
	}
	return 0
}

// dayOfPeriod returns n (1 on the period's first day) and the month number
// of the period's start.
func (w SegmentWorkspace) dayOfPeriod(day time.Time) (n, month int64) {
	start, _ := w.PeriodOf(day)
	return int64(utcDay(day).Sub(start)/(24*time.Hour)) + 1, int64(start.Month())
}

// segment is the simulated Segment Public API and its OAuth server.
type segment struct {
	s *Server

	mu       sync.Mutex
	revoked  map[string]bool // Public API tokens and issued access tokens
	access   map[string]segmentAccess
	jtis     map[string]time.Time // assertion ids seen, until their expiry
	issued   int64
	lifetime time.Duration
	refuse   bool
	windows  map[string]*rateWindow // by workspace id; "" for callers without a valid token
	// The next limitNext token requests answer 429 with Retry-After
	// limitAfter (rounded up to whole seconds).
	limitNext   int
	limitAfter  time.Duration
	unversioned int64 // API calls without Accept: application/vnd.segment.v1+json
}

type segmentAccess struct {
	token   string // the workspace's test token
	region  string
	expires time.Time
}

// Bounds for a long-running demo: expired entries are dropped first, and
// past these sizes the oldest-expiring ones go.
const (
	maxSegmentAccessTokens = 10000
	maxSegmentJTIs         = 10000
)

func (s *Server) registerSegment() {
	g := &segment{s: s, revoked: map[string]bool{}, access: map[string]segmentAccess{}, jtis: map[string]time.Time{},
		lifetime: DefaultSegmentTokenLifetime, windows: map[string]*rateWindow{}}
	s.state[segmentVendor] = g
	for _, region := range segmentRegions {
		s.Mount(segmentVendor, "/segment/"+region, &segmentAPI{g: g, region: region})
	}
	for _, region := range segmentRegions {
		prefix := "/segment/oauth/" + region
		s.Mount(segmentVendor, prefix, &segmentOAuth{g: g, region: region, prefix: prefix})
	}
	s.control("POST /_sim/segment/revoke", g.serveRevoke(true))
	s.control("POST /_sim/segment/restore", g.serveRevoke(false))
	s.control("GET /_sim/segment/oauth", g.serveOAuthSettings)
	s.control("PUT /_sim/segment/oauth", g.serveOAuthSettings)
	s.describe(segmentVendor,
		[]Credential{
			{Label: "Public API token, region us, workspace Acme Analytics (usage periods start on the 1st)", Value: SegmentTokenAcme},
			{Label: "Public API token, region eu, workspace Euro Corp (usage periods start on the 10th)", Value: SegmentTokenEuro},
			{Label: "Public API token of synthetic workspace 1 (region us, acme-like); any number exist: the same prefix + 10 digits", Value: SegmentSyntheticToken(1)},
			{Label: "OAuth app (region us, Acme Analytics): App ID / Key ID", Value: SegmentOAuthClientAcme + " / " + SegmentOAuthKeyIDAcme},
			{Label: "OAuth app (region eu, Euro Corp): App ID / Key ID", Value: SegmentOAuthClientEuro + " / " + SegmentOAuthKeyIDEuro},
			{Label: "OAuth private key of both apps (test only)", Value: SegmentOAuthTestPrivateKey},
		},
		[]string{
			"POST /_sim/segment/revoke   form or JSON token=<token or OAuth access token>: it answers 401 until restored",
			"POST /_sim/segment/restore  form or JSON token=<token>",
			`PUT /_sim/segment/oauth     JSON {"token_lifetime":"1h","refuse":true,"rate_limit_next":2,"retry_after":"3s"}: access-token lifetime; refuse makes the token endpoints answer invalid_client; the next rate_limit_next token requests answer 429 with Retry-After`,
			"GET /_sim/segment/oauth     current OAuth settings",
		},
		func(base string) string {
			return "  segment:\n" +
				"    api_url: " + base + "/segment/us\n" +
				"    eu_api_url: " + base + "/segment/eu\n" +
				"    token_url: " + base + "/segment/oauth/us/token\n" +
				"    eu_token_url: " + base + "/segment/oauth/eu/token\n"
		})
}

func (s *Server) segment() *segment { return s.state[segmentVendor].(*segment) }

// RevokeSegmentToken makes a Public API token, or an OAuth access token the
// simulator issued, answer 401 until RestoreSegmentToken.
func (s *Server) RevokeSegmentToken(token string) { s.segment().setRevoked(token, true) }

// RestoreSegmentToken undoes RevokeSegmentToken.
func (s *Server) RestoreSegmentToken(token string) { s.segment().setRevoked(token, false) }

// SetSegmentTokenLifetime sets the lifetime of OAuth access tokens issued
// from now on (d <= 0: DefaultSegmentTokenLifetime).
func (s *Server) SetSegmentTokenLifetime(d time.Duration) {
	if d <= 0 {
		d = DefaultSegmentTokenLifetime
	}
	g := s.segment()
	g.mu.Lock()
	g.lifetime = d
	g.mu.Unlock()
}

// SetSegmentOAuthRefuse makes both token endpoints answer every request
// with invalid_client (as when the app or its key was deleted), or stops it.
// Access tokens already issued keep working.
func (s *Server) SetSegmentOAuthRefuse(refuse bool) {
	g := s.segment()
	g.mu.Lock()
	g.refuse = refuse
	g.mu.Unlock()
}

// SetSegmentOAuthRateLimit makes the next n token requests (both regions)
// answer 429 with Retry-After: retryAfter in whole seconds, rounded up
// (0 sends "0"), as Segment's token service does when rate limited.
func (s *Server) SetSegmentOAuthRateLimit(n int, retryAfter time.Duration) {
	g := s.segment()
	g.mu.Lock()
	g.limitNext, g.limitAfter = max(n, 0), max(retryAfter, 0)
	g.mu.Unlock()
}

// SegmentUnversionedCalls counts Public API calls that did not ask for
// version 1 (Accept: application/vnd.segment.v1+json).
func (s *Server) SegmentUnversionedCalls() int64 {
	g := s.segment()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.unversioned
}

func (g *segment) setRevoked(token string, revoked bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if revoked {
		g.revoked[token] = true
	} else {
		delete(g.revoked, token)
	}
}

func (g *segment) serveRevoke(revoke bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxControlBody)
		var token string
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
			var in struct {
				Token string `json:"token"`
			}
			b, err := io.ReadAll(r.Body)
			if err == nil {
				err = json.Unmarshal(b, &in)
			}
			if err != nil {
				simError(w, http.StatusBadRequest, "the body must be JSON like {\"token\":\"sgp_...\"}: %v", err)
				return
			}
			token = in.Token
		} else {
			if err := r.ParseForm(); err != nil {
				simError(w, http.StatusBadRequest, "reading the form: %v", err)
				return
			}
			token = r.Form.Get("token")
		}
		token = strings.TrimSpace(token)
		if token == "" {
			simError(w, http.StatusBadRequest, "missing token: send form field token=<token> or JSON {\"token\":\"...\"}")
			return
		}
		ws, _, ok := g.lookup(token)
		if !ok {
			// Never echo the token: whatever was pasted may be a real one.
			simError(w, http.StatusNotFound, "not a Segment test token or access token of this simulator; the test tokens are listed on the index page /")
			return
		}
		g.setRevoked(token, revoke)
		writeJSON(w, http.StatusOK, map[string]any{"vendor": segmentVendor, "workspace": ws.Slug, "revoked": revoke})
	}
}

// segmentOAuthSettings is the body of GET/PUT /_sim/segment/oauth.
type segmentOAuthSettings struct {
	TokenLifetime string `json:"token_lifetime"`
	Refuse        bool   `json:"refuse"`
	RateLimitNext int    `json:"rate_limit_next"`
	RetryAfter    string `json:"retry_after"`
}

func (g *segment) serveOAuthSettings(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
		if err != nil {
			simError(w, http.StatusBadRequest, "reading the body: %v", err)
			return
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			simError(w, http.StatusBadRequest, `the body must be JSON like {"token_lifetime":"1h","refuse":false}: %v`, err)
			return
		}
		g.mu.Lock()
		lifetime, refuse, limitNext, limitAfter := g.lifetime, g.refuse, g.limitNext, g.limitAfter
		g.mu.Unlock()
		for k, v := range raw {
			switch k {
			case "token_lifetime":
				d, err := decodeDuration(k, v)
				if err != nil || d <= 0 {
					simError(w, http.StatusBadRequest, `token_lifetime must be a positive duration like "1h" or "10m"`)
					return
				}
				lifetime = d
			case "refuse":
				if err := decodeBool(k, v, &refuse); err != nil {
					simError(w, http.StatusBadRequest, "%v", err)
					return
				}
			case "rate_limit_next":
				if err := json.Unmarshal(v, &limitNext); err != nil || limitNext < 0 {
					simError(w, http.StatusBadRequest, "rate_limit_next must be a whole number of token requests, 0 or more")
					return
				}
			case "retry_after":
				d, err := decodeDuration(k, v)
				if err != nil || d < 0 {
					simError(w, http.StatusBadRequest, `retry_after must be a duration like "30s", 0 or more`)
					return
				}
				limitAfter = d
			default:
				simError(w, http.StatusBadRequest, "unknown field %q; known fields: rate_limit_next, refuse, retry_after, token_lifetime", k)
				return
			}
		}
		g.mu.Lock()
		g.lifetime, g.refuse, g.limitNext, g.limitAfter = lifetime, refuse, limitNext, limitAfter
		g.mu.Unlock()
		g.s.log.Info("segment oauth settings", "token_lifetime", lifetime, "refuse", refuse, "rate_limit_next", limitNext, "retry_after", limitAfter)
	}
	g.mu.Lock()
	out := segmentOAuthSettings{TokenLifetime: g.lifetime.String(), Refuse: g.refuse, RateLimitNext: g.limitNext, RetryAfter: g.limitAfter.String()}
	g.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// lookup finds the workspace of a Public API token or issued access token.
func (g *segment) lookup(token string) (*SegmentWorkspace, *segmentAccess, bool) {
	if ws, ok := segmentWorkspace(token); ok {
		return ws, nil, true
	}
	g.mu.Lock()
	a, ok := g.access[token]
	g.mu.Unlock()
	if !ok {
		return nil, nil, false
	}
	ws, _ := segmentWorkspace(a.token)
	return ws, &a, true
}

// authenticate returns the workspace of the request's bearer token in
// region, or nil with a reason for the 401.
func (g *segment) authenticate(r *http.Request, region string) (*SegmentWorkspace, string) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, "missing or non-Bearer Authorization header"
	}
	token = strings.TrimSpace(token)
	ws, acc, ok := g.lookup(token)
	if !ok {
		return nil, "unknown token"
	}
	if ws.Region != region {
		return nil, "token of another region"
	}
	g.mu.Lock()
	revoked := g.revoked[token] || (acc != nil && g.revoked[acc.token])
	g.mu.Unlock()
	if revoked {
		return nil, "revoked token"
	}
	if acc != nil && !g.s.now().Before(acc.expires) {
		return nil, "expired access token"
	}
	return ws, ""
}

// segmentErrorItem is one item of Segment's {"errors":[...]} envelope.
type segmentErrorItem struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	Data    any    `json:"data,omitempty"`
}

func segmentError(w http.ResponseWriter, status int, typ, message string) {
	writeJSON(w, status, map[string][]segmentErrorItem{"errors": {{Type: typ, Message: message}}})
}

// rateHeaders counts a call in the caller's minute window and sets
// Segment's X-RateLimit-* headers (the reset is an RFC 5322 date).
func (g *segment) rateHeaders(w http.ResponseWriter, ws *SegmentWorkspace) {
	id := ""
	if ws != nil {
		id = ws.ID
	}
	start := g.s.now().UTC().Truncate(time.Minute)
	g.mu.Lock()
	win := g.windows[id]
	if win == nil || !win.start.Equal(start) {
		win = &rateWindow{start: start}
		g.windows[id] = win
	}
	win.used++
	used := win.used
	g.mu.Unlock()
	h := w.Header()
	h.Set("X-RateLimit-Consumed", strconv.Itoa(used))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(SegmentRateLimit-used, 0)))
	h.Set("X-RateLimit-Reset", start.Add(time.Minute).Format(http.TimeFormat))
}

// segmentAPI is one region of the Public API, mounted at /segment/{region}.
type segmentAPI struct {
	g      *segment
	region string
}

// WriteFault answers a fault in Segment's shape: 429 with X-RateLimit-*
// headers and msBeforeNext in the body, 5xx with the error envelope.
func (a *segmentAPI) WriteFault(w http.ResponseWriter, r *http.Request, e FaultError) {
	if e.Status == http.StatusTooManyRequests {
		reset := time.Unix(ceilUnix(e.Reset), 0).UTC()
		h := w.Header()
		h.Set("X-RateLimit-Consumed", strconv.Itoa(SegmentRateLimit))
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", reset.Format(http.TimeFormat))
		writeJSON(w, e.Status, map[string][]segmentErrorItem{"errors": {{
			Type:    "RequestError",
			Message: "Too many requests",
			Data: map[string]int64{
				"remainingPoints": 0,
				"msBeforeNext":    e.RetryAfter.Milliseconds(),
				"consumedPoints":  SegmentRateLimit,
			},
		}}})
		return
	}
	ws, _ := a.g.authenticate(r, a.region)
	a.g.rateHeaders(w, ws)
	segmentError(w, e.Status, "InternalServerError", strings.ToLower(http.StatusText(e.Status)))
}

var segmentRoutes = map[string]func(a *segmentAPI, w http.ResponseWriter, r *http.Request, ws *SegmentWorkspace){
	"/":                              (*segmentAPI).serveWorkspace,
	"/usage/mtu/daily":               (*segmentAPI).serveMTU,
	"/usage/api-calls/daily":         (*segmentAPI).serveAPICalls,
	"/usage/mtu/sources/daily":       (*segmentAPI).serveSourceMTU,
	"/usage/api-calls/sources/daily": (*segmentAPI).serveSourceAPICalls,
	"/sources":                       (*segmentAPI).serveSources,
	"/destinations":                  (*segmentAPI).serveDestinations,
	"/warehouses":                    (*segmentAPI).serveWarehouses,
	"/users":                         (*segmentAPI).serveUsers,
	"/invites":                       (*segmentAPI).serveInvites,
}

// segmentV1 is the media type of Public API version 1. A client pins the
// version by asking for it in Accept; Segment serves unversioned calls
// with "the most stable version", which can change.
const segmentV1 = "application/vnd.segment.v1+json"

// versionedWriter labels successful JSON answers with the version the
// client asked for (the spec gives errors only as application/json).
type versionedWriter struct{ http.ResponseWriter }

func (v versionedWriter) WriteHeader(code int) {
	if code < 300 && v.Header().Get("Content-Type") == "application/json" {
		v.Header().Set("Content-Type", segmentV1)
	}
	v.ResponseWriter.WriteHeader(code)
}

// acceptsV1 reports whether an Accept header asks for version 1. The
// exporter sends exactly segmentV1: that needs no parsing.
func acceptsV1(accept string) bool {
	return accept == segmentV1 || slices.ContainsFunc(strings.Split(accept, ","), func(m string) bool {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(m))
		return mt == segmentV1
	})
}

func (a *segmentAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if acceptsV1(r.Header.Get("Accept")) {
		w = versionedWriter{w}
	} else {
		a.g.mu.Lock()
		a.g.unversioned++
		a.g.mu.Unlock()
	}
	ws, why := a.g.authenticate(r, a.region)
	a.g.rateHeaders(w, ws)
	if ws == nil {
		a.g.s.log.Debug("segment 401", "region", a.region, "reason", why)
		segmentError(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized: the token is missing, invalid, expired or not valid in this region")
		return
	}
	path := r.URL.Path
	if path == "" {
		path = "/"
	}
	serve, ok := segmentRoutes[path]
	if !ok {
		segmentError(w, http.StatusNotFound, "NotFound", "Resource not found")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		segmentError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the simulator serves only GET here")
		return
	}
	serve(a, w, r, ws)
}

// Answers are structs, not maps: encoding/json sorts a map's keys on
// every call, a struct's fields are ordered once. Fields are declared in
// sorted order, so the bytes are those maps gave (TestAnswersMatchGolden).
// struct{} is an empty object, [0]int an empty list.

func (a *segmentAPI) serveWorkspace(w http.ResponseWriter, r *http.Request, ws *SegmentWorkspace) {
	type workspace struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Slug string `json:"slug"`
	}
	type data struct {
		Workspace workspace `json:"workspace"`
	}
	writeJSON(w, http.StatusOK, struct {
		Data data `json:"data"`
	}{data{workspace{ws.ID, ws.Name, ws.Slug}}})
}

// queryParam reads the first non-empty of the given spellings.
func queryParam(q url.Values, names ...string) string {
	for _, n := range names {
		if v := q.Get(n); v != "" {
			return v
		}
	}
	return ""
}

// segmentCursor is the opaque cursor of an offset, as Segment's look
// ("MA==" is the first page).
func segmentCursor(offset int) string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(offset)))
}

// segmentPagination is the pagination object of a list answer.
type segmentPagination struct {
	Current      string  `json:"current"`
	Next         string  `json:"next,omitempty"` // left out on the last page, as Segment does
	Previous     *string `json:"previous"`
	TotalEntries int     `json:"totalEntries"`
}

// paginate reads pagination.count/cursor (also spelt pagination[count]
// and pagination[cursor]) and returns the page's bounds and the output
// pagination object, or answers 422 and returns ok=false. count is capped
// at the simulator's page size.
func (a *segmentAPI) paginate(w http.ResponseWriter, r *http.Request, total int) (from, to int, out segmentPagination, ok bool) {
	q := r.URL.Query()
	countS := queryParam(q, "pagination.count", "pagination[count]")
	if countS == "" {
		segmentError(w, http.StatusUnprocessableEntity, "ValidationFailure", "pagination.count is required (1 to 1000)")
		return 0, 0, out, false
	}
	count, err := strconv.Atoi(countS)
	if err != nil || count < 1 || count > segmentMaxCount {
		segmentError(w, http.StatusUnprocessableEntity, "ValidationFailure", fmt.Sprintf("pagination.count must be a whole number from 1 to %d", segmentMaxCount))
		return 0, 0, out, false
	}
	if cur := queryParam(q, "pagination.cursor", "pagination[cursor]"); cur != "" {
		b, err := base64.StdEncoding.DecodeString(cur)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 {
			segmentError(w, http.StatusUnprocessableEntity, "ValidationFailure", "pagination.cursor is not a cursor this API returned")
			return 0, 0, out, false
		}
		from = n
	}
	from = min(from, total)
	to = min(from+min(count, a.g.s.pageSize), total)
	out = segmentPagination{Current: segmentCursor(from), TotalEntries: total}
	if from > 0 {
		prev := segmentCursor(max(from-(to-from), 0))
		out.Previous = &prev
	}
	if to < total {
		out.Next = segmentCursor(to)
	}
	return from, to, out, true
}

// servePage answers a list: {"data": {key: items[from:to], "pagination":
// ...}}, the two keys in sorted order as a map would have them.
func servePage[T any](a *segmentAPI, w http.ResponseWriter, r *http.Request, key string, items []T) {
	from, to, pg, ok := a.paginate(w, r, len(items))
	if !ok {
		return
	}
	type field struct {
		key   string
		value any
	}
	fields := [2]field{{key, items[from:to]}, {"pagination", pg}}
	if key > "pagination" {
		fields[0], fields[1] = fields[1], fields[0]
	}
	buf := getJSONBuffer()
	defer putJSONBuffer(buf)
	buf.WriteString(`{"data":{`)
	for i, f := range fields {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(strconv.Quote(f.key))
		buf.WriteByte(':')
		if err := appendJSON(buf, f.value); err != nil {
			panic("vendorsim: encoding a Segment list: " + err.Error()) // our own types: a bug
		}
	}
	buf.WriteString("}}\n")
	writeJSONBytes(w, http.StatusOK, buf.Bytes())
}

// segmentLogos is the logos object of a catalog entry.
type segmentLogos struct {
	Default string `json:"default"`
}

func (a *segmentAPI) serveSources(w http.ResponseWriter, r *http.Request, ws *SegmentWorkspace) {
	kinds := []struct{ slug, name, category string }{
		{"javascript", "Javascript", "Website"}, {"ios", "iOS", "Mobile"}, {"android", "Android", "Mobile"},
		{"http-api", "HTTP API", "Server"}, {"node-js", "Node.js", "Server"},
	}
	type metadata struct {
		Categories         []string     `json:"categories"`
		Description        string       `json:"description"`
		ID                 string       `json:"id"`
		IsCloudEventSource bool         `json:"isCloudEventSource"`
		Logos              segmentLogos `json:"logos"`
		Name               string       `json:"name"`
		Options            [0]int       `json:"options"`
		Slug               string       `json:"slug"`
	}
	type source struct {
		Enabled     bool     `json:"enabled"`
		ID          string   `json:"id"`
		Labels      [0]int   `json:"labels"`
		Metadata    metadata `json:"metadata"`
		Name        string   `json:"name"`
		Settings    struct{} `json:"settings"`
		Slug        string   `json:"slug"`
		WorkspaceID string   `json:"workspaceId"`
		WriteKeys   []string `json:"writeKeys"`
	}
	items := make([]source, ws.Sources)
	for i := range items {
		k := kinds[i%len(kinds)]
		items[i] = source{
			ID: segmentID(ws, "src", i), Slug: k.slug + "-" + strconv.Itoa(i+1), Name: k.name + " " + strconv.Itoa(i+1),
			WorkspaceID: ws.ID, Enabled: i%4 != 3, WriteKeys: []string{segmentID(ws, "wk", i)},
			Metadata: metadata{
				ID: segmentID(ws, "srcmeta", i%len(kinds)), Slug: k.slug, Name: k.name, Categories: []string{k.category},
				Logos: segmentLogos{"https://cdn.example/" + k.slug + ".svg"},
			},
		}
	}
	servePage(a, w, r, "sources", items)
}

func (a *segmentAPI) serveDestinations(w http.ResponseWriter, r *http.Request, ws *SegmentWorkspace) {
	kinds := []struct{ slug, name string }{{"google-analytics", "Google Analytics"}, {"amplitude", "Amplitude"}, {"webhooks", "Webhooks"}}
	type methods struct {
		Identify bool `json:"identify"`
		Track    bool `json:"track"`
	}
	type platforms struct {
		Server bool `json:"server"`
	}
	type metadata struct {
		Actions            [0]int       `json:"actions"`
		Categories         []string     `json:"categories"`
		Components         [0]int       `json:"components"`
		Description        string       `json:"description"`
		ID                 string       `json:"id"`
		Logos              segmentLogos `json:"logos"`
		Name               string       `json:"name"`
		Options            [0]int       `json:"options"`
		Presets            [0]int       `json:"presets"`
		PreviousNames      [0]int       `json:"previousNames"`
		Slug               string       `json:"slug"`
		Status             string       `json:"status"`
		SupportedFeatures  struct{}     `json:"supportedFeatures"`
		SupportedMethods   methods      `json:"supportedMethods"`
		SupportedPlatforms platforms    `json:"supportedPlatforms"`
		Website            string       `json:"website"`
	}
	type destination struct {
		Enabled  bool     `json:"enabled"`
		ID       string   `json:"id"`
		Metadata metadata `json:"metadata"`
		Name     string   `json:"name"`
		Settings struct{} `json:"settings"`
		SourceID string   `json:"sourceId"`
	}
	items := make([]destination, ws.Destinations)
	for i := range items {
		k := kinds[i%len(kinds)]
		items[i] = destination{
			ID: segmentID(ws, "dst", i), Name: k.name + " " + strconv.Itoa(i+1), Enabled: i%3 != 2,
			SourceID: segmentID(ws, "src", i%max(ws.Sources, 1)),
			Metadata: metadata{
				ID: segmentID(ws, "dstmeta", i%len(kinds)), Name: k.name, Slug: k.slug,
				Logos: segmentLogos{"https://cdn.example/" + k.slug + ".svg"}, Status: "PUBLIC", Categories: []string{"Analytics"},
				Website: "https://" + k.slug + ".example", SupportedMethods: methods{Track: true, Identify: true},
				SupportedPlatforms: platforms{Server: true},
			},
		}
	}
	servePage(a, w, r, "destinations", items)
}

func (a *segmentAPI) serveWarehouses(w http.ResponseWriter, r *http.Request, ws *SegmentWorkspace) {
	type metadata struct {
		Description string       `json:"description"`
		ID          string       `json:"id"`
		Logos       segmentLogos `json:"logos"`
		Name        string       `json:"name"`
		Options     [0]int       `json:"options"`
		Slug        string       `json:"slug"`
	}
	type warehouse struct {
		Enabled     bool     `json:"enabled"`
		ID          string   `json:"id"`
		Metadata    metadata `json:"metadata"`
		Settings    struct{} `json:"settings"`
		WorkspaceID string   `json:"workspaceId"`
	}
	items := make([]warehouse, ws.Warehouses)
	for i := range items {
		items[i] = warehouse{
			ID: segmentID(ws, "wh", i), WorkspaceID: ws.ID, Enabled: true,
			Metadata: metadata{
				ID: segmentID(ws, "whmeta", 0), Name: "Postgres", Slug: "postgres",
				Logos: segmentLogos{"https://cdn.example/postgres.svg"},
			},
		}
	}
	servePage(a, w, r, "warehouses", items)
}

// SegmentCustomRole is a role name outside Segment's documented ones, as
// a workspace may grow new roles: the exporter counts it as "other".
const SegmentCustomRole = "Vendorsim Custom Auditor"

// UserRoles returns the role names of user i's permissions: user 0 (and
// every fifth) is a Workspace Owner; the others are Workspace Members
// with, in turn, Source Admin on the first source, Source Read-only on
// every source, nothing more, or SegmentCustomRole.
func (w SegmentWorkspace) UserRoles(i int) []string {
	switch i % 5 {
	case 1:
		return []string{"Workspace Member", "Source Admin"}
	case 2:
		return []string{"Workspace Member", "Source Read-only"}
	case 3:
		return []string{"Workspace Member"}
	case 4:
		return []string{SegmentCustomRole}
	}
	return []string{"Workspace Owner"}
}

func (a *segmentAPI) serveUsers(w http.ResponseWriter, r *http.Request, ws *SegmentWorkspace) {
	type resource struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	type permission struct {
		Resources []resource `json:"resources"`
		RoleID    string     `json:"roleId"`
		RoleName  string     `json:"roleName"`
	}
	type user struct {
		Email       string       `json:"email"`
		ID          string       `json:"id"`
		Name        string       `json:"name"`
		Permissions []permission `json:"permissions"`
	}
	items := make([]user, ws.Users)
	for i := range items {
		var perms []permission
		for _, role := range ws.UserRoles(i) {
			res := []resource{{ws.ID, "WORKSPACE"}}
			if strings.HasPrefix(role, "Source ") {
				res = []resource{{segmentID(ws, "src", 0), "SOURCE"}}
			}
			perms = append(perms, permission{RoleID: segmentID(ws, "role:"+role, 0), RoleName: role, Resources: res})
		}
		items[i] = user{
			ID: segmentID(ws, "usr", i), Name: "User " + strconv.Itoa(i+1),
			Email:       "user" + strconv.Itoa(i+1) + "@" + ws.Slug + ".example",
			Permissions: perms,
		}
	}
	servePage(a, w, r, "users", items)
}

func (a *segmentAPI) serveInvites(w http.ResponseWriter, r *http.Request, ws *SegmentWorkspace) {
	servePage(a, w, r, "invites", ws.Invites)
}

// segmentID is a deterministic 22-character id, like Segment's: the
// base64 of sha256("<workspace id>/<kind>/<i>"), + and / replaced by A
// and B. Built in stack buffers: it is called for every item of a list.
func segmentID(ws *SegmentWorkspace, kind string, i int) string {
	var in [128]byte
	b := append(in[:0], ws.ID...)
	b = append(b, '/')
	b = append(b, kind...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(i), 10)
	sum := sha256.Sum256(b)
	var enc [43]byte
	base64.RawStdEncoding.Encode(enc[:], sum[:])
	id := enc[:22]
	for j, c := range id {
		switch c {
		case '+':
			id[j] = 'A'
		case '/':
			id[j] = 'B'
		}
	}
	return string(id)
}

// usageDays reads the period parameter (a date, or an ISO-8601 time whose
// UTC date counts) and returns the days of the usage period starting
// then, from its first day up to today, or answers 422. A date that is not
// the first day of one of the workspace's usage periods gets no days: the
// docs only say period is "the start of the usage month", so the
// simulator answers an empty list, the answer that fails loudly if a
// client guesses the start wrong (the 1st, for a period from the 10th).
func (a *segmentAPI) usageDays(w http.ResponseWriter, r *http.Request, ws *SegmentWorkspace) (days []time.Time, start, end time.Time, ok bool) {
	p := r.URL.Query().Get("period")
	if p == "" {
		segmentError(w, http.StatusUnprocessableEntity, "ValidationFailure", "period is required: the start of the usage month, e.g. 2021-02-01")
		return nil, start, end, false
	}
	d, err := time.Parse(dateLayout, p)
	if err != nil {
		t, err2 := time.Parse(time.RFC3339, p)
		if err2 != nil {
			segmentError(w, http.StatusUnprocessableEntity, "ValidationFailure", "period must be an ISO-8601 date such as 2021-02-01")
			return nil, start, end, false
		}
		d = t
	}
	today := utcDay(a.g.s.now())
	if utcDay(d).After(today) {
		segmentError(w, http.StatusUnprocessableEntity, "ValidationFailure", "period must not be in the future")
		return nil, start, end, false
	}
	start, end = ws.PeriodOf(d)
	if !start.Equal(utcDay(d)) {
		return nil, start, end, true
	}
	for day := start; day.Before(end) && !day.After(today); day = day.AddDate(0, 0, 1) {
		days = append(days, day)
	}
	return days, start, end, true
}

// segmentTimestamp is how Segment writes snapshot timestamps.
const segmentTimestamp = "2006-01-02T15:04:05.000Z"

// segmentMTUItem is one MtuSnapshotV1 (or, with SourceID,
// UsersPerSourceSnapshotV1). Bigints travel as strings (",string": no
// string to allocate per number).
type segmentMTUItem struct {
	Anonymous           int64  `json:"anonymous,string"`
	AnonymousIdentified int64  `json:"anonymousIdentified,string"`
	Identified          int64  `json:"identified,string"`
	NeverIdentified     int64  `json:"neverIdentified,string"`
	PeriodEnd           int64  `json:"periodEnd"`
	PeriodStart         int64  `json:"periodStart"`
	SourceID            string `json:"sourceId,omitempty"`
	Timestamp           string `json:"timestamp"`
}

func mtuItem(m SegmentMTU, start, end, day time.Time, sourceID string) segmentMTUItem {
	return mtuItemAt(m, start, end, day.Format(segmentTimestamp), sourceID)
}

// mtuItemAt is mtuItem with the day's timestamp already formatted.
func mtuItemAt(m SegmentMTU, start, end time.Time, ts, sourceID string) segmentMTUItem {
	return segmentMTUItem{
		PeriodStart: start.Unix(), PeriodEnd: end.Unix(),
		Identified: m.Identified, Anonymous: m.Anonymous, AnonymousIdentified: m.AnonymousIdentified, NeverIdentified: m.NeverIdentified,
		Timestamp: ts, SourceID: sourceID,
	}
}

// segmentAPICallsItem is one ApiCallsSnapshotV1 (or, with SourceID, a
// per-source one).
type segmentAPICallsItem struct {
	APICalls  int64  `json:"apiCalls,string"`
	SourceID  string `json:"sourceId,omitempty"`
	Timestamp string `json:"timestamp"`
}

// serveMTU answers daily cumulative MTU snapshots of the usage period
// starting on the period parameter, one per day up to today.
func (a *segmentAPI) serveMTU(w http.ResponseWriter, r *http.Request, ws *SegmentWorkspace) {
	days, start, end, ok := a.usageDays(w, r, ws)
	if !ok {
		return
	}
	items := make([]segmentMTUItem, len(days))
	for i, d := range days {
		items[i] = mtuItem(ws.MTUOn(d), start, end, d, "")
	}
	servePage(a, w, r, "dailyWorkspaceMTUUsage", items)
}

// serveSourceMTU answers the same per source: one snapshot per day and
// source, in day order.
func (a *segmentAPI) serveSourceMTU(w http.ResponseWriter, r *http.Request, ws *SegmentWorkspace) {
	days, start, end, ok := a.usageDays(w, r, ws)
	if !ok {
		return
	}
	ids := sourceIDs(ws)
	servePage(a, w, r, "dailyPerSourceMTUUsage", perSource(days, ws, func(i int, sh segmentShares, n, mo int64, ts string) segmentMTUItem {
		return mtuItemAt(sh.mtu(i, n, mo), start, end, ts, ids[i])
	}))
}

func (a *segmentAPI) serveAPICalls(w http.ResponseWriter, r *http.Request, ws *SegmentWorkspace) {
	days, _, _, ok := a.usageDays(w, r, ws)
	if !ok {
		return
	}
	items := make([]segmentAPICallsItem, len(days))
	for i, d := range days {
		items[i] = segmentAPICallsItem{APICalls: ws.APICallsOn(d), Timestamp: d.Format(segmentTimestamp)}
	}
	servePage(a, w, r, "dailyWorkspaceAPICallsUsage", items)
}

func (a *segmentAPI) serveSourceAPICalls(w http.ResponseWriter, r *http.Request, ws *SegmentWorkspace) {
	days, _, _, ok := a.usageDays(w, r, ws)
	if !ok {
		return
	}
	ids := sourceIDs(ws)
	servePage(a, w, r, "dailyPerSourceAPICallsUsage", perSource(days, ws, func(i int, sh segmentShares, n, mo int64, ts string) segmentAPICallsItem {
		return segmentAPICallsItem{SourceID: ids[i], APICalls: sh.apiCallsOn(i, n, mo), Timestamp: ts}
	}))
}

// sourceIDs are the ids of ws's sources, once per answer rather than per item.
func sourceIDs(ws *SegmentWorkspace) []string {
	ids := make([]string, ws.Sources)
	for i := range ids {
		ids[i] = segmentID(ws, "src", i)
	}
	return ids
}

// perSource builds one item per day and source, in day order. item gets
// the source's shares, the day's place in its period (n, mo as
// dayOfPeriod returns them) and its timestamp, each computed once.
func perSource[T any](days []time.Time, ws *SegmentWorkspace, item func(i int, sh segmentShares, n, mo int64, ts string) T) []T {
	shares := make([]segmentShares, ws.Sources)
	for i := range shares {
		shares[i] = ws.sourceShares(i)
	}
	items := make([]T, 0, len(days)*ws.Sources)
	for _, d := range days {
		n, mo := ws.dayOfPeriod(d)
		ts := d.Format(segmentTimestamp)
		for i := range ws.Sources {
			items = append(items, item(i, shares[i], n, mo, ts))
		}
	}
	return items
}

// segmentOAuth is one region's authorization server, mounted at
// /segment/oauth/{region}; its token route is /token.
type segmentOAuth struct {
	g      *segment
	region string
	prefix string
}

// Assertion rules, as Segment documents them (lifetime: "less than sixty
// seconds"; the simulator allows up to five minutes for clock skew).
const (
	segmentAssertionType   = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	maxSegmentAssertionAge = 5 * time.Minute
)

// WriteFault answers a fault in OAuth's error shape.
func (o *segmentOAuth) WriteFault(w http.ResponseWriter, r *http.Request, e FaultError) {
	if e.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
		writeOAuthError(w, e.Status, "temporarily_unavailable", "too many requests")
		return
	}
	writeOAuthError(w, e.Status, "server_error", strings.ToLower(http.StatusText(e.Status)))
}

// audience is what the assertion's aud (and iss, if set) must be: the
// authorization server's URL, i.e. the token URL without "/token".
func (o *segmentOAuth) audience(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + o.prefix
}

func (o *segmentOAuth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/token" {
		writeOAuthError(w, http.StatusNotFound, "not_found", "the token endpoint is "+o.prefix+"/token")
		return
	}
	// A rate limit comes before any check of the request.
	o.g.mu.Lock()
	limited, after := o.g.limitNext > 0, o.g.limitAfter
	if limited {
		o.g.limitNext--
	}
	o.g.mu.Unlock()
	if limited {
		o.WriteFault(w, r, FaultError{Status: http.StatusTooManyRequests, RetryAfter: after})
		return
	}
	f, ok := tokenForm(w, r)
	if !ok {
		return
	}
	if f.Get("grant_type") != "client_credentials" {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	}
	if f.Get("client_assertion_type") != segmentAssertionType {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "client_assertion_type must be "+segmentAssertionType)
		return
	}
	if sc := f.Get("scope"); sc != "" && !slices.Contains(strings.Fields(sc), SegmentOAuthScope) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_scope", "the app grants only "+SegmentOAuthScope)
		return
	}
	o.g.mu.Lock()
	refuse := o.g.refuse
	o.g.mu.Unlock()
	if refuse {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed (the simulator refuses every client)")
		return
	}
	app, claims, why := o.checkAssertion(r, f.Get("client_assertion"))
	if why != "" {
		o.g.s.log.Debug("segment oauth refused", "region", o.region, "reason", why)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed: "+why)
		return
	}
	if !o.g.useJTI(claims.ID, claims.ExpiresAt.Time) {
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed: the assertion's jti was used before")
		return
	}
	tok, lifetime := o.g.issue(app, o.region)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "Bearer",
		"expires_in": int64(lifetime / time.Second), "scope": SegmentOAuthScope,
	})
}

// checkAssertion verifies the client assertion JWT: RS256 signed with the
// app's registered key (header kid), sub = an app of this region, aud =
// this server, iss absent or this server, exp and iat present, exp at most
// five minutes after iat and not passed (simulator clock), jti present.
func (o *segmentOAuth) checkAssertion(r *http.Request, assertion string) (segmentOAuthApp, *jwt.RegisteredClaims, string) {
	if assertion == "" {
		return segmentOAuthApp{}, nil, "client_assertion is missing"
	}
	aud := o.audience(r)
	var app segmentOAuthApp
	claims := &jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(assertion, claims, func(t *jwt.Token) (any, error) {
		a, ok := segmentOAuthApps[claims.Subject]
		if !ok || segmentWorkspaces[a.Token].Region != o.region {
			return nil, errors.New("sub is not an OAuth app of this region")
		}
		if kid, _ := t.Header["kid"].(string); kid != a.KeyID {
			return nil, errors.New("kid is not a key of this app")
		}
		app = a
		return segmentPublicKey, nil
	},
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithTimeFunc(o.g.s.now),
		jwt.WithAudience(aud),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	if err != nil {
		return app, nil, err.Error()
	}
	switch {
	case claims.Issuer != "" && claims.Issuer != aud:
		return app, nil, "iss must be " + aud + " or left out"
	case claims.IssuedAt == nil:
		return app, nil, "iat is missing"
	case claims.ExpiresAt.Sub(claims.IssuedAt.Time) > maxSegmentAssertionAge:
		return app, nil, "the assertion lives longer than five minutes"
	case claims.ID == "":
		return app, nil, "jti is missing"
	}
	return app, claims, ""
}

// useJTI records an assertion id; false if it was used before.
func (g *segment) useJTI(jti string, exp time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.s.now()
	if _, seen := g.jtis[jti]; seen {
		return false
	}
	if len(g.jtis) >= maxSegmentJTIs {
		for k, e := range g.jtis {
			if !now.Before(e) {
				delete(g.jtis, k)
			}
		}
		// A replay needs an unexpired assertion, so dropping expired ids
		// loses nothing; past the bound, drop an arbitrary one.
		for k := range g.jtis {
			if len(g.jtis) < maxSegmentJTIs {
				break
			}
			delete(g.jtis, k)
		}
	}
	g.jtis[jti] = exp
	return true
}

// issue creates an access token for app, deterministic in the order of
// issue.
func (g *segment) issue(app segmentOAuthApp, region string) (string, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.s.now()
	g.issued++
	mac := hmac.New(sha256.New, []byte("vendorsim segment access tokens"))
	fmt.Fprintf(mac, "%s/%d", app.ClientID, g.issued)
	tok := "vsat_" + hex.EncodeToString(mac.Sum(nil))[:48]
	if len(g.access) >= maxSegmentAccessTokens {
		g.pruneAccess(now)
	}
	g.access[tok] = segmentAccess{token: app.Token, region: region, expires: now.Add(g.lifetime)}
	return tok, g.lifetime
}

func (g *segment) pruneAccess(now time.Time) {
	oldest, oldestExp := "", time.Time{}
	for k, a := range g.access {
		if !now.Before(a.expires) {
			delete(g.access, k)
			continue
		}
		if oldest == "" || a.expires.Before(oldestExp) {
			oldest, oldestExp = k, a.expires
		}
	}
	if len(g.access) >= maxSegmentAccessTokens && oldest != "" {
		delete(g.access, oldest)
	}
}
