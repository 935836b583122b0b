package bench

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/internal/input"
	"github.com/sgeplatform/sge/internal/ratelimit"
	"github.com/sgeplatform/sge/persistence"
)

// Components of the request path, each beside the simplest alternative.

func BenchmarkTokenBucket(b *testing.B) {
	p := ratelimit.Policy{Name: "claim-wallet", Quota: 60, Window: time.Hour}
	var bk ratelimit.Bucket
	now := time.Now().UnixNano()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.Take(&bk, now+int64(i)*int64(time.Minute))
	}
}

func BenchmarkIPLimiter(b *testing.B) {
	l := ratelimit.NewLimiter(ratelimit.Policy{Name: "register-ip", Quota: 5, Window: time.Hour}, 0)
	now := time.Now().UnixNano()
	var n atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			l.Take(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
		}
	})
}

var body = []byte(`{"wallet":"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed","claimId":"01ARZ3NDEKTSV4RRFFQ69G5FAV","txHash":"0x88df016429689c079f3b2f6ad39fa052532c56795b733da78a91ebe6a713944b"}`)

func BenchmarkParseBody(b *testing.B) {
	b.Run("input.DecodeObject", func(b *testing.B) {
		names := []string{"wallet", "claimId", "txHash"}
		vals := make([][]byte, 3)
		var scratch, w []byte
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if scratch, err = input.DecodeObject(body, names, vals, scratch[:0]); err != nil {
				b.Fatal(err)
			}
			if w, err = input.AppendWallet(w[:0], vals[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v struct{ Wallet, ClaimID, TxHash string }
			if err := json.Unmarshal(body, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func openStore(b *testing.B, cfg persistence.Config) *persistence.Store {
	cfg.Dir = b.TempDir()
	s, err := persistence.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkIdempotencyLookup reads an existing record and a missing key, as
// a HIT and a MISS do, with 100k records flushed and compacted into the
// bottom level, as in a store that has run for a while. The pebble-get rows
// read the same keys with Pebble's own Get, which skips the bottom level's
// bloom filters (see persistence.Store.Get).
func BenchmarkIdempotencyLookup(b *testing.B) {
	s := openStore(b, persistence.Config{})
	rec := persistence.AppendIdempotency(nil, &persistence.Idempotency{ExpiresAt: 1 << 62, Status: 201, Body: make([]byte, 200)})
	const n = 100_000
	for i := 0; i < n; i += 1000 {
		batch := s.DB().NewBatch()
		for j := i; j < i+1000; j++ {
			_ = batch.Set(persistence.AppendIdempotencyKey(nil, []byte(wallet(uint64(j))), "register", []byte("k")), rec, nil)
		}
		if err := s.Commit(batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.DB().Compact([]byte{0}, []byte{0xff}, true); err != nil {
		b.Fatal(err)
	}
	pebbleGet := func(dst, key []byte) ([]byte, error) {
		v, closer, err := s.DB().Get(key)
		if err != nil {
			return dst, err
		}
		dst = append(dst, v...)
		return dst, closer.Close()
	}
	for _, c := range []struct {
		name   string
		offset uint64
	}{{"hit", 0}, {"miss", n}} {
		for _, via := range []struct {
			name string
			get  func(dst, key []byte) ([]byte, error)
		}{{"store", s.Get}, {"pebble-get", pebbleGet}} {
			b.Run(c.name+"/"+via.name, func(b *testing.B) {
				var buf, key []byte
				var err error
				b.ReportAllocs()
				for i := uint64(0); b.Loop(); i++ {
					key = persistence.AppendIdempotencyKey(key[:0], []byte(wallet(c.offset+i%n)), "register", []byte("k"))
					if buf, err = via.get(buf[:0], key); (err == nil) != (c.offset == 0) {
						b.Fatalf("%s: %v", key, err)
					}
				}
			})
		}
	}
}

// BenchmarkSyncedCommit commits small effect-sized batches synced from many
// goroutines: through the group committer, and straight into Pebble's own
// commit pipeline (one goroutine per batch) as the baseline.
func BenchmarkSyncedCommit(b *testing.B) {
	value := make([]byte, 300)
	batchOf := func(s *persistence.Store, i uint64) *pebble.Batch {
		batch := s.DB().NewBatch()
		for k := range 5 {
			_ = batch.Set(fmt.Appendf(nil, "bench/%d/%d", i, k), value, nil)
		}
		return batch
	}
	pebbleDirect := func(_ *persistence.Store, batch *pebble.Batch) error {
		defer batch.Close()
		return batch.Commit(pebble.Sync)
	}
	for _, c := range []struct {
		name   string
		commit func(*persistence.Store, *pebble.Batch) error
	}{{"group-committer", (*persistence.Store).Commit}, {"pebble-direct", pebbleDirect}} {
		b.Run(c.name, func(b *testing.B) {
			s := openStore(b, persistence.Config{})
			var n atomic.Uint64
			b.SetParallelism(parallelism)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.commit(s, batchOf(s, n.Add(1))); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkSyncLatency is the floor under a durable MISS's latency on this
// machine: one writer, one small synced batch at a time, nothing else
// running. It reports the commit latency's p50, p99 and max: without a WAL
// sync interval they belong to the disk's fsync more than to Pebble; with
// the default interval, each commit also waits out the interval since the
// previous sync, which is what a lone sequential writer pays for it.
func BenchmarkSyncLatency(b *testing.B) {
	for _, c := range []struct {
		name     string
		interval time.Duration
	}{{"no-interval", -1}, {"default-interval", 0}} {
		b.Run(c.name, func(b *testing.B) {
			s := openStore(b, persistence.Config{WALMinSyncInterval: c.interval})
			value := make([]byte, 300)
			var took []time.Duration
			for i := 0; b.Loop(); i++ {
				batch := s.DB().NewBatch()
				_ = batch.Set(fmt.Appendf(nil, "bench/%d", i), value, nil)
				start := time.Now()
				if err := s.Commit(batch); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
			b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
			b.ReportMetric(ms(took[len(took)-1]), "max-ms")
		})
	}
}
