// Package telemetry exposes the gateway's Prometheus metrics, structured logs and opt-in OpenTelemetry tracing.
package telemetry

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every series the gateway exports, registered on an injected
// registry. A nil *Metrics is valid and turns every method into a no-op, so
// tests and benchmarks can run with metrics off.
//
// Label sets are resolved to their child series once and cached, so the
// methods called per request or per message do not allocate.
type Metrics struct {
	http        lookup[httpKey, prometheus.Observer]
	idempotency lookup[[2]string, prometheus.Counter]
	rateLimit   lookup[rateLimitKey, prometheus.Counter]
	actors      lookup[string, *actorSeries]
	settlements lookup[[2]string, prometheus.Counter]
	storageErrs lookup[string, prometheus.Counter]
	webhooks    lookup[[2]string, prometheus.Counter]

	commitSeconds prometheus.Histogram
	commitBatches prometheus.Histogram
	commitWaits   [4]prometheus.Counter // by commitWaitCauses
	writeStalls   prometheus.Histogram

	pulled *pulledCollector
}

type httpKey struct {
	method, route string
	status        int
}

type rateLimitKey struct {
	policy  string
	allowed bool
}

// actorSeries is one actor kind's children, resolved once per kind.
type actorSeries struct {
	alive, mailbox                          prometheus.Gauge
	spawned, passivated, restarts, messages prometheus.Counter
	handleSeconds                           prometheus.Observer
}

// Bucket layouts. HTTP latency keeps the seed's milliseconds; the rest follow
// the Prometheus convention of seconds.
var (
	httpBuckets    = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}
	messageBuckets = prometheus.ExponentialBuckets(10e-6, 4, 11) // 10µs .. ~10s
	commitBuckets  = prometheus.ExponentialBuckets(50e-6, 2, 17) // 50µs .. ~3.3s
	groupBuckets   = prometheus.ExponentialBuckets(1, 2, 10)     // 1 .. 512 batches per group
)

