package actors

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/persistence"
	"go.opentelemetry.io/otel/trace"
)

const kindSettlement = "settlement"

// Supervisor runs settlements: one settlement actor per settlement being
// worked on, spawned from the root so that protoactor-go's default strategy
// supervises it (one-for-one: restart after a panic, stop past 10 restarts
// in 10s; the settlement then stays due and the sweeper starts a fresh
// actor later). A parent actor with that same strategy only added a hop per
// spawn and a message per stop. It also owns the semaphore that bounds
// backend calls, the sweeper that resumes what a crash left in g/due, and the
// dead-letter operations.
//
// Invariants:
//   - A settlement has at most one live actor, and that actor at most one
//     attempt in flight: mu.live holds every actor (and orphaned attempt)
//     per settlement id, and an entry leaves it only when its actor has
//     stopped and its attempt goroutine has returned.
//   - Durable state is the truth. An actor keeps nothing that is not in
//     Pebble; a restarted or new actor reloads the record and goes on.
//   - A settlement that is pending or running has exactly one g/due entry, at
//     NextAttemptAt (or CreatedAt while NextAttemptAt is nil).
type Supervisor struct {
	cfg     SettlementConfig
	store   *persistence.Store
	as      *actor.ActorSystem
	backend Backend
	obs     Observer
	log     *slog.Logger
	// actors counts settlement actors spawned and not yet stopped.
	actors *liveCount
	// stopGrace bounds Shutdown's wait for the settlement actors once its
	// context has run out (settlementStopGrace; shorter in tests).
	stopGrace time.Duration
	// dispatcher runs the settlement actors.
	dispatcher *workerDispatcher
	tracer     trace.Tracer // nil when tracing is off

	sem chan struct{} // one token per backend call in flight
	// slotCtx aborts attempts still waiting for a token; callCtx aborts the
	// calls themselves. Both are cancelled at shutdown, callCtx only after
	// the shutdown context has run out.
	slotCtx, callCtx       context.Context
	cancelSlot, cancelCall context.CancelFunc
	attempts               sync.WaitGroup // attempt goroutines

	kick      chan struct{} // asks the sweeper for an early pass
	stop      chan struct{}
	sweepDone chan struct{}

	// Gauges for telemetry: settlements with a due entry (pending or
	// running), backend calls in flight, dead letters. Counted at start-up
	// from g/due and g/dead, then kept up to date as commits land.
	unfinished, inflight, dead atomic.Int64

	adminMu sync.Mutex // serializes replay and delete

	mu struct {
		sync.Mutex
		live     map[string]*liveSettlement
		overflow bool // a start was refused for MaxLive: sweep once there is room
		// resumeAt is the due key where the last sweep stopped for want of
		// room; nil when it reached the end.
		resumeAt []byte
		// stopped is set by Shutdown; started by Start, which does nothing
		// once stopped is set.
		stopped, started bool
	}

	shutOnce sync.Once
	shutErr  error
}

// liveSettlement is a settlement with an actor. It outlives restarts of the
// actor, so a fresh incarnation knows about the attempt its predecessor
// started.
type liveSettlement struct {
	id, wallet string
	// created is the record as its creator committed it, for the actor's
	// first start to take instead of reading it back; nil when the
	// settlement comes from the store. Only the actor touches it.
	created *persistence.Settlement
	// due is the g/due entry the sweep started the actor for (nil when
	// another path started it): the actor drops it when the record turns
	// out finished or gone, so a stray entry is not swept again.
	due []byte
	// awaiting is set while an attempt's result has not been handled; only
	// the actor (any incarnation, one at a time) touches it.
	awaiting atomic.Bool
	// spawned says the actor's first Started was counted.
	spawned bool
	// Guarded by Supervisor.mu.
	pid     *actor.PID // set at spawn, under the same lock as the entry
	running bool       // the attempt goroutine has not returned
	stopped bool       // the actor has finished or stopped
	// queued counts messages sent and not yet handled (mailbox metric).
	queued atomic.Int64
}

