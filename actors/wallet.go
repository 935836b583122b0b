package actors

import (
	"bytes"
	"errors"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/sgeplatform/sge/internal/problem"
	"github.com/sgeplatform/sge/internal/ratelimit"
	"github.com/sgeplatform/sge/persistence"
	"go.opentelemetry.io/otel/trace"
)

// walletActor owns one wallet: its token buckets, its one commit in flight
// and the requests that wait for it. Nothing else touches this state.
//
// Invariant: at most one commit is in flight. Requests that arrive meanwhile
// are either duplicates of it (same route and key: they wait for its answer)
// or are stashed and run after it, so every domain step sees the effects of
// the ones before it. The mailbox itself never blocks on storage.
type walletActor struct {
	sys     *System
	wallet  string
	walletB []byte
	self    *actor.PID
	// entry is the actor's registry entry: whether the wallet was unknown
	// at spawn, and where the actor publishes its claim bucket after a
	// refusal (see System.refuseEarly).
	entry *walletEntry

	// received counts registry messages, for the passivation handshake.
	received   uint64
	passivated bool
	// lastActive is when the actor last had work; idle is its passivation
	// timer (see idleTick).
	lastActive time.Time
	idle       *time.Timer
	buckets    walletBuckets
	inflight   *commit
	// current is the request being handled until it is answered, and
	// marked the record key its step marked pending and has not yet handed
	// to a commit: what guard must answer and unmark if the step panics.
	current *Request
	marked  string
	stash   []*Request
	// keyBuf and valBuf are lent for one message (lend).
	keyBuf []byte
	valBuf []byte
}

// walletBuckets is the wallet's rate-limit state, persisted under w/…/b with
// every effect that spends from it.
type walletBuckets struct {
	register ratelimit.Bucket
	claim    ratelimit.Bucket
}

// commit is the wallet's effect in flight: the first request, the duplicates
// waiting for it, and how to undo token spending if it fails. It is also the
// message the committer sends back when the batch is durable.
type commit struct {
	pid     *actor.PID
	sys     *System
	op      Op
	key     []byte
	recKey  string // the idempotency record's full key
	recVal  []byte // and its encoded value
	fp      [32]byte
	first   *Request
	dups    []*Request
	err     error
	created []*persistence.Settlement // new settlements to hand to the supervisor
	// prev and spentIP undo the token spending if the commit fails.
	prev    walletBuckets
	spentIP bool
	// webhook is the event id whose reservation this commit holds (OpWebhook
	// only); released once the commit is decided, whatever became of it.
	webhook           string
	webhookSettlement string
	// span covers this batch from submit to durable; nil when tracing is off.
	span trace.Span
}

// Committed implements persistence.Waiter: it turns the commit result into a
// message so the actor handles it in turn, without blocking anyone.
func (c *commit) Committed(err error) {
	c.err = err
	if c.span != nil {
		endSpan(c.span, err)
	}
	c.sys.as.Root.Send(c.pid, c)
}

func newWalletActor(s *System, wallet string, walletB []byte, entry *walletEntry) *walletActor {
	return &walletActor{sys: s, wallet: wallet, walletB: walletB, entry: entry}
}

func (a *walletActor) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *Request, *commit, *purge, *actor.Started:
		k, v := a.lend()
		defer a.giveBack(k, v)
	}
	switch m := ctx.Message().(type) {
	case *Request:
		a.received++
		start := time.Now()
		a.lastActive = start
		a.current = m
		a.guard(func() { a.handle(m) })
		a.current = nil
		a.sys.cfg.Observer.MessageHandled(kindWallet, time.Since(start))
	case *commit:
		a.lastActive = time.Now()
		a.guard(func() { a.finish(m) })
	case *purge:
		a.received++
		a.guard(func() { a.purge(m) })
		a.sys.cfg.Observer.MessageHandled(kindWallet, 0)
	case *idleTick:
		a.onIdleTick(ctx)
	case *actor.Started:
		a.self = ctx.Self()
		a.entry.claimRefused.Store(nil) // a restart reloads the buckets
		a.load()
		a.lastActive = time.Now()
		a.armIdle(a.sys.idleTimeout())
		a.sys.cfg.Observer.ActorSpawned(kindWallet)
	case *actor.Restarting:
		a.stopIdle()
		// The restarted instance counts itself as spawned again on Started.
		a.sys.cfg.Observer.ActorRestarted(kindWallet)
		a.sys.cfg.Observer.ActorStopped(kindWallet, false)
	case *actor.Stopped:
		a.stopIdle()
		if !a.passivated {
			// Stopped by its supervisor or at shutdown: let the next
			// request spawn a fresh actor rather than reach a dead one.
			a.sys.reg.forget(a.wallet, a.self)
		}
		a.sys.cfg.Observer.ActorStopped(kindWallet, a.passivated)
		a.sys.walletActors.stopped() // last: Shutdown may close the store after it
	}
}

