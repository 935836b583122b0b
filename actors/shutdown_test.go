package actors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sgeplatform/sge/persistence"
)

// lifeCounter counts the actors of one kind started (the first time),
// restarted and stopped.
type lifeCounter struct {
	NopObserver
	kind                        string
	spawned, restarted, stopped atomic.Int64
}

func (c *lifeCounter) ActorRestarted(kind string) {
	if kind == c.kind {
		c.restarted.Add(1)
	}
}

func (c *lifeCounter) ActorSpawned(kind string) {
	if kind == c.kind {
		c.spawned.Add(1)
	}
}

func (c *lifeCounter) ActorStopped(kind string, _ bool) {
	if kind == c.kind {
		c.stopped.Add(1)
	}
}

// Shutdown returns only once every wallet actor has stopped, so that the
// store can close under none of them.
func TestShutdownWaitsForEveryWalletActor(t *testing.T) {
	obs := &lifeCounter{kind: kindWallet}
	store := openTestStore(t)
	as := newTestActorSystem()
	defer as.Shutdown()
	sys, err := New(Config{Observer: obs, RegisterPerHourIP: 1 << 20, Logger: quietLogger}, store, as)
	if err != nil {
		t.Fatal(err)
	}
	const wallets = 1000
	for i := range wallets {
		if r := register(sys, fmt.Sprintf("0x%040x", i+1), "k"); r.Status != 201 {
			t.Fatalf("wallet %d: status %d", i, r.Status)
		}
	}
	if err := sys.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if sp, st := obs.spawned.Load(), obs.stopped.Load(); sp != wallets || st != wallets {
		t.Fatalf("after Shutdown: %d wallet actors started, %d stopped; want %d and %d", sp, st, wallets, wallets)
	}
}

// The same for the settlement actors: Shutdown returns once every one of
// them has handled what was delivered to it and stopped.
func TestSupervisorShutdownWaitsForEverySettlementActor(t *testing.T) {
	obs := &lifeCounter{kind: kindSettlement}
	store := openTestStore(t)
	sup := newTestSupervisor(t, store, SettlementConfig{Backend: &countingBackend{}, Observer: obs})
	const settlements = 1000
	now := time.Now()
	sts := make([]*persistence.Settlement, settlements)
	for i := range sts {
		sts[i] = testSettlement(now, persistence.StatusPending)
	}
	storeSettlements(t, store, now, sts...)
	for _, st := range sts {
		sup.Created(st)
	}
	if err := sup.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if sp, st := obs.spawned.Load(), obs.stopped.Load(); sp != settlements || st != settlements {
		t.Fatalf("after Shutdown: %d settlement actors started, %d stopped; want %d and %d", sp, st, settlements, settlements)
	}
}

// stuckObserver holds the settlement actor that records an outcome inside
// SettlementAttempt until release is closed, standing in for an outcome
// commit on a disk that hangs.
type stuckObserver struct {
	NopObserver
	entered, release chan struct{}
}

func (o *stuckObserver) SettlementAttempt(string, string) {
	close(o.entered)
	<-o.release
}

// A settlement actor that cannot stop does not hang Shutdown: past its
// context and the grace after it, Shutdown returns an error naming the actors
// still running (sged exits 1 on it).
func TestSupervisorShutdownReportsAStuckSettlementActor(t *testing.T) {
	obs := &stuckObserver{entered: make(chan struct{}), release: make(chan struct{})}
	store := openTestStore(t)
	sup := newTestSupervisor(t, store, SettlementConfig{Backend: &countingBackend{}, Observer: obs})
	sup.stopGrace = time.Millisecond // the actor stays stuck whatever the grace
	now := time.Now()
	st := testSettlement(now, persistence.StatusPending)
	storeSettlements(t, store, now, st)
	sup.Created(st)
	<-obs.entered

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // SHUTDOWN_TIMEOUT already spent: only the grace is left
	err := sup.Shutdown(ctx)
	close(obs.release)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "1 settlement actors still running") {
		t.Fatalf("Shutdown with an actor stuck = %v; want the grace's deadline and 1 actor still running", err)
	}
	// Let the actor finish before the store closes under it.
	if n, err := sup.actors.wait(t.Context()); err != nil {
		t.Fatalf("after release: %d settlement actors still running: %v", n, err)
	}
}
