package vendorsim

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Twilio Connect App and its owner. The owner's auth token is what the
// exporter signs API calls for connected (customer) accounts with, and
// what the simulator signs deauthorize callbacks with.
const (
	TwilioOwnerAccountSid = "AC0e0000000000000000000000000000a1"
	TwilioOwnerAuthToken  = "vendorsimOwnerAuthTokenNotReal01"
	TwilioConnectAppSid   = "CNc0000000000000000000000000000a01"
	TwilioConnectAppName  = "saas_exporter (vendorsim)"
)

// Customer accounts that can authorize the Connect App on the consent
// page. None has authorized it when the simulator starts.
const (
	// TwilioAccountAcme: "Acme Corp", Full, active, balance 1523.40715 USD
	// readable, 7 incoming numbers, busy (usage scale 10).
	TwilioAccountAcme = "ACacac0000000000000000000000000001"
	// TwilioAccountBeta: "Beta Labs", Trial, active, Balance answers 403,
	// 2 incoming numbers, light usage (scale 1). Accounts.json answers 403.
	TwilioAccountBeta = "ACbeb00000000000000000000000000002"
	// TwilioAccountGamma: "Gamma GmbH", Full, suspended, billed in EUR,
	// balance -4.20000 EUR, 1 incoming number, no calls or messages.
	// Accounts.json answers 401 (code 20003), although the account's own
	// resources answer.
	TwilioAccountGamma = "AC9a9a0000000000000000000000000003"
	// TwilioAccountDelta: "Delta Holdings", Full, active, a parent account
	// with the four Delta subaccounts below; balance 310.00000 USD, 3
	// incoming numbers, usage scale 3. Its Usage Records include the
	// subaccounts' usage unless IncludeSubaccounts=false.
	TwilioAccountDelta = "ACde1a0000000000000000000000000004"
	// TwilioSubaccountDeltaEU: "Delta EU", active subaccount of Delta
	// (scale 2, 2 numbers). It is on the consent page: connecting it and
	// Delta both is the "parent and subaccount connected" case.
	TwilioSubaccountDeltaEU = "ACde1a00000000000000000000000000e1"
	// TwilioSubaccountDeltaUS: "Delta US", active subaccount (scale 1, 1 number).
	TwilioSubaccountDeltaUS = "ACde1a00000000000000000000000000e2"
	// TwilioSubaccountDeltaLab: "Delta Lab", suspended subaccount (no
	// calls or messages, 1 number billed on the 1st).
	TwilioSubaccountDeltaLab = "ACde1a00000000000000000000000000e3"
	// TwilioSubaccountDeltaArchive: "Delta Archive", closed subaccount, no usage.
	TwilioSubaccountDeltaArchive = "ACde1a00000000000000000000000000e4"
)

// DefaultTwilioExporterURL is the exporter the Connect App points at
// until SetTwilioConnectApp says otherwise (the exporter's default
// external_url).
const DefaultTwilioExporterURL = "http://localhost:9888"

// twilioVendor is the vendor name for faults and call counts.
const twilioVendor = "twilio"

// TwilioAccount is the fixed data of one customer account.
type TwilioAccount struct {
	Sid          string
	FriendlyName string
	Type         string // Trial, Full
	Status       string // active, suspended, closed
	Currency     string // ISO 4217, lower case as in price_unit
	// Balance is the Balance resource's value; BalanceStatus, when not 0,
	// is the error status Balance answers instead (no balance readable).
	Balance       string
	BalanceStatus int
	PhoneNumbers  int
	// UsageScale multiplies daily calls and messages (0: none).
	UsageScale int64
	Created    time.Time
	// Owner is the parent account's SID for a subaccount, "" for a
	// top-level account (whose owner_account_sid is its own SID).
	Owner string
	// ListStatus, when not 0, is the error status GET Accounts.json
	// answers these credentials instead of the account list (a Connect
	// App that may not list subaccounts; the docs do not say when Twilio
	// refuses it). 401 comes with code 20003, 403 with 20403.
	ListStatus int
}

var twilioAccounts = []TwilioAccount{
	{Sid: TwilioAccountAcme, FriendlyName: "Acme Corp", Type: "Full", Status: "active", Currency: "usd",
		Balance: "1523.40715", PhoneNumbers: 7, UsageScale: 10, Created: time.Date(2019, 4, 2, 9, 30, 0, 0, time.UTC)},
	{Sid: TwilioAccountBeta, FriendlyName: "Beta Labs", Type: "Trial", Status: "active", Currency: "usd",
		BalanceStatus: http.StatusForbidden, PhoneNumbers: 2, UsageScale: 1, Created: time.Date(2024, 11, 20, 16, 5, 0, 0, time.UTC),
		ListStatus: http.StatusForbidden},
	{Sid: TwilioAccountGamma, FriendlyName: "Gamma GmbH", Type: "Full", Status: "suspended", Currency: "eur",
		Balance: "-4.20000", PhoneNumbers: 1, UsageScale: 0, Created: time.Date(2021, 1, 12, 8, 0, 0, 0, time.UTC),
		ListStatus: http.StatusUnauthorized},
	{Sid: TwilioAccountDelta, FriendlyName: "Delta Holdings", Type: "Full", Status: "active", Currency: "usd",
		Balance: "310.00000", PhoneNumbers: 3, UsageScale: 3, Created: time.Date(2020, 6, 1, 10, 0, 0, 0, time.UTC)},
	// Subaccounts are billed to the parent: its currency, no balance of
	// their own ("Child accounts do not contain balance information").
	{Sid: TwilioSubaccountDeltaEU, FriendlyName: "Delta EU", Type: "Full", Status: "active", Currency: "usd",
		PhoneNumbers: 2, UsageScale: 2, Created: time.Date(2021, 2, 1, 10, 0, 0, 0, time.UTC), Owner: TwilioAccountDelta},
	{Sid: TwilioSubaccountDeltaUS, FriendlyName: "Delta US", Type: "Full", Status: "active", Currency: "usd",
		PhoneNumbers: 1, UsageScale: 1, Created: time.Date(2021, 3, 1, 10, 0, 0, 0, time.UTC), Owner: TwilioAccountDelta},
	{Sid: TwilioSubaccountDeltaLab, FriendlyName: "Delta Lab", Type: "Full", Status: "suspended", Currency: "usd",
		PhoneNumbers: 1, Created: time.Date(2022, 5, 1, 10, 0, 0, 0, time.UTC), Owner: TwilioAccountDelta},
	{Sid: TwilioSubaccountDeltaArchive, FriendlyName: "Delta Archive", Type: "Full", Status: "closed", Currency: "usd",
		Created: time.Date(2019, 9, 1, 10, 0, 0, 0, time.UTC), Owner: TwilioAccountDelta},
}

