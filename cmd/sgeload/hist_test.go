package main

import "testing"

func TestHistogramQuantilesOnKnownData(t *testing.T) {
	var h histogram
	for v := uint64(1); v <= 10000; v++ {
		h.record(v)
	}
	for _, tc := range []struct {
		q    float64
		want uint64
	}{{0.5, 5000}, {0.9, 9000}, {0.99, 9900}, {0.999, 9990}, {1, 10000}, {0, 1}} {
		got := h.quantile(tc.q)
		// HDR contract: never below the true value, and within one bucket (1/128) above.
		if got < tc.want || float64(got) > float64(tc.want)*(1+1.0/subCount) {
			t.Errorf("quantile(%v) = %d, want %d within %.1f%%", tc.q, got, tc.want, 100.0/subCount)
		}
	}
	if h.maxed != 10000 || h.lowest != 1 || h.mean() != 5000.5 {
		t.Errorf("max %d min %d mean %v", h.maxed, h.lowest, h.mean())
	}
}

func TestHistogramSmallValuesExact(t *testing.T) {
	var h histogram
	for _, v := range []uint64{3, 3, 3, 7, 100} {
		h.record(v)
	}
	if got := h.quantile(0.5); got != 3 {
		t.Errorf("p50 = %d, want 3", got)
	}
	if got := h.quantile(0.8); got != 7 {
		t.Errorf("p80 = %d, want 7", got)
	}
	if got := h.quantile(0.99); got != 100 {
		t.Errorf("p99 = %d, want 100", got)
	}
}

func TestHistogramBuckets(t *testing.T) {
	for i := range numBuckets {
		if got := bucketOf(bucketHigh(i)); got != i {
			t.Fatalf("bucketOf(bucketHigh(%d)) = %d", i, got)
		}
		if i > 0 && bucketHigh(i) <= bucketHigh(i-1) {
			t.Fatalf("bucket %d not above bucket %d", i, i-1)
		}
	}
	if bucketHigh(numBuckets-1) != maxValue {
		t.Fatalf("last bucket ends at %d, want %d", bucketHigh(numBuckets-1), uint64(maxValue))
	}
	for _, v := range []uint64{0, 127, 128, 129, 255, 256, 1000, 123456, 1 << 31, maxValue} {
		i := bucketOf(v)
		if bucketHigh(i) < v || (i > 0 && bucketHigh(i-1) >= v) {
			t.Errorf("%d in bucket %d ending at %d", v, i, bucketHigh(i))
		}
	}
}

func TestHistogramMergeAndEdges(t *testing.T) {
	var a, b, all, empty histogram
	for v := uint64(0); v < 5000; v += 3 {
		a.record(v * 7)
		b.record(v * 11)
		all.record(v * 7)
		all.record(v * 11)
	}
	a.merge(&b)
	a.merge(&empty)
	if a != all {
		t.Fatal("merge of two histograms differs from recording both")
	}
	if empty.quantile(0.99) != 0 || empty.mean() != 0 {
		t.Fatal("empty histogram must report zero")
	}
	var h histogram
	h.record(1 << 40) // clamped, not out of range
	if h.quantile(1) != maxValue {
		t.Fatalf("clamped max = %d", h.quantile(1))
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h histogram
	for i := 0; b.Loop(); i++ {
		h.record(uint64(i) & 0xfffff)
	}
}
