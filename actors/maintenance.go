package actors

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/sgeplatform/sge/internal/ratelimit"
	"github.com/sgeplatform/sge/persistence"
)

// maintain runs the periodic jobs: IP bucket snapshots and the purge of
// expired idempotency and webhook dedupe records.
func (s *System) maintain() {
	defer s.wg.Done()
	snap := time.NewTicker(s.cfg.SnapshotInterval)
	purge := time.NewTicker(s.cfg.PurgeInterval)
	defer snap.Stop()
	defer purge.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-snap.C:
			if err := s.snapshotIPBuckets(); err != nil {
				s.log.Error("snapshot IP buckets", "err", err)
			}
		case <-purge.C:
			if _, err := s.PurgeExpired(); err != nil {
				s.log.Error("purge idempotency records", "err", err)
			}
			if _, err := s.PurgeExpiredWebhooks(); err != nil {
				s.log.Error("purge webhook dedupe records", "err", err)
			}
		}
	}
}

// snapshotIPBuckets brings the stored IP buckets up to the live ones (see
// ratelimit.Limiter.Snapshot: what changed since the last snapshot, or all
// of them now and then). It is not synced: a crash loses at most one
// interval of IP limiting. A failed write is counted as a storage error.
func (s *System) snapshotIPBuckets() error {
	w := ipSnapshot{b: s.store.DB().NewBatch()}
	s.registerIP.Snapshot(s.now().UnixNano(), &w)
	if w.b.Empty() {
		return nil
	}
	if err := s.store.Write(w.b); err != nil {
		s.cfg.Observer.StorageError("snapshot")
		s.registerIP.Resync() // what this batch held goes into the next, full one
		return err
	}
	return nil
}

// ipSnapshot writes a snapshot of the IP buckets into a batch. A batch
// applies in order, so Clear's range deletion removes only what was stored
// before it.
type ipSnapshot struct {
	b        *pebble.Batch
	key, val []byte
}

func (w *ipSnapshot) Clear() {
	_ = w.b.DeleteRange(persistence.PrefixIP, persistence.PrefixEnd(persistence.PrefixIP), nil)
}

func (w *ipSnapshot) Set(a netip.Addr, bk ratelimit.Bucket) {
	w.key = persistence.AppendIPKey(w.key[:0], a.String())
	w.val = bk.AppendBinary(w.val[:0])
	_ = w.b.Set(w.key, w.val, nil)
}

func (w *ipSnapshot) Drop(a netip.Addr) {
	w.key = persistence.AppendIPKey(w.key[:0], a.String())
	_ = w.b.Delete(w.key, nil)
}

func (s *System) restoreIPBuckets() error {
	it, err := s.store.DB().NewIter(&pebble.IterOptions{LowerBound: persistence.PrefixIP, UpperBound: persistence.PrefixEnd(persistence.PrefixIP)})
	if err != nil {
		return fmt.Errorf("actors: restore IP buckets: %w", err)
	}
	unreadable := 0
	for it.First(); it.Valid(); it.Next() {
		a, perr := netip.ParseAddr(string(it.Key()[len(persistence.PrefixIP):]))
		b, _, ok := ratelimit.DecodeBucket(it.Value())
		if perr != nil || !ok {
			unreadable++
			continue
		}
		s.registerIP.Restore(a, b)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("%w: restore IP buckets: %w", persistence.ErrCorrupt, err)
	}
	// The store now holds what the limiter does, so the first snapshot
	// writes only what changes (up to a million buckets otherwise), unless
	// an entry could not be read: the full snapshot then replaces it.
	if unreadable == 0 {
		s.registerIP.Restored()
	}
	return nil
}

// purge asks a live wallet actor to delete one expired idempotency record.
type purge struct {
	key       []byte // the record's key
	expiresAt int64  // the expiry the index entry was written for
}

// PurgeExpired deletes idempotency records whose retention has passed, and
// their expiry-index entries. A record is deleted only if it still carries
// the indexed expiry: a key reused after expiry has a newer record that must
// stay. Records of live wallets are deleted by their actor, others directly
// while the registry shard is locked, so no actor can race the delete.
func (s *System) PurgeExpired() (int, error) {
	now := s.now().UnixNano()
	upper := persistence.TimeBound(persistence.PrefixExpiry, now)
	it, err := s.store.DB().NewIter(&pebble.IterOptions{LowerBound: persistence.PrefixExpiry, UpperBound: upper})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	b := s.store.DB().NewBatch()
	defer func() {
		if b != nil {
			_ = b.Close()
		}
	}()
	for it.First(); it.Valid(); it.Next() {
		ik := it.Key()
		_ = b.Delete(ik, nil)
		at, wallet, route, key, ok := persistence.ParseExpiryKey(ik)
		if !ok {
			continue
		}
		rk := persistence.AppendIdempotencyKey(nil, wallet, route, key)
		s.reg.sendIfLive(wallet, &purge{key: rk, expiresAt: at}, func() {
			if s.purgeRecord(rk, at) {
				n++
			}
		})
		if b.Len() > 1<<20 {
			err := s.store.Write(b)
			b = s.store.DB().NewBatch()
			if err != nil {
				return n, err
			}
		}
	}
	if err := it.Error(); err != nil {
		return n, err
	}
	err, b = s.store.Write(b), nil
	return n, err
}

// purgeRecord deletes the record at key if it still expires at at.
func (s *System) purgeRecord(key []byte, at int64) bool {
	v, err := s.store.Get(nil, key)
	if err != nil {
		return false
	}
	var rec persistence.Idempotency
	if persistence.DecodeIdempotency(v, &rec) != nil || rec.ExpiresAt != at {
		return false
	}
	b := s.store.DB().NewBatch()
	_ = b.Delete(key, nil)
	return s.store.Write(b) == nil
}

func (a *walletActor) purge(p *purge) {
	if c := a.inflight; c != nil && c.recKey == string(p.key) {
		// The commit in flight rewrites this very record, with an expiry
		// entry of its own that a later purge will find.
		return
	}
	a.sys.purgeRecord(p.key, p.expiresAt)
}
