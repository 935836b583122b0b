// Package actors serializes each wallet's work in one actor (protoactor-go):
// idempotency lookup, rate limits, the domain step and its durable commit.
package actors

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/sgeplatform/sge/internal/ratelimit"
	"github.com/sgeplatform/sge/persistence"
	"go.opentelemetry.io/otel/trace"
)

const kindWallet = "wallet"

// Errors returned by System.
var (
	ErrTimeout  = errors.New("actors: no answer in time")
	ErrShutdown = errors.New("actors: shutting down")
	// ErrOverloaded: MaxLiveWallets actors are alive and the request's
	// wallet is not one of them.
	ErrOverloaded = errors.New("actors: too many live wallets")
)

// Policy names, as they appear in RateLimit headers and problem bodies.
const (
	PolicyRegisterIP     = "register-ip"
	PolicyRegisterWallet = "register-wallet"
	PolicyClaimWallet    = "claim-wallet"
)

// System owns the actor system, the wallet registry and the IP limiter.
type System struct {
	cfg   Config
	store *persistence.Store
	as    *actor.ActorSystem
	reg   registry
	log   *slog.Logger
	// tracer is nil when tracing is off.
	tracer trace.Tracer

	registerIP     *ratelimit.Limiter
	registerWallet ratelimit.Policy
	claimWallet    ratelimit.Policy
	signer         ed25519.PrivateKey
	policyHeaders  [4]string // RateLimit-Policy by Op
	pending        pendingKeys
	recent         *recentRecords
	known          *knownWallets
	records        *recordKeys
	dispatcher     *workerDispatcher // runs the wallet actors
	// passivations counts wallet actors removed from the registry.
	passivations atomic.Uint64
	// walletActors counts wallet actors spawned and not yet stopped, those
	// passivating included, for Shutdown to wait on.
	walletActors *liveCount

	webhooks webhookLocks

	// settlementCreated is told about each settlement once it is durable.
	settlementCreated func(*persistence.Settlement)

	stop     chan struct{}
	wg       sync.WaitGroup
	shutOnce sync.Once
	shutErr  error
}

// New starts the actor system on store. It restores the IP buckets and the
// claim signing key from the store.
func New(cfg Config, store *persistence.Store, as *actor.ActorSystem) (*System, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &System{
		cfg:            cfg,
		store:          store,
		as:             as,
		log:            cfg.Logger.With("component", "actors"),
		registerIP:     ratelimit.NewLimiter(ratelimit.Policy{Name: PolicyRegisterIP, Quota: cfg.RegisterPerHourIP, Window: time.Hour}, cfg.IPLimiterMaxEntries),
		registerWallet: ratelimit.Policy{Name: PolicyRegisterWallet, Quota: cfg.RegisterPerDayWallet, Window: 24 * time.Hour},
		claimWallet:    ratelimit.Policy{Name: PolicyClaimWallet, Quota: cfg.ClaimPerHour, Window: time.Hour},
		stop:           make(chan struct{}),
		walletActors:   newLiveCount(),
	}
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer(tracerName)
	}
	s.dispatcher = newWorkerDispatcher(dispatcherIdle, s.stop)
	s.known = newKnownWallets()
	s.records = newRecordKeys(defaultRecordGenSize)
	s.reg.init(s)
	s.pending.init()
	s.recent = newRecentRecords(max(cfg.ReplayCacheRecords, 0))
	for _, op := range []Op{OpRegister, OpClaimPrepare, OpClaimRecord} {
		s.policyHeaders[op] = s.policyHeader(op)
	}
	key, err := s.loadSigningKey()
	if err != nil {
		return nil, err
	}
	s.signer = key
	if err := s.restoreIPBuckets(); err != nil {
		return nil, err
	}
	s.wg.Add(3)
	go s.maintain()
	go func() {
		defer s.wg.Done()
		if err := s.known.scan(store, s.stop); err != nil {
			s.log.Error("scan stored wallets (every wallet counts as known)", "err", err)
		}
	}()
	startedAt := s.now().UnixNano() // read here: tests move the clock once New returns
	go func() {
		defer s.wg.Done()
		if err := s.records.scan(store, startedAt, s.stop); err != nil {
			s.log.Error("scan idempotency records (every record counts as stored)", "err", err)
		}
	}()
	return s, nil
}

// PublicKey is the key that verifies claim ticket signatures.
func (s *System) PublicKey() ed25519.PublicKey { return s.signer.Public().(ed25519.PublicKey) }

// PublicKeyBase64 is PublicKey in standard base64.
func (s *System) PublicKeyBase64() string { return base64.StdEncoding.EncodeToString(s.PublicKey()) }

// RateLimitPolicy is the RateLimit-Policy field for op's route: the policies
// that apply to it with their quota and window in seconds; "" when none do.
func (s *System) RateLimitPolicy(op Op) string {
	if int(op) < len(s.policyHeaders) {
		return s.policyHeaders[op]
	}
	return ""
}

