package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Expression kinds.
const (
	KindPanel    = "panel"    // a panel target's expr
	KindVariable = "variable" // the series selector of a label_values() template variable
	KindAlert    = "alert"    // an alerting rule's expr
	KindRecord   = "record"   // a recording rule's expr
)

// Expr is one PromQL expression found in a dashboard or rule file.
type Expr struct {
	File   string // base name, e.g. "saas-overview.json"
	Kind   string // KindPanel, KindVariable, KindAlert or KindRecord
	Source string // where it is, e.g. `SaaS / Overview › Connections › A` or `alert SaasConnectionExpired`
	Raw    string // as written, with Grafana variables
	Query  string // Raw with every variable replaced: plain PromQL
	// Substitutions lists the variables that occur in Raw and the value
	// each was replaced with in Query (nil when there are none).
	Substitutions map[string]string
	Instant       bool // a panel target that asks for an instant query only
}

// BuiltinValues are the values used for Grafana's built-in variables.
// Dashboard query variables (job, instance, connection, ...) become ".*" (they
// are only used in =~ matchers with "All" meaning ".*"); custom and constant
// variables take their current value, or else their first option.
var BuiltinValues = map[string]string{
	"__rate_interval": "5m",
	"__interval":      "1m",
	"__interval_ms":   "60000",
	"__range":         "1h",
	"__range_s":       "3600",
	"__range_ms":      "3600000",
}

// Expressions returns every PromQL expression of every panel target and
// template variable of the dashboards (*.json) in dir, and of every rule of
// the Prometheus rule files (*.yml, *.yaml with a top-level "groups" key;
// promtool test files are skipped). An expression that uses a variable the
// dashboard does not define is an error, as is a target without expr.
func Expressions(dir string) ([]Expr, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Expr
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		var got []Expr
		switch ext := filepath.Ext(e.Name()); ext {
		case ".json":
			got, err = dashboardExprs(path)
		case ".yml", ".yaml":
			got, err = ruleExprs(path)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, got...)
	}
	return out, nil
}

// Only the parts of a dashboard that hold expressions.
type dashboard struct {
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string   `json:"title"`
	Type    string   `json:"type"`
	Panels  []panel  `json:"panels"` // collapsed rows
	Targets []target `json:"targets"`
}

type target struct {
	RefID   string `json:"refId"`
	Expr    string `json:"expr"`
	Instant bool   `json:"instant"`
	Range   *bool  `json:"range"`
}

type variable struct {
	Name    string          `json:"name"`
	Type    string          `json:"type"`
	Query   json.RawMessage `json:"query"`
	Current struct {
		Value json.RawMessage `json:"value"`
	} `json:"current"`
	Options []struct {
		Value string `json:"value"`
	} `json:"options"`
}

// queryText returns a variable's query whether it is stored as a string or
// as Grafana 10+'s {"query": "..."} object.
func (v variable) queryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &o) == nil {
		return o.Query
	}
	return ""
}

// value is what the variable stands for in Query.
func (v variable) value() string {
	switch v.Type {
	case "query":
		return ".*"
	case "custom", "constant", "interval", "textbox":
		var s string
		if json.Unmarshal(v.Current.Value, &s) == nil && s != "" && s != "$__all" {
			return s
		}
		var l []string
		if json.Unmarshal(v.Current.Value, &l) == nil && len(l) == 1 && l[0] != "$__all" {
			return l[0]
		}
		if len(l) > 1 {
			return strings.Join(l, "|")
		}
		if len(v.Options) > 0 {
			return v.Options[0].Value
		}
		if v.Type == "constant" || v.Type == "textbox" {
			return v.queryText()
		}
	}
	return ""
}

var labelValuesRE = regexp.MustCompile(`(?s)^\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)

func dashboardExprs(path string) ([]Expr, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("invalid dashboard JSON: %w", err)
	}
	values := map[string]string{}
	for k, v := range BuiltinValues {
		values[k] = v
	}
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			continue // never part of an expression
		}
		values[v.Name] = v.value()
	}
	file := filepath.Base(path)
	var out []Expr
	add := func(kind, source, raw string, instant bool) error {
		q, used, err := substitute(raw, values)
		if err != nil {
			return fmt.Errorf("%s: %w", source, err)
		}
		out = append(out, Expr{File: file, Kind: kind, Source: source, Raw: raw, Query: q, Substitutions: used, Instant: instant})
		return nil
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := v.queryText()
		m := labelValuesRE.FindStringSubmatch(q)
		if m == nil {
			continue // label_values(label) and other functions hold no expression
		}
		if err := add(KindVariable, d.Title+" › variable "+v.Name, strings.TrimSpace(m[1]), true); err != nil {
			return nil, err
		}
	}
	var walk func(ps []panel, prefix string) error
	walk = func(ps []panel, prefix string) error {
		for _, p := range ps {
			src := prefix + " › " + p.Title
			if err := walk(p.Panels, prefix); err != nil {
				return err
			}
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) == "" {
					return fmt.Errorf("%s › %s: target without expr", src, t.RefID)
				}
				instant := t.Instant && (t.Range == nil || !*t.Range)
				if err := add(KindPanel, src+" › "+t.RefID, t.Expr, instant); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(d.Panels, d.Title); err != nil {
		return nil, err
	}
	return out, nil
}

// varRE matches Grafana's variable syntaxes: ${name}, ${name:format},
// [[name]] and $name. Names start with a letter or "_", so label_replace's
// "$1" stays as it is.
var varRE = regexp.MustCompile(`\$\{([a-zA-Z_]\w*)(?::\w+)?\}|\[\[([a-zA-Z_]\w*)(?::\w+)?\]\]|\$([a-zA-Z_]\w*)`)

// substitute replaces every variable in raw with its value; a variable
// without a value is an error.
func substitute(raw string, values map[string]string) (string, map[string]string, error) {
	var used map[string]string
	var missing []string
	q := varRE.ReplaceAllStringFunc(raw, func(m string) string {
		sm := varRE.FindStringSubmatch(m)
		name := sm[1] + sm[2] + sm[3]
		v, ok := values[name]
		if !ok || v == "" {
			missing = append(missing, name)
			return m
		}
		if used == nil {
			used = map[string]string{}
		}
		used[name] = v
		return v
	})
	if len(missing) > 0 {
		sort.Strings(missing)
		return "", nil, fmt.Errorf("expression %q uses undefined variable(s) %s; define them in the dashboard's templating", raw, strings.Join(missing, ", "))
	}
	return q, used, nil
}

// ruleFile is a Prometheus rule file; a promtool test file has no groups.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert  string `yaml:"alert"`
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func ruleExprs(path string) ([]Expr, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rf ruleFile
	if err := yaml.Unmarshal(b, &rf); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	file := filepath.Base(path)
	var out []Expr
	for _, g := range rf.Groups {
		for i, r := range g.Rules {
			kind, src := KindAlert, "alert "+r.Alert
			if r.Alert == "" {
				kind, src = KindRecord, "record "+r.Record
			}
			if r.Alert == "" && r.Record == "" {
				src = fmt.Sprintf("group %s rule %d", g.Name, i+1)
			}
			expr := strings.TrimSpace(r.Expr)
			if expr == "" {
				return nil, fmt.Errorf("%s: rule without expr", src)
			}
			out = append(out, Expr{File: file, Kind: kind, Source: src, Raw: expr, Query: expr})
		}
	}
	return out, nil
}