// NewMetrics registers all series, plus the Go runtime and process
// collectors, on reg. A nil reg returns nil: metrics off. It panics if a
// series is already registered, like prometheus.MustRegister.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		return nil
	}
	f := factory{reg}
	httpVec := f.histogramVec("http_request_duration_ms", "HTTP request latency in milliseconds by method, route template and status.", httpBuckets, "method", "route", "status")
	idem := f.counterVec("sge_idempotency_requests_total", "Idempotency-Key lookups by route and result (hit, miss, mismatch, inflight).", "route", "result")
	rl := f.counterVec("sge_ratelimit_decisions_total", "Rate-limit decisions by policy (allowed, limited).", "policy", "decision")
	alive := f.gaugeVec("sge_actors_alive", "Actors currently alive by kind.", "kind")
	mailbox := f.gaugeVec("sge_actor_mailbox_depth", "Messages enqueued and not yet handled, by actor kind.", "kind")
	spawned := f.counterVec("sge_actor_spawned_total", "Actors spawned by kind.", "kind")
	passivated := f.counterVec("sge_actor_passivated_total", "Actors passivated after idling, by kind.", "kind")
	restarts := f.counterVec("sge_actor_restarts_total", "Actor restarts by their supervisor, by kind.", "kind")
	messages := f.counterVec("sge_actor_messages_total", "Messages handled by actor kind.", "kind")
	handle := f.histogramVec("sge_actor_message_duration_seconds", "Time an actor spent handling one message.", messageBuckets, "kind")
	attempts := f.counterVec("sge_settlement_attempts_total", "Settlement attempts by kind and outcome (succeeded, failed, panicked, permanent).", "kind", "outcome")
	storageErrs := f.counterVec("sge_storage_errors_total", "Storage errors by operation.", "op")
	webhooks := f.counterVec("sge_webhook_deliveries_total", "Webhook deliveries by event type and result.", "type", "result")

	m := &Metrics{
		http: newLookup(func(k httpKey) prometheus.Observer {
			return httpVec.WithLabelValues(k.method, k.route, strconv.Itoa(k.status))
		}),
		idempotency: newLookup(func(k [2]string) prometheus.Counter { return idem.WithLabelValues(k[0], k[1]) }),
		rateLimit: newLookup(func(k rateLimitKey) prometheus.Counter {
			if k.allowed {
				return rl.WithLabelValues(k.policy, "allowed")
			}
			return rl.WithLabelValues(k.policy, "limited")
		}),
		actors: newLookup(func(kind string) *actorSeries {
			return &actorSeries{
				alive:         alive.WithLabelValues(kind),
				mailbox:       mailbox.WithLabelValues(kind),
				spawned:       spawned.WithLabelValues(kind),
				passivated:    passivated.WithLabelValues(kind),
				restarts:      restarts.WithLabelValues(kind),
				messages:      messages.WithLabelValues(kind),
				handleSeconds: handle.WithLabelValues(kind),
			}
		}),
		settlements: newLookup(func(k [2]string) prometheus.Counter { return attempts.WithLabelValues(k[0], k[1]) }),
		storageErrs: newLookup(func(op string) prometheus.Counter { return storageErrs.WithLabelValues(op) }),
		webhooks:    newLookup(func(k [2]string) prometheus.Counter { return webhooks.WithLabelValues(k[0], k[1]) }),

		commitSeconds: f.histogram("sge_pebble_commit_duration_seconds", "Latency of a synced Pebble commit.", commitBuckets),
		commitBatches: f.histogram("sge_pebble_commit_batches", "Batches grouped into one Pebble commit.", groupBuckets),
		commitWaits:   commitWaitCounters(f),
		writeStalls:   f.histogram("sge_pebble_write_stall_seconds", "Pebble write stalls (every commit held back until a flush or compaction catches up), by length.", commitBuckets),
		pulled:        &pulledCollector{},
	}
	// The known kinds and storage operations exist from the start, so dashboards show 0, not "no data".
	for _, kind := range []string{"wallet", "settlement"} {
		m.actors.get(kind)
	}
	for _, op := range []string{"commit", "read", "snapshot", "background"} {
		m.storageErrs.get(op)
	}
	reg.MustRegister(m.pulled, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveHTTP records one request. route must be the router's template (or
// one shared value for unknown paths); methods outside the standard set are
// folded into "OTHER" so clients cannot mint series.
func (m *Metrics) ObserveHTTP(method, route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.http.get(httpKey{normalizeMethod(method), route, status}).Observe(float64(d) / float64(time.Millisecond))
}

// Idempotency counts one Idempotency-Key lookup; result is hit, miss, mismatch or inflight.
func (m *Metrics) Idempotency(route, result string) {
	if m == nil {
		return
	}
	m.idempotency.get([2]string{route, result}).Inc()
}

// RateLimit counts one token-bucket decision for policy.
func (m *Metrics) RateLimit(policy string, allowed bool) {
	if m == nil {
		return
	}
	m.rateLimit.get(rateLimitKey{policy, allowed}).Inc()
}

// ActorSpawned counts an actor of kind ("wallet", "settlement") coming alive.
func (m *Metrics) ActorSpawned(kind string) {
	if m == nil {
		return
	}
	a := m.actors.get(kind)
	a.alive.Inc()
	a.spawned.Inc()
}

// ActorStopped counts an actor leaving; passivated says it idled out.
func (m *Metrics) ActorStopped(kind string, passivated bool) {
	if m == nil {
		return
	}
	a := m.actors.get(kind)
	a.alive.Dec()
	if passivated {
		a.passivated.Inc()
	}
}

// ActorRestarted counts a supervisor restart.
func (m *Metrics) ActorRestarted(kind string) {
	if m == nil {
		return
	}
	m.actors.get(kind).restarts.Inc()
}

// MailboxEnqueued counts a message sent to an actor of kind. Every call must
// be matched by one MessageHandled, or the depth gauge drifts.
func (m *Metrics) MailboxEnqueued(kind string) {
	if m == nil {
		return
	}
	m.actors.get(kind).mailbox.Inc()
}

// MessageHandled counts a message taken off the mailbox and handled in d.
func (m *Metrics) MessageHandled(kind string, d time.Duration) {
	if m == nil {
		return
	}
	a := m.actors.get(kind)
	a.mailbox.Dec()
	a.messages.Inc()
	a.handleSeconds.Observe(d.Seconds())
}

// Commit records one Pebble commit of a group of batches; a failed one is
// also a storage error with op="commit".
func (m *Metrics) Commit(d time.Duration, batches int, err error) {
	if m == nil {
		return
	}
	m.commitSeconds.Observe(d.Seconds())
	m.commitBatches.Observe(float64(batches))
	if err != nil {
		m.storageErrs.get("commit").Inc()
	}
}

// commitWaitCauses label sge_pebble_commit_wait_seconds_total, in the order
// of CommitWaits' arguments.
var commitWaitCauses = [4]string{"pipeline", "wal_rotation", "write_stall", "wal_sync"}

func commitWaitCounters(f factory) (c [4]prometheus.Counter) {
	vec := f.counterVec("sge_pebble_commit_wait_seconds_total",
		"Time synced Pebble commits spent waiting inside Pebble, by cause: their turn in the commit pipeline, a WAL rotation, a write stall, the WAL sync.",
		"cause")
	for i, cause := range commitWaitCauses {
		c[i] = vec.WithLabelValues(cause)
	}
	return c
}

// CommitWaits records where one group commit waited inside Pebble.
func (m *Metrics) CommitWaits(pipeline, walRotation, writeStall, walSync time.Duration) {
	if m == nil {
		return
	}
	for i, d := range [4]time.Duration{pipeline, walRotation, writeStall, walSync} {
		if d > 0 {
			m.commitWaits[i].Add(d.Seconds())
		}
	}
}

// WriteStall records one Pebble write stall of length d.
func (m *Metrics) WriteStall(d time.Duration) {
	if m != nil {
		m.writeStalls.Observe(d.Seconds())
	}
}

// StorageError counts a storage failure of op: commit, read, snapshot (the
// IP buckets'), or background (a failed Pebble flush or compaction).
func (m *Metrics) StorageError(op string) {
	if m == nil {
		return
	}
	m.storageErrs.get(op).Inc()
}

// SettlementAttempt counts one attempt; outcome is succeeded, failed, panicked or permanent.
func (m *Metrics) SettlementAttempt(kind, outcome string) {
	if m == nil {
		return
	}
	m.settlements.get([2]string{kind, outcome}).Inc()
}

// Webhook counts one webhook delivery of eventType with its result.
func (m *Metrics) Webhook(eventType, result string) {
	if m == nil {
		return
	}
	m.webhooks.get([2]string{eventType, result}).Inc()
}

// normalizeMethod returns a constant for the standard methods and "OTHER"
// for anything else, bounding the method label.
func normalizeMethod(method string) string {
	switch method {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
		return method
	}
	return "OTHER"
}

// maxCached bounds each lookup. Past it new label sets still count correctly,
// through the slower vec path; it only guards memory against a caller that
// passes unbounded label values.
const maxCached = 4096

// lookup caches child series by label set. The map is copy-on-write: a hit is
// one atomic load and a map read, no lock and no allocation; a miss (rare,
// once per label set) copies the map under mu.
type lookup[K comparable, V any] struct {
	m       atomic.Pointer[map[K]V]
	mu      sync.Mutex
	resolve func(K) V
}

func newLookup[K comparable, V any](resolve func(K) V) lookup[K, V] {
	return lookup[K, V]{resolve: resolve}
}

func (l *lookup[K, V]) get(k K) V {
	if m := l.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	return l.miss(k)
}

func (l *lookup[K, V]) miss(k K) V {
	l.mu.Lock()
	defer l.mu.Unlock()
	var old map[K]V
	if p := l.m.Load(); p != nil {
		old = *p
	}
	if v, ok := old[k]; ok {
		return v
	}
	v := l.resolve(k)
	if len(old) < maxCached {
		next := make(map[K]V, len(old)+1)
		maps.Copy(next, old)
		next[k] = v
		l.m.Store(&next)
	}
	return v
}

// factory creates and registers collectors on one registerer.
type factory struct{ reg prometheus.Registerer }

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}
