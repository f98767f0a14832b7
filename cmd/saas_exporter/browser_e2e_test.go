package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// newBrowser starts headless Chromium in a width×height window for the
// test (at most 90 s) and returns its context and a step runner that
// fails the test with the exporter's log.
func newBrowser(t *testing.T, browser string, s *stack, width, height int) (context.Context, func(step string, actions ...chromedp.Action[chromedp.Void])) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancel(); cancelCtx(); cancelAlloc() })
	return ctx, func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v\nexporter log:\n%s", step, err, s.logs.String())
		}
	}
}

// signIn signs the test admin in through the login form.
func signIn(s *stack, run func(step string, actions ...chromedp.Action[chromedp.Void])) {
	run("log in",
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), testAdmin),
		chromedp.SendKeys(chromedp.CSS("#password"), testPassword),
		chromedp.Submit(chromedp.CSS("#password")),
		chromedp.WaitVisible(`//h1[text()="Connections"]`),
	)
}

// A person in a real browser: log in, connect all three vendors (Twilio
// through the simulator's consent page), see them, disconnect one. The
// connections page, with a row in error, fits a 1280 px and a 1024 px
// desktop and a phone without sideways scrolling.
// SAAS_UPDATE_SCREENSHOTS=1 also writes the screenshots in docs/ for the
// README.
func TestBrowserEndToEnd(t *testing.T) {
	// Not parallel: chromium is CPU-heavy and would push other tests past their timeouts.
	browser := requireTool(t, "chromium")
	// With SendGrid's OAuth configured, so every kind of button shows.
	s := startOAuthStack(t, stackOptions{MinInterval: "1h"}).stack

	ctx, run := newBrowser(t, browser, s, 1400, 1000)
	var page string
	body := func() chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			var err error
			page, err = chromedp.Text(chromedp.CSS("body"))(ctx, tg)
			return err
		})
	}

	signIn(s, run)

	run("connect SendGrid by key",
		chromedp.Click(`//a[contains(@href,"/connect/sendgrid")]`),
		chromedp.WaitVisible(chromedp.CSS("#f-api_key")),
		chromedp.SendKeys(chromedp.CSS("#f-name"), "sg-acme"),
		chromedp.SendKeys(chromedp.CSS("#f-api_key"), vendorsim.SendGridKeyAcme),
		chromedp.Submit(chromedp.CSS("#f-api_key")),
		chromedp.WaitVisible(`//td[.//strong[text()="sg-acme"]]`),
	)

	run("Twilio Connect through the consent page",
		chromedp.SendKeys(chromedp.CSS("#n-twilio-connect"), "tw-acme"),
		chromedp.Submit(chromedp.CSS("#n-twilio-connect")),
		chromedp.WaitVisible(`//button[@value="allow"]`),
		chromedp.Click(`//button[@value="allow"]`),
		chromedp.WaitVisible(`//td[.//strong[text()="tw-acme"]]`),
	)

	run("connect Segment by token",
		chromedp.Click(`//a[contains(@href,"/connect/segment") and contains(@href,"token")]`),
		chromedp.WaitVisible(chromedp.CSS("#f-token")),
		chromedp.SendKeys(chromedp.CSS("#f-name"), "seg-us"),
		chromedp.SendKeys(chromedp.CSS("#f-token"), vendorsim.SegmentTokenAcme),
		chromedp.SetValue(chromedp.CSS("#f-region"), "us"),
		chromedp.Submit(chromedp.CSS("#f-token")),
		chromedp.WaitVisible(`//td[.//strong[text()="seg-us"]]`),
	)

	// A connection in error: its last error is the widest cell.
	if code := s.api("POST", "/api/v1/connections", map[string]string{"vendor": "sendgrid", "name": "sg-beta", "method": "api_key", "api_key": vendorsim.SendGridKeyBeta}, nil); code != 201 {
		t.Fatalf("connecting sg-beta: %d", code)
	}
	s.Sim.RevokeSendGridKey(vendorsim.SendGridKeyBeta)
	// The engine collects on a scrape; the page then shows last success.
	s.scrape()
	// The page lists the store, and the engine writes a state change to
	// it behind the scrape (bbolt batches writes for up to 10 ms): wait
	// for the write, not for a guess at its time.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var list []apiConn
		s.api("GET", "/api/v1/connections", nil, &list)
		if slices.ContainsFunc(list, func(c apiConn) bool { return c.Name == "sg-beta" && c.State == "revoked" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sg-beta not stored revoked 10 s after the scrape: %+v", list)
		}
	}
	run("connections page",
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(`//td[.//strong[text()="seg-us"]]`),
		body(),
	)
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sg-acme", "tw-acme", "seg-us", "SendGrid", "Twilio", "Segment", "acme"} {
		if !strings.Contains(page, want) {
			t.Errorf("connections page lacks %q", want)
		}
	}
	if !strings.Contains(page, "revoked") {
		t.Errorf("sg-beta is not shown revoked:\n%s", page)
	}
	if n := strings.Count(page, "active"); n < 3 {
		t.Errorf("connections page shows %d active states, want 3:\n%s", n, page)
	}
	if strings.Contains(page, vendorsim.SendGridKeyAcme) || strings.Contains(page, vendorsim.SegmentTokenAcme) {
		t.Error("a secret is on the page")
	}
	out := filepath.Join(t.TempDir(), "connections.png")
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", out, len(shot))
	// Desktops and a phone (one card per connection): no sideways scroll.
	shots := map[string][]byte{}
	for _, v := range []struct {
		file          string
		width, height int64
	}{{"connections.png", 1280, 900}, {"connections-1024.png", 1024, 768}, {"connections-phone.png", 390, 844}} {
		run(fmt.Sprintf("%d px viewport", v.width), chromedp.EmulateViewport(v.width, v.height), chromedp.Navigate(s.URL+"/"),
			chromedp.WaitVisible(`//td[.//strong[text()="seg-us"]]`))
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		shots[v.file] = png
		width, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.documentElement.scrollWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if width > float64(v.width) {
			t.Errorf("the connections page is %v px wide in a %d px window: it scrolls sideways", width, v.width)
		}
	}
	run("desktop viewport", chromedp.EmulateReset())
	if os.Getenv("SAAS_UPDATE_SCREENSHOTS") == "1" {
		for name, png := range shots {
			if err := os.WriteFile(filepath.Join("..", "..", "docs", name), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	run("disconnect Segment",
		chromedp.Click(`//tr[.//strong[text()="seg-us"]]//a[text()="Disconnect"]`),
		chromedp.WaitVisible(`//h1[contains(text(),"Disconnect")]`),
		chromedp.Click(`//button[text()="Disconnect"]`),
		chromedp.WaitVisible(`//h1[text()="Connections"]`),
		body(),
	)
	if _, still := s.connections()["seg-us"]; still {
		t.Error("seg-us still stored after Disconnect")
	}
	if n := len(s.connections()); n != 3 {
		t.Errorf("%d connections after disconnecting one, want 3", n)
	}
}
