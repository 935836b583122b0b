package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"crypto/ed25519"

	"github.com/sgeplatform/sge/actors"
	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/input"
	"github.com/sgeplatform/sge/persistence"
	"github.com/sgeplatform/sge/telemetry"
	"github.com/sgeplatform/sge/transport"
)

// config is everything sged reads from its environment and flags. Each
// subsystem's part is that subsystem's own Config; defaults live there.
type config struct {
	gateway.Config
	tracing  telemetry.TracingConfig
	logLevel string
	// pprofAddr, when set, serves net/http/pprof on its own listener.
	pprofAddr string
	// effective is every setting's value as "ENV", value pairs for the
	// start-up log, secrets masked.
	effective []any
}

// setting is one variable: its environment name, its flag, its default as
// text (shown in --help), and how it is stored.
type setting struct {
	env, usage, def string
	secret          bool
	set             func(string) error
}

func (s setting) flag() string { return strings.ReplaceAll(strings.ToLower(s.env), "_", "-") }

func settings(c *config) []setting {
	return []setting{
		{env: "ADDR", def: transport.DefaultAddr, usage: "listen address", set: str(&c.Transport.Addr)},
		{env: "DATA_DIR", def: persistence.DefaultDir, usage: "Pebble directory", set: str(&c.Store.Dir)},
		{env: "WAL_DIR", usage: "Pebble's write-ahead log directory, on a device of its own (empty: in DATA_DIR); a store is refused under another one than it was written with", set: str(&c.Store.WALDir)},
		{env: "RL_REGISTER_PER_HOUR", def: itoa(actors.DefaultRegisterPerHourIP), usage: "register-ip: registrations per client IP per hour", set: integer(&c.Actors.RegisterPerHourIP)},
		{env: "RL_REGISTER_PER_DAY_WALLET", def: itoa(actors.DefaultRegisterPerDayWallet), usage: "register-wallet: registrations per wallet per day", set: integer(&c.Actors.RegisterPerDayWallet)},
		{env: "RL_CLAIM_PER_HOUR", def: itoa(actors.DefaultClaimPerHour), usage: "claim-wallet: claim/prepare per wallet per hour", set: integer(&c.Actors.ClaimPerHour)},
		{env: "TRUSTED_PROXIES", usage: "comma-separated CIDRs whose X-Forwarded-For is believed", set: func(v string) (err error) {
			c.Transport.TrustedProxies, err = input.ParsePrefixes(v)
			return err
		}},
		{env: "IDEMPOTENCY_TTL", def: actors.DefaultIdempotencyTTL.String(), usage: "idempotency record retention", set: duration(&c.Actors.IdempotencyTTL)},
		{env: "IDEMPOTENCY_REQUIRED", def: "false", usage: "answer 400 to POSTs without Idempotency-Key", set: func(v string) error {
			b, err := strconv.ParseBool(v)
			c.Actors.IdempotencyRequired, c.Transport.IdempotencyRequired = b, b
			return err
		}},
		{env: "CLAIM_TTL", def: actors.DefaultClaimTTL.String(), usage: "claim ticket lifetime", set: duration(&c.Actors.ClaimTTL)},
		{env: "CLAIM_SIGNING_KEY", secret: true, usage: "ed25519 seed, base64 (default: generated once, kept in the data dir)", set: func(v string) error {
			if v == "" {
				return nil
			}
			seed, err := base64.StdEncoding.DecodeString(v)
			if err != nil || len(seed) != ed25519.SeedSize {
				return errors.New("want a base64 32-byte ed25519 seed")
			}
			c.Actors.SigningKey = ed25519.NewKeyFromSeed(seed)
			return nil
		}},
		{env: "COMMERCE_WEBHOOK_SECRET", secret: true, usage: "Coinbase Commerce webhook shared secret; POST /api/webhooks/commerce is off when empty", set: str(&c.Transport.CommerceWebhookSecret)},
		{env: "WEBHOOK_DEDUPE_TTL", def: actors.DefaultWebhookDedupeTTL.String(), usage: "how long a webhook event id is remembered (at least 72h)", set: duration(&c.Actors.WebhookDedupeTTL)},
		{env: "ACTOR_IDLE_TIMEOUT", def: actors.DefaultIdleTimeout.String(), usage: "passivate idle wallet actors after", set: duration(&c.Actors.IdleTimeout)},
		{env: "MODE", def: actors.ModeMock, usage: "settlement backend: mock (in-process) or real (POST to SETTLEMENT_URL)", set: str(&c.Settlements.Mode)},
		{env: "SETTLEMENT_URL", usage: "real settlement backend endpoint (MODE=real only)", set: str(&c.Settlements.URL)},
		{env: "SETTLEMENT_TIMEOUT", def: actors.DefaultSettlementTimeout.String(), usage: "bound on one call to the real backend", set: duration(&c.Settlements.Timeout)},
		{env: "SETTLEMENT_MAX_ATTEMPTS", def: itoa(actors.DefaultSettlementMaxAttempts), usage: "attempts in all before a settlement is dead-lettered", set: integer(&c.Settlements.MaxAttempts)},
		{env: "SETTLEMENT_BACKOFF", def: actors.DefaultSettlementBackoff.String(), usage: "wait after the first failed attempt; doubles per attempt, ±20% jitter", set: duration(&c.Settlements.Backoff)},
		{env: "SETTLEMENT_MAX_BACKOFF", def: actors.DefaultSettlementMaxBackoff.String(), usage: "cap on one wait between attempts", set: duration(&c.Settlements.MaxBackoff)},
		{env: "SETTLEMENT_CONCURRENCY", def: itoa(actors.DefaultSettlementConcurrency), usage: "settlement backend calls in flight at most", set: integer(&c.Settlements.Concurrency)},
		{env: "MOCK_SETTLEMENT_LATENCY", def: actors.DefaultMockLatency.String(), usage: "mock backend latency (0: it answers at once)", set: durationOrNone(&c.Settlements.MockLatency)},
		{env: "MOCK_SETTLEMENT_FAILURE_RATE", def: "0", usage: "share of mock backend calls that fail, 0 to 1", set: float(&c.Settlements.MockFailureRate)},
		{env: "SWEEP_INTERVAL", def: actors.DefaultSweepInterval.String(), usage: "how often settlements left due with no actor are resumed", set: duration(&c.Settlements.SweepInterval)},
		{env: "ADMIN_TOKEN", secret: true, usage: "bearer token of the /admin API (off when empty)", set: str(&c.Transport.AdminToken)},
		{env: "MAX_LIVE_WALLETS", def: itoa(actors.DefaultMaxLiveWallets), usage: "cap on wallet actors alive at once; beyond it new wallets get 503", set: integer(&c.Actors.MaxLiveWallets)},
		{env: "WAL_MIN_SYNC_INTERVAL", def: persistence.DefaultWALMinSyncInterval.String(), usage: "least time between two WAL fsyncs; commits meanwhile share the next one (0: each commit syncs at once)", set: durationOrNone(&c.Store.WALMinSyncInterval)},
		{env: "REPLAY_CACHE_RECORDS", def: itoa(actors.DefaultReplayCacheRecords), usage: "recently committed idempotency records kept in memory to answer retries without a read (0: none)", set: integerOrNone(&c.Actors.ReplayCacheRecords)},
		{env: "MAX_BODY_BYTES", def: itoa(transport.DefaultMaxBodyBytes), usage: "request body limit", set: integer(&c.Transport.MaxBodyBytes)},
		{env: "SHUTDOWN_TIMEOUT", def: transport.DefaultShutdownTimeout.String(), usage: "drain bound on shutdown", set: duration(&c.Transport.ShutdownTimeout)},
		{env: "METRICS_ADDR", usage: "serve /metrics on this address instead of the main port", set: str(&c.MetricsAddr)},
		{env: "OTEL_ENABLED", def: "false", usage: "export traces over OTLP/HTTP", set: boolean(&c.tracing.Enabled)},
		{env: "OTEL_EXPORTER_OTLP_ENDPOINT", usage: "OTLP/HTTP endpoint (a URL ending in /v1/traces is used as is; other OTEL_* variables are honoured)", set: str(&c.tracing.Endpoint)},
		{env: "LOG_LEVEL", def: "info", usage: "debug, info, warn or error", set: str(&c.logLevel)},
		{env: "PPROF_ADDR", usage: "serve Go's pprof profiles on this address (keep it on loopback; off when empty)", set: str(&c.pprofAddr)},
	}
}

