package main

import (
	"math"
	"math/bits"
)

// histogram records latencies in microseconds, HDR style: values below 2^subBits are
// exact; above, each power of two is split into 2^subBits linear buckets, so a reported
// value is within 1/2^subBits (0.8%) of the truth. It has a fixed size and never
// allocates; each worker owns one and they are merged after the run.
type histogram struct {
	counts        [numBuckets]uint64
	n, sum        uint64
	lowest, maxed uint64 // exact min and max
}

const (
	subBits    = 7
	subCount   = 1 << subBits
	maxValue   = 1<<32 - 1 // µs, ~71 min; larger values are clamped
	numBuckets = (32 - subBits + 1) * subCount
)

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - 1 - subBits
	return (shift+1)<<subBits + int(v>>shift) - subCount
}

// bucketHigh is the largest value that lands in bucket i.
func bucketHigh(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	shift := i>>subBits - 1
	low := uint64(i&(subCount-1)+subCount) << shift
	return low + 1<<shift - 1
}

func (h *histogram) record(v uint64) {
	v = min(v, maxValue)
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.lowest {
		h.lowest = v
	}
	h.maxed = max(h.maxed, v)
	h.n++
	h.sum += v
}

func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.lowest < h.lowest {
		h.lowest = o.lowest
	}
	h.maxed = max(h.maxed, o.maxed)
	h.n += o.n
	h.sum += o.sum
}

// quantile returns the value at or below which a share q of the records fall,
// rounded up to its bucket's top and never above the exact maximum.
func (h *histogram) quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q*float64(h.n) - 1e-9)) // tolerate 0.999*1000 = 999.0000001
	rank = max(1, min(rank, h.n))
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return max(h.lowest, min(bucketHigh(i), h.maxed))
		}
	}
	return h.maxed
}

func (h *histogram) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return float64(h.sum) / float64(h.n)
}
