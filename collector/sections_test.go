package collector

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

var (
	descPart  = provider.NewDesc("fake_part", "One value per section.", "part")
	descTotal = provider.NewDesc("fake_total", "Collected outside any section.")
)

// sectionsProvider runs three sections: "credits" fails or panics on
// demand, "closed" may run at most hourly, "stats" always succeeds. Each
// emits its run number, so a kept value is told from a fresh one.
type sectionsProvider struct {
	mu          sync.Mutex
	run         int
	failCredits bool
	panicStats  bool
	closedRuns  int
	closedKey   string
}

func (p *sectionsProvider) Vendor() string             { return "fake" }
func (p *sectionsProvider) Title() string              { return "Fake" }
func (p *sectionsProvider) Methods() []provider.Method { return nil }
func (p *sectionsProvider) Collect(ctx context.Context, s *provider.Scrape) error {
	p.mu.Lock()
	p.run++
	run, fail, pan, key := float64(p.run), p.failCredits, p.panicStats, p.closedKey
	p.mu.Unlock()
	s.Gauge(descTotal, run)
	return s.Sections(ctx,
		provider.Section{Name: "credits", Run: func(ctx context.Context, s *provider.Scrape) error {
			if fail {
				s.Gauge(descPart, run, "partial") // emitted before failing: exported
				return errors.New("credits answered 503")
			}
			s.Gauge(descPart, run, "credits")
			return nil
		}},
		provider.Section{Name: "stats", Run: func(ctx context.Context, s *provider.Scrape) error {
			if pan {
				var m map[string]int
				m["x"]++ // a nil-map write: a real bug's panic
			}
			s.Gauge(descPart, run, "stats")
			return nil
		}},
		provider.Section{Name: "closed:" + key, Every: time.Hour, Run: func(ctx context.Context, s *provider.Scrape) error {
			p.mu.Lock()
			p.closedRuns++
			p.mu.Unlock()
			s.Gauge(descPart, run, "closed")
			return nil
		}},
	)
}

func TestFailingSectionKeepsItsSeries(t *testing.T) {
	e, _, _, clk := setup(t, "prod")
	p := &sectionsProvider{closedKey: "2026-02"}
	e.providers["fake"] = p
	got := gather(t, scrapeOf(e, nil))
	if got[`saas_fake_part{connection="prod",part="credits"}`] != 1 || got[`saas_fake_part{connection="prod",part="stats"}`] != 1 {
		t.Fatalf("first collection: %v", got)
	}

	p.mu.Lock()
	p.failCredits = true
	p.mu.Unlock()
	clk.add(time.Minute)
	got = gather(t, scrapeOf(e, nil))
	if v, ok := got[`saas_fake_part{connection="prod",part="credits"}`]; !ok || v != 1 {
		t.Errorf("failing credits section: want its last good value 1 kept, got %v (present %v)", v, ok)
	}
	if v := got[`saas_fake_part{connection="prod",part="partial"}`]; v != 2 {
		t.Errorf("what a failing section emitted must be exported: want 2, got %v", v)
	}
	if v := got[`saas_fake_part{connection="prod",part="stats"}`]; v != 2 {
		t.Errorf("stats section: want the new value 2, got %v", v)
	}
	if v := got[`saas_fake_total{connection="prod"}`]; v != 2 {
		t.Errorf("unsectioned metric: want 2, got %v", v)
	}
	if got[`saas_connection_state{connection="prod",state="error",vendor="fake"}`] != 1 {
		t.Errorf("a failing section must still fail the collection: %v", got)
	}
}

func TestSectionEveryAndRename(t *testing.T) {
	e, _, _, clk := setup(t, "prod")
	p := &sectionsProvider{closedKey: "2026-02"}
	e.providers["fake"] = p
	for i := 0; i < 3; i++ {
		gather(t, scrapeOf(e, nil))
		clk.add(time.Minute)
	}
	got := gather(t, scrapeOf(e, nil))
	if p.closedRuns != 1 {
		t.Errorf("a section due hourly ran %d times in 4 collections over 3 minutes, want 1", p.closedRuns)
	}
	if v := got[`saas_fake_part{connection="prod",part="closed"}`]; v != 1 {
		t.Errorf("the not-due section must export its kept value 1, got %v", v)
	}
	clk.add(time.Hour)
	gather(t, scrapeOf(e, nil))
	if p.closedRuns != 2 {
		t.Errorf("after an hour the section must run again: ran %d times", p.closedRuns)
	}
	// A new month is a new section: it runs at once.
	p.mu.Lock()
	p.closedKey = "2026-03"
	p.mu.Unlock()
	clk.add(time.Minute)
	gather(t, scrapeOf(e, nil))
	if p.closedRuns != 3 {
		t.Errorf("a renamed section must run at once: ran %d times", p.closedRuns)
	}
}

func TestPanicInSectionFailsOnlyTheConnection(t *testing.T) {
	e, _, _, _ := setup(t, "prod")
	var logs strings.Builder
	e.o.Logger = newTestLogger(&logs)
	e.providers["fake"] = &sectionsProvider{panicStats: true}
	got := gather(t, scrapeOf(e, nil)) // the process must survive this
	if got[`saas_connection_state{connection="prod",state="error",vendor="fake"}`] != 1 {
		t.Errorf("panic in a section: want state error, got %v", got)
	}
	if got[`saas_fake_part{connection="prod",part="credits"}`] != 1 {
		t.Errorf("the other sections must still be exported: %v", got)
	}
	ent := e.entry(mustConn(t, e, "prod"))
	ent.mu.Lock()
	msg := ent.lastErr
	ent.mu.Unlock()
	if !strings.Contains(msg, "section stats") || !strings.Contains(msg, "nil map") {
		t.Errorf("last_error must name the section and the panic: %q", msg)
	}
	if !strings.Contains(logs.String(), "sections_test.go") {
		t.Errorf("the log must carry the panic's stack; got %q", logs.String())
	}
}

func newTestLogger(w *strings.Builder) *slog.Logger {
	var mu sync.Mutex
	return slog.New(slog.NewTextHandler(lockedWriter{w: w, mu: &mu}, nil))
}

type lockedWriter struct {
	w  *strings.Builder
	mu *sync.Mutex
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func mustConn(t *testing.T, e *Engine, name string) store.Connection {
	t.Helper()
	cs, err := e.o.Store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no connection %q", name)
	return store.Connection{}
}
