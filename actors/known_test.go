package actors

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/persistence"
)

// A wallet stored before a restart must stay known after it: otherwise a
// retry would be taken for a new request (the direct replay skipped) and a
// new actor would start from empty buckets (its load skipped). Wallets
// never seen skip both reads, and are known from their first request on.
func TestKnownWalletsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{RegisterPerDayWallet: 1, RegisterPerHourIP: 1 << 30}
	start := func() (*System, func()) {
		sys, stop := startTestSystem(t, dir, cfg)
		<-sys.known.scanned
		if !sys.known.ready.Load() {
			t.Fatal("start-up scan did not finish")
		}
		return sys, func() {
			if err := stop(); err != nil {
				t.Error(err)
			}
		}
	}

	// Enough wallets that the scan crosses shards and its skip-ahead.
	wallets := make([]string, 300)
	for i := range wallets {
		wallets[i] = fmt.Sprintf("0x%040x", 0x5a00+i)
	}
	sys, stop := start()
	first := make([]*Request, len(wallets))
	for i, w := range wallets {
		if sys.known.mayBeStored([]byte(w)) && i == 0 {
			t.Fatal("a wallet never seen counts as stored")
		}
		first[i] = register(sys, w, "k1")
		if first[i].Status != 201 || first[i].Idempotency != IdemMiss {
			t.Fatalf("%s: %d %s", w, first[i].Status, first[i].Body)
		}
		if !sys.known.mayBeStored([]byte(w)) {
			t.Fatalf("%s unknown after its registration", w)
		}
	}
	stop()

	sys, stop = start()
	defer stop()
	for i, w := range wallets {
		again := register(sys, w, "k1")
		if again.Idempotency != IdemHit || string(again.Body) != string(first[i].Body) {
			t.Fatalf("%s: retry after restart: %d %s, want the first answer %s", w, again.Status, again.Body, first[i].Body)
		}
		other := register(sys, w, "k2")
		if other.Status != 429 {
			t.Fatalf("%s: second registration after restart: %d %s, want 429 (register-wallet spent)", w, other.Status, other.Body)
		}
	}
}

func TestKnownWalletsFilter(t *testing.T) {
	k := newKnownWallets()
	w := []byte("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed")
	if !k.mayBeStored(w) {
		t.Fatal("before the scan, every wallet must count as stored")
	}
	k.ready.Store(true)
	if k.mayBeStored(w) {
		t.Fatal("an empty filter knows a wallet")
	}
	k.add(w)
	if !k.mayBeStored(w) {
		t.Fatal("an added wallet is unknown")
	}
	// False positives stay rare while the filter is far from full.
	known := 0
	for i := range 100_000 {
		k.add(fmt.Appendf(nil, "0x%040x", i))
	}
	for i := range 100_000 {
		if k.mayBeStored(fmt.Appendf(nil, "0x%040x", 1<<40+i)) {
			known++
		}
	}
	if known > 100 {
		t.Errorf("%d of 100000 wallets never added pass for known", known)
	}
}

// BenchmarkKnownWalletsScan is the start-up scan over a store of 200 000
// wallets with three records each, reported per wallet. The service answers
// during the scan (every wallet counts as known until it ends).
func BenchmarkKnownWalletsScan(b *testing.B) {
	const wallets = 200_000
	store := compactedStore(b, wallets, []byte("w/"), func(batch *pebble.Batch, i int) {
		w := fmt.Appendf(nil, "0x%040x", i)
		for _, tag := range []byte{persistence.TagBuckets, persistence.TagRegistration, persistence.TagSettlement} {
			_ = batch.Set(persistence.AppendWalletKey(nil, w, tag, []byte("01M8EN5EEJER8J424MRVZ0WMMC")), make([]byte, 200), nil)
		}
	})
	b.ResetTimer()
	for range b.N {
		k := newKnownWallets()
		if err := k.scan(store, nil); err != nil || !k.ready.Load() {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*wallets), "ns/wallet")
}

// BenchmarkKnownWalletsFalsePositives fills the filter with 1, 3 and 5
// million wallets and reports the share of 200 000 others that pass for
// known (each costs the reads the filter would have saved).
func BenchmarkKnownWalletsFalsePositives(b *testing.B) {
	for range b.N {
		k := newKnownWallets()
		k.ready.Store(true)
		added := 0
		for _, n := range []int{1_000_000, 3_000_000, 5_000_000} {
			for ; added < n; added++ {
				k.add(fmt.Appendf(nil, "0x%040x", added))
			}
			known := 0
			for i := range 200_000 {
				if k.mayBeStored(fmt.Appendf(nil, "0x%040x", 1<<50+i)) {
					known++
				}
			}
			b.ReportMetric(float64(known)/2000, fmt.Sprintf("%%-known-at-%dM", n/1_000_000))
		}
	}
}

// compactedStore is a store holding what put writes for i in [0, n), in
// batches of 10 000, with the range under prefix compacted into the bottom
// level, as in a store that has run for a while. Filling it stalls writes
// now and then; the store's warnings about that are discarded (quietLogger).
func compactedStore(b *testing.B, n int, prefix []byte, put func(batch *pebble.Batch, i int)) *persistence.Store {
	store, err := persistence.Open(persistence.Config{Dir: b.TempDir(), Logger: quietLogger})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	for i := 0; i < n; i += 10_000 {
		batch := store.DB().NewBatch()
		for j := i; j < min(i+10_000, n); j++ {
			put(batch, j)
		}
		if err := store.Commit(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := store.DB().Compact(prefix, persistence.PrefixEnd(prefix), true); err != nil {
		b.Fatal(err)
	}
	return store
}
