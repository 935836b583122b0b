package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"sync"
	"time"

	"github.com/sgeplatform/sge/internal/cputime"
	"github.com/valyala/fasthttp"
)

// run performs the configured scenario, after the baseline when -baseline asks.
func run(ctx context.Context, cfg Config) (*Report, error) {
	if !cfg.Baseline || cfg.Scenario == "baseline" {
		return runScenario(ctx, cfg)
	}
	bc := cfg
	bc.Scenario = "baseline"
	base, err := runScenario(ctx, bc)
	if err != nil || ctx.Err() != nil {
		return base, err // interrupted: report what was measured
	}
	rep, err := runScenario(ctx, cfg)
	if err != nil {
		return nil, err
	}
	rep.Baseline = base
	if base.RPS > 0 && cfg.Rate == 0 {
		rep.Ratio = rep.RPS / base.RPS
	}
	return rep, nil
}

// steps are the operations each scenario's workers repeat until the run is over.
var steps = map[string]func(*worker){
	"register": (*worker).registerOp,
	"baseline": (*worker).registerOp,
	"durable":  (*worker).registerOp,
	"claim":    (*worker).claimOp,
	"hit":      (*worker).hitOp,
	"limited":  (*worker).limitedOp,
}

func runScenario(ctx context.Context, cfg Config) (*Report, error) {
	bare := cfg.Scenario == "baseline" || cfg.Scenario == "durable"
	if bare {
		var dir, wal string
		if cfg.Scenario == "durable" {
			d, err := os.MkdirTemp("", "sgeload-durable-")
			if err != nil {
				return nil, err
			}
			defer os.RemoveAll(d) // after the child has stopped: defers run last first
			dir = d
			if cfg.WALDir != "" {
				// A fresh one: a store refuses a WAL directory holding another's WAL.
				if wal, err = os.MkdirTemp(cfg.WALDir, "sgeload-durable-wal-"); err != nil {
					return nil, err
				}
				defer os.RemoveAll(wal)
			}
		}
		srv, err := startBaseline(dir, wal)
		if err != nil {
			return nil, err
		}
		defer srv.close()
		cfg.URL = "http://" + srv.addr
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	r := newRunner(cfg, bare)
	defer r.client.CloseIdleConnections()
	stopOnDone := context.AfterFunc(ctx, func() { r.stop.Store(true) })
	defer stopOnDone()

	var setup stats
	switch cfg.Scenario {
	case "hit":
		setup = r.setupHit()
		if len(r.entries) == 0 {
			return nil, fmt.Errorf("sgeload: hit: no key could be created (%d failures, %d transport errors, status 429: %d)",
				sum(setup.fails[:]), setup.errs, setup.status[fasthttp.StatusTooManyRequests])
		}
	case "limited":
		if len(r.wallets) == 0 {
			r.wallets = [][]byte{appendWallet(nil, newRNG())} // one wallet, one IP
		}
	}

	ws := make([]*worker, cfg.Conc)
	for i := range ws {
		ws[i] = newWorker(r)
	}
	timer := time.AfterFunc(cfg.Duration, func() { r.stop.Store(true) })
	defer timer.Stop()
	step := steps[cfg.Scenario]
	cpu0, _ := cputime.Process() // both 0 where it cannot be read
	start := time.Now()
	r.paced.Store(0)
	r.paceStart = start
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			for !r.stop.Load() {
				step(w)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, _ := cputime.Process()
	cpu := cpu1 - cpu0

	var total stats
	for _, w := range ws {
		total.merge(&w.st)
	}
	for i := range total.fails {
		total.fails[i] += setup.fails[i]
	}
	total.samples = append(total.samples, setup.samples...)
	var notes []string
	if cfg.Scenario == "hit" {
		notes = append(notes, fmt.Sprintf("replayed %d keys created first (not counted above)", len(r.entries)))
	}
	if cfg.Scenario == "limited" {
		notes = append(notes, r.checkQuota(&total, elapsed))
	}
	if total.answers == 0 {
		total.fails[failNoAnswers]++
	}
	if n := total.status[fasthttp.StatusTooManyRequests]; n > 0 && (cfg.Scenario == "register" || cfg.Scenario == "claim") {
		notes = append(notes, fmt.Sprintf("%d answers were 429 (rate limited; see -xff-base and -wallets)", n))
	}
	rep := newReport(cfg, elapsed, &total)
	rep.Notes = notes
	rep.ClientCPU = cpu.Seconds()
	return rep, nil
}

func sum(xs []uint64) (t uint64) {
	for _, x := range xs {
		t += x
	}
	return t
}

func (w *worker) registerOp() {
	w.nextIP()
	w.pickWallet()
	w.body = append(append(append(w.body[:0], `{"wallet":"`...), w.wallet...), `"}`...)
	w.exchange(w.r.register, w.body)
}

func (w *worker) claimOp() {
	w.nextIP()
	w.pickWallet()
	w.body = append(append(append(w.body[:0], `{"wallet":"`...), w.wallet...), `","amount":"1000"}`...)
	if !w.exchange(w.r.prepare, w.body) {
		return
	}
	if a := jsonField(w.first, []byte("amount")); string(a) != "1000" {
		w.fail(failBody, "prepare: amount %q, sent 1000", a)
	}
	w.tmp = append(w.tmp[:0], jsonField(w.first, []byte("claimId"))...)
	w.body = append(append(append(w.body[:0], `{"wallet":"`...), w.wallet...), `","claimId":"`...)
	w.body = append(append(w.body, w.tmp...), `","txHash":"`...)
	tx := len(w.body)
	w.body = append(appendTxHash(w.body, w.cc), `"}`...)
	txHash := w.body[tx : tx+66]
	if !w.exchange(w.r.record, w.body) {
		return
	}
	if id := jsonField(w.first, []byte("claimId")); string(id) != string(w.tmp) {
		w.fail(failBody, "record: claimId %q, sent %q", id, w.tmp)
	}
	if h := jsonField(w.first, []byte("txHash")); string(h) != string(txHash) {
		w.fail(failBody, "record: txHash %q, sent %q", h, txHash)
	}
}

// setupHit creates the keys the hit scenario replays, each with one MISS.
func (r *runner) setupHit() stats {
	w := newWorker(r)
	w.noReplay = true
	for range r.cfg.Keys * 2 { // room for a few refusals
		if len(r.entries) == r.cfg.Keys || r.stop.Load() {
			break
		}
		answers, fails := w.st.answers, sum(w.st.fails[:])
		w.registerOp()
		if w.st.answers > answers && sum(w.st.fails[:]) == fails && w.resp.StatusCode() == fasthttp.StatusCreated {
			r.entries = append(r.entries, entry{
				body: append([]byte(nil), w.body...), key: append([]byte(nil), w.key...),
				answer: append([]byte(nil), w.first...), status: fasthttp.StatusCreated,
			})
		}
	}
	r.issued.Store(0) // -n counts the timed phase only
	return w.st
}

func (w *worker) hitOp() {
	e := &w.r.entries[w.rnd.IntN(len(w.r.entries))]
	if w.do(w.r.register.uri, e.body, e.key) {
		w.checkReplay(w.r.register, e.status, e.answer)
	}
}

// limitedOp sends fresh registrations for one wallet from one client address, so
// after the quota every answer must be a 429.
func (w *worker) limitedOp() {
	w.pickWallet()
	w.body = append(append(append(w.body[:0], `{"wallet":"`...), w.wallet...), `"}`...)
	w.key = appendKey(w.key[:0], w.cc)
	if !w.do(w.r.register.uri, w.body, w.key) {
		return
	}
	switch code := w.resp.StatusCode(); code {
	case fasthttp.StatusCreated:
		w.checkRateHeaders()
	case fasthttp.StatusTooManyRequests: // headers checked by do
	default:
		w.fail(failStatus, "limited: %d %.200s", code, w.resp.Body())
	}
}

// checkQuota fails the run when the server admitted more than the register-ip policy
// allows: its quota plus what refilled (quota per hour) while the run lasted.
func (r *runner) checkQuota(total *stats, elapsed time.Duration) string {
	allowed := uint64(r.cfg.Quota) + uint64(math.Ceil(float64(r.cfg.Quota)*elapsed.Hours()))
	got := total.status[fasthttp.StatusCreated]
	if got > allowed {
		total.fails[failOverQuota]++
		total.samples = append(total.samples, fmt.Sprintf("over_quota: %d admitted, quota %d/h allows %d", got, r.cfg.Quota, allowed))
	}
	return fmt.Sprintf("admitted %d of %d allowed (quota %d/h)", got, allowed, r.cfg.Quota)
}
