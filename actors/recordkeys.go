package actors

import (
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/persistence"
)

// recordKeys is an in-memory filter of the idempotency records that may be
// stored and unexpired. A keyed request whose record it has never seen
// skips the Pebble read that could only find nothing, both in the direct
// replay check and in the wallet's actor: every claim and every
// registration of a known wallet carries a fresh key, and a request refused
// early (429) costs no read at all.
//
// Like knownWallets it can only err towards a read. The wallet's actor adds
// a key, with its record's expiry, before it submits the batch that writes
// the record (only that step writes idempotency records), and a start-up
// scan of the expiry index adds every unexpired record already stored, with
// the expiry it was written with, whatever IDEMPOTENCY_TTL was then. Until
// that scan has ended (0.4 µs a record, BenchmarkRecordKeysScan), every
// record may be stored.
//
// Records expire, so the filter forgets by generation: keys go into the
// newest generation until it is full, then into a new one. A
// generation is dropped at a roll once every record added to it has
// expired, when "absent" is also what the record itself would answer (the
// replay and the actor take an expired record for none). At most a limit
// of generations live; past that the newest keeps filling and
// answers "may be stored" more often, which costs reads, not correctness.
// By default 16 generations of 1 Mi keys in 2 MiB each: 16 million
// unexpired records in at most 32 MiB (and a spare generation) are filtered
// well, which with the default 24 h TTL is 194 new keys a second, sustained.
type recordKeys struct {
	seed    maphash.Seed
	size    recordGenSize
	gens    atomic.Pointer[[]*recordGen] // oldest first; replaced, never modified
	mu      sync.Mutex                   // serializes add, and with it each roll
	spare   *recordGen                   // the next generation, allocated off the lock; under mu
	ready   atomic.Bool
	scanned chan struct{} // closed when the start-up scan has ended
}

type recordGen struct {
	words blockFilter
	keys  int   // added so far; under recordKeys.mu
	until int64 // the latest expiry added (Unix ns); under recordKeys.mu
}

// recordGenSize sizes the generations; tests make them small.
type recordGenSize struct{ words, keys, limit int }

// 2 MiB a generation, 0.4 % false positives when it is full
// (BenchmarkRecordKeysFalsePositives).
var defaultRecordGenSize = recordGenSize{words: 1 << 18, keys: 1 << 20, limit: 16}

func newRecordKeys(size recordGenSize) *recordKeys {
	f := &recordKeys{seed: maphash.MakeSeed(), size: size, scanned: make(chan struct{})}
	f.gens.Store(&[]*recordGen{f.newGen()})
	go f.prepareSpare()
	return f
}

// prepareSpare allocates the next generation and faults its pages in, which
// takes milliseconds on a small VM: off the lock every adder waits on.
func (f *recordKeys) prepareSpare() {
	spare := f.newGen()
	for i := 0; i < len(spare.words); i += 512 { // a word a 4 KiB page
		spare.words[i].Store(0)
	}
	f.mu.Lock()
	f.spare = spare
	f.mu.Unlock()
}

func (f *recordKeys) newGen() *recordGen { return &recordGen{words: make(blockFilter, f.size.words)} }

// add records that the idempotency record at key may be stored from now on,
// until it expires at expires. now is the caller's clock, for the roll.
func (f *recordKeys) add(key []byte, expires, now int64) {
	h := maphash.Bytes(f.seed, key)
	f.mu.Lock()
	gens := *f.gens.Load()
	g := gens[len(gens)-1]
	if g.keys >= f.size.keys {
		g = f.roll(gens, now)
	}
	g.keys++
	g.until = max(g.until, expires)
	g.words.add(h)
	f.mu.Unlock()
}

// roll drops the generations whose records have all expired and starts a
// new one if that leaves room; it returns the generation to add to. Under mu.
func (f *recordKeys) roll(gens []*recordGen, now int64) *recordGen {
	expired := 0
	for _, g := range gens {
		if g.until <= now {
			expired++
		}
	}
	if len(gens)-expired >= f.size.limit {
		return gens[len(gens)-1] // full: the newest keeps filling
	}
	next := make([]*recordGen, 0, len(gens)-expired+1)
	for _, g := range gens {
		if g.until > now {
			next = append(next, g)
		}
	}
	g := f.spare
	if g == nil {
		g = f.newGen()
	}
	f.spare = nil
	next = append(next, g)
	f.gens.Store(&next)
	go f.prepareSpare()
	return g
}

// mayBeStored reports false only when no unexpired record can be at key.
// A reader holding the generations from before a roll may still consult a
// dropped one, which only errs towards a read.
func (f *recordKeys) mayBeStored(key []byte) bool {
	if !f.ready.Load() {
		return true
	}
	h := maphash.Bytes(f.seed, key)
	for _, g := range *f.gens.Load() {
		if g.words.has(h) {
			return true
		}
	}
	return false
}

// scan adds every record of the expiry index that expires after now, then
// makes the filter answer. It gives up (leaving every record possibly
// stored) if stop closes first.
func (f *recordKeys) scan(store *persistence.Store, now int64, stop <-chan struct{}) error {
	defer close(f.scanned)
	it, err := store.DB().NewIter(&pebble.IterOptions{
		LowerBound: persistence.TimeBound(persistence.PrefixExpiry, now+1),
		UpperBound: persistence.PrefixEnd(persistence.PrefixExpiry),
	})
	if err != nil {
		return err
	}
	var rk []byte
	for valid, n := it.First(), 0; valid; valid, n = it.Next(), n+1 {
		if n%4096 == 0 {
			select {
			case <-stop:
				return it.Close()
			default:
			}
		}
		at, wallet, route, key, ok := persistence.ParseExpiryKey(it.Key())
		if !ok {
			continue // not an expiry entry; the layout has none
		}
		rk = persistence.AppendIdempotencyKey(rk[:0], wallet, route, key)
		f.add(rk, at, now)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return err
	}
	f.ready.Store(true)
	return nil
}
