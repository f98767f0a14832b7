package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	twclient "github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/saas-exporter/saas_exporter/provider"
)

// Which calls go through twilio-go, and why:
//
//   - Account and Balance (single resources whose fields are all strings)
//     use twilio-go's FetchAccount and FetchBalance: its models and
//     auth are Twilio's own.
//   - Usage Records use our own net/http + JSON: twilio-go decodes price
//     into a float32, which keeps about 7 significant digits
//     ("2192.84855" becomes 2192.8486); we parse the decimal strings as
//     float64. Its list helpers also gather every page in memory through a
//     goroutine, while we stop at the first error.
//   - IncomingPhoneNumbers also use our own paging: we only count them,
//     and decoding ~35 fields per number for that is waste.
//
// twilio-go has a fixed base URL (https://api.twilio.com) and passes no
// context, so its client gets a per-call http.Client whose transport
// (rewriter) sends every request to api_url, attaches the scrape's context
// (deadline, cancellation) and delegates to the exporter's transport
// (request counting, rate-limit headers).

// defaultTimeout bounds a call when the caller's client sets none (the
// context's deadline normally ends it first).
const defaultTimeout = 30 * time.Second

// maxResourceBody bounds what twilio-go may read of one answer.
const maxResourceBody = 1 << 20

// client calls the Twilio REST API for one customer account.
type client struct {
	hc    *http.Client
	base  string // api_url, no trailing slash
	api   *url.URL
	user  string // customer AccountSid: the basic-auth user
	sid   string // the account whose resources are read: user, or one of its subaccounts
	token string // Connect App owner's auth token
	// subs lists the subaccounts once per collection (set by Collect).
	subs func() (subsList, error)
}

func (p *Provider) client(hc *http.Client, sid string) *client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &client{hc: hc, base: p.apiURL, api: p.api, user: sid, sid: sid, token: p.authToken}
}

// subaccount reads subaccount sid's resources with the same credentials:
// a parent's credentials reach its subaccounts' v2010 resources.
func (c *client) subaccount(sid string) *client {
	cc := *c
	cc.sid = sid
	cc.subs = nil
	return &cc
}

// rewriter sends twilio-go's requests to api_url with the call's context,
// and remembers the last answer's status for error reports.
type rewriter struct {
	ctx  context.Context
	api  *url.URL
	base http.RoundTripper

	mu     sync.Mutex
	status int
	path   string
}

func (rw *rewriter) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(rw.ctx) // a RoundTripper must not change the caller's request
	r.URL.Scheme = rw.api.Scheme
	r.URL.Host = rw.api.Host
	r.URL.Path = strings.TrimRight(rw.api.Path, "/") + req.URL.Path
	r.URL.RawPath = ""
	r.Host = ""
	rw.mu.Lock()
	rw.path = r.URL.Path
	rw.mu.Unlock()
	resp, err := rw.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	rw.mu.Lock()
	rw.status = resp.StatusCode
	rw.mu.Unlock()
	resp.Body = limitedBody{io.LimitReader(resp.Body, maxResourceBody), resp.Body}
	return resp, nil
}

type limitedBody struct {
	io.Reader
	io.Closer
}

