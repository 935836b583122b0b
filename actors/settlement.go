package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/persistence"
)

// settlementActor drives one settlement from pending to succeeded or dead.
// It never blocks: the backend call runs in a goroutine (runAttempt) and
// comes back as attemptDone; its own writes go through the group committer
// and come back as outcomeCommitted; waits are timers that send a wake.
//
// Per attempt n: persist running + attempts=n (in runAttempt), call the
// backend, then one synced batch with the outcome:
//   - success: succeeded, due entry removed;
//   - permanent failure, or failure of attempt MaxAttempts: dead, due entry
//     removed, g/dead entry added;
//   - other failure: pending, lastError, nextAttemptAt = now + backoff(n),
//     due entry moved there.
//
// A panic in an attempt is a failed attempt: it is recorded like one, then
// re-raised here so the supervisor replaces this actor with a fresh one that
// reloads the record. A record found running on start is an attempt whose
// outcome was never recorded (a crash): it counts as a failed attempt too.
type settlementActor struct {
	sup  *Supervisor
	e    *liveSettlement
	self *actor.PID
	st   *persistence.Settlement
	// committing is set while an outcome batch is being committed.
	committing bool
	timer      *time.Timer
}

// Messages to a settlement actor.
type (
	settlementWake struct{}
	attemptDone    struct {
		st       *persistence.Settlement // as persisted before the call; nil if it never started
		err      error
		panicked any
		// aborted: no outcome to record (shutdown, or a storage failure
		// before the call). The settlement stays due.
		aborted  bool
		storeErr error
	}
	outcomeCommitted struct {
		sup      *Supervisor
		e        *liveSettlement
		pid      *actor.PID
		err      error
		final    string // status reached, or "" when waiting to retry
		panicked any
		kind     string
	}
)

// Committed implements persistence.Waiter. The gauges move here, when the
// outcome is durable, not when the actor gets to the message.
func (c *outcomeCommitted) Committed(err error) {
	c.err = err
	if err == nil {
		switch c.final {
		case persistence.StatusSucceeded:
			c.sup.unfinished.Add(-1)
		case persistence.StatusDead:
			c.sup.unfinished.Add(-1)
			c.sup.dead.Add(1)
		}
	}
	c.sup.send(c.e, c.pid, c)
}

func (a *settlementActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.self = ctx.Self()
		if !a.e.spawned {
			a.e.spawned = true
			a.sup.obs.ActorSpawned(kindSettlement)
		}
		a.resume()
	case settlementWake:
		a.handled(func() { a.wake() })
	case *attemptDone:
		a.handled(func() { a.attemptDone(m) })
	case *outcomeCommitted:
		a.handled(func() { a.committed(m) })
	case *actor.Restarting:
		a.stopTimer()
		a.sup.obs.ActorRestarted(kindSettlement)
	case *actor.Stopping:
		a.stopTimer()
	case *actor.Stopped:
		a.stopTimer()
		a.sup.release(a.e)
		// Messages that can no longer be handled leave the mailbox gauge.
		for n := a.e.queued.Swap(0); n > 0; n-- {
			a.sup.obs.MessageHandled(kindSettlement, 0)
		}
		a.sup.obs.ActorStopped(kindSettlement, false)
		a.sup.actors.stopped() // last: Shutdown may close the store after it
	}
}

func (a *settlementActor) handled(f func()) {
	start := time.Now()
	a.e.queued.Add(-1)
	defer func() { a.sup.obs.MessageHandled(kindSettlement, time.Since(start)) }()
	f()
}

// resume loads the record and carries on from wherever it stands.
func (a *settlementActor) resume() {
	if a.e.awaiting.Load() {
		return // the previous incarnation's attempt reports here
	}
	st, err := a.e.created, error(nil)
	a.e.created = nil // a restarted actor reads what the store holds
	if st == nil {
		st, err = readSettlementOf(a.sup.store, a.e.wallet, a.e.id)
	}
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		a.dropStrayDue()
		a.finish()
		return
	case err != nil:
		a.sup.log.Error("load settlement", "id", a.e.id, "err", err)
		a.sup.obs.StorageError("read")
		a.finish() // still due: the sweeper tries again
		return
	}
	a.st = st
	switch st.Status {
	case persistence.StatusSucceeded, persistence.StatusDead:
		a.dropStrayDue()
		a.finish()
	case persistence.StatusRunning:
		a.failed(errors.New("attempt interrupted before its outcome was recorded"), "failed", nil)
	default:
		a.schedule()
	}
}

// dropStrayDue removes the due entry the sweep started this actor for, once
// the settlement proved finished or gone: left alone, every sweep would
// start an actor for it again. The entry was counted as unfinished (at
// start-up, or when it was made), so it leaves that gauge too. If the entry
// is gone already, its settlement's outcome removed it and left the gauge
// then (the sweep can see an entry just before that outcome commits, and
// start this actor just after), so nothing changes.
// Unsynced: an entry that comes back after a crash is dropped again.
func (a *settlementActor) dropStrayDue() {
	due := a.e.due
	a.e.due = nil
	if due == nil {
		return
	}
	if _, err := a.sup.store.Get(nil, due); err != nil {
		return
	}
	b := a.sup.store.DB().NewBatch()
	_ = b.Delete(due, nil)
	if a.sup.store.Write(b) == nil {
		a.sup.unfinished.Add(-1)
	}
}

