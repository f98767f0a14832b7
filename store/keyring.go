package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

const (
	keySize       = 32
	keyIDSize     = 4
	sealVersion   = 1
	sealHeaderLen = 1 + keyIDSize
	// DefaultKeyFile is the key file name inside data_dir.
	DefaultKeyFile = "secret.key"
	// SecretKeyEnv names the environment variable that may hold the keyring.
	SecretKeyEnv = "SAAS_EXPORTER_SECRET_KEY"
)

// keyFormatHint tells a person what a valid key looks like.
const keyFormatHint = "expected one 32-byte key per line (or comma-separated), as base64 (44 characters, e.g. from `openssl rand -base64 32`) or 64 hex characters"

// Keyring seals and opens secrets with AES-256-GCM. The first key seals;
// every key opens, so a key can be rotated by putting the new one first.
type Keyring struct {
	keys []ringKey
}

type ringKey struct {
	id   [keyIDSize]byte
	raw  []byte
	aead cipher.AEAD
}

// UnknownKeyError means sealed data names a key the keyring does not hold:
// the process was started with the wrong key.
type UnknownKeyError struct {
	KeyID string
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("sealed with key id %s which is not in the keyring: set secret_key_file or %s to the key(s) this store was written with", e.KeyID, SecretKeyEnv)
}

// ErrSealedCorrupt means sealed data did not authenticate under its key.
var ErrSealedCorrupt = errors.New("sealed data is corrupt or was tampered with (authentication failed)")

// ParseKeyring reads keys, one per line or comma-separated; blank lines and
// '#' comments are ignored. The first key is the newest and seals.
func ParseKeyring(text string) (*Keyring, error) {
	kr := &Keyring{}
	seen := map[[keyIDSize]byte][]byte{}
	for i, line := range strings.Split(text, "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		fields := strings.Split(line, ",")
		for n, f := range fields {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			where := fmt.Sprintf("line %d", i+1)
			if len(fields) > 1 {
				where = fmt.Sprintf("line %d, key %d", i+1, n+1)
			}
			raw, err := decodeKey(f)
			if err != nil {
				return nil, fmt.Errorf("secret key %s: %v; %s", where, err, keyFormatHint)
			}
			k, err := newRingKey(raw)
			if err != nil {
				return nil, err
			}
			if prev, ok := seen[k.id]; ok {
				if bytes.Equal(prev, raw) {
					continue // the same key listed twice is harmless
				}
				return nil, fmt.Errorf("secret key %s: two different keys share key id %x; generate a new key", where, k.id)
			}
			seen[k.id] = raw
			kr.keys = append(kr.keys, k)
		}
	}
	if len(kr.keys) == 0 {
		return nil, fmt.Errorf("no secret key found: %s", keyFormatHint)
	}
	return kr, nil
}

// decodeKey never puts the key text into its error.
func decodeKey(s string) ([]byte, error) {
	if len(s) == 2*keySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(b) != keySize {
			return nil, fmt.Errorf("key decodes to %d bytes, not %d", len(b), keySize)
		}
		return b, nil
	}
	return nil, fmt.Errorf("key (%d characters) is neither base64 nor 64 hex characters", len(s))
}

func newRingKey(raw []byte) (ringKey, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return ringKey{}, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return ringKey{}, fmt.Errorf("secret key: %w", err)
	}
	sum := sha256.Sum256(raw)
	k := ringKey{raw: raw, aead: aead}
	copy(k.id[:], sum[:keyIDSize])
	return k, nil
}

// KeyIDs returns the hex ids of the keys, sealing key first. Ids are safe
// to log; they do not reveal the keys.
func (kr *Keyring) KeyIDs() []string {
	out := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		out[i] = hex.EncodeToString(k.id[:])
	}
	return out
}

// Seal encrypts plaintext with the first key. The result is
// version(1) | key id(4) | nonce(12) | ciphertext+tag; the header is
// authenticated too.
func (kr *Keyring) Seal(plaintext []byte) ([]byte, error) {
	if kr == nil || len(kr.keys) == 0 {
		return nil, errors.New("store: sealing with an empty keyring (use ParseKeyring or LoadKeyring)")
	}
	k := kr.keys[0]
	ns := k.aead.NonceSize()
	out := make([]byte, sealHeaderLen+ns, sealHeaderLen+ns+len(plaintext)+k.aead.Overhead())
	out[0] = sealVersion
	copy(out[1:sealHeaderLen], k.id[:])
	if _, err := io.ReadFull(rand.Reader, out[sealHeaderLen:]); err != nil {
		return nil, fmt.Errorf("generating nonce: %w", err)
	}
	return k.aead.Seal(out, out[sealHeaderLen:], plaintext, out[:sealHeaderLen]), nil
}

