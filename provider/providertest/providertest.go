// Package providertest holds test helpers shared by the provider packages.
package providertest

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// Canned is a loopback vendor that answers every request with the same
// status and body, for fuzzing a provider's response decoders.
type Canned struct {
	URL    string
	Client *http.Client
	body   atomic.Value
	status atomic.Int64
}

// NewCanned starts a Canned server; it stops when tb's test ends.
func NewCanned(tb testing.TB) *Canned {
	c := &Canned{}
	c.Set(http.StatusOK, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(c.status.Load()))
		w.Write(c.body.Load().([]byte))
	}))
	tb.Cleanup(srv.Close)
	c.URL, c.Client = srv.URL, srv.Client()
	return c
}

// Set changes the answer; a status outside 200..599 means 200.
func (c *Canned) Set(status int, body []byte) {
	if status < 200 || status > 599 {
		status = http.StatusOK
	}
	c.status.Store(int64(status))
	c.body.Store(append([]byte(nil), body...))
}
