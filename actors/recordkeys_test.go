package actors

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/persistence"
)

func TestRecordKeysFilter(t *testing.T) {
	f := newRecordKeys(defaultRecordGenSize)
	k := []byte("w/3f/0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed/i/register/k1")
	if !f.mayBeStored(k) {
		t.Fatal("before the scan, every record must count as stored")
	}
	f.ready.Store(true)
	if f.mayBeStored(k) {
		t.Fatal("an empty filter has a record")
	}
	f.add(k, 2, 1)
	if !f.mayBeStored(k) {
		t.Fatal("an added record is absent")
	}
	// False positives stay rare while a generation is far from full.
	for i := range 100_000 {
		f.add(fmt.Appendf(nil, "record-%d", i), 2, 1)
	}
	stored := 0
	for i := range 100_000 {
		if f.mayBeStored(fmt.Appendf(nil, "other-%d", i)) {
			stored++
		}
	}
	if stored > 100 {
		t.Errorf("%d of 100000 records never added pass for stored", stored)
	}
}

// A generation goes only once all its records have expired, and at the
// limit the newest keeps filling instead: nothing unexpired is forgotten.
func TestRecordKeysGenerations(t *testing.T) {
	f := newRecordKeys(recordGenSize{words: 1 << 10, keys: 2, limit: 3})
	f.ready.Store(true)
	gens := func() int { return len(*f.gens.Load()) }
	key := func(i int) []byte { return fmt.Appendf(nil, "k%d", i) }

	f.add(key(1), 100, 0)
	f.add(key(2), 1000, 0) // first generation full, until 1000
	f.add(key(3), 200, 150)
	f.add(key(4), 300, 160) // second full, until 300
	if gens() != 2 {
		t.Fatalf("%d generations, want 2", gens())
	}
	f.add(key(5), 400, 350) // the second has expired: dropped
	if gens() != 2 {
		t.Fatalf("%d generations after the roll at 350, want 2", gens())
	}
	for _, i := range []int{1, 2, 5} {
		if !f.mayBeStored(key(i)) {
			t.Errorf("k%d forgotten before its generation expired", i)
		}
	}
	for _, i := range []int{3, 4} {
		if f.mayBeStored(key(i)) {
			t.Errorf("k%d kept after its generation expired", i)
		}
	}

	// Records far from expiry, past the limit of generations.
	for i := 6; i < 30; i++ {
		f.add(key(i), 5000, 400)
		if gens() > 3 {
			t.Fatalf("%d generations, limit 3", gens())
		}
	}
	for i := 1; i < 30; i++ {
		if i != 3 && i != 4 && !f.mayBeStored(key(i)) {
			t.Errorf("k%d forgotten at the limit of generations", i)
		}
	}
}

