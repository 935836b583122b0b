package bench

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/sgeplatform/sge/internal/cputime"
	"github.com/sgeplatform/sge/internal/gateway"
	"github.com/valyala/fasthttp"
)

// The request path, each case beside the bare fasthttp ceiling in the same
// run. All run in parallel (b.RunParallel, GOMAXPROCS goroutines, times
// -cpu), which is where group commit pays off; run with -cpu 1,2,... and a
// higher -benchtime to see how the durable path scales with concurrency.
// Besides ns/op (wall time) each reports cpu-ns/op, the CPU the process
// (server and client) spent per request: near GOMAXPROCS × ns/op when the
// cores are the limit, less when requests wait, as a MISS waits for its sync.

// BenchmarkBaseline is fasthttp answering a fixed 201: the ceiling.
func BenchmarkBaseline(b *testing.B) {
	t := bareTarget(b)
	defer t.stopUntimed(b)
	runParallel(b, t, "/api/register", register, 201, nil)
}

// BenchmarkMiss is a new registration with a new key for a new wallet each
// time: idempotency lookup, both limits, the domain step and a synced commit.
func BenchmarkMiss(b *testing.B) {
	t, _ := gatewayTarget(b, nil)
	defer t.stopUntimed(b)
	runParallel(b, t, "/api/register", register, 201, nil)
}

// BenchmarkHit replays finished registrations: a Pebble read and the stored
// answer, no limits, no commit.
func BenchmarkHit(b *testing.B) {
	t, _ := gatewayTarget(b, nil)
	defer t.stopUntimed(b)
	const keys = 1024
	req, resp := newPost("/api/register"), fasthttp.AcquireResponse()
	for i := range uint64(keys) {
		register(req, i)
		t.post(b, req, resp, 201)
	}
	runParallel(b, t, "/api/register", func(req *fasthttp.Request, i uint64) { register(req, i%keys) }, 201,
		func(resp *fasthttp.Response) {
			if string(resp.Header.Peek("X-Idempotency")) != "HIT" {
				b.Fatal("not a HIT")
			}
		})
}

// BenchmarkLimited is claim/prepare over the claim-wallet quota, spread
// over many wallets: the 429 path (lookup, bucket, problem answer).
func BenchmarkLimited(b *testing.B) {
	t, _ := gatewayTarget(b, func(c *gateway.Config) { c.Actors.ClaimPerHour = 1 })
	defer t.stopUntimed(b)
	const wallets = 1024
	req, resp := newPost("/api/claim/prepare"), fasthttp.AcquireResponse()
	for i := range uint64(wallets) {
		claim(req, i)
		t.post(b, req, resp, 201)
	}
	runParallel(b, t, "/api/claim/prepare", func(req *fasthttp.Request, i uint64) { claim(req, i%wallets) }, 429, nil)
}

// runParallel posts to path once per iteration from parallelism ×
// GOMAXPROCS goroutines, each reusing one request and response. fill sets
// the request up for the i'th post (counting from 1 across all goroutines);
// each answer must have status want and, when check is not nil, pass it.
func runParallel(b *testing.B, t *target, path string, fill func(req *fasthttp.Request, i uint64), want int, check func(*fasthttp.Response)) {
	var n atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	cpu0, cpuOK := cputime.Process()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := newPost(path), fasthttp.AcquireResponse()
		for pb.Next() {
			fill(req, n.Add(1))
			t.post(b, req, resp, want)
			if check != nil {
				check(resp)
			}
		}
	})
	if cpu1, ok := cputime.Process(); ok && cpuOK {
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// register makes req the i'th registration: its own key, its own wallet.
func register(req *fasthttp.Request, i uint64) {
	req.Header.Set("Idempotency-Key", "k"+strconv.FormatUint(i, 10))
	req.SetBodyString(`{"wallet":"` + wallet(i) + `"}`)
}

// claim makes req a claim/prepare of 1 for the i'th wallet.
func claim(req *fasthttp.Request, i uint64) {
	req.SetBodyString(`{"wallet":"` + wallet(i) + `","amount":"1"}`)
}

// parallelism × GOMAXPROCS clients are in flight at once: enough that the
// group committer has full groups to sync, as under a burst of real clients.
const parallelism = 128