// sdk returns twilio-go's API service for one call with ctx.
func (c *client) sdk(ctx context.Context) (*openapi.ApiService, *rewriter) {
	base := c.hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	timeout := c.hc.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	rw := &rewriter{ctx: ctx, api: c.api, base: base}
	tc := &twclient.Client{
		Credentials: twclient.NewCredentials(c.user, c.token),
		HTTPClient: &http.Client{
			Transport: rw,
			Timeout:   timeout,
			// As twilio-go's own default client: a redirect is an answer.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	tc.SetAccountSid(c.user)
	h := twclient.NewRequestHandler(tc)
	// api_url decides where calls go, not TWILIO_EDGE/TWILIO_REGION.
	h.Edge, h.Region = "", ""
	return openapi.NewApiService(h), rw
}

// sdkError turns what twilio-go returned into the exporter's errors:
// *provider.HTTPError for a non-2xx answer (with Twilio's code and
// message), the transport's own error otherwise, without URLs.
func (c *client) sdkError(ctx context.Context, rw *rewriter, fallbackPath string, err error) error {
	rw.mu.Lock()
	status, path := rw.status, rw.path
	rw.mu.Unlock()
	if path == "" {
		path = fallbackPath
	}
	var tre *twclient.TwilioRestError
	if errors.As(err, &tre) {
		if status == 0 {
			status = tre.Status
		}
		he := &provider.HTTPError{Vendor: vendor, Method: http.MethodGet, Path: path, Status: status, Message: tre.Message}
		if tre.Code != 0 {
			he.Code = strconv.Itoa(tre.Code)
		}
		if he.Message == "" {
			he.Message = http.StatusText(status)
		}
		return he
	}
	if status != 0 && (status < 200 || status > 299) {
		// An error answer that is not Twilio's JSON (a proxy's page).
		return &provider.HTTPError{Vendor: vendor, Method: http.MethodGet, Path: path, Status: status,
			Message: http.StatusText(status) + " (the answer is not Twilio's error JSON)"}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its URL names api.twilio.com, not where the call went
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	var se *json.SyntaxError // twilio-go decodes with encoding/json
	var te *json.UnmarshalTypeError
	if errors.As(err, &se) || errors.As(err, &te) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s GET %s: HTTP %d: the answer is not the JSON Twilio sends: %v", vendor, path, status, err)
	}
	return fmt.Errorf("%s GET %s: %w", vendor, path, err)
}

type account struct {
	Sid          string `json:"sid"`
	FriendlyName string `json:"friendly_name"`
	Type         string `json:"type"`
	Status       string `json:"status"`
	// OwnerAccountSid is the parent's SID; a top-level account's own.
	OwnerAccountSid string `json:"owner_account_sid"`
}

// parent is the parent account's SID, "" for a top-level account.
func (a *account) parent() string {
	if a.OwnerAccountSid == "" || strings.EqualFold(a.OwnerAccountSid, a.Sid) {
		return ""
	}
	return a.OwnerAccountSid
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// fetchAccount is GET /2010-04-01/Accounts/{sid}.json.
func (c *client) fetchAccount(ctx context.Context) (*account, error) {
	svc, rw := c.sdk(ctx)
	a, err := svc.FetchAccount(c.sid)
	if err != nil {
		return nil, c.sdkError(ctx, rw, "/2010-04-01/Accounts/"+c.sid+".json", err)
	}
	return &account{Sid: str(a.Sid), FriendlyName: str(a.FriendlyName), Type: str(a.Type), Status: str(a.Status), OwnerAccountSid: str(a.OwnerAccountSid)}, nil
}

// fetchBalance is GET /2010-04-01/Accounts/{sid}/Balance.json.
func (c *client) fetchBalance(ctx context.Context) (balance, currency string, err error) {
	svc, rw := c.sdk(ctx)
	b, err := svc.FetchBalance(&openapi.FetchBalanceParams{PathAccountSid: &c.sid})
	if err != nil {
		return "", "", c.sdkError(ctx, rw, "/2010-04-01/Accounts/"+c.sid+"/Balance.json", err)
	}
	return str(b.Balance), str(b.Currency), nil
}

// parseError reads Twilio's {"code":20003,"message":"Authenticate",…}.
func parseError(body []byte) (code, message string) {
	var e struct {
		Code    jsontext.Value `json:"code"`
		Message string         `json:"message"`
	}
	// Every Twilio error carries a code; a body without one is not an
	// error (and, checked by MayHaveKey, is not decoded twice).
	if !provider.MayHaveKey(body, "code") || provider.Unmarshal(body, &e) != nil {
		return "", ""
	}
	// A number, or a string holding one (as json.Number took it).
	code = string(e.Code)
	if e.Code.Kind() == '"' && provider.Unmarshal(e.Code, &code) != nil {
		return "", ""
	}
	if jsontext.Value(code).Kind() != '0' || !jsontext.Value(code).IsValid() {
		return "", ""
	}
	return code, e.Message
}

// get is GET api_url + uri (a path with query, as in next_page_uri) with
// our own JSON decoding.
func (c *client) get(ctx context.Context, uri string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+uri, nil)
	if err != nil {
		return fmt.Errorf("%s: building request for %s: %w", vendor, uri, err)
	}
	req.SetBasicAuth(c.user, c.token)
	req.Header.Set("Accept", "application/json")
	return provider.DoJSON(c.hc, req, vendor, parseError, out)
}

// maxPages bounds one list (1000 pages of 1000 items).
const maxPages = 1000

// pageSize is Twilio's largest PageSize.
const pageSize = 1000

// list reads a paged v2010 list from first, following next_page_uri.
// page decodes one answer and returns its next_page_uri.
func (c *client) list(ctx context.Context, first string, page func(ctx context.Context, uri string) (next string, err error)) error {
	listPath, _, _ := strings.Cut(first, "?")
	uri := first
	for n := 0; n < maxPages; n++ {
		next, err := page(ctx, uri)
		if err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		// The owner's token goes with every call: follow only links to
		// the next page of the same list on api_url.
		u, err := url.Parse(next)
		if err != nil || u.Path != listPath || u.Host != "" || u.Scheme != "" {
			return fmt.Errorf("%s: next_page_uri %q of %s is not a page of the same list; stopped", vendor, next, first)
		}
		nextURI := u.Path
		if u.RawQuery != "" {
			nextURI += "?" + u.RawQuery
		}
		if nextURI == uri {
			return fmt.Errorf("%s: next_page_uri of %s points at the same page; stopped", vendor, first)
		}
		uri = nextURI
	}
	return fmt.Errorf("%s: the list %s did not end after %d pages", vendor, first, maxPages)
}
