package actors

import (
	"context"
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