// subaccounts lists a's subaccounts (fixed accounts only; synthetic
// accounts have none).
func (a *TwilioAccount) subaccounts() []*TwilioAccount {
	var out []*TwilioAccount
	for i := range twilioAccounts {
		if twilioAccounts[i].Owner == a.Sid && a.Sid != "" {
			out = append(out, &twilioAccounts[i])
		}
	}
	return out
}

// ownerSid is owner_account_sid: the parent's SID, or the account's own.
func (a *TwilioAccount) ownerSid() string {
	if a.Owner != "" {
		return a.Owner
	}
	return a.Sid
}

// TwilioAccounts lists the customer accounts.
func TwilioAccounts() []TwilioAccount { return slices.Clone(twilioAccounts) }

// twilioAccount returns a fixed or synthetic customer account (see
// TwilioSyntheticAccount), or nil.
func twilioAccount(sid string) *TwilioAccount {
	for i := range twilioAccounts {
		if twilioAccounts[i].Sid == sid {
			return &twilioAccounts[i]
		}
	}
	if n, ok := twilioSyntheticN(sid); ok {
		return twilioSynthCache.get(n, twilioSynthetic)
	}
	return nil
}

// Usage categories, in the order the API lists them. Prices are in units
// of 1e-5 of the account's currency, so sums are exact.
type twCategory struct {
	name, description, countUnit, usageUnit string
}

var twCategories = []twCategory{
	{"calls", "Voice Minutes", "calls", "minutes"},
	{"calls-inbound", "Inbound Voice Minutes", "calls", "minutes"},
	{"calls-outbound", "Outbound Voice Minutes", "calls", "minutes"},
	{"phonenumbers", "Phone Numbers", "phone-numbers", "phone-numbers"},
	{"recordings", "Recordings", "recordings", "minutes"},
	{"sms", "SMS Messages", "messages", "messages"},
	{"sms-inbound", "Inbound SMS Messages", "messages", "messages"},
	{"sms-inbound-shortcode", "Short Code Inbound SMS", "messages", "messages"},
	{"sms-outbound", "Outbound SMS Messages", "messages", "messages"},
	{"totalprice", "Total Price", "", ""}, // usage_unit: the currency
}

// Indexes of twCategories, for twUsage.
const (
	twCalls = iota
	twCallsInbound
	twCallsOutbound
	twPhoneNumbers
	twRecordings
	twSMS
	twSMSInbound
	twSMSInboundShortcode
	twSMSOutbound
	twTotalPrice
	twCategoryCount
)

type twAmount struct{ count, usage, price int64 }

// twUsage is an amount per category, in twCategories' order. An array,
// not a map: usage is summed over every day of a month on each call.
type twUsage [twCategoryCount]twAmount

func (u *twUsage) add(o twUsage) {
	for i := range u {
		u[i] = u[i].add(o[i])
	}
}

func (a twAmount) add(b twAmount) twAmount {
	return twAmount{a.count + b.count, a.usage + b.usage, a.price + b.price}
}

// day is an account's usage on one UTC day, by category. Formulas (D = day
// of month, M = month, k = UsageScale; prices per unit in 1e-5):
//
//	sms-outbound    count k(120+7D+M), usage count+count/4 segments, price usage*783
//	sms-inbound     count k(40+3D), usage count, price usage*791
//	calls-outbound  count k(30+2D), usage 3count+count/7 minutes, price usage*1397
//	calls-inbound   count k(20+D), usage 4count minutes, price usage*851
//	recordings      count k(5+D%7), usage 2count minutes, price usage*249
//	phonenumbers    on the 1st only: count = usage = numbers, price numbers*115000
//	sms, calls      sums of their parts; sms-inbound-shortcode always 0
//	totalprice      count 0; usage = price = sms+calls+recordings+phonenumbers
func (a *TwilioAccount) day(d time.Time) twUsage {
	_, month, dom := d.Date()
	D, M, k := int64(dom), int64(month), a.UsageScale
	var m twUsage
	c := k * (120 + 7*D + M)
	m[twSMSOutbound] = twAmount{c, c + c/4, (c + c/4) * 783}
	c = k * (40 + 3*D)
	m[twSMSInbound] = twAmount{c, c, c * 791}
	c = k * (30 + 2*D)
	m[twCallsOutbound] = twAmount{c, 3*c + c/7, (3*c + c/7) * 1397}
	c = k * (20 + D)
	m[twCallsInbound] = twAmount{c, 4 * c, 4 * c * 851}
	c = k * (5 + D%7)
	m[twRecordings] = twAmount{c, 2 * c, 2 * c * 249}
	if D == 1 {
		n := int64(a.PhoneNumbers)
		m[twPhoneNumbers] = twAmount{n, n, n * 115000}
	}
	m[twSMS] = m[twSMSInbound].add(m[twSMSOutbound]).add(m[twSMSInboundShortcode])
	m[twCalls] = m[twCallsInbound].add(m[twCallsOutbound])
	total := m[twSMS].price + m[twCalls].price + m[twRecordings].price + m[twPhoneNumbers].price
	m[twTotalPrice] = twAmount{0, total, total}
	return m
}

// usage sums day over the UTC days from start to end, both included; with
// subs, the subaccounts' usage too (IncludeSubaccounts, Twilio's default).
func (a *TwilioAccount) usage(start, end time.Time, subs bool) twUsage {
	var sum twUsage
	// UTC days are 24 hours long: Add is AddDate(0, 0, 1) without the
	// calendar arithmetic.
	for d, last := utcDay(start), utcDay(end); !d.After(last); d = d.Add(24 * time.Hour) {
		sum.add(a.day(d))
	}
	if subs {
		for _, sub := range a.subaccounts() {
			sum.add(sub.usage(start, end, false))
		}
	}
	return sum
}

// twPrice formats 1e-5 units as Twilio does: "2192.84855".
func twPrice(p int64) string {
	sign := ""
	if p < 0 {
		sign, p = "-", -p
	}
	return fmt.Sprintf("%s%d.%05d", sign, p/100000, p%100000)
}

// twilioSim is the simulated Twilio: REST API at /twilio, consent site at
// /twilio-www.
type twilioSim struct {
	s *Server

	mu                  sync.Mutex
	authorized          map[string]bool // customer accounts that authorized the Connect App
	authorizeRedirect   string
	deauthorizeCallback string
	// deauthorizeMethod is the Connect App's DeauthorizeCallbackMethod:
	// GET or POST (Twilio's default).
	deauthorizeMethod string
	dropState         bool
	callbackClient    *http.Client
}

