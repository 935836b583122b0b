package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Verification failure kinds; any non-zero count fails the run.
const (
	failStatus       = iota // an answer the contract does not allow
	failIdemHeader          // first send not MISS, replay not HIT + Idempotent-Replayed
	failReplayStatus        // replay answered with another status
	failReplayBody          // replay answered with other bytes
	failDuplicate           // replay carries another id: a second effect for one key
	failBody                // answer lacks a field or echoes the wrong value
	failRateHeaders         // a 429 (or limited answer) without the RateLimit headers
	failOverQuota           // limited: more admissions than the quota allows
	failNoAnswers           // nothing answered, so nothing was verified
	numFails
)

var failNames = [numFails]string{"unexpected_status", "idempotency_header", "replay_status_mismatch",
	"replay_body_mismatch", "duplicate", "bad_body", "ratelimit_headers", "over_quota", "no_answers"}

// Idempotency header outcomes.
const (
	idemNone = iota
	idemMiss
	idemHit
	idemOther
	numIdem
)

var idemNames = [numIdem]string{"none", "MISS", "HIT", "other"}

const maxSamples = 10

// stats belong to one worker and are merged once the workers are done: no locks, no atomics.
type stats struct {
	hist     histogram
	answers  uint64
	status   [600]uint64 // index 0 collects codes out of range
	idem     [numIdem]uint64
	fails    [numFails]uint64
	samples  []string // a few failure details, for the report
	errs     uint64
	errKinds map[string]uint64
}

func (s *stats) merge(o *stats) {
	s.hist.merge(&o.hist)
	s.answers += o.answers
	for i := range s.status {
		s.status[i] += o.status[i]
	}
	for i := range s.idem {
		s.idem[i] += o.idem[i]
	}
	for i := range s.fails {
		s.fails[i] += o.fails[i]
	}
	s.samples = append(s.samples, o.samples[:min(len(o.samples), maxSamples-len(s.samples))]...)
	s.errs += o.errs
	for k, n := range o.errKinds {
		s.count(k, n)
	}
}

func (s *stats) count(errKind string, n uint64) {
	if s.errKinds == nil {
		s.errKinds = map[string]uint64{}
	}
	if _, ok := s.errKinds[errKind]; !ok && len(s.errKinds) >= 20 {
		errKind = "other"
	}
	s.errKinds[errKind] += n
}

// route is one POST endpoint and what its answers must contain.
type route struct {
	uri     string
	fields  [][]byte // JSON string fields that must be present and non-empty
	id      []byte   // the field whose change on replay means a second effect
	limited bool     // 429 is a legitimate answer here
}

func newRoute(base, path string, limited bool, id string, fields ...string) *route {
	r := &route{uri: base + path, limited: limited, id: []byte(id)}
	for _, f := range fields {
		r.fields = append(r.fields, []byte(f))
	}
	return r
}

// runner holds what the workers of one run share; all of it is read-only during
// the run except the atomics.
type runner struct {
	cfg                       Config
	client                    *fasthttp.HostClient
	bare                      bool // baseline: the server has no idempotency, echoes nothing
	register, prepare, record *route
	wallets                   [][]byte // pool when -wallets > 0
	xff                       netip.Addr
	entries                   []entry // hit: keys created during setup

	stop   atomic.Bool
	issued atomic.Int64 // requests started, for -n
	// paced counts slots handed out since paceStart, for -rate.
	paced     atomic.Int64
	paceStart time.Time
	ipSeq     atomic.Uint32
}

// entry is a finished operation the hit scenario replays.
type entry struct {
	body, key, answer []byte
	status            int
}

func newRunner(cfg Config, bare bool) *runner {
	r := &runner{
		cfg:  cfg,
		bare: bare,
		client: &fasthttp.HostClient{
			Addr:                      cfg.addr,
			Name:                      "sgeload",
			MaxConns:                  cfg.Conc,
			MaxConnWaitTimeout:        cfg.Timeout,
			ReadTimeout:               cfg.Timeout,
			WriteTimeout:              cfg.Timeout,
			MaxIdemponentCallAttempts: 1, // a hidden retry would hide a transport error
		},
		register: newRoute(cfg.base, "/api/register", true, "settlementId",
			"registrationId", "wallet", "settlementId", "status", "createdAt"),
		prepare: newRoute(cfg.base, "/api/claim/prepare", true, "claimId",
			"claimId", "wallet", "amount", "nonce", "expiresAt", "signature"),
		record: newRoute(cfg.base, "/api/claim/record", false, "settlementId",
			"claimId", "wallet", "txHash", "settlementId", "status"),
	}
	if cfg.XFFBase != "" {
		r.xff = netip.MustParseAddr(cfg.XFFBase)
	}
	rng := newRNG()
	for range cfg.Wallets {
		r.wallets = append(r.wallets, appendWallet(nil, rng))
	}
	return r
}

