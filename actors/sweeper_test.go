package actors

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/sgeplatform/sge/internal/ids"
	"github.com/sgeplatform/sge/persistence"
)

// A settlement that falls due while the sweeper sweeps is started by the
// early sweep, not left for the next SweepInterval. The clock reads t0 for
// the first sweep and t0+2s after it; the entry is due at t0+1s.
func TestSweeperStartsWhatFallsDueDuringASweep(t *testing.T) {
	store := openTestStore(t)
	t0 := time.Now()
	st := testSettlement(t0, persistence.StatusPending)
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
	startTestSupervisor(t, store, SettlementConfig{Mode: ModeMock, MockLatency: time.Millisecond, SweepInterval: time.Hour, Now: clock})

	eventually(t, func() (bool, string) {
		got, err := readSettlement(store, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Status == persistence.StatusSucceeded, "the settlement is " + got.Status + ": the sweeper did not start it"
	})
}

// A due entry whose settlement is finished or gone (left behind by a stray
// write) is dropped by the actor the sweep starts for it, leaves the count of
// unfinished settlements, and the backend is never called for it; a pending
// settlement beside them runs once.
func TestSweepDropsDueEntriesLeftBehind(t *testing.T) {
	store := openTestStore(t)
	now := time.Now()
	done, pending := testSettlement(now, persistence.StatusSucceeded), testSettlement(now, persistence.StatusPending)
	goneID := ids.New(now)
	storeSettlements(t, store, now, done, pending)
	b := store.DB().NewBatch()
	_ = b.Set(persistence.AppendDueKey(nil, now.UnixNano(), []byte(goneID)), []byte(pending.Wallet), nil)
	if err := store.Commit(b); err != nil {
		t.Fatal(err)
	}

	calls := &countingBackend{}
	sup := startTestSupervisor(t, store, SettlementConfig{Backend: calls, SweepInterval: time.Hour})

	// All three entries were counted as unfinished at start-up: once all
	// three are gone, so is the count (each leaves it just after its write).
	eventually(t, func() (bool, string) {
		got, err := readSettlement(store, pending.ID)
		if err != nil {
			t.Fatal(err)
		}
		due, err := countKeys(store, persistence.PrefixDue)
		if err != nil {
			t.Fatal(err)
		}
		c := sup.Counts()
		return got.Status == persistence.StatusSucceeded && due == 0 && c[persistence.StatusPending]+c[persistence.StatusRunning] == 0,
			fmt.Sprintf("pending settlement %q, %d due entries left, counts %v", got.Status, due, c)
	})
	if n := calls.n.Load(); n != 1 {
		t.Errorf("backend called %d times, want 1 (only the pending settlement)", n)
	}
	if got, err := readSettlement(store, done.ID); err != nil || got.Status != persistence.StatusSucceeded || got.Attempts != 0 {
		t.Errorf("finished settlement now %+v, %v; want it untouched", got, err)
	}
}

// quietLogger discards: a line printed on stderr while a benchmark runs
// lands inside its result line and breaks the format benchstat reads.
var quietLogger = slog.New(slog.NewJSONHandler(io.Discard, nil))

// openTestStore opens a store in a fresh directory that logs nothing (its
// write-stall warnings under the settlement benchmark's load included).
func openTestStore(t testing.TB) *persistence.Store {
	t.Helper()
	store, err := persistence.Open(persistence.Config{Dir: t.TempDir(), Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() }) // registered first, so it runs after the supervisor's
	return store
}

// startTestSupervisor starts a supervisor on store that logs nothing and
// shuts down, with its actor system, when the test ends.
func startTestSupervisor(t testing.TB, store *persistence.Store, cfg SettlementConfig) *Supervisor {
	t.Helper()
	sup := newTestSupervisor(t, store, cfg)
	sup.Start()
	return sup
}

// newTestSupervisor is startTestSupervisor without Start: no sweeper, so
// only Created starts settlements.
func newTestSupervisor(t testing.TB, store *persistence.Store, cfg SettlementConfig) *Supervisor {
	t.Helper()
	cfg.Logger = quietLogger
	as := newTestActorSystem()
	t.Cleanup(as.Shutdown)
	sup, err := NewSupervisor(cfg, store, as)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sup.Shutdown(context.Background()) })
	return sup
}

// newTestActorSystem is an actor system that logs nothing. protoactor-go's
// default logger prints coloured Info lines on stderr (quietLogger says why
// that matters).
func newTestActorSystem() *actor.ActorSystem {
	return actor.NewActorSystemWithConfig(actor.Configure(actor.WithLoggerFactory(
		func(*actor.ActorSystem) *slog.Logger { return quietLogger })))
}

// testSettlement is a registration settlement of one fixed wallet, created
// at t, with a fresh id.
func testSettlement(t time.Time, status string) *persistence.Settlement {
	return &persistence.Settlement{ID: ids.New(t), Kind: persistence.KindRegistration,
		Wallet: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", Status: status,
		CreatedAt: t.UTC(), UpdatedAt: t.UTC()}
}

// storeSettlements commits settlements as a registration's batch writes
// them (record, locator, due entry), all created at now.
func storeSettlements(t testing.TB, store *persistence.Store, now time.Time, sts ...*persistence.Settlement) {
	t.Helper()
	b := store.DB().NewBatch()
	for _, st := range sts {
		if err := PutSettlement(b, st, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Commit(b); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it reports done, for at most a minute; then
// the test fails with cond's account of the state it saw last.
// (sgetest.Eventually would be an import cycle from here.)
func eventually(t *testing.T, cond func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		done, state := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute: %s", state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countingBackend succeeds at once and counts its calls.
type countingBackend struct{ n atomic.Int64 }

func (c *countingBackend) Settle(context.Context, *persistence.Settlement) error {
	c.n.Add(1)
	return nil
}
