package telemetry

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's process-wide Date header ticker never stops, and a
		// stopped server's worker-pool cleaner wakes up to 10s later.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

// scrape serves g through Handler on a real listener, fetches /metrics and
// parses it with the Prometheus text parser.
func scrape(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: Handler(g)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	defer func() {
		if err := srv.Shutdown(); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	// A net/http client without keep-alive leaves no goroutines behind;
	// fasthttp's client keeps cleaners running for seconds.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	req, err := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain") // pin the text format, not protobuf or OpenMetrics
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// series finds the metric in family name whose labels are exactly want.
func series(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		return m
	}
	t.Fatalf("%s: no series %v", name, want)
	return nil
}

// count is testutil.CollectAndCount over a Gather. testutil itself would
// need github.com/kylelemons/godebug added to the shared go.sum.
func count(t *testing.T, g prometheus.Gatherer, names ...string) int {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fams {
		for _, name := range names {
			if f.GetName() == name {
				n += len(f.GetMetric())
			}
		}
	}
	return n
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return m.Untyped.GetValue()
}

// driveAll calls every Metrics method at least once with known traffic.
func driveAll(m *Metrics) {
	m.ObserveHTTP("POST", "/api/register", 201, 3*time.Millisecond)
	m.ObserveHTTP("POST", "/api/register", 201, 7*time.Millisecond)
	m.ObserveHTTP("POST", "/api/register", 429, 100*time.Microsecond)
	m.ObserveHTTP("BREW", "/api/register", 405, time.Millisecond)
	m.Idempotency("/api/register", "miss")
	m.Idempotency("/api/register", "hit")
	m.RateLimit("register-ip", true)
	m.RateLimit("register-ip", false)
	m.ActorSpawned("wallet")
	m.ActorSpawned("wallet")
	m.ActorStopped("wallet", true)
	m.ActorSpawned("settlement")
	m.ActorRestarted("settlement")
	m.MailboxEnqueued("wallet")
	m.MailboxEnqueued("wallet")
	m.MessageHandled("wallet", 200*time.Microsecond)
	m.Commit(2*time.Millisecond, 3, nil)
	m.Commit(time.Millisecond, 1, errors.New("disk full"))
	m.CommitWaits(time.Millisecond, 0, 3*time.Millisecond, 2*time.Millisecond)
	m.CommitWaits(0, 5*time.Millisecond, 0, 2*time.Millisecond)
	m.WriteStall(40 * time.Millisecond)
	m.StorageError("snapshot")
	m.SettlementAttempt("claim", "failed")
	m.SettlementAttempt("claim", "succeeded")
	m.SettlementsByStatus(func() map[string]int { return map[string]int{"pending": 2, "dead": 1} })
	m.DeadLetters(func() int { return 1 })
	m.Webhook("order.paid", "accepted")
	m.Readiness(func() bool { return true })
}

func TestScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	driveAll(m)
	fams := scrape(t, reg)

	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"http_request_duration_ms", map[string]string{"method": "POST", "route": "/api/register", "status": "201"}, 2},
		{"http_request_duration_ms", map[string]string{"method": "POST", "route": "/api/register", "status": "429"}, 1},
		{"http_request_duration_ms", map[string]string{"method": "OTHER", "route": "/api/register", "status": "405"}, 1},
		{"sge_idempotency_requests_total", map[string]string{"route": "/api/register", "result": "miss"}, 1},
		{"sge_idempotency_requests_total", map[string]string{"route": "/api/register", "result": "hit"}, 1},
		{"sge_ratelimit_decisions_total", map[string]string{"policy": "register-ip", "decision": "allowed"}, 1},
		{"sge_ratelimit_decisions_total", map[string]string{"policy": "register-ip", "decision": "limited"}, 1},
		{"sge_actors_alive", map[string]string{"kind": "wallet"}, 1},
		{"sge_actors_alive", map[string]string{"kind": "settlement"}, 1},
		{"sge_actor_spawned_total", map[string]string{"kind": "wallet"}, 2},
		{"sge_actor_passivated_total", map[string]string{"kind": "wallet"}, 1},
		{"sge_actor_passivated_total", map[string]string{"kind": "settlement"}, 0},
		{"sge_actor_restarts_total", map[string]string{"kind": "settlement"}, 1},
		{"sge_actor_mailbox_depth", map[string]string{"kind": "wallet"}, 1},
		{"sge_actor_messages_total", map[string]string{"kind": "wallet"}, 1},
		{"sge_actor_message_duration_seconds", map[string]string{"kind": "wallet"}, 1},
		{"sge_pebble_commit_duration_seconds", nil, 2},
		{"sge_pebble_commit_batches", nil, 2},
		{"sge_pebble_write_stall_seconds", nil, 1},
		{"sge_pebble_commit_wait_seconds_total", map[string]string{"cause": "pipeline"}, 0.001},
		{"sge_pebble_commit_wait_seconds_total", map[string]string{"cause": "wal_rotation"}, 0.005},
		{"sge_pebble_commit_wait_seconds_total", map[string]string{"cause": "write_stall"}, 0.003},
		{"sge_pebble_commit_wait_seconds_total", map[string]string{"cause": "wal_sync"}, 0.004},
		{"sge_storage_errors_total", map[string]string{"op": "commit"}, 1},
		{"sge_storage_errors_total", map[string]string{"op": "snapshot"}, 1},
		{"sge_settlement_attempts_total", map[string]string{"kind": "claim", "outcome": "failed"}, 1},
		{"sge_settlement_attempts_total", map[string]string{"kind": "claim", "outcome": "succeeded"}, 1},
		{"sge_settlements", map[string]string{"status": "pending"}, 2},
		{"sge_settlements", map[string]string{"status": "dead"}, 1},
		{"sge_dead_letters", nil, 1},
		{"sge_webhook_deliveries_total", map[string]string{"type": "order.paid", "result": "accepted"}, 1},
		{"sge_ready", nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := value(series(t, fams, tt.name, tt.labels)); got != tt.want {
				t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
			}
		})
	}

	// Exactly the label sets driven, no more: one miss and one hit.
	if n := len(fams["sge_idempotency_requests_total"].GetMetric()); n != 2 {
		t.Errorf("idempotency series = %d, want 2", n)
	}
	h := series(t, fams, "http_request_duration_ms", map[string]string{"method": "POST", "route": "/api/register", "status": "201"}).Histogram
	if got := h.GetSampleSum(); got != 10 {
		t.Errorf("latency sum = %vms, want 10ms", got)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("runtime collector series %s missing", name)
		}
	}
}

