package ratelimit

import (
	"net/netip"
	"testing"
	"time"
)

func TestBucketRefillsContinuously(t *testing.T) {
	p := Policy{Name: "register-ip", Quota: 5, Window: time.Hour}
	var b Bucket
	now := time.Unix(1000, 0).UnixNano()
	for i := range 5 {
		d := p.Take(&b, now)
		if !d.Allowed || d.Remaining != 4-i {
			t.Fatalf("take %d: %+v", i, d)
		}
	}
	d := p.Take(&b, now)
	if d.Allowed || d.RetryAfter != 720 || d.Reset != 3600 || d.Remaining != 0 {
		t.Fatalf("6th: %+v", d)
	}
	// One token is back after window/quota.
	if d := p.Take(&b, now+int64(720*time.Second)); !d.Allowed {
		t.Fatalf("after 720s: %+v", d)
	}
	if d := p.Peek(b, now+int64(720*time.Second)); d.Allowed {
		t.Fatalf("peek spent nothing but should see an empty bucket: %+v", d)
	}
	p.Refund(&b, now+int64(720*time.Second))
	if d := p.Peek(b, now+int64(720*time.Second)); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("after refund: %+v", d)
	}
	if !p.Full(b, now+int64(10*time.Hour)) {
		t.Fatal("bucket not full after ten windows")
	}
}

func TestFirstTakeReportsFullQuotaReset(t *testing.T) {
	p := Policy{Name: "register-wallet", Quota: 10, Window: 24 * time.Hour}
	var b Bucket
	d := p.Take(&b, 1)
	if d.Remaining != 9 || d.Reset != 8640 {
		t.Fatalf("%+v, want r=9 t=8640", d)
	}
}

func TestBucketEncoding(t *testing.T) {
	in := Bucket{Tokens: 3.25, Last: 42}
	out, rest, ok := DecodeBucket(append(in.AppendBinary(nil), 'x'))
	if !ok || out != in || string(rest) != "x" {
		t.Fatalf("%+v %q %v", out, rest, ok)
	}
	if _, _, ok := DecodeBucket([]byte{1}); ok {
		t.Fatal("short value decoded")
	}
}

func TestLimiterStaysBounded(t *testing.T) {
	p := Policy{Name: "register-ip", Quota: 5, Window: time.Hour}
	l := NewLimiter(p, 640)
	now := time.Now().UnixNano()
	for i := range 10000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if !l.Take(a, now).Allowed {
			t.Fatalf("fresh address %v limited", a)
		}
	}
	if n := l.Len(); n > 640 {
		t.Fatalf("%d entries, bound 640", n)
	}
	// Refilled buckets are the same as none and are dropped.
	if n := l.Snapshot(now+int64(2*time.Hour), &snapshotCopy{}); n != 0 {
		t.Fatalf("%d entries after sweep", n)
	}
}

func TestLimiterRefusedRequestsStoreNothing(t *testing.T) {
	l := NewLimiter(Policy{Name: "p", Quota: 1, Window: time.Hour}, 0)
	a := netip.MustParseAddr("192.0.2.1")
	now := time.Now().UnixNano()
	l.Take(a, now)
	if l.Take(a, now).Allowed {
		t.Fatal("second take allowed")
	}
	l.Refund(a, now)
	if !l.Take(a, now).Allowed {
		t.Fatal("refunded token not available")
	}
}

// snapshotCopy is a SnapshotWriter holding the buckets in a map, and
// counting what each Snapshot told it.
type snapshotCopy struct {
	held                map[netip.Addr]Bucket
	clears, sets, drops int
}

func (c *snapshotCopy) Clear() {
	c.held = map[netip.Addr]Bucket{}
	c.clears++
}

func (c *snapshotCopy) Set(a netip.Addr, b Bucket) {
	if c.held == nil {
		c.held = map[netip.Addr]Bucket{}
	}
	c.held[a] = b
	c.sets++
}

func (c *snapshotCopy) Drop(a netip.Addr) {
	delete(c.held, a)
	c.drops++
}

