package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/sgeplatform/sge/internal/sgetest"
	"github.com/sgeplatform/sge/telemetry"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// BenchmarkTelemetry measures what metrics and tracing cost on the request
// path: the real gateway handler on a real Pebble in b.TempDir(), served on
// an in-memory listener, so no kernel TCP stack is in the numbers.
//
// Two paths: "replay" is an idempotent retry (transport, wallet actor,
// Pebble read, answer; no fsync), where telemetry's share is largest;
// "register" creates a registration and its settlement with a synced group
// commit, the path that matters for capacity. Each runs bare (metrics and
// tracing off: the baseline), with metrics, with tracing to an OTLP receiver
// that drops everything, and with both.
//
//	go test ./bench -run '^$' -bench Telemetry -benchtime 2s
func BenchmarkTelemetry(b *testing.B) {
	for _, path := range []string{"replay", "register"} {
		for _, mode := range []struct {
			name             string
			metrics, tracing bool
		}{
			{"bare", false, false},
			{"metrics", true, false},
			{"tracing", false, true},
			{"metrics+tracing", true, true},
		} {
			b.Run(path+"/"+mode.name, func(b *testing.B) {
				c := startInMemory(b, mode.metrics, mode.tracing)
				// One wallet per client; for replay its record is stored
				// before the clock starts, so a replay never hits the fsync.
				wallets := make([]string, 64)
				for i := range wallets {
					wallets[i] = sgetest.Wallet()
					if path == "replay" {
						if err := post(c, wallets[i], "k", nil); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportAllocs()
				if path == "replay" {
					// One client at a time: the latency of one request,
					// without the scheduler noise of many on 2 cores.
					resp := fasthttp.AcquireResponse()
					defer fasthttp.ReleaseResponse(resp)
					b.ResetTimer()
					for range b.N {
						if err := post(c, wallets[0], "k", resp); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				var next atomic.Int64
				b.SetParallelism(4) // 8 clients on 2 cores: lets group commit group
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					w := wallets[int(next.Add(1)-1)%len(wallets)]
					resp := fasthttp.AcquireResponse()
					defer fasthttp.ReleaseResponse(resp)
					for pb.Next() {
						if err := post(c, w, "", resp); err != nil {
							b.Fatal(err)
						}
					}
				})
			})
		}
	}
}

// post registers wallet, with Idempotency-Key key unless it is empty, and a
// client traceparent, and wants 201.
func post(c *fasthttp.Client, wallet, key string, resp *fasthttp.Response) error {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	if resp == nil {
		resp = fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
	}
	req.Header.SetMethod("POST")
	req.SetRequestURI("http://sged/api/register")
	req.Header.SetContentType("application/json")
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	req.SetBodyString(`{"wallet":"` + wallet + `"}`)
	if err := c.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() != 201 {
		return fmt.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
	}
	return nil
}

// startInMemory runs the gateway on an in-memory listener and returns a
// client dialling it.
func startInMemory(b *testing.B, metrics, tracing bool) *fasthttp.Client {
	var cfg gateway.Config
	cfg.Store.Dir = b.TempDir()
	cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	cfg.Actors.RegisterPerHourIP = 1 << 30
	cfg.Actors.RegisterPerDayWallet = 1 << 30
	cfg.DisableMetrics = !metrics
	if tracing {
		drop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
		}))
		b.Cleanup(drop.Close)
		tp, shutdown, err := telemetry.StartTracing(context.Background(), telemetry.TracingConfig{Enabled: true, Endpoint: drop.URL})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = shutdown(context.Background()) })
		cfg.TracerProvider = tp
	}
	g, err := gateway.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan error, 1)
	go func() { done <- g.Serve(ln) }()
	b.Cleanup(func() {
		if err := g.Shutdown(context.Background()); err != nil {
			b.Error(err)
		}
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	return &fasthttp.Client{
		Dial:                func(string) (net.Conn, error) { return ln.Dial() },
		MaxConnsPerHost:     1024,
		MaxIdleConnDuration: 0,
	}
}