// guard turns a panic in a step into 500 answers for everyone waiting on this
// actor: no request hangs, and nothing half-done is stored because effects
// only exist once committed. A commit already submitted may still land; a
// retry with the same key then replays it.
func (a *walletActor) guard(f func()) {
	defer func() {
		if p := recover(); p != nil {
			a.sys.log.Error("wallet step panicked", "wallet", a.wallet, "panic", p)
			a.unmark() // no-op when the step had handed its key to a commit
			waiting := a.stash
			if c := a.inflight; c != nil {
				waiting = append(append(waiting, c.first), c.dups...)
			}
			if r := a.current; r != nil && !slices.Contains(waiting, r) {
				waiting = append(waiting, r) // panicked before it was answered or queued
			}
			a.inflight, a.stash, a.current = nil, nil, nil
			for _, r := range waiting {
				a.answerProblem(r, 500, "internal", "Internal error", "the request failed; retry it with the same Idempotency-Key")
			}
		}
	}()
	f()
}

// lend gives the actor its key and value buffers for one message (see
// scratchBufs); giveBack returns them when the message is handled.
func (a *walletActor) lend() (k, v *[]byte) {
	k, v = getScratch(), getScratch()
	a.keyBuf, a.valBuf = (*k)[:0], (*v)[:0]
	return k, v
}

func (a *walletActor) giveBack(k, v *[]byte) {
	putScratch(k, a.keyBuf)
	putScratch(v, a.valBuf)
	a.keyBuf, a.valBuf = nil, nil
}

func (a *walletActor) load() {
	if a.entry.unknown.Swap(false) {
		return // a wallet never seen (knownWallets): nothing to read
	}
	v, err := a.sys.store.Get(a.valBuf[:0], a.bucketsKey())
	if err != nil {
		if !errors.Is(err, persistence.ErrNotFound) {
			a.sys.log.Error("load wallet buckets", "wallet", a.wallet, "err", err)
			a.sys.cfg.Observer.StorageError("read")
		}
		return
	}
	a.buckets.register, v, _ = ratelimit.DecodeBucket(v)
	a.buckets.claim, _, _ = ratelimit.DecodeBucket(v)
}

func (a *walletActor) bucketsKey() []byte {
	a.keyBuf = persistence.AppendWalletKey(a.keyBuf[:0], a.walletB, persistence.TagBuckets)
	return a.keyBuf
}

// idleTick asks a wallet actor whether it has been idle long enough to
// passivate. The actor keeps its own timer rather than protoactor-go's
// receive timeout, whose timer goroutine writes actor state the actor's own
// goroutine reads (a data race the race detector reports).
type idleTick struct{}

var tick = &idleTick{}

// armIdle makes the timer send a tick after d. The timer only sends a
// message, so it shares no state with the actor.
func (a *walletActor) armIdle(d time.Duration) {
	if a.idle != nil {
		a.idle.Reset(d)
		return
	}
	self, root := a.self, a.sys.as.Root
	a.idle = time.AfterFunc(d, func() { root.Send(self, tick) })
}

// idleTimeout is how long a wallet actor stays idle before it passivates:
// IdleTimeout, or PressureIdleTimeout once three quarters of the live-wallet
// cap are taken, so new wallets find room instead of 503.
func (s *System) idleTimeout() time.Duration {
	if 4*s.reg.live() >= 3*s.cfg.MaxLiveWallets {
		return min(s.cfg.IdleTimeout, s.cfg.PressureIdleTimeout)
	}
	return s.cfg.IdleTimeout
}

