// Package gateway assembles the service from its subsystems (persistence,
// actors, transport, telemetry) and runs its lifecycle. cmd/sged and the
// end-to-end tests and benchmarks build the service the same way through it.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sgeplatform/sge/actors"
	"github.com/sgeplatform/sge/persistence"
	"github.com/sgeplatform/sge/telemetry"
	"github.com/sgeplatform/sge/transport"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Config is the whole service's configuration: each subsystem's own Config.
type Config struct {
	Transport transport.Config
	Actors    actors.Config
	Store     persistence.Config
	// Settlements configures the settlement supervisor and backend.
	Settlements actors.SettlementConfig
	// MetricsAddr, when set, serves /metrics on its own listener instead of
	// the main port.
	MetricsAddr string
	// Logger is the service's logger. Default slog.Default().
	Logger *slog.Logger
	// Registry receives every metric. Default: a new registry.
	Registry *prometheus.Registry
	// DisableMetrics turns metrics off: no registry, no /metrics route, and
	// no observer calls on the request path. For benchmarks. Default false.
	DisableMetrics bool
	// TracerProvider traces requests, wallet steps and Pebble commits.
	// Default nil, or a no-op provider: tracing off, the hot path makes no
	// OTel calls. cmd/sged builds it with telemetry.StartTracing and shuts
	// it down (flushing spans) after Shutdown.
	TracerProvider trace.TracerProvider
}

// Gateway is one running service.
type Gateway struct {
	Store  *persistence.Store
	System *actors.System
	// Settlements runs the settlements the System creates.
	Settlements *actors.Supervisor
	Server      *transport.Server
	Metrics     *telemetry.Metrics
	Registry    *prometheus.Registry

	cfg        Config
	log        *slog.Logger
	as         *actor.ActorSystem
	metricsSrv *fasthttp.Server
	metricsLn  net.Listener

	// life orders Serve against Shutdown: a Serve that comes second serves
	// nothing, for everything behind the listener is stopped by then.
	life    sync.Mutex
	shut    bool           // guarded by life
	serving []net.Listener // guarded by life

	shutOnce sync.Once
	shutErr  error
}

// New opens the store and starts the actors; nothing listens until Serve.
// On error everything opened so far is closed again.
func New(cfg Config) (g *Gateway, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DisableMetrics {
		cfg.Registry, cfg.MetricsAddr = nil, ""
	} else if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	tp := cfg.TracerProvider
	if _, noop := tp.(tracenoop.TracerProvider); noop {
		tp = nil // skip the no-op calls altogether
	}
	g = &Gateway{cfg: cfg, log: cfg.Logger, Registry: cfg.Registry}
	if cfg.Registry != nil {
		g.Metrics = telemetry.NewMetrics(cfg.Registry)
	}

	cfg.Store.Logger = g.log
	if g.Metrics != nil {
		cfg.Store.OnCommit = g.Metrics.Commit
		cfg.Store.OnCommitWaits = g.Metrics.CommitWaits
		cfg.Store.OnWriteStall = g.Metrics.WriteStall
		cfg.Store.OnBackgroundError = func(error) { g.Metrics.StorageError("background") }
	}
	if g.Store, err = persistence.Open(cfg.Store); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = g.Store.Close()
		}
	}()
	g.Metrics.RegisterPebble(g.Store.DB().Metrics)
	g.Metrics.DiskFree(g.Store.DiskFree)

	g.as = actor.NewActorSystemWithConfig(actor.Configure(
		actor.WithLoggerFactory(telemetry.ActorLoggerFactory(g.log))))
	if g.Metrics != nil {
		cfg.Actors.Observer = g.Metrics
		cfg.Transport.Observer = g.Metrics
	}
	cfg.Actors.TracerProvider = tp
	cfg.Transport.TracerProvider = tp
	cfg.Actors.Logger = g.log
	if g.System, err = actors.New(cfg.Actors, g.Store, g.as); err != nil {
		g.as.Shutdown()
		return nil, err
	}

	if g.Metrics != nil {
		cfg.Settlements.Observer = g.Metrics
	}
	cfg.Settlements.TracerProvider = tp
	cfg.Settlements.Logger = g.log
	if cfg.Settlements.Now == nil {
		cfg.Settlements.Now = cfg.Actors.Now
	}
	if g.Settlements, err = actors.NewSupervisor(cfg.Settlements, g.Store, g.as); err != nil {
		_ = g.System.Shutdown(context.Background())
		g.as.Shutdown()
		return nil, err
	}
	g.System.OnSettlementCreated(g.Settlements.Created)
	// Gauges come from counters the supervisor keeps (counted from g/due and
	// g/dead at start-up), so a scrape costs no scan.
	g.Metrics.SettlementsByStatus(g.Settlements.Counts)
	g.Metrics.DeadLetters(g.Settlements.DeadLetterCount)

	cfg.Transport.Admin = g.Settlements
	cfg.Transport.Alive = func() bool { return !g.Store.Broken() }
	cfg.Transport.Logger = g.log
	if cfg.MetricsAddr == "" && cfg.Registry != nil {
		cfg.Transport.Metrics = telemetry.Handler(cfg.Registry)
	}
	if g.Server, err = transport.New(cfg.Transport, g.System, g.Store.Healthy); err != nil {
		_ = g.System.Shutdown(context.Background())
		_ = g.Settlements.Shutdown(context.Background())
		g.as.Shutdown()
		return nil, err
	}
	g.Metrics.Readiness(g.Server.Ready)
	return g, nil
}

