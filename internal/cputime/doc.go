// Package cputime reads the CPU time the running process has used, so that
// load reports and benchmarks can say what their work cost in CPU, not only
// in wall time, on a machine whose cores they share.
package cputime