func TestHandlerRejectsPost(t *testing.T) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	Handler(prometheus.NewRegistry())(&ctx)
	if ctx.Response.StatusCode() != fasthttp.StatusMethodNotAllowed {
		t.Fatalf("POST /metrics: %d", ctx.Response.StatusCode())
	}
}

func TestUnsetSourcesExportNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg)
	if n := count(t, reg, "sge_settlements", "sge_dead_letters", "sge_pebble_wal_bytes"); n != 0 {
		t.Fatalf("unset sources exported %d series", n)
	}
	// Known kinds are pre-resolved so dashboards show 0 rather than no data.
	if n := count(t, reg, "sge_actors_alive"); n != 2 {
		t.Fatalf("sge_actors_alive series = %d, want 2", n)
	}
}

func TestNilMetrics(t *testing.T) {
	if NewMetrics(nil) != nil {
		t.Fatal("NewMetrics(nil) != nil")
	}
	driveAll(nil) // must not panic
	var m *Metrics
	m.RegisterPebble(func() *pebble.Metrics { return nil })
}

func TestAllocs(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	driveAll(m) // resolve the label sets once
	for name, f := range map[string]func(){
		"ObserveHTTP":    func() { m.ObserveHTTP("POST", "/api/register", 201, time.Millisecond) },
		"Idempotency":    func() { m.Idempotency("/api/register", "hit") },
		"RateLimit":      func() { m.RateLimit("register-ip", false) },
		"MailboxEnqueue": func() { m.MailboxEnqueued("wallet") },
		"MessageHandled": func() { m.MessageHandled("wallet", time.Millisecond) },
		"Settlement":     func() { m.SettlementAttempt("claim", "failed") },
		"Commit":         func() { m.Commit(time.Millisecond, 4, nil) },
		"CommitWaits":    func() { m.CommitWaits(time.Millisecond, 0, 0, time.Millisecond) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocs per call, want 0", name, n)
		}
	}
}

