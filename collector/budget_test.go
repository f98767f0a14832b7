package collector

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store/storetest"
)

// budgetProvider bills in "widgets"; its usage section reports the
// month-to-date figure, or fails after its first run.
type budgetProvider struct {
	mu    sync.Mutex
	runs  int
	fail  bool
	usage float64
}

func (p *budgetProvider) Vendor() string                               { return "fake" }
func (p *budgetProvider) Title() string                                { return "Fake" }
func (p *budgetProvider) Methods() []provider.Method                   { return nil }
func (p *budgetProvider) BudgetUnit() string                           { return "widgets" }
func (p *budgetProvider) BudgetUnavailable(provider.Connection) string { return "" }
func (p *budgetProvider) Collect(ctx context.Context, s *provider.Scrape) error {
	p.mu.Lock()
	p.runs++
	fail, usage := p.fail, p.usage
	p.mu.Unlock()
	return s.Sections(ctx, provider.Section{Name: "usage", Run: func(ctx context.Context, s *provider.Scrape) error {
		if fail {
			return errors.New("usage answered 503")
		}
		s.MonthToDate("widgets", usage)
		return nil
	}})
}

const (
	budgetSeries = `saas_budget_monthly{connection="prod",unit="widgets",vendor="fake"}`
	mtdSeries    = `saas_budget_usage_month_to_date{connection="prod",unit="widgets",vendor="fake"}`
)

func TestBudgetExported(t *testing.T) {
	e, _, st, clk := setup(t, "prod", "other")
	p := &budgetProvider{usage: 120}
	e.providers["fake"] = p
	prodID := mustConn(t, e, "prod").ID
	if _, _, known := e.MonthToDate(prodID); known {
		t.Error("month to date known before any collection")
	}
	got := gather(t, scrapeOf(e, nil))
	if v, reported, known := e.MonthToDate(prodID); v != 120 || !reported || !known {
		t.Errorf("MonthToDate after a collection = %v, %v, %v; want 120, true, true", v, reported, known)
	}
	if _, ok := got[budgetSeries]; ok {
		t.Errorf("no budget set, yet %s is exported", budgetSeries)
	}
	if got[mtdSeries] != 120 {
		t.Errorf("%s = %v, want 120 (reported without a budget too)", mtdSeries, got[mtdSeries])
	}

	v := 500.0
	if err := storetest.SetBudget(context.Background(), st, mustConn(t, e, "prod").ID, &v); err != nil {
		t.Fatal(err)
	}
	e.Relist()
	got = gather(t, scrapeOf(e, nil))
	if got[budgetSeries] != 500 {
		t.Errorf("after setting the budget: %s = %v, want 500; got %v", budgetSeries, got[budgetSeries], got)
	}
	if _, ok := got[`saas_budget_monthly{connection="other",unit="widgets",vendor="fake"}`]; ok {
		t.Error("the connection without a budget exports one")
	}
	if p.runs != 2 {
		t.Errorf("two connections, two scrapes within min_interval with a budget set between: %d collections, want 2 (setting a budget must not call the vendor)", p.runs)
	}

	// A failing usage section keeps the last month-to-date value; the
	// budget stays whatever the vendor answers.
	p.mu.Lock()
	p.fail, p.usage = true, 999
	p.mu.Unlock()
	clk.add(time.Minute)
	got = gather(t, scrapeOf(e, nil))
	if got[mtdSeries] != 120 || got[budgetSeries] != 500 {
		t.Errorf("failing usage section: month to date %v (want the kept 120), budget %v (want 500)", got[mtdSeries], got[budgetSeries])
	}
	if got[`saas_connection_state{connection="prod",state="error",vendor="fake"}`] != 1 {
		t.Error("the failing section must still fail the collection")
	}
	if v, reported, _ := e.MonthToDate(prodID); v != 120 || !reported {
		t.Errorf("MonthToDate after a failing section = %v, %v; want the kept 120", v, reported)
	}

	if err := storetest.SetBudget(context.Background(), st, mustConn(t, e, "prod").ID, nil); err != nil {
		t.Fatal(err)
	}
	e.Relist()
	if _, ok := gather(t, scrapeOf(e, nil))[budgetSeries]; ok {
		t.Error("a cleared budget is still exported")
	}
}

// A vendor that bills in no single unit exports no budget, even if the
// record holds one (set by a build that knew a unit).
func TestBudgetNeedsAUnit(t *testing.T) {
	e, _, st, _ := setup(t, "prod")
	v := 5.0
	if err := storetest.SetBudget(context.Background(), st, mustConn(t, e, "prod").ID, &v); err != nil {
		t.Fatal(err)
	}
	got := gather(t, scrapeOf(e, nil))
	if _, reported, known := e.MonthToDate(mustConn(t, e, "prod").ID); reported || !known {
		t.Errorf("a provider reporting no month to date: reported %v known %v, want false true", reported, known)
	}
	for k := range got {
		if len(k) > 11 && k[:11] == "saas_budget" {
			t.Errorf("a vendor without a budget unit exports %s", k)
		}
	}
}
