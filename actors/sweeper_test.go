package actors

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/internal/ids"
	"github.com/sgeplatform/sge/persistence"
)

// A settlement that falls due while the sweeper sweeps is started by the
// early sweep, not left for the next SweepInterval. The clock reads t0 for
// the first sweep and t0+2s after it; the entry is due at t0+1s.
func TestSweeperStartsWhatFallsDueDuringASweep(t *testing.T) {
	store, err := persistence.Open(persistence.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	t0 := time.Now()
	st := &persistence.Settlement{ID: ids.New(t0), Kind: persistence.KindRegistration,
		Wallet: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", Status: persistence.StatusPending,
		CreatedAt: t0.UTC(), UpdatedAt: t0.UTC()}
	b := store.DB().NewBatch()
	if err := PutSettlement(b, st, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := store.Commit(b); err != nil {
		t.Fatal(err)
	}

	var reads atomic.Int64
	clock := func() time.Time {
		if reads.Add(1) == 1 {
			return t0
		}
		return t0.Add(2 * time.Second)
	}
	as := actor.NewActorSystem()
	defer as.Shutdown()
	sup, err := NewSupervisor(SettlementConfig{
		Mode: ModeMock, MockLatency: time.Millisecond, SweepInterval: time.Hour, Now: clock,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}, store, as)
	if err != nil {
		t.Fatal(err)
	}
	sup.Start()
	defer func() { _ = sup.Shutdown(context.Background()) }()

	deadline := time.Now().Add(time.Minute)
	for {
		got, err := readSettlement(store, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == persistence.StatusSucceeded {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute the settlement is %q: the sweeper did not start it", got.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A due entry whose settlement is finished or gone (left behind by a stray
// write) is dropped by the actor the sweep starts for it, leaves the count of
// unfinished settlements, and the backend is never called for it; a pending
// settlement beside them runs once.
func TestSweepDropsDueEntriesLeftBehind(t *testing.T) {
	store, err := persistence.Open(persistence.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Now()
	const wallet = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
	settlement := func(status string) *persistence.Settlement {
		return &persistence.Settlement{ID: ids.New(now), Kind: persistence.KindRegistration, Wallet: wallet,
			Status: status, CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
	}
	done, pending := settlement(persistence.StatusSucceeded), settlement(persistence.StatusPending)
	goneID := ids.New(now)
	b := store.DB().NewBatch()
	for _, st := range []*persistence.Settlement{done, pending} {
		if err := PutSettlement(b, st, now); err != nil {
			t.Fatal(err)
		}
	}
	_ = b.Set(persistence.AppendDueKey(nil, now.UnixNano(), []byte(goneID)), []byte(wallet), nil)
	if err := store.Commit(b); err != nil {
		t.Fatal(err)
	}

	calls := &countingBackend{}
	as := actor.NewActorSystem()
	defer as.Shutdown()
	sup, err := NewSupervisor(SettlementConfig{Backend: calls, SweepInterval: time.Hour,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}, store, as)
	if err != nil {
		t.Fatal(err)
	}
	sup.Start()
	defer func() { _ = sup.Shutdown(context.Background()) }()

	dueEntries := func() (n int) {
		it, err := store.DB().NewIter(&pebble.IterOptions{LowerBound: persistence.PrefixDue, UpperBound: persistence.PrefixEnd(persistence.PrefixDue)})
		if err != nil {
			t.Fatal(err)
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			n++
		}
		return n
	}
	// All three entries were counted as unfinished at start-up: once all
	// three are gone, so is the count (each leaves it just after its write).
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := readSettlement(store, pending.ID)
		if err != nil {
			t.Fatal(err)
		}
		c := sup.Counts()
		if got.Status == persistence.StatusSucceeded && dueEntries() == 0 && c[persistence.StatusPending]+c[persistence.StatusRunning] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute: pending settlement %q, %d due entries left, counts %v", got.Status, dueEntries(), c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := calls.n.Load(); n != 1 {
		t.Errorf("backend called %d times, want 1 (only the pending settlement)", n)
	}
	if got, err := readSettlement(store, done.ID); err != nil || got.Status != persistence.StatusSucceeded || got.Attempts != 0 {
		t.Errorf("finished settlement now %+v, %v; want it untouched", got, err)
	}
}

// countingBackend succeeds at once and counts its calls.
type countingBackend struct{ n atomic.Int64 }

func (c *countingBackend) Settle(context.Context, *persistence.Settlement) error {
	c.n.Add(1)
	return nil
}
