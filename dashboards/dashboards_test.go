package dashboards

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/saas-exporter/saas_exporter/internal/citest"
)

// knownMetrics lists every series the exporter (or Prometheus, for up) can
// produce, with its labels apart from job and instance. Taken from the
// SPEC's and README's metrics tables and collector/health.go; usage metrics
// all carry connection.
var knownMetrics = map[string][]string{
	"up": nil,

	"saas_connection_info":                           {"vendor", "connection", "account", "auth_method"},
	"saas_connection_up":                             {"vendor", "connection"},
	"saas_connection_state":                          {"vendor", "connection", "state"},
	"saas_connection_expiry_timestamp_seconds":       {"vendor", "connection"},
	"saas_connection_created_timestamp_seconds":      {"vendor", "connection"},
	"saas_connection_last_success_timestamp_seconds": {"vendor", "connection"},
	"saas_connection_scope_missing":                  {"vendor", "connection", "scope"},
	"saas_scrape_success":                            {"vendor", "connection"},
	"saas_scrape_duration_seconds":                   {"vendor", "connection"},
	"saas_usage_collected_timestamp_seconds":         {"vendor", "connection"},
	"saas_usage_section_collected_timestamp_seconds": {"vendor", "connection", "section"},
	"saas_vendor_requests_total":                     {"vendor", "code"},
	"saas_vendor_rate_limit_remaining":               {"vendor", "connection"},
	"saas_exporter_build_info":                       {"version", "revision", "goversion", "branch", "tags", "goos", "goarch"},
	"saas_exporter_store_up":                         nil,

	"saas_twilio_usage_events":     {"connection", "category", "period"},
	"saas_twilio_usage":            {"connection", "category", "period", "unit"},
	"saas_twilio_usage_price":      {"connection", "category", "period", "currency"},
	"saas_twilio_account_status":   {"connection", "status"},
	"saas_twilio_balance":          {"connection", "currency"},
	"saas_twilio_phone_numbers":    {"connection"},
	"saas_twilio_account_info":     {"connection", "type", "parent_account_sid", "account_sid"},
	"saas_twilio_subaccounts":      {"connection", "status"},
	"saas_twilio_subaccount_spend": {"connection", "subaccount_sid", "subaccount", "period", "currency"},

	"saas_sendgrid_emails":                          {"connection", "event", "period"},
	"saas_sendgrid_credits_remaining":               {"connection"},
	"saas_sendgrid_credits_used":                    {"connection"},
	"saas_sendgrid_credits_limit":                   {"connection"},
	"saas_sendgrid_credits_overage":                 {"connection"},
	"saas_sendgrid_credits_reset_timestamp_seconds": {"connection"},
	"saas_sendgrid_reputation_ratio":                {"connection"},
	"saas_sendgrid_account_info":                    {"connection", "type"},
	"saas_sendgrid_teammates":                       {"connection", "user_type"},
	"saas_sendgrid_teammates_pending":               {"connection"},
	"saas_sendgrid_teammates_pending_expired":       {"connection"},
	"saas_sendgrid_credits_reset_frequency":         {"connection", "frequency"},
	"saas_sendgrid_subuser_emails":                  {"connection", "subuser", "event", "period"},
	"saas_sendgrid_subuser_credits_remaining":       {"connection", "subuser"},
	"saas_sendgrid_api_keys":                        {"connection"},
	"saas_sendgrid_subusers":                        {"connection", "disabled"},

	"saas_segment_mtu":                            {"connection", "kind", "period"},
	"saas_segment_api_calls":                      {"connection", "period"},
	"saas_segment_source_mtu":                     {"connection", "source_id", "source", "kind"},
	"saas_segment_source_api_calls":               {"connection", "source_id", "source"},
	"saas_segment_period_start_timestamp_seconds": {"connection"},
	"saas_segment_sources":                        {"connection"},
	"saas_segment_destinations":                   {"connection"},
	"saas_segment_warehouses":                     {"connection"},
	"saas_segment_users":                          {"connection", "role"},
	"saas_segment_invites_pending":                {"connection"},

	"saas_budget_monthly":             {"vendor", "connection", "unit"},
	"saas_budget_usage_month_to_date": {"vendor", "connection", "unit"},
	// Recorded by alerts.yml (per target: job and instance stay).
	"saas:budget_usage:projected_month_end": {"vendor", "connection", "unit"},
	"saas:budget_usage:ratio":               {"vendor", "connection", "unit"},
}

