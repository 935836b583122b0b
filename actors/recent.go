package actors

import (
	"hash/maphash"
	"sync"
)

// recentRecords keeps the idempotency records committed most recently, so
// that the common retry, which follows its first answer closely, is answered
// from memory instead of a Pebble read (about half of what a replay cost
// beyond the bare HTTP server).
//
// No entry ever needs invalidating: a record enters only after its commit
// returned without error, so it is durable; and a committed record never
// changes before it expires, because a request that finds it unexpired
// replays it or is refused, and only expired records are rewritten (a key
// reused after its TTL) or purged. Readers check the expiry and the
// fingerprint exactly as they do for the record read from Pebble. A miss here
// says nothing: the reader goes on to Pebble.
//
// Memory is bounded by a record count; each shard forgets its oldest entry
// when full (insertion order, no recency bookkeeping on the read path). A key
// put twice (reused after its TTL) leaves with its older slot: a miss, which
// only costs the read.
type recentRecords struct {
	seed   maphash.Seed
	shards [recentShards]recentShard
}

const recentShards = 64

type recentShard struct {
	mu      sync.Mutex
	records map[string][]byte // record key → encoded persistence.Idempotency
	order   []string          // keys in insertion order, a ring
	next    int               // the ring's oldest slot, overwritten next
}

// newRecentRecords holds about capacity records; capacity 0 keeps none.
func newRecentRecords(capacity int) *recentRecords {
	c := &recentRecords{seed: maphash.MakeSeed()}
	per := (capacity + recentShards - 1) / recentShards
	for i := range c.shards {
		c.shards[i].records = make(map[string][]byte, per)
		c.shards[i].order = make([]string, per)
	}
	return c
}

// put remembers the committed record val under key. val must not change
// afterwards; put keeps it as it is.
func (c *recentRecords) put(key string, val []byte) {
	s := &c.shards[maphash.String(c.seed, key)%recentShards]
	if len(s.order) == 0 {
		return
	}
	s.mu.Lock()
	if old := s.order[s.next]; old != "" {
		delete(s.records, old)
	}
	s.order[s.next] = key
	s.next = (s.next + 1) % len(s.order)
	s.records[key] = val
	s.mu.Unlock()
}

// get returns the record under key, or nil. The result is shared and must
// not be modified.
func (c *recentRecords) get(key []byte) []byte {
	s := &c.shards[maphash.Bytes(c.seed, key)%recentShards]
	if len(s.order) == 0 {
		return nil // the cache is off (order never changes length)
	}
	s.mu.Lock()
	v := s.records[string(key)]
	s.mu.Unlock()
	return v
}
