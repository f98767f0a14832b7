package vendorsim

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/golang-jwt/jwt/v5"
)

// --- contract test against Segment's OpenAPI file ---------------------------

// segmentSpec is the Segment Public API file, routed under both regions.
type segmentSpec struct {
	doc      *openapi3.T
	router   routers.Router
	envelope *openapi3.Schema // RequestErrorEnvelope
}

var (
	segmentSpecOnce sync.Once
	segmentSpecDoc  *openapi3.T
	segmentSpecErr  error
	segmentPatched  int
)

// loadSegmentSpec loads the file once (it is 1.2 MB) and routes it at the
// simulator's two regional prefixes.
//
// Documented deviations, applied here and nowhere else:
//   - The file marks 72 query parameters style: deepObject with explode:
//     false, a combination OpenAPI does not define (kin-openapi refuses
//     the document). Object parameters (pagination) are read as deepObject
//     with explode, i.e. pagination[count]=…; primitive ones (period) as
//     form, i.e. period=2021-02-01, which is how Segment's docs show them.
//     Segment also documents pagination.count=… (dots), the spelling the
//     exporter sends; the request check rewrites dots to brackets.
//   - Examples are not validated: several examples in the file contradict
//     its own schemas (e.g. "userGroup: null" on a non-nullable property).
//   - PaginationInput.count: "between 1 and 200" in this file (32.0.5),
//     1..1000 since 73.x. The schema carries no maximum, so count=1000
//     validates; TestSegmentSpecCountDeviation pins that.
func loadSegmentSpec(t *testing.T, base string) *segmentSpec {
	t.Helper()
	// Found (or skipped) outside the Once: t must not end inside it, or
	// the next caller would find the Once done and no document.
	file := filepath.Join(specDir(t, ""), "segment_public_api.yaml")
	segmentSpecOnce.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromFile(file)
		if err != nil {
			segmentSpecErr = err
			return
		}
		explode := true
		for _, pi := range doc.Paths.Map() {
			for _, op := range pi.Operations() {
				for _, p := range op.Parameters {
					pv := p.Value
					if pv == nil || pv.In != openapi3.ParameterInQuery || pv.Style != openapi3.SerializationDeepObject ||
						(pv.Explode != nil && *pv.Explode) {
						continue
					}
					segmentPatched++
					pv.Explode = &explode
					if pv.Schema == nil || pv.Schema.Value == nil || !pv.Schema.Value.Type.Is(openapi3.TypeObject) {
						pv.Style = openapi3.SerializationForm
					}
				}
			}
		}
		segmentSpecDoc = doc
	})
	if segmentSpecErr != nil {
		t.Fatalf("loading the Segment spec: %v", segmentSpecErr)
	}
	doc := segmentSpecDoc
	if doc.Info.Version != "32.0.5" {
		t.Fatalf("the Segment spec is version %s; the deviations documented in loadSegmentSpec are for 32.0.5: re-check them", doc.Info.Version)
	}
	if segmentPatched != 72 {
		t.Fatalf("patched %d deepObject parameters, expected 72: re-check the deviation notes", segmentPatched)
	}
	// Servers are shared by concurrent tests only through this
	// assignment, made before any routing.
	doc.Servers = openapi3.Servers{{URL: base + "/segment/us"}, {URL: base + "/segment/eu"}}
	r, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation())
	if err != nil {
		t.Fatalf("Segment spec: %v", err)
	}
	env := doc.Components.Schemas["RequestErrorEnvelope"]
	if env == nil {
		t.Fatal("no RequestErrorEnvelope schema in the Segment spec")
	}
	return &segmentSpec{doc: doc, router: r, envelope: env.Value}
}

type segContractCase struct {
	name  string
	token string // "" sends no Authorization
	path  string // with region prefix and query, e.g. /segment/us/sources?pagination.count=2
	setup func(s *Server)
	want  int
	// badRequest: the request breaks the spec on purpose.
	badRequest bool
	// accept is the Accept header ("" sends none).
	accept string
}

// segUndocumented: statuses no operation of the file documents (every one
// the exporter uses lists 200, 404, 422 and 429). Their bodies are checked
// against RequestErrorEnvelope instead.
var segUndocumented = map[int]string{
	401: "the spec documents no 401 on any operation; Segment answers 401 for a bad token",
	500: "the spec documents no 5xx",
	503: "the spec documents no 5xx",
}

// segListEndpoints are the operations the exporter calls, with a valid query.
var segListEndpoints = []string{
	"/", "/usage/mtu/daily?period=2026-03-01&pagination.count=1000", "/usage/api-calls/daily?period=2026-03-01&pagination.count=1000",
	"/sources?pagination.count=1000", "/destinations?pagination.count=1000", "/warehouses?pagination.count=1000",
	"/users?pagination.count=1000", "/invites?pagination.count=1000",
	"/usage/mtu/sources/daily?period=2026-03-01&pagination.count=1000", "/usage/api-calls/sources/daily?period=2026-03-01&pagination.count=1000",
}

