// Package transport is the HTTP front end: it parses and validates requests,
// hands each to its wallet's actor and writes the answer.
package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/fasthttp/router"
	"github.com/sgeplatform/sge/actors"
	"github.com/sgeplatform/sge/internal/problem"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"
)

// Server serves the v1 API.
type Server struct {
	cfg    Config
	sys    *actors.System
	srv    *fasthttp.Server
	router *router.Router
	ready  atomic.Bool
	// healthy reports whether storage can take writes; readiness needs it.
	healthy      func() bool
	trustProxies bool
	// webhookSecret keys the Commerce webhook HMAC; nil when the route is off.
	webhookSecret []byte
	// tracer is nil when tracing is off.
	tracer trace.Tracer

	shutOnce sync.Once
	shutErr  error
}

// New builds the server; it is not ready until SetReady(true).
func New(cfg Config, sys *actors.System, healthy func() bool) (*Server, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if healthy == nil {
		healthy = func() bool { return true }
	}
	s := &Server{cfg: cfg, sys: sys, healthy: healthy, trustProxies: cfg.TrustedProxies.String() != ""}
	if cfg.CommerceWebhookSecret != "" {
		s.webhookSecret = []byte(cfg.CommerceWebhookSecret)
	}
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer(tracerName)
	}
	s.router = s.routes()
	s.srv = &fasthttp.Server{
		Handler:               s.router.Handler,
		ErrorHandler:          s.errorHandler,
		Name:                  "sged",
		Concurrency:           cfg.Concurrency,
		ReadBufferSize:        cfg.MaxHeaderBytes,
		MaxRequestBodySize:    cfg.MaxBodyBytes,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		CloseOnShutdown:       true,
		NoDefaultContentType:  true,
		NoDefaultServerHeader: true,
		Logger:                fasthttpLogger{s},
	}
	return s, nil
}

// Handler is the whole request handler, for in-memory benchmarks.
func (s *Server) Handler() fasthttp.RequestHandler { return s.srv.Handler }

// SetReady flips /readyz.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Ready reports what /readyz answers.
func (s *Server) Ready() bool { return s.ready.Load() && s.healthy() }

// Serve serves on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Shutdown turns /readyz false, stops accepting connections and waits for
// requests in flight, bounded by ctx. Safe to call twice.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() {
		s.ready.Store(false)
		s.shutErr = s.srv.ShutdownWithContext(ctx)
	})
	return s.shutErr
}

// errorHandler answers what fasthttp refuses before routing: bodies over
// the limit, oversized headers, malformed requests and timeouts.
func (s *Server) errorHandler(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		writeProblem(ctx, 413, "body-too-large", "Content Too Large", "the request body exceeds the limit")
	case isTimeout(err):
		writeProblem(ctx, 408, "request-timeout", "Request Timeout", "the request was not received in time")
	default:
		var small *fasthttp.ErrSmallBuffer
		if errors.As(err, &small) {
			writeProblem(ctx, 431, "headers-too-large", "Request Header Fields Too Large", "the request headers exceed the limit")
			return
		}
		writeProblem(ctx, 400, "malformed-request", "Bad Request", "the request could not be parsed as HTTP/1.1")
	}
	s.cfg.Observer.ObserveHTTP("OTHER", routeUnknown, ctx.Response.StatusCode(), 0)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func writeProblem(ctx *fasthttp.RequestCtx, status int, slug, title, detail string) {
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.SetContentType(problem.ContentType)
	ctx.SetBody(problem.Append(ctx.Response.Body()[:0], status, slug, title, detail))
}

type fasthttpLogger struct{ s *Server }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.s.cfg.Logger.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
}