// take admits one more request unless the run is over. With -rate it
// returns when the request's slot comes (slots are spread evenly from the
// start of the run) and reports that slot, from which latency is measured;
// otherwise the slot is now.
func (r *runner) take() (time.Time, bool) {
	if r.stop.Load() {
		return time.Time{}, false
	}
	if r.cfg.Max > 0 && r.issued.Add(1) > r.cfg.Max {
		r.stop.Store(true)
		return time.Time{}, false
	}
	if r.cfg.Rate <= 0 {
		return time.Now(), true
	}
	k := r.paced.Add(1) - 1
	slot := r.paceStart.Add(time.Duration(float64(k) * float64(time.Second) / r.cfg.Rate))
	if d := time.Until(slot); d > 0 {
		time.Sleep(d)
	}
	return slot, !r.stop.Load()
}

// worker runs operations one after another on its own request, response and buffers,
// so the request path allocates nothing once warm.
type worker struct {
	r    *runner
	cc   *rand.ChaCha8
	rnd  *rand.Rand
	req  fasthttp.Request
	resp fasthttp.Response
	st   stats

	noReplay                          bool
	wallet, body, key, ip, first, tmp []byte
}

func newWorker(r *runner) *worker {
	w := &worker{r: r, cc: newRNG()}
	w.rnd = rand.New(w.cc)
	w.req.Header.SetMethod(fasthttp.MethodPost)
	w.req.Header.SetContentType("application/json")
	if r.xff.IsValid() {
		w.ip = appendIPv4(nil, r.xff, 0)
	}
	return w
}

// nextIP gives the next operation its own client address (with -xff-base), so the
// per-IP limit sees many clients instead of one.
func (w *worker) nextIP() {
	if w.r.xff.IsValid() {
		w.ip = appendIPv4(w.ip[:0], w.r.xff, w.r.ipSeq.Add(1)-1)
	}
}

func (w *worker) pickWallet() {
	if p := w.r.wallets; len(p) > 0 {
		w.wallet = append(w.wallet[:0], p[w.rnd.IntN(len(p))]...)
	} else {
		w.wallet = appendWallet(w.wallet[:0], w.cc)
	}
}

func (w *worker) fail(kind int, format string, a ...any) {
	w.st.fails[kind]++
	if len(w.st.samples) < maxSamples {
		w.st.samples = append(w.st.samples, failNames[kind]+": "+fmt.Sprintf(format, a...))
	}
}

// do sends one request and records its answer. False means no answer: the run is
// over or the transport failed.
func (w *worker) do(uri string, body, key []byte) bool {
	start, ok := w.r.take()
	if !ok {
		return false
	}
	w.req.SetRequestURI(uri)
	w.req.SetBody(body)
	w.req.Header.SetBytesV("Idempotency-Key", key)
	if len(w.ip) > 0 {
		w.req.Header.SetBytesV("X-Forwarded-For", w.ip)
	}
	if err := w.r.client.Do(&w.req, &w.resp); err != nil {
		w.st.errs++
		w.st.count(err.Error(), 1)
		return false
	}
	w.st.hist.record(uint64(time.Since(start) / time.Microsecond))
	w.st.answers++
	code := w.resp.StatusCode()
	if code < 0 || code >= len(w.st.status) {
		code = 0
	}
	w.st.status[code]++
	w.st.idem[w.idem()]++
	if code == fasthttp.StatusTooManyRequests {
		w.checkRateHeaders()
	}
	return true
}

func (w *worker) idem() int {
	switch v := w.resp.Header.Peek("X-Idempotency"); string(v) {
	case "":
		return idemNone
	case "MISS":
		return idemMiss
	case "HIT":
		if string(w.resp.Header.Peek("Idempotent-Replayed")) == "true" {
			return idemHit
		}
	}
	return idemOther
}

