package actors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/sgeplatform/sge/persistence"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Backend carries out one settlement attempt. It must honour ctx (cancelled
// at shutdown) and be safe for concurrent use. A nil error is success; an
// error wrapping *PermanentError dead-letters the settlement at once; any
// other error is retried with backoff.
type Backend interface {
	Settle(ctx context.Context, st *persistence.Settlement) error
}

// PermanentError is a failure that retrying cannot fix (e.g. a 4xx answer).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// NewBackend builds the backend cfg.Mode selects, or returns cfg.Backend.
func NewBackend(cfg SettlementConfig) Backend {
	switch {
	case cfg.Backend != nil:
		return cfg.Backend
	case cfg.Mode == ModeReal:
		return NewHTTPBackend(cfg.URL, cfg.Timeout)
	}
	return NewMockBackend(cfg.MockLatency, cfg.MockFailureRate, cfg.MockPanicRate, cfg.MockSeed)
}

// MockBackend simulates the settlement backend in-process: each call waits
// Latency and then fails or panics with the configured probabilities. The
// draws come from one PCG stream seeded by Seed, so a run is repeatable
// (calls made in the same order get the same outcomes).
type MockBackend struct {
	latency             time.Duration
	failRate, panicRate float64
	mu                  sync.Mutex
	rng                 *rand.Rand
}

// NewMockBackend returns a mock; seed 0 picks a random seed.
func NewMockBackend(latency time.Duration, failRate, panicRate float64, seed uint64) *MockBackend {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &MockBackend{latency: latency, failRate: failRate, panicRate: panicRate,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Settle implements Backend.
func (m *MockBackend) Settle(ctx context.Context, st *persistence.Settlement) error {
	m.mu.Lock()
	p := m.rng.Float64()
	m.mu.Unlock()
	if m.latency > 0 {
		t := time.NewTimer(m.latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	switch {
	case p < m.panicRate:
		panic("mock settlement backend: simulated panic")
	case p < m.panicRate+m.failRate:
		return errors.New("mock settlement backend: simulated failure")
	}
	return nil
}

// HTTPBackend POSTs each settlement as JSON to a URL, with the settlement id
// as Idempotency-Key so the backend can deduplicate our retries, and the
// creating request's traceparent when there was one.
type HTTPBackend struct {
	url    string
	client *http.Client
}

// NewHTTPBackend returns a backend posting to url; each call is bounded by timeout.
func NewHTTPBackend(url string, timeout time.Duration) *HTTPBackend {
	return &HTTPBackend{url: url, client: &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
	}}
}

// Settle implements Backend: 2xx is success; 4xx other than 408 and 429 is
// permanent; everything else (5xx, 408, 429, network errors, timeouts) is
// retried.
func (h *HTTPBackend) Settle(ctx context.Context, st *persistence.Settlement) error {
	body := st.AppendJSON(make([]byte, 0, 1024)) // a settlement is well under 1 KiB
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return &PermanentError{err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", st.ID)
	// The attempt's span when tracing is on, else the creating request's
	// traceparent as stored, so the backend joins that trace either way.
	if trace.SpanContextFromContext(ctx).IsValid() {
		propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	} else if st.TraceParent != "" {
		req.Header.Set("traceparent", st.TraceParent)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("settlement backend: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("settlement backend answered %d: %s", resp.StatusCode, bytes.TrimSpace(snippet))
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429 {
		return &PermanentError{err}
	}
	return err
}

// CloseIdleConnections releases pooled connections (at shutdown).
func (h *HTTPBackend) CloseIdleConnections() { h.client.CloseIdleConnections() }