// snapshot takes an incremental snapshot into c and checks it against a
// full one of the same limiter: an incremental writer must end up holding
// exactly the live buckets.
func (c *snapshotCopy) snapshot(t *testing.T, l *Limiter, now int64) {
	t.Helper()
	c.clears, c.sets, c.drops = 0, 0, 0
	l.Snapshot(now, c)
	l.Resync()
	var full snapshotCopy
	l.Snapshot(now, &full)
	if len(full.held) != len(c.held) {
		t.Fatalf("incremental copy holds %d buckets, the limiter %d", len(c.held), len(full.held))
	}
	for a, b := range full.held {
		if got, ok := c.held[a]; !ok || got != b {
			t.Fatalf("incremental copy holds %v for %v (%v), the limiter %v", got, a, ok, b)
		}
	}
}

// A snapshot carries what changed since the last one: taken and refunded
// buckets, and refilled ones dropped. The first one, and one after Resync,
// carries everything after a Clear.
func TestSnapshotIsIncremental(t *testing.T) {
	l := NewLimiter(Policy{Name: "register-ip", Quota: 2, Window: time.Hour}, 0)
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	now := time.Now().UnixNano()
	var w snapshotCopy
	step := func(what string, now int64, clears, sets, drops int) {
		t.Helper()
		w.snapshot(t, l, now)
		if w.clears != clears || w.sets != sets || w.drops != drops {
			t.Fatalf("%s: %d clears, %d sets, %d drops; want %d, %d, %d", what, w.clears, w.sets, w.drops, clears, sets, drops)
		}
	}

	l.Take(a, now)
	l.Take(a, now)
	l.Take(b, now)
	step("first snapshot", now, 1, 2, 0)
	step("nothing changed", now, 0, 0, 0)
	l.Take(b, now)
	step("b taken", now, 0, 1, 0)
	l.Refund(b, now)
	step("b refunded", now, 0, 1, 0)
	// Restored buckets are what the store holds already.
	w.held[c] = Bucket{Tokens: 1, Last: now}
	l.Restore(c, w.held[c])
	step("c restored", now, 0, 0, 0)
	// 40 minutes on, b and c (one token short each) have refilled and are
	// dropped; a (two short) has not and has not changed.
	later := now + int64(40*time.Minute)
	step("b and c refilled", later, 0, 0, 2)
	l.Resync()
	step("after Resync", later, 1, 1, 0)
}

// Evicting drops buckets the writer may hold: the next snapshot drops them
// too, one by one, before it sets the changed ones, so a subject evicted and
// then seen again is left with its new bucket. Past maxEvicted evictions in
// a shard the next snapshot is a full one instead.
func TestSnapshotDropsEvictedSubjects(t *testing.T) {
	l := NewLimiter(Policy{Name: "register-ip", Quota: 2, Window: time.Hour}, 8*limiterShards)
	if l.perShard != 8 || l.maxEvicted() != 4 {
		t.Fatalf("perShard %d, maxEvicted %d; the steps below assume 8 and 4", l.perShard, l.maxEvicted())
	}
	now := time.Now().UnixNano()
	// Subjects of one shard, so that the evictions below are certain.
	s := &l.shards[0]
	var addrs []netip.Addr
	for i := 0; len(addrs) < 20; i++ {
		if a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}); l.shard(a) == s {
			addrs = append(addrs, a)
		}
	}
	var w snapshotCopy
	step := func(what string, clears, sets, drops int) {
		t.Helper()
		w.snapshot(t, l, now)
		if w.clears != clears || w.sets != sets || w.drops != drops {
			t.Fatalf("%s: %d clears, %d sets, %d drops; want %d, %d, %d", what, w.clears, w.sets, w.drops, clears, sets, drops)
		}
	}

	for _, a := range addrs[:8] {
		l.Take(a, now)
	}
	step("the shard full", 1, 8, 0)
	l.Take(addrs[8], now) // evicts one of the first eight
	var gone netip.Addr
	for _, a := range addrs[:8] {
		if _, ok := s.buckets[a]; !ok {
			gone = a
		}
	}
	if !gone.IsValid() {
		t.Fatal("a ninth subject evicted none of the first eight")
	}
	l.Take(gone, now) // back, evicting another: perhaps the ninth
	sets := 1
	if _, ok := s.buckets[addrs[8]]; ok {
		sets = 2
	}
	step("two evicted, one of them back", 0, sets, 2)
	if _, ok := w.held[gone]; !ok {
		t.Fatal("the subject evicted and seen again is not held")
	}
	step("nothing changed", 0, 0, 0) // the list went with the last snapshot
	// Five evictions, one more than a shard lists.
	for _, a := range addrs[9:14] {
		l.Take(a, now)
	}
	step("more evicted than listed", 1, 8, 0)
}
