package store

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func mustKey(t testing.TB) string {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRing(t testing.TB, text string) *Keyring {
	t.Helper()
	kr, err := ParseKeyring(text)
	if err != nil {
		t.Fatalf("ParseKeyring: %v", err)
	}
	return kr
}

func TestKeyringRoundTrip(t *testing.T) {
	t.Parallel()
	kr := mustRing(t, mustKey(t))
	for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("secret"), 1000)} {
		sealed, err := kr.Seal(pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) > 16 && bytes.Contains(sealed, pt) { // short ones may occur by chance
			t.Fatal("sealed data contains the plaintext")
		}
		if sealed[0] != sealVersion || hex.EncodeToString(sealed[1:5]) != kr.KeyIDs()[0] {
			t.Fatalf("header = %x, want version %d and key id %s", sealed[:5], sealVersion, kr.KeyIDs()[0])
		}
		got, err := kr.Open(sealed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("Open = %q, want %q", got, pt)
		}
	}
	a, _ := kr.Seal([]byte("same"))
	b, _ := kr.Seal([]byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are identical: nonce reused")
	}
}

func TestKeyringWrongKey(t *testing.T) {
	t.Parallel()
	a := mustRing(t, mustKey(t))
	b := mustRing(t, mustKey(t))
	sealed, err := a.Seal([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Open(sealed)
	var uk *UnknownKeyError
	if !errors.As(err, &uk) {
		t.Fatalf("Open with wrong key: err = %v, want UnknownKeyError", err)
	}
	if uk.KeyID != a.KeyIDs()[0] {
		t.Errorf("error names key id %s, want %s", uk.KeyID, a.KeyIDs()[0])
	}
	for _, want := range []string{a.KeyIDs()[0], "not in the keyring", "secret_key_file", SecretKeyEnv} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestKeyringTampered(t *testing.T) {
	t.Parallel()
	kr := mustRing(t, mustKey(t))
	sealed, _ := kr.Seal([]byte("hello world"))
	for i := range sealed {
		if i >= 1 && i < 5 {
			continue // changing the key id gives UnknownKeyError, tested above
		}
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := kr.Open(bad); err == nil {
			t.Fatalf("Open accepted data with byte %d flipped", i)
		}
	}
	for _, short := range [][]byte{nil, {1}, sealed[:5], sealed[:20]} {
		if _, err := kr.Open(short); !errors.Is(err, ErrSealedCorrupt) {
			t.Errorf("Open(%d bytes) = %v, want ErrSealedCorrupt", len(short), err)
		}
	}
}

func TestKeyringRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := mustKey(t), mustKey(t)
	old := mustRing(t, oldKey)
	sealedOld, _ := old.Seal([]byte("old data"))

	rotated := mustRing(t, newKey+"\n"+oldKey)
	got, err := rotated.Open(sealedOld)
	if err != nil || string(got) != "old data" {
		t.Fatalf("rotated ring opening old data = %q, %v", got, err)
	}
	sealedNew, _ := rotated.Seal([]byte("new data"))
	if hex.EncodeToString(sealedNew[1:5]) != mustRing(t, newKey).KeyIDs()[0] {
		t.Fatal("new data is not sealed with the first key")
	}
	if _, err := old.Open(sealedNew); err == nil {
		t.Fatal("old ring opened data sealed with the new key")
	}
	if _, err := mustRing(t, newKey).Open(sealedNew); err != nil {
		t.Fatalf("new key alone cannot open new data: %v", err)
	}
}

func TestParseKeyringFormats(t *testing.T) {
	t.Parallel()
	raw := bytes.Repeat([]byte{0xfb}, 32) // 0xfb gives '+' '/' vs '-' '_' in base64
	want := mustRing(t, base64.StdEncoding.EncodeToString(raw)).KeyIDs()[0]
	for name, text := range map[string]string{
		"std":        base64.StdEncoding.EncodeToString(raw),
		"raw std":    base64.RawStdEncoding.EncodeToString(raw),
		"url":        base64.URLEncoding.EncodeToString(raw),
		"raw url":    base64.RawURLEncoding.EncodeToString(raw),
		"hex":        hex.EncodeToString(raw),
		"hex upper":  strings.ToUpper(hex.EncodeToString(raw)),
		"commented":  "# my key\n\n  " + hex.EncodeToString(raw) + "  # current\r\n",
		"duplicated": hex.EncodeToString(raw) + "," + base64.StdEncoding.EncodeToString(raw),
	} {
		kr, err := ParseKeyring(text)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if ids := kr.KeyIDs(); len(ids) != 1 || ids[0] != want {
			t.Errorf("%s: key ids %v, want [%s]", name, ids, want)
		}
	}

	k1, k2, k3 := mustKey(t), mustKey(t), mustKey(t)
	kr := mustRing(t, k1+", "+k2+"\n"+k3)
	ids := kr.KeyIDs()
	if len(ids) != 3 || ids[0] != mustRing(t, k1).KeyIDs()[0] || ids[2] != mustRing(t, k3).KeyIDs()[0] {
		t.Fatalf("key order = %v", ids)
	}
}

func TestParseKeyringErrors(t *testing.T) {
	t.Parallel()
	good := mustKey(t)
	short := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	for name, tc := range map[string]struct {
		text   string
		want   []string
		secret string // must not appear in the error
	}{
		"empty":         {"", []string{"no secret key found", "base64", "hex"}, ""},
		"only comments": {"# nothing\n\n", []string{"no secret key found"}, ""},
		"short key":     {good + "\n" + short, []string{"line 2", "16 bytes", "base64", "64 hex"}, short},
		"garbage":       {"# c\nnot a key at all!!", []string{"line 2", "base64", "hex"}, "not a key at all"},
		"comma":         {good + "," + "zz" + strings.Repeat("q", 60), []string{"line 1, key 2"}, strings.Repeat("q", 60)},
		"bad hex":       {strings.Repeat("g", 64), []string{"line 1", "hex"}, strings.Repeat("g", 64)},
	} {
		_, err := ParseKeyring(tc.text)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", name, err, w)
			}
		}
		if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
			t.Errorf("%s: error echoes the key text: %q", name, err)
		}
		if strings.Contains(err.Error(), good) {
			t.Errorf("%s: error echoes the good key", name)
		}
	}
}

