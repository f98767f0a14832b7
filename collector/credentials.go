package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"sync"
	"time"

	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/store"
)

// How a renewed credential reaches the store. The vendor has accepted the
// renewal, so the old refresh token may be spent: the new one must land.
const (
	// credSaveTry bounds one write (credentials.saveTry); a hung store
	// never pins a collection.
	credSaveTry = 10 * time.Second
	// credRetryFor bounds the retries after a failed write; the next
	// collection of the connection starts them again.
	credRetryFor = 2 * time.Minute
	// credCloseWait bounds how long Engine.Close waits for unsaved
	// credentials (shutdown must finish within a SIGTERM grace period).
	credCloseWait = 20 * time.Second
	credBackoff   = 500 * time.Millisecond
	credBackoffTo = 5 * time.Second
)

// errReplaced: the store no longer holds the credential that was renewed.
var errReplaced = errors.New("the connection was reconnected or changed while its credential was being renewed; the stored credential stays")

// credentials holds renewed credentials the store has not taken yet. Until
// it does, every collection in this process uses them (overlay), so the
// spent credential is never sent again from here.
type credentials struct {
	st      store.Store
	log     *slog.Logger
	saveTry time.Duration // credSaveTry; tests shorten it

	mu       sync.Mutex
	pending  map[string]*pendingCred
	wg       sync.WaitGroup
	closing  chan struct{}
	closed   bool
	deadline time.Time // set by close: retries stop then
}

type pendingCred struct {
	from     map[string]string // the stored secret the renewal replaces
	cred     provider.Credential
	retrying bool
}

func newCredentials(st store.Store, log *slog.Logger) *credentials {
	return &credentials{st: st, log: log, saveTry: credSaveTry, pending: map[string]*pendingCred{}, closing: make(chan struct{})}
}

// overlay returns c with the credential pending for it, if the store still
// holds the one that was renewed. A pending credential the store holds a
// different one for (reconnected) is dropped.
func (k *credentials) overlay(c store.Connection) store.Connection {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.pending[c.ID]
	switch {
	case p == nil:
		return c
	case maps.Equal(c.Secret, p.cred.Secret):
		if !p.retrying {
			delete(k.pending, c.ID) // landed
		}
		return c
	case !maps.Equal(c.Secret, p.from):
		if !p.retrying {
			delete(k.pending, c.ID)
			k.log.Info("dropping a renewed credential not yet saved: the connection was reconnected meanwhile", "connection", c.Name, "id", c.ID)
		}
		return c
	}
	c = c.Clone()
	applyCredential(&c, &p.cred)
	k.startRetry(c.ID, p) // after a retry gave up, the next collection tries again
	return c
}

// save writes cred over the credential from, if the store still holds
// from. A write the store refuses for now is kept and retried in the
// background; a connection reconnected or deleted meanwhile keeps what it
// has (errReplaced, store.ErrNotFound).
func (k *credentials) save(id string, from map[string]string, cred provider.Credential) error {
	k.mu.Lock()
	if p := k.pending[id]; p != nil && maps.Equal(p.cred.Secret, from) {
		from = p.from // the store still holds what came before the pending one
	}
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), k.saveTry)
	err := k.write(ctx, id, from, cred)
	cancel()
	switch {
	case err == nil:
		k.landed(id, cred.Secret)
		return nil
	case permanent(err):
		k.mu.Lock()
		delete(k.pending, id)
		k.mu.Unlock()
		return err
	}
	k.keep(id, from, cred, err)
	return nil
}

// write is the conditional write: cred replaces from, never anything else.
func (k *credentials) write(ctx context.Context, id string, from map[string]string, cred provider.Credential) error {
	err := k.st.UpdateLocked(ctx, id, func(c store.Connection) (*store.Connection, error) {
		want := c.Clone()
		applyCredential(&want, &cred)
		if maps.Equal(c.Secret, want.Secret) && c.Expiry.Equal(want.Expiry) && maps.Equal(c.Settings, want.Settings) {
			return nil, nil // already stored (a write that failed to answer)
		}
		if !maps.Equal(c.Secret, from) {
			return nil, errReplaced
		}
		return &want, nil
	})
	if errors.Is(err, store.ErrChanged) {
		return errReplaced
	}
	return err
}

// permanent: retrying cannot help (replaced, deleted, shut down).
func permanent(err error) bool {
	return errors.Is(err, errReplaced) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrClosed) || errors.Is(err, store.ErrNameTaken)
}

