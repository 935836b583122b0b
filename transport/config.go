package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sgeplatform/sge/internal/input"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"
)

// Defaults, stated once; cmd/sged shows them as flag defaults.
const (
	DefaultAddr            = ":3000"
	DefaultMaxBodyBytes    = 64 << 10
	DefaultShutdownTimeout = 15 * time.Second
	DefaultReadTimeout     = 10 * time.Second
	DefaultWriteTimeout    = 10 * time.Second
	DefaultIdleTimeout     = 60 * time.Second
	DefaultMaxHeaderBytes  = 8 << 10
	DefaultConcurrency     = 64 << 10
)

// Config configures the HTTP front end.
type Config struct {
	// Addr is the listen address. Default ":3000".
	Addr string
	// MaxBodyBytes bounds request bodies; larger ones get 413 without being
	// read. Default 65536.
	MaxBodyBytes int
	// MaxHeaderBytes bounds the request line plus headers. Default 8 KiB.
	MaxHeaderBytes int
	// ReadTimeout bounds reading one request (headers and body), so a client
	// sending a byte a second cannot hold a connection. Default 10s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response. Default 10s.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Default 60s.
	IdleTimeout time.Duration
	// Concurrency caps connections served at once; beyond it new ones get
	// 503. Default 65536.
	Concurrency int
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	// Default: none.
	TrustedProxies input.Prefixes
	// IdempotencyRequired answers 400 to a POST without Idempotency-Key.
	// Default false.
	IdempotencyRequired bool
	// CommerceWebhookSecret is the shared secret of the Coinbase Commerce
	// webhook subscription; POST /api/webhooks/commerce is served only when
	// it is set. Default: empty (route off).
	CommerceWebhookSecret string
	// ShutdownTimeout bounds the drain on Shutdown. Default 15s.
	ShutdownTimeout time.Duration
	// Observer receives one event per request (metrics). Default: none.
	Observer Observer
	// TracerProvider, when set, traces each routed request as a server span
	// whose parent is the request's W3C traceparent. Default nil: tracing
	// off, and the request path makes no OTel calls at all.
	TracerProvider trace.TracerProvider
	// AdminToken enables the /admin routes for "Authorization: Bearer
	// <AdminToken>". Default empty: every /admin route is 404.
	AdminToken string
	// Admin serves the dead-letter routes (the gateway wires the settlement
	// supervisor); without it there are no /admin routes either.
	Admin Admin
	// Metrics, when set, is served at GET /metrics.
	Metrics fasthttp.RequestHandler
	// Logger receives notable events. Default slog.Default().
	Logger *slog.Logger
	// Alive is what /healthz reports: false when only a restart can help
	// (the store's write-ahead log failed). Default: always true.
	Alive func() bool
}

// Observer is told about each request once it is answered.
type Observer interface {
	ObserveHTTP(method, route string, status int, d time.Duration)
	// Webhook counts a webhook delivery: eventType is a bounded label (a
	// known charge type, "other" or "unverified"), result one of processed,
	// duplicate, bad_signature or ignored.
	Webhook(eventType, result string)
}

type nopObserver struct{}

func (nopObserver) ObserveHTTP(string, string, int, time.Duration) {}
func (nopObserver) Webhook(string, string)                         {}

// EnsureDefaults fills in zero fields.
func (c *Config) EnsureDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Alive == nil {
		c.Alive = func() bool { return true }
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("transport: MAX_BODY_BYTES must be positive, got %d", c.MaxBodyBytes))
	}
	for name, d := range map[string]time.Duration{
		"SHUTDOWN_TIMEOUT": c.ShutdownTimeout, "read timeout": c.ReadTimeout,
		"write timeout": c.WriteTimeout, "idle timeout": c.IdleTimeout,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("transport: %s must be positive, got %s", name, d))
		}
	}
	if c.CommerceWebhookSecret != strings.TrimSpace(c.CommerceWebhookSecret) {
		errs = append(errs, errors.New("transport: COMMERCE_WEBHOOK_SECRET has leading or trailing white space (a copy-paste slip?)"))
	}
	if c.MaxHeaderBytes < 0 || c.Concurrency < 0 {
		errs = append(errs, errors.New("transport: header size and concurrency must be positive"))
	}
	return errors.Join(errs...)
}
