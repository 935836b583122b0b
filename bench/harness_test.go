package bench

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// target is a server on an in-memory listener and a client pool for it, so
// the benchmarks measure the server and fasthttp, not the kernel's TCP.
type target struct {
	client *fasthttp.HostClient
	close  func()
}

// stopUntimed closes t with b's timer stopped and reports how long that took
// per operation as teardown-ns/op. BenchmarkMiss leaves b.N wallet actors
// alive, and stopping them all at shutdown is work of its own, not of the
// requests measured (in service a wallet actor ends by passivation instead).
func (t *target) stopUntimed(b *testing.B) {
	b.StopTimer()
	start := time.Now()
	t.close()
	b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "teardown-ns/op")
}

func newTarget(b *testing.B, serve func(net.Listener) error, stop func()) *target {
	ln := fasthttputil.NewInmemoryListener()
	done := make(chan struct{})
	go func() { _ = serve(ln); close(done) }()
	c := &fasthttp.HostClient{
		Addr:     "bench",
		Dial:     func(string) (net.Conn, error) { return ln.Dial() },
		MaxConns: 1024,
	}
	return &target{client: c, close: func() { stop(); _ = ln.Close(); <-done }}
}

// bareTarget is the ceiling: fasthttp answering a fixed 201 JSON body of
// the size of a register answer, doing no work.
func bareTarget(b *testing.B) *target {
	body := []byte(`{"registrationId":"01M8EA7K1YA199N2458RBE4N6G","wallet":"0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed","settlementId":"01M8EA7K1YA199N2458VJ7AX53","status":"pending","createdAt":"2026-11-27T10:53:46.430Z"}`)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetStatusCode(201)
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("X-Idempotency", "MISS")
		ctx.SetBody(body)
	}}
	return newTarget(b, srv.Serve, func() { _ = srv.Shutdown() })
}

// gatewayTarget is the whole service on a real Pebble in b.TempDir(), with
// limits high enough that only the 429 benchmark meets them.
func gatewayTarget(b *testing.B, configure func(*gateway.Config)) (*target, *gateway.Gateway) {
	var cfg gateway.Config
	cfg.Store.Dir = b.TempDir()
	cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	cfg.Actors.RegisterPerHourIP = 1 << 30
	cfg.Actors.RegisterPerDayWallet = 1 << 30
	cfg.Actors.ClaimPerHour = 1 << 30
	if configure != nil {
		configure(&cfg)
	}
	g, err := gateway.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return newTarget(b, g.Serve, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	}), g
}

// wallet returns a distinct lowercase wallet for n.
func wallet(n uint64) string {
	var b [20]byte
	binary.BigEndian.PutUint64(b[12:], n)
	b[0] = 0x5a
	return "0x" + hex.EncodeToString(b[:])
}

// post sends one register-shaped POST and checks the status.
func (t *target) post(b *testing.B, req *fasthttp.Request, resp *fasthttp.Response, want int) {
	if err := t.client.Do(req, resp); err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode() != want {
		b.Fatalf("status %d, want %d: %s", resp.StatusCode(), want, resp.Body())
	}
}

func newPost(path string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI("http://bench" + path)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	return req
}
