package telemetry

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
)

// Dashboard is the Grafana dashboard JSON (dashboard.json), built on the
// metric names of DESIGN.md.
//
//go:embed dashboard.json
var Dashboard []byte

// DashboardMetricNames returns the metric names the dashboard's queries
// select, each once, in order of appearance: tests check that a scrape of the
// running service exports every one.
func DashboardMetricNames() ([]string, error) {
	var dash map[string]any
	if err := json.Unmarshal(Dashboard, &dash); err != nil {
		return nil, fmt.Errorf("telemetry: dashboard.json: %w", err)
	}
	var names []string
	for _, e := range exprs(dash) {
		for _, n := range metricNames(e) {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names, nil
}

// exprs returns every "expr" string anywhere in a decoded Grafana dashboard.
func exprs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "expr" {
				out = append(out, s)
			} else {
				out = append(out, exprs(e)...)
			}
		}
	case []any:
		for _, e := range v {
			out = append(out, exprs(e)...)
		}
	}
	return out
}

var (
	// Parts of PromQL that hold no metric names: strings, label matchers,
	// ranges and grouping clauses.
	promqlNoise = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	// An identifier, and whether a call parenthesis follows it.
	promqlIdent    = regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b\s*(\()?`)
	promqlKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
)

// metricNames extracts the metric names an expression selects. It is a
// lexer, not a parser, which is enough for the selectors a dashboard uses.
func metricNames(expr string) []string {
	var names []string
	for _, m := range promqlIdent.FindAllStringSubmatch(promqlNoise.ReplaceAllString(expr, " "), -1) {
		if m[2] == "" && !slices.Contains(promqlKeywords, m[1]) {
			names = append(names, m[1])
		}
	}
	return names
}