func segmentContractCases() []segContractCase {
	A, E := SegmentTokenAcme, SegmentTokenEuro
	us, eu := "/segment/us", "/segment/eu"
	cs := []segContractCase{
		{name: "workspace acme", token: A, path: us + "/", want: 200},
		{name: "workspace euro", token: E, path: eu + "/", want: 200},
		{name: "sources first page dots", token: A, path: us + "/sources?pagination.count=2", want: 200},
		{name: "sources first page brackets", token: A, path: us + "/sources?pagination%5Bcount%5D=2", want: 200},
		{name: "sources middle page", token: A, path: us + "/sources?pagination.count=3&pagination.cursor=Mw%3D%3D", want: 200},
		{name: "sources last page", token: A, path: us + "/sources?pagination.count=1000&pagination.cursor=Ng%3D%3D", want: 200},
		{name: "sources past the end", token: A, path: us + "/sources?pagination.count=10&pagination.cursor=OTk%3D", want: 200},
		{name: "destinations", token: A, path: us + "/destinations?pagination.count=1000", want: 200},
		{name: "destinations page 2", token: A, path: us + "/destinations?pagination%5Bcount%5D=3&pagination%5Bcursor%5D=Mw%3D%3D", want: 200},
		{name: "warehouses", token: A, path: us + "/warehouses?pagination.count=1000", want: 200},
		{name: "warehouses empty", token: E, path: eu + "/warehouses?pagination.count=1000", want: 200},
		{name: "users", token: A, path: us + "/users?pagination.count=1000", want: 200},
		{name: "users euro", token: E, path: eu + "/users?pagination.count=2", want: 200},
		{name: "invites", token: A, path: us + "/invites?pagination.count=1000", want: 200},
		{name: "invites euro", token: E, path: eu + "/invites?pagination.count=1000", want: 200},
		{name: "mtu acme", token: A, path: us + "/usage/mtu/daily?period=2026-03-01&pagination.count=1000", want: 200},
		{name: "mtu acme page 3", token: A, path: us + "/usage/mtu/daily?period=2026-03-01&pagination.count=3&pagination.cursor=Ng%3D%3D", want: 200},
		{name: "mtu euro previous period", token: E, path: eu + "/usage/mtu/daily?period=2026-03-01&pagination.count=1000", want: 200},
		{name: "mtu euro current period", token: E, path: eu + "/usage/mtu/daily?period=2026-03-10&pagination.count=1000", want: 200},
		{name: "api calls acme", token: A, path: us + "/usage/api-calls/daily?period=2026-03-01&pagination.count=1000", want: 200},
		{name: "api calls euro", token: E, path: eu + "/usage/api-calls/daily?period=2026-03-10&pagination%5Bcount%5D=2", want: 200},
		{name: "mtu euro from the 1st: empty", token: E, path: eu + "/usage/mtu/daily?period=2026-03-01&pagination.count=1000", want: 200},
		{name: "api calls euro from the 1st: empty", token: E, path: eu + "/usage/api-calls/daily?period=2026-03-01&pagination.count=1000", want: 200},
		{name: "mtu euro last period", token: E, path: eu + "/usage/mtu/daily?period=2026-02-10&pagination.count=1000", want: 200},
		{name: "source mtu acme", token: A, path: us + "/usage/mtu/sources/daily?period=2026-03-01&pagination.count=1000", want: 200},
		{name: "source mtu acme page 2", token: A, path: us + "/usage/mtu/sources/daily?period=2026-03-01&pagination.count=50&pagination.cursor=NTA%3D", want: 200},
		{name: "source mtu euro", token: E, path: eu + "/usage/mtu/sources/daily?period=2026-03-10&pagination%5Bcount%5D=1000", want: 200},
		{name: "source mtu euro from the 1st: empty", token: E, path: eu + "/usage/mtu/sources/daily?period=2026-03-01&pagination.count=1000", want: 200},
		{name: "source api calls acme", token: A, path: us + "/usage/api-calls/sources/daily?period=2026-03-01&pagination.count=1000", want: 200},
		{name: "source api calls euro last period", token: E, path: eu + "/usage/api-calls/sources/daily?period=2026-02-10&pagination.count=1000", want: 200},
		{name: "source mtu bad period", token: A, path: us + "/usage/mtu/sources/daily?period=soon&pagination.count=10", want: 422},
		{name: "source api calls no period", token: A, path: us + "/usage/api-calls/sources/daily?pagination.count=10", want: 422, badRequest: true},
		{name: "v1 workspace", token: A, path: us + "/", want: 200, accept: "application/vnd.segment.v1+json"},
		{name: "v1 users", token: A, path: us + "/users?pagination.count=1000", want: 200, accept: "application/vnd.segment.v1+json"},
		{name: "v1 source mtu", token: E, path: eu + "/usage/mtu/sources/daily?period=2026-03-10&pagination.count=1000", want: 200, accept: "application/vnd.segment.v1+json"},
		{name: "v1 source api calls", token: A, path: us + "/usage/api-calls/sources/daily?period=2026-03-01&pagination.count=1000", want: 200, accept: "application/vnd.segment.v1+json"},
		{name: "v1 bad period", token: A, path: us + "/usage/mtu/daily?period=March&pagination.count=10", want: 422, accept: "application/vnd.segment.v1+json"},

		{name: "wrong region", token: A, path: eu + "/", want: 401},
		{name: "wrong region list", token: E, path: us + "/sources?pagination.count=10", want: 401},
		{name: "unknown token", token: "sgp_unknown", path: us + "/users?pagination.count=10", want: 401},
		{name: "revoked", token: A, path: us + "/invites?pagination.count=10", want: 401, setup: func(s *Server) { s.RevokeSegmentToken(A) }},
		{name: "count 0", token: A, path: us + "/sources?pagination.count=0", want: 422},
		{name: "count 1001", token: A, path: us + "/sources?pagination.count=1001", want: 422},
		{name: "bad cursor", token: A, path: us + "/sources?pagination.count=10&pagination.cursor=nonsense", want: 422},
		{name: "bad period", token: A, path: us + "/usage/mtu/daily?period=March&pagination.count=10", want: 422},
		{name: "future period", token: A, path: us + "/usage/api-calls/daily?period=2027-01-01&pagination.count=10", want: 422},
		{name: "no pagination", token: A, path: us + "/users", want: 422, badRequest: true},
		{name: "no period", token: A, path: us + "/usage/mtu/daily?pagination.count=10", want: 422, badRequest: true},
	}
	// A synthetic workspace (region us) answers every endpoint as acme does.
	G := SegmentSyntheticToken(42)
	for _, ep := range segListEndpoints {
		cs = append(cs, segContractCase{name: "synthetic " + ep, token: G, path: us + ep, want: 200})
	}
	cs = append(cs, segContractCase{name: "synthetic wrong region", token: G, path: eu + "/", want: 401})
	for _, ep := range segListEndpoints {
		p, _, _ := strings.Cut(ep, "?")
		cs = append(cs,
			segContractCase{name: "no token " + p, path: us + ep, want: 401},
			segContractCase{name: "rate limited " + p, token: A, path: us + ep, want: 429,
				setup: func(s *Server) {
					s.SetFault(segmentVendor, Fault{RateLimit: true, RetryAfter: 57647 * time.Millisecond})
				}},
			segContractCase{name: "503 " + p, token: E, path: eu + ep, want: 503,
				setup: func(s *Server) { s.SetFault(segmentVendor, Fault{Status: 503}) }},
		)
	}
	return cs
}

// bracketed returns req's URL with Segment's documented pagination.x
// spelling rewritten to the spec's deepObject pagination[x].
func bracketed(u *url.URL) *url.URL {
	q := url.Values{}
	for k, vs := range u.Query() {
		if rest, ok := strings.CutPrefix(k, "pagination."); ok {
			k = "pagination[" + rest + "]"
		}
		q[k] = vs
	}
	c := *u
	c.RawQuery = q.Encode()
	return &c
}

