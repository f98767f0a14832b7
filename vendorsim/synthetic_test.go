package vendorsim

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// Synthetic credentials have the shape of the fixed ones, parse back to
// their number, and differ from each other.
func TestSyntheticCredentialShapes(t *testing.T) {
	for _, n := range []int{0, 1, 42, 999_999, SyntheticMax} {
		k, tok, sid := SendGridSyntheticKey(n), SegmentSyntheticToken(n), TwilioSyntheticAccount(n)
		if len(k) != len(SendGridKeyAcme) || !strings.HasPrefix(k, "SG.") || strings.Index(k[3:], ".") != 22 {
			t.Errorf("SendGrid key %q: want SG. + 22 + . + 43 characters like %q", k, SendGridKeyAcme)
		}
		if len(tok) != len(SegmentTokenAcme) || !strings.HasPrefix(tok, "sgp_") {
			t.Errorf("Segment token %q: want the length of %q", tok, SegmentTokenAcme)
		}
		if len(sid) != 34 || strings.Trim(sid[2:], "0123456789abcdef") != "" || !strings.HasPrefix(sid, "AC") {
			t.Errorf("Twilio sid %q: want AC + 32 hex digits", sid)
		}
		if got, ok := sendGridSyntheticN(k); !ok || got != n {
			t.Errorf("SendGrid key %d parses as %d, %v", n, got, ok)
		}
		if got, ok := segmentSyntheticN(tok); !ok || got != n {
			t.Errorf("Segment token %d parses as %d, %v", n, got, ok)
		}
		if got, ok := twilioSyntheticN(sid); !ok || got != n {
			t.Errorf("Twilio sid %d parses as %d, %v", n, got, ok)
		}
	}
	if SendGridSyntheticKey(1) == SendGridSyntheticKey(2) || SegmentSyntheticToken(1) == SegmentSyntheticToken(2) ||
		TwilioSyntheticAccount(1) == TwilioSyntheticAccount(2) {
		t.Error("two synthetic numbers give the same credential")
	}
	// Near misses are unknown credentials, not other accounts.
	k := SendGridSyntheticKey(7)
	sid := TwilioSyntheticAccount(0xab)
	for _, bad := range []string{
		k[:len(k)-1], k + "x", strings.Replace(k, "0000000007", "000000007x", 1), strings.Replace(k, "0000000007", "000000007", 1),
	} {
		if _, ok := sendGridAccount(bad); ok {
			t.Errorf("SendGrid key %q accepted", bad)
		}
	}
	for _, bad := range []string{SegmentSyntheticToken(7) + "0", SegmentSyntheticToken(7)[:len(SegmentSyntheticToken(7))-1], "sgp_"} {
		if _, ok := segmentWorkspace(bad); ok {
			t.Errorf("Segment token %q accepted", bad)
		}
	}
	for _, bad := range []string{strings.ToUpper(sid[:14]) + sid[14:], sid[:33], "AC" + strings.Repeat("f", 12) + twSynthMarker, "AC" + strings.Repeat("0", 12) + strings.Repeat("5a", 9) + "5b"} {
		if twilioAccount(bad) != nil {
			t.Errorf("Twilio sid %q accepted", bad)
		}
	}
	for _, f := range []func(int) string{SendGridSyntheticKey, SegmentSyntheticToken, TwilioSyntheticAccount} {
		for _, n := range []int{-1, SyntheticMax + 1} {
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("number %d out of range did not panic", n)
					}
				}()
				f(n)
			}()
		}
	}
}