func (a *walletActor) stopIdle() {
	if a.idle != nil {
		a.idle.Stop()
	}
}

// onIdleTick passivates the actor once nothing has happened for the idle
// timeout, or sets the timer for the rest of it.
func (a *walletActor) onIdleTick(ctx actor.Context) {
	idle := a.sys.idleTimeout()
	if since := time.Since(a.lastActive); since < idle {
		a.armIdle(idle - since)
		return
	}
	if !a.maybePassivate(ctx) {
		a.armIdle(idle)
	}
}

func (a *walletActor) maybePassivate(ctx actor.Context) bool {
	if a.inflight != nil || len(a.stash) > 0 {
		return false
	}
	// Buckets are already durable (written with every effect), so there is
	// nothing to save: once the registry lets go, stopping loses nothing.
	if !a.sys.reg.tryPassivate(a.wallet, a.self, a.received) {
		return false
	}
	a.stopIdle()
	a.passivated = true
	ctx.Stop(a.self)
	return true
}

func (a *walletActor) handle(r *Request) {
	if a.sys.tracer != nil {
		a.startStep(r)
	}
	if c := a.inflight; c != nil {
		if r.Op == c.op && len(r.Key) > 0 && bytes.Equal(r.Key, c.key) {
			if r.Fingerprint != c.fp {
				a.mismatch(r)
				return
			}
			if r.Op != OpWebhook {
				a.sys.cfg.Observer.Idempotency(r.Op.Route(), "hit")
			}
			c.dups = append(c.dups, r)
			return
		}
		a.stash = append(a.stash, r)
		return
	}
	a.process(r)
}

// process runs one request: replay, limits, domain step, commit.
func (a *walletActor) process(r *Request) {
	if r.Op == OpWebhook {
		a.webhook(r)
		return
	}
	now := a.sys.now()
	nowNano := now.UnixNano()
	hasKey := len(r.Key) > 0
	// The direct replay found no record, this request spawned the actor and
	// no actor passivated in between: no actor of this wallet existed since
	// that read, so the record is still absent.
	trustMiss := r.absent && r.freshActor && r.readEpoch == r.spawnEpoch && a.received == 1
	if hasKey && trustMiss {
		r.Idempotency = IdemMiss
		a.sys.cfg.Observer.Idempotency(r.Op.Route(), "miss")
	} else if hasKey {
		v, cached, err := a.sys.findRecord(r.recordKey, a.valBuf[:0])
		if !cached {
			a.valBuf = v[:0] // never a cached record: valBuf is written to
		}
		switch {
		case err == nil:
			var rec persistence.Idempotency
			if derr := persistence.DecodeIdempotency(v, &rec); derr != nil {
				a.storageFailure(r, "read", derr)
				return
			}
			if rec.ExpiresAt > nowNano {
				if rec.Fingerprint != r.Fingerprint {
					a.mismatch(r)
					return
				}
				r.Status, r.Problem, r.Idempotency = rec.Status, rec.Problem, IdemHit
				r.Body = append(r.Body[:0], rec.Body...)
				a.sys.cfg.Observer.Idempotency(r.Op.Route(), "hit")
				a.answer(r)
				return
			}
		case !errors.Is(err, persistence.ErrNotFound):
			a.storageFailure(r, "read", err)
			return
		}
		r.Idempotency = IdemMiss
		a.sys.cfg.Observer.Idempotency(r.Op.Route(), "miss")
	}
	// From here until its commit returns (or the request ends without one)
	// the key is pending: no direct replay and no early 429 for it (see
	// replay.go). It is marked before any token is spent, so a request that
	// finds a bucket empty also finds every key that spent from it pending.
	// The actor keeps its own copy: after a panic (guard) the request is
	// answered and recycled while its commit may still return.
	var recKey string
	if hasKey {
		recKey = string(r.recordKey)
		a.sys.pending.add(recKey)
		a.marked = recKey
	}

	prev := a.buckets
	spentIP, ok := a.limit(r, nowNano)
	if !ok {
		a.unmark()
		a.answer(r)
		return
	}

	b := a.sys.store.DB().NewBatch()
	c := &commit{pid: a.self, sys: a.sys, op: r.Op, fp: r.Fingerprint, first: r, prev: prev, spentIP: spentIP}
	effect, err := a.domain(r, b, now, c)
	if err != nil {
		_ = b.Close()
		a.undo(r, spentIP, prev)
		a.unmark()
		a.storageFailure(r, "read", err)
		return
	}
	if !effect && !hasKey {
		// A domain refusal without a key changes nothing: no commit needed.
		_ = b.Close()
		a.answer(r)
		return
	}
	if a.buckets != prev {
		_ = b.Set(a.bucketsKey(), a.encodeBuckets(), nil)
	}
	if hasKey {
		expires := now.Add(a.sys.cfg.IdempotencyTTL).UnixNano()
		a.sys.records.add(r.recordKey, expires, nowNano) // before the record can be read
		rec := persistence.Idempotency{ExpiresAt: expires, Fingerprint: r.Fingerprint, Status: r.Status, Problem: r.Problem, Body: r.Body}
		c.recKey = recKey
		c.key = r.Key
		// Its own buffer: once durable, it is kept in recentRecords.
		c.recVal = persistence.AppendIdempotency(make([]byte, 0, persistence.IdempotencyHeaderSize+len(rec.Body)), &rec)
		_ = b.Set(r.recordKey, c.recVal, nil)
		_ = b.Set(persistence.AppendExpiryKey(a.keyBuf[:0], expires, a.walletB, r.Op.scope(), r.Key), nil, nil)
	}
	a.inflight = c
	if r.span != nil {
		c.span = a.startCommit(r)
	}
	a.marked = "" // the commit unmarks it when it returns (finish)
	a.sys.store.Submit(b, c)
}

