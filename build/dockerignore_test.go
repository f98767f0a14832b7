package build

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// .dockerignore excludes everything but what the Dockerfile copies, so a
// local data/ directory (store, secret.key) or .git never reaches the build
// context, and every COPY still finds its source.
func TestDockerignore(t *testing.T) {
	d := loadDockerfile(t)
	b, err := os.ReadFile(filepath.Join(d.root, ".dockerignore"))
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	var rules []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			rules = append(rules, l)
		}
	}
	if len(rules) == 0 || rules[0] != "*" {
		t.Fatalf(".dockerignore must start by excluding everything (*), then name what the build needs; rules: %q", rules)
	}
	for _, r := range rules[1:] {
		if !strings.HasPrefix(r, "!") {
			t.Errorf(".dockerignore rule %q: after *, only !exceptions", r)
			continue
		}
		p := path.Clean(strings.TrimPrefix(r, "!"))
		for _, secret := range []string{"data", "data-demo", ".git", "secret.key"} {
			if p == secret || strings.HasPrefix(p, secret+"/") || strings.ContainsAny(p, "*?[") {
				t.Errorf(".dockerignore lets %q into the build context", r)
			}
		}
	}
	for _, c := range copySources(d.build) {
		for _, src := range c[0] {
			if !slices.Contains(rules[1:], "!"+path.Clean(src)) {
				t.Errorf("the Dockerfile copies %s, which .dockerignore leaves out of the build context: add !%s", src, path.Clean(src))
			}
		}
	}
}
