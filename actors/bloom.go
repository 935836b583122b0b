package actors

import "sync/atomic"

// blockFilter is a blocked Bloom filter of 64-bit hashes: each hash sets 6
// bits of one word (one cache line, one atomic operation). Its length is a
// power of two, at most 1<<28 words.
type blockFilter []atomic.Uint64

// locate takes the 6 bit positions from the hash's low 36 bits and the word
// from the bits above.
func (f blockFilter) locate(h uint64) (*atomic.Uint64, uint64) {
	var mask uint64
	for i := range 6 {
		mask |= 1 << (h >> (6 * i) & 63)
	}
	return &f[h>>36&uint64(len(f)-1)], mask
}

func (f blockFilter) add(h uint64) {
	w, mask := f.locate(h)
	w.Or(mask)
}

// has reports false only for a hash never added.
func (f blockFilter) has(h uint64) bool {
	w, mask := f.locate(h)
	return w.Load()&mask == mask
}
