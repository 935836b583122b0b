package actors

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/sgeplatform/sge/internal/ratelimit"
	"go.opentelemetry.io/otel/trace"
)

// Op is a mutating operation on a wallet.
type Op uint8

// The operations, one per POST route.
const (
	OpRegister Op = iota + 1
	OpClaimPrepare
	OpClaimRecord
	// OpWebhook is a verified Commerce webhook event; Request.Key is its
	// event id, so racing deliveries meet in the wallet actor's in-flight
	// duplicate handling.
	OpWebhook
)

// Route returns the route template, used in metrics and idempotency scope.
func (o Op) Route() string {
	switch o {
	case OpRegister:
		return "/api/register"
	case OpClaimPrepare:
		return "/api/claim/prepare"
	case OpClaimRecord:
		return "/api/claim/record"
	case OpWebhook:
		return "/api/webhooks/commerce"
	}
	return "unknown"
}

// scope is the short route name inside idempotency keys on disk.
func (o Op) scope() string {
	switch o {
	case OpRegister:
		return "register"
	case OpClaimPrepare:
		return "claim-prepare"
	case OpClaimRecord:
		return "claim-record"
	case OpWebhook:
		return "webhook"
	}
	return "unknown"
}

// Idempotency outcomes reported on the answer (X-Idempotency).
const (
	IdemNone = iota // no key sent
	IdemMiss
	IdemHit
)

// Limit is one rate-limit policy's decision on a request.
type Limit struct {
	Policy   *ratelimit.Policy
	Decision ratelimit.Decision
}

// Request is one mutating request, filled by the transport, answered by the
// wallet actor. Requests are pooled: get one with NewRequest, hand it to
// System.Do, read the answer, then Release it.
type Request struct {
	Op     Op
	Wallet []byte // lowercase "0x…" address
	Key    []byte // idempotency key; empty when none was sent
	// Fingerprint is SHA-256 over method, route and body.
	Fingerprint [32]byte
	IP          netip.Addr
	Amount      []byte
	ClaimID     []byte
	TxHash      []byte
	// TraceParent is the W3C traceparent stored on the settlements this
	// request creates: the request span's when tracing is on.
	TraceParent []byte
	// Webhook is the event of an OpWebhook request; nil otherwise.
	Webhook *WebhookEvent
	// SpanContext is the request span, parent of the wallet step's span.
	// Zero when tracing is off.
	SpanContext trace.SpanContext

	// The answer.
	Status      int
	Body        []byte
	Problem     bool // Body is application/problem+json
	Idempotency int  // IdemNone, IdemMiss or IdemHit
	Limits      [2]Limit
	NLimits     int
	// Limited is the index in Limits of the policy that refused, or -1.
	Limited int

	// recordKey is the key of Key's idempotency record, built once in Do
	// for the direct replay, the early refusal and the actor's lookup.
	recordKey []byte
	// absent, readEpoch and spawnEpoch let a fresh actor trust the direct
	// replay's miss; see replay.go.
	absent     bool
	freshActor bool
	readEpoch  uint64
	spawnEpoch uint64
	// span is the wallet step's span, ended when the request is answered;
	// nil when tracing is off.
	span trace.Span

	done chan struct{}
	// abandoned is set when Do gave up waiting: the actor may still write
	// its late answer, so the request must never go back to the pool.
	abandoned atomic.Bool
}

var requestPool = sync.Pool{New: func() any {
	return &Request{done: make(chan struct{}, 1), Body: make([]byte, 0, 512)}
}}

// NewRequest returns a cleared request from the pool.
func NewRequest() *Request {
	r := requestPool.Get().(*Request)
	r.Op = 0
	r.Wallet = r.Wallet[:0]
	r.Key = r.Key[:0]
	r.Fingerprint = [32]byte{}
	r.IP = netip.Addr{}
	r.Amount = r.Amount[:0]
	r.ClaimID = r.ClaimID[:0]
	r.TxHash = r.TxHash[:0]
	r.TraceParent = r.TraceParent[:0]
	r.Webhook = nil
	r.SpanContext = trace.SpanContext{}
	r.span = nil
	r.Status = 0
	r.Body = r.Body[:0]
	r.Problem = false
	r.Idempotency = IdemNone
	r.NLimits = 0
	r.Limited = -1
	r.recordKey = r.recordKey[:0]
	r.absent, r.freshActor = false, false
	return r
}

// Release returns r to the pool; r must not be used afterwards.
func Release(r *Request) {
	if r.abandoned.Load() || cap(r.Body) > 64<<10 {
		return
	}
	requestPool.Put(r)
}

func (r *Request) addLimit(p *ratelimit.Policy, d ratelimit.Decision) {
	if r.NLimits < len(r.Limits) {
		r.Limits[r.NLimits] = Limit{p, d}
		r.NLimits++
	}
}