// parseConfig reads flags, then the environment, then defaults, in that
// order of precedence, and validates every subsystem. All problems are
// reported together.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	c := &config{}
	all := settings(c)
	fs := flag.NewFlagSet("sged", flag.ContinueOnError)
	fs.SetOutput(stderr)
	given := map[string]string{}
	for _, s := range all {
		usage := fmt.Sprintf("%s (env %s", s.usage, s.env)
		if s.def != "" {
			usage += ", default " + s.def
		}
		fs.Func(s.flag(), usage+")", func(v string) error { given[s.env] = v; return nil })
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("sged: unexpected arguments %q", fs.Args())
	}
	var errs []error
	for _, s := range all {
		v, ok := given[s.env]
		if !ok {
			v = getenv(s.env)
		}
		if v == "" {
			v = s.def
		}
		if err := s.set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.env, err))
		}
		if s.secret && v != "" {
			v = "***"
		}
		c.effective = append(c.effective, s.env, v)
	}
	// The signal-specific variable wins over the generic one (OTel spec):
	// leave the endpoint to the exporter, which reads both, unless the
	// flag named one.
	if _, flagged := given["OTEL_EXPORTER_OTLP_ENDPOINT"]; !flagged && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		c.tracing.Endpoint = ""
	}
	c.Store.EnsureDefaults()
	c.Actors.EnsureDefaults()
	c.Settlements.EnsureDefaults()
	c.Transport.EnsureDefaults()
	c.tracing.EnsureDefaults()
	errs = append(errs, c.Store.Validate(), c.Actors.Validate(), c.Settlements.Validate(), c.Transport.Validate(), c.tracing.Validate())
	if _, err := parseLevel(c.logLevel); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

