//go:build unix

package bench

import (
	"os"
	"syscall"
	"testing"
)

// BenchmarkPageFault is what this machine charges for the first touch of a
// page of fresh anonymous memory: the kernel's fault and zeroing, paid by
// whichever goroutine touches it (Go heap growth, Pebble's memtable arenas).
// perf.sh counts sged's minor faults; this gives them a price.
func BenchmarkPageFault(b *testing.B) {
	const size = 64 << 20
	page := os.Getpagesize()
	pages := 0
	for b.Loop() {
		mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < size; i += page {
			mem[i] = 1
		}
		pages += size / page
		if err := syscall.Munmap(mem); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(pages)/1000, "µs/page") // an op is 64 MiB
}
