package auth

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/saas-exporter/saas_exporter/auth/api"
	"github.com/saas-exporter/saas_exporter/store"
)

func budgetOf(t *testing.T, e *env, id string) *float64 {
	t.Helper()
	c, err := e.st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c.Budget
}

func TestAPIBudget(t *testing.T) {
	var (
		mu    sync.Mutex
		edits []string
	)
	e := newEnv(t, func(o *Options) {
		o.OnEdit = func(id string) {
			mu.Lock()
			edits = append(edits, id)
			mu.Unlock()
		}
	})
	r := e.api("POST", "/api/v1/connections", map[string]string{"vendor": "keyco", "name": "prod", "api_key": goodKey, "region": "eu"})
	wantStatus(t, r, http.StatusCreated)
	id := decode[api.Connection](t, r).ID
	if b := decode[api.Connection](t, e.api("GET", "/api/v1/connections/"+id, nil)).Budget; b == nil || b.Monthly != nil || b.Unit != "credits" || !b.Comparable {
		t.Fatalf("budget of a new connection: %+v, want none in credits, comparable", b)
	}
	if !strings.Contains(e.api("GET", "/api/v1/connections/"+id, nil).body, `"monthly": null`) {
		t.Error(`no budget must show as "monthly": null`)
	}
	changes := e.changeCount()

	r = e.api("PUT", "/api/v1/connections/"+id+"/budget", `{"monthly": 500}`)
	wantStatus(t, r, http.StatusOK)
	if b := decode[api.Connection](t, r).Budget; b == nil || b.Monthly == nil || *b.Monthly != 500 || b.Unit != "credits" {
		t.Errorf("PUT answered budget %+v, want 500 credits", b)
	}
	if b := budgetOf(t, e, id); b == nil || *b != 500 {
		t.Errorf("stored budget %v, want 500", b)
	}
	mu.Lock()
	if len(edits) != 1 || edits[0] != id || e.changeCount() != changes {
		t.Errorf("a budget change must call OnEdit once (got %v) and not OnChange (a new collection): %d → %d", edits, changes, e.changeCount())
	}
	mu.Unlock()
	wantStatus(t, e.api("PUT", "/api/v1/connections/"+id+"/budget", `{"monthly": 1250.75}`), http.StatusOK)
	wantStatus(t, e.api("PUT", "/api/v1/connections/"+id+"/budget", `{"monthly": 0}`), http.StatusOK)
	if b := budgetOf(t, e, id); b == nil || *b != 0 {
		t.Errorf("a budget of 0 is a budget: stored %v", b)
	}
	wantStatus(t, e.api("PUT", "/api/v1/connections/"+id+"/budget", `{"monthly": 1e12}`), http.StatusOK)

	// Bad input: 400, nothing changes.
	for _, body := range []string{
		`{"monthly": -1}`, `{"monthly": -0.01}`, `{"monthly": 1000000000001}`, `{"monthly": 1e400}`,
		`{"monthly": "500"}`, `{"monthly": true}`, `{"monthly": [500]}`, `{"monthly": {}}`,
		`{"monthly": NaN}`, `{}`, `{"budget": 500}`, `{"monthly": 500, "unit": "usd"}`, `500`, `[]`, `{"monthly": 500} {}`, `not json`,
	} {
		r := e.api("PUT", "/api/v1/connections/"+id+"/budget", body)
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("PUT %s: status %d, want 400; %s", body, r.StatusCode, r.body)
			continue
		}
		if msg := decode[api.Error](t, r).Error; msg == "" {
			t.Errorf("PUT %s: no error message", body)
		}
		if b := budgetOf(t, e, id); b == nil || *b != 1e12 {
			t.Errorf("PUT %s changed the budget to %v", body, b)
		}
	}
	wantBody(t, e.api("PUT", "/api/v1/connections/"+id+"/budget", `{"monthly": -5}`), "must not be negative")
	wantBody(t, e.api("PUT", "/api/v1/connections/"+id+"/budget", `{"monthly": 2e12}`), "over the limit of 1e12")
	wantBody(t, e.api("PUT", "/api/v1/connections/"+id+"/budget", `{"monthly": "500"}`), "must be a JSON number")

	// No JSON content type: 415; unknown id: 404; no credentials: 401.
	req, _ := http.NewRequest("PUT", e.srv.URL+"/api/v1/connections/"+id+"/budget", strings.NewReader(`{"monthly": 1}`))
	req.SetBasicAuth(adminUser, adminPass)
	wantStatus(t, e.send(e.client(), req), http.StatusUnsupportedMediaType)
	req, _ = http.NewRequest("PUT", e.srv.URL+"/api/v1/connections/"+id+"/budget", strings.NewReader("monthly=1"))
	req.SetBasicAuth(adminUser, adminPass)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	wantStatus(t, e.send(e.client(), req), http.StatusUnsupportedMediaType)
	wantStatus(t, e.api("PUT", "/api/v1/connections/0000000000000000/budget", `{"monthly": 1}`), http.StatusNotFound)
	wantStatus(t, e.apiAs("", "", "PUT", "/api/v1/connections/"+id+"/budget", `{"monthly": 1}`), http.StatusUnauthorized)
	if b := budgetOf(t, e, id); b == nil || *b != 1e12 {
		t.Errorf("refused requests changed the budget to %v", b)
	}

	// Reconnect keeps the budget.
	wantStatus(t, e.api("PUT", "/api/v1/connections/"+id+"/budget", `{"monthly": 500}`), http.StatusOK)
	if err := e.st.SetStatus(context.Background(), id, store.Status{State: store.StateRevoked, LastError: "401"}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, e.api("POST", "/api/v1/connections/"+id+"/reconnect", map[string]string{"api_key": goodKey, "region": "us"}), http.StatusOK)
	// So does connecting the same account again (the record is updated).
	wantStatus(t, e.api("POST", "/api/v1/connections", map[string]string{"vendor": "keyco", "name": "again", "api_key": goodKey}), http.StatusOK)
	if b := budgetOf(t, e, id); b == nil || *b != 500 {
		t.Errorf("budget after reconnect: %v, want 500", b)
	}

	r = e.api("PUT", "/api/v1/connections/"+id+"/budget", `{"monthly": null}`)
	wantStatus(t, r, http.StatusOK)
	if b := decode[api.Connection](t, r).Budget; b == nil || b.Monthly != nil {
		t.Errorf("after clearing: %+v", b)
	}
	if b := budgetOf(t, e, id); b != nil {
		t.Errorf("cleared budget still stored: %v", *b)
	}
}

