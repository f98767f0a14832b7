package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// openedSecrets remembers each connection's last opened secret with the
// sealed value it came from, so listing the store again opens only the
// secrets that changed: a scrape or an /sd poll of an unchanged store
// opens none. It holds nothing the exporter does not hold anyway (the
// engine keeps the last list, secrets included).
type openedSecrets struct {
	mu     sync.Mutex
	m      map[string]openedSecret
	opened atomic.Int64 // secrets actually opened (tests)
}

type openedSecret struct {
	sealed []byte
	secret map[string]string
}

// ErrDamaged is wrapped by the error of a connection whose stored record
// or secret cannot be read (Get returns what could be read beside it).
// Reconnecting replaces such a record.
var ErrDamaged = errors.New("damaged")

// open returns connection id's secret from sealed.
func (o *openedSecrets) open(kr *Keyring, id string, sealed []byte) (map[string]string, error) {
	o.mu.Lock()
	e, ok := o.m[id]
	o.mu.Unlock()
	if ok && bytes.Equal(e.sealed, sealed) {
		return cloneMap(e.secret), nil
	}
	o.opened.Add(1)
	pt, err := kr.Open(sealed)
	if err != nil {
		return nil, fmt.Errorf("store: opening the secret of connection %q: %w (%w)", id, err, ErrDamaged)
	}
	var secret map[string]string
	err = json.Unmarshal(pt, &secret)
	clear(pt)
	if err != nil {
		return nil, fmt.Errorf("store: the secret of connection %q is %w", id, ErrDamaged)
	}
	o.mu.Lock()
	if o.m == nil {
		o.m = map[string]openedSecret{}
	}
	o.m[id] = openedSecret{sealed: bytes.Clone(sealed), secret: cloneMap(secret)}
	o.mu.Unlock()
	return secret, nil
}

// listed ends a List of out, every stored connection: it forgets the
// secrets of connections no longer stored, and sorts out by name.
func (o *openedSecrets) listed(out []Connection) []Connection {
	ids := make(map[string]bool, len(out))
	for _, c := range out {
		ids[c.ID] = true
	}
	o.keepOnly(ids)
	sortConnections(out)
	return out
}

// keepOnly forgets every connection not in ids (deleted ones).
func (o *openedSecrets) keepOnly(ids map[string]bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id := range o.m {
		if !ids[id] {
			delete(o.m, id)
		}
	}
}

func (o *openedSecrets) forget(id string) {
	o.mu.Lock()
	delete(o.m, id)
	o.mu.Unlock()
}
