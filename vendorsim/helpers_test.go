package vendorsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/saas-exporter/saas_exporter/internal/citest"
)

// fakeClock is a settable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// testNow is a Sunday in the middle of a month.
var testNow = time.Date(2026, 3, 15, 12, 30, 0, 0, time.UTC)

// newSim starts a simulator on loopback with a fake clock at testNow.
func newSim(t *testing.T, o Options) (*Server, *httptest.Server, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: testNow}
	if o.Now == nil {
		o.Now = clock.Now
	}
	sim := New(o)
	ts := httptest.NewServer(sim.Handler())
	// Cleanups run last-in first-out: release hanging calls, then close.
	t.Cleanup(ts.Close)
	t.Cleanup(sim.Close)
	return sim, ts, clock
}

type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// get calls the simulator with an optional SendGrid key.
func get(t *testing.T, ts *httptest.Server, path, key string) answer {
	t.Helper()
	return do(t, ts, http.MethodGet, path, key, "", "")
}

func do(t *testing.T, ts *httptest.Server, method, path, key, contentType, body string) answer {
	t.Helper()
	auth := ""
	if key != "" {
		auth = "Bearer " + key
	}
	return doAuth(t, ts, method, path, auth, contentType, body)
}

// doHeader GETs path with a raw Authorization header ("" for none).
func doHeader(t *testing.T, ts *httptest.Server, path, auth string) answer {
	t.Helper()
	return doAuth(t, ts, http.MethodGet, path, auth, "", "")
}

func doAuth(t *testing.T, ts *httptest.Server, method, path, auth, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return fetch(t, ts, req)
}

// fetch sends req to the simulator and reads the whole answer.
func fetch(t *testing.T, ts *httptest.Server, req *http.Request) answer {
	t.Helper()
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL.Path, err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// fetchWant is fetch, failing unless the status is want.
func fetchWant(t *testing.T, ts *httptest.Server, req *http.Request, want int) answer {
	t.Helper()
	a := fetch(t, ts, req)
	if a.Status != want {
		t.Fatalf("status %d, want %d; body %s", a.Status, want, a.Body)
	}
	return a
}

// validateAnswer checks an answer (with body, which may be a normalised
// copy of a.Body) against the spec operation of in.
func validateAnswer(ctx context.Context, in *openapi3filter.RequestValidationInput, a answer, body []byte) error {
	return openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 a.Status,
		Header:                 a.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
			MultiError:            true,
		},
	})
}

// decode unmarshals a's body into out, failing the test on bad JSON.
func (a answer) decode(t *testing.T, out any) {
	t.Helper()
	if err := json.Unmarshal(a.Body, out); err != nil {
		t.Fatalf("body is not the expected JSON (%v): %s", err, a.Body)
	}
}

// specDir is <vendor specs>/<vendor>: $SAAS_VENDOR_SPECS if set, else
// ../shared/vendor-specs next to the repository root. The files live
// outside the repository; without them the contract tests skip, and fail
// under CI (CI=true or CI=1).
func specDir(t *testing.T, vendor string) string {
	t.Helper()
	root := os.Getenv("SAAS_VENDOR_SPECS")
	if root == "" {
		dir, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				t.Fatal("repository root (go.mod) not found above the test directory")
			}
			dir = parent
		}
		root = filepath.Clean(filepath.Join(dir, "..", "shared", "vendor-specs"))
	}
	d := filepath.Join(root, vendor)
	if _, err := os.Stat(d); err != nil {
		citest.Missing(t, fmt.Sprintf("the vendor OpenAPI files are missing: %v. This contract test needs them in %s "+
			"(segment_public_api.yaml, twilio_api_v2010.json, sendgrid/*.json): put them beside the repository in ../shared/vendor-specs, "+
			"or point SAAS_VENDOR_SPECS at them (see the README's Quick start)", err, root))
	}
	return d
}
