package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/saas-exporter/saas_exporter/vendorsim"
)

const (
	promUser = "prometheus"
	promPass = "scrape-password-7"
)

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// Issue #12 item 9: with --web.config.file basic auth (and TLS), every
// route: the basic_auth user guards /metrics, /probe and /sd only; the UI,
// API, flows, webhooks and invites keep their own authentication, and
// everything is served over TLS.
func TestWebConfigBasicAuthGuardsScrapesOnly(t *testing.T) {
	dir := t.TempDir()
	selfSigned(t, dir) // tls.crt, tls.key: relative to the web config
	hash, _ := bcrypt.GenerateFromPassword([]byte(promPass), bcrypt.MinCost)
	webCfg := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webCfg, []byte("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  "+promUser+": "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startStack(t, stackOptions{Args: []string{"--web.config.file=" + webCfg}})
	base := "https://" + strings.TrimPrefix(s.URL, "http://")
	jarless := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	call := func(method, path, user, pass, ctype, body string, hdr map[string]string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := jarless.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}

	// Plain HTTP is not served: TLS covers every route.
	if resp, err := http.Get(s.URL + "/login"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTPS") {
			t.Errorf("plain HTTP: %d %s", resp.StatusCode, b)
		}
	}

	// Prometheus' routes need the web config's user.
	for _, path := range []string{"/metrics", "/probe?connection=nosuch", "/sd"} {
		if code, h, _ := call("GET", path, "", "", "", "", nil); code != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without credentials: %d", path, code)
		}
		if code, _, _ := call("GET", path, promUser, "wrong", "", "", nil); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong password: %d", path, code)
		}
		if code, _, _ := call("GET", path, testAdmin, testPassword, "", "", nil); code != http.StatusUnauthorized {
			t.Errorf("%s with the UI admin's credentials: %d", path, code)
		}
	}
	if code, _, _ := call("GET", "/metrics", promUser, promPass, "", "", nil); code != http.StatusOK {
		t.Errorf("/metrics with the web config's user: %d", code)
	}
	if code, _, _ := call("GET", "/sd", promUser, promPass, "", "", nil); code != http.StatusOK {
		t.Errorf("/sd with the web config's user: %d", code)
	}
	if code, _, _ := call("GET", "/probe?connection=nosuch", promUser, promPass, "", "", nil); code != http.StatusNotFound {
		t.Errorf("/probe with the web config's user: %d", code)
	}

	// Everything else keeps its own authentication: no basic-auth prompt.
	for _, path := range []string{"/login", "/-/healthy", "/-/ready"} {
		if code, h, _ := call("GET", path, "", "", "", "", nil); code != http.StatusOK || h.Get("WWW-Authenticate") != "" {
			t.Errorf("GET %s: %d, WWW-Authenticate %q", path, code, h.Get("WWW-Authenticate"))
		}
	}
	if code, h, _ := call("GET", "/", "", "", "", "", nil); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") {
		t.Errorf("GET / without a session: %d %s", code, h.Get("Location"))
	}
	// The JSON API with the admin's basic auth (the same header).
	code, _, body := call("POST", "/api/v1/invites", testAdmin, testPassword, "application/json", `{"vendor":"sendgrid","name":"later"}`, nil)
	if code != http.StatusCreated {
		t.Fatalf("API with the admin's credentials: %d %s", code, body)
	}
	var inv struct{ URL string }
	json.Unmarshal([]byte(body), &inv)
	if code, _, _ := call("GET", "/api/v1/connections", promUser, promPass, "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("API with the web config's user: %d", code)
	}
	// The invite page opens without any prompt.
	u, _ := url.Parse(inv.URL)
	if code, h, page := call("GET", u.Path, "", "", "", "", nil); code != http.StatusOK || h.Get("WWW-Authenticate") != "" || !strings.Contains(page, "Connect SendGrid") {
		t.Errorf("invite page: %d %q", code, h.Get("WWW-Authenticate"))
	}
	// Flows: the callback answers for itself (no flow in progress), not 401.
	if code, _, _ := call("GET", "/connect/twilio/callback?state=x&AccountSid="+vendorsim.TwilioAccountAcme, "", "", "", "", nil); code != http.StatusBadRequest {
		t.Errorf("flow callback: %d", code)
	}
	// Twilio's deauthorize callback carries no basic auth, only its signature.
	form := url.Values{"AccountSid": {vendorsim.TwilioAccountAcme}, "ConnectAppSid": {vendorsim.TwilioConnectAppSid}}
	sig := vendorsim.TwilioSignature(vendorsim.TwilioOwnerAuthToken, s.URL+"/connect/twilio/deauthorize", form)
	if code, _, body := call("POST", "/connect/twilio/deauthorize", "", "", "application/x-www-form-urlencoded", form.Encode(), map[string]string{"X-Twilio-Signature": sig}); code != http.StatusOK {
		t.Errorf("deauthorize callback: %d %s", code, body)
	}
}
