package provider

import (
	"errors"
	"fmt"
	"time"
)

// ErrForbidden is returned by Webhook for an unauthenticated callback.
var ErrForbidden = errors.New("forbidden")

// InputError is bad input a person can fix: an empty field, a key the
// vendor rejected, a denied consent. Its message is shown as it is.
type InputError struct {
	Field   string // form field it concerns, if any
	Message string
}

func (e *InputError) Error() string { return e.Message }

// Inputf builds an *InputError.
func Inputf(field, format string, args ...any) error {
	return &InputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// StateError tells the engine which connection state an error means.
type StateError struct {
	State string    // store.StateRevoked, StateExpired, StateRateLimited
	Until time.Time // rate_limited: no call before this
	Err   error
}

func (e *StateError) Error() string { return e.Err.Error() }
func (e *StateError) Unwrap() error { return e.Err }

// Revoked marks err as "the vendor no longer accepts this credential".
func Revoked(err error) error { return &StateError{State: "revoked", Err: err} }

// Expired marks err as "the credential ran out and could not be renewed".
func Expired(err error) error { return &StateError{State: "expired", Err: err} }

// RateLimited marks err as "the vendor asked us to wait until t".
func RateLimited(until time.Time, err error) error {
	return &StateError{State: "rate_limited", Until: until, Err: err}
}

// HTTPError is a vendor's non-2xx answer, with the vendor's own reason.
type HTTPError struct {
	Vendor  string
	Method  string
	Path    string // path only: no query, no credentials
	Status  int
	Code    string // vendor error code, e.g. Twilio's 20003
	Message string // vendor's message
}

func (e *HTTPError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "no reason given"
	}
	if e.Code != "" {
		msg = fmt.Sprintf("%s (code %s)", msg, e.Code)
	}
	return fmt.Sprintf("%s %s %s: HTTP %d: %s", e.Vendor, e.Method, e.Path, e.Status, msg)
}

// StatusOf returns the HTTP status of the first *HTTPError in err's chain, or 0.
func StatusOf(err error) int {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

// Errors splits an error made by errors.Join (as Scrape.Sections returns)
// into its parts; nil gives none.
func Errors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
