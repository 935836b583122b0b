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

// snapshotIPBuckets replaces the stored IP buckets with the live ones. It is
// not synced: a crash loses at most one interval of IP limiting.
func (s *System) snapshotIPBuckets() error {
	now := s.now().UnixNano()
	s.registerIP.Sweep(now)
	b := s.store.DB().NewBatch()
	_ = b.DeleteRange(persistence.PrefixIP, persistence.PrefixEnd(persistence.PrefixIP), nil)
	var key, val []byte
	s.registerIP.Range(func(a netip.Addr, bk ratelimit.Bucket) {
		key = persistence.AppendIPKey(key[:0], a.String())
		val = bk.AppendBinary(val[:0])
		_ = b.Set(key, val, nil)
	})
	return s.store.Write(b)
}

func (s *System) restoreIPBuckets() error {
	it, err := s.store.DB().NewIter(&pebble.IterOptions{LowerBound: persistence.PrefixIP, UpperBound: persistence.PrefixEnd(persistence.PrefixIP)})
	if err != nil {
		return fmt.Errorf("actors: restore IP buckets: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		a, perr := netip.ParseAddr(string(it.Key()[len(persistence.PrefixIP):]))
		b, _, ok := ratelimit.DecodeBucket(it.Value())
		if perr == nil && ok {
			s.registerIP.Restore(a, b)
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("%w: restore IP buckets: %w", persistence.ErrCorrupt, err)
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