func TestLookupConcurrent(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 1000 {
				m.ObserveHTTP("GET", "/r", 200+(g+i)%5, time.Millisecond)
			}
		}()
	}
	for range 8 {
		<-done
	}
	if got := count(t, reg, "http_request_duration_ms"); got != 5 {
		t.Fatalf("series = %d, want 5", got)
	}
}

func TestPebbleCollector(t *testing.T) {
	db, err := pebble.Open(t.TempDir(), &pebble.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := range 100 {
		if err := db.Set([]byte{byte(i)}, make([]byte, 1024), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	// A second sstable over the same keys, so that compacting them merges two
	// files rather than moving one.
	if err := db.Set([]byte{0}, []byte("again"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.Compact([]byte{0}, []byte{255}, false); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.RegisterPebble(db.Metrics)
	fams := scrape(t, reg)
	for _, name := range []string{
		"sge_pebble_wal_bytes", "sge_pebble_wal_files", "sge_pebble_wal_written_bytes_total",
		"sge_pebble_compactions_total", "sge_pebble_flushes_total", "sge_pebble_read_amplification",
		"sge_pebble_disk_usage_bytes", "sge_pebble_memtable_bytes", "sge_pebble_block_cache_bytes",
		"sge_pebble_compaction_seconds_total", "sge_pebble_flush_seconds_total",
	} {
		series(t, fams, name, nil)
	}
	if got := value(series(t, fams, "sge_pebble_wal_written_bytes_total", nil)); got < 100*1024 {
		t.Errorf("WAL bytes written = %v, want >= 100KiB", got)
	}
	if got := value(series(t, fams, "sge_pebble_flushes_total", nil)); got < 1 {
		t.Errorf("flushes = %v, want >= 1", got)
	}
	for _, name := range []string{"sge_pebble_compactions_total", "sge_pebble_compaction_seconds_total", "sge_pebble_flush_seconds_total"} {
		if got := value(series(t, fams, name, nil)); got <= 0 {
			t.Errorf("%s = %v after two flushes and a compaction, want > 0", name, got)
		}
	}
	if got := value(series(t, fams, "sge_pebble_level_files", map[string]string{"level": "6"})); got < 1 {
		t.Errorf("L6 files after the compaction = %v, want >= 1", got)
	}
	if got := value(series(t, fams, "sge_pebble_disk_usage_bytes", nil)); got == 0 {
		t.Error("disk usage 0")
	}
	// Each synced Set above waited for its own fsync.
	fsync := series(t, fams, "sge_pebble_wal_fsync_seconds", nil).GetHistogram()
	if fsync.GetSampleCount() < 100 || fsync.GetSampleSum() <= 0 {
		t.Errorf("WAL fsyncs: %d, sum %vs; want >= 100 and > 0", fsync.GetSampleCount(), fsync.GetSampleSum())
	}
	prev := uint64(0)
	for _, b := range fsync.GetBucket() {
		if n := b.GetCumulativeCount(); n < prev || n > fsync.GetSampleCount() {
			t.Errorf("WAL fsync buckets out of order: %v", fsync.GetBucket())
		}
		prev = b.GetCumulativeCount()
	}
	if prev == 0 {
		t.Errorf("no fsync in any bucket: %v", fsync.GetBucket())
	}
	if got := value(series(t, fams, "sge_go_sched_latency_seconds", nil)); got == 0 {
		t.Error("no scheduler latency samples")
	}
}

// Re-bucketing counts a source bucket under a bound only when the whole
// bucket lies at or below it.
func TestRebucket(t *testing.T) {
	upper := []float64{40e-6, 100e-6, 300e-6, 2e-3, 7e-3, 2}
	cum := []uint64{1, 3, 6, 10, 15, 21}
	got := rebucket(upper, cum)
	want := map[float64]uint64{50e-6: 1, 100e-6: 3, 250e-6: 3, 500e-6: 6, 1e-3: 6, 2.5e-3: 10, 5e-3: 10,
		10e-3: 15, 25e-3: 15, 50e-3: 15, 100e-3: 15, 250e-3: 15, 1: 15}
	if len(got) != len(want) {
		t.Fatalf("%d buckets, want %d", len(got), len(want))
	}
	for b, n := range want {
		if got[b] != n {
			t.Errorf("le=%g: %d, want %d", b, got[b], n)
		}
	}
}