func (w *worker) checkRateHeaders() {
	h := &w.resp.Header
	if w.r.bare {
		return
	}
	for _, name := range [...]string{"RateLimit-Policy", "RateLimit"} {
		if len(h.Peek(name)) == 0 {
			w.fail(failRateHeaders, "status %d without %s", w.resp.StatusCode(), name)
		}
	}
	if w.resp.StatusCode() == fasthttp.StatusTooManyRequests && len(h.Peek("Retry-After")) == 0 {
		w.fail(failRateHeaders, "429 without Retry-After")
	}
}

// exchange performs one operation under a fresh key: it expects 201, a MISS and the
// route's fields; then, for a share -replay of operations, re-sends the same request
// and checks the replay. The first answer is left in w.first.
func (w *worker) exchange(rt *route, body []byte) bool {
	w.key = appendKey(w.key[:0], w.cc)
	if !w.do(rt.uri, body, w.key) {
		return false
	}
	code, ans := w.resp.StatusCode(), w.resp.Body()
	switch {
	case code == fasthttp.StatusTooManyRequests && rt.limited:
		return false
	case code != fasthttp.StatusCreated:
		w.fail(failStatus, "%s: %d %.200s", rt.uri, code, ans)
		return false
	case !w.r.bare && w.idem() != idemMiss:
		w.fail(failIdemHeader, "%s: first send answered X-Idempotency %q", rt.uri, w.resp.Header.Peek("X-Idempotency"))
	}
	for _, f := range rt.fields {
		if len(jsonField(ans, f)) == 0 {
			w.fail(failBody, "%s: no %s in %.200s", rt.uri, f, ans)
			return false
		}
	}
	if !w.r.bare && !bytes.Equal(jsonField(ans, walletField), w.wallet) {
		w.fail(failBody, "%s: wallet %s, sent %s", rt.uri, jsonField(ans, walletField), w.wallet)
	}
	w.first = append(w.first[:0], ans...)
	if w.noReplay || w.rnd.Float64() >= w.r.cfg.Replay {
		return true
	}
	if w.do(rt.uri, body, w.key) {
		w.checkReplay(rt, code, w.first)
	}
	return true
}

// checkReplay verifies the answer in w.resp replays the stored one exactly.
func (w *worker) checkReplay(rt *route, code int, first []byte) {
	got, ans := w.resp.StatusCode(), w.resp.Body()
	if !w.r.bare && w.idem() != idemHit {
		w.fail(failIdemHeader, "%s: replay answered X-Idempotency %q, Idempotent-Replayed %q", rt.uri,
			w.resp.Header.Peek("X-Idempotency"), w.resp.Header.Peek("Idempotent-Replayed"))
	}
	switch a, b := jsonField(first, rt.id), jsonField(ans, rt.id); {
	case got != code:
		w.fail(failReplayStatus, "%s: first %d, replay %d %.200s", rt.uri, code, got, ans)
	case bytes.Equal(first, ans):
	case len(b) > 0 && !bytes.Equal(a, b):
		w.fail(failDuplicate, "%s: one key, %s %s and %s", rt.uri, rt.id, a, b)
	default:
		w.fail(failReplayBody, "%s: first %.200s, replay %.200s", rt.uri, first, ans)
	}
}

var walletField = []byte("wallet")

// jsonField returns the value of the string field name in a flat JSON object, or nil.
// A scan instead of a decoder keeps verification cheap next to the server's cost;
// the answers' ids, hashes and timestamps contain no escapes.
func jsonField(obj, name []byte) []byte {
	for off := 0; ; {
		i := bytes.Index(obj[off:], name)
		if i < 0 {
			return nil
		}
		i += off
		off = i + len(name)
		if i == 0 || obj[i-1] != '"' || off >= len(obj) || obj[off] != '"' {
			continue
		}
		v := bytes.TrimLeft(obj[off+1:], " ")
		if len(v) == 0 || v[0] != ':' {
			continue // the name appeared as a value
		}
		v = bytes.TrimLeft(v[1:], " ")
		if len(v) == 0 || v[0] != '"' {
			return nil
		}
		end := bytes.IndexByte(v[1:], '"')
		if end < 0 {
			return nil
		}
		return v[1 : 1+end]
	}
}