// Data are a function of the number alone, and fixed accounts are untouched.
func TestSyntheticDeterministic(t *testing.T) {
	a1, ok1 := SendGridAccountFor(SendGridSyntheticKey(5))
	a2, ok2 := SendGridAccountFor(SendGridSyntheticKey(5))
	if !ok1 || !ok2 || !reflect.DeepEqual(a1, a2) {
		t.Errorf("synthetic SendGrid account 5 differs between calls: %+v vs %+v", a1, a2)
	}
	acme, _ := SendGridAccountFor(SendGridKeyAcme)
	if !reflect.DeepEqual(a1.Scopes, acme.Scopes) || a1.Type != "paid" {
		t.Errorf("synthetic scopes %v type %s, want acme's %v and paid", a1.Scopes, a1.Type, acme.Scopes)
	}
	if acme.Name != "acme" || acme.UserID != 4242001 || len(acme.Teammates) != 7 {
		t.Errorf("the fixed acme account changed: %+v", acme)
	}
	// Lists of the order of acme's: 7 teammates, 5 keys, 5 subusers.
	for n := range 12 {
		a, _ := SendGridAccountFor(SendGridSyntheticKey(n))
		if len(a.Teammates) < 5 || len(a.Teammates) > 10 || len(a.APIKeys) < 3 || len(a.Subusers) < 3 || len(a.PendingTeammates) == 0 {
			t.Errorf("synthetic account %d: %d teammates, %d keys, %d subusers, %d pending", n,
				len(a.Teammates), len(a.APIKeys), len(a.Subusers), len(a.PendingTeammates))
		}
		if a.APIKeys[0].APIKeyID != SendGridSyntheticKey(n)[3:25] {
			t.Errorf("account %d: first api_key_id %q is not the key's own id", n, a.APIKeys[0].APIKeyID)
		}
	}
	w1, _ := SegmentWorkspaceFor(SegmentSyntheticToken(5))
	w2, _ := SegmentWorkspaceFor(SegmentSyntheticToken(5))
	if !reflect.DeepEqual(w1, w2) || w1.Region != "us" || len(w1.ID) != 22 {
		t.Errorf("synthetic workspace 5: %+v vs %+v", w1, w2)
	}
	t1, ok := TwilioAccountFor(TwilioSyntheticAccount(5))
	if !ok || t1.Type != "Full" || t1.Status != "active" || t1.BalanceStatus != 0 || t1.UsageScale == 0 {
		t.Errorf("synthetic Twilio account 5: %+v", t1)
	}
	if len(TwilioAccounts()) != 8 {
		t.Errorf("TwilioAccounts lists %d accounts, want the 8 fixed ones (4 top-level, 4 subaccounts)", len(TwilioAccounts()))
	}
}

// Each synthetic SendGrid key is its own account: distinct user name and
// id (the exporter's account id), and its own rate-limit window.
func TestSyntheticSendGridDistinctAccounts(t *testing.T) {
	_, ts, _ := newSim(t, Options{})
	type user struct {
		Username string `json:"username"`
		UserID   int64  `json:"user_id"`
	}
	seen := map[int64]string{}
	for _, n := range []int{1, 2, 3, 1000} {
		a := get(t, ts, "/sendgrid/v3/user/username", SendGridSyntheticKey(n))
		if a.Status != 200 {
			t.Fatalf("key %d: %d %s", n, a.Status, a.Body)
		}
		var u user
		a.decode(t, &u)
		if u.Username == "" || u.UserID == 0 || u.UserID == 4242001 || u.UserID == 4242002 {
			t.Errorf("key %d: %+v", n, u)
		}
		if prev, dup := seen[u.UserID]; dup {
			t.Errorf("keys %s and %d share user_id %d", prev, n, u.UserID)
		}
		seen[u.UserID] = u.Username
		if got := a.Header.Get("X-RateLimit-Remaining"); got != "599" {
			t.Errorf("key %d: X-RateLimit-Remaining %s, want 599 (its own window)", n, got)
		}
	}
	// Revoking one synthetic key leaves the others working.
	k1, k2 := SendGridSyntheticKey(1), SendGridSyntheticKey(2)
	if a := do(t, ts, http.MethodPost, "/_sim/sendgrid/revoke", "", "application/x-www-form-urlencoded", url.Values{"key": {k1}}.Encode()); a.Status != 200 {
		t.Fatalf("revoke: %d %s", a.Status, a.Body)
	}
	if a := get(t, ts, "/sendgrid/v3/scopes", k1); a.Status != 401 {
		t.Errorf("revoked synthetic key: %d", a.Status)
	}
	if a := get(t, ts, "/sendgrid/v3/scopes", k2); a.Status != 200 {
		t.Errorf("another synthetic key after a revoke: %d", a.Status)
	}
}