// unmark ends the pending mark of a step that will not commit.
func (a *walletActor) unmark() {
	a.sys.pending.remove(a.marked)
	a.marked = ""
}

func (a *walletActor) encodeBuckets() []byte {
	v := a.buckets.register.AppendBinary(a.valBuf[:0])
	return a.buckets.claim.AppendBinary(v)
}

// limit applies the route's policies. It spends nothing unless every policy
// allows the request; spentIP says whether an IP token was taken.
func (a *walletActor) limit(r *Request, now int64) (spentIP, ok bool) {
	obs := a.sys.cfg.Observer
	switch r.Op {
	case OpRegister:
		wp := &a.sys.registerWallet
		if d := wp.Peek(a.buckets.register, now); !d.Allowed {
			r.addLimit(wp, d)
			obs.RateLimit(wp.Name, false)
			limited(r)
			return false, false
		}
		ip := a.sys.registerIP
		d := ip.Take(r.IP, now)
		r.addLimit(ip.Policy(), d)
		obs.RateLimit(PolicyRegisterIP, d.Allowed)
		if !d.Allowed {
			limited(r)
			return false, false
		}
		r.addLimit(wp, wp.Take(&a.buckets.register, now))
		obs.RateLimit(wp.Name, true)
		return true, true
	case OpClaimPrepare:
		p := &a.sys.claimWallet
		d := p.Take(&a.buckets.claim, now)
		r.addLimit(p, d)
		obs.RateLimit(p.Name, d.Allowed)
		if !d.Allowed {
			// Until it refills, further claims can be refused without this
			// actor (System.refuseEarly).
			b := a.buckets.claim
			a.entry.claimRefused.Store(&b)
			limited(r)
			return false, false
		}
	}
	return false, true
}

// limited turns r into a 429 naming the policy last added to r.Limits. A
// 429 is not stored, so it carries no X-Idempotency.
func limited(r *Request) {
	r.Idempotency = IdemNone
	r.Limited = r.NLimits - 1
	r.Status, r.Problem = 429, true
	r.Body = problem.Append(r.Body[:0], 429, "rate-limited", "Too Many Requests",
		limitedDetail(r.Limits[r.Limited].Policy.Name))
}