// NewSupervisor prepares the supervisor on store; Start begins sweeping.
func NewSupervisor(cfg SettlementConfig, store *persistence.Store, as *actor.ActorSystem) (*Supervisor, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Supervisor{
		cfg:       cfg,
		store:     store,
		as:        as,
		backend:   NewBackend(cfg),
		obs:       cfg.Observer,
		log:       cfg.Logger.With("component", "settlements"),
		sem:       make(chan struct{}, cfg.Concurrency),
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		sweepDone: make(chan struct{}),
		actors:    newLiveCount(),
		stopGrace: settlementStopGrace,
	}
	s.dispatcher = newWorkerDispatcher(dispatcherIdle, s.stop)
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer(tracerName)
	}
	s.slotCtx, s.cancelSlot = context.WithCancel(context.Background())
	s.callCtx, s.cancelCall = context.WithCancel(context.Background())
	s.mu.live = make(map[string]*liveSettlement)
	due, err := countKeys(store, persistence.PrefixDue)
	if err != nil {
		return nil, err
	}
	dead, err := countKeys(store, persistence.PrefixDead)
	if err != nil {
		return nil, err
	}
	s.unfinished.Store(due)
	s.dead.Store(dead)
	return s, nil
}

func countKeys(store *persistence.Store, prefix []byte) (int64, error) {
	var n int64
	err := store.Scan(prefix, func(_, _ []byte) error { n++; return nil })
	if err != nil {
		return 0, fmt.Errorf("%w: count %s: %w", persistence.ErrCorrupt, prefix, err)
	}
	return n, nil
}

// Start runs the sweeper: a pass now, then every SweepInterval. After
// Shutdown it does nothing: a sweeper started then would read a store that
// may be closed already, and Shutdown would not wait for it.
func (s *Supervisor) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.stopped || s.mu.started {
		return
	}
	s.mu.started = true
	go s.sweeper()
}

// Created is told about a new durable settlement (System.OnSettlementCreated)
// and starts it.
func (s *Supervisor) Created(st *persistence.Settlement) {
	s.unfinished.Add(1)
	s.start(st.ID, st.Wallet, st, nil)
}

// Counts reports settlements by status for telemetry: pending and running
// are those with a due entry (running = backend calls in flight now), dead
// the dead letters. Succeeded settlements are not indexed and not counted;
// sge_settlement_attempts_total{outcome="succeeded"} counts them.
func (s *Supervisor) Counts() map[string]int {
	running := s.inflight.Load()
	return map[string]int{
		persistence.StatusPending: int(max(0, s.unfinished.Load()-running)),
		persistence.StatusRunning: int(running),
		persistence.StatusDead:    int(s.dead.Load()),
	}
}

// DeadLetterCount is the number of dead letters.
func (s *Supervisor) DeadLetterCount() int { return int(s.dead.Load()) }

// Live is the number of settlement actors (and orphaned attempts) alive.
func (s *Supervisor) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mu.live)
}

// start spawns an actor for the settlement unless one is live. It refuses
// when shutting down or past MaxLive; the settlement then waits in g/due.
// created is the new record as committed, or nil to read it from the store.
func (s *Supervisor) start(id, wallet string, created *persistence.Settlement, due []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.stopped {
		return false
	}
	if s.mu.live[id] != nil {
		return true
	}
	if len(s.mu.live) >= s.cfg.MaxLive {
		s.mu.overflow = true
		return false
	}
	e := &liveSettlement{id: id, wallet: wallet, created: created, due: due}
	s.mu.live[id] = e
	s.actors.spawned() // the actor's Stopped takes it off
	e.pid = s.as.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &settlementActor{sup: s, e: e} },
		actor.WithDispatcher(s.dispatcher)))
	return true
}

// release marks e's actor as gone; the entry leaves the live map once its
// attempt goroutine (if any) has returned too.
func (s *Supervisor) release(e *liveSettlement) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.stopped = true
	s.removeLocked(e)
}

