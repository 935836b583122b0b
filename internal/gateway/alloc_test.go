package gateway_test

import (
	"context"
	"net"
	"testing"

	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/sgetest"
	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// requestPathAllocs runs one idempotent replay (the path without an fsync:
// transport, wallet actor, Pebble read, answer) through the real handler and
// returns its allocations per request.
func requestPathAllocs(t *testing.T, configure func(*gateway.Config)) float64 {
	e := sgetest.Start(t, configure)
	h := e.Server.Handler()
	w := sgetest.Wallet()
	body := []byte(registerBody(w))
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI("/api/register")
	req.Header.SetContentType("application/json")
	req.Header.Set("Idempotency-Key", "alloc")
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.SetBody(body)
	var ctx fasthttp.RequestCtx
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}
	run := func() {
		ctx.Init(&req, addr, nil)
		h(&ctx)
		if s := ctx.Response.StatusCode(); s != 201 {
			t.Fatalf("status %d: %s", s, ctx.Response.Body())
		}
	}
	for range 10 {
		run() // the first creates the record; the rest warm pools and caches
	}
	return testing.AllocsPerRun(500, run)
}

// baselineAllocs is the replay path's count before tracing was wired in
// (protoactor-go's envelope and future, the Pebble read): tracing off must
// not add to it, metrics on or off.
const baselineAllocs = 5

func TestRequestPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, tt := range []struct {
		name      string
		configure func(*gateway.Config)
	}{
		{"metrics on, tracing off", nil},
		{"metrics off, tracing off", func(c *gateway.Config) { c.DisableMetrics = true }},
		{"tracing off as a no-op provider", func(c *gateway.Config) { c.TracerProvider = noop.NewTracerProvider() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if n := requestPathAllocs(t, tt.configure); n > baselineAllocs {
				t.Errorf("%.1f allocs/request, want <= %d", n, baselineAllocs)
			}
		})
	}
	t.Run("tracing on", func(t *testing.T) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		n := requestPathAllocs(t, func(c *gateway.Config) { c.TracerProvider = tp })
		t.Logf("%.1f allocs/request with tracing on (no exporter)", n)
	})
}