// TestSegmentContract checks every simulator answer the exporter can get
// against Segment's own OpenAPI file.
func TestSegmentContract(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	spec := loadSegmentSpec(t, ts.URL)
	ctx := context.Background()
	for _, c := range segmentContractCases() {
		t.Run(c.name, func(t *testing.T) {
			sim.ClearFaults()
			sim.RestoreSegmentToken(SegmentTokenAcme)
			if c.setup != nil {
				c.setup(sim)
			}
			req, err := http.NewRequest(http.MethodGet, ts.URL+c.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			if c.accept != "" {
				req.Header.Set("Accept", c.accept)
			}
			a := fetchWant(t, ts, req, c.want)
			if ct := a.Header.Get("Content-Type"); c.accept != "" && c.want == 200 && ct != c.accept {
				t.Errorf("asked for %s, got Content-Type %s", c.accept, ct)
			}
			body := a.Body

			vreq := req.Clone(ctx)
			vreq.URL = bracketed(req.URL)
			route, params, err := spec.router.FindRoute(vreq)
			if err != nil {
				t.Fatalf("the spec does not document GET %s: %v", req.URL.Path, err)
			}
			in := &openapi3filter.RequestValidationInput{
				Request: vreq, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
			}
			if !c.badRequest {
				if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
					t.Fatalf("the test's request breaks the spec: %v", err)
				}
				checkSegmentQueryDocumented(t, route, vreq)
			}
			err = validateAnswer(ctx, in, a, body)
			if why, undocumented := segUndocumented[c.want]; undocumented {
				var re *openapi3filter.ResponseError
				if !errors.As(err, &re) || re.Reason != "status is not supported" {
					t.Fatalf("expected the spec not to document %d (%s), got validation result %v; update segUndocumented", c.want, why, err)
				}
			} else {
				if err != nil {
					t.Fatalf("answer does not match the spec: %v\nbody: %s", err, body)
				}
				checkSegmentDeclared(t, route, a.Status, body)
			}
			if c.want != 200 {
				checkSegmentError(t, spec.envelope, body)
			}
			if c.want == 429 {
				checkSegmentRateLimit(t, a.Header, body, sim.Now(), 57647*time.Millisecond)
			}
		})
	}
}

// checkSegmentQueryDocumented fails if the test sends a query parameter
// the operation does not document (kin-openapi ignores unknown ones);
// pagination[count] counts as pagination.
func checkSegmentQueryDocumented(t *testing.T, route *routers.Route, req *http.Request) {
	t.Helper()
	known := map[string]bool{}
	for _, p := range route.Operation.Parameters {
		if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
			known[p.Value.Name] = true
		}
	}
	for name := range req.URL.Query() {
		base, _, _ := strings.Cut(name, "[")
		if !known[base] {
			t.Errorf("query parameter %q is not documented for %s %s", name, req.Method, route.Path)
		}
	}
}