// A vendor that cannot report its usage for this credential: the budget
// is accepted, and the API says nothing can be compared.
func TestAPIBudgetWithoutUsage(t *testing.T) {
	e := newEnv(t)
	r := e.api("POST", "/api/v1/connections", map[string]string{"vendor": "keyco", "name": "prod", "api_key": goodKey, "region": "eu"})
	id := decode[api.Connection](t, r).ID
	err := e.st.UpdateLocked(context.Background(), id, func(c store.Connection) (*store.Connection, error) {
		c.MissingScopes = []string{"usage.read"}
		return &c, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r = e.api("PUT", "/api/v1/connections/"+id+"/budget", `{"monthly": 500}`)
	wantStatus(t, r, http.StatusOK)
	b := decode[api.Connection](t, r).Budget
	if b == nil || b.Monthly == nil || *b.Monthly != 500 || b.Comparable || !strings.Contains(b.Warning, "No usage can be compared") || !strings.Contains(b.Warning, "usage.read") {
		t.Errorf("budget without usage: %+v", b)
	}

	// A vendor with no billing unit cannot take a budget.
	r = e.api("POST", "/api/v1/connections", map[string]string{"vendor": "hookco", "name": "hook", "token": hookToken, "account": "AC1"})
	wantStatus(t, r, http.StatusCreated)
	hid := decode[api.Connection](t, r).ID
	if decode[api.Connection](t, r).Budget != nil {
		t.Error("a vendor without a unit shows a budget")
	}
	wantStatus(t, e.api("PUT", "/api/v1/connections/"+hid+"/budget", `{"monthly": 5}`), http.StatusBadRequest)
	if budgetOf(t, e, hid) != nil {
		t.Error("a budget was stored for a vendor without a unit")
	}
}

func TestPageBudget(t *testing.T) {
	e := newEnv(t)
	c, csrf := e.admin()
	wantStatus(t, e.connectKey(c, csrf, "prod", goodKey), http.StatusSeeOther)
	id := e.connByName("prod").ID
	page := e.do(c, "GET", "/", nil)
	wantBody(t, page, `action="/connections/`+id+`/budget"`, `name="monthly"`, "credits")

	r := e.do(c, "POST", "/connections/"+id+"/budget", url.Values{"csrf": {csrf}, "monthly": {" 750.5 "}})
	wantStatus(t, r, http.StatusSeeOther)
	if b := budgetOf(t, e, id); b == nil || *b != 750.5 {
		t.Fatalf("budget after the form: %v, want 750.5", b)
	}
	page = e.do(c, "GET", r.location(), nil)
	wantBody(t, page, `value="750.5"`, "Budget of “prod” saved.", `name="clear"`)

	for _, v := range []string{"-1", "abc", "1,000", "$500", "NaN", "Inf", "2e12"} {
		r := e.do(c, "POST", "/connections/"+id+"/budget", url.Values{"csrf": {csrf}, "monthly": {v}})
		wantStatus(t, r, http.StatusBadRequest)
		wantBody(t, r, "Budget not changed")
		if b := budgetOf(t, e, id); b == nil || *b != 750.5 {
			t.Errorf("form value %q changed the budget to %v", v, b)
		}
	}
	wantBody(t, e.do(c, "POST", "/connections/"+id+"/budget", url.Values{"csrf": {csrf}, "monthly": {"-3"}}), "must not be negative", "leave the field empty")
	wantBody(t, e.do(c, "POST", "/connections/"+id+"/budget", url.Values{"csrf": {csrf}, "monthly": {"1,000"}}), "is not a number")
	// Without the CSRF token nothing changes.
	wantStatus(t, e.do(c, "POST", "/connections/"+id+"/budget", url.Values{"monthly": {"1"}}), http.StatusForbidden)
	wantStatus(t, e.do(c, "POST", "/connections/0000000000000000/budget", url.Values{"csrf": {csrf}, "monthly": {"1"}}), http.StatusNotFound)
	if b := budgetOf(t, e, id); b == nil || *b != 750.5 {
		t.Errorf("refused forms changed the budget to %v", b)
	}

	// The page says when no usage can be compared.
	err := e.st.UpdateLocked(context.Background(), id, func(c store.Connection) (*store.Connection, error) {
		c.MissingScopes = append(c.MissingScopes, "usage.read")
		return &c, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantBody(t, e.do(c, "GET", "/", nil), "No usage can be compared with this budget", "usage.read")

	r = e.do(c, "POST", "/connections/"+id+"/budget", url.Values{"csrf": {csrf}, "monthly": {"750.5"}, "clear": {"1"}})
	wantStatus(t, r, http.StatusSeeOther)
	if b := budgetOf(t, e, id); b != nil {
		t.Errorf("Clear left budget %v", *b)
	}
	wantBody(t, e.do(c, "GET", r.location(), nil), "Budget of “prod” cleared.")
	// An empty value clears too.
	e.do(c, "POST", "/connections/"+id+"/budget", url.Values{"csrf": {csrf}, "monthly": {"5"}})
	wantStatus(t, e.do(c, "POST", "/connections/"+id+"/budget", url.Values{"csrf": {csrf}, "monthly": {""}}), http.StatusSeeOther)
	if b := budgetOf(t, e, id); b != nil {
		t.Errorf("an empty value left budget %v", *b)
	}
}

// What this replica's last collection saw: the figure itself, or that
// none came although the provider could not tell in advance.
func TestBudgetMonthToDateFromCollection(t *testing.T) {
	var (
		mu    sync.Mutex
		state = map[string][3]float64{} // v, reported, known
	)
	e := newEnv(t, func(o *Options) {
		o.MonthToDate = func(id string) (float64, bool, bool) {
			mu.Lock()
			defer mu.Unlock()
			s := state[id]
			return s[0], s[1] == 1, s[2] == 1
		}
	})
	c, csrf := e.admin()
	e.connectKey(c, csrf, "prod", goodKey)
	e.connectKey(c, csrf, "eur", goodKey2)
	prod, eur := e.connByName("prod").ID, e.connByName("eur").ID
	for _, id := range []string{prod, eur} {
		wantStatus(t, e.api("PUT", "/api/v1/connections/"+id+"/budget", `{"monthly": 1000}`), http.StatusOK)
	}
	if b := decode[api.Connection](t, e.api("GET", "/api/v1/connections/"+prod, nil)).Budget; b.MonthToDate != nil || !b.Comparable {
		t.Errorf("before a collection: %+v, want no month to date, comparable", b)
	}
	mu.Lock()
	state[prod] = [3]float64{798.45, 1, 1}
	state[eur] = [3]float64{0, 0, 1}
	mu.Unlock()
	b := decode[api.Connection](t, e.api("GET", "/api/v1/connections/"+prod, nil)).Budget
	if b.MonthToDate == nil || *b.MonthToDate != 798.45 || !b.Comparable {
		t.Errorf("collected: %+v, want month to date 798.45", b)
	}
	b = decode[api.Connection](t, e.api("GET", "/api/v1/connections/"+eur, nil)).Budget
	if b.MonthToDate != nil || b.Comparable || !strings.Contains(b.Warning, "No usage can be compared") {
		t.Errorf("collected without a month to date: %+v, want not comparable with a warning", b)
	}
	wantBody(t, e.do(c, "GET", "/", nil), "So far this month: 798.45 credits", "reported no usage this month in credits")
}
