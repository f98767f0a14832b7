package vendorsim

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Synthetic accounts: besides the fixed test accounts, every vendor has
// any number of generated ones, numbered 0..SyntheticMax. Each is derived
// from its credential alone (no configuration, no state), so a benchmark
// can connect thousands of distinct accounts. They are shaped like the
// fixed "acme" accounts: full scope, readable balance, list sizes of the
// same order.

// SyntheticMax is the highest synthetic account number.
const SyntheticMax = 9_999_999_999

const (
	// "SG." + 22 + "." + 43 characters, as a real key; the 22 are the
	// key's api_key_id.
	sgSynthPrefix  = "SG.vendorsimGen"
	sgSynthPadding = ".notARealSecretGeneratedUseWithVendorsimOnly"
	// "sgp_" + 63 characters, as SegmentTokenAcme.
	segSynthPrefix = "sgp_vendorsimGenUSTestTokennotARealSecretUseWithVendorsim"
	// AC + 12 hex digits of n + this marker: 32 hex digits in all. n comes
	// first so that Sid[2:30] (the stem of phone number sids) is distinct.
	twSynthMarker = "5a5a5a5a5a5a5a5a5a5a"
)

// synthCache memoizes synthetic accounts. Each is a pure function of its
// number, and one collection asks for the same account on every call (19
// times for SendGrid): building it anew each time was a large part of the
// simulator's CPU, which competes with the exporter's in a benchmark.
// One slot per number modulo synthSlots keeps memory bounded however many
// accounts a long demo sees; a number that meets another in its slot is
// built again. Cached values are shared: callers only read them.
type synthCache[T any] struct {
	slots [synthSlots]atomic.Pointer[synthEntry[T]]
}

type synthEntry[T any] struct {
	n int
	v *T
}

const synthSlots = 1 << 13

func (c *synthCache[T]) get(n int, build func(int) *T) *T {
	slot := &c.slots[n%synthSlots]
	if e := slot.Load(); e != nil && e.n == n {
		return e.v
	}
	v := build(n)
	slot.Store(&synthEntry[T]{n, v})
	return v
}

var (
	sendGridSynthCache synthCache[SendGridAccount]
	segmentSynthCache  synthCache[SegmentWorkspace]
	twilioSynthCache   synthCache[TwilioAccount]
)

func checkSynthetic(n int) {
	if n < 0 || n > SyntheticMax {
		panic(fmt.Sprintf("vendorsim: synthetic account number %d out of range 0..%d", n, SyntheticMax))
	}
}

