package telemetry

import (
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestMetricNames(t *testing.T) {
	got := metricNames(`histogram_quantile(0.99, sum by (route, le) (rate(http_request_duration_ms_bucket{status=~"5.."}[$__rate_interval]))) / on(job) sge_ready`)
	if !slices.Equal(got, []string{"http_request_duration_ms_bucket", "sge_ready"}) {
		t.Fatalf("metricNames = %v", got)
	}
}

// TestDashboardMetricsExist checks that every series the dashboard queries is
// exported after each Metrics method has run once: renaming a metric breaks
// this test instead of a graph. internal/gateway's TestDashboardRealScrape
// checks the same against the running service after real traffic.
func TestDashboardMetricsExist(t *testing.T) {
	names, err := DashboardMetricNames()
	if err != nil {
		t.Fatal(err)
	}
	exported := exportedNames(t)
	seen := map[string]bool{}
	for _, name := range names {
		if !exported(name) {
			t.Errorf("dashboard queries %s, not in the scrape", name)
		}
		seen[name] = true
	}
	// Guard the lexer: an extraction that finds nothing would pass vacuously.
	for _, name := range []string{"http_request_duration_ms_bucket", "sge_ratelimit_decisions_total", "sge_actors_alive", "sge_dead_letters", "sge_pebble_wal_bytes"} {
		if !seen[name] {
			t.Errorf("dashboard does not query %s", name)
		}
	}
}

// exportedNames scrapes a registry on which every Metrics method has run
// once, with Pebble's metrics registered, and reports whether a query can
// select a name from it (a histogram's _bucket, _sum and _count included).
func exportedNames(t *testing.T) func(name string) bool {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	driveAll(m)
	m.RegisterPebble(db.Metrics)
	m.DiskFree(func() map[string]uint64 { return map[string]uint64{"data": 1 << 30} })
	fams := scrape(t, reg)
	return func(name string) bool {
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
}