func str(p *string) func(string) error { return func(v string) error { *p = v; return nil } }

// The subsystems read a zero setting as "use the default", so integer and
// duration refuse a 0 given on purpose rather than let it silently become
// the default. Where 0 means "none", integerOrNone and durationOrNone hand
// the subsystem its negative "none" instead.
var errZero = errors.New("must not be 0 (leave it unset for the default)")

func integer(p *int) func(string) error {
	return func(v string) (err error) {
		if *p, err = atoi(v); err == nil && *p == 0 {
			err = errZero
		}
		return err
	}
}

// integerOrNone is integer where 0, like any negative, means none.
func integerOrNone(p *int) func(string) error {
	return func(v string) (err error) {
		if *p, err = atoi(v); err == nil && *p == 0 {
			*p = -1
		}
		return err
	}
}

func atoi(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("not an integer: %q", v)
	}
	return n, nil
}

func float(p *float64) func(string) error {
	return func(v string) (err error) {
		*p, err = strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("not a number: %q", v)
		}
		return nil
	}
}

func boolean(p *bool) func(string) error {
	return func(v string) (err error) {
		*p, err = strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", v)
		}
		return nil
	}
}

func duration(p *time.Duration) func(string) error {
	return func(v string) (err error) {
		if *p, err = parseDuration(v); err == nil && *p == 0 {
			err = errZero
		}
		return err
	}
}

// durationOrNone is duration where 0 means none (no wait) and negative is
// refused.
func durationOrNone(p *time.Duration) func(string) error {
	return func(v string) (err error) {
		*p, err = parseDuration(v)
		switch {
		case err != nil:
			return err
		case *p < 0:
			return errors.New("must not be negative")
		case *p == 0:
			*p = -1
		}
		return nil
	}
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("not a Go duration (like 250ms, 2s, 24h): %q", v)
	}
	return d, nil
}

func itoa(n int) string { return strconv.Itoa(n) }