func TestDerive(t *testing.T) {
	t.Parallel()
	k1, k2 := mustKey(t), mustKey(t)
	a := mustRing(t, k1+"\n"+k2)
	b := mustRing(t, k1)
	c := mustRing(t, k2+"\n"+k1)
	if len(a.Derive("cookie")) != 32 {
		t.Fatal("Derive length is not 32")
	}
	if !bytes.Equal(a.Derive("cookie"), b.Derive("cookie")) {
		t.Error("Derive is not deterministic for the same first key")
	}
	if bytes.Equal(a.Derive("cookie"), a.Derive("csrf")) {
		t.Error("different purposes give the same key")
	}
	if bytes.Equal(a.Derive("cookie"), c.Derive("cookie")) {
		t.Error("Derive does not follow the first key")
	}
	raw, _ := base64.StdEncoding.DecodeString(k1)
	if bytes.Contains(a.Derive("cookie"), raw) {
		t.Error("Derive returns the key itself")
	}
}

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	k := mustKey(t)
	b, err := base64.StdEncoding.DecodeString(k)
	if err != nil || len(b) != 32 {
		t.Fatalf("GenerateKey = %d bytes, %v", len(b), err)
	}
	if k == mustKey(t) {
		t.Fatal("two generated keys are equal")
	}
}

// logRecorder collects log output so tests can check what was (not) logged.
func logRecorder() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

func TestLoadKeyringGenerates(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	logger, logs := logRecorder()
	kr, err := LoadKeyring("", "", dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, DefaultKeyFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if st.Mode().Perm() != 0o600 {
			t.Errorf("key file mode = %o, want 600", st.Mode().Perm())
		}
		dst, _ := os.Stat(dir)
		if dst.Mode().Perm() != 0o700 {
			t.Errorf("data dir mode = %o, want 700", dst.Mode().Perm())
		}
	}
	if !strings.Contains(logs.String(), "generated") || !strings.Contains(logs.String(), path) {
		t.Errorf("log does not say a key was generated and where: %s", logs)
	}
	text, _ := os.ReadFile(path)
	if raw := mustRing(t, string(text)); raw.KeyIDs()[0] != kr.KeyIDs()[0] {
		t.Fatal("returned keyring differs from the file")
	}
	for _, line := range strings.Split(string(text), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") && strings.Contains(logs.String(), line) {
			t.Fatal("the key was logged")
		}
	}

	// Second run reads the same key and logs nothing about generating.
	logger2, logs2 := logRecorder()
	kr2, err := LoadKeyring("", "", dir, logger2)
	if err != nil {
		t.Fatal(err)
	}
	if kr2.KeyIDs()[0] != kr.KeyIDs()[0] {
		t.Fatal("second run got a different key")
	}
	if strings.Contains(logs2.String(), "generated") || strings.Contains(logs2.String(), "WARN") {
		t.Errorf("unexpected log on second run: %s", logs2)
	}
}

func TestLoadKeyringSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	envKey, fileKey := mustKey(t), mustKey(t)
	file := filepath.Join(dir, "key")
	if err := os.WriteFile(file, []byte(fileKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")

	kr, err := LoadKeyring(file, envKey, dataDir, nil)
	if err != nil || kr.KeyIDs()[0] != mustRing(t, envKey).KeyIDs()[0] {
		t.Fatalf("env should win: %v %v", kr, err)
	}
	kr, err = LoadKeyring(file, "", dataDir, nil)
	if err != nil || kr.KeyIDs()[0] != mustRing(t, fileKey).KeyIDs()[0] {
		t.Fatalf("file should be used: %v", err)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatal("a key was generated although one was given")
	}

	missing := filepath.Join(dir, "nope")
	_, err = LoadKeyring(missing, "", dataDir, nil)
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing secret_key_file: err = %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatal("a missing secret_key_file was created")
	}

	_, err = LoadKeyring("", "garbage-key", dataDir, nil)
	if err == nil || !strings.Contains(err.Error(), SecretKeyEnv) || strings.Contains(err.Error(), "garbage-key") {
		t.Fatalf("bad env key: err = %v", err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("# k\nshort\n"), 0o600)
	_, err = LoadKeyring(bad, "", dataDir, nil)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("bad key file: err = %v", err)
	}
}

func TestLoadKeyringWarnsOnOpenMode(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("file modes are not meaningful on windows")
	}
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(mustKey(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	logger, logs := logRecorder()
	if _, err := LoadKeyring(file, "", "", logger); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "WARN") || !strings.Contains(logs.String(), "chmod 600") {
		t.Fatalf("no warning about a world-readable key file: %s", logs)
	}
}
