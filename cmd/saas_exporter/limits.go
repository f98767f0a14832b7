package main

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Bounds on what an unauthenticated client can hold. Variables so that
// tests can shorten them.
var (
	// bodyTimeout bounds reading a request body on every route (a client
	// sending a byte every few seconds holds a connection no longer).
	bodyTimeout = 10 * time.Second
	// maxUnauthenticated caps requests in flight from clients that are
	// not signed in, on every route but what Prometheus and probes read.
	maxUnauthenticated = 256
)

// limits applies bodyTimeout to every request with a body and the
// maxUnauthenticated cap to the UI, API, flows, webhooks and invites.
// authenticated must be cheap (no bcrypt): it runs before admission.
func limits(next http.Handler, authenticated func(*http.Request) bool) http.Handler {
	slots := make(chan struct{}, maxUnauthenticated)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(bodyTimeout)) == nil {
				// Lifted once the body is read: the handler may then run
				// long (a vendor check), and the server's background read
				// must not cancel it.
				r.Body = &deadlineBody{ReadCloser: r.Body, lift: func() { _ = rc.SetReadDeadline(time.Time{}) }}
			}
		}
		if scrapeRoutes[r.URL.Path] || strings.HasPrefix(r.URL.Path, "/-/") || authenticated(r) {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "5")
			w.Header().Set("Connection", "close")
			http.Error(w, "too many requests in progress from clients that are not signed in; retry in a few seconds", http.StatusServiceUnavailable)
		}
	})
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
