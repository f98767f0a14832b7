package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
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

// newID returns 16 hex characters.
func newID() string { return hex.EncodeToString(randomBytes(8)) }

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

func (s *Server) newSession(user string) string {
	b, _ := json.Marshal(session{User: user, Expires: s.now().Add(sessionTTL).Unix(), Hash: hashTag(s.o.Admins[user]), Nonce: b64.EncodeToString(randomBytes(12))})
	return sign(s.keys.session, b)
}

// checkSession returns the user of a valid, unexpired session token.
// It does not ask the store whether the session was logged out (see
// sessionUser).
func (s *Server) checkSession(tok string) (string, bool) {
	sess, ok := s.openSession(tok)
	return sess.User, ok
}

func (s *Server) openSession(tok string) (session, bool) {
	b, ok := unsign(s.keys.session, tok)
	if !ok {
		return session{}, false
	}
	var sess session
	if json.Unmarshal(b, &sess) != nil || sess.Nonce == "" {
		return session{}, false
	}
	hash, known := s.o.Admins[sess.User]
	if !known || sess.Hash != hashTag(hash) || !s.now().Before(time.Unix(sess.Expires, 0)) {
		return session{}, false
	}
	return sess, true
}

// loggedOutKey is the single-use record that ends a session on every
// replica sharing the store.
func loggedOutKey(sess session) string { return "logout:" + sess.Nonce }

// csrfToken derives a form token from what the form is bound to: the
// session, an invite token or the login cookie.
func (s *Server) csrfToken(kind, binding string) string {
	return b64.EncodeToString(mac(s.keys.csrf, kind, binding))
}

func (s *Server) csrfValid(kind, binding, got string) bool {
	if binding == "" || got == "" {
		return false
	}
	return hmac.Equal([]byte(got), []byte(s.csrfToken(kind, binding)))
}

// flowState is the content of the saas_flow cookie: which flow this browser
// started. It is sealed (AES-GCM), so it is both signed and unreadable: the
// PKCE verifier never leaves the server in clear.
type flowState struct {
	Vendor    string `json:"v"`
	Method    string `json:"m"`
	State     string `json:"s"`
	Verifier  string `json:"pk"`
	Name      string `json:"n,omitempty"`
	Reconnect string `json:"r,omitempty"`
	Invite    string `json:"i,omitempty"`
	Expires   int64  `json:"e"`
}

func (s *Server) sealFlow(f flowState) string {
	b, _ := json.Marshal(f)
	nonce := randomBytes(s.keys.flow.NonceSize())
	return b64.EncodeToString(s.keys.flow.Seal(nonce, nonce, b, []byte(flowCookie)))
}

var errFlowForged = errors.New("forged")

func (s *Server) openFlow(v string) (flowState, error) {
	var f flowState
	raw, err := b64.DecodeString(v)
	ns := s.keys.flow.NonceSize()
	if err != nil || len(raw) < ns || len(v) > 4096 {
		return f, errFlowForged
	}
	b, err := s.keys.flow.Open(nil, raw[:ns], raw[ns:], []byte(flowCookie))
	if err != nil || json.Unmarshal(b, &f) != nil || f.State == "" {
		return f, errFlowForged
	}
	return f, nil
}

// inviteToken is the invite id and its HMAC.
func (s *Server) inviteToken(id string) string {
	return id + "." + b64.EncodeToString(mac(s.keys.invite, id))
}

// inviteID returns the id of a token with a valid signature.
func (s *Server) inviteID(tok string) (string, bool) {
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
	for _, k := range append([][]byte{s.keys.invite}, s.keys.oldInvite...) {
		if hmac.Equal(got, mac(k, id)) {
			return id, true
		}
	}
	return "", false
}
