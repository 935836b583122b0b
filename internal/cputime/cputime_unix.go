//go:build unix

// Package cputime reads the CPU time the running process has used, so that
// load reports and benchmarks can say what their work cost in CPU, not only
// in wall time, on a machine whose cores they share.
package cputime

import (
	"syscall"
	"time"
)

// Process is the CPU time this process has used so far, user and system;
// ok is false where it cannot be read.
func Process() (d time.Duration, ok bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
