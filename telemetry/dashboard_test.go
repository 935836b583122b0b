package telemetry

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

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

func TestMetricNames(t *testing.T) {
	got := metricNames(`histogram_quantile(0.99, sum by (route, le) (rate(http_request_duration_ms_bucket{status=~"5.."}[$__rate_interval]))) / on(job) sge_ready`)
	if !slices.Equal(got, []string{"http_request_duration_ms_bucket", "sge_ready"}) {
		t.Fatalf("metricNames = %v", got)
	}
}

// TestDashboardMetricsExist checks that every series the dashboard queries is
// exported after each Metrics method has run once: renaming a metric breaks
// this test instead of a graph.
func TestDashboardMetricsExist(t *testing.T) {
	raw, err := os.ReadFile("dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}

	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	driveAll(m)
	m.RegisterPebble(db.Metrics)
	fams := scrape(t, reg)

	exported := func(name string) bool {
		if _, ok := fams[name]; ok {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if f, ok := fams[strings.TrimSuffix(name, suffix)]; ok && strings.HasSuffix(name, suffix) && f.GetType() == dto.MetricType_HISTOGRAM {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	for _, e := range exprs(dash) {
		for _, name := range metricNames(e) {
			if !seen[name] && !exported(name) {
				t.Errorf("dashboard queries %s (in %q), not in the scrape", name, e)
			}
			seen[name] = true
		}
	}
	// Guard the lexer: an extraction that finds nothing would pass vacuously.
	for _, name := range []string{"http_request_duration_ms_bucket", "sge_ratelimit_decisions_total", "sge_actors_alive", "sge_dead_letters", "sge_pebble_wal_bytes"} {
		if !seen[name] {
			t.Errorf("dashboard does not query %s", name)
		}
	}
}
