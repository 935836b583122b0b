package ratelimit

import (
	"hash/maphash"
	"net/netip"
	"sync"
)

const limiterShards = 64

// DefaultMaxEntries bounds a Limiter's memory: about 1M subjects.
const DefaultMaxEntries = 1 << 20

// Limiter holds one policy's buckets for many subjects (client IPs) in
// sharded maps, so concurrent wallets rarely contend on one lock.
//
// Memory is bounded: a bucket that has refilled completely is the same as no
// bucket, so Sweep drops it; and a shard over its share of maxEntries drops
// full buckets first and then arbitrary ones. Dropping a partial bucket
// forgives that subject some tokens; it is the price of a hard memory bound
// under a flood of distinct addresses.
type Limiter struct {
	policy   Policy
	perShard int
	seed     maphash.Seed
	shards   [limiterShards]limiterShard
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[netip.Addr]Bucket
}

// NewLimiter returns a limiter for p holding at most maxEntries buckets
// (DefaultMaxEntries when <= 0).
func NewLimiter(p Policy, maxEntries int) *Limiter {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	l := &Limiter{policy: p, perShard: max(1, maxEntries/limiterShards), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = make(map[netip.Addr]Bucket)
	}
	return l
}

// Policy returns the limiter's policy.
func (l *Limiter) Policy() *Policy { return &l.policy }

func (l *Limiter) shard(a netip.Addr) *limiterShard {
	b := a.As16()
	return &l.shards[maphash.Bytes(l.seed, b[:])%limiterShards]
}

// Take spends one of a's tokens if there is one.
func (l *Limiter) Take(a netip.Addr, now int64) Decision {
	s := l.shard(a)
	s.mu.Lock()
	b, ok := s.buckets[a]
	d := l.policy.Take(&b, now)
	if d.Allowed || ok {
		if !ok && len(s.buckets) >= l.perShard {
			l.evictLocked(s, now)
		}
		s.buckets[a] = b
	}
	s.mu.Unlock()
	return d
}

// Peek reports a's state without spending.
func (l *Limiter) Peek(a netip.Addr, now int64) Decision {
	s := l.shard(a)
	s.mu.Lock()
	b := s.buckets[a]
	s.mu.Unlock()
	return l.policy.Peek(b, now)
}

// Refund returns a token taken for a request that then failed.
func (l *Limiter) Refund(a netip.Addr, now int64) {
	s := l.shard(a)
	s.mu.Lock()
	if b, ok := s.buckets[a]; ok {
		l.policy.Refund(&b, now)
		s.buckets[a] = b
	}
	s.mu.Unlock()
}

// evictLocked makes room in a full shard: full buckets first, then any,
// down to 7/8 of the shard's share, so that a flood of new subjects costs
// one sweep per perShard/8 inserts rather than one per insert.
func (l *Limiter) evictLocked(s *limiterShard, now int64) {
	target := l.perShard - max(1, l.perShard/8)
	for a, b := range s.buckets {
		if l.policy.Full(b, now) {
			delete(s.buckets, a)
		}
	}
	for a := range s.buckets {
		if len(s.buckets) <= target {
			break
		}
		delete(s.buckets, a)
	}
}

// Sweep drops buckets that have refilled completely and returns how many
// remain.
func (l *Limiter) Sweep(now int64) int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for a, b := range s.buckets {
			if l.policy.Full(b, now) {
				delete(s.buckets, a)
			}
		}
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// Len returns the number of buckets held.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// Range calls f for every bucket, shard by shard; used for snapshots.
func (l *Limiter) Range(f func(netip.Addr, Bucket)) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for a, b := range s.buckets {
			f(a, b)
		}
		s.mu.Unlock()
	}
}

// Restore sets a's bucket, e.g. from a snapshot at start-up.
func (l *Limiter) Restore(a netip.Addr, b Bucket) {
	s := l.shard(a)
	s.mu.Lock()
	s.buckets[a] = b
	s.mu.Unlock()
}
