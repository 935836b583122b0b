package actors

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Defaults, stated once; cmd/sged shows them as flag defaults.
const (
	DefaultIdleTimeout          = 2 * time.Minute
	DefaultIdempotencyTTL       = 24 * time.Hour
	DefaultClaimTTL             = 15 * time.Minute
	DefaultRegisterPerHourIP    = 5
	DefaultRegisterPerDayWallet = 10
	DefaultClaimPerHour         = 60
	DefaultSnapshotInterval     = 10 * time.Second
	DefaultPurgeInterval        = time.Minute
	DefaultAnswerTimeout        = 30 * time.Second
	// DefaultWebhookDedupeTTL outlasts Commerce's retry window (three days)
	// with room for a manual resend from its dashboard.
	DefaultWebhookDedupeTTL = 7 * 24 * time.Hour
	// MinWebhookDedupeTTL is Commerce's retry window: a shorter retention
	// would let a late retry be processed twice.
	MinWebhookDedupeTTL   = 72 * time.Hour
	DefaultMaxLiveWallets = 200_000
	// DefaultPressureIdleTimeout lets a burst of new wallets, each sending
	// one request, make room for itself.
	DefaultPressureIdleTimeout = time.Second
	// DefaultReplayCacheRecords holds 28 MiB of registration records
	// (BenchmarkRecentRecordsMemory): several seconds of registrations at
	// full load, minutes at ordinary rates.
	DefaultReplayCacheRecords = 65_536
)

// Config configures the actor system.
type Config struct {
	// IdleTimeout passivates a wallet actor after this long without a
	// message. Default DefaultIdleTimeout (2m).
	IdleTimeout time.Duration
	// PressureIdleTimeout replaces IdleTimeout while three quarters of
	// MaxLiveWallets or more are alive, for actors that arm their idle timer
	// then: without it, 200000 new wallets within two minutes would fill
	// the cap and the next one would get 503. Default 1s.
	PressureIdleTimeout time.Duration
	// IdempotencyTTL is how long idempotency records are kept. Default 24h.
	IdempotencyTTL time.Duration
	// WebhookDedupeTTL is how long a webhook event id is remembered; a
	// delivery after it is processed again. Default 168h, at least 72h.
	WebhookDedupeTTL time.Duration
	// IdempotencyRequired refuses mutating requests without a key. Default false.
	IdempotencyRequired bool
	// ClaimTTL is the lifetime of a claim ticket. Default 15m.
	ClaimTTL time.Duration
	// SigningKey signs claim tickets. Default: the key generated once and
	// kept in the store.
	SigningKey ed25519.PrivateKey
	// RegisterPerHourIP, RegisterPerDayWallet and ClaimPerHour are the
	// policies register-ip, register-wallet and claim-wallet. Defaults 5, 10, 60.
	RegisterPerHourIP    int
	RegisterPerDayWallet int
	ClaimPerHour         int
	// MaxLiveWallets caps wallet actors alive at once (a few KiB each): a
	// request for another wallet beyond it gets 503 until idle ones
	// passivate. Default 200000.
	MaxLiveWallets int
	// ReplayCacheRecords is how many recently committed idempotency
	// records are kept in memory to answer retries without a read (see
	// recentRecords). Default 65536; negative keeps none.
	ReplayCacheRecords int
	// IPLimiterMaxEntries bounds the IP limiter's memory. Default 1M entries.
	IPLimiterMaxEntries int
	// SnapshotInterval is how often IP buckets are snapshotted (unsynced).
	// Default 10s.
	SnapshotInterval time.Duration
	// PurgeInterval is how often expired idempotency records are deleted.
	// Default 1m.
	PurgeInterval time.Duration
	// AnswerTimeout bounds how long Do waits for a wallet actor; past it the
	// request gets 503 and may be retried with its key. Default 30s.
	AnswerTimeout time.Duration
	// Observer receives actor and domain events (metrics). Default: none.
	Observer Observer
	// TracerProvider, when set, traces each wallet step (child of the
	// request's span) and its Pebble commit (child of the step). Default
	// nil: tracing off, no OTel calls.
	TracerProvider trace.TracerProvider
	// Logger receives notable events. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now; tests move time forward with it.
	Now func() time.Time
}

