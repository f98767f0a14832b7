package provider

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Env is what a provider may know about the exporter it runs in.
type Env struct {
	ExternalURL string // no trailing slash
	Logger      *slog.Logger
	// BaseDir is the config file's directory: relative *_file paths in a
	// vendor section resolve against it.
	BaseDir string
	// Now is the exporter's clock (nil: time.Now); outside a scrape,
	// providers use it instead of time.Now so tests can move time.
	Now func() time.Time
}

// Clock returns e.Now, or time.Now when unset.
func (e Env) Clock() func() time.Time {
	if e.Now != nil {
		return e.Now
	}
	return time.Now
}

// Path resolves a path from a vendor section against BaseDir.
func (e Env) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || e.BaseDir == "" {
		return p
	}
	return filepath.Join(e.BaseDir, p)
}

// Factory builds a provider from its vendors.<vendor> config section. cfg is
// nil when the section is absent: a provider must then still work for what
// needs no app registration (pasted keys and tokens).
type Factory struct {
	Vendor string
	New    func(cfg *yaml.Node, env Env) (Provider, error)
}

// Build builds every provider, rejecting config sections for unknown vendors.
func Build(factories []Factory, vendors map[string]yaml.Node, env Env) ([]Provider, error) {
	known := map[string]bool{}
	var out []Provider
	for _, f := range factories {
		known[f.Vendor] = true
		var node *yaml.Node
		if n, ok := vendors[f.Vendor]; ok {
			node = &n
		}
		p, err := f.New(node, env)
		if err != nil {
			return nil, fmt.Errorf("vendors.%s: %w", f.Vendor, err)
		}
		out = append(out, p)
	}
	var unknown []string
	for v, n := range vendors {
		if !known[v] {
			unknown = append(unknown, fmt.Sprintf("%q (line %d)", v, n.Line))
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		names := make([]string, 0, len(factories))
		for _, f := range factories {
			names = append(names, f.Vendor)
		}
		return nil, fmt.Errorf("vendors: unknown vendor %s (known: %s)", strings.Join(unknown, ", "), strings.Join(names, ", "))
	}
	return out, nil
}

// Find returns the provider for vendor, or nil.
func Find(ps []Provider, vendor string) Provider {
	for _, p := range ps {
		if p.Vendor() == vendor {
			return p
		}
	}
	return nil
}
