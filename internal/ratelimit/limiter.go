package ratelimit

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"sync/atomic"
)

const limiterShards = 64

// DefaultMaxEntries bounds a Limiter's memory: about 1M subjects.
const DefaultMaxEntries = 1 << 20

// Limiter holds one policy's buckets for many subjects (client IPs) in
// sharded maps, so concurrent wallets rarely contend on one lock.
//
// Memory is bounded: a bucket that has refilled completely is the same as no
// bucket, so Snapshot drops it; and a shard over its share of maxEntries
// drops full buckets first and then arbitrary ones. Dropping a partial bucket
// forgives that subject some tokens; it is the price of a hard memory bound
// under a flood of distinct addresses.
//
// Snapshots are incremental: each bucket carries a dirty mark, so a snapshot
// writes what changed since the last one, not every subject seen in the last
// hour (a million addresses rewritten every interval had cost sged a tenth
// of its CPU in a four-minute load run; bench/FINDINGS.md). Evicted subjects
// are remembered until the next snapshot drops them, so a flood of new
// addresses costs a delete per eviction rather than a full rewrite.
type Limiter struct {
	policy   Policy
	perShard int
	seed     maphash.Seed
	shards   [limiterShards]limiterShard
	// resync asks the next Snapshot for every bucket: a snapshot that was
	// not written loses its changes, and a shard that evicted more than
	// maxEvicted subjects since the last snapshot stopped listing them.
	resync atomic.Bool
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[netip.Addr]entry
	// evicted are the subjects dropped to make room since the last
	// Snapshot, which must drop them from the writer's copy too.
	evicted []netip.Addr
}

type entry struct {
	b     Bucket
	dirty bool // changed since the last Snapshot
}

// NewLimiter returns a limiter for p holding at most maxEntries buckets
// (DefaultMaxEntries when <= 0).
func NewLimiter(p Policy, maxEntries int) *Limiter {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	l := &Limiter{policy: p, perShard: max(1, maxEntries/limiterShards), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = make(map[netip.Addr]entry)
	}
	l.resync.Store(true) // the store may hold what no bucket here stands for
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
	e, ok := s.buckets[a]
	d := l.policy.Take(&e.b, now)
	if d.Allowed || ok {
		if !ok && len(s.buckets) >= l.perShard {
			l.evictLocked(s, now)
		}
		s.buckets[a] = entry{b: e.b, dirty: true}
	}
	s.mu.Unlock()
	return d
}

// Peek reports a's state without spending.
func (l *Limiter) Peek(a netip.Addr, now int64) Decision {
	s := l.shard(a)
	s.mu.Lock()
	e := s.buckets[a]
	s.mu.Unlock()
	return l.policy.Peek(e.b, now)
}

// Refund returns a token taken for a request that then failed.
func (l *Limiter) Refund(a netip.Addr, now int64) {
	s := l.shard(a)
	s.mu.Lock()
	if e, ok := s.buckets[a]; ok {
		l.policy.Refund(&e.b, now)
		s.buckets[a] = entry{b: e.b, dirty: true}
	}
	s.mu.Unlock()
}

// evictLocked makes room in a full shard: full buckets first, then any,
// down to 7/8 of the shard's share, so that a flood of new subjects costs
// one sweep per perShard/8 inserts rather than one per insert.
func (l *Limiter) evictLocked(s *limiterShard, now int64) {
	target := l.perShard - max(1, l.perShard/8)
	for a, e := range s.buckets {
		if l.policy.Full(e.b, now) {
			l.evictOneLocked(s, a)
		}
	}
	for a := range s.buckets {
		if len(s.buckets) <= target {
			break
		}
		l.evictOneLocked(s, a)
	}
}

// evictOneLocked drops a's bucket and lists a for the next Snapshot. Past
// maxEvicted listed in one shard (half its share), deleting them one by one
// would come close to rewriting every bucket, so the list stops there and
// the next Snapshot is a full one instead.
func (l *Limiter) evictOneLocked(s *limiterShard, a netip.Addr) {
	delete(s.buckets, a)
	if len(s.evicted) < l.maxEvicted() {
		s.evicted = append(s.evicted, a)
	} else {
		l.resync.Store(true)
	}
}

func (l *Limiter) maxEvicted() int { return max(1, l.perShard/2) }

// A SnapshotWriter keeps a copy of a Limiter's buckets, e.g. in a store.
type SnapshotWriter interface {
	Clear()                 // forget every bucket held: a full snapshot follows
	Set(netip.Addr, Bucket) // hold this bucket
	Drop(netip.Addr)        // forget this subject's bucket
}

// Snapshot brings w up to date and returns how many buckets remain. It
// drops the subjects evicted since the last Snapshot and the buckets that
// have refilled completely (the same as none), telling w, and gives w every
// bucket changed since the last Snapshot, marking it clean. After a Clear
// it gives w every bucket instead: on the first call (unless Restored said
// w holds what was restored), after Resync and after more evictions than a
// shard lists. w's methods run under a shard's lock.
func (l *Limiter) Snapshot(now int64, w SnapshotWriter) int {
	full := l.resync.Swap(false)
	if full {
		w.Clear()
	}
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		// Drops first: a subject evicted and then seen again is in both,
		// and its new bucket must be what w is left holding.
		if !full {
			for _, a := range s.evicted {
				w.Drop(a)
			}
		}
		clear(s.evicted)
		s.evicted = s.evicted[:0]
		for a, e := range s.buckets {
			switch {
			case l.policy.Full(e.b, now):
				delete(s.buckets, a)
				if !full {
					w.Drop(a)
				}
			case e.dirty || full:
				w.Set(a, e.b)
				if e.dirty {
					s.buckets[a] = entry{b: e.b}
				}
			}
		}
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// Resync makes the next Snapshot a full one, e.g. after the last one could
// not be written.
func (l *Limiter) Resync() { l.resync.Store(true) }

// Restored tells l that the writer its snapshots go to holds exactly the
// buckets given to Restore, so the next Snapshot need not rewrite them all.
func (l *Limiter) Restored() { l.resync.Store(false) }

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

// Restore sets a's bucket from a snapshot, at start-up: clean, since the
// snapshot holds it.
func (l *Limiter) Restore(a netip.Addr, b Bucket) {
	s := l.shard(a)
	s.mu.Lock()
	s.buckets[a] = entry{b: b}
	s.mu.Unlock()
}