// checkSegmentError validates body against RequestErrorEnvelope and
// insists on a type and a message in every item.
func checkSegmentError(t *testing.T, schema *openapi3.Schema, body []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	if err := schema.VisitJSON(v); err != nil {
		t.Fatalf("error body does not match RequestErrorEnvelope: %v: %s", err, body)
	}
	var e struct {
		Errors []struct{ Type, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Type == "" || e.Errors[0].Message == "" {
		t.Fatalf("error body lacks errors[].type/message: %s", body)
	}
}

// checkSegmentRateLimit checks a 429 as Segment documents it: headers
// X-RateLimit-Remaining 0 and an RFC 5322 X-RateLimit-Reset, and
// errors[0].data.msBeforeNext.
func checkSegmentRateLimit(t *testing.T, h http.Header, body []byte, now time.Time, wait time.Duration) {
	t.Helper()
	if h.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("X-RateLimit-Remaining = %q", h.Get("X-RateLimit-Remaining"))
	}
	reset, err := time.Parse(time.RFC1123, h.Get("X-RateLimit-Reset"))
	if err != nil {
		t.Errorf("X-RateLimit-Reset %q is not an RFC 5322 date: %v", h.Get("X-RateLimit-Reset"), err)
	} else if want := now.Add(wait).Truncate(time.Second).Add(time.Second); !reset.Equal(want) {
		t.Errorf("X-RateLimit-Reset = %s, want %s", reset, want)
	}
	var e struct {
		Errors []struct {
			Data struct {
				MsBeforeNext *int64 `json:"msBeforeNext"`
			} `json:"data"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Data.MsBeforeNext == nil {
		t.Fatalf("429 body lacks errors[0].data.msBeforeNext: %s", body)
	}
	if got := *e.Errors[0].Data.MsBeforeNext; got != wait.Milliseconds() {
		t.Errorf("msBeforeNext = %d, want %d", got, wait.Milliseconds())
	}
}

// checkSegmentDeclared fails on any object key that the response schema
// does not declare (following allOf, which the file uses for every nested
// object). The file never sets additionalProperties: false, so schema
// validation alone would accept a misspelt key.
func checkSegmentDeclared(t *testing.T, route *routers.Route, status int, body []byte) {
	t.Helper()
	rr := route.Operation.Responses.Status(status)
	if rr == nil || rr.Value == nil {
		return
	}
	mt := rr.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		t.Fatalf("the spec has no application/json answer for %d", status)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	var undeclared []string
	walkSegmentDeclared(mt.Schema.Value, v, "$", &undeclared)
	sort.Strings(undeclared)
	for _, u := range undeclared {
		t.Errorf("%s is not declared in the spec's response schema", u)
	}
}

func walkSegmentDeclared(s *openapi3.Schema, v any, at string, out *[]string) {
	if s == nil {
		return
	}
	props := map[string]*openapi3.SchemaRef{}
	var items *openapi3.SchemaRef
	var collect func(s *openapi3.Schema)
	collect = func(s *openapi3.Schema) {
		for k, p := range s.Properties {
			props[k] = p
		}
		if s.Items != nil {
			items = s.Items
		}
		for _, a := range s.AllOf {
			if a.Value != nil {
				collect(a.Value)
			}
		}
	}
	collect(s)
	switch v := v.(type) {
	case map[string]any:
		if len(props) == 0 {
			return // free-form object (settings)
		}
		for k, val := range v {
			p, ok := props[k]
			if !ok {
				*out = append(*out, at+"."+k)
				continue
			}
			walkSegmentDeclared(p.Value, val, at+"."+k, out)
		}
	case []any:
		if items == nil {
			return
		}
		for i, item := range v {
			walkSegmentDeclared(items.Value, item, fmt.Sprintf("%s[%d]", at, i), out)
		}
	}
}

// TestSegmentSpecCountDeviation pins the documented count deviation: the
// 32.0.5 file describes count as 1..200 but sets no maximum, so the
// exporter's count=1000 (allowed since 73.x) validates. If a refreshed file
// adds a maximum, this fails and the deviation note needs a decision.
func TestSegmentSpecCountDeviation(t *testing.T) {
	spec := loadSegmentSpec(t, "http://127.0.0.1:1")
	count := spec.doc.Components.Schemas["PaginationInput"].Value.Properties["count"].Value
	if count.Max != nil || !strings.Contains(count.Description, "between 1 and 200") {
		t.Fatalf("PaginationInput.count changed (max %v, %q): update the deviation notes", count.Max, count.Description)
	}
	if err := count.VisitJSON(float64(1000)); err != nil {
		t.Errorf("count=1000 fails the schema: %v", err)
	}
}

// --- behaviour ---------------------------------------------------------------

func segGet(t *testing.T, ts *httptest.Server, path, token string) answer {
	t.Helper()
	return get(t, ts, path, token)
}

type segPage struct {
	Data map[string]json.RawMessage `json:"data"`
}

type segPagination struct {
	Current      string  `json:"current"`
	Next         *string `json:"next"`
	Previous     *string `json:"previous"`
	TotalEntries int     `json:"totalEntries"`
}

// walk follows a list to its end and returns the raw items and the number
// of calls it took.
func walk(t *testing.T, ts *httptest.Server, path, key, token, countParam string, count int) ([]json.RawMessage, int) {
	t.Helper()
	var all []json.RawMessage
	cursor := ""
	for calls := 1; calls < 100; calls++ {
		q := url.Values{}
		if strings.Contains(path, "?") {
			q, _ = url.ParseQuery(strings.SplitN(path, "?", 2)[1])
		}
		base, _, _ := strings.Cut(path, "?")
		q.Set(countParam, strconv.Itoa(count))
		if cursor != "" {
			q.Set(strings.Replace(countParam, "count", "cursor", 1), cursor)
		}
		a := segGet(t, ts, base+"?"+q.Encode(), token)
		if a.Status != 200 {
			t.Fatalf("%s: %d %s", path, a.Status, a.Body)
		}
		var p segPage
		a.decode(t, &p)
		var items []json.RawMessage
		var pg segPagination
		if err := json.Unmarshal(p.Data[key], &items); err != nil {
			t.Fatalf("data.%s: %v", key, err)
		}
		if err := json.Unmarshal(p.Data["pagination"], &pg); err != nil {
			t.Fatalf("data.pagination: %v", err)
		}
		if len(items) > count {
			t.Fatalf("page of %d items for count %d", len(items), count)
		}
		all = append(all, items...)
		if pg.Next == nil {
			if pg.TotalEntries != len(all) {
				t.Errorf("totalEntries %d, walked %d", pg.TotalEntries, len(all))
			}
			return all, calls
		}
		cursor = *pg.Next
	}
	t.Fatal("the list did not end after 100 pages")
	return nil, 0
}

func TestSegmentPagination(t *testing.T) {
	_, ts, _ := newSim(t, Options{PageSize: 3})
	acme, _ := SegmentWorkspaceFor(SegmentTokenAcme)
	for _, c := range []struct {
		path, key string
		want      int
	}{
		{"/segment/us/sources", "sources", acme.Sources},
		{"/segment/us/destinations", "destinations", acme.Destinations},
		{"/segment/us/warehouses", "warehouses", acme.Warehouses},
		{"/segment/us/users", "users", acme.Users},
		{"/segment/us/invites", "invites", len(acme.Invites)},
	} {
		// Page size 3 caps count=1000; count=2 stays below it.
		for _, spelling := range []string{"pagination.count", "pagination[count]"} {
			for _, count := range []int{1000, 2} {
				items, calls := walk(t, ts, c.path, c.key, SegmentTokenAcme, spelling, count)
				per := min(count, 3)
				if len(items) != c.want || calls != (c.want+per-1)/per {
					t.Errorf("%s %s=%d: %d items in %d calls, want %d in %d", c.path, spelling, count, len(items), calls, c.want, (c.want+per-1)/per)
				}
				seen := map[string]bool{}
				for _, it := range items {
					seen[string(it)] = true
				}
				if len(seen) != len(items) {
					t.Errorf("%s: items repeat across pages", c.path)
				}
			}
		}
	}
	// The first page has previous null; cursors look like Segment's.
	a := segGet(t, ts, "/segment/us/sources?pagination.count=3", SegmentTokenAcme)
	if !strings.Contains(string(a.Body), `"current":"MA=="`) || !strings.Contains(string(a.Body), `"previous":null`) || !strings.Contains(string(a.Body), `"next":"Mw=="`) {
		t.Errorf("first page pagination: %s", a.Body)
	}
	for q, want := range map[string]string{
		"":                      "pagination.count is required",
		"?pagination.count=abc": "whole number from 1 to 1000",
		"?pagination.count=-1":  "whole number from 1 to 1000",
		"?pagination.count=2&pagination.cursor=%25%25": "not a cursor",
	} {
		a := segGet(t, ts, "/segment/us/users"+q, SegmentTokenAcme)
		if a.Status != 422 || !strings.Contains(string(a.Body), want) {
			t.Errorf("users%s: %d %s, want 422 %q", q, a.Status, a.Body, want)
		}
	}
}

func TestSegmentRegions(t *testing.T) {
	_, ts, _ := newSim(t, Options{})
	for _, c := range []struct {
		token, region string
		want          int
	}{
		{SegmentTokenAcme, "us", 200}, {SegmentTokenAcme, "eu", 401},
		{SegmentTokenEuro, "eu", 200}, {SegmentTokenEuro, "us", 401},
	} {
		a := segGet(t, ts, "/segment/"+c.region+"/", c.token)
		if a.Status != c.want {
			t.Errorf("%s on %s: %d %s", c.token[:20], c.region, a.Status, a.Body)
		}
	}
	a := segGet(t, ts, "/segment/eu/", SegmentTokenEuro)
	var ws struct {
		Data struct {
			Workspace struct{ ID, Name, Slug string } `json:"workspace"`
		} `json:"data"`
	}
	a.decode(t, &ws)
	if ws.Data.Workspace.ID != "EuroVendorsimWs0000002" || ws.Data.Workspace.Name != "Euro Corp" || ws.Data.Workspace.Slug != "euro-corp" {
		t.Errorf("workspace: %+v", ws)
	}
	if a := segGet(t, ts, "/segment/us/nothing", SegmentTokenAcme); a.Status != 404 || !strings.Contains(string(a.Body), `"type":"NotFound"`) {
		t.Errorf("unknown path: %d %s", a.Status, a.Body)
	}
	if a := do(t, ts, http.MethodPost, "/segment/us/sources", SegmentTokenAcme, "", ""); a.Status != 405 {
		t.Errorf("POST: %d", a.Status)
	}
}

type segMTUItem struct {
	PeriodStart, PeriodEnd                                      float64
	Identified, Anonymous, AnonymousIdentified, NeverIdentified string
	Timestamp                                                   string
}

func TestSegmentUsage(t *testing.T) {
	_, ts, _ := newSim(t, Options{PageSize: 1000})
	acme, _ := SegmentWorkspaceFor(SegmentTokenAcme)
	euro, _ := SegmentWorkspaceFor(SegmentTokenEuro)

	mtu := func(region, token, period string) []segMTUItem {
		items, _ := walk(t, ts, "/segment/"+region+"/usage/mtu/daily?period="+period, "dailyWorkspaceMTUUsage", token, "pagination.count", 1000)
		out := make([]segMTUItem, len(items))
		for i, it := range items {
			if err := json.Unmarshal(it, &out[i]); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	// testNow is 2026-03-15 12:30 UTC: Acme's period began on the 1st.
	got := mtu("us", SegmentTokenAcme, "2026-03-01")
	if len(got) != 15 {
		t.Fatalf("%d daily entries, want 15 (1st to 15th)", len(got))
	}
	last := got[14]
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if last.Timestamp != "2026-03-15T00:00:00.000Z" || last.PeriodStart != float64(start.Unix()) || last.PeriodEnd != float64(start.AddDate(0, 1, 0).Unix()) {
		t.Errorf("last entry: %+v", last)
	}
	// Hand-computed: 41000*15+3, (7500*15+3)+(88000*15+3), 7500*15+3,
	// 88000*15+3: anonymous ids are either identified later or never.
	if last.Identified != "615003" || last.Anonymous != "1432506" || last.AnonymousIdentified != "112503" || last.NeverIdentified != "1320003" {
		t.Errorf("last entry counts: %+v", last)
	}
	if m := acme.MTUOn(testNow); strconv.FormatInt(m.Identified, 10) != last.Identified {
		t.Errorf("MTUOn disagrees with the API: %+v", m)
	}
	for i := 1; i < len(got); i++ {
		a, _ := strconv.ParseInt(got[i-1].Identified, 10, 64)
		b, _ := strconv.ParseInt(got[i].Identified, 10, 64)
		if b < a {
			t.Errorf("cumulative counts decrease on day %d", i+1)
		}
	}
	// Euro's periods start on the 10th: a period parameter that is not a
	// period's first day gets an empty list, the 1st included.
	for _, p := range []string{"2026-03-01", "2026-03-11", "2026-02-28"} {
		if got = mtu("eu", SegmentTokenEuro, p); len(got) != 0 {
			t.Errorf("euro period=%s (not a period start): %d entries, want none", p, len(got))
		}
	}
	if got = mtu("us", SegmentTokenAcme, "2026-03-02"); len(got) != 0 {
		t.Errorf("acme period=2026-03-02: %d entries, want none", len(got))
	}
	// The previous period, from February 10 to March 9, complete.
	got = mtu("eu", SegmentTokenEuro, "2026-02-10")
	if len(got) != 28 || got[0].Timestamp != "2026-02-10T00:00:00.000Z" || got[27].Timestamp != "2026-03-09T00:00:00.000Z" {
		t.Fatalf("euro previous period: %d entries, %+v", len(got), got)
	}
	if end := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC); got[27].PeriodEnd != float64(end.Unix()) {
		t.Errorf("periodEnd %v", got[27].PeriodEnd)
	}
	got = mtu("eu", SegmentTokenEuro, "2026-03-10T00:00:00Z")
	if len(got) != 6 || got[5].Identified != "12003" {
		t.Errorf("euro current period: %+v", got)
	}

	items, _ := walk(t, ts, "/segment/us/usage/api-calls/daily?period=2026-03-01", "dailyWorkspaceAPICallsUsage", SegmentTokenAcme, "pagination.count", 1000)
	var lastCalls struct{ APICalls, Timestamp string }
	if err := json.Unmarshal(items[len(items)-1], &lastCalls); err != nil {
		t.Fatal(err)
	}
	// 165000000*15+3, past 2^31.
	if len(items) != 15 || lastCalls.APICalls != "2475000003" || lastCalls.APICalls != strconv.FormatInt(acme.APICallsOn(testNow), 10) {
		t.Errorf("api calls: %d entries, last %+v", len(items), lastCalls)
	}
	if s, e := euro.PeriodOf(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)); !s.Equal(time.Date(2025, 12, 10, 0, 0, 0, 0, time.UTC)) || !e.Equal(time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("PeriodOf across a year: %s %s", s, e)
	}
}

func TestSegmentRateLimitHeaders(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	a1 := segGet(t, ts, "/segment/us/", SegmentTokenAcme)
	a2 := segGet(t, ts, "/segment/us/", SegmentTokenAcme)
	if a1.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(SegmentRateLimit-1) || a2.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(SegmentRateLimit-2) ||
		a2.Header.Get("X-RateLimit-Consumed") != "2" {
		t.Errorf("remaining: %v %v", a1.Header, a2.Header)
	}
	reset, err := time.Parse(time.RFC1123, a1.Header.Get("X-RateLimit-Reset"))
	if err != nil || !reset.Equal(time.Date(2026, 3, 15, 12, 31, 0, 0, time.UTC)) {
		t.Errorf("X-RateLimit-Reset %q: %v", a1.Header.Get("X-RateLimit-Reset"), err)
	}
	sim.SetFault(segmentVendor, Fault{RateLimit: true, RetryAfter: 1500 * time.Millisecond})
	a := segGet(t, ts, "/segment/eu/users?pagination.count=1", SegmentTokenEuro)
	if a.Status != 429 {
		t.Fatalf("status %d", a.Status)
	}
	checkSegmentRateLimit(t, a.Header, a.Body, sim.Now(), 1500*time.Millisecond)
}

func TestSegmentRevokeControl(t *testing.T) {
	_, ts, _ := newSim(t, Options{})
	if a := do(t, ts, http.MethodPost, "/_sim/segment/revoke", "", "application/x-www-form-urlencoded", "token="+url.QueryEscape(SegmentTokenEuro)); a.Status != 200 {
		t.Fatalf("revoke: %d %s", a.Status, a.Body)
	}
	if a := segGet(t, ts, "/segment/eu/", SegmentTokenEuro); a.Status != 401 {
		t.Errorf("revoked token: %d", a.Status)
	}
	if a := segGet(t, ts, "/segment/us/", SegmentTokenAcme); a.Status != 200 {
		t.Errorf("other token: %d", a.Status)
	}
	if a := do(t, ts, http.MethodPost, "/_sim/segment/restore", "", "application/json", `{"token":"`+SegmentTokenEuro+`"}`); a.Status != 200 {
		t.Fatalf("restore: %d %s", a.Status, a.Body)
	}
	if a := segGet(t, ts, "/segment/eu/", SegmentTokenEuro); a.Status != 200 {
		t.Errorf("restored token: %d", a.Status)
	}
	const secretish = "sgp_somethingThatMightBeReal"
	if a := do(t, ts, http.MethodPost, "/_sim/segment/revoke", "", "application/x-www-form-urlencoded", "token="+secretish); a.Status != 404 || strings.Contains(string(a.Body), secretish) {
		t.Errorf("unknown token: %d %s", a.Status, a.Body)
	}
	if a := do(t, ts, http.MethodPost, "/_sim/segment/revoke", "", "application/json", `{`); a.Status != 400 {
		t.Errorf("bad JSON: %d", a.Status)
	}
	if a := do(t, ts, http.MethodPost, "/_sim/segment/revoke", "", "", ""); a.Status != 400 {
		t.Errorf("no token: %d", a.Status)
	}
}

func TestSegmentDescribed(t *testing.T) {
	sim := New(Options{})
	var vi *VendorInfo
	for _, v := range sim.Vendors() {
		if v.Vendor == segmentVendor {
			vi = &v
		}
	}
	if vi == nil {
		t.Fatal("segment is not among Vendors()")
	}
	if strings.Join(vi.Prefixes, " ") != "/segment/us /segment/eu /segment/oauth/us /segment/oauth/eu" {
		t.Errorf("prefixes %v", vi.Prefixes)
	}
	var creds string
	for _, c := range vi.Credentials {
		creds += c.Value + "\n"
	}
	for _, want := range []string{SegmentTokenAcme, SegmentTokenEuro, SegmentOAuthClientAcme, SegmentOAuthKeyIDEuro, "BEGIN PRIVATE KEY"} {
		if !strings.Contains(creds, want) {
			t.Errorf("credentials lack %q", want)
		}
	}
	cfg := sim.ConfigSnippet("http://127.0.0.1:9800")
	for _, want := range []string{
		"  segment:\n    api_url: http://127.0.0.1:9800/segment/us\n    eu_api_url: http://127.0.0.1:9800/segment/eu\n",
		"    token_url: http://127.0.0.1:9800/segment/oauth/us/token\n    eu_token_url: http://127.0.0.1:9800/segment/oauth/eu/token\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config snippet lacks %q:\n%s", want, cfg)
		}
	}
}

// --- OAuth token endpoint ----------------------------------------------------

func testKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := jwt.ParseRSAPrivateKeyFromPEM([]byte(SegmentOAuthTestPrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var jtiSeq atomic.Int64

// assertion signs a client assertion; edit changes claims and header.
func assertion(t *testing.T, key *rsa.PrivateKey, aud, client, kid string, now time.Time, edit func(c jwt.MapClaims, h map[string]any)) string {
	t.Helper()
	c := jwt.MapClaims{"iss": aud, "sub": client, "aud": aud, "iat": now.Unix(), "exp": now.Add(50 * time.Second).Unix(), "jti": fmt.Sprintf("jti-%d", jtiSeq.Add(1))}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = kid
	if edit != nil {
		edit(c, tok.Header)
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tokenRequest(t *testing.T, ts *httptest.Server, region, assertion string, edit func(url.Values)) (int, map[string]any) {
	t.Helper()
	f := url.Values{
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
		"scope":                 {SegmentOAuthScope},
	}
	if edit != nil {
		edit(f)
	}
	a := do(t, ts, http.MethodPost, "/segment/oauth/"+region+"/token", "", "application/x-www-form-urlencoded", f.Encode())
	var out map[string]any
	a.decode(t, &out)
	return a.Status, out
}

func TestSegmentOAuth(t *testing.T) {
	sim, ts, clock := newSim(t, Options{})
	key := testKey(t)
	usAud, euAud := ts.URL+"/segment/oauth/us", ts.URL+"/segment/oauth/eu"
	now := clock.Now()

	st, out := tokenRequest(t, ts, "us", assertion(t, key, usAud, SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, now, nil), nil)
	if st != 200 || out["token_type"] != "Bearer" || out["expires_in"] != float64(DefaultSegmentTokenLifetime/time.Second) || out["scope"] != SegmentOAuthScope {
		t.Fatalf("token: %d %v", st, out)
	}
	tok, _ := out["access_token"].(string)
	if a := segGet(t, ts, "/segment/us/", tok); a.Status != 200 || !strings.Contains(string(a.Body), "acme-analytics") {
		t.Errorf("access token on us: %d %s", a.Status, a.Body)
	}
	if a := segGet(t, ts, "/segment/eu/", tok); a.Status != 401 {
		t.Errorf("access token on eu: %d", a.Status)
	}
	// The token ends after its lifetime (simulator clock).
	clock.Set(now.Add(DefaultSegmentTokenLifetime))
	if a := segGet(t, ts, "/segment/us/", tok); a.Status != 401 {
		t.Errorf("expired access token: %d", a.Status)
	}
	clock.Set(now)

	// Lifetime and refusal through the control API.
	if a := do(t, ts, http.MethodPut, "/_sim/segment/oauth", "", "application/json", `{"token_lifetime":"10m"}`); a.Status != 200 || !strings.Contains(string(a.Body), `"token_lifetime":"10m0s"`) {
		t.Fatalf("set lifetime: %d %s", a.Status, a.Body)
	}
	st, out = tokenRequest(t, ts, "eu", assertion(t, key, euAud, SegmentOAuthClientEuro, SegmentOAuthKeyIDEuro, now, nil), nil)
	if st != 200 || out["expires_in"] != float64(600) {
		t.Fatalf("euro token: %d %v", st, out)
	}
	euTok := out["access_token"].(string)
	if a := segGet(t, ts, "/segment/eu/", euTok); a.Status != 200 {
		t.Errorf("euro access token: %d", a.Status)
	}
	sim.RevokeSegmentToken(euTok)
	if a := segGet(t, ts, "/segment/eu/", euTok); a.Status != 401 {
		t.Errorf("revoked access token: %d", a.Status)
	}
	for _, body := range []string{`{"token_lifetime":"-1m"}`, `{"refuse":"yes"}`, `{"lifetime":"1h"}`, `[`} {
		if a := do(t, ts, http.MethodPut, "/_sim/segment/oauth", "", "application/json", body); a.Status != 400 {
			t.Errorf("PUT %s: %d", body, a.Status)
		}
	}
	sim.SetSegmentOAuthRefuse(true)
	st, out = tokenRequest(t, ts, "us", assertion(t, key, usAud, SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, now, nil), nil)
	if st != 401 || out["error"] != "invalid_client" {
		t.Errorf("refused: %d %v", st, out)
	}
	if a := segGet(t, ts, "/segment/us/", tok); a.Status != 200 {
		t.Errorf("issued tokens keep working while refusing: %d", a.Status)
	}
	sim.SetSegmentOAuthRefuse(false)

	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	replayed := assertion(t, key, usAud, SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, now, nil)
	if st, _ := tokenRequest(t, ts, "us", replayed, nil); st != 200 {
		t.Fatalf("first use: %d", st)
	}
	for name, c := range map[string]struct {
		region, assertion string
		edit              func(url.Values)
		status            int
		code, why         string
	}{
		"replayed jti":     {"us", replayed, nil, 401, "invalid_client", "jti was used before"},
		"wrong region":     {"eu", assertion(t, key, euAud, SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, now, nil), nil, 401, "invalid_client", "not an OAuth app of this region"},
		"wrong kid":        {"us", assertion(t, key, usAud, SegmentOAuthClientAcme, SegmentOAuthKeyIDEuro, now, nil), nil, 401, "invalid_client", "kid is not a key of this app"},
		"unknown client":   {"us", assertion(t, key, usAud, "someone", SegmentOAuthKeyIDAcme, now, nil), nil, 401, "invalid_client", "not an OAuth app"},
		"other key":        {"us", assertion(t, other, usAud, SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, now, nil), nil, 401, "invalid_client", "signature is invalid"},
		"token URL as aud": {"us", assertion(t, key, usAud+"/token", SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, now, nil), nil, 401, "invalid_client", "aud"},
		"bad iss":          {"us", assertion(t, key, usAud, SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, now, func(c jwt.MapClaims, _ map[string]any) { c["iss"] = "me" }), nil, 401, "invalid_client", "iss must be"},
		"no iss":           {"us", assertion(t, key, usAud, SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, now, func(c jwt.MapClaims, _ map[string]any) { delete(c, "iss") }), nil, 200, "", ""},
		"expired":          {"us", assertion(t, key, usAud, SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, now.Add(-time.Hour), nil), nil, 401, "invalid_client", "expired"},
		"too long":         {"us", assertion(t, key, usAud, SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, now, func(c jwt.MapClaims, _ map[string]any) { c["exp"] = now.Add(time.Hour).Unix() }), nil, 401, "invalid_client", "longer than five minutes"},
		"no exp":           {"us", assertion(t, key, usAud, SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, now, func(c jwt.MapClaims, _ map[string]any) { delete(c, "exp") }), nil, 401, "invalid_client", "exp claim is required"},
		"no jti":           {"us", assertion(t, key, usAud, SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, now, func(c jwt.MapClaims, _ map[string]any) { delete(c, "jti") }), nil, 401, "invalid_client", "jti is missing"},
		"HS256": {"us", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": SegmentOAuthClientAcme, "aud": usAud, "exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "jti": "h"})
			tok.Header["kid"] = SegmentOAuthKeyIDAcme
			s, _ := tok.SignedString([]byte("secret"))
			return s
		}(), nil, 401, "invalid_client", "signing method"},
		"no assertion":   {"us", "", nil, 401, "invalid_client", "client_assertion is missing"},
		"garbage":        {"us", "not.a.jwt", nil, 401, "invalid_client", ""},
		"grant type":     {"us", "x", func(f url.Values) { f.Set("grant_type", "password") }, 400, "unsupported_grant_type", ""},
		"assertion type": {"us", "x", func(f url.Values) { f.Set("client_assertion_type", "basic") }, 400, "invalid_request", ""},
		"scope":          {"us", "x", func(f url.Values) { f.Set("scope", "tracking_api:write") }, 400, "invalid_scope", ""},
	} {
		st, out := tokenRequest(t, ts, c.region, c.assertion, c.edit)
		desc, _ := out["error_description"].(string)
		if st != c.status || (c.code != "" && out["error"] != c.code) || !strings.Contains(desc, c.why) {
			t.Errorf("%s: %d %v, want %d %s %q", name, st, out, c.status, c.code, c.why)
		}
	}
	if a := do(t, ts, http.MethodGet, "/segment/oauth/us/token", "", "", ""); a.Status != 405 {
		t.Errorf("GET token: %d", a.Status)
	}
	if a := do(t, ts, http.MethodPost, "/segment/oauth/us/token", "", "application/json", "{}"); a.Status != 400 {
		t.Errorf("JSON body: %d", a.Status)
	}
	sim.SetFault(segmentVendor, Fault{Status: 502})
	st, out = tokenRequest(t, ts, "us", assertion(t, key, usAud, SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, now, nil), nil)
	if st != 502 || out["error"] != "server_error" {
		t.Errorf("fault: %d %v", st, out)
	}
}

// The access tokens the simulator keeps stay bounded in a long demo.
func TestSegmentAccessTokensBounded(t *testing.T) {
	sim := New(Options{Now: func() time.Time { return testNow }})
	g := sim.segment()
	app := segmentOAuthApps[SegmentOAuthClientAcme]
	for range maxSegmentAccessTokens + 5 {
		g.issue(app, "us")
	}
	if n := len(g.access); n > maxSegmentAccessTokens {
		t.Errorf("%d access tokens kept", n)
	}
	for i := range maxSegmentJTIs + 5 {
		if !g.useJTI(strconv.Itoa(i), testNow.Add(time.Minute)) {
			t.Fatal("fresh jti refused")
		}
	}
	if n := len(g.jtis); n > maxSegmentJTIs {
		t.Errorf("%d jtis kept", n)
	}
}

// Per-source usage adds up to the workspace's, kind by kind and day by
// day; anonymous is anonymous_identified + never_identified; the source
// ids are those of /sources.
func TestSegmentSourceUsage(t *testing.T) {
	_, ts, _ := newSim(t, Options{PageSize: 1000})
	type srcItem struct {
		segMTUItem
		SourceID string `json:"sourceId"`
		APICalls string `json:"apiCalls"`
	}
	num := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("count %q: %v", s, err)
		}
		return n
	}
	for _, c := range []struct{ region, token, period string }{
		{"us", SegmentTokenAcme, "2026-03-01"}, {"eu", SegmentTokenEuro, "2026-03-10"}, {"eu", SegmentTokenEuro, "2026-02-10"},
	} {
		base := "/segment/" + c.region
		srcs, _ := walk(t, ts, base+"/sources", "sources", c.token, "pagination.count", 1000)
		ids := map[string]bool{}
		for _, raw := range srcs {
			var s struct{ ID string }
			json.Unmarshal(raw, &s)
			ids[s.ID] = true
		}
		decode := func(path, key string) []srcItem {
			items, _ := walk(t, ts, base+path+"?period="+c.period, key, c.token, "pagination.count", 1000)
			out := make([]srcItem, len(items))
			for i, it := range items {
				if err := json.Unmarshal(it, &out[i]); err != nil {
					t.Fatal(err)
				}
			}
			return out
		}
		type sums struct{ id, anon, ai, ni, calls int64 }
		byDay := map[string]*sums{}
		for _, it := range decode("/usage/mtu/sources/daily", "dailyPerSourceMTUUsage") {
			if !ids[it.SourceID] {
				t.Errorf("%s: source %q is not in /sources", c.token[:12], it.SourceID)
			}
			if num(it.Anonymous) != num(it.AnonymousIdentified)+num(it.NeverIdentified) {
				t.Errorf("source %s: anonymous %s != %s + %s", it.SourceID, it.Anonymous, it.AnonymousIdentified, it.NeverIdentified)
			}
			s := byDay[it.Timestamp]
			if s == nil {
				s = &sums{}
				byDay[it.Timestamp] = s
			}
			s.id += num(it.Identified)
			s.anon += num(it.Anonymous)
			s.ai += num(it.AnonymousIdentified)
			s.ni += num(it.NeverIdentified)
		}
		for _, it := range decode("/usage/api-calls/sources/daily", "dailyPerSourceAPICallsUsage") {
			byDay[it.Timestamp].calls += num(it.APICalls)
		}
		ws := decode("/usage/mtu/daily", "dailyWorkspaceMTUUsage")
		calls := decode("/usage/api-calls/daily", "dailyWorkspaceAPICallsUsage")
		if len(ws) == 0 || len(ws) != len(byDay) || len(calls) != len(ws) {
			t.Fatalf("%s %s: %d workspace days, %d source days, %d api-call days", c.region, c.period, len(ws), len(byDay), len(calls))
		}
		for i, w := range ws {
			s := byDay[w.Timestamp]
			if s.id != num(w.Identified) || s.anon != num(w.Anonymous) || s.ai != num(w.AnonymousIdentified) || s.ni != num(w.NeverIdentified) || s.calls != num(calls[i].APICalls) {
				t.Errorf("%s %s: the sources' sums %+v differ from the workspace's %+v / %s", c.region, w.Timestamp, *s, w, calls[i].APICalls)
			}
		}
	}
}

// Users carry their roles as permissions (roleId, roleName, resources).
func TestSegmentUserRoles(t *testing.T) {
	_, ts, _ := newSim(t, Options{PageSize: 1000})
	items, _ := walk(t, ts, "/segment/us/users", "users", SegmentTokenAcme, "pagination.count", 1000)
	var got [][]string
	for _, raw := range items {
		var u struct {
			Permissions []struct {
				RoleID, RoleName string
				Resources        []struct{ ID, Type string }
			}
		}
		if err := json.Unmarshal(raw, &u); err != nil {
			t.Fatal(err)
		}
		var roles []string
		for _, p := range u.Permissions {
			if p.RoleID == "" || len(p.Resources) == 0 {
				t.Errorf("permission without role id or resources: %s", raw)
			}
			roles = append(roles, p.RoleName)
		}
		got = append(got, roles)
	}
	want := [][]string{{"Workspace Owner"}, {"Workspace Member", "Source Admin"}, {"Workspace Member", "Source Read-only"}, {"Workspace Member"}, {SegmentCustomRole}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("roles %v, want %v", got, want)
	}
}

// The token endpoint's 429: Retry-After in whole seconds, then normal
// answers again.
func TestSegmentOAuthRateLimit(t *testing.T) {
	sim, ts, clock := newSim(t, Options{})
	key := testKey(t)
	aud := ts.URL + "/segment/oauth/us"
	sim.SetSegmentOAuthRateLimit(2, 2500*time.Millisecond)
	for i := range 3 {
		status, body := tokenRequest(t, ts, "us", assertion(t, key, aud, SegmentOAuthClientAcme, SegmentOAuthKeyIDAcme, clock.Now(), nil), nil)
		if i < 2 && (status != 429 || body["error"] != "temporarily_unavailable") {
			t.Errorf("request %d: %d %v, want 429", i, status, body)
		}
		if i == 2 && status != 200 {
			t.Errorf("after the limit: %d %v", status, body)
		}
	}
	sim.SetSegmentOAuthRateLimit(1, 2500*time.Millisecond)
	f := url.Values{"grant_type": {"client_credentials"}}
	a := do(t, ts, http.MethodPost, "/segment/oauth/eu/token", "", "application/x-www-form-urlencoded", f.Encode())
	if a.Status != 429 || a.Header.Get("Retry-After") != "3" {
		t.Errorf("429 answer: %d Retry-After %q", a.Status, a.Header.Get("Retry-After"))
	}
}
