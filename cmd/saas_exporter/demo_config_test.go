package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/saas-exporter/saas_exporter/config"
	"github.com/saas-exporter/saas_exporter/provider"
	"github.com/saas-exporter/saas_exporter/vendorsim"
)

// config.demo.yaml points every vendor at the simulator exactly as the
// simulator says, and config.example.yaml is valid: both are what people
// run first.
func TestShippedConfigs(t *testing.T) {
	b, err := os.ReadFile("../../config.demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := vendorsim.New(vendorsim.Options{}).ConfigSnippet("http://127.0.0.1:9800")
	if !strings.HasSuffix(string(b), want) {
		t.Errorf("config.demo.yaml must end with the simulator's snippet:\n%s", want)
	}
	for _, f := range []string{"../../config.demo.yaml", "../../config.example.yaml"} {
		c, err := config.Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if _, err := provider.Build(vendors, c.Vendors, provider.Env{ExternalURL: c.ExternalURL, BaseDir: c.BaseDir}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// Every key of the README's configuration table is in config.example.yaml,
// set or commented out.
func TestExampleConfigHasEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Key paths of the example, commented-out lines included.
	have := map[string]bool{}
	keyLine := regexp.MustCompile(`^(\s*)([a-z_]+):(\s|$)`)
	var stack []struct {
		indent int
		key    string
	}
	for _, line := range strings.Split(string(example), "\n") {
		// "  # key: v" and "#   # key: v" are keys one level below their '#'.
		for {
			trimmed := strings.TrimLeft(line, " ")
			if !strings.HasPrefix(trimmed, "#") {
				break
			}
			line = strings.Repeat(" ", len(line)-len(trimmed)) + strings.TrimPrefix(strings.TrimPrefix(trimmed, "#"), " ")
		}
		m := keyLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		indent := len(m[1])
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		stack = append(stack, struct {
			indent int
			key    string
		}{indent, m[2]})
		var path []string
		for _, s := range stack {
			path = append(path, s.key)
		}
		have[strings.Join(path, ".")] = true
	}

	section := string(readme)
	if i := strings.Index(section, "\n## Configuration reference"); i >= 0 {
		section = section[i+1:]
		if j := strings.Index(section[3:], "\n## "); j >= 0 {
			section = section[:j+3]
		}
	} else {
		t.Fatal("no Configuration reference section in the README")
	}
	row := regexp.MustCompile("(?m)^\\|\\s*(`[^|]+?)\\s*\\|[^|]*\\|\\s*(.*?)\\s*\\|$")
	name := regexp.MustCompile("`([a-z_.*]+)`")
	n := 0
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		names := name.FindAllStringSubmatch(m[1], -1)
		if len(names) == 0 {
			continue
		}
		first := names[0][1]
		parent := first[:strings.LastIndex(first, ".")+1]
		var want []string
		if strings.HasSuffix(first, ".*") {
			// The meaning column lists the section's keys.
			for _, k := range name.FindAllStringSubmatch(m[2], -1) {
				if !strings.ContainsAny(k[1], ".*") {
					want = append(want, strings.TrimSuffix(first, "*")+k[1])
				}
			}
		} else {
			want = append(want, first)
			for _, alt := range names[1:] { // "`a.b.dsn` / `dsn_file`": a sibling
				want = append(want, parent+alt[1])
			}
		}
		for _, k := range want {
			n++
			if !have[k] {
				t.Errorf("config.example.yaml lacks %s (listed in the README's configuration table)", k)
			}
		}
	}
	if n < 25 {
		t.Errorf("only %d keys found in the README's configuration table", n)
	}
}