// EnsureDefaults fills in zero fields.
func (c *Config) EnsureDefaults() {
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.PressureIdleTimeout, DefaultPressureIdleTimeout)
	setDefault(&c.IdempotencyTTL, DefaultIdempotencyTTL)
	setDefault(&c.ClaimTTL, DefaultClaimTTL)
	setDefault(&c.WebhookDedupeTTL, DefaultWebhookDedupeTTL)
	setDefault(&c.RegisterPerHourIP, DefaultRegisterPerHourIP)
	setDefault(&c.RegisterPerDayWallet, DefaultRegisterPerDayWallet)
	setDefault(&c.ClaimPerHour, DefaultClaimPerHour)
	setDefault(&c.SnapshotInterval, DefaultSnapshotInterval)
	setDefault(&c.PurgeInterval, DefaultPurgeInterval)
	setDefault(&c.AnswerTimeout, DefaultAnswerTimeout)
	setDefault(&c.MaxLiveWallets, DefaultMaxLiveWallets)
	setDefault(&c.ReplayCacheRecords, DefaultReplayCacheRecords)
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

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("actors: %s must be positive, got %s", name, d))
		}
	}
	positive("ACTOR_IDLE_TIMEOUT", c.IdleTimeout)
	positive("pressure idle timeout", c.PressureIdleTimeout)
	positive("IDEMPOTENCY_TTL", c.IdempotencyTTL)
	positive("CLAIM_TTL", c.ClaimTTL)
	if c.WebhookDedupeTTL < MinWebhookDedupeTTL {
		errs = append(errs, fmt.Errorf("actors: WEBHOOK_DEDUPE_TTL must be at least %s (Commerce retries for three days), got %s",
			MinWebhookDedupeTTL, c.WebhookDedupeTTL))
	}
	positive("snapshot interval", c.SnapshotInterval)
	positive("purge interval", c.PurgeInterval)
	positive("answer timeout", c.AnswerTimeout)
	for name, n := range map[string]int{
		"MAX_LIVE_WALLETS":           c.MaxLiveWallets,
		"RL_REGISTER_PER_HOUR":       c.RegisterPerHourIP,
		"RL_REGISTER_PER_DAY_WALLET": c.RegisterPerDayWallet,
		"RL_CLAIM_PER_HOUR":          c.ClaimPerHour,
	} {
		if n <= 0 {
			errs = append(errs, fmt.Errorf("actors: %s must be positive, got %d", name, n))
		}
	}
	if c.SigningKey != nil && len(c.SigningKey) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("actors: CLAIM_SIGNING_KEY must be a 32-byte ed25519 seed"))
	}
	return errors.Join(errs...)
}

// Observer receives events from the actor system; telemetry implements it.
// Methods are called on hot paths and must be cheap and non-blocking.
type Observer interface {
	ActorSpawned(kind string)
	ActorStopped(kind string, passivated bool)
	ActorRestarted(kind string)
	MailboxEnqueued(kind string)
	MessageHandled(kind string, d time.Duration)
	Idempotency(route, result string)
	RateLimit(policy string, allowed bool)
	StorageError(op string)
	// SettlementAttempt counts one settlement attempt of kind; outcome is
	// succeeded, failed, panicked or permanent.
	SettlementAttempt(kind, outcome string)
}

// NopObserver ignores every event.
type NopObserver struct{}

func (NopObserver) ActorSpawned(string)                  {}
func (NopObserver) ActorStopped(string, bool)            {}
func (NopObserver) ActorRestarted(string)                {}
func (NopObserver) MailboxEnqueued(string)               {}
func (NopObserver) MessageHandled(string, time.Duration) {}
func (NopObserver) Idempotency(string, string)           {}
func (NopObserver) RateLimit(string, bool)               {}
func (NopObserver) StorageError(string)                  {}
func (NopObserver) SettlementAttempt(string, string)     {}
