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

// ensureAdmin returns the configured admins, or an "admin" user whose
// password is generated once, logged once, and stored only as a hash.
func ensureAdmin(cfg *config.Config, log *slog.Logger) (map[string]string, error) {
	if len(cfg.Admins) > 0 {
		return cfg.Admins, nil
	}
	path := filepath.Join(cfg.DataDir, generatedAdminFile)
	if b, err := os.ReadFile(path); err == nil {
		hash := strings.TrimSpace(string(b))
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s is not a bcrypt hash: delete it to generate a new admin password, or configure admins", path)
		}
		log.Info("no admins configured: using the generated admin password (its hash is in "+path+"; delete that file to generate a new one)", "user", "admin")
		return map[string]string{"admin": hash}, nil
	} else if !os.IsNotExist(err) {
		return nil, err
	}
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	password := base64.RawURLEncoding.EncodeToString(raw)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, append(hash, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("saving the generated admin password hash: %w", err)
	}
	// Shown once, on purpose: it is the only way to learn it.
	log.Warn("no admins configured: generated a password for user \"admin\"; it is shown only now, store it or configure admins", "user", "admin", "password", password)
	return map[string]string{"admin": string(hash)}, nil
}