// knownValues are the documented values of enumerated labels; an equality
// matcher on one of these labels must use one of them.
var knownValues = map[string][]string{
	"state":     {"active", "expired", "revoked", "error", "rate_limited"},
	"vendor":    {"twilio", "sendgrid", "segment"},
	"period":    {"today", "this_month", "last_month"},
	"event":     {"requests", "delivered", "bounces", "blocks", "bounce_drops", "clicks", "deferred", "invalid_emails", "opens", "processed", "spam_report_drops", "spam_reports", "unique_clicks", "unique_opens", "unsubscribe_drops", "unsubscribes"},
	"kind":      {"identified", "anonymous", "anonymous_identified", "never_identified"},
	"status":    {"active", "suspended", "closed", "other"},
	"user_type": {"owner", "admin", "teammate"},
	"disabled":  {"true", "false"},
	"frequency": {"monthly", "weekly", "daily"},
	"type":      {"free", "paid", "other", "Full", "Trial"},
	"role": {"Workspace Owner", "Source Admin", "Source Read-only", "Warehouse Admin", "Warehouse Read-only", "Function Admin", "Function Read-only",
		"Engage Admin", "Engage User", "Engage Read-only", "Unify and Engage Admin", "Unify Read-only", "Identity Admin",
		"Tracking Plan Admin", "Tracking Plan Read-only", "End User Privacy Admin", "Workspace Member", "other"},
}

// The variables every dashboard filters by; "All" must be possible.
var requiredVars = []string{"job", "instance", "connection"}

// promql parses stable PromQL only (no experimental functions), so the
// expressions work on any current Prometheus.
var promql = parser.NewParser(parser.Options{})

// rateSentinel stands for $__rate_interval when checking range selectors,
// so a hard-coded window cannot pass for it.
const rateSentinel = 4321 * time.Second

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		citest.Missing(t, "promtool not found on PATH: install the prometheus package (apt-get install prometheus); .ci/run does")
	}
	return p
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(promtool(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestAlertRulesPromtoolCheck(t *testing.T) {
	runPromtool(t, "check", "rules", "alerts.yml")
}

// ruleTestFiles are the promtool test files: alerts_test.yml and the
// budget forecast's budget_test.yml (hourly rules, so a file of its own).
func ruleTestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"alerts_test.yml", "budget_test.yml"} {
		if !slices.Contains(files, want) {
			t.Errorf("%s is missing", want)
		}
	}
	return files
}

func TestAlertRulesPromtoolTest(t *testing.T) {
	runPromtool(t, append([]string{"test", "rules"}, ruleTestFiles(t)...)...)
}

type alertRule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadAlerts(t *testing.T) []alertRule {
	t.Helper()
	b, err := os.ReadFile("alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Name  string      `yaml:"name"`
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	var out []alertRule
	for _, g := range rf.Groups {
		if !strings.HasPrefix(g.Name, "saas_exporter.") {
			t.Errorf("group %q: name it saas_exporter.<topic>", g.Name)
		}
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatal("alerts.yml has no rules")
	}
	return out
}

// recordRE is the level:metric:operations form of recorded names.
var recordRE = regexp.MustCompile(`^saas:[a-z0-9_]+:[a-z0-9_]+$`)

func TestAlertRulesConventions(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range loadAlerts(t) {
		if r.Record != "" {
			// Only what alerts (and dashboards) use: the budget forecast.
			if !recordRE.MatchString(r.Record) {
				t.Errorf("recording rule %s: name it saas:<what>:<how>", r.Record)
			}
			if _, ok := knownMetrics[r.Record]; !ok {
				t.Errorf("recording rule %s: add it to knownMetrics", r.Record)
			}
			continue
		}
		if r.Alert == "" {
			t.Errorf("rule %q: neither an alert nor a recording rule", r.Expr)
			continue
		}
		if seen[r.Alert] {
			t.Errorf("alert %s defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if !strings.HasPrefix(r.Alert, "Saas") {
			t.Errorf("alert %s: name must start with Saas", r.Alert)
		}
		if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
			t.Errorf("alert %s: labels.severity %q, want critical, warning or info", r.Alert, s)
		}
		for _, a := range []string{"summary", "description"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s: annotations.%s missing", r.Alert, a)
			}
		}
		// Every alert waits a little, so one bad scrape never pages.
		if d, err := time.ParseDuration(r.For); err != nil || d < time.Minute {
			t.Errorf("alert %s: for: %q, want at least 1m", r.Alert, r.For)
		}
		// Alerts about a connection must say which one.
		expr, err := promql.ParseExpr(r.Expr)
		if err != nil {
			t.Errorf("alert %s: %v", r.Alert, err)
			continue
		}
		perConnection := false
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && slices.Contains(knownMetrics[metricName(vs)], "connection") {
				perConnection = true
			}
			return nil
		})
		if perConnection && !strings.Contains(r.Annotations["summary"], "$labels.connection") {
			t.Errorf("alert %s: summary does not name {{ $labels.connection }}", r.Alert)
		}
	}
}