func TestSyntheticSegmentWorkspaces(t *testing.T) {
	sim, ts, _ := newSim(t, Options{})
	var ids []string
	for _, n := range []int{7, 8} {
		a := get(t, ts, "/segment/us/", SegmentSyntheticToken(n))
		if a.Status != 200 {
			t.Fatalf("token %d: %d %s", n, a.Status, a.Body)
		}
		var out struct {
			Data struct {
				Workspace struct{ ID, Name, Slug string } `json:"workspace"`
			} `json:"data"`
		}
		a.decode(t, &out)
		w := out.Data.Workspace
		if !strings.HasSuffix(w.ID, fmt.Sprintf("%010d", n)) || !strings.Contains(w.Name, "Workspace") || w.Slug == "" {
			t.Errorf("workspace %d: %+v", n, w)
		}
		ids = append(ids, w.ID)
	}
	if ids[0] == ids[1] {
		t.Errorf("two synthetic tokens share workspace %s", ids[0])
	}
	sim.RevokeSegmentToken(SegmentSyntheticToken(7))
	if a := get(t, ts, "/segment/us/", SegmentSyntheticToken(7)); a.Status != 401 {
		t.Errorf("revoked synthetic token: %d", a.Status)
	}
	if a := get(t, ts, "/segment/us/", SegmentSyntheticToken(8)); a.Status != 200 {
		t.Errorf("another synthetic token after a revoke: %d", a.Status)
	}
}

// A synthetic Twilio account authorizes through Allow on the consent page
// (posting its sid) and through the control API, though the page lists
// only the fixed accounts.
func TestSyntheticTwilioAuthorize(t *testing.T) {
	sim, ts, _ := newSim(t, Options{PageSize: 100})
	s1, s2 := TwilioSyntheticAccount(1), TwilioSyntheticAccount(2)
	page := get(t, ts, "/twilio-www/authorize/"+TwilioConnectAppSid+"?state=abc", "")
	if page.Status != 200 || strings.Contains(string(page.Body), s1) {
		t.Errorf("consent page: %d, lists a synthetic account: %v", page.Status, strings.Contains(string(page.Body), s1))
	}
	if a := twGet(t, ts, acct(s1)+".json", s1, TwilioOwnerAuthToken); a.Status != 401 {
		t.Fatalf("before authorizing: %d", a.Status)
	}

	client := ts.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	form := url.Values{"state": {"abc"}, "account_sid": {s1}, "decision": {"allow"}}
	resp, err := client.PostForm(ts.URL+"/twilio-www/authorize/"+TwilioConnectAppSid, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("AccountSid") != s1 || loc.Query().Get("state") != "abc" {
		t.Fatalf("Allow with a synthetic sid: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if !sim.TwilioAuthorized(s1) || sim.TwilioAuthorized(s2) {
		t.Errorf("authorized: %s %v, %s %v", s1, sim.TwilioAuthorized(s1), s2, sim.TwilioAuthorized(s2))
	}
	if a := do(t, ts, http.MethodPost, "/_sim/twilio/authorize", "", "application/json", `{"account_sid":"`+s2+`"}`); a.Status != 200 {
		t.Fatalf("control authorize: %d %s", a.Status, a.Body)
	}

	// Distinct accounts: their own numbers, sids and phone numbers alike.
	numbers := map[string]bool{}
	for _, sid := range []string{s1, s2} {
		a := twGet(t, ts, acct(sid)+"/IncomingPhoneNumbers.json?PageSize=1000", sid, TwilioOwnerAuthToken)
		if a.Status != 200 {
			t.Fatalf("%s numbers: %d %s", sid, a.Status, a.Body)
		}
		var out struct {
			Numbers []struct {
				Sid         string `json:"sid"`
				PhoneNumber string `json:"phone_number"`
			} `json:"incoming_phone_numbers"`
		}
		a.decode(t, &out)
		if len(out.Numbers) < 4 {
			t.Errorf("%s: %d numbers", sid, len(out.Numbers))
		}
		for _, n := range out.Numbers {
			if numbers[n.Sid] || numbers[n.PhoneNumber] {
				t.Errorf("number %s / %s appears twice", n.Sid, n.PhoneNumber)
			}
			numbers[n.Sid], numbers[n.PhoneNumber] = true, true
		}
	}
	if a := twGet(t, ts, acct(s2)+".json", s1, TwilioOwnerAuthToken); a.Status != 404 {
		t.Errorf("one synthetic account reading another: %d", a.Status)
	}
}
