// Package config loads, expands and validates the YAML configuration.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file.
type Config struct {
	ExternalURL   string            `yaml:"external_url"`
	DataDir       string            `yaml:"data_dir"`
	SecretKeyFile string            `yaml:"secret_key_file"`
	Admins        map[string]string `yaml:"admins"`
	Scrape        Scrape            `yaml:"scrape"`
	Invites       Invites           `yaml:"invites"`
	Store         Store             `yaml:"store"`
	Web           Web               `yaml:"web"`
	// Vendors is decoded by each provider (Decode), so that a vendor's keys
	// live in its own package.
	Vendors map[string]yaml.Node `yaml:"vendors"`

	// BaseDir is the config file's directory; relative paths resolve against it.
	BaseDir string `yaml:"-"`
}

// Scrape controls collection.
type Scrape struct {
	Timeout           time.Duration `yaml:"timeout"`
	MinInterval       time.Duration `yaml:"min_interval"`
	Concurrency       int           `yaml:"concurrency"`
	VendorConcurrency int           `yaml:"vendor_concurrency"`
}

// Web controls how the exporter sees its HTTP clients.
type Web struct {
	// TrustedProxies lists the reverse proxies (addresses or CIDR
	// ranges) whose X-Forwarded-For names the client; from anyone else
	// it is ignored, since a client could set it to dodge the sign-in throttle.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Proxies is TrustedProxies parsed.
	Proxies []netip.Prefix `yaml:"-"`
}

// Invites controls invite links.
type Invites struct {
	DefaultTTL time.Duration `yaml:"default_ttl"`
}

// Store selects the backend; the embedded bbolt store is the default.
type Store struct {
	Postgres *Postgres `yaml:"postgres"`
}

// Postgres is the HA backend.
type Postgres struct {
	DSN     string `yaml:"dsn"`
	DSNFile string `yaml:"dsn_file"`
	// CallTimeout bounds each store call; 0: the store's default (3s).
	CallTimeout time.Duration `yaml:"call_timeout"`
}

// unsetDuration marks a duration key the file did not set.
const unsetDuration = time.Duration(math.MinInt64)

// Defaults.
const (
	DefaultExternalURL = "http://localhost:9888"
	DefaultDataDir     = "./data"
	// DefaultConcurrency is scrape.concurrency's default; the engine's
	// (collector.DefaultConcurrency, which says why) is the same.
	DefaultConcurrency = 256
)

// Load reads, expands and validates a config file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.BaseDir = filepath.Dir(path)
	if !filepath.IsAbs(c.DataDir) {
		c.DataDir = filepath.Join(c.BaseDir, c.DataDir)
	}
	if c.SecretKeyFile != "" && !filepath.IsAbs(c.SecretKeyFile) {
		c.SecretKeyFile = filepath.Join(c.BaseDir, c.SecretKeyFile)
	}
	if c.Store.Postgres != nil {
		if f := c.Store.Postgres.DSNFile; f != "" && !filepath.IsAbs(f) {
			c.Store.Postgres.DSNFile = filepath.Join(c.BaseDir, f)
		}
		dsn, err := ReadSecret(c.Store.Postgres.DSN, c.Store.Postgres.DSNFile, "store.postgres.dsn")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		c.Store.Postgres.DSN = dsn
	}
	return c, nil
}

// Parse decodes and validates config text.
func Parse(b []byte) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	// An explicit min_interval of 0 means "never reuse"; only an absent
	// key gets the default.
	c := &Config{Scrape: Scrape{MinInterval: unsetDuration}}
	if doc.Kind != 0 {
		if err := Decode(&doc, c); err != nil {
			return nil, err
		}
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) applyDefaults() {
	if c.ExternalURL == "" {
		c.ExternalURL = DefaultExternalURL
	}
	c.ExternalURL = strings.TrimRight(c.ExternalURL, "/")
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.Scrape.Timeout == 0 {
		c.Scrape.Timeout = 8 * time.Second
	}
	if c.Scrape.MinInterval == unsetDuration {
		c.Scrape.MinInterval = 30 * time.Second
	}
	if c.Scrape.Concurrency == 0 {
		c.Scrape.Concurrency = DefaultConcurrency
	}
	// vendor_concurrency 0 stays 0: each vendor's documented bound.
	if c.Invites.DefaultTTL == 0 {
		c.Invites.DefaultTTL = 72 * time.Hour
	}
}