func (s *Server) registerTwilio() {
	t := &twilioSim{
		s:                   s,
		authorized:          map[string]bool{},
		authorizeRedirect:   DefaultTwilioExporterURL + "/connect/twilio/callback",
		deauthorizeCallback: DefaultTwilioExporterURL + "/connect/twilio/deauthorize",
		deauthorizeMethod:   http.MethodPost,
		callbackClient: &http.Client{
			Timeout: 10 * time.Second,
			// Report the exporter's own answer, not where it points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	s.state[twilioVendor] = t
	s.Mount(twilioVendor, "/twilio", &twilioAPI{t})
	s.Mount(twilioVendor, "/twilio-www", &twilioWWW{t})
	s.control("GET /_sim/twilio/connect-app", t.serveGetConnectApp)
	s.control("PUT /_sim/twilio/connect-app", t.servePutConnectApp)
	s.control("POST /_sim/twilio/authorize", t.serveAuthorize)
	s.control("POST /_sim/twilio/deauthorize", t.serveDeauthorize)
	var creds []Credential
	creds = append(creds,
		Credential{Label: "Connect App SID (vendors.twilio.connect_app_sid)", Value: TwilioConnectAppSid},
		Credential{Label: "Connect App owner's Account SID (vendors.twilio.account_sid)", Value: TwilioOwnerAccountSid},
		Credential{Label: "Connect App owner's auth token (vendors.twilio.auth_token)", Value: TwilioOwnerAuthToken},
	)
	for _, a := range twilioAccounts {
		bal := "balance " + a.Balance + " " + strings.ToUpper(a.Currency)
		if a.BalanceStatus != 0 {
			bal = fmt.Sprintf("Balance answers %d", a.BalanceStatus)
		}
		if a.Owner != "" {
			bal = "no balance of its own"
		}
		numbers := fmt.Sprintf("%d incoming numbers", a.PhoneNumbers)
		if a.PhoneNumbers == 1 {
			numbers = "1 incoming number"
		}
		extra := ""
		switch {
		case a.Owner != "":
			extra = ", subaccount of " + twilioAccount(a.Owner).FriendlyName
		case len(a.subaccounts()) > 0:
			extra = fmt.Sprintf(", parent of %d subaccounts", len(a.subaccounts()))
		}
		if a.ListStatus != 0 {
			extra += fmt.Sprintf(", Accounts.json answers %d", a.ListStatus)
		}
		creds = append(creds, Credential{
			Label: fmt.Sprintf("Customer account %s (%s, %s, %s, %s%s), chosen on the consent page", a.FriendlyName, a.Type, a.Status, bal, numbers, extra),
			Value: a.Sid,
		})
	}
	creds = append(creds, Credential{
		Label: "Synthetic customer account 1, acme-like; any number exist: AC + 12 hex digits + " + twSynthMarker + ". Not on the consent page: authorize with POST /_sim/twilio/authorize, or post its account_sid with Allow",
		Value: TwilioSyntheticAccount(1),
	})
	s.describe(twilioVendor, creds,
		[]string{
			"Consent page: GET /twilio-www/authorize/" + TwilioConnectAppSid + "?state=... (the exporter sends the browser there)",
			"GET /_sim/twilio/connect-app   the Connect App: redirect and deauthorize callback URLs, authorized accounts",
			`PUT /_sim/twilio/connect-app   JSON {"authorize_redirect_url":"…","deauthorize_callback_url":"…","deauthorize_callback_method":"POST","drop_state":false}`,
			"POST /_sim/twilio/authorize    form or JSON account_sid=AC…: authorize the Connect App without the browser",
			"POST /_sim/twilio/deauthorize  form or JSON account_sid=AC…: deauthorize and call the signed deauthorize callback (GET or POST, as the Connect App says)",
		},
		func(base string) string {
			return "  twilio:\n" +
				"    connect_app_sid: " + TwilioConnectAppSid + "\n" +
				"    account_sid: " + TwilioOwnerAccountSid + "\n" +
				"    auth_token: " + TwilioOwnerAuthToken + "\n" +
				"    api_url: " + base + "/twilio\n" +
				"    authorize_url: " + base + "/twilio-www/authorize\n"
		})
}

func (s *Server) twilio() *twilioSim { return s.state[twilioVendor].(*twilioSim) }

// SetTwilioConnectApp registers the Connect App's Authorize URL (where the
// consent page sends the browser back) and Deauthorize Callback URL, as
// entered in Twilio's console. Both must be absolute http(s) URLs.
func (s *Server) SetTwilioConnectApp(authorizeRedirectURL, deauthorizeCallbackURL string) error {
	for _, u := range []struct{ name, v string }{{"authorize redirect URL", authorizeRedirectURL}, {"deauthorize callback URL", deauthorizeCallbackURL}} {
		if err := checkAbsURL(u.v); err != nil {
			return fmt.Errorf("twilio Connect App %s: %w", u.name, err)
		}
	}
	t := s.twilio()
	t.mu.Lock()
	t.authorizeRedirect, t.deauthorizeCallback = authorizeRedirectURL, deauthorizeCallbackURL
	t.mu.Unlock()
	s.log.Info("twilio Connect App URLs set", "authorize_redirect_url", authorizeRedirectURL, "deauthorize_callback_url", deauthorizeCallbackURL)
	return nil
}

// twilioExporterURL is the exporter the Connect App sends browsers back to.
func (s *Server) twilioExporterURL() string {
	t := s.twilio()
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSuffix(t.authorizeRedirect, "/connect/twilio/callback")
}

// SetTwilioDeauthorizeMethod sets the Connect App's
// DeauthorizeCallbackMethod, GET or POST.
func (s *Server) SetTwilioDeauthorizeMethod(method string) error {
	if method != http.MethodGet && method != http.MethodPost {
		return fmt.Errorf("twilio Connect App deauthorize callback method must be GET or POST, got %q", method)
	}
	t := s.twilio()
	t.mu.Lock()
	t.deauthorizeMethod = method
	t.mu.Unlock()
	return nil
}

// SetTwilioDropState makes the consent page leave state out of the
// redirect back (Twilio does not document that it passes state through).
func (s *Server) SetTwilioDropState(drop bool) {
	t := s.twilio()
	t.mu.Lock()
	t.dropState = drop
	t.mu.Unlock()
}

// AuthorizeTwilioAccount authorizes the Connect App for a customer
// account (fixed or synthetic), as Allow on the consent page does.
func (s *Server) AuthorizeTwilioAccount(accountSid string) error {
	if twilioAccount(accountSid) == nil {
		return fmt.Errorf("%q is not a customer account of this simulator; see TwilioAccounts", accountSid)
	}
	s.twilio().setAuthorized(accountSid, true)
	return nil
}

// TwilioAuthorized reports whether a customer account has authorized the
// Connect App (and was not deauthorized since).
func (s *Server) TwilioAuthorized(accountSid string) bool {
	t := s.twilio()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.authorized[accountSid]
}

func (t *twilioSim) setAuthorized(sid string, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ok {
		t.authorized[sid] = true
	} else {
		delete(t.authorized, sid)
	}
}

// TwilioDeauthorization is what the exporter answered a deauthorize callback.
type TwilioDeauthorization struct {
	AccountSid  string `json:"account_sid"`
	CallbackURL string `json:"callback_url"`
	Status      int    `json:"status"` // the exporter's HTTP status
	Body        string `json:"body"`   // the start of its answer
}

// maxCallbackAnswer bounds what is kept of the exporter's answer.
const maxCallbackAnswer = 4 << 10

// DeauthorizeTwilioAccount deauthorizes the Connect App for a customer
// account (its API calls answer 401 from now on) and calls Twilio's
// deauthorize callback with AccountSid and ConnectAppSid, signed with the
// owner's auth token in X-Twilio-Signature: a POST form (signature over
// the URL and the sorted parameters), or with DeauthorizeCallbackMethod
// GET the query string (signature over the full URL alone, as Twilio
// signs every GET). The account stays deauthorized even if the callback
// fails, as at Twilio.
func (s *Server) DeauthorizeTwilioAccount(ctx context.Context, accountSid string) (TwilioDeauthorization, error) {
	out := TwilioDeauthorization{AccountSid: accountSid}
	if twilioAccount(accountSid) == nil {
		return out, fmt.Errorf("%q is not a customer account of this simulator; see TwilioAccounts", accountSid)
	}
	t := s.twilio()
	t.setAuthorized(accountSid, false)
	t.mu.Lock()
	cb, method := t.deauthorizeCallback, t.deauthorizeMethod
	t.mu.Unlock()
	out.CallbackURL = cb
	form := url.Values{"AccountSid": {accountSid}, "ConnectAppSid": {TwilioConnectAppSid}}
	var req *http.Request
	var err error
	if method == http.MethodGet {
		full := cb + "?" + form.Encode()
		if strings.Contains(cb, "?") {
			full = cb + "&" + form.Encode()
		}
		if req, err = http.NewRequestWithContext(ctx, http.MethodGet, full, nil); err == nil {
			req.Header.Set("X-Twilio-Signature", TwilioSignature(TwilioOwnerAuthToken, full, nil))
		}
	} else if req, err = http.NewRequestWithContext(ctx, http.MethodPost, cb, strings.NewReader(form.Encode())); err == nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", TwilioSignature(TwilioOwnerAuthToken, cb, form))
	}
	if err != nil {
		return out, fmt.Errorf("deauthorize callback URL %q: %w", cb, err)
	}
	req.Header.Set("User-Agent", "TwilioProxy/1.1 (vendorsim)")
	resp, err := t.callbackClient.Do(req)
	if err != nil {
		return out, fmt.Errorf("the account is deauthorized, but the callback to %s failed: %w", cb, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxCallbackAnswer))
	out.Status, out.Body = resp.StatusCode, string(b)
	s.log.Info("twilio deauthorize callback", "account_sid", accountSid, "url", cb, "status", resp.StatusCode)
	return out, nil
}

// TwilioSignature computes X-Twilio-Signature for a POST to fullURL with
// form params: base64(HMAC-SHA1(authToken, URL + each parameter name
// followed by its value, sorted by name then value)).
func TwilioSignature(authToken, fullURL string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		vs := slices.Clone(params[k])
		sort.Strings(vs)
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func checkAbsURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an absolute http(s) URL, got %q", v)
	}
	return nil
}

