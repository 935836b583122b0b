package actors

import (
	"errors"
	"hash/maphash"
	"sync"

	"github.com/sgeplatform/sge/internal/ratelimit"
	"github.com/sgeplatform/sge/persistence"
)

// Replays of finished requests are the common retry and need no ordering:
// a committed idempotency record never changes. So Do answers them straight
// from Pebble, without the hop through the wallet's actor, when it can be
// sure the record is durable.
//
// Pebble makes a synced batch visible before its WAL sync completes, so a
// record found in Pebble may still be in flight. The wallet actor therefore
// notes the record key in pendingKeys before it submits the batch and
// removes it once the commit has returned; a reader that finds the record
// and then does not find the key in pendingKeys knows the commit finished.
// Anything else (not found, in flight, expired, another fingerprint) goes to
// the actor, which decides as before.
//
// A miss is not wasted either: when the request then spawns its wallet's
// actor and no actor anywhere passivated between the read and the spawn,
// no actor of that wallet existed in between, so nothing can have written
// the record since, and the new actor skips its own lookup (see
// walletActor.process). That is the common case of a burst of new wallets.
type pendingKeys struct {
	seed   maphash.Seed
	shards [64]struct {
		mu   sync.Mutex
		keys map[string]int
	}
}

func (p *pendingKeys) init() {
	p.seed = maphash.MakeSeed()
	for i := range p.shards {
		p.shards[i].keys = make(map[string]int)
	}
}

// add and remove take the key as the wallet actor keeps it; has takes the
// reader's bytes. maphash hashes a string and its bytes alike.
func (p *pendingKeys) add(key string) {
	s := &p.shards[maphash.String(p.seed, key)%64]
	s.mu.Lock()
	s.keys[key]++
	s.mu.Unlock()
}

func (p *pendingKeys) remove(key string) {
	if key == "" {
		return
	}
	s := &p.shards[maphash.String(p.seed, key)%64]
	s.mu.Lock()
	if n := s.keys[key]; n > 1 {
		s.keys[key] = n - 1
	} else {
		delete(s.keys, key)
	}
	s.mu.Unlock()
}

func (p *pendingKeys) has(key []byte) bool {
	s := &p.shards[maphash.Bytes(p.seed, key)%64]
	s.mu.Lock()
	_, ok := s.keys[string(key)]
	s.mu.Unlock()
	return ok
}

type replayBuf struct{ val []byte }

var replayPool = sync.Pool{New: func() any { return new(replayBuf) }}

// replay answers r from its durable idempotency record (r.recordKey), if it
// has one that matches; it reports whether it did.
func (s *System) replay(r *Request) bool {
	r.readEpoch = s.passivations.Load()
	if !s.known.mayBeStored(r.Wallet) {
		r.absent = true // a wallet never seen has no records, cached or stored
		return false
	}
	buf := replayPool.Get().(*replayBuf)
	defer replayPool.Put(buf)
	v, cached, err := s.findRecord(r.recordKey, buf.val[:0])
	if !cached {
		buf.val = v[:0]
	}
	if err != nil {
		r.absent = errors.Is(err, persistence.ErrNotFound)
		return false
	}
	// A cached record is durable; one read from Pebble is unless pending.
	return (cached || !s.pending.has(r.recordKey)) && s.replayRecord(r, v)
}

// findRecord looks up the idempotency record at key: in recentRecords
// (cached, durable, shared: not to be modified), else in Pebble, read into
// dst. It answers persistence.ErrNotFound without a read when recordKeys
// rules the record out. A cached record is the newest this process
// committed under its key, so Pebble holds nothing newer that is durable.
func (s *System) findRecord(key, dst []byte) (v []byte, cached bool, err error) {
	if v := s.recent.get(key); v != nil {
		return v, true, nil
	}
	if !s.records.mayBeStored(key) {
		return dst, false, persistence.ErrNotFound
	}
	v, err = s.store.Get(dst, key)
	return v, false, err
}

// replayRecord answers r from the durable record v if it is unexpired and
// r's fingerprint matches; it reports whether it did. Anything else is the
// actor's to decide.
func (s *System) replayRecord(r *Request, v []byte) bool {
	var rec persistence.Idempotency
	if persistence.DecodeIdempotency(v, &rec) != nil ||
		rec.ExpiresAt <= s.now().UnixNano() ||
		rec.Fingerprint != r.Fingerprint {
		return false
	}
	r.Status, r.Problem, r.Idempotency = rec.Status, rec.Problem, IdemHit
	r.Body = append(r.Body[:0], rec.Body...)
	s.cfg.Observer.Idempotency(r.Op.Route(), "hit")
	return true
}

// refuseEarly answers 429 without waking (or spawning) the wallet's actor
// for a registration whose client IP has no token left, and for a claim
// whose wallet's claim bucket is empty: a client spraying new wallets from
// one address, or claims past its quota, costs a map lookup per request,
// not an actor hop and a read each.
//
// Only requests the actor would refuse too are refused here, and only those
// that cannot be duplicates of work in flight: keyless ones, and keyed ones
// whose direct replay found no record and whose key is not pending. The
// actor marks a key pending before it spends any token, so if a bucket is
// empty now, every keyed request that took from it is visible as pending or
// committed. The actor's own order (wallet bucket first) only decides which
// policy a request refused by both is told about.
//
// The claim bucket is the actor's; what is read here is the copy it
// published when it last refused a claim (walletEntry.claimRefused). Since
// then the bucket has only refilled, as Peek assumes, or lost tokens, so a
// refusal by the copy is one by the bucket; the actor withdraws the copy
// when a token comes back (a failed commit) and when it restarts.
func (s *System) refuseEarly(r *Request) bool {
	var policy *ratelimit.Policy
	var d ratelimit.Decision
	now := s.now().UnixNano()
	switch r.Op {
	case OpRegister:
		policy, d = s.registerIP.Policy(), s.registerIP.Peek(r.IP, now)
	case OpClaimPrepare:
		b := s.reg.claimRefused(r.Wallet)
		if b == nil {
			return false
		}
		policy, d = &s.claimWallet, s.claimWallet.Peek(*b, now)
	default:
		return false
	}
	if d.Allowed {
		return false
	}
	if len(r.Key) > 0 {
		if !r.absent || s.pending.has(r.recordKey) {
			return false
		}
		s.cfg.Observer.Idempotency(r.Op.Route(), "miss")
	}
	s.cfg.Observer.RateLimit(policy.Name, false)
	r.addLimit(policy, d)
	limited(r)
	return true
}