// TestAlertRulesTested checks that the promtool test files have, for every
// alert, a case where it fires and one where it stays silent.
func TestAlertRulesTested(t *testing.T) {
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, file := range ruleTestFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var tf struct {
			RuleFiles []string `yaml:"rule_files"`
			Tests     []struct {
				AlertRuleTest []struct {
					Alertname string           `yaml:"alertname"`
					ExpAlerts []map[string]any `yaml:"exp_alerts"`
				} `yaml:"alert_rule_test"`
			} `yaml:"tests"`
		}
		if err := yaml.Unmarshal(b, &tf); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if !slices.Contains(tf.RuleFiles, "alerts.yml") {
			t.Errorf("%s: rule_files %v does not list alerts.yml", file, tf.RuleFiles)
		}
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
					for _, e := range a.ExpAlerts {
						if e["exp_labels"] == nil || e["exp_annotations"] == nil {
							t.Errorf("%s: a firing case must give exp_labels and exp_annotations", a.Alertname)
						}
					}
				} else {
					silent[a.Alertname] = true
				}
			}
		}
	}
	for _, r := range loadAlerts(t) {
		if r.Alert == "" {
			continue
		}
		if !fires[r.Alert] {
			t.Errorf("alert %s: no promtool test case where it fires", r.Alert)
		}
		if !silent[r.Alert] {
			t.Errorf("alert %s: no promtool test case where it stays silent (exp_alerts: [])", r.Alert)
		}
	}
}

func dashboardFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"saas-overview.json", "saas-segment.json", "saas-sendgrid.json", "saas-twilio.json"}
	for _, w := range want {
		if !slices.Contains(files, w) {
			t.Errorf("dashboard %s is missing", w)
		}
	}
	return files
}

type jsonPanel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Datasource  json.RawMessage `json:"datasource"`
	GridPos     *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []jsonPanel `json:"panels"`
}

type jsonDashboard struct {
	ID            *int        `json:"id"`
	UID           string      `json:"uid"`
	Title         string      `json:"title"`
	Description   string      `json:"description"`
	SchemaVersion int         `json:"schemaVersion"`
	Panels        []jsonPanel `json:"panels"`
	Templating    struct {
		List []templVar `json:"list"`
	} `json:"templating"`
}

