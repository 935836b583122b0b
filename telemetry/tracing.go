package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracingConfig configures OpenTelemetry tracing.
type TracingConfig struct {
	// Enabled turns tracing on. Default false: a no-op provider, no exporter,
	// no goroutines.
	Enabled bool
	// Endpoint is the OTLP/HTTP collector (OTEL_EXPORTER_OTLP_ENDPOINT),
	// an http or https URL. A URL ending in /v1/traces is used as the traces
	// URL; otherwise /v1/traces is appended. Default empty: the exporter's
	// standard environment variables and default, http://localhost:4318.
	Endpoint string
	// ServiceName is the service.name resource attribute. Default "sged";
	// OTEL_SERVICE_NAME, when set, wins as the OTel spec says.
	ServiceName string
}

// EnsureDefaults fills unset fields with their defaults.
func (c *TracingConfig) EnsureDefaults() {
	if c.ServiceName == "" {
		c.ServiceName = "sged"
	}
}

// Validate reports every problem with c at once.
func (c *TracingConfig) Validate() error {
	var errs []error
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("telemetry: OTLP endpoint %q: want http(s)://host[:port][/path]", c.Endpoint))
		}
	}
	if c.ServiceName == "" {
		errs = append(errs, errors.New("telemetry: empty service name"))
	}
	return errors.Join(errs...)
}

// tracesURL accepts both the standard base endpoint and the seed's form that
// already names the traces path.
func tracesURL(endpoint string) string {
	if strings.HasSuffix(endpoint, "/v1/traces") {
		return endpoint
	}
	return strings.TrimSuffix(endpoint, "/") + "/v1/traces"
}

// StartTracing returns the tracer provider for cfg and a shutdown func that
// flushes pending spans; shutdown is safe to call twice. When enabled it
// exports over OTLP/HTTP through a batch span processor, and also installs
// the provider and the W3C trace-context propagator as the OTel globals for
// libraries that use them. When disabled it returns a no-op provider and
// starts nothing.
func StartTracing(ctx context.Context, cfg TracingConfig) (trace.TracerProvider, func(context.Context) error, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if !cfg.Enabled {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	// Later detectors win on conflicts, so the environment overrides cfg.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(cfg.ServiceName)),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: tracing resource: %w", err)
	}
	var opts []otlptracehttp.Option
	if cfg.Endpoint != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(tracesURL(cfg.Endpoint)))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(Propagator())
	return tp, tp.Shutdown, nil
}

// Propagator is the W3C trace-context propagator (traceparent, tracestate),
// independent of the OTel globals.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// Extract returns ctx with the remote span context of h's traceparent, if any.
func Extract(ctx context.Context, h *fasthttp.RequestHeader) context.Context {
	return Propagator().Extract(ctx, (*HeaderCarrier)(h))
}

// Inject writes the span context of ctx into h as traceparent, so the
// settlement backend joins the trace.
func Inject(ctx context.Context, h *fasthttp.RequestHeader) {
	Propagator().Inject(ctx, (*HeaderCarrier)(h))
}

// HeaderCarrier is a fasthttp request header seen as a
// propagation.TextMapCarrier; convert with (*HeaderCarrier)(&req.Header).
type HeaderCarrier fasthttp.RequestHeader

// Get returns the value of key.
func (c *HeaderCarrier) Get(key string) string {
	return string((*fasthttp.RequestHeader)(c).Peek(key))
}

// Set sets key to value.
func (c *HeaderCarrier) Set(key, value string) { (*fasthttp.RequestHeader)(c).Set(key, value) }

// Keys lists the header names.
func (c *HeaderCarrier) Keys() []string {
	var keys []string
	for k := range (*fasthttp.RequestHeader)(c).All() {
		keys = append(keys, string(k))
	}
	return keys
}
