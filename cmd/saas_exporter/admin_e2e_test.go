package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startNoAdmins runs the exporter with a configuration naming no admins;
// it returns the exit code if run ends before listening, else stops it.
func startNoAdmins(t *testing.T, dir, addr string, use func(url, logs string)) (code int, logs string) {
	t.Helper()
	cfg := fmt.Sprintf("external_url: http://%s\ndata_dir: %s\n", addr, filepath.Join(dir, "data"))
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--config.file=" + cfgFile, "--web.listen-address=" + addr}, io.Discard, &buf, func(a string) { ready <- a })
	}()
	select {
	case code := <-done:
		return code, buf.String()
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("exporter did not start:\n%s", buf.String())
	}
	use("http://"+addr, buf.String())
	cancel()
	return <-done, buf.String()
}

var generatedPassword = regexp.MustCompile(`generated a password for user \\"admin\\".* password=(\S+)`)

// A start that fails after generating the admin password must not lose
// it: the next start shows a password, and that password works.
func TestGeneratedAdminPasswordSurvivesFailedStart(t *testing.T) {
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	code, logs := startNoAdmins(t, dir, busy.Addr().String(), nil)
	busy.Close()
	if code != 1 || !strings.Contains(logs, "cannot listen") {
		t.Fatalf("start on a busy port: exit %d\n%s", code, logs)
	}
	if m := generatedPassword.FindStringSubmatch(logs); m != nil {
		t.Errorf("a failed start showed a password:\n%s", logs)
	}

	addr := busy.Addr().String() // free now
	var password string
	signIn := func(url, pw string) int {
		req, _ := http.NewRequest("GET", url+"/api/v1/connections", nil)
		req.SetBasicAuth("admin", pw)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	_, logs = startNoAdmins(t, dir, addr, func(url, logs string) {
		m := generatedPassword.FindStringSubmatch(logs)
		if m == nil {
			t.Fatalf("the start after a failed one shows no generated password:\n%s", logs)
		}
		password = m[1]
		if code := signIn(url, password); code != 200 {
			t.Errorf("the shown password does not work: %d", code)
		}
		resp, err := http.Get(url + "/login")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(page), "generated a password") {
			t.Errorf("the sign-in page does not say where the generated password is:\n%s", page)
		}
	})
	// Later starts keep it and do not show it again.
	startNoAdmins(t, dir, addr, func(url, logs string) {
		if generatedPassword.MatchString(logs) {
			t.Errorf("a later start shows a password again:\n%s", logs)
		}
		if code := signIn(url, password); code != 200 {
			t.Errorf("the generated password stopped working after a restart: %d", code)
		}
	})
}