func (s *System) policyHeader(op Op) string {
	item := func(p *ratelimit.Policy) string {
		return fmt.Sprintf("%q;q=%d;w=%d", p.Name, p.Quota, int(p.Window/time.Second))
	}
	switch op {
	case OpRegister:
		return item(s.registerIP.Policy()) + ", " + item(&s.registerWallet)
	case OpClaimPrepare:
		return item(&s.claimWallet)
	}
	return ""
}

// OnSettlementCreated sets the function told about each new durable
// settlement (the settlement supervisor). Call before serving.
func (s *System) OnSettlementCreated(f func(*persistence.Settlement)) { s.settlementCreated = f }

// LiveWallets returns the number of wallet actors alive now.
func (s *System) LiveWallets() int { return s.reg.live() }

// IPLimiterEntries returns the number of IP buckets held in memory.
func (s *System) IPLimiterEntries() int { return s.registerIP.Len() }

// Do hands r to its wallet's actor and waits for the answer. A webhook event
// without a wallet is handled here, in the caller's goroutine. On ErrTimeout
// the answer fields must not be read; Release r as usual.
func (s *System) Do(r *Request) error {
	select {
	case <-s.stop:
		return ErrShutdown
	default:
	}
	if r.Op == OpWebhook && len(r.Wallet) == 0 {
		s.webhookUnrouted(r)
		return nil
	}
	// Webhook deliveries dedupe on a global record inside the actor step,
	// so only the API's idempotency records are replayed directly.
	if r.Op != OpWebhook && len(r.Key) > 0 {
		r.recordKey = persistence.AppendIdempotencyKey(r.recordKey[:0], r.Wallet, r.Op.scope(), r.Key)
		if s.replay(r) {
			return nil
		}
	}
	if s.refuseEarly(r) {
		return nil
	}
	if !s.reg.send(r.Wallet, r) {
		return ErrOverloaded
	}
	t := timerPool.Get().(*time.Timer)
	t.Reset(s.cfg.AnswerTimeout)
	defer func() { t.Stop(); timerPool.Put(t) }()
	select {
	case <-r.done:
		return nil
	case <-t.C:
		r.abandoned.Store(true)
		return ErrTimeout
	}
}

var timerPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

func (s *System) now() time.Time { return s.cfg.Now() }

func (s *System) spawnWallet(wallet string, entry *walletEntry) *actor.PID {
	// Wallet actors recover panics in their steps themselves (guard); one
	// that escapes (in Started) is handled by protoactor-go's default
	// guardian, which restarts the actor, reloading it from Pebble, and
	// stops it after ten restarts in ten seconds, when it leaves the
	// registry (walletActor.Receive, *actor.Stopped).
	// A wallet never seen has nothing stored: its first actor need not read
	// its buckets. Restarts of that actor (which may follow a write) read.
	walletB := []byte(wallet) // shared by every incarnation, read-only
	entry.unknown.Store(!s.known.mayBeStored(walletB))
	s.known.add(walletB) // before the actor can write anything
	props := actor.PropsFromProducer(func() actor.Actor { return newWalletActor(s, wallet, walletB, entry) },
		actor.WithDispatcher(s.dispatcher))
	s.walletActors.spawned() // the actor's Stopped takes it off
	return s.as.Root.Spawn(props)
}

func (s *System) loadSigningKey() (ed25519.PrivateKey, error) {
	if s.cfg.SigningKey != nil {
		return s.cfg.SigningKey, nil
	}
	seed, err := s.store.Get(nil, persistence.KeySigningKey)
	switch {
	case err == nil && len(seed) == ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(seed), nil
	case err == nil:
		return nil, fmt.Errorf("%w: claim signing key has %d bytes", persistence.ErrCorrupt, len(seed))
	case !errors.Is(err, persistence.ErrNotFound):
		return nil, err
	}
	seed = make([]byte, ed25519.SeedSize)
	_, _ = rand.Read(seed)
	b := s.store.DB().NewBatch()
	_ = b.Set(persistence.KeySigningKey, seed, nil)
	if err := s.store.Commit(b); err != nil {
		return nil, fmt.Errorf("actors: store generated claim signing key: %w", err)
	}
	s.log.Info("generated claim signing key", "publicKey", fmt.Sprintf("%x", ed25519.NewKeyFromSeed(seed).Public()))
	return ed25519.NewKeyFromSeed(seed), nil
}

// Shutdown stops maintenance, stops every wallet actor after it has drained
// its mailbox, and snapshots the IP buckets. Call it after the HTTP server has
// stopped taking requests and before closing the store. Safe to call twice.
func (s *System) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
		// Poison (not Stop) lets each actor finish what is queued, including
		// commits in flight, before it stops. The count also covers actors
		// that were passivating already.
		for _, pid := range s.reg.drain() {
			s.as.Root.Poison(pid)
		}
		if n, err := s.walletActors.wait(ctx); err != nil {
			s.shutErr = fmt.Errorf("actors: shutdown: %d wallet actors still running: %w", n, err)
		}
		if err := s.snapshotIPBuckets(); err != nil {
			s.shutErr = errors.Join(s.shutErr, err)
		}
	})
	return s.shutErr
}