// --- control API ---

type twConnectAppJSON struct {
	ConnectAppSid          string   `json:"connect_app_sid"`
	Name                   string   `json:"name"`
	AuthorizeRedirectURL   string   `json:"authorize_redirect_url"`
	DeauthorizeCallbackURL string   `json:"deauthorize_callback_url"`
	DeauthorizeMethod      string   `json:"deauthorize_callback_method"`
	DropState              bool     `json:"drop_state"`
	Authorized             []string `json:"authorized_accounts"`
}

func (t *twilioSim) connectApp() twConnectAppJSON {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := twConnectAppJSON{
		ConnectAppSid: TwilioConnectAppSid, Name: TwilioConnectAppName,
		AuthorizeRedirectURL: t.authorizeRedirect, DeauthorizeCallbackURL: t.deauthorizeCallback,
		DeauthorizeMethod: t.deauthorizeMethod, DropState: t.dropState, Authorized: []string{},
	}
	for sid := range t.authorized {
		out.Authorized = append(out.Authorized, sid)
	}
	sort.Strings(out.Authorized)
	return out
}

func (t *twilioSim) serveGetConnectApp(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, t.connectApp())
}

func (t *twilioSim) servePutConnectApp(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
	if err != nil {
		simError(w, http.StatusBadRequest, "reading the body: %v", err)
		return
	}
	var in struct {
		AuthorizeRedirectURL   *string `json:"authorize_redirect_url"`
		DeauthorizeCallbackURL *string `json:"deauthorize_callback_url"`
		DeauthorizeMethod      *string `json:"deauthorize_callback_method"`
		DropState              *bool   `json:"drop_state"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		simError(w, http.StatusBadRequest, `the body must be JSON like {"authorize_redirect_url":"http://localhost:9888/connect/twilio/callback","deauthorize_callback_url":"http://localhost:9888/connect/twilio/deauthorize","drop_state":false} (every key optional): %v`, err)
		return
	}
	cur := t.connectApp()
	a, d := cur.AuthorizeRedirectURL, cur.DeauthorizeCallbackURL
	if in.AuthorizeRedirectURL != nil {
		a = *in.AuthorizeRedirectURL
	}
	if in.DeauthorizeCallbackURL != nil {
		d = *in.DeauthorizeCallbackURL
	}
	if err := t.s.SetTwilioConnectApp(a, d); err != nil {
		simError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if in.DeauthorizeMethod != nil {
		if err := t.s.SetTwilioDeauthorizeMethod(*in.DeauthorizeMethod); err != nil {
			simError(w, http.StatusBadRequest, "%v", err)
			return
		}
	}
	if in.DropState != nil {
		t.s.SetTwilioDropState(*in.DropState)
	}
	writeJSON(w, http.StatusOK, t.connectApp())
}

// accountSidParam reads account_sid from a form or JSON body.
func accountSidParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxControlBody)
	var sid string
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		var in struct {
			AccountSid string `json:"account_sid"`
		}
		b, err := io.ReadAll(r.Body)
		if err == nil {
			err = json.Unmarshal(b, &in)
		}
		if err != nil {
			simError(w, http.StatusBadRequest, `the body must be JSON like {"account_sid":"AC…"}: %v`, err)
			return "", false
		}
		sid = in.AccountSid
	} else {
		if err := r.ParseForm(); err != nil {
			simError(w, http.StatusBadRequest, "reading the form: %v", err)
			return "", false
		}
		sid = r.Form.Get("account_sid")
	}
	sid = strings.TrimSpace(sid)
	if sid == "" {
		simError(w, http.StatusBadRequest, `missing account_sid: send form field account_sid=AC… or JSON {"account_sid":"AC…"}`)
		return "", false
	}
	if twilioAccount(sid) == nil {
		simError(w, http.StatusNotFound, "%q is not a customer account of this simulator; the accounts are listed on the index page /", sid)
		return "", false
	}
	return sid, true
}

func (t *twilioSim) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	sid, ok := accountSidParam(w, r)
	if !ok {
		return
	}
	t.setAuthorized(sid, true)
	writeJSON(w, http.StatusOK, map[string]any{"account_sid": sid, "authorized": true})
}

// serveDeauthorize answers 200 with what the exporter answered, or 502
// when the callback could not be delivered (the account is deauthorized
// either way).
func (t *twilioSim) serveDeauthorize(w http.ResponseWriter, r *http.Request) {
	sid, ok := accountSidParam(w, r)
	if !ok {
		return
	}
	res, err := t.s.DeauthorizeTwilioAccount(r.Context(), sid)
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]any{"account_sid": sid, "callback_url": res.CallbackURL, "error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// --- REST API ---

// twilioAPI serves the 2010-04-01 REST API under /twilio.
type twilioAPI struct{ t *twilioSim }

const twAPIVersion = "2010-04-01"

// twError answers Twilio's error shape.
func twError(w http.ResponseWriter, status, code int, message string) {
	writeJSON(w, status, map[string]any{
		"code":      code,
		"message":   message,
		"more_info": "https://www.twilio.com/docs/errors/" + strconv.Itoa(code),
		"status":    status,
	})
}

// WriteFault answers a fault in Twilio's error shape. Twilio documents no
// rate-limit headers; the simulator adds Retry-After so the fault's
// retry_after means something to clients.
func (a *twilioAPI) WriteFault(w http.ResponseWriter, r *http.Request, e FaultError) {
	switch e.Status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
		twError(w, e.Status, 20429, "Too Many Requests")
	case http.StatusServiceUnavailable:
		twError(w, e.Status, 20503, "Service Unavailable")
	default:
		twError(w, e.Status, 20500, "Internal Server Error")
	}
}

// authenticate returns the customer account of the request's basic auth
// (AccountSid, Connect App owner's auth token), or nil.
func (a *twilioAPI) authenticate(r *http.Request) *TwilioAccount {
	user, pass, ok := r.BasicAuth()
	if !ok || !hmac.Equal([]byte(pass), []byte(TwilioOwnerAuthToken)) {
		return nil
	}
	acct := twilioAccount(user)
	if acct == nil {
		return nil
	}
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	if !a.t.authorized[user] {
		return nil
	}
	return acct
}

func (a *twilioAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	acct := a.authenticate(r)
	if acct == nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		twError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	if r.URL.Path == "/"+twAPIVersion+"/Accounts.json" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			twError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
			return
		}
		a.serveAccounts(w, r, acct)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/"+twAPIVersion+"/Accounts/")
	sid, sub, _ := strings.Cut(rest, "/")
	if sub == "" {
		var isJSON bool
		sid, isJSON = strings.CutSuffix(sid, ".json")
		sub = ".json"
		ok = ok && isJSON
	}
	target := acct
	if ok && sid != acct.Sid {
		// A parent's credentials reach its subaccounts' v2010 resources
		// (Twilio's Subaccounts docs), as far as these credentials may
		// see the subaccounts at all.
		target = twilioAccount(sid)
		if target == nil || target.Owner != acct.Sid || acct.ListStatus != 0 {
			target = nil
		}
	}
	if !ok || target == nil {
		// Twilio hides what the credential may not see.
		twError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	var serve func(http.ResponseWriter, *http.Request, *TwilioAccount)
	switch sub {
	case ".json":
		serve = a.serveAccount
	case "Balance.json":
		serve = a.serveBalance
	case "Usage/Records/Today.json":
		serve = a.serveUsage("Today")
	case "Usage/Records/ThisMonth.json":
		serve = a.serveUsage("ThisMonth")
	case "Usage/Records/LastMonth.json":
		serve = a.serveUsage("LastMonth")
	case "IncomingPhoneNumbers.json":
		serve = a.serveNumbers
	default:
		twError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		twError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
		return
	}
	serve(w, r, target)
}

func rfc2822(t time.Time) string { return t.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700") }

func accountURI(sid string) string { return "/" + twAPIVersion + "/Accounts/" + sid }

// Answers are structs, not maps: encoding/json sorts a map's keys on
// every call, a struct's fields are ordered once. Fields are declared in
// sorted order, so the bytes are those maps gave (TestAnswersMatchGolden).

// twAccountRes is the Account resource. No auth_token: Twilio returns it
// only to the account's own credentials, and the simulator has none.
type twAccountRes struct {
	DateCreated     string `json:"date_created"`
	DateUpdated     string `json:"date_updated"`
	FriendlyName    string `json:"friendly_name"`
	OwnerAccountSid string `json:"owner_account_sid"`
	Sid             string `json:"sid"`
	Status          string `json:"status"`
	SubresourceURIs struct {
		Balance              string `json:"balance"`
		IncomingPhoneNumbers string `json:"incoming_phone_numbers"`
		Usage                string `json:"usage"`
	} `json:"subresource_uris"`
	Type string `json:"type"`
	URI  string `json:"uri"`
}

func twAccountJSON(acct *TwilioAccount) twAccountRes {
	base := accountURI(acct.Sid)
	out := twAccountRes{
		DateCreated:     rfc2822(acct.Created),
		DateUpdated:     rfc2822(acct.Created.AddDate(0, 3, 0)),
		FriendlyName:    acct.FriendlyName,
		OwnerAccountSid: acct.ownerSid(),
		Sid:             acct.Sid,
		Status:          acct.Status,
		Type:            acct.Type,
		URI:             base + ".json",
	}
	out.SubresourceURIs.Balance = base + "/Balance.json"
	out.SubresourceURIs.IncomingPhoneNumbers = base + "/IncomingPhoneNumbers.json"
	out.SubresourceURIs.Usage = base + "/Usage.json"
	return out
}

func (a *twilioAPI) serveAccount(w http.ResponseWriter, r *http.Request, acct *TwilioAccount) {
	writeJSON(w, http.StatusOK, twAccountJSON(acct))
}

// serveAccounts answers GET Accounts.json: "a collection of Accounts
// belonging to the account used to make the request", which is the
// account itself and its subaccounts (a subaccount sees only itself). The
// docs do not say whether the account itself is listed; it is here, so a
// client that counts it as a subaccount is caught. FriendlyName and Status
// filter. Credentials with ListStatus get that error instead.
func (a *twilioAPI) serveAccounts(w http.ResponseWriter, r *http.Request, acct *TwilioAccount) {
	switch acct.ListStatus {
	case 0:
	case http.StatusUnauthorized:
		twError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	default:
		twError(w, acct.ListStatus, 20403, "This application may not list the subaccounts of this account")
		return
	}
	q := r.URL.Query()
	filters := url.Values{}
	all := append([]*TwilioAccount{acct}, acct.subaccounts()...)
	var list []*TwilioAccount
	st, name := q.Get("Status"), q.Get("FriendlyName")
	if st != "" {
		if !slices.Contains([]string{"active", "suspended", "closed"}, st) {
			twError(w, http.StatusBadRequest, 20001, "Status must be one of active, suspended, closed")
			return
		}
		filters.Set("Status", st)
	}
	if name != "" {
		filters.Set("FriendlyName", name)
	}
	for _, x := range all {
		if (st == "" || x.Status == st) && (name == "" || x.FriendlyName == name) {
			list = append(list, x)
		}
	}
	from, to, size, page, ok := a.twPage(w, q, len(list))
	if !ok {
		return
	}
	items := []twAccountRes{}
	for _, x := range list[from:to] {
		items = append(items, twAccountJSON(x))
	}
	out := twListEnvelope("/"+twAPIVersion+"/Accounts.json", filters, from, len(items), size, page, len(list))
	out.Accounts = &items
	writeJSON(w, http.StatusOK, out)
}

func (a *twilioAPI) serveBalance(w http.ResponseWriter, r *http.Request, acct *TwilioAccount) {
	if acct.BalanceStatus != 0 {
		twError(w, acct.BalanceStatus, 20000+acct.BalanceStatus, "The balance of this account is not available to this application")
		return
	}
	writeJSON(w, http.StatusOK, struct {
		AccountSid string `json:"account_sid"`
		Balance    string `json:"balance"`
		Currency   string `json:"currency"`
	}{acct.Sid, acct.Balance, strings.ToUpper(acct.Currency)})
}

// twMaxPageSize is Twilio's documented PageSize maximum.
const twMaxPageSize = 1000

// twPage cuts one page of n items from PageSize (default 50, capped at the
// simulator's page size) and Page (0-based). PageToken, which real next
// page URIs carry, is accepted and ignored. It answers 400 on bad input.
func (a *twilioAPI) twPage(w http.ResponseWriter, q url.Values, n int) (start, end, size, page int, ok bool) {
	size = 50
	if v := q.Get("PageSize"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > twMaxPageSize {
			twError(w, http.StatusBadRequest, 20001, fmt.Sprintf("PageSize must be an integer from 1 to %d", twMaxPageSize))
			return 0, 0, 0, 0, false
		}
		size = p
	}
	size = min(size, a.t.s.pageSize)
	if v := q.Get("Page"); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil || p < 0 || p > 1_000_000 {
			twError(w, http.StatusBadRequest, 20001, "Page must be a non-negative integer")
			return 0, 0, 0, 0, false
		}
		page = p
	}
	start = min(page*size, n)
	end = min(start+size, n)
	return start, end, size, page, true
}

// twList is a v2010 list answer: the paging fields and one list.
type twList struct {
	Accounts        *[]twAccountRes  `json:"accounts,omitempty"`
	End             int              `json:"end"`
	FirstPageURI    string           `json:"first_page_uri"`
	Numbers         *[]twNumberRes   `json:"incoming_phone_numbers,omitempty"`
	NextPageURI     *string          `json:"next_page_uri"`
	Page            int              `json:"page"`
	PageSize        int              `json:"page_size"`
	PreviousPageURI *string          `json:"previous_page_uri"`
	Start           int              `json:"start"`
	URI             string           `json:"uri"`
	UsageRecords    *[]twUsageRecord `json:"usage_records,omitempty"`
}

// twListEnvelope is the paging part of a v2010 list answer; filters are
// the list's own query parameters, repeated in every URI.
func twListEnvelope(path string, filters url.Values, start, count, size, page, total int) twList {
	uri := func(p int) string {
		q := url.Values{}
		for k, v := range filters {
			q[k] = v
		}
		q.Set("PageSize", strconv.Itoa(size))
		q.Set("Page", strconv.Itoa(p))
		if p > 0 {
			q.Set("PageToken", "PA"+strconv.Itoa(p*size))
		}
		return path + "?" + q.Encode()
	}
	env := twList{
		FirstPageURI: uri(0),
		URI:          uri(page),
		Page:         page,
		PageSize:     size,
		Start:        start,
		End:          max(start+count-1, start),
	}
	if start+count < total {
		next := uri(page + 1)
		env.NextPageURI = &next
	}
	if page > 0 {
		prev := uri(page - 1)
		env.PreviousPageURI = &prev
	}
	return env
}

type twUsageRecord struct {
	AccountSid      string      `json:"account_sid"`
	APIVersion      string      `json:"api_version"`
	AsOf            string      `json:"as_of"`
	Category        string      `json:"category"`
	Count           string      `json:"count"`
	CountUnit       string      `json:"count_unit"`
	Description     string      `json:"description"`
	EndDate         string      `json:"end_date"`
	Price           string      `json:"price"`
	PriceUnit       string      `json:"price_unit"`
	StartDate       string      `json:"start_date"`
	SubresourceURIs twUsageURIs `json:"subresource_uris"`
	URI             string      `json:"uri"`
	Usage           string      `json:"usage"`
	UsageUnit       string      `json:"usage_unit"`
}

// twUsageURIs are a usage record's subresource_uris.
type twUsageURIs struct {
	AllTime   string `json:"all_time"`
	Daily     string `json:"daily"`
	LastMonth string `json:"last_month"`
	Monthly   string `json:"monthly"`
	ThisMonth string `json:"this_month"`
	Today     string `json:"today"`
	Yearly    string `json:"yearly"`
	Yesterday string `json:"yesterday"`
}

func newTwUsageURIs(base, category string) twUsageURIs {
	uri := func(list string) string { return base + list + ".json?Category=" + category }
	return twUsageURIs{
		AllTime: uri("AllTime"), Daily: uri("Daily"), LastMonth: uri("LastMonth"), Monthly: uri("Monthly"),
		ThisMonth: uri("ThisMonth"), Today: uri("Today"), Yearly: uri("Yearly"), Yesterday: uri("Yesterday"),
	}
}

// serveUsage answers Usage/Records/Today.json, ThisMonth.json and
// LastMonth.json: one record per category, count, usage and price as JSON
// strings as Twilio sends them. Category filters; IncludeSubaccounts
// (default true) adds the subaccounts' usage to a parent's; StartDate and
// EndDate are accepted and ignored (these lists have fixed ranges).
func (a *twilioAPI) serveUsage(list string) func(http.ResponseWriter, *http.Request, *TwilioAccount) {
	return func(w http.ResponseWriter, r *http.Request, acct *TwilioAccount) {
		q := r.URL.Query()
		now := a.t.s.now().UTC()
		end := utcDay(now)
		start := end
		switch list {
		case "ThisMonth":
			start = time.Date(end.Year(), end.Month(), 1, 0, 0, 0, 0, time.UTC)
		case "LastMonth":
			start = time.Date(end.Year(), end.Month()-1, 1, 0, 0, 0, 0, time.UTC)
			end = time.Date(end.Year(), end.Month(), 0, 0, 0, 0, 0, time.UTC)
		}
		cats, first := twCategories, 0 // first: index of cats[0] in twCategories
		filters := url.Values{}
		subs := true
		if v := q.Get("IncludeSubaccounts"); v != "" {
			switch v {
			case "true":
			case "false":
				subs = false
			default:
				twError(w, http.StatusBadRequest, 20001, "IncludeSubaccounts must be true or false")
				return
			}
			filters.Set("IncludeSubaccounts", v)
		}
		if c := q.Get("Category"); c != "" {
			i := slices.IndexFunc(twCategories, func(x twCategory) bool { return x.name == c })
			if i < 0 {
				twError(w, http.StatusBadRequest, 20001, "Category is not a valid usage category")
				return
			}
			cats, first = twCategories[i:i+1], i
			filters.Set("Category", c)
		}
		from, to, size, page, ok := a.twPage(w, q, len(cats))
		if !ok {
			return
		}
		sums := acct.usage(start, end, subs)
		base := accountURI(acct.Sid) + "/Usage/Records/"
		asOf, startS, endS := now.Format("2006-01-02T15:04:05+00:00"), start.Format(dateLayout), end.Format(dateLayout)
		records := []twUsageRecord{}
		for i, c := range cats[from:to] {
			amt := sums[first+from+i]
			rec := twUsageRecord{
				AccountSid: acct.Sid, APIVersion: twAPIVersion, AsOf: asOf,
				Category: c.name, Count: strconv.FormatInt(amt.count, 10), CountUnit: c.countUnit,
				Description: c.description, StartDate: startS, EndDate: endS,
				Price: twPrice(amt.price), PriceUnit: acct.Currency,
				Usage: strconv.FormatInt(amt.usage, 10), UsageUnit: c.usageUnit,
				URI:             base + list + ".json?Category=" + c.name + "&StartDate=" + startS + "&EndDate=" + endS,
				SubresourceURIs: newTwUsageURIs(base, c.name),
			}
			if c.name == "totalprice" {
				rec.Usage, rec.UsageUnit = twPrice(amt.usage), acct.Currency
			}
			records = append(records, rec)
		}
		out := twListEnvelope(base+list+".json", filters, from, len(records), size, page, len(cats))
		out.UsageRecords = &records
		writeJSON(w, http.StatusOK, out)
	}
}

// twNumberRes is the IncomingPhoneNumber resource. The *string fields
// the simulator leaves nil are null.
type twNumberRes struct {
	AccountSid          string  `json:"account_sid"`
	AddressRequirements string  `json:"address_requirements"`
	AddressSid          *string `json:"address_sid"`
	APIVersion          string  `json:"api_version"`
	Beta                bool    `json:"beta"`
	Capabilities        struct {
		Fax   bool `json:"fax"`
		MMS   bool `json:"mms"`
		SMS   bool `json:"sms"`
		Voice bool `json:"voice"`
	} `json:"capabilities"`
	DateCreated          string  `json:"date_created"`
	DateUpdated          string  `json:"date_updated"`
	FriendlyName         string  `json:"friendly_name"`
	IdentitySid          *string `json:"identity_sid"`
	Origin               string  `json:"origin"`
	PhoneNumber          string  `json:"phone_number"`
	Sid                  string  `json:"sid"`
	SMSApplicationSid    *string `json:"sms_application_sid"` // the examples send "", which breaks the schema's ^AP pattern
	SMSFallbackMethod    string  `json:"sms_fallback_method"`
	SMSFallbackURL       string  `json:"sms_fallback_url"`
	SMSMethod            string  `json:"sms_method"`
	SMSURL               string  `json:"sms_url"`
	Status               string  `json:"status"`
	StatusCallback       string  `json:"status_callback"`
	StatusCallbackMethod string  `json:"status_callback_method"`
	TrunkSid             *string `json:"trunk_sid"`
	Type                 string  `json:"type"`
	URI                  string  `json:"uri"`
	VoiceApplicationSid  *string `json:"voice_application_sid"`
	VoiceCallerIDLookup  bool    `json:"voice_caller_id_lookup"`
	VoiceFallbackMethod  string  `json:"voice_fallback_method"`
	VoiceFallbackURL     *string `json:"voice_fallback_url"`
	VoiceMethod          string  `json:"voice_method"`
	VoiceURL             *string `json:"voice_url"`
}

// twPhoneNumber returns customer account acct's i-th incoming number.
func twPhoneNumber(acct *TwilioAccount, i int) twNumberRes {
	sid := fmt.Sprintf("PN%s%04x", acct.Sid[2:30], i)
	var e164 string
	if g, ok := twilioSyntheticN(acct.Sid); ok {
		e164 = twilioSyntheticNumber(g, i)
	} else {
		n := slices.IndexFunc(twilioAccounts, func(a TwilioAccount) bool { return a.Sid == acct.Sid })
		e164 = fmt.Sprintf("+1555%02d%05d", n+1, i+100)
	}
	created := rfc2822(acct.Created.AddDate(0, i, 0))
	out := twNumberRes{
		AccountSid:           acct.Sid,
		AddressRequirements:  "none",
		APIVersion:           twAPIVersion,
		DateCreated:          created,
		DateUpdated:          created,
		FriendlyName:         acct.FriendlyName + " line " + strconv.Itoa(i+1),
		Origin:               "twilio",
		PhoneNumber:          e164,
		Sid:                  sid,
		SMSFallbackMethod:    "POST",
		SMSMethod:            "POST",
		StatusCallbackMethod: "POST",
		URI:                  accountURI(acct.Sid) + "/IncomingPhoneNumbers/" + sid + ".json",
		VoiceFallbackMethod:  "POST",
		VoiceMethod:          "POST",
		Status:               "in-use",
		Type:                 "local",
	}
	out.Capabilities.Voice, out.Capabilities.SMS, out.Capabilities.MMS = true, true, i%2 == 0
	return out
}

// serveNumbers answers IncomingPhoneNumbers.json. The Beta, FriendlyName,
// PhoneNumber and Origin filters are accepted and ignored.
func (a *twilioAPI) serveNumbers(w http.ResponseWriter, r *http.Request, acct *TwilioAccount) {
	from, to, size, page, ok := a.twPage(w, r.URL.Query(), acct.PhoneNumbers)
	if !ok {
		return
	}
	items := []twNumberRes{}
	for i := from; i < to; i++ {
		items = append(items, twPhoneNumber(acct, i))
	}
	out := twListEnvelope(accountURI(acct.Sid)+"/IncomingPhoneNumbers.json", nil, from, len(items), size, page, acct.PhoneNumbers)
	out.Numbers = &items
	writeJSON(w, http.StatusOK, out)
}

// --- consent site ---

// twilioWWW serves the Connect App consent page under /twilio-www.
type twilioWWW struct{ t *twilioSim }

// WriteFault answers faults as an HTML error page: a browser is the client.
func (x *twilioWWW) WriteFault(w http.ResponseWriter, r *http.Request, e FaultError) {
	if e.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	consentError(w, e.Status, "Twilio is not available right now", "vendorsim fault: "+http.StatusText(e.Status)+".")
}

var consentTmpl = template.Must(template.New("consent").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Authorize {{.App}} – Twilio (vendorsim)</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}label{display:block;margin:.4em 0}button{margin-right:1em;padding:.4em 1.2em}</style>
</head><body>
<p><em>vendorsim: a stand-in for Twilio's Connect App consent page. Nothing here is a real account.</em></p>
<h1>Authorize {{.App}}</h1>
<p><strong>{{.App}}</strong> ({{.Sid}}) would like access to your Twilio account.</p>
<p>Permission requested: <strong>Read all account data</strong>.</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="state" value="{{.State}}">
<fieldset><legend>Account to connect</legend>
{{range $i, $a := .Accounts}}<label><input type="radio" name="account_sid" value="{{$a.Sid}}"{{if eq $i 0}} checked{{end}}> {{$a.FriendlyName}} <code>{{$a.Sid}}</code> ({{$a.Type}}, {{$a.Status}})</label>
{{end}}</fieldset>
<p><button type="submit" name="decision" value="allow">Allow</button><button type="submit" name="decision" value="deny">Deny</button></p>
</form>
<p>After your choice the browser goes to <code>{{.Redirect}}</code>{{if .DropState}} (this simulator is set to drop <code>state</code>){{end}}.</p>
</body></html>
`))

