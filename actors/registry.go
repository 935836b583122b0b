package actors

import (
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/sgeplatform/sge/internal/ratelimit"
	"github.com/sgeplatform/sge/persistence"
)

// registry maps wallets to their live actor. It replaces SpawnNamed, whose
// get-or-spawn races: spawning, sending and removing all happen under the
// wallet's shard lock, so a message is only ever sent to a started actor that
// has not begun to passivate.
type registry struct {
	sys    *System
	shards [256]registryShard
	// n counts live entries: the MaxLiveWallets cap and LiveWallets.
	n atomic.Int64
}

type registryShard struct {
	mu      sync.Mutex
	wallets map[string]*walletEntry
}

type walletEntry struct {
	pid *actor.PID
	// sent counts messages sent to pid; the actor may passivate only when it
	// has received all of them (see tryPassivate).
	sent uint64
	// unknown is set at spawn when knownWallets had never seen the wallet:
	// the actor's first incarnation has nothing to load (load clears it).
	unknown atomic.Bool
	// claimRefused is the actor's claim-wallet bucket as it was when the
	// actor last refused a claim, or nil; see System.refuseEarly.
	claimRefused atomic.Pointer[ratelimit.Bucket]
}

func (r *registry) init(sys *System) {
	r.sys = sys
	for i := range r.shards {
		r.shards[i].wallets = make(map[string]*walletEntry)
	}
}

func (r *registry) shard(wallet []byte) *registryShard {
	return &r.shards[persistence.Shard(wallet)]
}

// send delivers msg to the wallet's actor, spawning it if needed. It
// refuses (false) to spawn beyond MaxLiveWallets; live actors still get
// their messages.
func (r *registry) send(wallet []byte, msg any) bool {
	sh := r.shard(wallet)
	sh.mu.Lock()
	e := sh.wallets[string(wallet)]
	if e == nil {
		if r.n.Load() >= int64(r.sys.cfg.MaxLiveWallets) {
			sh.mu.Unlock()
			return false
		}
		r.n.Add(1)
		w := string(wallet)
		e = new(walletEntry)
		e.pid = r.sys.spawnWallet(w, e)
		sh.wallets[w] = e
		if req, ok := msg.(*Request); ok {
			req.freshActor, req.spawnEpoch = true, r.sys.passivations.Load()
		}
	}
	e.sent++
	r.sys.cfg.Observer.MailboxEnqueued(kindWallet)
	r.sys.as.Root.Send(e.pid, msg)
	sh.mu.Unlock()
	return true
}

// sendIfLive delivers msg only to a live actor; otherwise it calls idle with
// the shard lock held, so no actor for the wallet can start meanwhile.
func (r *registry) sendIfLive(wallet []byte, msg any, idle func()) {
	sh := r.shard(wallet)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.wallets[string(wallet)]; e != nil {
		e.sent++
		r.sys.cfg.Observer.MailboxEnqueued(kindWallet)
		r.sys.as.Root.Send(e.pid, msg)
		return
	}
	idle()
}

// tryPassivate removes the wallet's entry if pid has received every message
// sent to it. Then nothing more can reach pid and it may stop; a later
// request spawns a fresh actor that reloads the wallet from Pebble.
func (r *registry) tryPassivate(wallet string, pid *actor.PID, received uint64) bool {
	sh := r.shard([]byte(wallet))
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.wallets[wallet]
	if e == nil || e.pid != pid || e.sent != received {
		return false
	}
	r.removeLocked(sh, wallet)
	return true
}

// removeLocked drops the wallet's entry; every removal goes through here so
// the live count and the passivation epoch (see replay.go) stay exact.
func (r *registry) removeLocked(sh *registryShard, wallet string) {
	r.sys.passivations.Add(1)
	delete(sh.wallets, wallet)
	r.n.Add(-1)
}

// forget removes the wallet's entry if it still points at pid, a stopped
// actor.
func (r *registry) forget(wallet string, pid *actor.PID) {
	sh := r.shard([]byte(wallet))
	sh.mu.Lock()
	if e := sh.wallets[wallet]; e != nil && e.pid == pid {
		r.removeLocked(sh, wallet)
	}
	sh.mu.Unlock()
}

// claimRefused returns the claim bucket the wallet's live actor published
// when it last refused a claim, or nil.
func (r *registry) claimRefused(wallet []byte) *ratelimit.Bucket {
	sh := r.shard(wallet)
	sh.mu.Lock()
	e := sh.wallets[string(wallet)]
	sh.mu.Unlock()
	if e == nil {
		return nil
	}
	return e.claimRefused.Load()
}

// live returns the number of live wallet actors.
func (r *registry) live() int { return int(r.n.Load()) }

// drain removes every entry and returns the PIDs, for shutdown.
func (r *registry) drain() []*actor.PID {
	var pids []*actor.PID
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		for w, e := range sh.wallets {
			pids = append(pids, e.pid)
			r.removeLocked(sh, w)
		}
		sh.mu.Unlock()
	}
	return pids
}
