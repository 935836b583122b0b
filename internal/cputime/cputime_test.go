//go:build unix

package cputime

import "testing"

// Work done on the CPU shows up: the reading grows and never goes back.
func TestProcessGrowsWithWork(t *testing.T) {
	before, ok := Process()
	if !ok {
		t.Fatal("Process: not measured")
	}
	x := uint64(1)
	for {
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
