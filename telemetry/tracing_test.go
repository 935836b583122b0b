package telemetry

import (
	"bytes"
	"context"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sgeplatform/sge/internal/otlptest"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/goleak"
)

func TestTracingExportsSpans(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "") // the default under test, not the environment's
	for _, tt := range []struct{ name, suffix, wantPath string }{
		{"base endpoint", "/otlp", "/otlp/v1/traces"},
		{"full traces URL", "/collector/v1/traces", "/collector/v1/traces"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rcv := otlptest.NewReceiver(t)
			tp, shutdown, err := StartTracing(context.Background(), TracingConfig{Enabled: true, Endpoint: rcv.URL() + tt.suffix})
			if err != nil {
				t.Fatal(err)
			}
			tr := tp.Tracer("sge/test")

			// An incoming request carrying a client's traceparent.
			const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
			var in fasthttp.RequestHeader
			in.Set("traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
			ctx, reqSpan := tr.Start(Extract(context.Background(), &in), "POST /api/claim/record", trace.WithSpanKind(trace.SpanKindServer))
			actx, step := tr.Start(ctx, "wallet.step")
			_, commit := tr.Start(actx, "pebble.commit")
			commit.End()
			step.End()
			reqSpan.End()

			// The settlement attempt runs later, in its own trace, linked to the request.
			sctx, attempt := tr.Start(context.Background(), "settlement.attempt",
				trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: reqSpan.SpanContext()}))
			var out fasthttp.RequestHeader
			Inject(sctx, &out)
			attempt.End()

			// What the settlement backend sees: the attempt's trace and span.
			backend := trace.SpanContextFromContext(Extract(context.Background(), &out))
			if backend.TraceID() != attempt.SpanContext().TraceID() || backend.SpanID() != attempt.SpanContext().SpanID() {
				t.Errorf("backend saw %q", out.Peek("traceparent"))
			}

			if err := shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := shutdown(context.Background()); err != nil {
				t.Fatalf("second shutdown: %v", err)
			}

			for _, p := range rcv.Paths() {
				if p != tt.wantPath {
					t.Errorf("export to %s, want %s", p, tt.wantPath)
				}
			}
			if services := rcv.ServiceNames(); len(services) == 0 || services[0] != "sged" {
				t.Errorf("service.name = %v, want sged", services)
			}
			spans := map[string]*tracepb.Span{} // by name; each is started once
			for _, s := range rcv.Spans() {
				spans[s.GetName()] = s
			}
			for _, name := range []string{"POST /api/claim/record", "wallet.step", "pebble.commit", "settlement.attempt"} {
				if spans[name] == nil {
					t.Fatalf("span %q not exported; got %v", name, spans)
				}
			}
			id := func(b []byte) string { return hex.EncodeToString(b) }
			req := spans["POST /api/claim/record"]
			if id(req.TraceId) != clientTrace || id(req.ParentSpanId) != clientSpan {
				t.Errorf("request span trace %s parent %s, want the client's %s/%s", id(req.TraceId), id(req.ParentSpanId), clientTrace, clientSpan)
			}
			if !bytes.Equal(spans["wallet.step"].ParentSpanId, req.SpanId) || !bytes.Equal(spans["pebble.commit"].ParentSpanId, spans["wallet.step"].SpanId) {
				t.Error("request -> wallet.step -> pebble.commit parentage broken")
			}
			links := spans["settlement.attempt"].GetLinks()
			if len(links) != 1 || !bytes.Equal(links[0].SpanId, req.SpanId) || !bytes.Equal(links[0].TraceId, req.TraceId) {
				t.Errorf("settlement.attempt links = %v, want the request span", links)
			}
		})
	}
}

func TestTracingOffStartsNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tp, shutdown, err := StartTracing(context.Background(), TracingConfig{Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tp.(noop.TracerProvider); !ok {
		t.Fatalf("provider %T, want noop", tp)
	}
	_, span := tp.Tracer("x").Start(context.Background(), "op")
	span.End()
	if span.IsRecording() {
		t.Error("span recording with tracing off")
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestTracingConfig(t *testing.T) {
	for _, tt := range []struct {
		endpoint, want string
		bad            bool
	}{
		{"http://collector:4318", "http://collector:4318/v1/traces", false},
		{"https://collector:4318/", "https://collector:4318/v1/traces", false},
		{"http://collector:4318/v1/traces", "http://collector:4318/v1/traces", false},
		{"collector:4318", "", true},
		{"ftp://collector", "", true},
	} {
		c := TracingConfig{Enabled: true, Endpoint: tt.endpoint}
		c.EnsureDefaults()
		if err := c.Validate(); (err != nil) != tt.bad {
			t.Errorf("Validate(%q) = %v, bad=%v", tt.endpoint, err, tt.bad)
		}
		if !tt.bad && tracesURL(tt.endpoint) != tt.want {
			t.Errorf("tracesURL(%q) = %q, want %q", tt.endpoint, tracesURL(tt.endpoint), tt.want)
		}
		if c.ServiceName != "sged" {
			t.Errorf("default service name %q", c.ServiceName)
		}
	}
	if _, _, err := StartTracing(context.Background(), TracingConfig{Enabled: true, Endpoint: "nope"}); err == nil {
		t.Error("StartTracing accepted a bad endpoint")
	}
}

// The shutdown deadline bounds a flush to a collector that never answers.
func TestTracingShutdownBounded(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hang) }) // runs first: Close waits for handlers
	tp, shutdown, err := StartTracing(context.Background(), TracingConfig{Enabled: true, Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, s := tp.Tracer("x").Start(context.Background(), "lost")
	s.End()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := shutdown(ctx); err == nil {
		t.Error("shutdown reported success with a hung collector")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
}
