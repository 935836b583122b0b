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
	// Pebble's iterator allocates its merging heap anew each time (Close
	// drops it). persistence.Store.Get reads through an iterator because
	// Pebble's own Get, which allocates nothing, skips the bottom level's
	// bloom filters and so seeks data blocks for every absent key.
	hitAllocBudget     = 1
	limitedAllocBudget = 1 // protoactor-go's dispatcher allocates a closure per mailbox run
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

func TestRequestPathAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	var cfg gateway.Config
	cfg.Store.Dir = t.TempDir()
	cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	cfg.Actors.ClaimPerHour = 1
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Shutdown(ctx)
	}()
	h := g.Server.Handler()
	w := wallet(1)

	hit := newCtx("/api/register", "alloc-key", `{"wallet":"`+w+`"}`)
	serveOnce(h, hit, 201, t) // the MISS that creates the record
	if got := testing.AllocsPerRun(200, func() { serveOnce(h, hit, 201, t) }); got > hitAllocBudget {
		t.Errorf("HIT path: %.1f allocs per request, budget %d", got, hitAllocBudget)
	} else {
		t.Logf("HIT path: %.1f allocs per request", got)
	}

	limited := newCtx("/api/claim/prepare", "", `{"wallet":"`+w+`","amount":"1"}`)
	serveOnce(h, limited, 201, t)
	if got := testing.AllocsPerRun(200, func() { serveOnce(h, limited, 429, t) }); got > limitedAllocBudget {
		t.Errorf("429 path: %.1f allocs per request, budget %d", got, limitedAllocBudget)
	} else {
		t.Logf("429 path: %.1f allocs per request", got)
	}
}
