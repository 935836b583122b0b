package actors

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Settlement backend modes (MODE).
const (
	ModeMock = "mock"
	ModeReal = "real"
)

// Settlement defaults, stated once; cmd/sged shows them as flag defaults.
const (
	DefaultSettlementMaxAttempts = 8
	DefaultSettlementBackoff     = 2 * time.Second
	DefaultSettlementMaxBackoff  = 15 * time.Minute
	DefaultSettlementConcurrency = 64
	DefaultSettlementTimeout     = 10 * time.Second
	DefaultSweepInterval         = 30 * time.Second
	DefaultMockLatency           = 50 * time.Millisecond
)

// SettlementConfig configures the settlement supervisor and its backend.
type SettlementConfig struct {
	// MaxAttempts is the number of attempts in all before a settlement is
	// dead-lettered. Default 8.
	MaxAttempts int
	// Backoff is the wait after the first failed attempt; the wait after
	// attempt n is Backoff*2^(n-1), ±20% jitter, capped at MaxBackoff.
	// Default 2s.
	Backoff time.Duration
	// MaxBackoff caps one wait. Default 15m.
	MaxBackoff time.Duration
	// Concurrency bounds backend calls in flight. Default 64.
	Concurrency int
	// MaxLive bounds settlement actors in memory; beyond it settlements wait
	// in g/due until the sweeper admits them. Default 64*Concurrency.
	MaxLive int
	// SweepInterval is how often g/due is scanned for settlements with no
	// live actor. Default 30s.
	SweepInterval time.Duration
	// Mode is ModeMock (default) or ModeReal.
	Mode string
	// URL is the real backend's endpoint; required in real mode, refused in
	// mock mode.
	URL string
	// Timeout bounds one call to the real backend. Default 10s.
	Timeout time.Duration
	// MockLatency is the mock backend's simulated latency. Default 50ms;
	// negative: none, the mock answers at once.
	MockLatency time.Duration
	// MockFailureRate is the share of mock calls that fail, in [0,1]. Default 0.
	MockFailureRate float64
	// MockPanicRate is the share of mock calls that panic, in [0,1], for
	// tests of supervision. Default 0.
	MockPanicRate float64
	// MockSeed seeds the mock's random draws, so a test run is repeatable.
	// Default: random.
	MockSeed uint64
	// Backend, when set, replaces the one Mode selects (tests).
	Backend Backend
	// TracerProvider, when set, traces each attempt as a span in the trace
	// of the request that created the settlement. Default nil: off.
	TracerProvider trace.TracerProvider
	// Observer receives settlement and actor events. Default: none.
	Observer Observer
	// Logger receives notable events. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// EnsureDefaults fills in zero fields.
func (c *SettlementConfig) EnsureDefaults() {
	setDefault(&c.MaxAttempts, DefaultSettlementMaxAttempts)
	setDefault(&c.Backoff, DefaultSettlementBackoff)
	setDefault(&c.MaxBackoff, DefaultSettlementMaxBackoff)
	setDefault(&c.Concurrency, DefaultSettlementConcurrency)
	setDefault(&c.MaxLive, 64*c.Concurrency)
	setDefault(&c.SweepInterval, DefaultSweepInterval)
	setDefault(&c.Mode, ModeMock)
	setDefault(&c.Timeout, DefaultSettlementTimeout)
	setDefault(&c.MockLatency, DefaultMockLatency)
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports every problem at once.
func (c *SettlementConfig) Validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{
		"SETTLEMENT_BACKOFF": c.Backoff, "SETTLEMENT_MAX_BACKOFF": c.MaxBackoff,
		"SWEEP_INTERVAL": c.SweepInterval, "SETTLEMENT_TIMEOUT": c.Timeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("actors: %s must be positive, got %s", name, d))
		}
	}
	for name, n := range map[string]int{
		"SETTLEMENT_MAX_ATTEMPTS": c.MaxAttempts, "SETTLEMENT_CONCURRENCY": c.Concurrency, "settlement max live": c.MaxLive,
	} {
		if n <= 0 {
			errs = append(errs, fmt.Errorf("actors: %s must be positive, got %d", name, n))
		}
	}
	for name, r := range map[string]float64{"MOCK_SETTLEMENT_FAILURE_RATE": c.MockFailureRate, "mock panic rate": c.MockPanicRate} {
		if !(r >= 0 && r <= 1) { // NaN fails too
			errs = append(errs, fmt.Errorf("actors: %s must be within [0, 1], got %g", name, r))
		}
	}
	switch c.Mode {
	case ModeMock:
		if c.URL != "" {
			errs = append(errs, errors.New("actors: SETTLEMENT_URL is set but MODE=mock: refusing to start, settlements would never reach the real backend; set MODE=real or unset SETTLEMENT_URL"))
		}
	case ModeReal:
		if c.URL == "" && c.Backend == nil {
			errs = append(errs, errors.New("actors: MODE=real needs SETTLEMENT_URL, the settlement backend's endpoint"))
		} else if c.URL != "" {
			if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("actors: SETTLEMENT_URL must be an http(s) URL, got %q", c.URL))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("actors: MODE must be %q or %q, got %q", ModeMock, ModeReal, c.Mode))
	}
	return errors.Join(errs...)
}
