package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"
)

// fasthttp keeps process-wide helpers (date ticker, DNS cache cleaner) and its
// cleaners sleep up to 10s before noticing they are done; everything else must be gone.
func TestMain(m *testing.M) {
	serveBaselineIfChild() // startBaseline re-executes the test binary
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"))
}

func testConfig(t *testing.T, url, scenario string) Config {
	t.Helper()
	c := Config{URL: url, Scenario: scenario, Conc: 4, Duration: 10 * time.Second, Max: 200,
		Replay: 0.5, Keys: 8, Quota: 5, Timeout: 5 * time.Second}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func runOK(t *testing.T, cfg Config) *Report {
	t.Helper()
	rep, err := run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// The baseline end to end: a real server on 127.0.0.1:0, the real client, -n bounds it.
func TestBaselineEndToEnd(t *testing.T) {
	cfg := testConfig(t, "http://127.0.0.1:1", "baseline")
	rep := runOK(t, cfg)
	if rep.Failed() || rep.Requests != 200 || rep.Status["201"] != 200 || rep.Errors != 0 {
		t.Fatalf("report: %+v", rep)
	}
	if rep.LatencyMs.P50 <= 0 || rep.LatencyMs.P50 > rep.LatencyMs.P99 || rep.LatencyMs.P99 > rep.LatencyMs.Max {
		t.Fatalf("latency: %+v", rep.LatencyMs)
	}
	var text strings.Builder
	if err := rep.writeText(&text); err != nil || !strings.Contains(text.String(), "verified: no failures") {
		t.Fatalf("text report: %v\n%s", err, text.String())
	}
}

func TestBaselineFlagComparesSideBySide(t *testing.T) {
	fs := startFake(t, fakeOpts{})
	cfg := testConfig(t, fs.url, "register")
	cfg.Baseline, cfg.Max = true, 50
	rep := runOK(t, cfg)
	if rep.Failed() || rep.Baseline == nil || rep.Baseline.Requests != 50 || rep.Ratio <= 0 {
		t.Fatalf("report: %+v", rep)
	}
	var text strings.Builder
	_ = rep.writeText(&text)
	if !strings.Contains(text.String(), "baseline") || !strings.Contains(text.String(), "/ baseline") {
		t.Fatalf("no side-by-side report:\n%s", text.String())
	}
	// -json: the names scripts read, with the run's own figures.
	var js strings.Builder
	if err := rep.writeJSON(&js); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Scenario  string  `json:"scenario"`
		RPS       float64 `json:"requestsPerSecond"`
		Ratio     float64 `json:"ratioToBaseline"`
		LatencyMs struct {
			P99 float64 `json:"p99"`
		} `json:"latencyMs"`
		Status   map[string]uint64 `json:"status"`
		Baseline struct {
			Requests uint64 `json:"requests"`
		} `json:"baseline"`
	}
	if err := json.Unmarshal([]byte(js.String()), &got); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, js.String())
	}
	if got.Scenario != "register" || got.RPS != rep.RPS || got.Ratio != rep.Ratio || got.LatencyMs.P99 != rep.LatencyMs.P99 ||
		got.Status["201"] != rep.Status["201"] || got.Baseline.Requests != 50 {
		t.Fatalf("JSON report %+v from %+v", got, rep)
	}
}

// Paced, the run and its baseline both go at the pace, so their requests/s
// say nothing about the server: the report compares latency only.
func TestPacedBaselineHasNoRatio(t *testing.T) {
	fs := startFake(t, fakeOpts{})
	cfg := testConfig(t, fs.url, "register")
	cfg.Baseline, cfg.Max, cfg.Rate = true, 50, 5000
	rep := runOK(t, cfg)
	if rep.Failed() || rep.Baseline == nil || rep.Rate != 5000 || rep.Ratio != 0 {
		t.Fatalf("report: %+v", rep)
	}
	var text strings.Builder
	_ = rep.writeText(&text)
	if !strings.Contains(text.String(), "baseline") || strings.Contains(text.String(), "/ baseline") {
		t.Fatalf("want the baseline beside it and no ratio:\n%s", text.String())
	}
}

// Each scenario against a fake that keeps the contracts, then against fakes that
// break one each: the contract-keeping runs pass and every break is caught.
func TestVerification(t *testing.T) {
	for _, tc := range []struct {
		scenario string
		opts     fakeOpts
		fail     string // "" = must pass
	}{
		{"register", fakeOpts{}, ""},
		{"claim", fakeOpts{}, ""},
		{"hit", fakeOpts{}, ""},
		{"limited", fakeOpts{quota: 5}, ""},
		{"register", fakeOpts{quota: 3}, ""}, // 429 with headers is a legitimate answer
		{"register", fakeOpts{forget: true}, "duplicate"},
		{"claim", fakeOpts{forget: true}, "duplicate"},
		{"register", fakeOpts{replayOther: true}, "replay_body_mismatch"},
		{"register", fakeOpts{noHitHeader: true}, "idempotency_header"},
		{"claim", fakeOpts{wrongTx: true}, "bad_body"},
		{"hit", fakeOpts{forget: true}, "duplicate"},
		{"limited", fakeOpts{quota: 5, noRateHeaders: true}, "ratelimit_headers"},
		{"limited", fakeOpts{}, "over_quota"},
		{"register", fakeOpts{status: 500}, "unexpected_status"},
	} {
		t.Run(fmt.Sprintf("%s/%+v", tc.scenario, tc.opts), func(t *testing.T) {
			fs := startFake(t, tc.opts)
			rep := runOK(t, testConfig(t, fs.url, tc.scenario))
			if tc.fail == "" && (rep.Failed() || rep.Requests == 0) {
				t.Fatalf("failures %v, samples %q", rep.Failures, rep.Samples)
			}
			if tc.fail != "" && rep.Failures[tc.fail] == 0 {
				t.Fatalf("%s not detected: failures %v, status %v", tc.fail, rep.Failures, rep.Status)
			}
		})
	}
}