// Open decrypts data produced by Seal with any key of the ring.
func (kr *Keyring) Open(sealed []byte) ([]byte, error) {
	if len(sealed) < sealHeaderLen {
		return nil, ErrSealedCorrupt
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("sealed data has format version %d; this build reads version %d (was the store written by a newer saas_exporter?)", sealed[0], sealVersion)
	}
	for _, k := range kr.keys {
		if !bytes.Equal(k.id[:], sealed[1:sealHeaderLen]) {
			continue
		}
		ns := k.aead.NonceSize()
		if len(sealed) < sealHeaderLen+ns+k.aead.Overhead() {
			return nil, ErrSealedCorrupt
		}
		nonce := sealed[sealHeaderLen : sealHeaderLen+ns]
		pt, err := k.aead.Open(nil, nonce, sealed[sealHeaderLen+ns:], sealed[:sealHeaderLen])
		if err != nil {
			return nil, ErrSealedCorrupt
		}
		return pt, nil
	}
	return nil, &UnknownKeyError{KeyID: hex.EncodeToString(sealed[1:sealHeaderLen])}
}

// Derive returns a 32-byte key for purpose (e.g. cookie signing), derived
// with HKDF-SHA256 from the sealing key. Different purposes get unrelated
// keys; rotating the sealing key changes every derived key.
func (kr *Keyring) Derive(purpose string) []byte {
	b, err := hkdf.Key(sha256.New, kr.keys[0].raw, nil, purpose, keySize)
	if err != nil {
		// Only possible for lengths HKDF-SHA256 cannot produce; 32 is fine.
		panic("store: hkdf: " + err.Error())
	}
	return b
}

// DeriveAll returns Derive's key for purpose from every key of the ring,
// the first key's first: sign with the first, accept any, so rotating the
// sealing key does not cut off what the old one signed (invite links).
func (kr *Keyring) DeriveAll(purpose string) [][]byte {
	out := make([][]byte, 0, len(kr.keys))
	for _, k := range kr.keys {
		b, err := hkdf.Key(sha256.New, k.raw, nil, purpose, keySize)
		if err != nil {
			panic("store: hkdf: " + err.Error())
		}
		out = append(out, b)
	}
	return out
}

// GenerateKey returns a new random key as standard base64.
func GenerateKey() (string, error) {
	b := make([]byte, keySize)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", fmt.Errorf("generating secret key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// LoadKeyring finds the keyring: envValue (the content of
// SAAS_EXPORTER_SECRET_KEY) if set, else file if set (it must exist), else
// dataDir/secret.key, which is generated with mode 0600 on first run.
func LoadKeyring(file, envValue, dataDir string, logger *slog.Logger) (*Keyring, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if strings.TrimSpace(envValue) != "" {
		kr, err := ParseKeyring(envValue)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", SecretKeyEnv, err)
		}
		return kr, nil
	}
	if file != "" {
		kr, err := readKeyFile(file, logger)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("secret_key_file %s does not exist: create it with a key (e.g. `openssl rand -base64 32 > %s && chmod 600 %s`) or remove secret_key_file to use a generated key in data_dir", file, file, file)
		}
		if err != nil {
			return nil, fmt.Errorf("secret_key_file: %w", err)
		}
		return kr, nil
	}
	if dataDir == "" {
		return nil, errors.New("no secret key: set data_dir (a key is generated there), secret_key_file or " + SecretKeyEnv)
	}
	path := filepath.Join(dataDir, DefaultKeyFile)
	kr, err := readKeyFile(path, logger)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return kr, err
	}
	if err := generateKeyFile(path); err != nil {
		return nil, err
	}
	logger.Info("generated a new secret key; back it up, stored credentials cannot be read without it", "file", path)
	return readKeyFile(path, logger)
}

func readKeyFile(path string, logger *slog.Logger) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		logger.Warn("secret key file is readable by other users; run chmod 600 on it", "file", path, "mode", fmt.Sprintf("%04o", st.Mode().Perm()))
	}
	// A key file is tiny; a limit keeps a wrong path (a device, a huge file) harmless.
	text, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading secret key file %s: %w", path, err)
	}
	kr, err := ParseKeyring(string(text))
	if err != nil {
		return nil, fmt.Errorf("secret key file %s: %w", path, err)
	}
	return kr, nil
}

func generateKeyFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating data_dir for the secret key: %w", err)
	}
	key, err := GenerateKey()
	if err != nil {
		return err
	}
	// O_EXCL: never overwrite a key that appeared meanwhile.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating secret key file: %w", err)
	}
	_, err = f.WriteString("# saas_exporter secret key: newest first; keep older keys below to read old data.\n" + key + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("writing secret key file %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir makes a new file's directory entry durable; best effort, as some
// platforms cannot fsync a directory.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
