package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
)

// Strict: one token has one spelling (no malleable trailing bits).
var b64 = base64.RawURLEncoding.Strict()

// keys are derived from the signing key, one per purpose, so a token made
// for one purpose never validates as another.
type keys struct {
	session, csrf, invite, cache []byte
	flow                         cipher.AEAD
	// oldInvite verify invite links signed before a key rotation.
	oldInvite [][]byte
}

func derive(master []byte, label string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("saas_exporter auth v1 " + label))
	return m.Sum(nil)
}

func deriveKeys(master []byte) keys {
	block, err := aes.NewCipher(derive(master, "flow"))
	if err != nil {
		panic(err) // 32-byte key: cannot fail
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return keys{
		session: derive(master, "session"),
		csrf:    derive(master, "csrf"),
		invite:  derive(master, "invite"),
		cache:   derive(master, "basic auth cache"),
		flow:    aead,
	}
}

func mac(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// sign returns base64url(payload) "." base64url(HMAC).
func sign(key, payload []byte) string {
	p := b64.EncodeToString(payload)
	return p + "." + b64.EncodeToString(mac(key, p))
}

// unsign returns the payload of a token made by sign with key.
func unsign(key []byte, tok string) ([]byte, bool) {
	p, sig, ok := strings.Cut(tok, ".")
	if !ok || len(tok) > 4096 {
		return nil, false
	}
	got, err := b64.DecodeString(sig)
	// The decoder skips newlines: only the canonical spelling is the token.
	if err != nil || b64.EncodeToString(got) != sig || !hmac.Equal(got, mac(key, p)) {
		return nil, false
	}
	payload, err := b64.DecodeString(p)
	return payload, err == nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b
}

// RandomToken returns n random bytes, base64url without padding.
func RandomToken(n int) string { return b64.EncodeToString(randomBytes(n)) }

// NewID returns 16 hex characters.
func NewID() string { return hex.EncodeToString(randomBytes(8)) }

// session is the payload of the session cookie.
type session struct {
	User    string `json:"u"`
	Expires int64  `json:"e"`
	// Hash binds the session to the admin's password hash, so changing
	// the password in the config ends existing sessions.
	Hash string `json:"h"`
	// Nonce makes every session (and so its CSRF token) unique.
	Nonce string `json:"n"`
}

func hashTag(bcryptHash string) string {
	sum := sha256.Sum256([]byte(bcryptHash))
	return b64.EncodeToString(sum[:8])
}

// NewSession returns a session token for user, valid for TTL.
func (m *Manager) NewSession(user string) string {
	b, _ := json.Marshal(session{User: user, Expires: m.c.Now().Add(TTL).Unix(), Hash: hashTag(m.c.Admins[user]), Nonce: b64.EncodeToString(randomBytes(12))})
	return sign(m.keys.session, b)
}

// CheckSession returns the user of a valid, unexpired session token.
// It does not ask the store whether the session was logged out (see User).
func (m *Manager) CheckSession(tok string) (string, bool) {
	sess, ok := m.open(tok)
	return sess.User, ok
}

func (m *Manager) open(tok string) (session, bool) {
	b, ok := unsign(m.keys.session, tok)
	if !ok {
		return session{}, false
	}
	var sess session
	if json.Unmarshal(b, &sess) != nil || sess.Nonce == "" {
		return session{}, false
	}
	hash, known := m.c.Admins[sess.User]
	if !known || sess.Hash != hashTag(hash) || !m.c.Now().Before(time.Unix(sess.Expires, 0)) {
		return session{}, false
	}
	return sess, true
}

// loggedOutKey is the single-use record that ends a session on every
// replica sharing the store.
func loggedOutKey(sess session) string { return "logout:" + sess.Nonce }

// CSRFToken derives a form token from what the form is bound to: the
// session, an invite token or the login cookie.
func (m *Manager) CSRFToken(kind, binding string) string {
	return b64.EncodeToString(mac(m.keys.csrf, kind, binding))
}

// CSRFValid checks a form's token against what the form is bound to.
func (m *Manager) CSRFValid(kind, binding, got string) bool {
	if binding == "" || got == "" {
		return false
	}
	return hmac.Equal([]byte(got), []byte(m.CSRFToken(kind, binding)))
}

// Seal encrypts and signs payload (AES-GCM) for a cookie called name: it
// is both signed and unreadable, so a PKCE verifier inside never leaves
// the server in clear.
func (m *Manager) Seal(name string, payload []byte) string {
	nonce := randomBytes(m.keys.flow.NonceSize())
	return b64.EncodeToString(m.keys.flow.Seal(nonce, nonce, payload, []byte(name)))
}

// Open returns the payload of a value made by Seal for the same name.
func (m *Manager) Open(name, v string) ([]byte, bool) {
	raw, err := b64.DecodeString(v)
	ns := m.keys.flow.NonceSize()
	if err != nil || len(raw) < ns || len(v) > 4096 {
		return nil, false
	}
	b, err := m.keys.flow.Open(nil, raw[:ns], raw[ns:], []byte(name))
	if err != nil {
		return nil, false
	}
	return b, true
}

// InviteToken is the invite id and its HMAC.
func (m *Manager) InviteToken(id string) string {
	return id + "." + b64.EncodeToString(mac(m.keys.invite, id))
}

// InviteID returns the id of a token with a valid signature (by the
// signing key or a previous one).
func (m *Manager) InviteID(tok string) (string, bool) {
	id, sig, ok := strings.Cut(tok, ".")
	if !ok || len(id) != 16 || len(sig) > 64 {
		return "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", false
	}
	got, err := b64.DecodeString(sig)
	// The decoder skips newlines: only the canonical spelling is the token.
	if err != nil || b64.EncodeToString(got) != sig {
		return "", false
	}
	for _, k := range append([][]byte{m.keys.invite}, m.keys.oldInvite...) {
		if hmac.Equal(got, mac(k, id)) {
			return id, true
		}
	}
	return "", false
}
