package actors

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sgeplatform/sge/persistence"
)

func newTestSystem(t *testing.T) *System {
	t.Helper()
	return newTestSystemWith(t, Config{})
}

func newTestSystemWith(t *testing.T, cfg Config) *System {
	t.Helper()
	sys, stop := startTestSystem(t, t.TempDir(), cfg)
	t.Cleanup(func() { _ = stop() })
	return sys
}

// startTestSystem opens the store in dir and starts a System on it; stop
// shuts both down and returns what failed.
func startTestSystem(t *testing.T, dir string, cfg Config) (sys *System, stop func() error) {
	t.Helper()
	store, err := persistence.Open(persistence.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	as := newTestActorSystem()
	if sys, err = New(cfg, store, as); err != nil {
		t.Fatal(err)
	}
	return sys, func() error {
		err := sys.Shutdown(t.Context())
		as.Shutdown()
		return errors.Join(err, store.Close())
	}
}

func register(sys *System, wallet, key string) *Request {
	r := NewRequest()
	r.Op = OpRegister
	r.Wallet = append(r.Wallet, wallet...)
	r.Key = append(r.Key, key...)
	r.Fingerprint = sha256.Sum256([]byte(wallet))
	r.IP = netip.MustParseAddr("192.0.2.1")
	if err := sys.Do(r); err != nil {
		panic(err)
	}
	return r
}

// A record whose commit has not returned is never replayed outside the
// actor: Pebble shows a synced batch before its fsync completes. (Without
// recentRecords, which would answer first: it only holds durable records.)
func TestReplaySkipsRecordsInFlight(t *testing.T) {
	sys := newTestSystemWith(t, Config{ReplayCacheRecords: -1})
	w := "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
	first := register(sys, w, "k")
	if first.Status != 201 || first.Idempotency != IdemMiss {
		t.Fatalf("first: %d %d", first.Status, first.Idempotency)
	}
	probe := NewRequest()
	probe.Op, probe.Wallet, probe.Key, probe.Fingerprint = OpRegister, []byte(w), []byte("k"), first.Fingerprint
	probe.recordKey = persistence.AppendIdempotencyKey(nil, probe.Wallet, OpRegister.scope(), probe.Key)
	if !sys.replay(probe) || string(probe.Body) != string(first.Body) {
		t.Fatal("durable record not replayed directly")
	}
	key := persistence.AppendIdempotencyKey(nil, []byte(w), OpRegister.scope(), []byte("k"))
	sys.pending.add(string(key))
	if sys.replay(probe) {
		t.Fatal("record marked in flight was replayed outside the actor")
	}
	sys.pending.remove(string(key))
	probe.Fingerprint[0] ^= 1
	if sys.replay(probe) {
		t.Fatal("another fingerprint was replayed")
	}
	sys.cfg.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	probe.Fingerprint[0] ^= 1
	if sys.replay(probe) {
		t.Fatal("expired record was replayed")
	}
}

// Once a client IP has no register token left, registrations for new
// wallets are refused without an actor; a key that is pending still goes to
// its actor, so a duplicate of work in flight waits for that work's answer.
func TestRefuseEarly(t *testing.T) {
	sys := newTestSystem(t)
	for i := range DefaultRegisterPerHourIP {
		if r := register(sys, wallet(i), "k"); r.Status != 201 {
			t.Fatalf("register %d: %d", i, r.Status)
		}
	}
	before := sys.LiveWallets()
	r := register(sys, wallet(100), "k")
	if r.Status != 429 || r.Limits[r.Limited].Policy.Name != PolicyRegisterIP {
		t.Fatalf("6th register: %d", r.Status)
	}
	if sys.LiveWallets() != before {
		t.Fatal("an early refusal spawned a wallet actor")
	}

	probe := NewRequest()
	probe.Op, probe.Wallet, probe.Key = OpRegister, []byte(wallet(101)), []byte("k")
	probe.IP, probe.absent = netip.MustParseAddr("192.0.2.1"), true
	key := persistence.AppendIdempotencyKey(nil, probe.Wallet, OpRegister.scope(), probe.Key)
	probe.recordKey = key
	sys.pending.add(string(key))
	if sys.refuseEarly(probe) {
		t.Fatal("a pending key was refused early")
	}
	sys.pending.remove(string(key))
	if !sys.refuseEarly(probe) || probe.Status != 429 {
		t.Fatal("a fresh key from an exhausted IP was not refused early")
	}
	probe.absent = false // the replay read did not rule out a record
	probe.Status = 0
	if sys.refuseEarly(probe) {
		t.Fatal("refused early without knowing the record is absent")
	}
}

// Once a wallet's actor has refused a claim, further claims are refused
// without it, with the same answer, until the bucket refills; a keyed claim
// is refused early only when its record is known to be absent.
func TestRefuseEarlyClaims(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	sys := newTestSystemWith(t, Config{ClaimPerHour: 1, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	w := wallet(3)
	prepare := func(key string) *Request {
		r := NewRequest()
		r.Op = OpClaimPrepare
		r.Wallet = append(r.Wallet, w...)
		r.Key = append(r.Key, key...)
		r.Amount = append(r.Amount, "1"...)
		r.Fingerprint = sha256.Sum256([]byte("prepare " + w))
		r.IP = netip.MustParseAddr("192.0.2.1")
		if err := sys.Do(r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	sent := func() uint64 {
		sh := sys.reg.shard([]byte(w))
		sh.mu.Lock()
		defer sh.mu.Unlock()
		return sh.wallets[w].sent
	}

	if r := prepare(""); r.Status != 201 {
		t.Fatalf("first claim: %d %s", r.Status, r.Body)
	}
	byActor := prepare("")
	if byActor.Status != 429 {
		t.Fatalf("second claim: %d %s", byActor.Status, byActor.Body)
	}
	before := sent()
	for _, key := range []string{"", "k"} {
		early := prepare(key)
		if early.Status != 429 || string(early.Body) != string(byActor.Body) ||
			early.Limits[early.Limited] != byActor.Limits[byActor.Limited] {
			t.Fatalf("claim with key %q: %d %s %+v, want the actor's %s %+v", key, early.Status, early.Body,
				early.Limits[early.Limited], byActor.Body, byActor.Limits[byActor.Limited])
		}
	}
	if n := sent(); n != before {
		t.Fatalf("%d refusals went to the actor", n-before)
	}

	key := persistence.AppendIdempotencyKey(nil, []byte(w), OpClaimPrepare.scope(), []byte("k"))
	sys.pending.add(string(key))
	if r := prepare("k"); r.Status != 429 || sent() != before+1 {
		t.Fatalf("a pending key was refused without its actor: %d, %d messages", r.Status, sent()-before)
	}
	sys.pending.remove(string(key))

	clock.Add(int64(time.Hour))
	if r := prepare(""); r.Status != 201 {
		t.Fatalf("claim after the refill: %d %s", r.Status, r.Body)
	}
}

func wallet(i int) string {
	return fmt.Sprintf("0x%040x", i+1)
}

// Every way out of the registry keeps the live count, which the
// MaxLiveWallets cap reads, exact: here an actor its supervisor stopped.
func TestForgetKeepsLiveCount(t *testing.T) {
	sys := newTestSystem(t)
	w := wallet(7)
	register(sys, w, "k")
	if sys.LiveWallets() != 1 {
		t.Fatalf("%d live wallets after one register", sys.LiveWallets())
	}
	sh := sys.reg.shard([]byte(w))
	sh.mu.Lock()
	pid := sh.wallets[w].pid
	sh.mu.Unlock()
	sys.reg.forget(w, pid)
	if n := sys.LiveWallets(); n != 0 {
		t.Fatalf("%d live wallets after the stopped actor was forgotten", n)
	}
}

// panicOnLimit panics in the rate-limit step while armed: between the key
// being marked pending and the commit being submitted.
type panicOnLimit struct {
	NopObserver
	armed atomic.Bool
}

func (o *panicOnLimit) RateLimit(string, bool) {
	if o.armed.Load() {
		panic("test: rate limit step")
	}
}

// A step that panics after marking its key pending must unmark it, or every
// later retry of that key would bypass the direct replay (and the early 429)
// until the process restarts.
func TestPanicInAStepUnmarksItsKey(t *testing.T) {
	obs := &panicOnLimit{}
	sys := newTestSystemWith(t, Config{Observer: obs})
	w := "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
	key := persistence.AppendIdempotencyKey(nil, []byte(w), OpRegister.scope(), []byte("k"))

	obs.armed.Store(true)
	if r := register(sys, w, "k"); r.Status != 500 {
		t.Fatalf("panicking step answered %d %s, want 500", r.Status, r.Body)
	}
	if sys.pending.has(key) {
		t.Fatal("the key stayed pending after its step panicked")
	}
	obs.armed.Store(false)
	if r := register(sys, w, "k"); r.Status != 201 || r.Idempotency != IdemMiss {
		t.Fatalf("retry after the panic: %d %s", r.Status, r.Body)
	}
	if sys.pending.has(key) {
		t.Fatal("the key stayed pending after its commit returned")
	}
}

// Near the live-wallet cap, actors passivate after PressureIdleTimeout, so
// a stream of new wallets keeps finding room: none is refused for long,
// although IdleTimeout is an hour.
func TestPressurePassivation(t *testing.T) {
	sys := newTestSystemWith(t, Config{MaxLiveWallets: 4, IdleTimeout: time.Hour, PressureIdleTimeout: 10 * time.Millisecond})
	deadline := time.Now().Add(30 * time.Second)
	for i := range 20 {
		for {
			r := NewRequest()
			r.Op = OpRegister
			r.Wallet = append(r.Wallet, wallet(i)...)
			r.IP = netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}) // register-ip allows 5 an hour
			err := sys.Do(r)
			if err == nil {
				if r.Status != 201 {
					t.Fatalf("wallet %d: %d %s", i, r.Status, r.Body)
				}
				break
			}
			if !errors.Is(err, ErrOverloaded) || time.Now().After(deadline) {
				t.Fatalf("wallet %d: %v (live %d)", i, err, sys.LiveWallets())
			}
			time.Sleep(time.Millisecond) // poll: room comes when an idle actor passivates
		}
		if n := sys.LiveWallets(); n > 4 {
			t.Fatalf("%d live wallets, cap 4", n)
		}
	}
	// The first two actors armed their timers below the pressure line (3 of
	// 4) and stay; every later one passivates.
	for sys.LiveWallets() > 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d live wallets long after the stream", sys.LiveWallets())
		}
		time.Sleep(time.Millisecond)
	}
}