func (s *Supervisor) removeLocked(e *liveSettlement) {
	if !e.stopped || e.running || s.mu.live[e.id] != e {
		return
	}
	delete(s.mu.live, e.id)
	if s.mu.overflow && len(s.mu.live) < s.cfg.MaxLive {
		s.mu.overflow = false
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// send delivers msg to e's actor, counting it for the mailbox gauge.
func (s *Supervisor) send(e *liveSettlement, pid *actor.PID, msg any) {
	e.queued.Add(1)
	s.obs.MailboxEnqueued(kindSettlement)
	s.as.Root.Send(pid, msg)
}

// beginAttempt reserves an attempt goroutine; false when shutting down.
func (s *Supervisor) beginAttempt(e *liveSettlement) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.stopped {
		return false
	}
	e.running = true
	s.attempts.Add(1)
	return true
}

// runAttempt is one attempt, off the actor: wait for a token, persist the
// attempt as running, call the backend (a panic is caught and reported),
// and deliver the result to the actor as a message.
func (s *Supervisor) runAttempt(e *liveSettlement, pid *actor.PID, st persistence.Settlement) {
	defer s.attempts.Done()
	done := &attemptDone{}
	defer func() {
		s.send(e, pid, done)
		s.mu.Lock()
		e.running = false
		s.removeLocked(e)
		s.mu.Unlock()
	}()
	select {
	case s.sem <- struct{}{}:
	case <-s.slotCtx.Done():
		done.aborted = true
		return
	}
	defer func() { <-s.sem }()
	s.inflight.Add(1)
	defer s.inflight.Add(-1)

	st.Status = persistence.StatusRunning
	st.Attempts++
	st.UpdatedAt = s.cfg.Now().UTC()
	b := s.store.DB().NewBatch()
	if err := setSettlement(b, &st); err != nil {
		_ = b.Close()
		done.aborted, done.storeErr = true, err
		return
	}
	if err := s.store.Commit(b); err != nil {
		done.aborted, done.storeErr = true, err
		return
	}
	done.st = &st
	call := st // the backend gets its own copy
	func() {
		defer func() {
			if p := recover(); p != nil {
				done.panicked = p
			}
		}()
		ctx, span := s.startAttempt(s.callCtx, &st)
		defer func() { endAttempt(span, done.err, done.panicked) }()
		done.err = s.backend.Settle(ctx, &call)
	}()
	if done.err != nil && s.callCtx.Err() != nil {
		// Cut off by shutdown: the record says running, so after a restart
		// the attempt counts as interrupted and the settlement goes on.
		done.aborted = true
	}
}

// backoff is the wait after failed attempt n (1-based): Backoff*2^(n-1),
// times a uniform jitter factor in [0.8, 1.2) so that settlements failing
// together do not retry in lockstep, capped at MaxBackoff.
func (s *Supervisor) backoff(n int) time.Duration {
	return Backoff(s.cfg.Backoff, s.cfg.MaxBackoff, n, rand.Float64())
}

// Backoff is base*2^(n-1) scaled by 0.8+0.4*u (u in [0,1)) and capped at
// ceiling; exported for tests and documentation.
func Backoff(base, ceiling time.Duration, n int, u float64) time.Duration {
	d := ceiling
	if n < 1 {
		n = 1
	}
	if n <= 40 {
		if exp := base << (n - 1); exp > 0 && exp < ceiling {
			d = exp
		}
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*u))
	return min(d, ceiling)
}

// sweeper starts settlements that are due and have no live actor: at
// start-up that is everything a crash left pending or running.
func (s *Supervisor) sweeper() {
	defer close(s.sweepDone)
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	// early fires when the next due settlement without an actor comes due
	// before the next tick (e.g. one waiting out its backoff across a restart).
	early := time.NewTimer(time.Hour)
	defer early.Stop()
	// A kick resumes where the last sweep stopped for want of room: the
	// entries before that point had live actors then and keep them until
	// they finish, so rescanning them is wasted. Other sweeps start over.
	resume := false
	for {
		// One reading of the clock for the sweep and for the look past it:
		// with two, an entry falling due between them was in neither, and
		// waited for the next tick.
		now := s.cfg.Now()
		n, err := s.sweep(resume, now)
		resume = false
		if err != nil {
			s.log.Error("sweep", "err", err)
		} else if n > 0 {
			s.log.Info("sweep resumed settlements", "count", n)
		}
		early.Stop()
		// An entry due by now that this sweep left alone got its actor
		// meanwhile (a new settlement between its commit and Created) or
		// waits for room (then a kick comes): sweeping again at once would
		// only rescan. Only entries due after now arm the early timer.
		if next, ok := s.nextDue(now); ok {
			early.Reset(max(next.Sub(s.cfg.Now()), minSweepGap))
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
			// Room for one more actor comes with every finished settlement
			// while a backlog waits; sweeping on each would rescan the due
			// index a thousand times a second. Kicks wait out minSweepGap.
			select {
			case <-s.stop:
				return
			case <-time.After(minSweepGap):
			}
			resume = true
		case <-early.C:
		}
	}
}

