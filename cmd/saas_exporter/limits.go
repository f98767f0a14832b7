package main

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// limitOptions bounds what an unauthenticated client can hold. Passed in
// (not package variables) so that tests shorten them for one exporter only.
type limitOptions struct {
	// bodyTimeout bounds reading a request body on every route (a client
	// sending a byte every few seconds holds a connection no longer);
	// 0 is 10s.
	bodyTimeout time.Duration
	// maxUnauthenticated caps requests in flight from clients that are
	// not signed in, on every route but what Prometheus and probes read;
	// 0 is 256.
	maxUnauthenticated int
}

// admission applies bodyTimeout to every request with a body and the
// maxUnauthenticated cap to the UI, API, flows, webhooks and invites.
type admission struct {
	next http.Handler
	// authenticated must be cheap (no bcrypt): it runs before admission.
	authenticated func(*http.Request) bool
	bodyTimeout   time.Duration
	slots         chan struct{}
}

func newAdmission(next http.Handler, authenticated func(*http.Request) bool, o limitOptions) *admission {
	if o.bodyTimeout <= 0 {
		o.bodyTimeout = 10 * time.Second
	}
	if o.maxUnauthenticated <= 0 {
		o.maxUnauthenticated = 256
	}
	return &admission{next: next, authenticated: authenticated, bodyTimeout: o.bodyTimeout, slots: make(chan struct{}, o.maxUnauthenticated)}
}

// held is the number of unauthenticated requests in flight.
func (a *admission) held() int { return len(a.slots) }

func (a *admission) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil && r.Body != http.NoBody {
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(a.bodyTimeout)) == nil {
			// Lifted once the body is read: the handler may then run
			// long (a vendor check), and the server's background read
			// must not cancel it.
			r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		}
	}
	if scrapeRoutes[r.URL.Path] || strings.HasPrefix(r.URL.Path, "/-/") || a.authenticated(r) {
		a.next.ServeHTTP(w, r)
		return
	}
	select {
	case a.slots <- struct{}{}:
		defer func() { <-a.slots }()
		a.next.ServeHTTP(w, r)
	default:
		w.Header().Set("Retry-After", "5")
		w.Header().Set("Connection", "close")
		http.Error(w, "too many requests in progress from clients that are not signed in; retry in a few seconds", http.StatusServiceUnavailable)
	}
}

// deadlineBody lifts the read deadline at the end of the body.
type deadlineBody struct {
	io.ReadCloser
	once sync.Once
	lift func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.lift)
	}
	return n, err
}