// limitedDetail is the 429 problem's detail, a constant per policy so the
// refusal path does not build strings.
func limitedDetail(policy string) string {
	switch policy {
	case PolicyRegisterIP:
		return "rate limit " + PolicyRegisterIP + " exceeded; retry after the Retry-After delay"
	case PolicyRegisterWallet:
		return "rate limit " + PolicyRegisterWallet + " exceeded; retry after the Retry-After delay"
	case PolicyClaimWallet:
		return "rate limit " + PolicyClaimWallet + " exceeded; retry after the Retry-After delay"
	}
	return "rate limit " + policy + " exceeded; retry after the Retry-After delay"
}

// undo gives back the tokens of a request whose effect was not stored.
func (a *walletActor) undo(r *Request, spentIP bool, prev walletBuckets) {
	a.buckets = prev
	// A token came back: what was published as empty may not be.
	a.entry.claimRefused.Store(nil)
	if spentIP {
		a.sys.registerIP.Refund(r.IP, a.sys.now().UnixNano())
	}
}

func (a *walletActor) mismatch(r *Request) {
	a.sys.cfg.Observer.Idempotency(r.Op.Route(), "mismatch")
	a.answerProblem(r, 422, "idempotency-key-reused", "Idempotency-Key reused",
		"this Idempotency-Key was already used with a different request body")
}

func (a *walletActor) storageFailure(r *Request, op string, err error) {
	a.sys.cfg.Observer.StorageError(op)
	a.sys.log.Error("storage", "op", op, "wallet", a.wallet, "err", err)
	a.answerProblem(r, 503, "storage-unavailable", "Service Unavailable",
		"storage is temporarily unavailable; retry with the same Idempotency-Key")
}

func (a *walletActor) answerProblem(r *Request, status int, slug, title, detail string) {
	r.Status, r.Problem = status, true
	r.Body = problem.Append(r.Body[:0], status, slug, title, detail)
	a.answer(r)
}

// answer hands r back to the goroutine waiting in Do. r must not be touched
// afterwards.
func (a *walletActor) answer(r *Request) {
	if r == a.current {
		a.current = nil
	}
	if r.span != nil {
		a.endStep(r)
	}
	r.done <- struct{}{}
}

// finish completes the commit in flight: answer its requests, then run what
// was stashed behind it.
func (a *walletActor) finish(c *commit) {
	if c.recKey != "" {
		a.sys.pending.remove(c.recKey) // the commit has returned, either way
	}
	if c.webhook != "" {
		// After the commit, durable or failed, the dedupe record is settled
		// and another delivery of the event may look at it.
		a.sys.webhooks.release(c.webhook)
	}
	if c != a.inflight {
		return // abandoned after a panic; see guard
	}
	a.inflight = nil
	first := c.first
	if c.err != nil {
		a.undo(first, c.spentIP, c.prev)
		if !errors.Is(c.err, persistence.ErrClosed) {
			a.sys.cfg.Observer.StorageError("commit")
		}
		for _, r := range append(c.dups, first) {
			r.Idempotency = IdemNone
			if r.Webhook != nil {
				r.Webhook.Result = ""
			}
			a.answerProblem(r, 503, "storage-unavailable", "Service Unavailable",
				"storage is temporarily unavailable; retry with the same Idempotency-Key")
		}
	} else {
		if c.recKey != "" {
			a.sys.recent.put(c.recKey, c.recVal) // durable now
		}
		if c.op == OpWebhook {
			finishWebhookDups(c)
		}
		for _, r := range c.dups {
			if c.op != OpWebhook {
				r.Status, r.Problem, r.Idempotency = first.Status, first.Problem, IdemHit
				r.Body = append(r.Body[:0], first.Body...)
			}
			a.answer(r)
		}
		if f := a.sys.settlementCreated; f != nil {
			for _, st := range c.created {
				f(st)
			}
		}
		a.answer(first)
	}
	for a.inflight == nil && len(a.stash) > 0 {
		r := a.stash[0]
		a.stash[0] = nil
		a.stash = a.stash[1:]
		a.process(r)
	}
	if len(a.stash) == 0 {
		a.stash = nil
	}
}