// sweep starts every settlement due by now that has no live actor, up to
// MaxLive, starting after the point where the previous sweep ran out of
// room when resume is set; an entry left behind by a settlement already
// finished (or gone) is removed by the actor it gets. It returns the number
// of actors started.
func (s *Supervisor) sweep(resume bool, now time.Time) (int, error) {
	if s.store.Broken() {
		return 0, persistence.ErrBroken
	}
	type cand struct {
		key        []byte
		id, wallet string
	}
	lower := persistence.PrefixDue
	if s.mu.Lock(); resume && s.mu.resumeAt != nil {
		lower = s.mu.resumeAt
	}
	s.mu.Unlock()
	upper := persistence.TimeBound(persistence.PrefixDue, now.UnixNano()+1)
	if bytes.Compare(lower, upper) >= 0 {
		lower = persistence.PrefixDue // the clock moved back: start over
	}
	it, err := s.store.DB().NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return 0, fmt.Errorf("actors: sweep: %w", err)
	}
	var cands []cand
	s.mu.Lock()
	room := s.cfg.MaxLive - len(s.mu.live)
	for it.First(); it.Valid() && len(cands) < room; it.Next() {
		k := it.Key()
		if len(k) < len(persistence.PrefixDue)+9 {
			continue
		}
		id := string(k[len(persistence.PrefixDue)+9:])
		if s.mu.live[id] != nil {
			continue
		}
		cands = append(cands, cand{bytes.Clone(k), id, string(it.Value())})
	}
	more := it.Valid()
	s.mu.resumeAt = nil
	if more {
		s.mu.resumeAt = bytes.Clone(it.Key())
	}
	s.mu.Unlock()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return 0, fmt.Errorf("actors: sweep: %w", err)
	}
	// The sweep does not read the records: each actor reads its own as it
	// starts (reading here too cost a second read per settlement), and
	// drops its entry if the settlement is finished or gone.
	n := 0
	for _, c := range cands {
		if !s.start(c.id, c.wallet, nil, c.key) {
			// Out of room after all: the next kick resumes here.
			s.mu.Lock()
			s.mu.resumeAt = c.key
			s.mu.Unlock()
			more = true
			break
		}
		n++
	}
	if more {
		s.mu.Lock()
		s.mu.overflow = true
		s.mu.Unlock()
	}
	return n, nil
}

// minSweepGap keeps early sweeps apart, so many settlements coming due one
// after another cost one scan per gap, not one each.
const minSweepGap = 20 * time.Millisecond

// nextDue is the time of the first due entry later than t without a live
// actor, looking at a bounded number of entries.
func (s *Supervisor) nextDue(t time.Time) (time.Time, bool) {
	lower := persistence.TimeBound(persistence.PrefixDue, t.UnixNano()+1)
	it, err := s.store.DB().NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: persistence.PrefixEnd(persistence.PrefixDue)})
	if err != nil {
		return time.Time{}, false
	}
	defer it.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for it.First(); it.Valid() && n < 10000; it.Next() {
		n++
		k := it.Key()[len(persistence.PrefixDue):]
		if len(k) < 9 || s.mu.live[string(k[9:])] != nil {
			continue
		}
		return time.Unix(0, int64(binary.BigEndian.Uint64(k))), true
	}
	return time.Time{}, false
}

// settlementStopGrace bounds Shutdown's wait for the settlement actors once
// its context has run out. What is left to them then is local (an outcome
// commit at most, milliseconds unless the store hangs).
const settlementStopGrace = 10 * time.Second