var consentErrTmpl = template.Must(template.New("consent-error").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Title}} – Twilio (vendorsim)</title></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p></body></html>
`))

func consentError(w http.ResponseWriter, status int, title, message string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	consentErrTmpl.Execute(w, map[string]string{"Title": title, "Message": message})
}

func (x *twilioWWW) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	appSid, ok := strings.CutPrefix(r.URL.Path, "/authorize/")
	if !ok || strings.Contains(appSid, "/") {
		consentError(w, http.StatusNotFound, "Page not found", "The consent page is at /twilio-www/authorize/"+TwilioConnectAppSid+".")
		return
	}
	if appSid != TwilioConnectAppSid {
		consentError(w, http.StatusNotFound, "Unknown Connect App", "There is no Connect App with this SID. This simulator has one: "+TwilioConnectAppSid+" (check vendors.twilio.connect_app_sid).")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		x.serveConsent(w, r)
	case http.MethodPost:
		x.serveDecision(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		consentError(w, http.StatusMethodNotAllowed, "Method not allowed", "Use GET to show the consent page.")
	}
}

func (x *twilioWWW) serveConsent(w http.ResponseWriter, r *http.Request) {
	app := x.t.connectApp()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	err := consentTmpl.Execute(w, map[string]any{
		"App":       TwilioConnectAppName,
		"Sid":       TwilioConnectAppSid,
		"Action":    "/twilio-www/authorize/" + TwilioConnectAppSid,
		"State":     r.URL.Query().Get("state"),
		"Accounts":  twilioAccounts,
		"Redirect":  app.AuthorizeRedirectURL,
		"DropState": app.DropState,
	})
	if err != nil {
		x.t.s.log.Warn("rendering the twilio consent page", "err", err)
	}
}

func (x *twilioWWW) serveDecision(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxControlBody)
	if err := r.ParseForm(); err != nil {
		consentError(w, http.StatusBadRequest, "Bad form", "The consent form could not be read.")
		return
	}
	app := x.t.connectApp()
	redirect, err := url.Parse(app.AuthorizeRedirectURL)
	if err != nil || app.AuthorizeRedirectURL == "" {
		consentError(w, http.StatusConflict, "Connect App has no Authorize URL", "Register one with PUT /_sim/twilio/connect-app or vendorsim's --twilio-exporter-url flag.")
		return
	}
	q := redirect.Query()
	switch r.PostForm.Get("decision") {
	case "allow":
		sid := r.PostForm.Get("account_sid")
		if twilioAccount(sid) == nil {
			consentError(w, http.StatusBadRequest, "Choose an account", "Pick one of the listed accounts, then Allow.")
			return
		}
		x.t.setAuthorized(sid, true)
		q.Set("AccountSid", sid)
	case "deny":
		q.Set("error", "unauthorized_client")
	default:
		consentError(w, http.StatusBadRequest, "Choose Allow or Deny", "The form was sent without a decision.")
		return
	}
	if st := r.PostForm.Get("state"); st != "" && !app.DropState {
		q.Set("state", st)
	}
	redirect.RawQuery = q.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}