type templVar struct {
	variable
	Datasource json.RawMessage `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
}

var dsVarRefs = []string{"${datasource}", "$datasource"}

// isDatasourceRef reports whether v points at the datasource variable, as
// a string or as {"type": "prometheus", "uid": "${datasource}"}.
func isDatasourceRef(v any) bool {
	switch v := v.(type) {
	case string:
		return slices.Contains(dsVarRefs, v)
	case map[string]any:
		uid, _ := v["uid"].(string)
		typ, _ := v["type"].(string)
		return slices.Contains(dsVarRefs, uid) && (typ == "" || typ == "prometheus")
	}
	return false
}

// datasourceRefs calls f for every "datasource" value anywhere in the JSON.
func datasourceRefs(v any, path string, f func(path string, ds any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			if k == "datasource" {
				f(path+"."+k, c)
				continue
			}
			datasourceRefs(c, path+"."+k, f)
		}
	case []any:
		for i, c := range v {
			datasourceRefs(c, fmt.Sprintf("%s[%d]", path, i), f)
		}
	}
}

func TestDashboardConventions(t *testing.T) {
	uids, titles := map[string]string{}, map[string]string{}
	for _, file := range dashboardFiles(t) {
		t.Run(file, func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var raw any
			if err := json.Unmarshal(b, &raw); err != nil {
				t.Fatalf("invalid JSON: %v", err)
			}
			var d jsonDashboard
			if err := json.Unmarshal(b, &d); err != nil {
				t.Fatalf("unexpected dashboard structure: %v", err)
			}
			checkDashboard(t, file, &d, raw, uids, titles)
		})
	}
}

var uidRE = regexp.MustCompile(`^saas-[a-z0-9-]+$`)

func checkDashboard(t *testing.T, file string, d *jsonDashboard, raw any, uids, titles map[string]string) {
	if !uidRE.MatchString(d.UID) || len(d.UID) > 40 {
		t.Errorf("uid %q: want a stable, human uid like saas-overview (at most 40 characters)", d.UID)
	}
	if other, ok := uids[d.UID]; ok {
		t.Errorf("uid %q is also used by %s", d.UID, other)
	}
	uids[d.UID] = file
	if other, ok := titles[d.Title]; ok || d.Title == "" {
		t.Errorf("title %q empty or also used by %s", d.Title, other)
	}
	titles[d.Title] = file
	if d.ID != nil {
		t.Errorf("id is %d: must be null so importing never overwrites another dashboard", *d.ID)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want >= 39", d.SchemaVersion)
	}
	if d.Description == "" {
		t.Error("dashboard has no description")
	}

	// Variables.
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		switch {
		case v.Type == "datasource":
			if v.Name != "datasource" || v.queryText() != "prometheus" {
				t.Errorf("datasource variable: name %q query %q, want datasource / prometheus", v.Name, v.queryText())
			}
		case v.Type == "query":
			var ds any
			_ = json.Unmarshal(v.Datasource, &ds)
			if !isDatasourceRef(ds) {
				t.Errorf("variable %s: datasource %s, want ${datasource}", v.Name, v.Datasource)
			}
			if !strings.HasPrefix(v.queryText(), "label_values(") {
				t.Errorf("variable %s: query %q, want label_values(...)", v.Name, v.queryText())
			}
		}
	}
	if !vars["datasource"] {
		t.Error("no datasource variable (type datasource, query prometheus)")
	}
	for _, name := range requiredVars {
		i := slices.IndexFunc(d.Templating.List, func(v templVar) bool { return v.Name == name })
		if i < 0 {
			t.Errorf("no %s variable", name)
			continue
		}
		if v := d.Templating.List[i]; v.Type != "query" || !v.Multi || !v.IncludeAll {
			t.Errorf("variable %s: type %q multi %v includeAll %v, want a multi-value query variable with All", name, v.Type, v.Multi, v.IncludeAll)
		}
	}

	// No hard-coded datasource anywhere in the dashboard.
	datasourceRefs(raw, "$", func(path string, ds any) {
		if !isDatasourceRef(ds) {
			t.Errorf("%s: datasource %v, want the ${datasource} variable", path, ds)
		}
	})

	// Panels.
	ids := map[int]string{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	var walk func(ps []jsonPanel)
	walk = func(ps []jsonPanel) {
		for _, p := range ps {
			walk(p.Panels)
			name := fmt.Sprintf("panel %q (id %d)", p.Title, p.ID)
			if other, ok := ids[p.ID]; ok {
				t.Errorf("%s: id also used by %s", name, other)
			}
			ids[p.ID] = name
			if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: gridPos %+v outside the 24-column grid", name, p.GridPos)
			} else {
				for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
					for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
						if other, ok := used[cell{x, y}]; ok {
							t.Errorf("%s overlaps %s", name, other)
							return
						}
						used[cell{x, y}] = name
					}
				}
			}
			if p.Type == "row" {
				continue // a row only groups panels
			}
			if p.Title == "" {
				t.Errorf("%s: no title", name)
			}
			if strings.TrimSpace(p.Description) == "" {
				t.Errorf("%s: no description", name)
			}
			if p.Type == "text" {
				continue
			}
			if p.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: no unit in fieldConfig.defaults", name)
			}
			var ds any
			_ = json.Unmarshal(p.Datasource, &ds)
			if !isDatasourceRef(ds) {
				t.Errorf("%s: datasource %s, want ${datasource}", name, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no targets", name)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				var ds any
				_ = json.Unmarshal(tg.Datasource, &ds)
				if !isDatasourceRef(ds) {
					t.Errorf("%s target %s: datasource %s, want ${datasource}", name, tg.RefID, tg.Datasource)
				}
				if tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("%s: refId %q empty or repeated", name, tg.RefID)
				}
				refs[tg.RefID] = true
			}
		}
	}
	walk(d.Panels)
	if len(ids) == 0 {
		t.Error("dashboard has no panels")
	}
}

// checkValues are the variable values used to check a dashboard expression:
// query variables become a marker so the matcher that uses them can be
// found, $__rate_interval a window no one would write by hand.
func checkValues(t *testing.T, file string) (map[string]string, map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	values := map[string]string{}
	for k, v := range BuiltinValues {
		values[k] = v
	}
	values["__rate_interval"] = fmt.Sprintf("%ds", int(rateSentinel.Seconds()))
	queryVars := map[string]bool{}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			values[v.Name] = "VAR_" + v.Name
			queryVars["VAR_"+v.Name] = true
		} else if v.Type != "datasource" {
			values[v.Name] = v.value()
		}
	}
	return values, queryVars
}

func TestExpressions(t *testing.T) {
	exprs, err := Expressions(".")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	valuesByFile := map[string]map[string]string{}
	queryVarsByFile := map[string]map[string]bool{}
	for _, e := range exprs {
		kinds[e.Kind]++
		t.Run(e.File+"/"+e.Source, func(t *testing.T) {
			expr, err := promql.ParseExpr(e.Query)
			if err != nil {
				t.Fatalf("%s does not parse: %v", e.Query, err)
			}
			if e.Kind != KindPanel && e.Kind != KindVariable {
				checkSelectors(t, expr, nil, false)
				return
			}
			if valuesByFile[e.File] == nil {
				valuesByFile[e.File], queryVarsByFile[e.File] = checkValues(t, e.File)
			}
			q, _, err := substitute(e.Raw, valuesByFile[e.File])
			if err != nil {
				t.Fatal(err)
			}
			marked, err := promql.ParseExpr(q)
			if err != nil {
				t.Fatalf("%s does not parse: %v", q, err)
			}
			// Variable queries cannot filter by the variable they define.
			checkSelectors(t, marked, queryVarsByFile[e.File], e.Kind == KindPanel)
			if e.Kind == KindPanel {
				checkPanelExpr(t, marked)
			}
		})
	}
	// A broken walk must not pass for "nothing to check".
	if kinds[KindPanel] < 40 || kinds[KindVariable] < 12 || kinds[KindAlert] < 10 {
		t.Errorf("found %v expressions; the dashboards and rules hold more", kinds)
	}
}

func metricName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// checkSelectors checks every series selector: known metric, known labels,
// documented values; with markers, that variables are used with =~; with
// filtered, that it is filtered by job, instance and (where the metric has
// it) connection.
func checkSelectors(t *testing.T, expr parser.Expr, markers map[string]bool, filtered bool) {
	t.Helper()
	parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := metricName(vs)
		lbls, known := knownMetrics[name]
		if !known {
			t.Errorf("%s: metric %q is not one the exporter produces (see the SPEC's metrics tables)", vs, name)
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				continue
			}
			if m.Name != "job" && m.Name != "instance" && !slices.Contains(lbls, m.Name) {
				t.Errorf("%s: %s has no label %q (labels: %v)", vs, name, m.Name, lbls)
			}
			if markers[m.Value] && m.Type != labels.MatchRegexp {
				t.Errorf("%s: variable in %s matcher; multi-value variables need =~", vs, m.Type)
			}
			if allowed := knownValues[m.Name]; allowed != nil && m.Type == labels.MatchEqual && !slices.Contains(allowed, m.Value) {
				t.Errorf("%s: %s=%q is not a value the exporter produces (%v)", vs, m.Name, m.Value, allowed)
			}
		}
		if strings.HasSuffix(name, "_total") && !slices.ContainsFunc(path, isCounterFunc) {
			t.Errorf("%s: counter %s used without rate() or increase()", vs, name)
		}
		if !filtered {
			return nil
		}
		want := []string{"job", "instance"}
		if slices.Contains(lbls, "connection") {
			want = append(want, "connection")
		}
		for _, l := range want {
			if !slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
				return m.Name == l && m.Type == labels.MatchRegexp && m.Value == "VAR_"+l
			}) {
				t.Errorf("%s: not filtered by %s=~\"$%s\"", vs, l, l)
			}
		}
		return nil
	})
}

func isCounterFunc(n parser.Node) bool {
	c, ok := n.(*parser.Call)
	return ok && slices.Contains([]string{"rate", "irate", "increase"}, c.Func.Name)
}

// checkPanelExpr: every range in a dashboard is $__rate_interval.
func checkPanelExpr(t *testing.T, expr parser.Expr) {
	t.Helper()
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.MatrixSelector:
			if n.Range != rateSentinel {
				t.Errorf("%s: range is not [$__rate_interval]", n)
			}
		case *parser.SubqueryExpr:
			t.Errorf("%s: subqueries in dashboards are slow; use a range over $__rate_interval", n)
		}
		return nil
	})
}

// TestExpressionsHelper pins what Expressions reports for a small dashboard
// and rule file, including its errors.
func TestExpressionsHelper(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("d.json", `{"title": "D", "templating": {"list": [
		{"name": "datasource", "type": "datasource", "query": "prometheus"},
		{"name": "job", "type": "query", "query": {"query": "label_values(saas_connection_info, job)"}},
		{"name": "period", "type": "custom", "current": {"value": "today"}, "options": [{"value": "this_month"}]}]},
	  "panels": [{"type": "row", "title": "R", "panels": [{"title": "P", "targets": [
		{"refId": "A", "expr": "rate(saas_vendor_requests_total{job=~\"$job\"}[$__rate_interval])"},
		{"refId": "B", "expr": "label_replace(saas_sendgrid_emails{period=\"${period}\"}, \"x\", \"$1\", \"event\", \"(.*)\")", "instant": true}]}]}]}`)
	write("rules.yml", "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n  - record: r\n    expr: sum(up)\n")
	write("rules_test.yml", "rule_files: [rules.yml]\ntests: []\n")
	write("notes.txt", "ignored")

	got, err := Expressions(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range got {
		lines = append(lines, fmt.Sprintf("%s|%s|%s|%s|%v|%v", e.File, e.Kind, e.Source, e.Query, e.Substitutions, e.Instant))
	}
	sort.Strings(lines)
	want := []string{
		`d.json|panel|D › P › A|rate(saas_vendor_requests_total{job=~".*"}[5m])|map[__rate_interval:5m job:.*]|false`,
		`d.json|panel|D › P › B|label_replace(saas_sendgrid_emails{period="today"}, "x", "$1", "event", "(.*)")|map[period:today]|true`,
		`d.json|variable|D › variable job|saas_connection_info|map[]|true`,
		`rules.yml|alert|alert A|up == 0|map[]|false`,
		`rules.yml|record|record r|sum(up)|map[]|false`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("Expressions:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	write("d.json", `{"title": "D", "panels": [{"title": "P", "targets": [{"refId": "A", "expr": "up{job=~\"$nope\"}"}]}]}`)
	if _, err := Expressions(dir); err == nil || !strings.Contains(err.Error(), "undefined variable(s) nope") {
		t.Errorf("undefined variable: err = %v", err)
	}
	write("d.json", `{"title": "D", "panels": [{"title": "P", "targets": [{"refId": "A"}]}]}`)
	if _, err := Expressions(dir); err == nil || !strings.Contains(err.Error(), "target without expr") {
		t.Errorf("empty target: err = %v", err)
	}
	write("d.json", `{"title": `)
	if _, err := Expressions(dir); err == nil || !strings.Contains(err.Error(), "d.json: invalid dashboard JSON") {
		t.Errorf("bad JSON: err = %v", err)
	}
}

// TestKnownMetricsMatchSource keeps knownMetrics in step with the metrics
// the code declares, so a renamed metric fails here, not on a dashboard.
func TestKnownMetricsMatchSource(t *testing.T) {
	patterns := []struct {
		glob   string
		re     *regexp.Regexp
		prefix string
		suffix string
	}{
		{"../collector/*.go", regexp.MustCompile(`\bdef\(\s*"(saas_[a-z0-9_]+)"`), "", ""},
		{"../provider/*/*.go", regexp.MustCompile(`provider\.NewDesc\(\s*"([a-z0-9_]+)"`), "saas_", ""},
		{"../provider/*.go", regexp.MustCompile(`\bNewDesc\(\s*"([a-z0-9_]+)",`), "saas_", ""},
		{"alerts.yml", regexp.MustCompile(`(?m)^\s*- record: (saas:[a-z0-9_:]+)`), "", ""},
		{"../cmd/saas_exporter/*.go", regexp.MustCompile(`versioncollector\.NewCollector\(\s*"([a-z0-9_]+)"`), "", "_build_info"},
	}
	declared := map[string]string{}
	for _, p := range patterns {
		files, err := filepath.Glob(p.glob)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range p.re.FindAllSubmatch(b, -1) {
				declared[p.prefix+string(m[1])+p.suffix] = f
			}
		}
	}
	if len(declared) < 20 {
		t.Fatalf("found only %d metric declarations in the source: %v", len(declared), declared)
	}
	for name, f := range declared {
		if _, ok := knownMetrics[name]; !ok {
			t.Errorf("%s declares %s, which knownMetrics lacks: add it (and to the dashboards if useful)", f, name)
		}
	}
	for name := range knownMetrics {
		if _, ok := declared[name]; !ok && name != "up" {
			t.Errorf("knownMetrics has %s, but no code declares it (renamed?)", name)
		}
	}
}

// mtuMetrics are the series with a kind label; anonymous already holds
// anonymous_identified and never_identified, so only identified +
// never_identified may be added up (what Segment bills).
var mtuMetrics = []string{"saas_segment_mtu", "saas_segment_source_mtu"}

// TestMTUsAreBillable: every expression that adds MTU kinds up keeps only
// the billable ones, and every Segment usage selector names its period.
func TestMTUsAreBillable(t *testing.T) {
	exprs, err := Expressions(".")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, e := range exprs {
		expr, err := promql.ParseExpr(e.Query)
		if err != nil {
			continue // TestExpressions reports it
		}
		parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			name := metricName(vs)
			if (name == "saas_segment_mtu" || name == "saas_segment_api_calls") && !slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
				return m.Name == "period" && m.Type == labels.MatchEqual
			}) {
				t.Errorf("%s %s: %s without period=\"this_month\" or \"last_month\" mixes two periods", e.File, e.Source, name)
			}
			if !slices.Contains(mtuMetrics, name) || !sumsKinds(path) {
				return nil
			}
			checked++
			if !billableOnly(vs) {
				t.Errorf("%s %s: adds up MTU kinds without kind=~\"identified|never_identified\": %s", e.File, e.Source, e.Raw)
			}
			return nil
		})
	}
	if checked < 5 {
		t.Errorf("only %d expressions add MTUs up; the Segment dashboard has more", checked)
	}
}

// sumsKinds reports whether an aggregation on path adds series of
// different kinds together.
func sumsKinds(path []parser.Node) bool {
	for _, n := range path {
		a, ok := n.(*parser.AggregateExpr)
		if !ok || (a.Op != parser.SUM && a.Op != parser.AVG) {
			continue
		}
		if a.Without == slices.Contains(a.Grouping, "kind") {
			return true
		}
	}
	return false
}

func billableOnly(vs *parser.VectorSelector) bool {
	matches := func(kind string) bool {
		for _, m := range vs.LabelMatchers {
			if m.Name == "kind" && !m.Matches(kind) {
				return false
			}
		}
		return true
	}
	return matches("identified") && matches("never_identified") && !matches("anonymous") && !matches("anonymous_identified")
}
