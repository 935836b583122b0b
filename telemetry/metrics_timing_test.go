package telemetry

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkObserveHTTP measures the per-request metrics cost: off (nil
// *Metrics), the full path through the label cache, and the bare floor of an
// Observer resolved by hand, which the cache should approach.
func BenchmarkObserveHTTP(b *testing.B) {
	b.Run("off", func(b *testing.B) {
		var m *Metrics
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.ObserveHTTP("POST", "/api/claim/prepare", 201, time.Millisecond)
			}
		})
	})
	b.Run("cached", func(b *testing.B) {
		m := NewMetrics(prometheus.NewRegistry())
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.ObserveHTTP("POST", "/api/claim/prepare", 201, time.Millisecond)
			}
		})
	})
	b.Run("bare-observer", func(b *testing.B) {
		vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h", Buckets: httpBuckets}, []string{"method", "route", "status"})
		o := vec.WithLabelValues("POST", "/api/claim/prepare", "201")
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				o.Observe(1)
			}
		})
	})
	b.Run("uncached-vec", func(b *testing.B) {
		vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h", Buckets: httpBuckets}, []string{"method", "route", "status"})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				vec.WithLabelValues("POST", "/api/claim/prepare", "201").Observe(1)
			}
		})
	})
}

func BenchmarkMessageHandled(b *testing.B) {
	m := NewMetrics(prometheus.NewRegistry())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.MailboxEnqueued("wallet")
			m.MessageHandled("wallet", time.Millisecond)
		}
	})
}
