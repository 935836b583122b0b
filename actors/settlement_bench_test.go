package actors

import (
	"testing"
	"time"

	"github.com/sgeplatform/sge/internal/cputime"
	"github.com/sgeplatform/sge/persistence"
)

// BenchmarkSettlement is a settlement's own work once the commit that
// created it is durable: Created, its actor, the synced running and outcome
// commits around an instant backend, and the actor's stop, on a real Pebble
// with up to inFlight settlements at a time, as under a steady registration
// load. The records are written before the timer starts: on the request
// path they ride in the registration's batch. bench/drain.sh measures the
// same work after a restart, with the sweep and a read per settlement.
// ns/op is wall time with up to inFlight settlements waiting on their syncs;
// cpu-ns/op is what each cost the process in CPU.
func BenchmarkSettlement(b *testing.B) {
	const inFlight = 256
	store := openTestStore(b)
	slots := make(chan struct{}, inFlight)
	sup := newTestSupervisor(b, store, SettlementConfig{Backend: &countingBackend{}, Observer: stopSignal{slots: slots}})
	now := time.Now()
	sts := make([]*persistence.Settlement, b.N)
	for i := 0; i < b.N; {
		batch := store.DB().NewBatch()
		for end := min(i+1000, b.N); i < end; i++ {
			sts[i] = testSettlement(now, persistence.StatusPending)
			if err := PutSettlement(batch, sts[i], now); err != nil {
				b.Fatal(err)
			}
		}
		if err := store.Commit(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	cpu0, cpuOK := cputime.Process()
	b.ResetTimer()
	for _, st := range sts {
		slots <- struct{}{} // freed when a settlement actor stops
		sup.Created(st)
	}
	for range inFlight {
		slots <- struct{}{} // the last ones have stopped
	}
	b.StopTimer()
	if cpu1, ok := cputime.Process(); ok && cpuOK {
		b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
	if c := sup.Counts(); c[persistence.StatusPending]+c[persistence.StatusRunning] != 0 {
		b.Fatalf("settlements left unfinished: %v", c)
	}
}

// stopSignal frees a slot each time a settlement actor stops.
type stopSignal struct {
	NopObserver
	slots chan struct{}
}

func (s stopSignal) ActorStopped(kind string, _ bool) {
	if kind == kindSettlement {
		<-s.slots
	}
}
