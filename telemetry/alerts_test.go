package telemetry

import (
	"bytes"
	"os"
	"slices"
	"testing"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// ruleFile is the part of a Prometheus rule file that alerts.yml uses.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleTests is the part of promtool's rule test file this test reads.
type ruleTests struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// decodeYAML decodes a YAML file into v. With strict, a field v does not
// have is an error: a misspelt key in a rule fails here instead of leaving
// a rule that Prometheus refuses or reads without it.
func decodeYAML(t *testing.T, path string, v any, strict bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(strict)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestAlertRules checks alerts.yml without Prometheus: every rule is
// complete, its "for" is a Prometheus duration, its brackets balance, every
// name it queries is exported, and promtool's test file (alerts_test.yml)
// has a case in which it fires. promtool itself checks the PromQL and runs
// those cases (README, Observability).
func TestAlertRules(t *testing.T) {
	var rules ruleFile
	decodeYAML(t, "alerts.yml", &rules, true)
	var tests ruleTests
	decodeYAML(t, "alerts_test.yml", &tests, false)
	fires := map[string]bool{}
	for _, tg := range tests.Tests {
		for _, c := range tg.AlertRuleTest {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alertname] = true
			}
		}
	}

	exported := exportedNames(t)
	var alerts, queried []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			switch {
			case r.Alert == "":
				t.Errorf("group %s: a rule without a name", g.Name)
				continue
			case slices.Contains(alerts, r.Alert):
				t.Errorf("%s: defined twice", r.Alert)
			}
			alerts = append(alerts, r.Alert)
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", r.Alert, err)
				}
			}
			if s := r.Labels["severity"]; s != "page" && s != "ticket" {
				t.Errorf("%s: severity %q, want page or ticket", r.Alert, s)
			}
			for _, a := range []string{"summary", "description"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s", r.Alert, a)
				}
			}
			if !balanced(r.Expr) {
				t.Errorf("%s: unbalanced brackets in %q", r.Alert, r.Expr)
			}
			names := metricNames(r.Expr)
			if len(names) == 0 {
				t.Errorf("%s: queries no metric: %q", r.Alert, r.Expr)
			}
			for _, n := range names {
				if !exported(n) {
					t.Errorf("%s queries %s, not in the scrape", r.Alert, n)
				}
				queried = append(queried, n)
			}
			if !fires[r.Alert] {
				t.Errorf("%s: no case in alerts_test.yml where it fires", r.Alert)
			}
		}
	}
	if len(alerts) < 5 {
		t.Fatalf("only %d alerts read from alerts.yml: %v", len(alerts), alerts)
	}
	for _, name := range []string{"sge_ready", "sge_settlements", "sge_dead_letters", "http_request_duration_ms_count"} {
		if !slices.Contains(queried, name) {
			t.Errorf("no alert queries %s", name)
		}
	}
}

func TestBalanced(t *testing.T) {
	for expr, want := range map[string]bool{
		`sum by (a) (rate(x{l="("}[5m])) > 0`: true,
		`sum(rate(x[5m]) > 0`:                 false,
		`x{l="a"]`:                            false,
		`(x))(`:                               false,
	} {
		if got := balanced(expr); got != want {
			t.Errorf("balanced(%q) = %v, want %v", expr, got, want)
		}
	}
}

// balanced reports whether the (), [] and {} of a PromQL expression pair up
// outside its quoted strings.
func balanced(expr string) bool {
	var open []rune
	var quote rune
	escaped := false
	for _, c := range expr {
		switch {
		case quote != 0:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == quote:
				quote = 0
			}
		case c == '"' || c == '\'' || c == '`':
			quote = c
		case c == '(' || c == '[' || c == '{':
			open = append(open, c)
		case c == ')' || c == ']' || c == '}':
			want := map[rune]rune{')': '(', ']': '[', '}': '{'}[c]
			if len(open) == 0 || open[len(open)-1] != want {
				return false
			}
			open = open[:len(open)-1]
		}
	}
	return len(open) == 0 && quote == 0
}
