package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// A connection's page in a real browser (#18): what SendGrid collected,
// with its meters, at desktop and phone widths without sideways scroll;
// Collect now (twice, inside min_interval), Rename and Reconnect.
// SAAS_UPDATE_SCREENSHOTS=1 also writes docs/connection.png and
// docs/connection-phone.png for the README.
func TestBrowserConnectionPage(t *testing.T) {
	// Not parallel: chromium is CPU-heavy and would push other tests past their timeouts.
	browser := requireTool(t, "chromium")
	s := startStack(t, stackOptions{MinInterval: "1h"})
	var created apiConn
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "sg-acme", "api_key": vendorsim.SendGridKeyAcme}, &created); code != 201 {
		t.Fatalf("connect: %d", code)
	}

	ctx, run := newBrowser(t, browser, s, 1280, 1000)
	text := func() string {
		t.Helper()
		page, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		if err != nil {
			t.Fatal(err)
		}
		return page
	}
	historyRows := func() int {
		t.Helper()
		n, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelectorAll("#history tbody tr").length`))
		if err != nil {
			t.Fatal(err)
		}
		return int(n)
	}
	// noSideways checks the page is no wider than the viewport and returns a screenshot.
	noSideways := func(width float64) []byte {
		t.Helper()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.documentElement.scrollWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if got > width {
			t.Errorf("the connection page is %v px wide in a %v px viewport: it scrolls sideways", got, width)
		}
		// Nor does text run out of its card (a long account id).
		over, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`[...document.querySelectorAll("section.card")].filter(c => c.scrollWidth > c.clientWidth + 1).length`))
		if err != nil || over != 0 {
			t.Errorf("%v cards overflow at %v px: %v", over, width, err)
		}
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		return shot
	}
	pageURL := s.URL + "/connections/" + created.ID

	signIn(s, run)
	run("open the connection from the list",
		chromedp.Click(`//a[@href="/connections/`+created.ID+`"]`),
		chromedp.WaitVisible(`//h1[contains(text(),"sg-acme")]`),
	)
	if page := text(); !strings.Contains(page, "Nothing collected by this exporter process yet") || historyRows() != 0 {
		t.Errorf("before any collection:\n%s", page)
	}

	run("collect now", chromedp.Click(chromedp.CSS("#collect-now")), chromedp.WaitVisible(`//p[contains(text(),"Collected just now")]`))
	page := text()
	// The scrape reuses what Collect now fetched (min_interval 1h): the
	// page shows the same credits.
	used := metricValue(t, s.scrape(), `saas_sendgrid_credits_used{connection="sg-acme"}`)
	for i := len(used) - 3; i > 0; i -= 3 {
		used = used[:i] + "," + used[i:]
	}
	for _, want := range []string{"SendGrid", "Delivered this month", "Credits used", used + " credits", "% of 50,000 credits", "99.5%", "admin 2, owner 1, teammate 4", "success"} {
		if !strings.Contains(page, want) {
			t.Errorf("after Collect now, the page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, vendorsim.SendGridKeyAcme) {
		t.Error("the API key is on the page")
	}
	meters, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelectorAll("svg.meter").length`))
	if err != nil || meters < 2 {
		t.Errorf("%v meters drawn, want at least 2 (credits, reputation): %v", meters, err)
	}
	if n := historyRows(); n != 1 {
		t.Errorf("%d attempts after one Collect now", n)
	}
	// min_interval is 1h: a second Collect now still calls the vendor.
	calls := s.Sim.CallCounts().Routes["GET /sendgrid/v3/user/credits"]
	// From the page without the message, so the wait sees the new one.
	run("collect now again", chromedp.Navigate(pageURL), chromedp.WaitVisible(`//h1[contains(text(),"sg-acme")]`),
		chromedp.Click(chromedp.CSS("#collect-now")), chromedp.WaitVisible(`//p[contains(text(),"Collected just now")]`))
	if n := historyRows(); n != 2 {
		t.Errorf("%d attempts after two Collect now, want 2", n)
	}
	if got := s.Sim.CallCounts().Routes["GET /sendgrid/v3/user/credits"]; got != calls+1 {
		t.Errorf("credits calls %d → %d: Collect now did not call the vendor inside min_interval", calls, got)
	}

	desktop := noSideways(1280)
	run("phone viewport", chromedp.EmulateViewport(390, 844), chromedp.Navigate(pageURL), chromedp.WaitVisible(`//h1[contains(text(),"sg-acme")]`))
	phone := noSideways(390)
	run("desktop viewport", chromedp.EmulateViewport(1280, 1000), chromedp.Navigate(pageURL), chromedp.WaitVisible(`//h1[contains(text(),"sg-acme")]`))
	if os.Getenv("SAAS_UPDATE_SCREENSHOTS") == "1" {
		for name, png := range map[string][]byte{"connection.png": desktop, "connection-phone.png": phone} {
			if err := os.WriteFile(filepath.Join("..", "..", "docs", name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	// A Twilio connection's page: spend and the top categories with bars.
	fc := newAPIFlowClient()
	consentTwilio(t, fc, s.startFlow(fc, map[string]string{"vendor": "twilio", "name": "tw-acme"}), vendorsim.TwilioAccountAcme, "allow").Body.Close()
	tw, ok := s.connections()["tw-acme"]
	if !ok {
		t.Fatalf("Twilio not connected: %+v", s.connections())
	}
	run("Twilio page",
		chromedp.Navigate(s.URL+"/connections/"+tw.ID),
		chromedp.WaitVisible(`//h1[contains(text(),"tw-acme")]`),
		chromedp.Click(chromedp.CSS("#collect-now")),
		chromedp.WaitVisible(`//p[contains(text(),"Collected just now")]`),
	)
	page = text()
	for _, want := range []string{"Twilio", "Spend (subaccounts included)", "This month", "Last month", "Top categories this month", "share of this month's spend", "Balance", "USD"} {
		if !strings.Contains(page, want) {
			t.Errorf("the Twilio page lacks %q:\n%s", want, page)
		}
	}
	twilioShot := noSideways(1280)
	// Its account SID is one long word: it must wrap on a phone.
	run("Twilio page on a phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(s.URL+"/connections/"+tw.ID), chromedp.WaitVisible(`//h1[contains(text(),"tw-acme")]`))
	noSideways(390)
	run("desktop viewport again", chromedp.EmulateViewport(1280, 1000))
	if os.Getenv("SAAS_UPDATE_SCREENSHOTS") == "1" {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "connection-twilio.png"), twilioShot, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	run("back to SendGrid", chromedp.Navigate(pageURL), chromedp.WaitVisible(`//h1[contains(text(),"sg-acme")]`))
	run("rename",
		chromedp.SetValue(chromedp.CSS("#new-name"), "sg-prod"),
		chromedp.Click(chromedp.CSS("#rename-submit")),
		chromedp.WaitVisible(`//h1[contains(text(),"sg-prod")]`),
	)
	if page := text(); !strings.Contains(page, "Renamed.") || !strings.Contains(page, "This starts new series") {
		t.Errorf("after rename:\n%s", page)
	}
	conns := s.connections()
	if c, ok := conns["sg-prod"]; !ok || c.ID != created.ID || len(conns) != 2 {
		t.Fatalf("after rename: %+v", conns)
	}
	scrape := s.scrape()
	if strings.Contains(scrape, `connection="sg-acme"`) {
		t.Errorf("after rename, /metrics still has the old name")
	}
	metricValue(t, scrape, `saas_sendgrid_credits_used{connection="sg-prod"}`)

	run("reconnect",
		chromedp.Click(chromedp.CSS("#reconnect")),
		chromedp.WaitVisible(`//h1[contains(text(),"Reconnect sg-prod")]`),
		chromedp.SendKeys(chromedp.CSS("#f-api_key"), vendorsim.SendGridKeyAcme),
		chromedp.Submit(chromedp.CSS("#f-api_key")),
		chromedp.WaitVisible(`//p[contains(text(),"Reconnected")]`),
	)
	conns = s.connections()
	if c, ok := conns["sg-prod"]; !ok || c.ID != created.ID || len(conns) != 2 {
		t.Errorf("after reconnect: %+v", conns)
	}
}
