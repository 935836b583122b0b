package main

import (
	"testing"
	"time"
)

// With -rate, take spreads requests evenly from the start of the run and
// hands back each request's slot.
func TestTakePacesSlots(t *testing.T) {
	r := &runner{cfg: Config{Rate: 1000}}
	r.paceStart = time.Now()
	var last time.Time
	for i := range 20 {
		slot, ok := r.take()
		if !ok {
			t.Fatal("take refused")
		}
		if want := r.paceStart.Add(time.Duration(i) * time.Millisecond); !slot.Equal(want) {
			t.Fatalf("slot %d at %v, want %v", i, slot.Sub(r.paceStart), want.Sub(r.paceStart))
		}
		if time.Now().Before(slot) {
			t.Fatalf("take %d returned before its slot", i)
		}
		last = slot
	}
	if last.Sub(r.paceStart) != 19*time.Millisecond {
		t.Fatalf("20 slots at 1000/s span %v", last.Sub(r.paceStart))
	}
}
