package actors

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// walletLifeCounter counts wallet actors started and stopped.
type walletLifeCounter struct {
	NopObserver
	spawned, stopped atomic.Int64
}

func (c *walletLifeCounter) ActorSpawned(kind string) {
	if kind == kindWallet {
		c.spawned.Add(1)
	}
}

func (c *walletLifeCounter) ActorStopped(kind string, _ bool) {
	if kind == kindWallet {
		c.stopped.Add(1)
	}
}

// Shutdown returns only once every wallet actor has stopped, so that the
// store can close under none of them.
func TestShutdownWaitsForEveryWalletActor(t *testing.T) {
	obs := &walletLifeCounter{}
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
