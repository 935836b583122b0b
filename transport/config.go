package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sgeplatform/sge/internal/input"
	"github.com/valyala/fasthttp"
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
	// ShutdownTimeout bounds the drain on Shutdown. Default 15s.
	ShutdownTimeout time.Duration
	// Observer receives one event per request (metrics). Default: none.
	Observer Observer
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
}

type nopObserver struct{}

func (nopObserver) ObserveHTTP(string, string, int, time.Duration) {}

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
	if c.MaxHeaderBytes < 0 || c.Concurrency < 0 {
		errs = append(errs, errors.New("transport: header size and concurrency must be positive"))
	}
	return errors.Join(errs...)
}
