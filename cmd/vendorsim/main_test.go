package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// syncBuffer is a bytes.Buffer safe to read while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRunServesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen-address=127.0.0.1:0", "--page-size=2", "--latency=1ms"}, &out, &errOut)
	}()

	re := regexp.MustCompile(`listening on (http://127\.0\.0\.1:\d+)`)
	var base string
	deadline := time.Now().Add(10 * time.Second)
	for base == "" {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, errOut.String())
		default:
		}
		if m := re.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no address printed: %q", out.String())
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
	// SendGrid honours a client's limit; --page-size is the page size of
	// its subuser list when the client names none.
	req, _ := http.NewRequest("GET", base+"/sendgrid/v3/subusers", nil)
	req.Header.Set("Authorization", "Bearer "+vendorsim.SendGridKeyAcme)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Count(string(body), "username") != 2 {
		t.Errorf("--page-size=2 not applied: %d %s", resp.StatusCode, body)
	}
	// run prints the whole banner before it serves, so after an answer
	// the banner is complete.
	banner := out.String()
	for _, want := range []string{
		"sendgrid: " + base + "/sendgrid", vendorsim.SendGridKeyAcme, vendorsim.SendGridKeyBeta,
		"vendors:\n  sendgrid:\n    api_url: " + base + "/sendgrid\n",
	} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	resp, err = http.Get(base + "/_sim/faults")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"sendgrid":{"latency":"1ms"}`) {
		t.Errorf("--latency not applied: %s", body)
	}

	cancel() // what SIGINT/SIGTERM do in main
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--page-size=0"}, "--page-size must be at least 1"},
		{[]string{"--latency=-1s"}, "--latency must not be negative"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"--nope"}, "flag provided but not defined"},
		{[]string{"--listen-address=256.0.0.1:1"}, "cannot listen on 256.0.0.1:1"},
	} {
		err := run(context.Background(), c.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%v: %v, want %q", c.args, err, c.says)
		}
	}
	if err := run(context.Background(), []string{"--help"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

// Every curl line of the README's demo section works against the simulator
// as written (a shortened key answered 404).
func TestREADMEDemoCommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "## Demo")
	if i < 0 {
		t.Fatal("no Demo section in the README")
	}
	demo := readme[i:]
	if j := strings.Index(demo[3:], "\n## "); j >= 0 {
		demo = demo[:j+3]
	}
	sim := vendorsim.New(vendorsim.Options{})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	defer sim.Close()
	curl := regexp.MustCompile("`curl -X ([A-Z]+) localhost:9800(/\\S*)(?: -d ('[^']*'|\\S+))?`")
	cmds := curl.FindAllStringSubmatch(demo, -1)
	if len(cmds) < 4 {
		t.Fatalf("found %d curl commands in the demo section", len(cmds))
	}
	for _, c := range cmds {
		var body io.Reader
		if c[3] != "" {
			body = strings.NewReader(strings.Trim(c[3], "'"))
		}
		req, _ := http.NewRequest(c[1], srv.URL+c[2], body)
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // what curl -d sends
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Errorf("%s: %d %s", c[0], resp.StatusCode, answer)
		}
	}
}