// parseDecimal10 reads exactly 10 ASCII digits.
func parseDecimal10(s string) (int, bool) {
	if len(s) != 10 {
		return 0, false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// --- SendGrid ---

// SendGridSyntheticKey returns the API key of synthetic SendGrid account n
// (0..SyntheticMax; it panics otherwise). Every such account is paid, has
// the scopes of SendGridKeyAcme (user.username.read included, so the
// exporter records a distinct account id per key), and data derived from n.
func SendGridSyntheticKey(n int) string {
	checkSynthetic(n)
	return fmt.Sprintf("%s%010d%s", sgSynthPrefix, n, sgSynthPadding)
}

func sendGridSyntheticN(key string) (int, bool) {
	rest, ok := strings.CutPrefix(key, sgSynthPrefix)
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, sgSynthPadding)
	if !ok {
		return 0, false
	}
	return parseDecimal10(digits)
}

// sendGridAccount returns the account behind a test key: a fixed one or a
// synthetic one (memoized; callers only read it).
func sendGridAccount(key string) (*SendGridAccount, bool) {
	if a, ok := sendGridAccounts[key]; ok {
		return a, true
	}
	n, ok := sendGridSyntheticN(key)
	if !ok {
		return nil, false
	}
	return sendGridSynthCache.get(n, sendGridSynthetic), true
}

func sendGridSynthetic(n int) *SendGridAccount {
	name := fmt.Sprintf("vendorsim-gen-%d", n)
	dom := name + ".example"
	keyID := strings.TrimPrefix(sgSynthPrefix, "SG.") + fmt.Sprintf("%010d", n)
	a := &SendGridAccount{
		Name:       name,
		Type:       "paid",
		Reputation: 90 + float64(n%20)/2,
		UserID:     int64(10_000_000_000 + n),
		Scopes: []string{"stats.read", "user.credits.read", "user.account.read", "teammates.read",
			"api_keys.read", "subusers.read", "subusers.stats.sums.read", "subusers.credits.read", "mail.send", "user.username.read"},
		CreditsTotal:     int64(40000 + 5000*(n%5)),
		PendingTeammates: []SendGridPendingTeammate{},
		APIKeys:          []SendGridAPIKey{{keyID, "saas_exporter (vendorsim)"}},
		Subusers:         []SendGridSubuser{},
		requestsBase:     int64(1500 + 100*(n%10)),
		requestsStep:     int64(5 + n%10),
	}
	// acme has 7 teammates, 3 pending (1 expired), 5 keys, 5 subusers.
	roles := []string{"teammate", "admin", "teammate"}
	a.Teammates = append(a.Teammates, SendGridTeammate{name + "-owner", "owner@" + dom, "Gen", "Owner", "owner", true})
	for i := range 5 + n%4 {
		role := roles[i%len(roles)]
		a.Teammates = append(a.Teammates, SendGridTeammate{
			fmt.Sprintf("%s-%s%d", name, role, i+1), fmt.Sprintf("%s%d@%s", role, i+1, dom),
			"Gen", fmt.Sprintf("Mate%d", i+1), role, role == "admin"})
	}
	for i := range 1 + n%3 {
		a.PendingTeammates = append(a.PendingTeammates, SendGridPendingTeammate{
			Email: fmt.Sprintf("invitee%d@%s", i+1, dom), Scopes: []string{"stats.read"}, IsAdmin: i == 0,
			Token: fmt.Sprintf("genPending%010d%02d", n, i), ExpiresInDays: 4 - 3*i}) // the third has expired
	}
	for i := range 3 + n%4 {
		a.APIKeys = append(a.APIKeys, SendGridAPIKey{fmt.Sprintf("genKey%010d%06d", n, i+2), fmt.Sprintf("Key %d", i+2)})
	}
	for i := range 4 + n%3 {
		region := "global"
		if i == 2 {
			region = "eu"
		}
		su := SendGridSubuser{Disabled: i%4 == 3, ID: int64(n)*10 + int64(i) + 1,
			Username: fmt.Sprintf("%s-sub%d", name, i+1), Email: fmt.Sprintf("sub%d@%s", i+1, dom), Region: region,
			Credits: SendGridSubuserCredits{Type: "recurring", ResetFrequency: "monthly", Total: int64(20000 + 1000*i)}}
		if !su.Disabled {
			su.RequestsBase, su.RequestsStep = int64(1000+200*i+10*(n%10)), int64(3+i)
		}
		a.Subusers = append(a.Subusers, su)
	}
	return a
}

// --- Segment ---

// SegmentSyntheticToken returns the Public API token (region us) of
// synthetic Segment workspace n (0..SyntheticMax; it panics otherwise).
// Each has its own workspace id, name and slug, and lists the size of
// SegmentTokenAcme's.
func SegmentSyntheticToken(n int) string {
	checkSynthetic(n)
	return fmt.Sprintf("%s%010d", segSynthPrefix, n)
}

func segmentSyntheticN(token string) (int, bool) {
	digits, ok := strings.CutPrefix(token, segSynthPrefix)
	if !ok {
		return 0, false
	}
	return parseDecimal10(digits)
}

// segmentWorkspace returns the workspace of a Public API test token, fixed
// or synthetic (memoized; callers only read it).
func segmentWorkspace(token string) (*SegmentWorkspace, bool) {
	if ws, ok := segmentWorkspaces[token]; ok {
		return ws, true
	}
	n, ok := segmentSyntheticN(token)
	if !ok {
		return nil, false
	}
	return segmentSynthCache.get(n, segmentSynthetic), true
}

func segmentSynthetic(n int) *SegmentWorkspace {
	slug := fmt.Sprintf("vendorsim-gen-%d", n)
	ws := &SegmentWorkspace{
		ID:   fmt.Sprintf("GenVendorsim%010d", n), // 22 characters, as Segment's
		Name: fmt.Sprintf("Generated Workspace %d", n),
		Slug: slug, Region: "us",
		BillingDay: 1 + n%28,
		// acme: 7 sources, 8 destinations, 4 warehouses, 5 users, 2 invites.
		Sources: 5 + n%5, Destinations: 6 + n%5, Warehouses: 2 + n%3, Users: 4 + n%3,
		IdentifiedPerDay:          int64(30000 + 1000*(n%20)),
		AnonymousIdentifiedPerDay: int64(5000 + 100*(n%50)),
		NeverIdentifiedPerDay:     int64(70000 + 1000*(n%30)),
		APICallsPerDay:            int64(100_000_000 + 1_000_000*(n%100)),
	}
	for i := range 1 + n%3 {
		ws.Invites = append(ws.Invites, fmt.Sprintf("invitee%d@%s.example", i+1, slug))
	}
	return ws
}

// --- Twilio ---

// TwilioSyntheticAccount returns the AccountSid of synthetic Twilio
// customer account n (0..SyntheticMax; it panics otherwise): Full, active,
// balance readable in USD, usage and incoming numbers like
// TwilioAccountAcme's. It is not listed on the consent page, but Allow
// accepts it as account_sid, as do AuthorizeTwilioAccount and
// POST /_sim/twilio/authorize.
func TwilioSyntheticAccount(n int) string {
	checkSynthetic(n)
	return fmt.Sprintf("AC%012x%s", n, twSynthMarker)
}

func twilioSyntheticN(sid string) (int, bool) {
	rest, ok := strings.CutPrefix(sid, "AC")
	if !ok || len(rest) != 32 || !strings.HasSuffix(rest, twSynthMarker) {
		return 0, false
	}
	h := rest[:12]
	// Lower case only: one sid per account.
	if strings.Trim(h, "0123456789abcdef") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(h, 16, 64)
	if err != nil || n > SyntheticMax {
		return 0, false
	}
	return int(n), true
}

func twilioSynthetic(n int) *TwilioAccount {
	sid := TwilioSyntheticAccount(n)
	cents := int64(50000 + (n%1000)*137)
	return &TwilioAccount{
		Sid:          sid,
		FriendlyName: fmt.Sprintf("Generated Account %d", n),
		Type:         "Full", Status: "active", Currency: "usd",
		Balance:      fmt.Sprintf("%d.%02d000", cents/100, cents%100),
		PhoneNumbers: 4 + n%6,
		UsageScale:   int64(5 + n%10),
		Created:      time.Date(2018, 1, 1, 9, 0, 0, 0, time.UTC).AddDate(0, 0, n%2500),
	}
}

// twilioSyntheticNumber is synthetic account n's i-th incoming number.
func twilioSyntheticNumber(n, i int) string { return fmt.Sprintf("+1%010d%02d", n, i) }

// TwilioAccountFor returns a copy of a customer account, fixed or synthetic.
func TwilioAccountFor(sid string) (TwilioAccount, bool) {
	a := twilioAccount(sid)
	if a == nil {
		return TwilioAccount{}, false
	}
	return *a, true
}