func TestRefusesToRunWithoutAnswers(t *testing.T) {
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rep := runOK(t, testConfig(t, "http://"+addr, "register"))
	if !rep.Failed() || rep.Failures["no_answers"] != 1 || rep.Errors == 0 {
		t.Fatalf("report: %+v", rep)
	}
}

func TestInterruptStopsTheRun(t *testing.T) {
	cfg := testConfig(t, "http://127.0.0.1:1", "baseline")
	cfg.Max = 0 // only the context and -d bound it
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := run(ctx, cfg); err != nil || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

// fakeOpts pick which contract the fake server breaks.
type fakeOpts struct {
	quota         int  // > 0: register allows this many per client, then 429
	noRateHeaders bool // 429 without RateLimit headers
	forget        bool // no idempotency: a replay makes a second effect
	replayOther   bool // replays carry other bytes (same ids)
	noHitHeader   bool // replays claim MISS
	wrongTx       bool // record echoes another txHash
	status        int  // answer this status to everything
}

type fakeServer struct {
	url  string
	opts fakeOpts
	mu   struct {
		sync.Mutex
		seq      int
		stored   map[string][]byte // route+wallet+key → answer
		admitted int
	}
}

// startFake serves the three POST routes with the contracts of DESIGN.md, minus
// whatever opts break.
func startFake(t *testing.T, opts fakeOpts) *fakeServer {
	fs := &fakeServer{opts: opts}
	fs.mu.stored = map[string][]byte{}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: fs.handle}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	fs.url = "http://" + ln.Addr().String()
	return fs
}

func (fs *fakeServer) handle(ctx *fasthttp.RequestCtx) {
	body, path := ctx.PostBody(), string(ctx.Path())
	field := func(name string) string { return string(jsonField(body, []byte(name))) }
	if fs.opts.status != 0 {
		ctx.SetStatusCode(fs.opts.status)
		return
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	scope := path + field("wallet") + string(ctx.Request.Header.Peek("Idempotency-Key"))
	if ans, ok := fs.mu.stored[scope]; ok && !fs.opts.forget {
		if fs.opts.replayOther {
			ans = append([]byte(" "), ans...)
		}
		if !fs.opts.noHitHeader {
			ctx.Response.Header.Set("X-Idempotency", "HIT")
			ctx.Response.Header.Set("Idempotent-Replayed", "true")
		}
		ctx.SetStatusCode(fasthttp.StatusCreated)
		ctx.SetBody(ans)
		return
	}
	if path == "/api/register" {
		if !fs.opts.noRateHeaders {
			ctx.Response.Header.Set("RateLimit-Policy", `"register-ip";q=5;w=3600`)
			ctx.Response.Header.Set("RateLimit", `"register-ip";r=0;t=720`)
		}
		if fs.mu.admitted++; fs.opts.quota > 0 && fs.mu.admitted > fs.opts.quota {
			ctx.Response.Header.Set("Retry-After", "720")
			ctx.SetStatusCode(fasthttp.StatusTooManyRequests)
			return
		}
	}
	fs.mu.seq++
	id := fmt.Sprintf("01J%08d", fs.mu.seq)
	var ans string
	switch path {
	case "/api/register":
		ans = fmt.Sprintf(`{"registrationId":"r%s","wallet":"%s","settlementId":"s%s","status":"pending","createdAt":"2026-01-01T00:00:00Z"}`, id, field("wallet"), id)
	case "/api/claim/prepare":
		ans = fmt.Sprintf(`{"claimId":"c%s","wallet":"%s","amount":"%s","nonce":"n%s","expiresAt":"2026-01-01T00:15:00Z","signature":"c2ln"}`, id, field("wallet"), field("amount"), id)
	case "/api/claim/record":
		tx := field("txHash")
		if fs.opts.wrongTx {
			tx = "0x" + strings.Repeat("0", 64)
		}
		ans = fmt.Sprintf(`{"claimId":"%s","wallet":"%s","txHash":"%s","settlementId":"s%s","status":"pending"}`, field("claimId"), field("wallet"), tx, id)
	default:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	fs.mu.stored[scope] = []byte(ans)
	ctx.Response.Header.Set("X-Idempotency", "MISS")
	ctx.SetStatusCode(fasthttp.StatusCreated)
	ctx.SetBodyString(ans)
}

// The client's request path must not allocate, or sgeload would measure its own GC.
// Against the baseline server, which runs in a child process: AllocsPerRun counts
// the whole process, here only the client.
func TestRequestPathAllocations(t *testing.T) {
	srv, err := startBaseline("", "")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.close()
	cfg := testConfig(t, "http://"+srv.addr, "baseline")
	cfg.Max, cfg.Replay = 0, 1
	r := newRunner(cfg, true)
	defer r.client.CloseIdleConnections()
	w := newWorker(r)
	w.registerOp() // warm the buffers and the connection; AllocsPerRun adds one more
	if n := testing.AllocsPerRun(200, w.registerOp); n > 0 && !raceEnabled {
		t.Errorf("%v allocations per operation (two requests), want 0", n)
	}
	if w.st.answers != 2*(1+1+200) || sum(w.st.fails[:]) != 0 {
		t.Fatalf("answers %d, failures %v %q", w.st.answers, w.st.fails, w.st.samples)
	}
}