// Readers racing adds and rolls see every unexpired key added before they
// looked. Worker 0 adds long-lived keys; the others add keys that expire at
// once, so generations holding only theirs can be dropped meanwhile.
func TestRecordKeysConcurrent(t *testing.T) {
	f := newRecordKeys(recordGenSize{words: 1 << 10, keys: 16, limit: 4})
	f.ready.Store(true)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				k := fmt.Appendf(nil, "w%d-%d", w, i)
				now, expires := int64(i), int64(1<<40)
				if w > 0 {
					expires = now
				}
				f.add(k, expires, now)
				if w == 0 && !f.mayBeStored(k) {
					t.Errorf("%s absent after its add", k)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := range 3000 {
		if k := fmt.Appendf(nil, "w0-%d", i); !f.mayBeStored(k) {
			t.Fatalf("%s forgotten", k)
		}
	}
}

// A record written under a longer TTL before a restart is still known after
// it, by the expiry it was written with; an expired one and a fresh key are
// not, and a retry of the first is still replayed when the IP has no token
// left for new registrations.
func TestRecordKeysAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	run := func(ttl time.Duration, f func(*System)) {
		sys, stop := startTestSystem(t, dir, Config{IdempotencyTTL: ttl, RegisterPerHourIP: 3, Now: func() time.Time { return now }})
		defer func() {
			if err := stop(); err != nil {
				t.Error(err)
			}
		}()
		f(sys)
	}
	const wallet = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
	var first, short *Request
	run(48*time.Hour, func(sys *System) { first = register(sys, wallet, "long") })
	run(time.Hour, func(sys *System) { short = register(sys, "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359", "short") })
	for _, r := range []*Request{first, short} {
		if r.Status != 201 || r.Idempotency != IdemMiss {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
	}

	now = now.Add(2 * time.Hour) // the short record has expired
	run(time.Hour, func(sys *System) {
		<-sys.records.scanned
		if !sys.records.ready.Load() {
			t.Fatal("start-up scan did not finish")
		}
		if !sys.records.mayBeStored(first.recordKey) {
			t.Fatal("the 48 h record is not known after the restart")
		}
		if sys.records.mayBeStored(short.recordKey) {
			t.Error("the expired record is still known after the restart")
		}
		// Spend the IP's tokens, then retry: a replay, never a 429.
		for i := range 3 {
			if r := register(sys, fmt.Sprintf("0x%040x", i), "k"); r.Status != 201 {
				t.Fatalf("%d %s", r.Status, r.Body)
			}
		}
		if r := register(sys, wallet, "long"); r.Idempotency != IdemHit || string(r.Body) != string(first.Body) {
			t.Fatalf("retry after restart: %d %s, want the first answer %s", r.Status, r.Body, first.Body)
		}
		if r := register(sys, fmt.Sprintf("0x%040x", 99), "fresh"); r.Status != 429 {
			t.Fatalf("fresh key over the IP quota: %d %s, want 429", r.Status, r.Body)
		}
	})
}

// With the recent-records cache off, a retry in the same run is found only
// through the filter: the record's key must be in it once its step commits.
func TestRecordKeysRetryWithoutCache(t *testing.T) {
	sys, stop := startTestSystem(t, t.TempDir(), Config{ReplayCacheRecords: -1, RegisterPerDayWallet: 5})
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	<-sys.records.scanned
	const wallet = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
	first := register(sys, wallet, "k1")
	if first.Status != 201 || first.Idempotency != IdemMiss {
		t.Fatalf("%d %s", first.Status, first.Body)
	}
	for range 2 { // the direct replay, then the actor's own lookup (warm actor)
		if r := register(sys, wallet, "k1"); r.Idempotency != IdemHit || string(r.Body) != string(first.Body) {
			t.Fatalf("retry: idempotency %d, %d %s, want a replay of %s", r.Idempotency, r.Status, r.Body, first.Body)
		}
	}
}

// BenchmarkRecordKeysFalsePositives fills one generation (1 Mi keys) and
// reports the share of 200 000 other keys that pass for stored (each costs
// the read the filter would have saved).
func BenchmarkRecordKeysFalsePositives(b *testing.B) {
	for range b.N {
		f := newRecordKeys(defaultRecordGenSize)
		f.ready.Store(true)
		for i := range defaultRecordGenSize.keys {
			f.add(fmt.Appendf(nil, "w/3f/0x%040x/i/register/%d", i, i), 2, 1)
		}
		stored := 0
		for i := range 200_000 {
			if f.mayBeStored(fmt.Appendf(nil, "w/3f/0x%040x/i/register/%d", 1<<50+i, i)) {
				stored++
			}
		}
		b.ReportMetric(float64(stored)/2000, "%-stored-when-full")
	}
}

// BenchmarkRecordKeysScan is the start-up scan of an expiry index of
// 200 000 records, reported per record. The service answers during the
// scan (every record counts as stored until it ends).
func BenchmarkRecordKeysScan(b *testing.B) {
	const records = 200_000
	at := time.Now().Add(time.Hour).UnixNano()
	store := compactedStore(b, records, persistence.PrefixExpiry, func(batch *pebble.Batch, i int) {
		w := fmt.Appendf(nil, "0x%040x", i)
		_ = batch.Set(persistence.AppendExpiryKey(nil, at+int64(i), w, "register", []byte("01M8EN5EEJER8J424MRVZ0WMMC")), nil, nil)
	})
	b.ResetTimer()
	for range b.N {
		f := newRecordKeys(defaultRecordGenSize)
		if err := f.scan(store, time.Now().UnixNano(), nil); err != nil || !f.ready.Load() {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*records), "ns/record")
}

// BenchmarkRecordKeysAdd is the cost of an add, and the worst of the adds
// that roll to a new generation (one per 1 Mi keys).
func BenchmarkRecordKeysAdd(b *testing.B) {
	f := newRecordKeys(defaultRecordGenSize)
	key := []byte("w/3f/0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed/i/register/0000000000")
	var roll time.Duration
	for i := 0; b.Loop(); i++ {
		copy(key[len(key)-10:], fmt.Appendf(nil, "%010d", i))
		if i == 0 || i%defaultRecordGenSize.keys != 0 {
			f.add(key, 2, 1)
			continue
		}
		start := time.Now()
		f.add(key, 2, 1)
		roll = max(roll, time.Since(start))
	}
	b.ReportMetric(float64(roll.Microseconds()), "roll-µs")
}
