package bench

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/valyala/fasthttp"
)

// Allocation budgets of the request path inside the server (handler to
// answer, no network), pinned so a regression fails a test rather than a
// benchmark nobody reads. Lower them when the path gets leaner.
const (
	// A retry of a recent request is answered from the recent-records cache.
	hitAllocBudget = 0
	// An older one reads Pebble, whose iterator allocates its merging heap
	// anew each time (Close drops it). persistence.Store.Get reads through
	// an iterator because Pebble's own Get, which allocates nothing, skips
	// the bottom level's bloom filters and so seeks data blocks for every
	// absent key.
	hitFromPebbleAllocBudget = 1
	// A claim over its wallet's quota is refused without the actor once the
	// actor has refused one (System.refuseEarly).
	limitedAllocBudget = 0
)

func serveOnce(h fasthttp.RequestHandler, ctx *fasthttp.RequestCtx, want int, t *testing.T) {
	ctx.Response.Reset()
	h(ctx)
	if ctx.Response.StatusCode() != want {
		t.Fatalf("status %d, want %d: %s", ctx.Response.StatusCode(), want, ctx.Response.Body())
	}
}

func newCtx(path, key, body string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.SetRequestURI(path)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	req.SetBodyString(body)
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4242}, nil)
	return &ctx
}

// startGateway starts a gateway on a fresh store and returns its handler.
func startGateway(t *testing.T, configure func(*gateway.Config)) fasthttp.RequestHandler {
	var cfg gateway.Config
	cfg.Store.Dir = t.TempDir()
	cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	configure(&cfg)
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	})
	return g.Server.Handler()
}

// checkAllocs measures ctx's path (after one warm-up request) against budget.
func checkAllocs(t *testing.T, h fasthttp.RequestHandler, name string, ctx *fasthttp.RequestCtx, want, budget int) {
	serveOnce(h, ctx, 201, t) // the MISS that creates the record, or the 201 that empties the bucket
	if got := testing.AllocsPerRun(200, func() { serveOnce(h, ctx, want, t) }); got > float64(budget) {
		t.Errorf("%s: %.1f allocs per request, budget %d", name, got, budget)
	} else {
		t.Logf("%s: %.1f allocs per request", name, got)
	}
}

func TestRequestPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	w := wallet(1)
	h := startGateway(t, func(c *gateway.Config) { c.Actors.ClaimPerHour = 1 })
	checkAllocs(t, h, "HIT path", newCtx("/api/register", "alloc-key", `{"wallet":"`+w+`"}`), 201, hitAllocBudget)
	checkAllocs(t, h, "429 path", newCtx("/api/claim/prepare", "", `{"wallet":"`+w+`","amount":"1"}`), 429, limitedAllocBudget)

	h = startGateway(t, func(c *gateway.Config) { c.Actors.ReplayCacheRecords = -1 })
	checkAllocs(t, h, "HIT path, read from Pebble", newCtx("/api/register", "alloc-key", `{"wallet":"`+w+`"}`), 201, hitFromPebbleAllocBudget)
}