func (c *Config) validate() error {
	var errs []error
	u, err := url.Parse(c.ExternalURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("external_url: must be an absolute http(s) URL such as http://localhost:9888, got %q", c.ExternalURL))
	} else if u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("external_url: must not have a query or fragment, got %q", c.ExternalURL))
	} else if u.Path != "" {
		// Routes and links assume the root path; a proxy must not add a prefix.
		errs = append(errs, fmt.Errorf("external_url: must not have a path (serve the exporter at the root of its host), got %q", c.ExternalURL))
	}
	if c.Scrape.Timeout < 0 {
		errs = append(errs, fmt.Errorf("scrape.timeout: must be > 0, got %q", c.Scrape.Timeout.String()))
	}
	if c.Scrape.MinInterval < 0 {
		errs = append(errs, fmt.Errorf("scrape.min_interval: must be >= 0, got %q", c.Scrape.MinInterval.String()))
	}
	if c.Scrape.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("scrape.concurrency: must be > 0, got %d", c.Scrape.Concurrency))
	}
	if c.Scrape.VendorConcurrency < 0 {
		errs = append(errs, fmt.Errorf("scrape.vendor_concurrency: must be > 0, got %d", c.Scrape.VendorConcurrency))
	}
	if c.Invites.DefaultTTL < 0 {
		errs = append(errs, fmt.Errorf("invites.default_ttl: must be > 0, got %q", c.Invites.DefaultTTL.String()))
	}
	users := make([]string, 0, len(c.Admins))
	for u := range c.Admins {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		h := c.Admins[u]
		if u == "" || strings.ContainsAny(u, ": \t") {
			errs = append(errs, fmt.Errorf("admins: user name %q must be non-empty and contain no colon or space", u))
		}
		if !strings.HasPrefix(h, "$2a$") && !strings.HasPrefix(h, "$2b$") && !strings.HasPrefix(h, "$2y$") {
			errs = append(errs, fmt.Errorf("admins.%s: must be a bcrypt hash (starting with $2y$, $2a$ or $2b$); create one with: htpasswd -nbBC 10 '' 'PASSWORD' | tr -d ':\\n'", u))
		}
	}
	c.Web.Proxies = nil
	for _, v := range c.Web.TrustedProxies {
		v = strings.TrimSpace(v)
		pfx, err := netip.ParsePrefix(v)
		if err != nil {
			var a netip.Addr
			if a, err = netip.ParseAddr(v); err == nil {
				pfx = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("web.trusted_proxies: %q is not an IP address or CIDR range such as 10.0.0.0/8", v))
			continue
		}
		c.Web.Proxies = append(c.Web.Proxies, pfx.Masked())
	}
	if c.Store.Postgres != nil && c.Store.Postgres.DSN == "" && c.Store.Postgres.DSNFile == "" {
		errs = append(errs, errors.New("store.postgres: set dsn or dsn_file"))
	}
	if c.Store.Postgres != nil && c.Store.Postgres.CallTimeout < 0 {
		errs = append(errs, fmt.Errorf("store.postgres.call_timeout: must be > 0 (or left out for 3s), got %q", c.Store.Postgres.CallTimeout.String()))
	}
	return errors.Join(errs...)
}

// Decode decodes a YAML node into out, after expanding ${ENV} references in
// scalar values, and rejects keys that out does not have (naming the key and
// its line). Providers use it for their vendors.<name> section.
func Decode(n *yaml.Node, out any) error {
	if err := expandEnv(n); err != nil {
		return err
	}
	if err := checkKeys(n, reflect.TypeOf(out), ""); err != nil {
		return err
	}
	if err := n.Decode(out); err != nil {
		return cleanYAMLError(err)
	}
	return nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${NAME} in scalar values. Only the braced form is
// expanded, so bcrypt hashes ($2y$10$...) pass untouched.
func expandEnv(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		var missing []string
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			name := envRef.FindStringSubmatch(m)[1]
			v, ok := os.LookupEnv(name)
			if !ok {
				missing = append(missing, name)
			}
			return v
		})
		if len(missing) > 0 {
			return fmt.Errorf("line %d: environment variable %s is not set (referenced as ${%s})", n.Line, missing[0], missing[0])
		}
	}
	for _, c := range n.Content {
		if err := expandEnv(c); err != nil {
			return err
		}
	}
	return nil
}

var nodeType = reflect.TypeOf(yaml.Node{})

// checkKeys walks mapping nodes against struct types and reports the first
// unknown key with its line and the keys that are allowed there.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return checkKeys(n.Content[0], t, path)
	}
	if t == nodeType {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nil // n.Decode reports the type mismatch
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "-" || !f.IsExported() {
				continue
			}
			if tag == "" {
				tag = strings.ToLower(f.Name)
			}
			fields[tag] = f.Type
			names = append(names, tag)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				where := "at the top level"
				if path != "" {
					where = "in " + path
				}
				return fmt.Errorf("line %d: unknown key %q %s (known keys: %s)", k.Line, k.Value, where, strings.Join(names, ", "))
			}
			if err := checkKeys(v, ft, join(path, k.Value)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// cleanYAMLError turns yaml.v3's "cannot unmarshal !!str `abc` into
// time.Duration" into something an operator can act on.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	msg = strings.ReplaceAll(msg, "into time.Duration", "into a duration (use a value such as 30s or 5m)")
	return errors.New(msg)
}

// ReadSecret returns value, or the trimmed contents of file when value is
// empty. key names the setting in errors. Both set is an error.
func ReadSecret(value, file, key string) (string, error) {
	if value != "" && file != "" {
		return "", fmt.Errorf("%s: set either %s or %s_file, not both", key, lastKey(key), lastKey(key))
	}
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s_file: %w", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func lastKey(k string) string {
	if i := strings.LastIndex(k, "."); i >= 0 {
		return k[i+1:]
	}
	return k
}

// BaseURL checks a vendor base URL setting: empty means def; otherwise an
// absolute http(s) URL without query, fragment or user info. It returns
// the URL without a trailing slash; key names the setting in errors.
func BaseURL(key, value, def string) (string, error) {
	if value == "" {
		value = def
	}
	u, err := url.Parse(value)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "", fmt.Errorf("%s: must be an absolute http(s) URL such as %s, got %q", key, def, value)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", fmt.Errorf("%s: must not carry a query, fragment or user info, got %q", key, value)
	}
	return strings.TrimRight(value, "/"), nil
}