// schedule starts the next attempt when it is due, now or by timer.
func (a *settlementActor) schedule() {
	wait := dueAt(a.st).Sub(a.sup.cfg.Now())
	if wait <= 0 {
		a.startAttempt()
		return
	}
	a.stopTimer()
	e, pid, sup := a.e, a.self, a.sup
	a.timer = time.AfterFunc(wait, func() { sup.send(e, pid, settlementWake{}) })
}

// wake ignores stale timers (from before a restart or an earlier wait).
func (a *settlementActor) wake() {
	if a.st == nil || a.committing || a.e.awaiting.Load() || a.st.Status != persistence.StatusPending {
		return
	}
	a.schedule()
}

func (a *settlementActor) startAttempt() {
	if !a.sup.beginAttempt(a.e) {
		a.finish() // shutting down: it stays due
		return
	}
	a.e.awaiting.Store(true)
	go a.sup.runAttempt(a.e, a.self, *a.st)
}

func (a *settlementActor) attemptDone(m *attemptDone) {
	a.e.awaiting.Store(false)
	if m.st != nil {
		a.st = m.st
	}
	if m.aborted {
		if m.storeErr != nil {
			a.sup.log.Error("persist settlement attempt", "id", a.e.id, "err", m.storeErr)
			a.sup.obs.StorageError("commit")
		}
		a.finish()
		return
	}
	var perm *PermanentError
	switch {
	case m.panicked != nil:
		a.failed(fmt.Errorf("panic: %v", m.panicked), "panicked", m.panicked)
	case m.err == nil:
		a.sup.obs.SettlementAttempt(a.st.Kind, "succeeded")
		a.conclude(persistence.StatusSucceeded, "")
	case errors.As(m.err, &perm):
		a.sup.obs.SettlementAttempt(a.st.Kind, "permanent")
		a.conclude(persistence.StatusDead, m.err.Error())
	default:
		a.failed(m.err, "failed", nil)
	}
}

// failed records a failed attempt: a wait before the next one, or the dead
// letter after the last.
func (a *settlementActor) failed(err error, outcome string, panicked any) {
	st := a.st
	a.sup.obs.SettlementAttempt(st.Kind, outcome)
	if st.Attempts >= a.sup.cfg.MaxAttempts {
		// Last attempt: no restart needed, the actor is done either way.
		a.conclude(persistence.StatusDead, err.Error())
		return
	}
	now := a.sup.cfg.Now()
	next := now.Add(a.sup.backoff(st.Attempts)).UTC()
	b := a.sup.store.DB().NewBatch()
	_ = b.Delete(dueKey(st), nil)
	st.Status = persistence.StatusPending
	st.LastError = truncate(err.Error())
	st.NextAttemptAt = &next
	st.UpdatedAt = now.UTC()
	_ = b.Set(dueKey(st), []byte(st.Wallet), nil)
	if err := setSettlement(b, st); err != nil {
		_ = b.Close()
		a.finish()
		return
	}
	a.sup.log.Info("settlement attempt failed", "id", st.ID, "attempt", st.Attempts, "nextAttemptAt", next, "err", st.LastError)
	a.commit(b, "", panicked)
}

// conclude records a final status: succeeded or dead.
func (a *settlementActor) conclude(status, lastErr string) {
	st := a.st
	now := a.sup.cfg.Now()
	b := a.sup.store.DB().NewBatch()
	_ = b.Delete(dueKey(st), nil)
	st.Status = status
	st.NextAttemptAt = nil
	st.UpdatedAt = now.UTC()
	if lastErr != "" {
		st.LastError = truncate(lastErr)
	}
	if status == persistence.StatusDead {
		_ = b.Set(persistence.AppendDeadKey(nil, []byte(st.ID)), []byte(st.Wallet), nil)
		a.sup.log.Warn("settlement dead-lettered", "id", st.ID, "kind", st.Kind, "wallet", st.Wallet, "attempts", st.Attempts, "lastError", st.LastError)
	}
	if err := setSettlement(b, st); err != nil {
		_ = b.Close()
		a.finish()
		return
	}
	a.commit(b, status, nil)
}

func (a *settlementActor) commit(b *pebble.Batch, final string, panicked any) {
	a.committing = true
	a.sup.store.Submit(b, &outcomeCommitted{sup: a.sup, e: a.e, pid: a.self, final: final, panicked: panicked, kind: a.st.Kind})
}

func (a *settlementActor) committed(m *outcomeCommitted) {
	a.committing = false
	if m.err != nil {
		// Nothing changed on disk: the settlement is still due where it was,
		// and the sweeper starts it again.
		a.sup.log.Error("persist settlement outcome", "id", a.e.id, "err", m.err)
		a.sup.obs.StorageError("commit")
		a.finish()
		return
	}
	switch m.final {
	case persistence.StatusSucceeded, persistence.StatusDead:
		a.finish()
	default:
		if m.panicked != nil {
			// Recorded as a failed attempt; now let the supervisor replace
			// this actor. The new one reloads the record and waits.
			panic(fmt.Sprintf("settlement %s: attempt panicked: %v", a.e.id, m.panicked))
		}
		a.schedule()
	}
}

// finish stops the actor: the settlement is done, or it stays due in Pebble
// for the sweeper (or the next start-up) to pick up.
func (a *settlementActor) finish() {
	a.stopTimer()
	a.sup.release(a.e)
	a.sup.as.Root.Poison(a.self)
}

func (a *settlementActor) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
}

// truncate bounds lastError, which may quote a backend's answer.
func truncate(s string) string {
	const limit = 512
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}
