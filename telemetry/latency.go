package telemetry

import (
	"math"
	"runtime/metrics"

	"github.com/cockroachdb/pebble"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Two latencies that explain a synced request's tail, re-bucketed at scrape
// time from histograms their owners already keep: how long the WAL's fsync
// took (Pebble's, in nanoseconds with 100 buckets) and how long runnable
// goroutines waited for a CPU (the Go runtime's). When a commit is slow
// and its fsync was not, the time went to waiting for a CPU.
var (
	walFsyncDesc = prometheus.NewDesc("sge_pebble_wal_fsync_seconds",
		"Latency of the Pebble WAL's fsyncs.", nil, nil)
	schedLatencyDesc = prometheus.NewDesc("sge_go_sched_latency_seconds",
		"Time runnable goroutines waited for a CPU (Go runtime/metrics /sched/latencies:seconds; the sum is estimated from bucket midpoints).", nil, nil)
	// latencyBuckets are the exported upper bounds, in seconds. Counts are
	// of source buckets that end at or below a bound, so a bound never
	// claims more than the source shows.
	latencyBuckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1}
)

// walFsyncHistogram re-buckets Pebble's fsync latency histogram; nil when
// Pebble has none.
func walFsyncHistogram(pm *pebble.Metrics) prometheus.Metric {
	h := pm.LogWriter.FsyncLatency
	if h == nil {
		return nil
	}
	var m dto.Metric
	if err := h.Write(&m); err != nil || m.Histogram == nil {
		return nil
	}
	const ns = 1e-9
	var upper []float64
	var cum []uint64
	for _, b := range m.Histogram.GetBucket() {
		upper = append(upper, b.GetUpperBound()*ns)
		cum = append(cum, b.GetCumulativeCount())
	}
	return prometheus.MustNewConstHistogram(walFsyncDesc, m.Histogram.GetSampleCount(),
		m.Histogram.GetSampleSum()*ns, rebucket(upper, cum))
}

// schedLatencyHistogram re-buckets the Go scheduler's latency histogram;
// nil when the runtime has none.
func schedLatencyHistogram() prometheus.Metric {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	h := s[0].Value.Float64Histogram()
	upper := make([]float64, len(h.Counts))
	cum := make([]uint64, len(h.Counts))
	var n uint64
	var sum float64
	for i, c := range h.Counts {
		n += c
		lo, hi := h.Buckets[i], h.Buckets[i+1]
		upper[i], cum[i] = hi, n
		if c > 0 {
			sum += float64(c) * midpoint(lo, hi)
		}
	}
	return prometheus.MustNewConstHistogram(schedLatencyDesc, n, sum, rebucket(upper, cum))
}

// midpoint of a bucket, with open ends clamped to the finite one.
func midpoint(lo, hi float64) float64 {
	switch {
	case math.IsInf(lo, -1):
		return max(hi, 0)
	case math.IsInf(hi, 1):
		return lo
	}
	return (lo + hi) / 2
}

// rebucket maps a cumulative histogram (ascending upper bounds) onto
// latencyBuckets: each bound gets the count of source buckets ending at or
// below it.
func rebucket(upper []float64, cum []uint64) map[float64]uint64 {
	out := make(map[float64]uint64, len(latencyBuckets))
	i := 0
	var below uint64
	for _, b := range latencyBuckets {
		for i < len(upper) && upper[i] <= b {
			below = cum[i]
			i++
		}
		out[b] = below
	}
	return out
}
