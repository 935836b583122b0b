package actors

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/internal/ratelimit"
	"github.com/sgeplatform/sge/persistence"
)

// storedIPBuckets reads the IP buckets a store holds.
func storedIPBuckets(t *testing.T, store *persistence.Store) map[string]ratelimit.Bucket {
	t.Helper()
	it, err := store.DB().NewIter(&pebble.IterOptions{LowerBound: persistence.PrefixIP, UpperBound: persistence.PrefixEnd(persistence.PrefixIP)})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	held := map[string]ratelimit.Bucket{}
	for it.First(); it.Valid(); it.Next() {
		b, _, ok := ratelimit.DecodeBucket(it.Value())
		if !ok {
			t.Fatalf("undecodable bucket at %q", it.Key())
		}
		held[string(it.Key()[len(persistence.PrefixIP):])] = b
	}
	return held
}

// The periodic snapshots write only what changed, yet the store always
// holds exactly the live IP buckets: new and spent ones written, refilled
// ones deleted, and a restart restores them.
func TestIPBucketSnapshotsKeepTheStoreExact(t *testing.T) {
	store := openTestStore(t)
	as := newTestActorSystem()
	defer as.Shutdown()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC).UnixNano())
	cfg := Config{RegisterPerHourIP: 2, Logger: quietLogger, Now: func() time.Time { return time.Unix(0, clock.Load()) }}
	sys, err := New(cfg, store, as)
	if err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::2")
	take := func(ip netip.Addr) {
		t.Helper()
		if !sys.registerIP.Take(ip, clock.Load()).Allowed {
			t.Fatalf("%v refused", ip)
		}
	}
	snapshot := func(want ...netip.Addr) {
		t.Helper()
		if err := sys.snapshotIPBuckets(); err != nil {
			t.Fatal(err)
		}
		held := storedIPBuckets(t, store)
		if len(held) != len(want) {
			t.Fatalf("store holds %v, want buckets of %v", held, want)
		}
		for _, ip := range want {
			if _, ok := held[ip.String()]; !ok {
				t.Fatalf("store holds %v, want buckets of %v", held, want)
			}
		}
	}

	take(a)
	snapshot(a) // the first one is full
	take(b)
	take(b)
	snapshot(a, b)
	// 40 minutes on, a (one token short) has refilled and is deleted; b
	// (two short) is kept.
	clock.Add(int64(40 * time.Minute))
	snapshot(b)
	before := sys.registerIP.Peek(b, clock.Load())
	if err := sys.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}

	again, err := New(cfg, store, as)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = again.Shutdown(t.Context()) }()
	if d := again.registerIP.Peek(b, clock.Load()); d != before || d.Remaining != 1 {
		t.Fatalf("b after restart: %+v, before it %+v; want 1 token left", d, before)
	}
	if got := again.IPLimiterEntries(); got != 1 {
		t.Fatalf("%d IP buckets restored, want b's alone", got)
	}
	// The store holds what was restored: nothing to rewrite.
	var c snapshotCounter
	again.registerIP.Snapshot(clock.Load(), &c)
	if c != (snapshotCounter{}) {
		t.Fatalf("first snapshot after a restart: %+v; want nothing written", c)
	}
}

// An IP bucket that cannot be read back at start-up is replaced by a full
// first snapshot, which leaves only readable buckets.
func TestUnreadableIPBucketIsReplacedAfterRestart(t *testing.T) {
	store := openTestStore(t)
	as := newTestActorSystem()
	defer as.Shutdown()
	b := store.DB().NewBatch()
	_ = b.Set(persistence.AppendIPKey(nil, "192.0.2.1"), ratelimit.Bucket{Tokens: 1, Last: time.Now().UnixNano()}.AppendBinary(nil), nil)
	_ = b.Set(persistence.AppendIPKey(nil, "192.0.2.2"), []byte("not a bucket"), nil)
	if err := store.Write(b); err != nil {
		t.Fatal(err)
	}
	sys, err := New(Config{Logger: quietLogger, RegisterPerHourIP: 2}, store, as)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sys.Shutdown(t.Context()) }()
	if err := sys.snapshotIPBuckets(); err != nil {
		t.Fatal(err)
	}
	if held := storedIPBuckets(t, store); len(held) != 1 || held["192.0.2.1"].Tokens != 1 {
		t.Fatalf("store holds %v after the first snapshot; want 192.0.2.1's bucket alone", held)
	}
}

// snapshotCounter is a SnapshotWriter that only counts.
type snapshotCounter struct{ clears, sets, drops int }

func (c *snapshotCounter) Clear()                           { c.clears++ }
func (c *snapshotCounter) Set(netip.Addr, ratelimit.Bucket) { c.sets++ }
func (c *snapshotCounter) Drop(netip.Addr)                  { c.drops++ }

// storageErrors is an Observer that counts storage errors by op.
type storageErrors struct {
	NopObserver
	mu  sync.Mutex
	ops map[string]int
}

func (o *storageErrors) StorageError(op string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ops[op]++
}

// A snapshot that could not be written is counted as a storage error and
// leaves what it held to the next one, which is a full one.
func TestFailedIPSnapshotIsFollowedByAFullOne(t *testing.T) {
	store := openTestStore(t)
	as := newTestActorSystem()
	defer as.Shutdown()
	obs := &storageErrors{ops: map[string]int{}}
	sys, err := New(Config{Logger: quietLogger, Observer: obs}, store, as)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sys.Shutdown(t.Context()) }()
	now := time.Now().UnixNano()
	sys.registerIP.Take(netip.MustParseAddr("192.0.2.1"), now)
	if err := sys.snapshotIPBuckets(); err != nil {
		t.Fatal(err)
	}
	sys.registerIP.Take(netip.MustParseAddr("192.0.2.2"), now)
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sys.snapshotIPBuckets(); err == nil {
		t.Fatal("snapshot into a closed store succeeded")
	}
	obs.mu.Lock()
	counted := obs.ops["snapshot"]
	obs.mu.Unlock()
	if counted != 1 {
		t.Fatalf("storage errors %v; want the failed snapshot counted once", obs.ops)
	}
	var c snapshotCounter
	sys.registerIP.Snapshot(now, &c)
	if c.clears != 1 || c.sets != 2 {
		t.Fatalf("snapshot after a failed one: %+v; want a full one of both buckets", c)
	}
}