// keep remembers cred (renewed from the stored secret from) after the
// store failed to take it, and retries in the background.
func (k *credentials) keep(id string, from map[string]string, cred provider.Credential, cause error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.pending[id]
	if p == nil {
		p = &pendingCred{from: maps.Clone(from)}
		k.pending[id] = p
	}
	p.cred = cloneCredential(cred)
	k.log.Warn("the store did not take a renewed credential; using it from memory and saving it again in the background", "id", id, "err", cause)
	k.startRetry(id, p)
}

// landed clears what is pending for id once the store holds secret.
func (k *credentials) landed(id string, secret map[string]string) {
	k.mu.Lock()
	if p := k.pending[id]; p != nil && maps.Equal(p.cred.Secret, secret) {
		delete(k.pending, id)
	}
	k.mu.Unlock()
}

// startRetry runs retry for id unless one runs or the engine closed.
// Called with k.mu held.
func (k *credentials) startRetry(id string, p *pendingCred) {
	if p.retrying || k.closed {
		return
	}
	p.retrying = true
	k.wg.Add(1)
	go k.retry(id, p)
}

func (k *credentials) retry(id string, p *pendingCred) {
	defer k.wg.Done()
	defer func() {
		if r := recover(); r != nil { // a store bug must not end the process
			k.mu.Lock()
			p.retrying = false
			k.mu.Unlock()
			k.log.Error("saving a renewed credential panicked", "id", id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	giveUp := time.Now().Add(credRetryFor)
	wait := credBackoff
	for {
		k.mu.Lock()
		if k.pending[id] != p {
			k.mu.Unlock()
			return
		}
		from, cred := p.from, cloneCredential(p.cred)
		if !k.deadline.IsZero() && k.deadline.Before(giveUp) {
			giveUp = k.deadline
		}
		k.mu.Unlock()

		end := time.Now().Add(k.saveTry)
		if giveUp.Before(end) {
			end = giveUp
		}
		ctx, cancel := context.WithDeadline(context.Background(), end)
		err := k.write(ctx, id, from, cred)
		cancel()
		k.mu.Lock()
		switch {
		case err == nil && maps.Equal(p.cred.Secret, cred.Secret):
			delete(k.pending, id)
			k.mu.Unlock()
			k.log.Info("renewed credential saved", "id", id)
			return
		case err == nil:
			// A newer renewal was kept meanwhile: save that one too.
			p.from = cred.Secret
			k.mu.Unlock()
			continue
		case permanent(err):
			delete(k.pending, id)
			k.mu.Unlock()
			k.log.Info("dropping a renewed credential not yet saved", "id", id, "reason", err)
			return
		case !time.Now().Before(giveUp):
			p.retrying = false
			closing := k.closed
			k.mu.Unlock()
			if closing {
				k.log.Error("shutting down before the store took a renewed credential: it is lost. If the vendor rotated the refresh token, the next refresh fails with invalid_grant and the connection must be reconnected", "id", id, "err", err)
			} else {
				k.log.Error("the store has not taken a renewed credential; it stays in memory and the next collection of the connection tries again", "id", id, "for", credRetryFor, "err", err)
			}
			return
		}
		closing := k.closed
		k.mu.Unlock()
		if closing {
			wait = min(wait, credBackoff) // shutting down: try again soon
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-k.closingOnce(closing):
			t.Stop()
		}
		wait = min(2*wait, credBackoffTo)
	}
}

// closingOnce is the channel that ends a backoff when shutdown starts; nil
// (never ready) once it has started, so backoffs still pace the retries.
func (k *credentials) closingOnce(closing bool) <-chan struct{} {
	if closing {
		return nil
	}
	return k.closing
}

// close lets pending credentials be saved for at most credCloseWait.
func (k *credentials) close() {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return
	}
	k.closed = true
	k.deadline = time.Now().Add(credCloseWait)
	close(k.closing)
	k.mu.Unlock()
	k.wg.Wait()
}

func cloneCredential(c provider.Credential) provider.Credential {
	c.Secret = maps.Clone(c.Secret)
	c.Settings = maps.Clone(c.Settings)
	c.Scopes = append([]string(nil), c.Scopes...)
	c.MissingScopes = append([]string(nil), c.MissingScopes...)
	return c
}

// credentialOf is the part of a stored connection a renewal changes.
func credentialOf(c store.Connection) provider.Credential {
	return cloneCredential(provider.Credential{Secret: c.Secret, Expiry: c.Expiry, Settings: c.Settings, Scopes: c.Scopes, MissingScopes: c.MissingScopes})
}
