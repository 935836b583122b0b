//go:build unix

package cputime

import "testing"

// Work done on the CPU shows up: the reading grows and never goes back.
func TestProcessGrowsWithWork(t *testing.T) {
	before, ok := Process()
	if !ok {
		t.Fatal("Process: not measured")
	}
	// A round is about a millisecond of CPU on today's machines; the bound
	// counts work, not time, and only turns a reading that never moves into
	// a failure instead of a hang.
	const rounds = 10000
	x := uint64(1)
	for i := 0; ; i++ {
		if i == rounds {
			t.Fatalf("Process still reads %v after %d rounds of work", before, rounds)
		}
		for range 1 << 20 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		after, ok := Process()
		if !ok || after < before {
			t.Fatalf("Process went from %v to %v (ok %v)", before, after, ok)
		}
		if after > before {
			break
		}
	}
	if x == 0 {
		t.Log(x) // keeps the loop
	}
}