// Listen opens the main listener on the configured address (and the metrics
// one, if configured).
func (g *Gateway) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", g.cfg.Transport.Addr)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen on %s: %w", g.cfg.Transport.Addr, err)
	}
	if g.cfg.MetricsAddr != "" && g.Registry != nil {
		if g.metricsLn, err = net.Listen("tcp", g.cfg.MetricsAddr); err != nil {
			ln.Close()
			return nil, fmt.Errorf("gateway: listen for metrics on %s: %w", g.cfg.MetricsAddr, err)
		}
	}
	if g.metricsLn != nil {
		g.metricsSrv = &fasthttp.Server{Handler: telemetry.Handler(g.Registry), NoDefaultServerHeader: true}
	}
	return ln, nil
}

// MetricsAddr is the metrics listener's address, or nil when metrics are
// served on the main port.
func (g *Gateway) MetricsAddr() net.Addr {
	if g.metricsLn == nil {
		return nil
	}
	return g.metricsLn.Addr()
}

// Serve marks the service ready and serves on ln until Shutdown.
// After Shutdown it closes ln and returns nil at once.
func (g *Gateway) Serve(ln net.Listener) error {
	g.life.Lock()
	if g.shut {
		g.life.Unlock()
		_ = ln.Close() // Shutdown closed the metrics listener already
		return nil
	}
	g.serving = append(g.serving, ln)
	// Everything behind the listener is up already, so the service is ready
	// before it serves: a probe answered by the new server never sees it
	// half started.
	g.Settlements.Start()
	g.Server.SetReady(true)
	errc := make(chan error, 2)
	if g.metricsSrv != nil {
		go func() { errc <- g.metricsSrv.Serve(g.metricsLn) }()
	}
	go func() { errc <- g.Server.Serve(ln) }()
	g.life.Unlock()
	return <-errc
}

// Shutdown stops the service in order: /readyz false, listener closed,
// requests in flight answered (bounded by ctx), wallet actors stopped after
// draining, IP buckets snapshotted, settlement calls finished (or cancelled
// when ctx runs out) and settlement actors stopped, Pebble closed. Safe to call twice.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.shutOnce.Do(func() {
		g.life.Lock()
		g.shut = true
		serving := g.serving
		g.life.Unlock()
		var errs []error
		if err := g.Server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("gateway: drain requests: %w", err))
		}
		if g.metricsSrv != nil {
			_ = g.metricsSrv.ShutdownWithContext(ctx)
		}
		// fasthttp closes only the listeners its Serve has taken; one that
		// Serve has handed over but fasthttp not yet taken would be served
		// after all. Closed here, fasthttp's Serve returns at once.
		for _, ln := range serving {
			_ = ln.Close()
		}
		if g.metricsLn != nil {
			_ = g.metricsLn.Close()
		}
		if err := g.System.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		// After the wallet actors: they may still hand over new settlements.
		if err := g.Settlements.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		g.as.Shutdown()
		if err := g.Store.Close(); err != nil {
			errs = append(errs, err)
		}
		g.shutErr = errors.Join(errs...)
	})
	return g.shutErr
}
