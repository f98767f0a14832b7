package main

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/saas-exporter/saas_exporter/config"
)

// generatedAdminFile keeps the hash of the password generated on first
// start when the config names no admin.
const generatedAdminFile = "admin.bcrypt"

// generatedLoginHint is shown under the sign-in form while the admin
// password is a generated one.
const generatedLoginHint = "No admins are configured: the password of user “admin” was generated at the exporter's first start " +
	"and written once to its log (look for “generated a password”). Lost it? Delete admin.bcrypt in the data_dir and restart " +
	"to generate a new one, or configure admins."

// generatedAdmin is a password generated at this start, not yet saved.
type generatedAdmin struct {
	path, password string
	hash           []byte
}

// ensureAdmin returns the configured admins, or an "admin" user whose
// password is generated once and stored only as a hash. A newly generated
// password is returned as gen: save it only once the exporter listens, so
// a start that fails (a busy port) neither keeps a hash nobody saw the
// password of nor shows a password that is then replaced.
func ensureAdmin(cfg *config.Config, log *slog.Logger) (admins map[string]string, gen *generatedAdmin, err error) {
	if len(cfg.Admins) > 0 {
		return cfg.Admins, nil, nil
	}
	path := filepath.Join(cfg.DataDir, generatedAdminFile)
	if b, err := os.ReadFile(path); err == nil {
		hash := strings.TrimSpace(string(b))
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, nil, fmt.Errorf("%s is not a bcrypt hash: delete it to generate a new admin password, or configure admins", path)
		}
		log.Info("no admins configured: using the generated admin password (its hash is in "+path+"; delete that file to generate a new one)", "user", "admin")
		return map[string]string{"admin": hash}, nil, nil
	} else if !os.IsNotExist(err) {
		return nil, nil, err
	}
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		return nil, nil, err
	}
	password := base64.RawURLEncoding.EncodeToString(raw)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return nil, nil, err
	}
	return map[string]string{"admin": string(hash)}, &generatedAdmin{path: path, password: password, hash: hash}, nil
}

// save keeps the hash, then shows the password: once, on purpose, as it
// is the only way to learn it.
func (g *generatedAdmin) save(log *slog.Logger) error {
	if err := os.WriteFile(g.path, append(g.hash, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving the generated admin password hash: %w", err)
	}
	log.Warn("no admins configured: generated a password for user \"admin\"; it is shown only now, store it or configure admins", "user", "admin", "password", g.password)
	return nil
}
