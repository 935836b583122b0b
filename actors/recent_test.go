package actors

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/sgeplatform/sge/persistence"
)

// A committed record is answered from memory, to the byte, and only while
// the stored one would be: not after its expiry, not for another body.
func TestRecentRecordsAnswerRetries(t *testing.T) {
	sys := newTestSystem(t)
	w := wallet(7)
	first := register(sys, w, "k")
	if first.Status != 201 || first.Idempotency != IdemMiss {
		t.Fatalf("first: %d %d", first.Status, first.Idempotency)
	}
	// Take the record out of Pebble: what answers now can only be memory.
	key := persistence.AppendIdempotencyKey(nil, []byte(w), OpRegister.scope(), []byte("k"))
	b := sys.store.DB().NewBatch()
	_ = b.Delete(key, nil)
	if err := sys.store.Commit(b); err != nil {
		t.Fatal(err)
	}

	probe := func(fp [32]byte) *Request {
		r := NewRequest()
		r.Op, r.Wallet, r.Key, r.Fingerprint = OpRegister, []byte(w), []byte("k"), fp
		r.recordKey = persistence.AppendIdempotencyKey(nil, r.Wallet, OpRegister.scope(), r.Key)
		return r
	}
	r := probe(first.Fingerprint)
	if !sys.replay(r) || r.Status != 201 || r.Idempotency != IdemHit || string(r.Body) != string(first.Body) {
		t.Fatalf("retry not answered from memory: %v %d %s", r.Idempotency, r.Status, r.Body)
	}
	if again := register(sys, w, "k"); again.Idempotency != IdemHit || string(again.Body) != string(first.Body) {
		t.Fatalf("retry through Do: %d %s", again.Idempotency, again.Body)
	}
	other := first.Fingerprint
	other[0] ^= 1
	if sys.replay(probe(other)) {
		t.Fatal("another fingerprint was replayed")
	}
	sys.cfg.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	if sys.replay(probe(first.Fingerprint)) {
		t.Fatal("expired record was replayed")
	}
}

// The cache holds about its capacity and forgets the oldest first.
func TestRecentRecordsBounded(t *testing.T) {
	c := newRecentRecords(recentShards * 4)
	const n = recentShards * 40
	for i := range n {
		c.put(fmt.Sprintf("key-%d", i), fmt.Appendf(nil, "%d", i))
	}
	held := 0
	for i := range c.shards {
		held += len(c.shards[i].records)
	}
	if held > recentShards*4 {
		t.Fatalf("%d records held, capacity %d", held, recentShards*4)
	}
	if v := c.get(fmt.Appendf(nil, "key-%d", n-1)); string(v) != fmt.Sprint(n-1) {
		t.Fatalf("newest record: %v", v)
	}
	if c.get([]byte("key-0")) != nil {
		t.Fatal("oldest record still held")
	}
	off := newRecentRecords(0)
	off.put("k", []byte("v"))
	if off.get([]byte("k")) != nil {
		t.Fatal("a cache of capacity 0 kept a record")
	}
}

// BenchmarkRecentRecordsMemory reports the heap a full cache of registration
// records holds: a 95-byte key and a 44-byte header plus a 190-byte answer,
// the sizes of a registration's record.
func BenchmarkRecentRecordsMemory(b *testing.B) {
	const capacity = DefaultReplayCacheRecords
	val := make([]byte, persistence.IdempotencyHeaderSize+190)
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := newRecentRecords(capacity)
		for i := range capacity {
			key := fmt.Appendf(nil, "w/%02x/0x%040x/i/register/%036d", i%256, i, i)
			c.put(string(key), append([]byte(nil), val...))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/capacity, "bytes/record")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB")
		runtime.KeepAlive(c)
	}
}