// Shutdown stops the sweeper and new attempts, lets backend calls in flight
// finish until ctx is done (then cancels them), waits for every attempt
// goroutine, and stops the settlement actors after they have drained their
// mailboxes, waiting for them until ctx is done, or stopGrace past that;
// actors still running then are its error. A settlement cut off mid-attempt
// is still due and resumes after a restart. Call it before closing the
// store. Safe to call twice.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() {
		s.mu.Lock()
		s.mu.stopped = true
		started := s.mu.started // final: no Start from now on
		s.mu.Unlock()
		close(s.stop)
		if started {
			<-s.sweepDone
		}
		s.cancelSlot()
		waited := make(chan struct{})
		go func() { s.attempts.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-ctx.Done():
			// Not an error: the settlements cut off are still due and
			// resume after the restart, as after a crash.
			s.log.Warn("settlement calls cancelled at shutdown", "inFlight", s.inflight.Load())
			s.cancelCall()
			<-waited
		}
		s.cancelCall()
		s.mu.Lock()
		var pids []*actor.PID
		for _, e := range s.mu.live {
			pids = append(pids, e.pid)
		}
		s.mu.Unlock()
		// Poison (not Stop): each actor first handles the results already
		// delivered to it.
		for _, pid := range pids {
			s.as.Root.Poison(pid)
		}
		// What is left to the actors is local (an outcome commit at most),
		// so when ctx has run out on backend calls they get a bound of
		// their own rather than none.
		wctx := ctx
		if ctx.Err() != nil {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(context.Background(), s.stopGrace)
			defer cancel()
		}
		if n, err := s.actors.wait(wctx); err != nil {
			s.shutErr = fmt.Errorf("actors: settlement shutdown: %d settlement actors still running: %w", n, err)
		}
		if h, ok := s.backend.(*HTTPBackend); ok {
			h.CloseIdleConnections()
		}
	})
	return s.shutErr
}

// readSettlement reads a settlement by id; persistence.ErrNotFound when unknown.
func readSettlement(store *persistence.Store, id string) (*persistence.Settlement, error) {
	w, err := store.Get(nil, persistence.AppendSettlementLocator(nil, []byte(id)))
	if err != nil {
		return nil, err
	}
	return readWalletSettlement(store, w, id)
}

// readSettlementOf is readSettlement when the wallet is known already (from
// a due entry or a live settlement): one read instead of two, the locator's
// saved. Where the wallet's range does not hold id, the locator decides.
func readSettlementOf(store *persistence.Store, wallet, id string) (*persistence.Settlement, error) {
	if wallet != "" {
		st, err := readWalletSettlement(store, []byte(wallet), id)
		if !errors.Is(err, persistence.ErrNotFound) {
			return st, err
		}
	}
	return readSettlement(store, id)
}

func readWalletSettlement(store *persistence.Store, wallet []byte, id string) (*persistence.Settlement, error) {
	v, err := store.Get(nil, persistence.AppendWalletKey(nil, wallet, persistence.TagSettlement, []byte(id)))
	if err != nil {
		return nil, err
	}
	st := new(persistence.Settlement)
	if err := json.Unmarshal(v, st); err != nil {
		return nil, errors.Join(persistence.ErrCorrupt, err)
	}
	return st, nil
}

// setSettlement writes st's record into b. The key and the record share a
// scratch buffer.
func setSettlement(b *pebble.Batch, st *persistence.Settlement) error {
	p := getScratch()
	buf := persistence.AppendWalletKey((*p)[:0], []byte(st.Wallet), persistence.TagSettlement, []byte(st.ID))
	k := len(buf)
	buf = st.AppendJSON(buf)
	err := b.Set(buf[:k], buf[k:], nil)
	putScratch(p, buf)
	return err
}

// dueAt is the time of st's g/due entry (see the Supervisor invariants).
func dueAt(st *persistence.Settlement) time.Time {
	if st.NextAttemptAt != nil {
		return *st.NextAttemptAt
	}
	return st.CreatedAt
}

func dueKey(st *persistence.Settlement) []byte {
	return persistence.AppendDueKey(nil, dueAt(st).UnixNano(), []byte(st.ID))
}
