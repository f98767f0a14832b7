package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// scrapeRoutes are what Prometheus reads: the only routes the web config's
// basic_auth_users protect. The UI, API, flows, webhooks and invites have
// their own authentication, which the same Authorization header (API), a
// browser prompt (invites) or a 401 to the vendor (webhooks) would break.
var scrapeRoutes = map[string]bool{"/metrics": true, "/probe": true, "/sd": true}

// readWebConfig reads --web.config.file as exporter-toolkit does (same
// defaults, strict keys, paths relative to the file).
func readWebConfig(path string) (*web.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &web.Config{
		TLSConfig:  web.TLSConfig{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13, PreferServerCipherSuites: true},
		HTTPConfig: web.HTTPConfig{HTTP2: true},
	}
	if err := yaml.UnmarshalStrict(b, c); err != nil {
		return nil, err
	}
	c.TLSConfig.SetDirectory(filepath.Dir(path))
	return c, nil
}

func tlsEnabled(c *web.Config) bool {
	return c.TLSConfig.TLSCertPath != "" || c.TLSConfig.TLSCert != ""
}

// serveWeb serves srv on every listener as exporter-toolkit's
// web.ServeMultiple does (TLS, HTTP/2, headers and rate limit from the web
// config, reread for every connection or request), except that
// basic_auth_users guards only scrapeRoutes. TLS covers every route.
func serveWeb(listeners []net.Listener, srv *http.Server, configPath string, logger *slog.Logger) error {
	serve := func(l net.Listener) error { return srv.Serve(l) }
	if configPath != "" {
		// Validate checks the users' hashes and the certificates.
		if err := web.Validate(configPath); err != nil {
			return fmt.Errorf("--web.config.file %s: %w", configPath, err)
		}
		c, err := readWebConfig(configPath)
		if err != nil {
			return fmt.Errorf("--web.config.file %s: %w", configPath, err)
		}
		g := &webGuard{path: configPath, next: srv.Handler, log: logger, ok: map[string]bool{}}
		if c.RateLimiterConfig.Interval != 0 {
			g.limiter = rate.NewLimiter(rate.Every(c.RateLimiterConfig.Interval), c.RateLimiterConfig.Burst)
		}
		srv.Handler = g
		if tlsEnabled(c) {
			tc, err := web.ConfigToTLSConfig(&c.TLSConfig)
			if err != nil {
				return fmt.Errorf("--web.config.file %s: %w", configPath, err)
			}
			protos := []string{"http/1.1"}
			if c.HTTPConfig.HTTP2 {
				protos = []string{"h2", "http/1.1"}
			} else {
				srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
			}
			tc.NextProtos = protos
			// Certificates are reloaded for every new connection.
			tc.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
				c, err := readWebConfig(configPath)
				if err != nil {
					return nil, err
				}
				nc, err := web.ConfigToTLSConfig(&c.TLSConfig)
				if err != nil {
					return nil, err
				}
				nc.NextProtos = protos
				return nc, nil
			}
			srv.TLSConfig = tc
			serve = func(l net.Listener) error { return srv.ServeTLS(l, "", "") }
		}
		logger.Info("web config", "file", configPath, "tls", tlsEnabled(c), "basic_auth", len(c.Users) > 0, "basic_auth_routes", "/metrics, /probe, /sd")
	}
	var errs errgroup.Group
	for _, l := range listeners {
		errs.Go(func() error { return serve(l) })
	}
	return errs.Wait()
}

// webGuard applies the web config's headers and rate limit to every route
// and its basic_auth_users to scrapeRoutes only.
type webGuard struct {
	path    string
	next    http.Handler
	log     *slog.Logger
	limiter *rate.Limiter

	mu sync.Mutex
	ok map[string]bool // SHA-256 of user, hash and password → bcrypt result
	// bcryptMu runs one bcrypt at a time: it is CPU-heavy.
	bcryptMu sync.Mutex
}

// fakeHash is compared against for an unknown user, so a wrong user name
// takes as long as a wrong password.
var fakeHash, _ = bcrypt.GenerateFromPassword([]byte("no such user"), bcrypt.DefaultCost)

func (g *webGuard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := readWebConfig(g.path)
	if err != nil {
		g.log.Error("reading --web.config.file", "file", g.path, "err", err)
		http.Error(w, "the exporter cannot read its --web.config.file; see its log", http.StatusInternalServerError)
		return
	}
	if g.limiter != nil && !g.limiter.Allow() {
		http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
		return
	}
	for k, v := range c.HTTPConfig.Header {
		w.Header().Set(k, v)
	}
	if len(c.Users) == 0 || !scrapeRoutes[r.URL.Path] {
		g.next.ServeHTTP(w, r)
		return
	}
	if user, pass, ok := r.BasicAuth(); ok && g.check(c, user, pass) {
		g.next.ServeHTTP(w, r)
		return
	}
	w.Header().Set("WWW-Authenticate", `Basic realm="saas_exporter metrics"`)
	http.Error(w, "authentication required: use the basic_auth user of --web.config.file", http.StatusUnauthorized)
}

func (g *webGuard) check(c *web.Config, user, pass string) bool {
	hash, known := c.Users[user]
	h := []byte(hash)
	if !known {
		h = fakeHash
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{hex.EncodeToString([]byte(user)), hex.EncodeToString(h), hex.EncodeToString([]byte(pass))}, ":")))
	key := string(sum[:])
	g.mu.Lock()
	ok, hit := g.ok[key]
	g.mu.Unlock()
	if !hit {
		g.bcryptMu.Lock()
		ok = bcrypt.CompareHashAndPassword(h, []byte(pass)) == nil && known
		g.bcryptMu.Unlock()
		g.mu.Lock()
		if len(g.ok) >= 1000 {
			clear(g.ok) // bounded: a flood of wrong passwords cannot grow it
		}
		g.ok[key] = ok
		g.mu.Unlock()
	}
	return ok
}
