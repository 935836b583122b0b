package actors

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sgeplatform/sge/persistence"
)

// panickingBackend panics on every call, and counts the calls.
type panickingBackend struct{ calls atomic.Int64 }

func (p *panickingBackend) Settle(context.Context, *persistence.Settlement) error {
	p.calls.Add(1)
	panic("backend bug")
}

// A settlement whose every attempt panics: each panic is a counted attempt
// and is re-raised; the default one-for-one strategy restarts the actor, or
// past 10 restarts in 10 s stops it, and the sweeper then starts a fresh
// one. Either way each attempt calls the backend once, and the last one
// dead-letters the settlement. How the re-raised panics split between
// restarts and fresh actors depends on the machine's speed; their sum does
// not.
func TestPanickingSettlementIsSupervisedToItsLastAttempt(t *testing.T) {
	const maxAttempts = 30
	store := openTestStore(t)
	now := time.Now()
	st := testSettlement(now, persistence.StatusPending)
	storeSettlements(t, store, now, st)
	backend, obs := &panickingBackend{}, &lifeCounter{kind: kindSettlement}
	sup := startTestSupervisor(t, store, SettlementConfig{Backend: backend, Observer: obs, MaxAttempts: maxAttempts,
		Backoff: time.Millisecond, MaxBackoff: time.Millisecond, SweepInterval: 20 * time.Millisecond})

	eventually(t, func() (bool, string) {
		got, err := readSettlement(store, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Status == persistence.StatusDead && sup.Live() == 0, "the settlement is " + got.Status
	})
	got, err := readSettlement(store, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Attempts != maxAttempts || backend.calls.Load() != maxAttempts {
		t.Fatalf("%d attempts recorded, %d backend calls; want %d each", got.Attempts, backend.calls.Load(), maxAttempts)
	}
	spawned, restarted := obs.spawned.Load(), obs.restarted.Load()
	t.Logf("%d actors, %d restarts", spawned, restarted)
	if restarted+spawned-1 != maxAttempts-1 {
		t.Fatalf("%d restarts and %d fresh actors for %d re-raised panics", restarted, spawned-1, maxAttempts-1)
	}
}
